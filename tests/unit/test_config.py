"""Settings: every problem reported at once; secrets never printed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sync.cli import app
from sync.config import Settings, check_settings, mask_url


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
