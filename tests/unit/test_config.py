"""Settings: every problem reported at once; secrets never printed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sync.config import Settings, check_settings, mask_url, unknown_variables
from workers.cli import app


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("CLOSEDLOOP_"):
            monkeypatch.delenv(key)


def test_defaults_are_embedded(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings()
    assert settings.database_url.startswith("sqlite:///")
    assert settings.redis_url is None
    assert settings.mappings == Path("mappings")


def test_all_problems_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOSEDLOOP_DATABASE_URL", "mysql://x")
    monkeypatch.setenv("CLOSEDLOOP_SALESFORCE_API_SHARE", "1.5")
    monkeypatch.setenv("CLOSEDLOOP_LOG_FORMAT", "xml")
    settings, problems = check_settings()
    assert settings is None
    names = " ".join(problems)
    for key in ("DATABASE_URL", "SALESFORCE_API_SHARE", "LOG_FORMAT"):
        assert f"CLOSEDLOOP_{key}" in names


def test_cross_field_problems(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CLOSEDLOOP_SALESFORCE_USERNAME", "ops@example.com")
    monkeypatch.setenv("CLOSEDLOOP_SALESFORCE_CA_BUNDLE", str(tmp_path / "missing.pem"))
    monkeypatch.setenv("CLOSEDLOOP_MAPPINGS", str(tmp_path / "nowhere"))
    monkeypatch.setenv("CLOSEDLOOP_REDIS_URL", "http://localhost")
    _settings, problems = check_settings()
    assert len(problems) == 4, problems


def test_yaml_file_is_read_and_env_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "closedloop.yaml"
    path.write_text("poll_interval: 12\nlog_format: console\n")
    monkeypatch.setenv("CLOSEDLOOP_CONFIG_FILE", str(path))
    monkeypatch.setenv("CLOSEDLOOP_LOG_FORMAT", "json")
    settings = Settings()
    assert settings.poll_interval == 12
    assert settings.log_format == "json"


def test_config_check_masks_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOSEDLOOP_HUBSPOT_ACCESS_TOKEN", "pat-na1-supersecret")
    monkeypatch.setenv("CLOSEDLOOP_DATABASE_URL", "postgresql://app:hunter2@db/closedloop")
    result = CliRunner().invoke(app, ["config", "check"])
    assert result.exit_code == 0, result.output
    assert "supersecret" not in result.output and "hunter2" not in result.output
    shown = json.loads(result.stdout)
    assert shown["hubspot_access_token"] == "***"
    assert shown["database_url"] == "postgresql://app:***@db/closedloop"


def test_config_check_fails_with_every_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOSEDLOOP_POLL_INTERVAL", "-1")
    monkeypatch.setenv("CLOSEDLOOP_BATCH_SIZE", "0")
    result = CliRunner().invoke(app, ["config", "check"])
    assert result.exit_code == 1
    assert "CLOSEDLOOP_POLL_INTERVAL" in result.output and "CLOSEDLOOP_BATCH_SIZE" in result.output


def test_mask_url_keeps_urls_without_password() -> None:
    assert mask_url("sqlite:///./var/x.db") == "sqlite:///./var/x.db"
    assert mask_url("redis://:pw@host:6379/0") == "redis://:***@host:6379/0"


def test_yaml_syntax_error_in_config_file_never_quotes_the_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "closedloop.yaml"
    # a colon inside an unquoted token, then a duplicate key whose value ruamel would quote
    path.write_text("poll_interval: 5\nhubspot_access_token: pat-na1-TOPSECRET: x\n")
    monkeypatch.setenv("CLOSEDLOOP_CONFIG_FILE", str(path))
    for command in (["config", "check"], ["status"], ["db", "upgrade"]):
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 1, (command, result.output)
        assert "TOPSECRET" not in result.output and "Traceback" not in result.output
        assert "line 2, column" in result.output and "CLOSEDLOOP_CONFIG_FILE" in result.output
    path.write_text("hubspot_access_token: a\nhubspot_access_token: pat-na1-TOPSECRET\n")
    result = CliRunner().invoke(app, ["config", "check"])
    assert result.exit_code == 1 and "TOPSECRET" not in result.output and "duplicate key" in result.output


def test_config_check_masks_passwords_given_as_query_parameters(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "CLOSEDLOOP_DATABASE_URL", "postgresql://app@db/closedloop?password=hunter2&sslmode=require"
    )
    monkeypatch.setenv("CLOSEDLOOP_REDIS_URL", "redis://cache:6379/0?password=redispw")
    result = CliRunner().invoke(app, ["config", "check"])
    assert result.exit_code == 0, result.output
    assert "hunter2" not in result.output and "redispw" not in result.output
    shown = json.loads(result.stdout)
    assert shown["database_url"] == "postgresql://app@db/closedloop?password=***&sslmode=require"
    assert shown["redis_url"] == "redis://cache:6379/0?password=***"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LOG_LEVEL", "LOUD"),
        ("POLL_INTERVAL", "inf"),
        ("POLL_INTERVAL", "nan"),
        ("POLL_INTERVAL", "-5"),
        ("RETRY_MAX_SECONDS", "inf"),
        ("RETRY_MAX_SECONDS", "-1"),
        ("BROKER_VISIBILITY_TIMEOUT", "inf"),
        ("BROKER_VISIBILITY_TIMEOUT", "-600"),
        ("SALESFORCE_API_VERSION", "banana"),
        ("SALESFORCE_API_VERSION", "59"),
    ],
)
def test_settings_that_would_crash_later_are_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(f"CLOSEDLOOP_{name}", value)
    settings, problems = check_settings()
    assert settings is None
    assert [p for p in problems if p.startswith(f"CLOSEDLOOP_{name}:")], problems
    result = CliRunner().invoke(app, ["config", "check"])
    assert result.exit_code == 1 and f"CLOSEDLOOP_{name}" in result.output


def test_sane_values_of_the_checked_settings_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOSEDLOOP_LOG_LEVEL", "debug")
    monkeypatch.setenv("CLOSEDLOOP_SALESFORCE_API_VERSION", "62.0")
    monkeypatch.setenv("CLOSEDLOOP_RETRY_MAX_SECONDS", "0")
    settings = Settings()
    assert (settings.log_level, settings.salesforce_api_version, settings.retry_max_seconds) == (
        "DEBUG",
        "62.0",
        0,
    )


def test_misspelled_variables_are_named_with_a_suggestion(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOSEDLOOP_POLL_INTERVALL", "5")
    monkeypatch.setenv("CLOSEDLOOP_HUBSPOT_ACCES_TOKEN", "pat-na1-secret-value")
    monkeypatch.setenv("CLOSEDLOOP_ZZZ", "1")
    monkeypatch.setenv("CLOSEDLOOP_TEST_REDIS", "redis://127.0.0.1:6379/9")  # the test suite's own
    warnings = unknown_variables()
    assert warnings == [
        "CLOSEDLOOP_HUBSPOT_ACCES_TOKEN is not a Closedloop setting and is ignored; "
        "did you mean CLOSEDLOOP_HUBSPOT_ACCESS_TOKEN?",
        "CLOSEDLOOP_POLL_INTERVALL is not a Closedloop setting and is ignored; "
        "did you mean CLOSEDLOOP_POLL_INTERVAL?",
        "CLOSEDLOOP_ZZZ is not a Closedloop setting and is ignored; "
        "see `closedloop config check` for the settings",
    ]
    result = CliRunner().invoke(app, ["config", "check"])
    assert "did you mean CLOSEDLOOP_POLL_INTERVAL?" in result.stderr
    assert "secret-value" not in result.output


def test_config_check_lints_the_mapping_the_service_loads(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    root = Path(__file__).parents[2]
    folder = tmp_path / "mappings"
    folder.mkdir()
    text = (root / "mappings" / "default.yaml").read_text(encoding="utf-8")
    (folder / "default.yaml").write_text(text.replace("sync: two_way", "sync: two_wya", 1))
    monkeypatch.setenv("CLOSEDLOOP_MAPPINGS", str(folder))
    result = CliRunner().invoke(app, ["config", "check"])
    assert result.exit_code == 1
    line = next(i for i, row in enumerate(text.splitlines(), 1) if "sync: two_way" in row)
    assert f"CLOSEDLOOP_MAPPINGS: {folder / 'default.yaml'}:{line}:" in result.stderr
    monkeypatch.setenv("CLOSEDLOOP_MAPPINGS", str(root / "mappings"))
    assert CliRunner().invoke(app, ["config", "check"]).exit_code == 0
