"""Contract test: population + scripted sales team working deals in ONE HubSpot portal (issue 15).

The test stands in for Closedloop at the handover of a portal in both roles (the MQL's lead status
becomes NEW), drives the simulated clock from event to event until every plan is done, and checks
the portal's final contacts, deals, associations and property histories against the ground truth.
Deal stages are those of HubSpot's default Sales Pipeline
(https://developers.hubspot.com/docs/api/crm/pipelines); loss reasons go to closed_lost_reason
(https://knowledge.hubspot.com/properties/hubspots-default-deal-properties).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sandboxes.common import SimClock
from sandboxes.ground_truth import GroundTruth
from sandboxes.hubspot import HubSpotSandbox
from sandboxes.population import PopulationSeeder, advance_clock_to, generate_population
from sandboxes.sales_team_hubspot import DEFAULT_DEAL_STAGES, HubSpotSalesTeam
from sync.timeutil import parse_timestamp

START = datetime(2026, 10, 1, tzinfo=UTC)
SEED = 2026
# The simulated clock ticks 1 ms per reading, so a write lands a tick or two after the action.
TOLERANCE = timedelta(seconds=1)


class Run:
    """One simulated quarter in a single portal: seeding, handover, deals, ground truth."""

    def __init__(self) -> None:
        self.clock = SimClock(START, speed=0.0)
        self.hubspot = HubSpotSandbox(clock=self.clock)
        self.people = generate_population(200, SEED, "mixed", START, span_days=30)
        self.seeder = PopulationSeeder(self.hubspot, self.people, self.clock)
        self.team = HubSpotSalesTeam(self.hubspot, self.clock, seed=SEED)
        self.handed: dict[str, datetime] = {}

    def hand_over(self) -> None:
        """What Closedloop does at the handover when one portal plays both roles."""
        for contact_id in self.hubspot.find_contacts("lifecyclestage", "marketingqualifiedlead"):
            if contact_id not in self.handed:
                self.hubspot.update_contact(contact_id, {"hs_lead_status": "NEW"})
                self.handed[contact_id] = self.clock.now()

    def drive(self) -> None:
        for _ in range(20_000):
            self.seeder.run_due()
            self.hand_over()
            self.team.run_due()
            dues = [d for d in (self.seeder.next_due(), self.team.next_due()) if d is not None]
            if not dues:
                return
            advance_clock_to(self.clock, min(dues))
        raise AssertionError("the run never settled")

    def truth(self) -> GroundTruth:
        return GroundTruth.build(
            self.people,
            self.seeder.ids,
            self.team.executed,
            self.team.handed_over(),
            self.seeder.mql_times(),
            self.seeder.created_times(),
        )


@pytest.fixture(scope="module")
def run() -> Run:
    result = Run()
    result.drive()
    return result


def test_every_handed_contact_is_worked_and_nothing_refused(run: Run) -> None:
    mqls = sum(p.is_mql for p in run.people)
    assert len(run.handed) == mqls
    assert {h.lead_id for h in run.team.handed_over()} == set(run.handed)
    assert all(abs(h.created_at - run.handed[h.lead_id]) <= TOLERANCE for h in run.team.handed_over())
    assert run.team.pending() == 0 and run.team.failures == []
    kinds = {a.kind for a in run.team.executed}
    assert {"contact", "convert", "propose", "win", "lose", "disqualify", "recycle"} <= kinds
    truth = run.truth()
    assert not truth.unmatched
    outcomes = truth.outcome_counts()
    assert outcomes.get("won", 0) > 0 and outcomes.get("lost", 0) > 0


def test_deals_agree_with_ground_truth(run: Run) -> None:
    truth = run.truth()
    with_deals = [p for p in truth.people if p.opportunity_id]
    assert with_deals
    for person in with_deals:
        assert person.opportunity_id is not None and person.hubspot_id is not None
        deal = run.hubspot.get_deal(person.opportunity_id) or {}
        assert run.hubspot.deal_contacts(person.opportunity_id) == [person.hubspot_id]
        assert deal["pipeline"] == "default"
        if person.outcome == "won":
            assert deal["dealstage"] == DEFAULT_DEAL_STAGES["win"]
            assert deal["hs_is_closed_won"] == "true"
            assert int(deal["amount"] or 0) == person.amount
            assert (parse_timestamp(deal["closedate"]) or START).date().isoformat() == person.close_date
        elif person.outcome == "lost":
            assert deal["dealstage"] == DEFAULT_DEAL_STAGES["lose"]
            assert (deal["hs_is_closed"], deal["hs_is_closed_won"]) == ("true", "false")
            assert deal["closed_lost_reason"] == person.loss_reason
            assert (parse_timestamp(deal["closedate"]) or START).date().isoformat() == person.close_date
        else:
            assert deal["hs_is_closed"] == "false"


def test_deal_stage_history_carries_the_true_times(run: Run) -> None:
    """The replay path reads dealstage history: each stage change is stamped when the rep made it."""
    done = {
        (a.details.get("opportunity_id"), a.details.get("stage_name")): a.done_at for a in run.team.executed
    }
    checked = 0
    for deal_id in {
        a.details["opportunity_id"] for a in run.team.executed if a.details.get("opportunity_id")
    }:
        for stage, at in run.hubspot.property_history("deals", deal_id, "dealstage"):
            assert abs(done[(deal_id, stage)] - at) <= TOLERANCE
            checked += 1
    assert checked > 0


def test_lead_status_tells_each_persons_sales_fate(run: Run) -> None:
    truth = run.truth()
    expected = {"disqualified": "UNQUALIFIED", "recycled": "BAD_TIMING", "sal": "IN_PROGRESS", "mql": "NEW"}
    seen = set()
    for person in truth.people:
        if person.hubspot_id not in run.handed:
            continue
        status = (run.hubspot.get_contact(person.hubspot_id) or {}).get("hs_lead_status")
        if person.opportunity_id:
            assert status == "OPEN_DEAL"
        else:
            assert status == expected[person.stage], person.key
            seen.add(person.stage)
    assert {"disqualified", "recycled", "sal", "mql"} <= seen


def test_population_scores_arrive_as_hubspot_calculations(run: Run) -> None:
    """hubspotscore is HubSpot's read-only score (issue 18, item 13): the population seeds it through
    the emulator's own scoring path, so every value in its history is CALCULATED, none an API or UI write."""
    scored = 0
    for contact_id in run.seeder.ids.values():
        record = run.hubspot.stores["contacts"].resolve(contact_id)
        assert record is not None
        entries = record.history.get("hubspotscore", [])
        assert {e.source_type for e in entries} <= {"CALCULATED"}
        scored += bool(entries)
    assert scored > 0
