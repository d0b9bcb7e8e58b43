"""The real-time path alone: sandbox webhooks and outbound messages → web app → Redis → worker process.

No beat runs, so nothing polls: every change must travel through the webhook path. Afterwards every
captured request is delivered three more times, shuffled (HubSpot ones re-signed with a fresh
timestamp): first as exact copies (the inbox must drop them all), then under new event IDs (the
worker must process them and change nothing). Stores and both sandboxes must end exactly as they
were after the single delivery, with no duplicate person, record or transition.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from sandboxes.population import PlannedContact, generate_population
from sandboxes.realtime import RealtimeLink, inbox_counts, redeliver, rekey, webhook_properties
from sandboxes.scenario import Scenario, ScenarioConfig
from sandboxes.server import Sandboxes
from sync.identity import Candidate, IdentityMap, RecordRef
from sync.runtime import Runtime
from sync.store.db import Store
from sync.store.models import Base, Cursor, InboxEvent, RecordLink, Transition
from sync.web.app import HUBSPOT_PATH
from tests.integration.harness import WorkerProcess

pytestmark = pytest.mark.integration

SECRET = "webhook-client-secret-for-tests"
SF_OBJECTS = ("Lead", "Contact", "Account", "Opportunity", "OpportunityContactRole")
# The inbox grows by design; cursors belong to polling.
SKIPPED_TABLES = {InboxEvent.__tablename__, Cursor.__tablename__}


@dataclass
class Loop:
    scenario: Scenario
    runtime: Runtime
    boxes: Sandboxes
    link: RealtimeLink


@pytest.fixture
def loop(tmp_path: Path, pg_url: str, redis_url: str) -> Iterator[Loop]:
    config = ScenarioConfig(
        workdir=tmp_path,
        people=0,
        database_url=pg_url,
        redis_url=redis_url,
        embedded_worker=False,
        hubspot_search_per_second=50,
        extra_settings={"hubspot_webhook_secret": SECRET, "poll_interval": 3600},
    )
    scenario = Scenario(config)
    scenario.clock.speed = 1.0  # a running clock, as the real systems have
    scenario.start()
    assert scenario.runtime is not None and scenario.boxes is not None
    runtime, boxes = scenario.runtime, scenario.boxes
    worker = WorkerProcess(scenario.settings_env(), "realtime", log_dir=tmp_path).start()
    from workers.tasks import process_inbox

    mapping, _ = runtime.mappings.get()
    link = RealtimeLink(
        runtime.settings,
        runtime.store,
        lambda ids: process_inbox.delay(list(ids)),
        boxes,
        webhook_properties(mapping),
        record=True,
    ).start()
    try:
        yield Loop(scenario, runtime, boxes, link)
    finally:
        link.stop()
        worker.stop()
        scenario.stop()


def test_webhooks_alone_close_the_loop_and_redelivery_changes_nothing(loop: Loop) -> None:
    began = time.monotonic()
    hubspot, salesforce = loop.boxes.hubspot, loop.boxes.salesforce
    people = generate_population(14, seed=21)
    mqls = [p for p in people if p.is_mql]
    assert len(mqls) >= 5, "the seed must give enough MQLs for every sales outcome"

    # 1. Marketing: contacts created (some already MQL), later MQLs cross the threshold by an update.
    ids = {p.key: hubspot.seed_contact(p.creation_properties()) for p in people}
    for p in mqls:
        hubspot.update_contact(ids[p.key], p.mql_properties())
    loop.link.wait_until_quiet()
    leads = {p.key: _lead_of(loop, p) for p in mqls}
    assert all(len(found) == 1 for found in leads.values()), leads
    assert not any(_lead_of(loop, p) for p in people if not p.is_mql), "only MQLs are handed over"
    lead_id = {key: found[0]["Id"] for key, found in leads.items()}

    # 2. Sales works the leads in Salesforce; a marketer edits a handed-over contact in HubSpot.
    working, disqualified, won, lost, edited = (p.key for p in mqls[:5])
    salesforce.update("Lead", lead_id[working], {"Status": "Working - Contacted"})
    salesforce.update("Lead", lead_id[disqualified], {"Status": "Closed - Not Converted"})
    won_opp = _convert(loop, lead_id[won])
    lost_opp = _convert(loop, lead_id[lost])
    salesforce.update(
        "Opportunity", won_opp, {"StageName": "Closed Won", "Amount": 48000, "CloseDate": "2026-09-30"}
    )
    salesforce.update("Opportunity", lost_opp, {"StageName": "Closed Lost", "Loss_Reason__c": "Competitor"})
    hubspot.update_contact(ids[edited], {"company": "Renamed Holdings"})
    loop.link.wait_until_quiet()

    contact = {key: hubspot.get_contact(ids[key]) or {} for key in (working, disqualified, won, lost)}
    assert contact[working].get("closedloop_sfa_status") == "Working - Contacted"
    assert contact[working].get("closedloop_stage") == "sal"
    assert contact[disqualified].get("closedloop_stage") == "disqualified"
    assert contact[won].get("closedloop_stage") == "won"
    assert float(contact[won].get("closedloop_amount") or 0) == 48000
    assert contact[lost].get("closedloop_stage") == "lost"
    assert contact[lost].get("closedloop_loss_reason") == "Competitor"
    assert (salesforce.get("Lead", lead_id[edited]) or {}).get("Company") == "Renamed Holdings"
    _assert_no_duplicates(loop, people)

    # 3. Every captured request three more times, shuffled: exact copies are all dropped by the inbox.
    assert loop.link.recorder is not None
    captured = loop.link.recorder.snapshot()
    assert {r.path for r in captured} == {HUBSPOT_PATH, "/webhooks/salesforce"}
    assert all(r.status == 200 for r in captured)
    loop.link.recorder.enabled = False
    single = _snapshot(loop)
    _, inbox_total = inbox_counts(loop.runtime.store)
    rng = random.Random(5)
    copies = captured * 3
    rng.shuffle(copies)
    answers = redeliver(copies, loop.link.url, SECRET)
    assert all(status == 200 for status, _ in answers)
    hubspot_answers = [
        json.loads(body) for (status, body), r in zip(answers, copies, strict=True) if r.path == HUBSPOT_PATH
    ]
    assert all(a["accepted"] == 0 and a["duplicates"] > 0 for a in hubspot_answers)
    loop.link.wait_until_quiet()
    assert inbox_counts(loop.runtime.store)[1] == inbox_total
    assert _snapshot(loop) == single

    # 4. The same notifications under new event IDs are processed again, and still change nothing.
    rekeyed = [rekey(r, str(n)) for n in range(1, 4) for r in captured]
    rng.shuffle(rekeyed)
    calls_before = _write_calls(loop)
    answers = redeliver(rekeyed, loop.link.url, SECRET)
    assert all(status == 200 for status, _ in answers)
    loop.link.wait_until_quiet()
    assert inbox_counts(loop.runtime.store)[1] > inbox_total
    assert _write_calls(loop) == calls_before, "a redelivered event caused a write"
    assert _snapshot(loop) == single
    _assert_no_duplicates(loop, people)
    with loop.runtime.store.session() as session:
        assert session.execute(select(Cursor)).first() is None, "a poll ran: this test must use webhooks only"
    assert time.monotonic() - began < 60


def _lead_of(loop: Loop, person: PlannedContact) -> list[dict[str, Any]]:
    return [
        lead
        for lead in loop.boxes.salesforce.records("Lead")
        if (lead.get("Email") or "").lower() == person.normalised_email
    ]


def _convert(loop: Loop, lead_id: str) -> str:
    result = loop.boxes.salesforce.convert_lead(lead_id, opportunity_name="New Business")
    opp_id = result.get("opportunityId")
    assert opp_id
    return str(opp_id)


def _write_calls(loop: Loop) -> tuple[int, int]:
    """API calls that can change data: HubSpot POST/PATCH (not batch reads or searches), Salesforce writes."""
    hs = sum(
        row["count"]
        for row in loop.boxes.hubspot.counter.snapshot()
        if row["method"] in ("POST", "PATCH", "PUT", "DELETE")
        and not row["endpoint"].endswith(("/batch/read", "/search"))
    )
    # Closedloop writes to Salesforce through sObject endpoints and Collections only; a bare Composite
    # call is its batch read (queries as subrequests). The snapshot comparison checks the data itself.
    sf = sum(
        row["count"]
        for row in loop.boxes.salesforce.counter.snapshot()
        if row["method"] in ("POST", "PATCH", "PUT", "DELETE") and not row["endpoint"].endswith("/composite")
    )
    return hs, sf


def _snapshot(loop: Loop) -> dict[str, Any]:
    """Everything both sandboxes hold, and every Closedloop table except the inbox and polling cursors."""
    out: dict[str, Any] = {
        "hubspot": {c["id"]: (c["archived"], c["properties"]) for c in loop.boxes.hubspot.contacts()},
        **{f"salesforce:{o}": sorted(map(_canonical, loop.boxes.salesforce.records(o))) for o in SF_OBJECTS},
    }
    with loop.runtime.store.session() as session:
        for table in Base.metadata.sorted_tables:
            if table.name not in SKIPPED_TABLES:
                rows = session.execute(select(table)).mappings()
                out[table.name] = sorted(_canonical(dict(r)) for r in rows)
    return out


def _canonical(row: dict[str, Any]) -> str:
    return json.dumps(row, sort_keys=True, default=str)


def _assert_no_duplicates(loop: Loop, people: list[PlannedContact]) -> None:
    emails = Counter(
        (c["properties"].get("email") or "").lower()
        for c in loop.boxes.hubspot.contacts()
        if not c["archived"]
    )
    assert len(emails) == len(people) and max(emails.values()) == 1, emails
    for sobject in ("Lead", "Contact"):
        ext = Counter(r.get("Closedloop_Id__c") for r in loop.boxes.salesforce.records(sobject))
        assert all(n == 1 for cid, n in ext.items() if cid), (sobject, ext)
    with loop.runtime.store.session() as session:
        links = Counter(
            (r.role, r.object_type, r.record_id) for r in session.execute(select(RecordLink)).scalars()
        )
        assert max(links.values()) == 1
        steps = Counter((t.common_id, t.to_stage) for t in session.execute(select(Transition)).scalars())
        assert max(steps.values()) == 1, [k for k, n in steps.items() if n > 1]


def test_parallel_resolution_of_the_same_new_records_agrees(store: Store) -> None:
    """Webhook tasks resolve the same new records at once: no task may fail, all must agree on the ID."""
    errors: list[str] = []
    resolved: dict[int, set[str]] = {}
    lock = threading.Lock()

    def resolve_all() -> None:
        try:
            for i in range(60):
                candidate = Candidate(
                    records=[RecordRef("sfa", "Lead", f"00Q{i:015d}")],
                    keys={"email": f"p{i}@example.com"},
                    email=f"p{i}@example.com",
                )
                with store.session() as session:
                    (cid,) = IdentityMap(session).resolve_batch([candidate])
                with lock:
                    resolved.setdefault(i, set()).add(cid)
        except Exception as exc:  # collected: a failure in a thread must fail the test
            errors.append(repr(exc)[:300])

    threads = [threading.Thread(target=resolve_all) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert all(len(ids) == 1 for ids in resolved.values())
    with store.session() as session:
        links = session.execute(select(RecordLink)).scalars().all()
        assert len(links) == 60 and len({link.common_id for link in links}) == 60
