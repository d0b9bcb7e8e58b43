"""Operator commands with Marketo as the marketing tool, against the sandboxes over HTTP.

`closedloop setup` creates the Marketo lead fields through Create Lead Fields, `sync --once` hands
an MQL lead to Salesforce and writes the common ID back onto the lead, and `status` reports the
Marketo calls every worker counted against the daily share (through Redis, no extra API call).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sandboxes.server import Sandboxes, start_sandboxes
from sync import operations
from sync.store.db import upgrade

pytestmark = pytest.mark.integration
runner = CliRunner()
MAPPING = Path(__file__).parents[2] / "mappings" / "marketo-salesforce.yaml"


@pytest.fixture
def boxes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_url: str) -> Iterator[Sandboxes]:
    sandboxes = start_sandboxes(tmp_path / "sandbox", marketo=True)
    db = f"sqlite:///{tmp_path / 'cl.db'}"
    upgrade(db)
    env = {
        **sandboxes.env(),
        "CLOSEDLOOP_DATABASE_URL": db,
        "CLOSEDLOOP_MAPPINGS": str(MAPPING),
        "CLOSEDLOOP_MA": "marketo",
        "CLOSEDLOOP_REDIS_URL": redis_url,
        "CLOSEDLOOP_RETRY_BASE_SECONDS": "0.01",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    operations.configure(None)
    yield sandboxes
    operations.configure(None)
    sandboxes.stop()


def _app():  # type: ignore[no-untyped-def]
    from workers.cli import app

    return app


def test_setup_sync_once_and_status_with_marketo(boxes: Sandboxes) -> None:
    marketo = boxes.marketo
    assert marketo is not None
    dry = runner.invoke(_app(), ["setup", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "Marketo: would create lead field closedloop_id" in dry.output
    first = runner.invoke(_app(), ["setup"])
    assert first.exit_code == 0, first.output
    assert "Marketo: created lead field closedloop_loss_reason" in first.output
    again = runner.invoke(_app(), ["setup"])
    assert again.exit_code == 0 and "everything Closedloop needs is in place" in again.output

    hot = marketo.create_lead({"email": "Hot.Lead@Example.com", "lastName": "O'Hara", "leadScore": 80})
    marketo.create_lead({"email": "cold@example.com", "lastName": "Cold", "leadScore": 10})
    result = runner.invoke(_app(), ["sync", "--once"])
    assert result.exit_code == 0, result.output
    leads = boxes.salesforce.query("SELECT Id, Email, LastName, Closedloop_Id__c FROM Lead")
    assert [(lead["Email"], lead["LastName"]) for lead in leads] == [("hot.lead@example.com", "O'Hara")]
    lead = marketo.get_lead(hot) or {}
    assert lead.get("closedloop_id") == leads[0]["Closedloop_Id__c"]
    assert lead.get("closedloop_stage") == "mql"

    status = runner.invoke(_app(), ["status", "--json"])
    assert status.exit_code == 0, status.output
    data = json.loads(status.stdout)
    assert "ma:activities" in {s["stream"] for s in data["streams"]}
    rest = sum(int(r["count"]) for r in marketo.counter.snapshot() if str(r["endpoint"]).startswith("/rest/"))
    budget = data["budget"]["marketo"]
    assert budget["calls_last_24h"] == rest > 0
    assert (budget["window_limit"], budget["window_seconds"], budget["daily_share_calls"]) == (
        100,
        20,
        50_000,
    )
    assert boxes.hubspot.counter.total() == 0
    plain = runner.invoke(_app(), ["status"])
    assert plain.exit_code == 0, plain.output
    assert f"Marketo calls in the last 24 h: {rest:,} of our share of 50,000" in plain.output
