"""Operator commands against the sandboxes over HTTP: setup, sync --once, status, errors, replay, sandbox serve."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from typer.testing import CliRunner

from sandboxes.server import Sandboxes, start_sandboxes
from sync import operations
from sync.store.db import Store, upgrade
from sync.store.models import SyncError
from sync.timeutil import utcnow

pytestmark = pytest.mark.integration
runner = CliRunner()
ROOT = Path(__file__).parents[2]


@pytest.fixture
def boxes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandboxes]:
    sandboxes = start_sandboxes(tmp_path / "sandbox")
    db = f"sqlite:///{tmp_path / 'cl.db'}"
    upgrade(db)
    for key, value in {
        **sandboxes.env(),
        "CLOSEDLOOP_DATABASE_URL": db,
        "CLOSEDLOOP_MAPPINGS": str(ROOT / "mappings"),
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("CLOSEDLOOP_RETRY_BASE_SECONDS", "0.01")
    operations.configure(None)
    yield sandboxes
    operations.configure(None)
    sandboxes.stop()


def test_setup_is_idempotent_and_dry_run_writes_nothing(boxes: Sandboxes) -> None:
    dry = runner.invoke(app_(), ["setup", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would create contact property closedloop_id" in dry.output
    assert boxes.hubspot.counter.total("/crm/v3/properties/contacts", method="POST") == 0
    first = runner.invoke(app_(), ["setup"])
    assert first.exit_code == 0, first.output
    assert "created contact property closedloop_loss_reason" in first.output
    again = runner.invoke(app_(), ["setup"])
    assert again.exit_code == 0 and "everything Closedloop needs is in place" in again.output


def test_sync_once_hands_over_mqls_and_status_reports_streams(boxes: Sandboxes) -> None:
    assert runner.invoke(app_(), ["setup"]).exit_code == 0
    mql = boxes.hubspot.seed_contact(
        {"email": "Hot.Lead@Example.com", "lastname": "O'Hara", "company": "Macy's", "hubspotscore": "80"}
    )
    boxes.hubspot.seed_contact({"email": "cold@example.com", "lastname": "Cold", "hubspotscore": "10"})
    result = runner.invoke(app_(), ["sync", "--once"])
    assert result.exit_code == 0, result.output
    leads = boxes.salesforce.query("SELECT Id, Email, Company, LastName, Closedloop_Id__c FROM Lead")
    assert [(lead["Email"], lead["Company"], lead["LastName"]) for lead in leads] == [
        ("hot.lead@example.com", "Macy's", "O'Hara")
    ]
    contact = boxes.hubspot.get_contact(mql)
    assert contact is not None and contact["closedloop_id"] == leads[0]["Closedloop_Id__c"]
    status = runner.invoke(app_(), ["status", "--json"])
    assert status.exit_code == 0, status.output
    streams = {s["stream"] for s in json.loads(status.stdout)["streams"]}
    assert {"ma:contacts", "sfa:Lead"} <= streams


def test_sync_once_names_the_system_it_could_not_poll(
    boxes: Sandboxes, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sandboxes.common import free_port

    boxes.hubspot.seed_contact({"email": "hot@example.com", "lastname": "Hot", "hubspotscore": "80"})
    monkeypatch.setenv("CLOSEDLOOP_HUBSPOT_BASE_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("CLOSEDLOOP_RETRY_MAX_ATTEMPTS", "2")
    operations.configure(None)
    result = runner.invoke(app_(), ["sync", "--once"])
    assert result.exit_code == 1, result.output
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert error.startswith("error: HubSpot could not be polled") and "Salesforce" not in error
    assert "Traceback" not in result.output and boxes.hubspot.token not in result.output
    status = json.loads(runner.invoke(app_(), ["status", "--json"]).stdout)
    polled = {s["stream"] for s in status["streams"] if s["last_success"]}
    assert "sfa:Lead" in polled and "ma:contacts" not in polled


def test_errors_replay_and_dismiss(boxes: Sandboxes, tmp_path: Path) -> None:
    store = Store(os.environ["CLOSEDLOOP_DATABASE_URL"])
    now = utcnow()
    with store.session() as session:
        for i, category in enumerate(["validation", "validation", "transient"]):
            session.add(
                SyncError(
                    common_id=f"01TEST{i}",
                    role="sfa",
                    connector="salesforce",
                    object_type="Lead",
                    operation="write",
                    category=category,
                    code="REQUIRED_FIELD_MISSING",
                    message=f"Required fields are missing: [Company] #{i}",
                    payload={},
                    status="open",
                    attempts=1,
                    created_at=now,
                    last_attempt_at=now,
                )
            )
    listed = runner.invoke(app_(), ["errors"])
    assert listed.exit_code == 0
    assert "validation: 2" in listed.output and "transient: 1" in listed.output
    dismissed = runner.invoke(app_(), ["errors", "dismiss", "--category", "validation"])
    assert "dismissed 2" in dismissed.output
    replayed = runner.invoke(app_(), ["replay", "--category", "transient"])
    assert replayed.exit_code == 0 and "retried 1" in replayed.output
    with store.session() as session:
        statuses = sorted(e.status for e in session.query(SyncError))
    # The transient one was replayed; its person no longer exists anywhere, so the error resolves.
    assert statuses == ["dismissed", "dismissed", "resolved"]


def test_sandbox_serve_prints_connection_json_first(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "workers.cli", "sandbox", "serve", "--workdir", str(tmp_path / "sb")],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        assert info["hubspot_url"].startswith("http://127.0.0.1:")
        assert info["salesforce_url"].startswith("https://")
        assert Path(info["ca_file"]).is_file()
        assert info["hubspot_token"] and info["salesforce_session_id"]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0


def test_two_sandboxes_in_one_folder_keep_their_own_ca(tmp_path: Path) -> None:
    """The default ``sandbox serve`` twice in one folder: absolute CA paths, and each CA still valid."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "workers.cli", "sandbox", "serve"],
            cwd=tmp_path,  # the default --workdir is relative: var/sandbox in this folder
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        infos = []
        for proc in procs:
            assert proc.stdout is not None
            infos.append(json.loads(proc.stdout.readline()))
        first, second = infos
        for info in infos:
            ca_file = Path(info["ca_file"])
            assert ca_file.is_absolute() and ca_file.is_file(), info["ca_file"]
            assert ca_file.is_relative_to(tmp_path / "var" / "sandbox")
        assert first["ca_file"] != second["ca_file"]
        # The first sandbox's clients, trusting only the first CA, still connect after the second started.
        for info in (first, second):
            response = requests.get(
                f"{info['salesforce_url']}/services/data", verify=info["ca_file"], timeout=10
            )
            assert response.status_code == 200
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(f"{first['salesforce_url']}/services/data", verify=second["ca_file"], timeout=10)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            assert proc.wait(timeout=20) == 0
    assert not Path(first["ca_file"]).exists()  # each removes its own TLS folder when it stops


def app_():  # type: ignore[no-untyped-def]
    from workers.cli import app

    return app
