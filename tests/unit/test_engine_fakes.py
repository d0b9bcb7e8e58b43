"""The engine, poller and stage replay against in-memory connectors and a real SQLite store.

The fakes (:mod:`tests.fakes`) hold the people; the store, identity map, engine and poller are the
real ones. Every test runs in milliseconds, so the core's rules are pinned without emulators.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from sync.connectors.contract import MA, SFA, HistoryEvent
from sync.engine import Engine, SyncResult
from sync.facts import Profiles
from sync.mapping import Mapping, load_mapping
from sync.poller import Poller
from sync.replay import replay
from sync.store.db import Store
from sync.store.models import Cursor, FieldState, Person, RecordLink, SyncError, Transition
from sync.timeutil import parse_timestamp
from tests.fakes import FakeClock, FakeMarketing, FakeSales

ROOT = Path(__file__).parents[2]
OVERLAP = timedelta(minutes=2)


@dataclass
class World:
    store: Store
    mapping: Mapping
    clock: FakeClock
    ma: FakeMarketing
    sfa: FakeSales
    engine: Engine
    poller: Poller

    def cycle(self) -> SyncResult:
        """One polling cycle of both roles, then one engine call for everyone who changed."""
        ids = list(dict.fromkeys(self.poller.poll("ma") + self.poller.poll("sfa")))
        return self.engine.sync_people(ids)

    def settle(self, limit: int = 5) -> int:
        """Cycles until one writes nothing (our own writes come back as changes once); returns cycles."""
        for count in range(1, limit + 1):
            result = self.cycle()
            if result.ma_writes == result.sfa_writes == result.leads_created == result.ma_created == 0:
                return count
        raise AssertionError(f"no quiet cycle within {limit}")

    def transitions(self, cid: str) -> list[Transition]:
        with self.store.session() as session:
            rows = session.scalars(
                select(Transition).where(Transition.common_id == cid).order_by(Transition.id)
            ).all()
            session.expunge_all()
            return list(rows)

    def person(self, cid: str) -> Person:
        with self.store.session() as session:
            person = session.get(Person, cid)
            assert person is not None
            session.expunge(person)
            return person


@pytest.fixture
def world(sqlite_url: str) -> Iterator[World]:
    store = Store(sqlite_url)
    mapping = load_mapping(ROOT / "mappings")
    clock = FakeClock()
    ma, sfa = FakeMarketing(clock=clock), FakeSales(clock=clock)
    yield World(
        store, mapping, clock, ma, sfa, Engine(store, mapping, ma, sfa), Poller(store, ma, sfa, OVERLAP)
    )
    store.dispose()


def mql_contact(world: World, cid: str, n: int = 1, **extra: object) -> str:
    """A marketing contact past the handover (score 60), carrying its common ID."""
    fields = {
        "email": f"person{n}@example.com",
        "firstname": f"First{n}",
        "lastname": f"Last{n}",
        "company": "Acme",
        "hubspotscore": "60",
        "closedloop_id": cid,
        "createdate": "2026-01-15T10:00:00.000Z",
        "hs_lifecyclestage_marketingqualifiedlead_date": "2026-02-01T12:00:00.000Z",
        **extra,
    }
    return world.ma.add_person(**fields)


# ---------------------------------------------------------------------------------------- handover


def test_handover_creates_the_sales_person_once(world: World) -> None:
    contact = mql_contact(world, "CID-A")

    first = world.cycle()
    world.settle()
    world.sfa.calls.clear()
    world.ma.calls.clear()
    again = world.engine.sync_people(["CID-A"])

    leads = world.sfa.find("Lead", "Closedloop_Id__c", "CID-A")
    assert first.leads_created == 1
    assert len(leads) == 1
    assert leads[0]["Email"] == "person1@example.com" and leads[0]["Company"] == "Acme"
    assert world.person("CID-A").stage == "mql"
    assert (again.sfa_writes, again.ma_writes, again.leads_created, again.errors) == (0, 0, 0, 0)
    assert world.sfa.writes() == [] and world.ma.writes() == []
    with world.store.session() as session:
        links = set(session.execute(select(RecordLink.role, RecordLink.object_type, RecordLink.record_id)))
    assert links == {("ma", "contact", contact), ("sfa", "Lead", leads[0]["Id"])}


def test_a_person_before_the_handover_gets_no_sales_record(world: World) -> None:
    world.ma.add_person(email="early@example.com", hubspotscore="10", closedloop_id="CID-E")

    world.settle()

    assert world.person("CID-E").stage == "lead"
    assert world.sfa.tables.get("Lead", {}) == {}
    assert [c.name for c in world.sfa.writes()] == []


def test_a_sync_right_after_a_sync_writes_nothing(world: World) -> None:
    mql_contact(world, "CID-A")
    world.settle()
    world.ma.calls.clear()
    world.sfa.calls.clear()

    # Our own writes came back as changes (echoes); polling picks them up and syncing them is a no-op.
    world.ma.put("contact", {"firstname": "First1"}, next(iter(world.ma.tables["contact"])))
    result = world.cycle()

    assert result.people == 1
    assert (result.ma_writes, result.sfa_writes, result.leads_created) == (0, 0, 0)
    assert world.ma.writes() == [] and world.sfa.writes() == []


def test_a_marketing_side_edit_flows_to_the_sales_person(world: World) -> None:
    contact = mql_contact(world, "CID-A")
    world.settle()

    world.ma.put("contact", {"phone": "+44 20 7946 0000"}, contact)
    result = world.cycle()

    lead = world.sfa.find("Lead", "Closedloop_Id__c", "CID-A")[0]
    assert result.sfa_writes == 1
    assert lead["Phone"] == "+44 20 7946 0000"


# ------------------------------------------------------------------------------------- closed loop


def test_closed_loop_values_flow_back_and_transitions_carry_source_times(world: World) -> None:
    mql_contact(world, "CID-W")
    world.settle()
    lead_id = world.sfa.find("Lead", "Closedloop_Id__c", "CID-W")[0]["Id"]
    won = {
        "StageName": "Closed Won",
        "IsClosed": True,
        "IsWon": True,
        "Amount": 1200,
        "CloseDate": "2026-03-20",
        "OwnerId": "005000000000001AAA",
    }
    _contact_id, opp_id = world.sfa.convert(lead_id, outcome=won)
    assert opp_id is not None

    world.settle()

    contact = next(iter(world.ma.tables["contact"].values()))
    opportunity = world.sfa.tables["Opportunity"][opp_id]
    assert contact["closedloop_stage"] == "won"
    assert float(contact["closedloop_amount"]) == 1200.0
    assert contact["closedloop_close_date"] == "2026-03-20"
    steps = world.transitions("CID-W")
    assert [t.to_stage for t in steps] == ["lead", "mql", "sal", "sql", "opportunity", "won"]
    by_stage = {t.to_stage: t for t in steps}
    assert by_stage["lead"].occurred_at == parse_timestamp("2026-01-15T10:00:00.000Z")
    assert by_stage["mql"].occurred_at == parse_timestamp("2026-02-01T12:00:00.000Z")
    assert by_stage["won"].occurred_at == parse_timestamp(opportunity["LastModifiedDate"])
    assert (by_stage["won"].source_role, by_stage["won"].source_record) == ("sfa", opp_id)
    assert by_stage["won"].source_connector == "fake-sfa"
    assert by_stage["won"].amount == 1200
    assert all(a.occurred_at <= b.occurred_at for a, b in zip(steps, steps[1:], strict=False))
    assert world.person("CID-W").owner == "005000000000001AAA"


# ---------------------------------------------------------------------------------------- recycling


def test_a_recycled_person_re_enters_the_funnel(world: World) -> None:
    contact = mql_contact(world, "CID-R")
    world.settle()

    world.ma.put("contact", {"hs_lead_status": "BAD_TIMING"}, contact)
    world.settle()
    recycled = world.person("CID-R").stage
    world.clock.advance(timedelta(days=30))
    world.ma.put(
        "contact", {"hs_lead_status": "OPEN", "hs_lifecyclestage_marketingqualifiedlead_date": ""}, contact
    )
    world.settle()

    steps = world.transitions("CID-R")
    assert recycled == "recycled"
    assert [t.to_stage for t in steps] == ["lead", "mql", "recycled", "mql"]
    assert steps[-1].from_stage == "recycled"
    assert steps[-1].occurred_at > steps[1].occurred_at
    assert world.person("CID-R").stage == "mql"
    assert len(world.sfa.find("Lead", "Closedloop_Id__c", "CID-R")) == 1


# ------------------------------------------------------------------------------------------- errors


def test_a_refused_record_is_recorded_for_that_person_only(world: World) -> None:
    mql_contact(world, "CID-OK", 1)
    mql_contact(world, "CID-BAD", 2)
    mql_contact(world, "CID-OK2", 3)
    world.sfa.refuse("CID-BAD", "FIELD_CUSTOM_VALIDATION_EXCEPTION", "Company must not be Acme")

    result = world.cycle()

    with world.store.session() as session:
        errors = session.scalars(select(SyncError)).all()
        recorded = [(e.common_id, e.role, e.connector, e.code, e.object_type) for e in errors]
        remembered = set(session.scalars(select(FieldState.common_id)))
    assert result.errors == 1 and result.error_keys == ["CID-BAD"]
    assert recorded == [("CID-BAD", "sfa", "fake-sfa", "FIELD_CUSTOM_VALIDATION_EXCEPTION", "Lead")]
    assert world.sfa.find("Lead", "Closedloop_Id__c", "CID-BAD") == []
    assert len(world.sfa.find("Lead", "Closedloop_Id__c", "CID-OK")) == 1
    assert len(world.sfa.find("Lead", "Closedloop_Id__c", "CID-OK2")) == 1
    assert "CID-BAD" not in remembered and {"CID-OK", "CID-OK2"} <= remembered

    world.sfa.refusals.clear()
    world.engine.sync_people(["CID-BAD"])
    assert len(world.sfa.find("Lead", "Closedloop_Id__c", "CID-BAD")) == 1


def test_a_transient_failure_is_retried_inside_the_call(world: World) -> None:
    from sync.connectors.errors import TransientError

    mql_contact(world, "CID-T")
    ids = world.poller.poll("ma")
    world.sfa.faults.append(TransientError("fake", "HTTP 503: unavailable", 503, category="transient"))

    result = world.engine.sync_people(ids)

    reads = [c.attempt for c in world.sfa.calls if c.name == "read_people"]
    assert result.errors == 0 and result.leads_created == 1
    assert reads == [1, 2]


# ------------------------------------------------------------------------------------------ poller


def test_the_poller_saves_cursor_state_and_resumes_from_it(world: World) -> None:
    contacts = [world.ma.add_person(email=f"p{i}@example.com", closedloop_id=f"CID-{i}") for i in range(4)]

    first = world.poller.poll("ma")
    newest = parse_timestamp(max(r["lastmodifieddate"] for r in world.ma.tables["contact"].values()))
    with world.store.session() as session:
        saved = session.get(Cursor, "ma:contact")
        assert saved is not None and saved.watermark is not None
        watermark, state = saved.watermark, dict(saved.state)
    world.ma.calls.clear()
    restarted = Poller(world.store, world.ma, world.sfa, OVERLAP)  # a new process, same store
    idle = restarted.poll("ma")
    asked_from = {c.detail[1] for c in world.ma.calls if c.name == "page"}
    world.ma.put("contact", {"firstname": "Changed"}, contacts[2])
    changed = restarted.poll("ma")

    assert sorted(first) == [f"CID-{i}" for i in range(4)]  # 4 records over two pages of 3
    assert watermark == newest
    assert set(state["seen"]) == set(contacts)
    assert idle == []
    assert asked_from == {watermark - OVERLAP}  # the saved position, not the start
    assert changed == ["CID-2"]


def test_an_idle_cycle_syncs_nobody(world: World) -> None:
    mql_contact(world, "CID-I")
    world.settle()
    world.ma.calls.clear()
    world.sfa.calls.clear()

    result = world.cycle()

    assert result.people == 0
    assert {c.name for c in world.ma.calls + world.sfa.calls} == {"page"}


# ------------------------------------------------------------------------------------ stage replay


def test_replaying_a_history_yields_what_the_engine_recorded_live(world: World) -> None:
    """Backfill's replay of a person's snapshots and the engine's live transitions agree."""
    contact = mql_contact(world, "CID-H")
    snapshots: list[HistoryEvent] = []

    def snap(part: str, obj: str, record_id: str) -> None:
        record = dict(
            world.sfa.tables[obj][record_id] if part != "ma" else world.ma.tables["contact"][record_id]
        )
        at = parse_timestamp(record["lastmodifieddate" if part == "ma" else "LastModifiedDate"])
        assert at is not None
        created = str(record.get("CreatedDate") or "")
        snapshots.append(HistoryEvent(at, MA if part == "ma" else SFA, obj, record_id, record, created))

    world.settle()
    snap("ma", "contact", contact)
    lead_id = world.sfa.find("Lead", "Closedloop_Id__c", "CID-H")[0]["Id"]
    snap("lead", "Lead", lead_id)
    world.sfa.put("Lead", {"Status": "Working - Contacted"}, lead_id)
    world.settle()
    snap("lead", "Lead", lead_id)
    person_id, opp_id = world.sfa.convert(
        lead_id, outcome={"StageName": "Negotiation", "IsClosed": False, "IsWon": False, "Amount": 500}
    )
    assert opp_id is not None
    world.settle()
    snap("lead", "Lead", lead_id)
    snap("contact", "Contact", person_id)
    snap("opportunity", "Opportunity", opp_id)
    world.sfa.put(
        "Opportunity", {"StageName": "Closed Lost", "IsClosed": True, "Loss_Reason__c": "Price"}, opp_id
    )
    world.settle()
    snap("opportunity", "Opportunity", opp_id)

    live = world.transitions("CID-H")
    replayed = replay(world.mapping, Profiles(world.ma.profile, world.sfa.profile), snapshots)

    assert [t.to_stage for t in live] == ["lead", "mql", "sal", "sql", "opportunity", "lost"]
    assert [s.to_stage for s in replayed] == [t.to_stage for t in live]
    assert [s.from_stage for s in replayed] == [t.from_stage for t in live]
    assert replayed[-1].reason == live[-1].reason == "Price"
    assert replayed[-1].at == live[-1].occurred_at


# ------------------------------------------------------------------------------------------- inbox


def test_inbox_events_resolve_changes_merges_and_deletions(world: World) -> None:
    from sync.inbox_processor import InboxProcessor
    from sync.web.inbox import NewEvent, store_events

    survivor = world.ma.add_person(email="keep@example.com", closedloop_id="CID-KEEP")
    merged = world.ma.add_person(email="dupe@example.com", closedloop_id="CID-DUPE")
    gone = world.ma.add_person(email="gone@example.com", closedloop_id="CID-GONE")
    world.settle()
    world.ma.put("contact", {"firstname": "Kept"}, survivor)
    world.ma.delete("contact", merged)
    world.ma.delete("contact", gone)

    def event(key: str, record_id: str, kind: str, **extra: object) -> NewEvent:
        payload = {"kind": kind, **extra}
        return NewEvent("fake-ma", key, "contact", record_id, None, payload)

    stored = store_events(
        world.store,
        [event("1", survivor, "merge", merged=[merged]), event("2", gone, "deletion")],
        roles={"fake-ma": "ma"},
    )
    result = InboxProcessor(world.store, world.poller, world.engine).process(stored.new_ids)

    assert result.people == 1
    loser, deleted = world.person("CID-DUPE"), world.person("CID-GONE")
    assert loser.merged_into == "CID-KEEP"
    assert deleted.deleted_at is not None and world.person("CID-KEEP").deleted_at is None
    with world.store.session() as session:
        rows = session.execute(select(RecordLink.record_id, RecordLink.common_id)).all()
    owners = {record_id: cid for record_id, cid in rows}
    assert owners[merged] == owners[survivor] == "CID-KEEP"
