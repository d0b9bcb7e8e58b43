"""`closedloop backfill` with Marketo as the marketing tool, on PostgreSQL, against the sandboxes over HTTP.

Marketo keeps no "date entered" fields: the funnel's marketing stages are reconstructed from the
lead activity log (Change Score, Change Data Value), at the times Marketo logged them, and every
lead is found through its New Lead activity. The backfill is cut after every couple of commits and
resumed (the scan's paging token is its saved position) until it finishes; then it syncs both ways.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from sandboxes.common import SimClock
from sandboxes.marketo import FLOW_SOURCE
from sandboxes.server import Sandboxes, start_sandboxes
from sync.backfill import BackfillOptions, backfill_streams
from sync.config import Settings
from sync.identity import mint_common_id
from sync.runtime import Runtime
from sync.setup import run_setup
from sync.store.models import Cursor, Person, Transition
from tests.integration.test_backfill import Person_, _backfill, _run_interrupted, _transitions_by_email

pytestmark = pytest.mark.integration

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
MAPPING = Path(__file__).parents[2] / "mappings" / "marketo-salesforce.yaml"
PEOPLE = 28
STORIES: dict[str, list[tuple[str, list[str]]]] = {
    "mk_lead": [("mk_create", ["lead"])],
    "mk_mql": [("mk_create", ["lead"]), ("mk_mql", ["mql"])],
    "won": [
        ("mk_create", ["lead"]),
        ("mk_mql", ["mql"]),
        ("sf_lead", []),
        ("sf_working", ["sal"]),
        ("sf_convert", ["sql"]),
        ("opp_analysis", ["opportunity"]),
        ("opp_won", ["won"]),
    ],
    "lost": [
        ("mk_create", ["lead"]),
        ("mk_mql", ["mql"]),
        ("sf_lead", []),
        ("sf_working", ["sal"]),
        ("sf_convert", ["sql"]),
        ("opp_lost", ["lost"]),  # a detour logs just itself
    ],
    "recycled": [
        ("mk_create", ["lead"]),
        ("mk_mql", ["mql"]),
        ("sf_lead", []),
        ("sf_working", ["sal"]),
        ("mk_recycle", ["recycled"]),
    ],
    "known_id": [("mk_create_with_id", ["lead"]), ("mk_mql", ["mql"])],
    "status_mql": [("mk_create", ["lead"]), ("mk_status_mql", ["mql"])],
}


def _act(boxes: Sandboxes, person: Person_, action: str) -> None:
    marketo, sf = boxes.marketo, boxes.salesforce
    assert marketo is not None
    if action in ("mk_create", "mk_create_with_id"):
        values = {"email": person.email, "lastName": person.story, "leadScore": 10, "leadStatus": "New"}
        if action == "mk_create_with_id":
            person.common_id = mint_common_id()
            values["closedloop_id"] = person.common_id
        person.hubspot_id = str(marketo.create_lead(values))
    elif action == "mk_mql":
        marketo.change_score(int(str(person.hubspot_id)), 45, "Demo request")
        marketo.update_lead(int(str(person.hubspot_id)), {"leadStatus": "MQL"}, source=FLOW_SOURCE)
    elif action == "mk_status_mql":  # the MQL campaign without a score change
        marketo.update_lead(int(str(person.hubspot_id)), {"leadStatus": "MQL"}, source=FLOW_SOURCE)
    elif action == "mk_recycle":
        marketo.update_lead(int(str(person.hubspot_id)), {"leadStatus": "Recycled"})
    elif action == "sf_lead":
        fields = {"LastName": person.story, "Company": "Acme", "Email": person.email}
        person.lead_id = sf.insert("Lead", fields | {"Status": "Open - Not Contacted"})
    elif action == "sf_working":
        sf.update("Lead", str(person.lead_id), {"Status": "Working - Contacted"})
    elif action == "sf_convert":
        person.opportunity_id = sf.convert_lead(str(person.lead_id))["opportunityId"]
    elif action == "opp_analysis":
        sf.update("Opportunity", str(person.opportunity_id), {"StageName": "Needs Analysis"})
    elif action == "opp_won":
        sf.update("Opportunity", str(person.opportunity_id), {"StageName": "Closed Won"})
    elif action == "opp_lost":
        fields = {"StageName": "Closed Lost", "Loss_Reason__c": "Price"}
        sf.update("Opportunity", str(person.opportunity_id), fields)
    else:  # pragma: no cover - a typo in STORIES
        raise ValueError(action)


def _seed(boxes: Sandboxes, clock: SimClock, seed: int = 13) -> list[Person_]:
    """Interleave every person's actions, each hours after the previous one (lead IDs kept in hubspot_id)."""
    rng = random.Random(seed)
    names = sorted(STORIES)
    people = [Person_(f"m{i:03d}@example.com", names[i % len(names)]) for i in range(PEOPLE)]
    pending = {i: list(STORIES[p.story]) for i, p in enumerate(people)}
    while pending:
        i = rng.choice(sorted(pending))
        action, stages = pending[i].pop(0)
        clock.advance(timedelta(hours=rng.randint(1, 30)))
        _act(boxes, people[i], action)
        people[i].entered += [(stage, clock.now()) for stage in stages]
        if not pending[i]:
            del pending[i]
    return people


@pytest.fixture
def sandboxes(tmp_path: Path) -> Iterator[tuple[Sandboxes, SimClock]]:
    clock = SimClock(start=START, speed=0.0)
    boxes = start_sandboxes(
        tmp_path / "sandbox", clock=clock, marketo=True, marketo_kwargs={"window_limit": 100_000}
    )
    try:
        yield boxes, clock
    finally:
        boxes.stop()


def _runtime(boxes: Sandboxes, database_url: str) -> Runtime:
    env = boxes.env()
    settings = Settings(
        database_url=database_url,
        mappings=MAPPING,
        ma="marketo",
        marketo_base_url=env["CLOSEDLOOP_MARKETO_BASE_URL"],
        marketo_client_id=env["CLOSEDLOOP_MARKETO_CLIENT_ID"],
        marketo_client_secret=SecretStr(env["CLOSEDLOOP_MARKETO_CLIENT_SECRET"]),
        marketo_munchkin_id=env["CLOSEDLOOP_MARKETO_MUNCHKIN_ID"],
        marketo_window_limit=100_000,
        salesforce_instance_url=env["CLOSEDLOOP_SALESFORCE_INSTANCE_URL"],
        salesforce_session_id=SecretStr(env["CLOSEDLOOP_SALESFORCE_SESSION_ID"]),
        salesforce_ca_bundle=Path(env["CLOSEDLOOP_SALESFORCE_CA_BUNDLE"]),
        salesforce_org_id=env["CLOSEDLOOP_SALESFORCE_ORG_ID"],
        redis_url=None,
        retry_base_seconds=0.01,
    )
    return Runtime.from_settings(settings)


def test_marketo_backfill_resumes_and_reconstructs_history_from_the_activity_log(
    sandboxes: tuple[Sandboxes, SimClock], pg_url: str
) -> None:
    boxes, clock = sandboxes
    rt = _runtime(boxes, pg_url)
    mapping, _ = rt.mappings.get()
    assert not run_setup(mapping, rt.ma, rt.sfa).missing
    people = _seed(boxes, clock)
    try:
        cut = _run_interrupted(rt, BackfillOptions(batch_size=5, sync=False), every=2)
        assert "backfill:ma:leads" in cut  # the Marketo scan really was resumed from its token
        got = _transitions_by_email(rt.store)
        for person in people:
            stages = [s for s, _ in got.get(person.email, [])]
            assert stages == [s for s, _ in person.entered], person.story
            for (_, at), (_, expected) in zip(got[person.email], person.entered, strict=True):
                assert abs(at - expected) < timedelta(seconds=1), (person.story, at, expected)
        with rt.store.session() as s:
            for person in (p for p in people if p.common_id):  # a common ID on the lead is adopted
                assert s.get(Person, person.common_id) is not None
            ma_sources = set(
                s.scalars(select(Transition.source_connector).where(Transition.to_stage == "mql"))
            )
        assert ma_sources == {"marketo"}

        stats = _backfill(rt, BackfillOptions(batch_size=10, sync=True, restart=True)).run()
        assert stats.sync_errors == 0 and stats.transitions == 0
        with rt.store.session() as s:
            by_email = {p.email: p for p in s.scalars(select(Person))}
            cursors = {c.stream: c for c in s.scalars(select(Cursor))}
        for stream in backfill_streams(rt.ma, rt.sfa):
            assert cursors[stream].state["done"] is True
        assert cursors["ma:activities"].watermark is not None  # polling starts where the backfill began
        marketo = boxes.marketo
        assert marketo is not None
        for person in people:
            stored = by_email[person.email]
            assert stored.stage == person.entered[-1][0], person.story
            lead = marketo.get_lead(int(str(person.hubspot_id))) or {}
            assert lead.get("closedloop_id") == stored.common_id
            if person.lead_id is not None:  # outcomes of existing Salesforce records land on the lead
                assert lead.get("closedloop_stage") == stored.stage, person.story
    finally:
        rt.store.dispose()
