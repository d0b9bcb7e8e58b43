"""One HubSpot portal in both roles, driven by webhooks alone (no poll runs): real web app, Redis,
PostgreSQL and a worker process.

Contact events are stored for the marketing role, deal events (creation, stage changes, association
changes that carry fromObjectId/toObjectId and no objectId) for the sales role; the inbox processor
hands each to its role's connector. The handover marks the contact itself, the rep's lead status
and deal move the person along, and the deal's outcome lands on the same contact.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from sandboxes.population import generate_population
from sandboxes.realtime import RealtimeLink, webhook_properties
from sandboxes.scenario import Scenario, ScenarioConfig
from sandboxes.server import Sandboxes
from sync.connectors.hubspot_deals import DERIVED
from sync.runtime import Runtime
from sync.store.models import Cursor, InboxEvent, RecordLink, Transition
from tests.integration.harness import WorkerProcess

pytestmark = pytest.mark.integration
SECRET = "one-portal-webhook-secret"


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
        sfa="hubspot",
        extra_settings={"hubspot_webhook_secret": SECRET, "poll_interval": 3600},
    )
    scenario = Scenario(config)
    scenario.clock.speed = 1.0
    scenario.start()
    assert scenario.runtime is not None and scenario.boxes is not None
    runtime, boxes = scenario.runtime, scenario.boxes
    worker = WorkerProcess(scenario.settings_env(), "one-portal", log_dir=tmp_path).start()
    from workers.tasks import process_inbox

    mapping, _ = runtime.mappings.get()
    link = RealtimeLink(
        runtime.settings,
        runtime.store,
        lambda ids: process_inbox.delay(list(ids)),
        boxes,
        webhook_properties(mapping),
        deal_properties=sorted(mapping.sfa_fields("deal") - DERIVED - {"hs_object_id"}),
    ).start()
    try:
        yield Loop(scenario, runtime, boxes, link)
    finally:
        link.stop()
        worker.stop()
        scenario.stop()


def test_webhooks_alone_close_the_loop_in_one_portal(loop: Loop) -> None:
    hubspot = loop.boxes.hubspot
    people = [p for p in generate_population(20, seed=33) if p.is_mql][:3]
    assert len(people) == 3
    ids = {p.key: hubspot.seed_contact(p.creation_properties()) for p in people}
    for p in people:
        hubspot.update_contact(ids[p.key], p.mql_properties())
    loop.link.wait_until_quiet()
    status = {key: (hubspot.get_contact(cid) or {}).get("hs_lead_status") for key, cid in ids.items()}
    assert set(status.values()) == {"NEW"}, status  # handed over: the same contacts, nothing created
    assert len(hubspot.contacts()) == 3

    won, lost, working = (ids[p.key] for p in people)
    hubspot.update_contact(working, {"hs_lead_status": "IN_PROGRESS"})
    deals = {}
    for contact in (won, lost):
        hubspot.update_contact(contact, {"hs_lead_status": "OPEN_DEAL"})
        deals[contact] = hubspot.seed_deal(
            {"dealname": "New Business", "pipeline": "default", "dealstage": "qualifiedtobuy"}, [contact]
        )
    loop.link.wait_until_quiet()
    hubspot.update_deal(deals[won], {"dealstage": "closedwon", "amount": "48000", "closedate": "2026-09-30"})
    hubspot.update_deal(deals[lost], {"dealstage": "closedlost", "closed_lost_reason": "Competitor"})
    loop.link.wait_until_quiet()

    props = {cid: hubspot.get_contact(cid) or {} for cid in (won, lost, working)}
    assert props[working].get("closedloop_stage") == "sal"
    assert (props[won].get("closedloop_stage"), props[won].get("closedloop_outcome")) == ("won", "won")
    assert float(props[won].get("closedloop_amount") or 0) == 48000
    assert props[won].get("closedloop_close_date") == "2026-09-30"
    assert (props[lost].get("closedloop_stage"), props[lost].get("closedloop_loss_reason")) == (
        "lost",
        "Competitor",
    )
    with loop.runtime.store.session() as session:
        assert session.execute(select(Cursor)).first() is None, "a poll ran: this test must use webhooks only"
        roles = {(e.object_type, e.role) for e in session.execute(select(InboxEvent)).scalars()}
        assert roles == {("contact", "ma"), ("deal", "sfa")}
        linked = {(r.role, r.record_id) for r in session.execute(select(RecordLink)).scalars()}
        assert {("ma", c) for c in ids.values()} | {("sfa", c) for c in ids.values()} <= linked
        paths: dict[str, list[str]] = {}
        for t in session.execute(
            select(Transition).order_by(Transition.occurred_at, Transition.id)
        ).scalars():
            paths.setdefault(t.common_id, []).append(t.to_stage)
    assert sorted(map(tuple, paths.values())) == sorted(
        [
            ("lead", "mql", "sal"),
            ("lead", "mql", "sal", "sql", "opportunity", "won"),  # reaching won fills the skipped stage
            ("lead", "mql", "sal", "sql", "lost"),
        ]
    )
