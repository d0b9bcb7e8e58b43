"""`closedloop backfill` on PostgreSQL against both sandboxes over HTTP.

Seeded stories give every person a known history (HubSpot lifecycle stages, Salesforce lead
status changes, conversions, opportunity stages), each action at its own simulated time. The test
interrupts a backfill after every couple of commits and resumes it until it finishes, then checks
the store equals that of an uninterrupted backfill into a fresh database, and that the
reconstructed transitions are exactly the stages the stories entered, at the times they did.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import select, text

from sandboxes.common import SimClock
from sandboxes.server import Sandboxes, start_sandboxes
from sync import backfill as backfill_module
from sync.backfill import Backfill, BackfillOptions, backfill_streams
from sync.config import Settings
from sync.identity import mint_common_id
from sync.runtime import Runtime
from sync.setup import run_setup
from sync.store.db import Store, upgrade
from sync.store.models import Cursor, MatchKey, Person, RecordLink, Transition
from tests.conftest import _drop_pg_database, _new_pg_database

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PEOPLE = 36
# A story is a list of actions; each names the stages it makes the person enter (by the funnel rules:
# a forward move fills every skipped success stage at the same time).
STORIES: dict[str, list[tuple[str, list[str]]]] = {
    "hs_lead": [("hs_create", ["lead"])],
    "hs_mql": [("hs_create", ["lead"]), ("hs_mql", ["mql"])],
    "won": [
        ("hs_create", ["lead"]),
        ("hs_mql", ["mql"]),
        ("sf_lead", []),
        ("sf_working", ["sal"]),
        ("sf_convert", ["sql"]),
        ("opp_analysis", ["opportunity"]),
        ("opp_won", ["won"]),
    ],
    "disqualified": [
        ("hs_create", ["lead"]),
        ("hs_mql", ["mql"]),
        ("sf_lead", []),
        ("sf_working", ["sal"]),
        ("sf_disqualify", ["disqualified"]),
    ],
    "lost": [
        ("hs_create", ["lead"]),
        ("hs_mql", ["mql"]),
        ("sf_lead", []),
        ("sf_working", ["sal"]),
        ("sf_convert", ["sql"]),
        ("opp_analysis", ["opportunity"]),
        ("opp_lost", ["lost"]),
    ],
    "fast_won": [
        ("hs_create", ["lead"]),
        ("hs_mql", ["mql"]),
        ("sf_lead", []),
        ("sf_convert", ["sal", "sql"]),
        ("opp_won", ["opportunity", "won"]),
    ],
    "sf_only": [("sf_lead", ["lead"]), ("sf_working", ["mql", "sal"])],
    "known_id": [("hs_create_with_id", ["lead"]), ("hs_mql", ["mql"])],
}


@dataclass
class Person_:
    """One seeded person and what really happened to them."""

    email: str
    story: str
    common_id: str | None = None
    hubspot_id: str | None = None
    lead_id: str | None = None
    opportunity_id: str | None = None
    entered: list[tuple[str, datetime]] = field(default_factory=list)


def _act(boxes: Sandboxes, person: Person_, action: str) -> None:
    hs, sf = boxes.hubspot, boxes.salesforce
    if action in ("hs_create", "hs_create_with_id"):
        props: dict[str, str | None] = {
            "email": person.email,
            "firstname": "Ann",
            "lastname": person.story,
            "lifecyclestage": "lead",
        }
        if action == "hs_create_with_id":
            person.common_id = mint_common_id()
            props["closedloop_id"] = person.common_id
        person.hubspot_id = hs.seed_contact(props)
    elif action == "hs_mql":
        assert person.hubspot_id is not None
        hs.update_contact(person.hubspot_id, {"lifecyclestage": "marketingqualifiedlead"})
    elif action == "sf_lead":
        fields = {
            "LastName": person.story,
            "Company": "Acme",
            "Email": person.email,
            "Status": "Open - Not Contacted",
        }
        person.lead_id = sf.insert("Lead", fields)
    elif action == "sf_working":
        sf.update("Lead", str(person.lead_id), {"Status": "Working - Contacted"})
    elif action == "sf_disqualify":
        sf.update("Lead", str(person.lead_id), {"Status": "Closed - Not Converted"})
    elif action == "sf_convert":
        person.opportunity_id = sf.convert_lead(str(person.lead_id))["opportunityId"]
    elif action == "opp_analysis":
        sf.update("Opportunity", str(person.opportunity_id), {"StageName": "Needs Analysis"})
    elif action == "opp_won":
        sf.update("Opportunity", str(person.opportunity_id), {"StageName": "Closed Won"})
    elif action == "opp_lost":
        sf.update(
            "Opportunity", str(person.opportunity_id), {"StageName": "Closed Lost", "Loss_Reason__c": "Price"}
        )
    else:  # pragma: no cover - a typo in STORIES
        raise ValueError(action)


def _seed(boxes: Sandboxes, clock: SimClock, seed: int = 11) -> list[Person_]:
    """Interleave every person's actions, each hours after the previous one."""
    rng = random.Random(seed)
    names = sorted(STORIES)
    people = [Person_(f"p{i:03d}@example.com", names[i % len(names)]) for i in range(PEOPLE)]
    pending = {i: list(STORIES[p.story]) for i, p in enumerate(people)}
    while pending:
        i = rng.choice(sorted(pending))
        action, stages = pending[i].pop(0)
        clock.advance(timedelta(hours=rng.randint(1, 30)))
        at = clock.now()
        _act(boxes, people[i], action)
        people[i].entered += [(stage, at) for stage in stages]
        if not pending[i]:
            del pending[i]
    return people


@pytest.fixture
def sandboxes(tmp_path: Path) -> Iterator[tuple[Sandboxes, SimClock]]:
    clock = SimClock(start=START, speed=0.0)
    boxes = start_sandboxes(tmp_path / "sandbox", clock=clock, hubspot_kwargs={"window_limit": 10_000})
    try:
        yield boxes, clock
    finally:
        boxes.stop()


@pytest.fixture
def second_pg_url() -> Iterator[str]:
    name, url = _new_pg_database()
    upgrade(url)
    try:
        yield url
    finally:
        _drop_pg_database(name)


def _runtime(boxes: Sandboxes, database_url: str) -> Runtime:
    env = boxes.env()
    settings = Settings(
        database_url=database_url,
        mappings=Path("mappings"),
        hubspot_base_url=env["CLOSEDLOOP_HUBSPOT_BASE_URL"],
        hubspot_access_token=SecretStr(env["CLOSEDLOOP_HUBSPOT_ACCESS_TOKEN"]),
        salesforce_instance_url=env["CLOSEDLOOP_SALESFORCE_INSTANCE_URL"],
        salesforce_session_id=SecretStr(env["CLOSEDLOOP_SALESFORCE_SESSION_ID"]),
        salesforce_ca_bundle=Path(env["CLOSEDLOOP_SALESFORCE_CA_BUNDLE"]),
        salesforce_org_id=env["CLOSEDLOOP_SALESFORCE_ORG_ID"],
        hubspot_window_limit=10_000,
        redis_url=None,
        retry_base_seconds=0.01,
    )
    return Runtime.from_settings(settings)


def _backfill(rt: Runtime, options: BackfillOptions, checkpoint: Any = None) -> Backfill:
    mapping, _ = rt.mappings.get()
    return Backfill(rt.store, mapping, rt.ma, rt.sfa, rt.engine, options, checkpoint=checkpoint)


class Interrupted(Exception):
    """Raised by the checkpoint hook to stop a backfill half-way."""


def _run_interrupted(rt: Runtime, options: BackfillOptions, every: int) -> set[str]:
    """Crash after every ``every`` commits and resume, until a run finishes; returns the streams cut."""
    cut: set[str] = set()

    def crash(stream: str, commits: int) -> None:
        if commits >= every:
            cut.add(stream)
            raise Interrupted

    for _run in range(200):
        try:
            _backfill(rt, options, crash).run()
            return cut
        except Interrupted:
            continue
    raise AssertionError("the backfill does not make progress")


def _snapshot(store: Store) -> dict[str, Any]:
    """The store's people, links, keys and transitions with minted common IDs replaced by record keys."""
    with store.session() as s:
        links = s.execute(
            select(RecordLink.common_id, RecordLink.role, RecordLink.object_type, RecordLink.record_id)
        ).all()
        name: dict[str, str] = {}
        for cid, system, obj, rid in sorted(links, key=lambda r: (r[1], r[2], r[3])):
            name.setdefault(cid, f"{system}/{obj}/{rid}")
        people = s.execute(select(Person)).scalars().all()
        transitions = s.execute(select(Transition)).scalars().all()
        keys = s.execute(select(MatchKey.key_type, MatchKey.key_value, MatchKey.common_id)).all()
        return {
            "people": sorted(
                (name[p.common_id], p.email, p.stage, p.stage_entered_at, p.merged_into, p.owner)
                for p in people
            ),
            "links": sorted((name[c], sy, o, r) for c, sy, o, r in links),
            "keys": sorted((t, v, name[c]) for t, v, c in keys),
            "transitions": sorted(
                (
                    name[t.common_id],
                    t.from_stage or "",
                    t.to_stage,
                    t.occurred_at,
                    t.source_role,
                    t.source_record,
                    t.cause,
                    t.reason or "",
                    str(t.amount),
                )
                for t in transitions
            ),
        }


def _transitions_by_email(store: Store) -> dict[str, list[tuple[str, datetime]]]:
    with store.session() as s:
        rows = s.execute(
            select(Person.email, Transition.to_stage, Transition.occurred_at)
            .join(Transition, Transition.common_id == Person.common_id)
            .order_by(Transition.occurred_at, Transition.id)
        ).all()
    out: dict[str, list[tuple[str, datetime]]] = {}
    for email, stage, at in rows:
        out.setdefault(str(email), []).append((stage, at))
    return out


def _prepare(boxes: Sandboxes, clock: SimClock, url: str) -> tuple[Runtime, list[Person_]]:
    rt = _runtime(boxes, url)
    mapping, _ = rt.mappings.get()
    run_setup(mapping, rt.ma, rt.sfa)
    return rt, _seed(boxes, clock)


def test_interrupted_backfill_equals_uninterrupted_and_reconstructs_history(
    sandboxes: tuple[Sandboxes, SimClock], pg_url: str, second_pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Refresh planner statistics from 16 records on (1,000 in production) so this small run does it.
    monkeypatch.setattr(backfill_module, "FIRST_STATISTICS_REFRESH", 16)
    boxes, clock = sandboxes
    rt_a, people = _prepare(boxes, clock, pg_url)
    rt_b = _runtime(boxes, second_pg_url)
    options = BackfillOptions(batch_size=7, sync=False)
    try:
        cut = _run_interrupted(rt_a, options, every=2)
        assert cut == set(
            backfill_streams(rt_a.ma, rt_a.sfa)
        )  # it really was cut half-way through every phase
        stats = _backfill(rt_b, options).run()
        assert stats.people == PEOPLE
        # ANALYZE ran during each phase: the planner knows the size of what that phase filled.
        with rt_b.store.engine.connect() as conn:
            sampled = dict(
                conn.execute(
                    text(
                        "SELECT relname, reltuples FROM pg_class "
                        "WHERE relname IN ('people', 'transitions') AND relkind = 'r'"
                    )
                ).all()
            )
        assert 16 <= sampled["people"] <= PEOPLE
        assert sampled["transitions"] > 0

        resumed, straight = _snapshot(rt_a.store), _snapshot(rt_b.store)
        assert resumed == straight
        assert len(straight["people"]) == PEOPLE

        # The reconstruction equals what the stories did, stage by stage, at the source's times.
        got = _transitions_by_email(rt_a.store)
        for person in people:
            stages = [s for s, _ in got.get(person.email, [])]
            assert stages == [s for s, _ in person.entered], person.story
            for (_, at), (_, expected) in zip(got[person.email], person.entered, strict=True):
                assert abs(at - expected) < timedelta(seconds=1), (person.story, at, expected)
        with rt_a.store.session() as s:
            assert set(s.scalars(select(Transition.cause))) == {"backfill"}
            reasons = set(s.scalars(select(Transition.reason).where(Transition.to_stage == "lost")))
            known = [p for p in people if p.common_id]
            for person in known:  # an existing common ID carried by the contact is adopted
                assert s.get(Person, person.common_id) is not None
        assert reasons == {"Price"}
        assert known

        # A finished backfill is a no-op; a restarted one re-reads everything and changes nothing.
        assert _backfill(rt_a, options).run().already_complete
        again = _backfill(rt_a, BackfillOptions(batch_size=50, sync=False, restart=True)).run()
        assert again.transitions == 0 and again.people == PEOPLE
        assert _snapshot(rt_a.store) == resumed
    finally:
        rt_a.store.dispose()
        rt_b.store.dispose()


def test_backfill_with_sync_converges_both_systems(
    sandboxes: tuple[Sandboxes, SimClock], pg_url: str
) -> None:
    boxes, clock = sandboxes
    rt, people = _prepare(boxes, clock, pg_url)
    try:
        stats = _backfill(rt, BackfillOptions(batch_size=10, sync=True)).run()
        assert stats.synced == PEOPLE and stats.sync_errors == 0
        with rt.store.session() as s:
            by_email = {p.email: p for p in s.scalars(select(Person))}
            cursors = {c.stream: c for c in s.scalars(select(Cursor))}
        for stream in backfill_streams(rt.ma, rt.sfa):
            assert cursors[stream].state["done"] is True
        # Polling starts where the backfill started reading instead of re-reading the whole portal.
        assert cursors["ma:contacts"].watermark is not None
        assert cursors["sfa:Lead"].watermark is not None
        for person in people:
            stored = by_email[person.email]
            assert stored.stage == person.entered[-1][0], person.story
            hubspot_ids = boxes.hubspot.find_contacts("email", person.email)
            assert len(hubspot_ids) == 1  # Salesforce-only people were created in HubSpot, once
            contact = boxes.hubspot.get_contact(hubspot_ids[0]) or {}
            assert contact.get("closedloop_id") == stored.common_id
            if person.lead_id is not None:  # outcomes of existing Salesforce records flow back at once
                assert contact.get("closedloop_stage") == stored.stage, person.story
            where = f"WHERE Email = '{person.email}'"
            leads = boxes.salesforce.query(f"SELECT Id, Closedloop_Id__c FROM Lead {where}")
            contacts = boxes.salesforce.query(f"SELECT Id, Closedloop_Id__c FROM Contact {where}")
            if person.story == "hs_lead":
                assert leads == []  # not past the handover: no Lead
            elif person.opportunity_id is None:  # MQLs are handed over; open Leads carry the common ID
                assert [lead["Closedloop_Id__c"] for lead in leads] == [stored.common_id]
            else:  # a converted person carries it on the Contact (a converted Lead is read-only)
                assert len(leads) == 1
                assert [c["Closedloop_Id__c"] for c in contacts] == [stored.common_id]
    finally:
        rt.store.dispose()
