"""Operator mistakes against every ``closedloop`` command: a few lines naming the fix, a non-zero exit.

The store cases run on real SQLite files and a real PostgreSQL server (missing, not migrated,
unreachable, unwritable); Redis is a real server or a closed port; the APIs are closed ports. No
case may print a traceback or a password.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sandboxes.common import free_port
from sync import operations
from sync.store.db import upgrade
from tests.conftest import PG_ADMIN_URL, _drop_pg_database, _new_pg_database
from tests.integration.harness import ROOT

pytestmark = pytest.mark.integration
runner = CliRunner()
PG_PASSWORD = "pg-hunter2"
REDIS_PASSWORD = "redis-hunter2"
TOKEN = "pat-na1-never-shown"
SESSION = "00Dsession!never-shown"
SECRETS = (PG_PASSWORD, REDIS_PASSWORD, TOKEN, SESSION)


def _pg(name: str, port: int | None = None) -> str:
    """A URL for database ``name`` carrying a password (trust auth ignores it; it must never print)."""
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgres@", f"postgres:{PG_PASSWORD}@", 1)
    if port is not None:
        base = base.rsplit(":", 1)[0] + f":{port}"
    return f"{base}/{name}"


@pytest.fixture(autouse=True)
def _operator_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Only the settings each case gives; APIs on closed ports with credentials that must not leak."""
    for key in list(os.environ):
        if key.startswith("CLOSEDLOOP_") and not key.startswith("CLOSEDLOOP_TEST_"):
            monkeypatch.delenv(key)
    closed = free_port()
    for key, value in {
        "CLOSEDLOOP_MAPPINGS": str(ROOT / "mappings"),
        "CLOSEDLOOP_HUBSPOT_BASE_URL": f"http://127.0.0.1:{closed}",
        "CLOSEDLOOP_HUBSPOT_ACCESS_TOKEN": TOKEN,
        "CLOSEDLOOP_SALESFORCE_INSTANCE_URL": f"https://127.0.0.1:{closed}",
        "CLOSEDLOOP_SALESFORCE_SESSION_ID": SESSION,
        "CLOSEDLOOP_RETRY_MAX_ATTEMPTS": "2",
        "CLOSEDLOOP_RETRY_BASE_SECONDS": "0.01",
        "CLOSEDLOOP_LOG_LEVEL": "CRITICAL",
    }.items():
        monkeypatch.setenv(key, value)
    operations.configure(None)
    yield
    operations.configure(None)


def _assert_operator_error(output: str, exit_code: int, *expected: str) -> str:
    """Non-zero exit, one ``error:`` message of at most a few lines naming the fix, nothing secret."""
    assert exit_code != 0, output
    assert "Traceback" not in output, output
    for secret in SECRETS:
        assert secret not in output, output
    lines = output.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("error: ")), None)
    assert start is not None, output
    message = "\n".join(lines[start:])
    assert len(lines) - start <= 3, output
    for text in expected:
        assert text in message, output
    return message


# -- the store: missing, not migrated, unreachable, unwritable -------------------------------------

STORE_COMMANDS = [
    ["status"],
    ["status", "--json"],
    ["errors"],
    ["errors", "dismiss", "--id", "1"],
    ["replay"],
    ["funnel", "report"],
    ["funnel", "plan", "--revenue", "100000", "--deal-size", "5000"],
]


@pytest.fixture(
    params=[
        "sqlite-missing",
        "sqlite-unmigrated",
        "sqlite-unwritable",
        "pg-missing",
        "pg-unmigrated",
        "pg-unreachable",
    ]
)
def broken_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(database URL, what the message must say) for each way a store can be wrong."""
    kind = request.param
    if kind == "sqlite-missing":
        yield f"sqlite:///{tmp_path / 'nothing-here.db'}", "closedloop db upgrade"
    elif kind == "sqlite-unmigrated":
        (tmp_path / "empty.db").write_bytes(b"")
        yield f"sqlite:///{tmp_path / 'empty.db'}", "closedloop db upgrade"
    elif kind == "sqlite-unwritable":
        (tmp_path / "a-file").write_text("not a folder")
        yield f"sqlite:///{tmp_path / 'a-file' / 'cl.db'}", str(tmp_path / "a-file")
    elif kind == "pg-missing":
        yield _pg("closedloop_never_created"), "does not exist"
    elif kind == "pg-unreachable":
        yield _pg("closedloop", port=free_port()), "cannot reach the database"
    else:
        name, _url = _new_pg_database()
        try:
            yield _pg(name), "closedloop db upgrade"
        finally:
            _drop_pg_database(name)


@pytest.mark.parametrize("command", STORE_COMMANDS, ids=" ".join)
def test_store_mistakes_name_the_fix(
    monkeypatch: pytest.MonkeyPatch, broken_store: tuple[str, str], command: list[str]
) -> None:
    url, expected = broken_store
    monkeypatch.setenv("CLOSEDLOOP_DATABASE_URL", url)
    result = runner.invoke(app_(), command)
    message = _assert_operator_error(result.output, result.exit_code, expected)
    if url.startswith("postgresql"):
        assert "postgres:***@" in message  # the database is named, its password masked


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_store_on_an_older_schema_asks_for_db_upgrade(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, backend: str
) -> None:
    name = None
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
    else:
        name, _admin = _new_pg_database()
        url = _pg(name)
    try:
        upgrade(url, "0001")  # the schema before the roles migration
        monkeypatch.setenv("CLOSEDLOOP_DATABASE_URL", url)
        for command in (["errors"], ["errors", "--status", "all"]):
            operations.configure(None)
            result = runner.invoke(app_(), command)
            _assert_operator_error(result.output, result.exit_code, "older schema", "closedloop db upgrade")
    finally:
        if name is not None:
            _drop_pg_database(name)


def test_backfill_on_an_unreachable_or_unwritable_store(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "a-file").write_text("")
    for url, expected in [
        (_pg("closedloop", port=free_port()), "cannot reach the database"),
        (_pg("closedloop_never_created"), "does not exist"),
        (f"sqlite:///{tmp_path / 'a-file' / 'cl.db'}", "a-file"),
    ]:
        monkeypatch.setenv("CLOSEDLOOP_DATABASE_URL", url)
        operations.configure(None)
        result = runner.invoke(app_(), ["backfill"])
        _assert_operator_error(result.output, result.exit_code, expected)


def test_db_upgrade_to_an_unknown_revision(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CLOSEDLOOP_DATABASE_URL", f"sqlite:///{tmp_path / 'cl.db'}")
    result = runner.invoke(app_(), ["db", "upgrade", "banana"])
    _assert_operator_error(result.output, result.exit_code, "'banana'", "closedloop db upgrade")
    assert runner.invoke(app_(), ["db", "upgrade"]).exit_code == 0


# -- Redis, the APIs, options, output paths ---------------------------------------------------------


@pytest.fixture
def migrated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'cl.db'}"
    upgrade(url)
    monkeypatch.setenv("CLOSEDLOOP_DATABASE_URL", url)
    return url


def test_status_with_redis_closed(monkeypatch: pytest.MonkeyPatch, migrated: str) -> None:
    monkeypatch.setenv("CLOSEDLOOP_REDIS_URL", f"redis://:{REDIS_PASSWORD}@127.0.0.1:{free_port()}/0")
    result = runner.invoke(app_(), ["status"])
    _assert_operator_error(result.output, result.exit_code, "cannot reach Redis", ":***@127.0.0.1")


def test_setup_dry_run_with_the_apis_unreachable(migrated: str) -> None:
    result = runner.invoke(app_(), ["setup", "--dry-run"])
    _assert_operator_error(result.output, result.exit_code, "unreachable", "CLOSEDLOOP_")


def test_sync_once_fails_when_both_apis_are_unreachable(migrated: str) -> None:
    result = runner.invoke(app_(), ["sync", "--once"])
    _assert_operator_error(result.output, result.exit_code, "HubSpot and Salesforce could not be polled")


def test_web_without_salesforce_credentials(monkeypatch: pytest.MonkeyPatch, migrated: str) -> None:
    monkeypatch.delenv("CLOSEDLOOP_SALESFORCE_INSTANCE_URL")
    monkeypatch.delenv("CLOSEDLOOP_SALESFORCE_SESSION_ID")
    result = runner.invoke(app_(), ["web", "--port", str(free_port())])
    _assert_operator_error(result.output, result.exit_code, "no Salesforce credentials", "SALESFORCE")


@pytest.mark.parametrize(
    "options",
    [
        ["--deal-size", "0"],
        ["--deal-size", "-5"],
        ["--deal-size", "inf"],
        ["--deal-size", "5000", "--visit-to-lead", "2"],
    ],
)
def test_funnel_plan_refuses_impossible_numbers(migrated: str, options: list[str]) -> None:
    result = runner.invoke(app_(), ["funnel", "plan", "--benchmarks", "--revenue", "100000", *options])
    assert result.exit_code == 2, result.output  # a usage error, like any bad option
    assert "Traceback" not in result.output and "Invalid value for '--" in result.output


@pytest.mark.parametrize("fmt", ["table", "json"])
def test_funnel_report_to_an_unwritable_path(migrated: str, tmp_path: Path, fmt: str) -> None:
    (tmp_path / "a-file").write_text("")
    target = tmp_path / "a-file" / "report.out"
    result = runner.invoke(app_(), ["funnel", "report", "--format", fmt, "--output", str(target)])
    _assert_operator_error(result.output, result.exit_code, "a-file", "choose a path")


def test_a_broken_mapping_at_start_up_shows_file_line_col(
    monkeypatch: pytest.MonkeyPatch, migrated: str, tmp_path: Path
) -> None:
    folder = tmp_path / "mappings"
    folder.mkdir()
    text = (ROOT / "mappings" / "default.yaml").read_text(encoding="utf-8")
    (folder / "default.yaml").write_text(text.replace("sync: two_way", "sync: two_wya", 1))
    monkeypatch.setenv("CLOSEDLOOP_MAPPINGS", str(folder))
    line = next(i for i, row in enumerate(text.splitlines(), 1) if "sync: two_way" in row)
    for command in (["sync", "--once"], ["setup", "--dry-run"], ["replay"]):
        operations.configure(None)
        result = runner.invoke(app_(), command)
        assert result.exit_code == 1 and "Traceback" not in result.output
        lines = result.output.splitlines()
        assert lines[0] == "error: the mapping is invalid:", result.output
        assert lines[1].startswith(f"  {folder / 'default.yaml'}:{line}:"), result.output
        assert "closedloop mappings lint" in lines[-1]


# -- the long-running commands, as real processes ---------------------------------------------------


def _closedloop(
    args: list[str], env: dict[str, str], cwd: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workers.cli", *args],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_run_with_redis_closed_and_with_a_broken_mapping(migrated: str, tmp_path: Path) -> None:
    closed = {"CLOSEDLOOP_REDIS_URL": f"redis://:{REDIS_PASSWORD}@127.0.0.1:{free_port()}/0"}
    result = _closedloop(["run", "--port", str(free_port())], closed, tmp_path)
    _assert_operator_error(result.stderr, result.returncode, "cannot reach Redis", "CLOSEDLOOP_REDIS_URL")
    (tmp_path / "broken.yaml").write_text("version: 1\nstages: nope\n")
    broken = {"CLOSEDLOOP_MAPPINGS": str(tmp_path / "broken.yaml")}
    result = _closedloop(["run", "--port", str(free_port())], broken, tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"  {tmp_path / 'broken.yaml'}:" in result.stderr


def test_beat_creates_its_var_folder_or_says_why_it_cannot(redis_url: str, tmp_path: Path) -> None:
    env = {"CLOSEDLOOP_REDIS_URL": redis_url}
    where = tmp_path / "fresh"
    where.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "workers.cli", "beat"],
        cwd=where,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not list(where.glob("var/celerybeat-schedule*")):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "beat wrote no schedule"
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    (blocked / "var").write_text("a file where the folder should be")
    result = _closedloop(["beat"], {"CLOSEDLOOP_REDIS_URL": redis_url}, blocked)
    _assert_operator_error(result.stderr, result.returncode, str(blocked / "var"))


def app_():  # type: ignore[no-untyped-def]
    from workers.cli import app

    return app
