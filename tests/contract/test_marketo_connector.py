"""The Marketo MA connector (sync.connectors.marketo_ma) against the Marketo sandbox, through marketorestpython.

Vendor behaviour the tests rely on, as Adobe documents it (Experience League, Marketo Developer):
- "Activities" (.../rest/lead-database/activities): Get Paging Token with ``sinceDatetime``, then
  Get Lead Activities with ``nextPageToken``; pages of up to 300 with ``moreResult``; an empty
  page still returns a token; ``leadIds`` filters up to 30 leads; activity type IDs come from
  ``activities/types.json``; Change Data Value / Change Score carry "New Value" / "Old Value".
- "Leads" (.../rest/lead-database/leads): Sync Leads (createOrUpdate / updateOnly, up to 300
  records, ``lookupField``) answers one result per record, ``skipped`` with ``reasons``; Create
  Lead Fields creates custom fields.
- "Error Codes" (.../rest/error-codes): 606 "Max rate limit exceeded" in an HTTP 200 body; 1004
  "Lead not found"; 1006 "Field not found".
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sandboxes.common import SimClock
from sandboxes.marketo import FLOW_SOURCE
from sync.config import Settings
from sync.connectors.contract import MA, InboxItem, MarketingConnector
from sync.connectors.errors import RetryPolicy
from sync.connectors.incremental import CursorState
from sync.connectors.marketo_ma import ACTIVITIES_STREAM, LEAD, MarketoMarketing, open_edge, window_limiter
from sync.connectors.ratelimit import BudgetExhausted, ConcurrencyGate, make_storage
from sync.identity import RecordRef
from sync.mapping import Mapping, load_mapping
from tests.contract.marketo_fixtures import MarketoEnv, start_marketo

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
MAPPING = Path(__file__).parents[2] / "mappings" / "marketo-salesforce.yaml"
FAST = RetryPolicy(max_attempts=6, base_seconds=0.05, max_seconds=1.0)


@pytest.fixture
def mapping() -> Mapping:
    return load_mapping(MAPPING)


@pytest.fixture
def marketo_factory() -> Iterator[Callable[..., MarketoEnv]]:
    envs: list[MarketoEnv] = []

    def make(**kwargs: Any) -> MarketoEnv:
        kwargs.setdefault("clock", SimClock(start=START, speed=0.0))
        kwargs.setdefault("window_limit", 100_000)
        env = start_marketo(**kwargs)
        envs.append(env)
        return env

    yield make
    for env in envs:
        env.stop()


def _connector(
    env: MarketoEnv, mapping: Mapping, policy: RetryPolicy = FAST, storage: Any = None, **settings: Any
) -> MarketoMarketing:
    values: dict[str, Any] = {
        "ma": "marketo",
        "marketo_base_url": env.url,
        "marketo_client_id": env.sandbox.client_id,
        "marketo_client_secret": env.sandbox.client_secret,
        "marketo_munchkin_id": env.sandbox.munchkin_id,
        "marketo_window_limit": 100_000,
    } | settings
    edge = open_edge(Settings(**values), policy, storage or make_storage(None))
    return MarketoMarketing(edge, mapping)


def _provisioned(env: MarketoEnv, mapping: Mapping) -> MarketoMarketing:
    connector = _connector(env, mapping)
    report = connector.provision(mapping, dry_run=False)
    assert not report.problems and not report.missing, report
    return connector


def test_is_a_marketing_connector(marketo_factory: Callable[..., MarketoEnv], mapping: Mapping) -> None:
    connector = _connector(marketo_factory(), mapping)
    assert isinstance(connector, MarketingConnector)
    assert connector.profile.person_objects == (LEAD,)


def test_provision_creates_the_closed_loop_fields_once(
    marketo_factory: Callable[..., MarketoEnv], mapping: Mapping
) -> None:
    env = marketo_factory()
    connector = _connector(env, mapping)
    planned = connector.provision(mapping, dry_run=True)
    assert "Marketo: would create lead field closedloop_id" in planned.created
    assert "closedloop_id" not in {f.name for f in connector.edge.describe()}  # dry run wrote nothing
    done = connector.provision(mapping, dry_run=False)
    names = {line.rsplit(" ", 1)[-1] for line in done.created}
    assert {"closedloop_id", "closedloop_stage", "closedloop_amount", "closedloop_sla_breach"} <= names
    fields = {f.name: f.data_type for f in connector.edge.describe()}
    assert fields["closedloop_amount"] == "currency" and fields["closedloop_close_date"] == "date"
    again = connector.provision(mapping, dry_run=False)
    assert (again.created, again.missing, again.problems) == ([], [], [])


def test_provision_flags_a_common_id_field_that_cannot_be_a_lookup_field(
    marketo_factory: Callable[..., MarketoEnv], mapping: Mapping
) -> None:
    env = marketo_factory()
    env.sandbox.add_field("closedloop_id", "Closedloop ID", "boolean")
    report = _connector(env, mapping).provision(mapping, dry_run=False)
    assert any("closedloop_id" in p and "boolean" in p for p in report.problems)


def test_poll_pages_resumes_from_the_saved_token_and_idles_in_one_call(
    marketo_factory: Callable[..., MarketoEnv], mapping: Mapping
) -> None:
    env = marketo_factory()
    sandbox = env.sandbox
    connector = _provisioned(env, mapping)
    ids = [sandbox.create_lead({"email": f"p{i}@example.com", "leadScore": 10}) for i in range(650)]

    first = connector.poll({}, timedelta(0))
    assert sorted(int(c.records[0].record_id) for c in first.candidates) == ids  # > 2 pages of 300
    assert {c.email for c in first.candidates} == {f"p{i}@example.com" for i in range(650)}
    cursor = first.cursors[ACTIVITIES_STREAM]
    assert cursor.state["token"] and cursor.watermark == START

    sandbox.clock.advance(timedelta(minutes=5))
    sandbox.change_score(ids[7], 45, "Demo request")
    sandbox.update_lead(ids[9], {"leadStatus": "MQL"}, source=FLOW_SOURCE)
    resumed = connector.poll({ACTIVITIES_STREAM: cursor}, timedelta(0))
    assert sorted(int(c.records[0].record_id) for c in resumed.candidates) == [ids[7], ids[9]]
    after = resumed.cursors[ACTIVITIES_STREAM]
    assert after.watermark == START + timedelta(minutes=5)

    sandbox.counter.reset()
    idle = connector.poll({ACTIVITIES_STREAM: after}, timedelta(0))
    assert idle.candidates == []
    assert sandbox.counter.total() == 1  # Get Lead Activities only
    assert idle.cursors[ACTIVITIES_STREAM].watermark == after.watermark


def test_poll_without_a_token_starts_behind_a_backfill_watermark(
    marketo_factory: Callable[..., MarketoEnv], mapping: Mapping
) -> None:
    env = marketo_factory()
    sandbox = env.sandbox
    connector = _provisioned(env, mapping)
    old = sandbox.create_lead({"email": "old@example.com"})
    sandbox.clock.advance(timedelta(hours=1))
    new = sandbox.create_lead({"email": "new@example.com"})
    newest = connector.newest_changes()[ACTIVITIES_STREAM]
    assert newest == START + timedelta(hours=1)
    batch = connector.poll({ACTIVITIES_STREAM: CursorState(newest)}, timedelta(minutes=2))
    assert [c.records[0].record_id for c in batch.candidates] == [str(new)]
    assert str(old) not in {c.records[0].record_id for c in batch.candidates}


def test_create_is_idempotent_and_update_reports_each_refused_record(
    marketo_factory: Callable[..., MarketoEnv], mapping: Mapping
) -> None:
    env = marketo_factory()
    sandbox = env.sandbox
    connector = _provisioned(env, mapping)
    rows = {f"cl-{i}": {"email": f"p{i}@example.com", "closedloop_stage": "sql"} for i in range(320)}
    sandbox.counter.reset()
    created, errors = connector.create("closedloop_id", rows)
    assert errors == [] and len(created) == 320
    assert sandbox.counter.total("/rest/v1/leads.json", method="POST") == 2  # 300 + 20
    again, errors = connector.create("closedloop_id", rows)
    assert errors == [] and again == created
    assert sandbox.lead_count() == 320

    lead = created["cl-5"]
    failures = connector.update(
        {
            lead: {"closedloop_amount": "1500000.00", "closedloop_outcome": "won"},
            created["cl-6"]: {"closedloop_amount": "not a number"},
            "999999": {"closedloop_stage": "won"},
        }
    )
    assert {(e.key, e.code) for e in failures} == {(created["cl-6"], "1001"), ("999999", "1004")}
    assert sandbox.lead_count() == 320  # updateOnly: the unknown ID was not created
    got = sandbox.get_lead(int(lead)) or {}
    assert (got.get("closedloop_amount"), got.get("closedloop_outcome")) == (1500000.0, "won")


def test_read_people_by_link_and_by_common_id_with_the_program_name(
    marketo_factory: Callable[..., MarketoEnv], mapping: Mapping
) -> None:
    env = marketo_factory()
    sandbox = env.sandbox
    connector = _provisioned(env, mapping)
    program = sandbox.add_program("webinar-q3", "Event", "Webinar")
    linked = sandbox.create_lead({"email": "a@example.com", "acquisitionProgramId": program, "leadScore": 60})
    sandbox.create_lead({"email": "b@example.com", "closedloop_id": "cl-b"})
    links = {"cl-a": [RecordRef(MA, LEAD, str(linked))]}
    states = connector.read_people(["cl-a", "cl-b", "cl-none"], links)
    assert set(states) == {"cl-a", "cl-b"}
    a = states["cl-a"]
    assert a.primary_id == str(linked) and a.records[LEAD]["acquisitionProgramName"] == "webinar-q3"
    assert a.records[LEAD]["leadScore"] == 60 and a.updated_at == START
    assert states["cl-b"].records[LEAD]["email"] == "b@example.com"


def test_a_606_in_a_200_body_is_waited_out(
    marketo_factory: Callable[..., MarketoEnv], mapping: Mapping
) -> None:
    # The sandbox's window (3 calls a second) is tighter than the one we were told to keep: Marketo
    # answers 606 inside an HTTP 200, the edge waits and resends, every record still goes through.
    env = marketo_factory(window_limit=3, window_seconds=1.0)
    connector = _connector(env, mapping)
    connector.edge.describe()
    rows: dict[str, dict[str, Any]] = {f"p{i}@example.com": {"leadStatus": "New"} for i in range(3)}
    for _ in range(3):
        created, errors = connector.create("email", rows)
        assert errors == [] and len(created) == 3
    assert env.sandbox.limits.rejected["606"] >= 1
    assert env.sandbox.lead_count() == 3


def test_the_shared_window_keeps_calls_under_marketos_limit(
    marketo_factory: Callable[..., MarketoEnv], mapping: Mapping
) -> None:
    env = marketo_factory(window_limit=4, window_seconds=1.0)
    connector = _connector(env, mapping, marketo_window_limit=3, marketo_window_seconds=1)
    for _ in range(8):
        connector.edge.leads_by("email", ["nobody@example.com"], ["id"])
    assert env.sandbox.limits.rejected["606"] == 0


def test_history_gives_snapshots_with_the_source_times(
    marketo_factory: Callable[..., MarketoEnv], mapping: Mapping
) -> None:
    env = marketo_factory()
    sandbox = env.sandbox
    connector = _provisioned(env, mapping)
    lead = sandbox.create_lead({"email": "h@example.com", "leadScore": 20, "leadStatus": "New"})
    others = [sandbox.create_lead({"email": f"o{i}@example.com"}) for i in range(40)]
    sandbox.clock.advance(timedelta(days=2))
    sandbox.change_score(lead, 35, "Demo request")
    sandbox.update_lead(lead, {"leadStatus": "MQL"}, source=FLOW_SOURCE)
    sandbox.clock.advance(timedelta(days=3))
    sandbox.update_lead(lead, {"leadStatus": "Recycled"})
    sandbox.update_lead(others[35], {"leadStatus": "MQL"})
    states = connector.read_people(["cl-h"], {"cl-h": [RecordRef(MA, LEAD, str(lead))]})
    events = connector.history(states)["cl-h"]
    seen = [(e.at - START, e.snapshot.get("leadScore"), e.snapshot.get("leadStatus")) for e in events]
    assert seen[:3] == [
        (timedelta(0), 20, "New"),
        (timedelta(days=2), 55, "MQL"),
        (timedelta(days=5), 55, "Recycled"),
    ]
    assert all(e.record_id == str(lead) and e.role == MA and e.object == LEAD for e in events)


def test_scan_lists_every_lead_page_by_page_and_resumes(
    marketo_factory: Callable[..., MarketoEnv], mapping: Mapping
) -> None:
    env = marketo_factory()
    sandbox = env.sandbox
    connector = _provisioned(env, mapping)
    ids = [sandbox.create_lead({"email": f"s{i}@example.com"}) for i in range(450)]
    pages = connector.scan("leads", {}, None, 300)
    first = next(pages)
    assert first.state["done"] is False and first.records > 0
    rest = list(connector.scan("leads", first.state, None, 300))  # resumed from the saved state
    seen = [int(c.records[0].record_id) for page in [first, *rest] for c in page.candidates]
    assert sorted(seen) == ids and rest[-1].state["done"] is True


def test_flow_step_webhooks_mean_changes_and_merges(
    marketo_factory: Callable[..., MarketoEnv], mapping: Mapping
) -> None:
    connector = _connector(marketo_factory(), mapping)
    meaning = connector.interpret(
        [
            InboxItem("lead", "1001", {"leadId": 1001}),
            InboxItem("lead", "1002", {"leadId": 1002, "mergedLeadIds": [1003, 1004]}),
        ]
    )
    assert meaning.changed == [RecordRef(MA, LEAD, "1001"), RecordRef(MA, LEAD, "1002")]
    assert meaning.merges == [
        (RecordRef(MA, LEAD, "1002"), [RecordRef(MA, LEAD, "1003"), RecordRef(MA, LEAD, "1004")])
    ]
    assert meaning.deletions == []


def test_every_worker_shares_one_window_and_the_day_count(
    marketo_factory: Callable[..., MarketoEnv], mapping: Mapping, redis_url: str
) -> None:
    # Two connectors stand for two worker processes: together they keep 4 calls a second, under
    # the sandbox's 5, and the day's count (what `closedloop status` shows) holds both.
    env = marketo_factory(window_limit=5, window_seconds=1.0)
    shared = {"marketo_window_limit": 4, "marketo_window_seconds": 1}
    workers = [_connector(env, mapping, storage=make_storage(redis_url), **shared) for _ in range(2)]

    def work(connector: MarketoMarketing) -> None:
        for _ in range(5):
            connector.edge.leads_by("email", ["nobody@example.com"], ["id"])

    threads = [threading.Thread(target=work, args=(c,)) for c in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert env.sandbox.limits.rejected["606"] == 0
    settings = Settings(ma="marketo", **shared)  # type: ignore[arg-type]
    rest = sum(
        int(r["count"]) for r in env.sandbox.counter.snapshot() if str(r["endpoint"]).startswith("/rest/")
    )
    assert rest >= 10  # identity calls are not counted by Marketo, nor by us
    assert window_limiter(settings, make_storage(redis_url)).used_today() == rest


def test_the_concurrency_gate_holds_across_workers_and_frees_dead_holders(redis_url: str) -> None:
    gate = ConcurrencyGate(make_storage(redis_url), limit=2, namespace="marketo-test", lease_seconds=1.0)
    other = ConcurrencyGate(make_storage(redis_url), limit=2, namespace="marketo-test", lease_seconds=1.0)
    inside, peak = [0], [0]
    lock = threading.Lock()

    def call(g: ConcurrencyGate) -> None:
        with g.held(timeout=30):
            with lock:
                inside[0] += 1
                peak[0] = max(peak[0], inside[0])
            time.sleep(0.05)
            with lock:
                inside[0] -= 1

    threads = [threading.Thread(target=call, args=(gate if i % 2 else other,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert peak[0] == 2
    # A worker that died holding both slots: they come back when the leases run out.
    gate._enter("dead-1", 1.0)
    gate._enter("dead-2", 1.0)
    with pytest.raises(BudgetExhausted), other.held(timeout=0.2):
        pass
    began = time.monotonic()
    with other.held(timeout=5):
        assert time.monotonic() - began < 2.0
