"""The Salesforce connector polls every stream in one Composite call, through simple-salesforce.

Salesforce documents Composite (``POST /services/data/vXX.X/composite``) as up to 25 subrequests,
at most 5 of them queries, counted as one call against the org's API allocation ("Composite",
REST API Developer Guide, Resources); a query result of more than one batch carries
``nextRecordsUrl`` and continues with ``queryMore`` ("Execute a SOQL Query", REST API Developer
Guide). The four polled streams therefore cost one call when nothing changed.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from simple_salesforce import Salesforce

from sandboxes.common import FaultPlan, FaultRule, ServerThread, SimClock
from sandboxes.salesforce import SalesforceSandbox, SandboxTLS
from sync.connectors.errors import RetryPolicy
from sync.connectors.incremental import CursorState
from sync.connectors.ratelimit import DailyAllocation
from sync.connectors.salesforce import SalesforceConnector
from sync.connectors.salesforce_sfa import STREAMS, SalesforceSales
from sync.identity import RecordRef
from sync.mapping import Mapping as SyncMapping
from sync.mapping import load_mapping

MAPPING = load_mapping(Path(__file__).parents[2] / "mappings" / "default.yaml")
START = datetime(2026, 9, 1, 9, 0, tzinfo=UTC)


@contextmanager
def connected(
    workdir: Path, mapping: SyncMapping, clock: SimClock | None = None
) -> Iterator[tuple[SalesforceSandbox, SalesforceSales]]:
    """A sandbox org over HTTPS and the real connector on it, built for ``mapping``."""
    tls = SandboxTLS.create(workdir / "tls")
    sandbox = SalesforceSandbox(clock=clock or SimClock(start=START))
    server = ServerThread(sandbox.app, ssl_certfile=tls.cert_file, ssl_keyfile=tls.key_file).start()
    sandbox.instance_url = server.url
    http = requests.Session()
    http.verify = tls.ca_file
    http.trust_env = False
    sf = Salesforce(instance_url=server.url, session_id=sandbox.session_id, session=http, version="59.0")
    edge = SalesforceConnector(sf, DailyAllocation(share=1.0), RetryPolicy(max_attempts=4, base_seconds=0.01))
    try:
        yield sandbox, SalesforceSales(edge, mapping)
    finally:
        gc.collect()
        http.close()
        server.stop()


@pytest.fixture
def org(tmp_path: Path) -> Iterator[tuple[SalesforceSandbox, SalesforceSales]]:
    with connected(tmp_path, MAPPING) as pair:
        yield pair


def _roundtrip(cursors: dict[str, CursorState]) -> dict[str, CursorState]:
    """Cursor state as the store keeps it: JSON, watermark apart."""
    saved = {
        k: (c.watermark.isoformat() if c.watermark else None, json.dumps(c.state)) for k, c in cursors.items()
    }
    return {
        k: CursorState(datetime.fromisoformat(w) if w else None, json.loads(state))
        for k, (w, state) in saved.items()
    }


def _lead(n: int, **extra: Any) -> dict[str, Any]:
    return {"LastName": f"Poll{n:05d}", "Company": "Acme", "Email": f"poll{n}@example.com", **extra}


def test_changes_then_idle_each_cost_one_composite_call_per_five_streams(org: Any) -> None:
    sandbox, connector = org
    for n in range(2_100):  # more than one query batch of 2,000
        sandbox.insert("Lead", _lead(n))
    sandbox.counter.reset()

    first = connector.poll({}, timedelta(0))
    emails = {c.email for c in first.candidates}
    assert len(emails) == 2_100
    composite = sandbox.counter.total("/services/data/v59.0/composite")
    more = sandbox.counter.total() - composite
    # Composite takes five queries per call: the four person streams plus the related objects the
    # default mapping names (Account, Event) make six streams, two calls; one queryMore for the rest.
    streams = connector.streams
    assert set(streams) == {*STREAMS, "Account", "Event"}
    assert (composite, more) == (2, 1)
    assert set(first.cursors) == set(streams)

    sandbox.counter.reset()
    idle = connector.poll(_roundtrip(first.cursors), timedelta(0))
    assert idle.candidates == [] and sandbox.counter.total() == 2

    lead_id = sandbox.records("Lead")[7]["Id"]
    sandbox.update("Lead", lead_id, {"Status": "Working - Contacted"})
    changed = connector.poll(_roundtrip(idle.cursors), timedelta(0))
    assert [ref.record_id for c in changed.candidates for ref in c.records] == [lead_id]


def test_a_failed_composite_call_is_retried_by_the_one_retry_policy(org: Any) -> None:
    sandbox, connector = org
    sandbox.insert("Lead", _lead(1))
    sandbox.faults.rules = FaultPlan(rules=[FaultRule(path_regex="/composite$", rate_5xx=1.0)]).rules
    calls: list[int] = []

    def heal(*_args: Any) -> None:
        calls.append(1)
        sandbox.faults.rules = []

    connector.edge._policy.wait_for = lambda attempt, error: (heal(), 0.0)[1]  # type: ignore[method-assign]
    batch = connector.poll({}, timedelta(0))
    assert len(batch.candidates) == 1 and calls == [1]
    statuses = sorted(
        row["status"] for row in sandbox.counter.snapshot() if row["endpoint"].endswith("/composite")
    )
    assert len(statuses) == 2 and statuses[0] == 200 and statuses[1] >= 500


def test_a_batch_of_people_and_their_history_costs_two_calls(org: Any) -> None:
    """200 people (some converted, with opportunities) and the history of their leads and opportunities:
    one Composite round for the person records, one for what they point to (contact roles,
    converted contacts, opportunities, LeadHistory, OpportunityHistory)."""
    sandbox, connector = org
    people: dict[str, list[RecordRef]] = {}
    for n in range(200):
        cid = f"CID{n:04d}"
        lead = sandbox.insert("Lead", _lead(n, Closedloop_Id__c=cid))
        if n % 10 == 0:
            sandbox.update("Lead", lead, {"Status": "Working - Contacted"})
            sandbox.convert_lead(lead)
        people[cid] = [RecordRef("sfa", "Lead", lead)]
    sandbox.counter.reset()

    states = connector.read_people(list(people), people)
    history = connector.history(states)

    # Related objects named by the mapping (Account, Event) add their queries to the second round,
    # which then takes two Composite calls (five queries each).
    assert sandbox.counter.total() == (3 if connector.related else 2)
    assert len(states) == 200
    converted = [s for s in states.values() if s.outcomes]
    assert len(converted) == 20 and all("Contact" in s.records for s in converted)
    worked = history[next(cid for cid, s in states.items() if s.outcomes)]
    assert {e.object for e in worked} == {
        "Lead",
        "Contact",
        "Opportunity",
        "Account",
    }  # converted: an account
    statuses = [e.snapshot.get("Status") for e in worked if e.object == "Lead"]
    assert "Working - Contacted" in statuses  # from LeadHistory, read in the same two calls


def test_owner_names_read_users_200_ids_per_query(org: Any) -> None:
    """``SELECT Id, Name FROM User WHERE Id IN (...)``: User.Name is the full name (SOAP API Developer
    Guide, User object); unknown ids are left out; 201 ids take two queries."""
    sandbox, connector = org
    rep = sandbox.add_user("花子", "佐藤", department="Field sales")
    other = sandbox.add_user("Ken", "Baker")
    unknown = [f"005{n:015d}" for n in range(199)]
    sandbox.counter.reset()

    names = connector.owner_names([rep, other, *unknown])

    assert names == {rep: "花子 佐藤", other: "Ken Baker"}
    assert sandbox.counter.total() == 2
