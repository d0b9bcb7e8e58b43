"""`closedloop backfill` of one HubSpot portal in both roles, on PostgreSQL, over HTTP.

A quarter happens before Closedloop is installed: the population is seeded, every MQL is handed to
sales (lead status NEW, as an admin's workflow would) and the scripted team works it in the same
portal (lead status, then deals in the default Sales Pipeline). The backfill must reconstruct every
person's path from the portal's history alone (lifecycle dates, the property history of
``hs_lead_status`` and of each deal's ``dealstage``) with the source's times, equal to the ground
truth built from the team's executed actions.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from sandboxes.common import SimClock
from sandboxes.ground_truth import GroundTruth
from sandboxes.population import PopulationSeeder, advance_clock_to, generate_population
from sandboxes.sales_team import TeamRates
from sandboxes.sales_team_hubspot import HANDED_LEAD_STATUS, HubSpotSalesTeam
from sync.backfill import Backfill, BackfillOptions
from sync.config import Settings
from sync.identity import normalise_email
from sync.runtime import Runtime
from sync.setup import run_setup
from sync.store.models import Person, Transition
from tests.contract.hubspot_fixtures import HubSpotEnv, start_hubspot

pytestmark = pytest.mark.integration

START = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
ROOT = Path(__file__).parents[2]


@pytest.fixture
def portal() -> Iterator[HubSpotEnv]:
    env = start_hubspot(
        clock=SimClock(start=START, speed=0.0), window_limit=100_000, search_per_second=10_000
    )
    yield env
    env.server.stop()


def _live_quarter(env: HubSpotEnv, people: int, seed: int) -> GroundTruth:
    """Seeding, handover by lead status and the team's work, event by event; the ground truth of it."""
    clock = env.sandbox.clock
    population = generate_population(people, seed, "en", START, span_days=20)
    seeder = PopulationSeeder(env.sandbox, population, clock)
    team = HubSpotSalesTeam(
        env.sandbox, clock, seed=seed, rates=TeamRates(late_touch_share=0.0, mql_to_sql=0.5, sql_to_won=0.5)
    )
    handed: set[str] = set()
    for _ in range(50_000):
        seeder.run_due()
        for contact_id in env.sandbox.find_contacts("lifecyclestage", "marketingqualifiedlead"):
            if contact_id not in handed:
                env.sandbox.update_contact(contact_id, {"hs_lead_status": HANDED_LEAD_STATUS})
                handed.add(contact_id)
        team.discover()
        team.run_due()
        dues = [d for d in (seeder.next_due(), team.next_due()) if d is not None]
        if not dues:
            break
        advance_clock_to(clock, min(dues) + timedelta(microseconds=1))
    else:
        raise AssertionError("the quarter never settled")
    return GroundTruth.build(
        population, seeder.ids, team.executed, team.handed_over(), seeder.mql_times(), seeder.created_times()
    )


def _runtime(env: HubSpotEnv, database_url: str) -> Runtime:
    settings = Settings(
        database_url=database_url,
        mappings=ROOT / "mappings" / "hubspot-only.yaml",
        ma="hubspot",
        sfa="hubspot",
        hubspot_base_url=env.url,
        hubspot_access_token=SecretStr(env.sandbox.token),
        hubspot_window_limit=10_000,
        redis_url=None,
        retry_base_seconds=0.01,
    )
    return Runtime.from_settings(settings)


def test_backfill_reconstructs_one_portals_funnel_from_its_history(portal: HubSpotEnv, pg_url: str) -> None:
    truth = _live_quarter(portal, people=150, seed=21)
    outcomes = truth.outcome_counts()
    assert outcomes.get("won", 0) and outcomes.get("lost", 0) and outcomes.get("disqualified", 0), outcomes
    rt = _runtime(portal, pg_url)
    try:
        mapping, _ = rt.mappings.get()
        run_setup(mapping, rt.ma, rt.sfa)
        stats = Backfill(
            rt.store, mapping, rt.ma, rt.sfa, rt.engine, BackfillOptions(batch_size=25, sync=False)
        ).run()
        assert stats.people == len(truth.people)
        with rt.store.session() as session:
            rows = session.execute(
                select(Person.email, Transition.to_stage, Transition.occurred_at)
                .join(Transition, Transition.common_id == Person.common_id)
                .order_by(Transition.occurred_at, Transition.id)
            ).all()
        got: dict[str, list[tuple[str, datetime]]] = {}
        for email, stage, at in rows:
            got.setdefault(normalise_email(email) or "", []).append((stage, at))
        mismatches = []
        for person in truth.people:
            path = got.get(person.email, [])
            if [s for s, _ in path] != [s for s, _ in person.path]:
                mismatches.append((person.email, [s for s, _ in path], [s for s, _ in person.path]))
                continue
            for (stage, at), (_s, expected) in zip(path, person.path, strict=True):
                if abs(at - expected) > timedelta(seconds=1):
                    mismatches.append((person.email, stage, at, expected))
        assert not mismatches, mismatches[:5]
    finally:
        rt.store.dispose()
