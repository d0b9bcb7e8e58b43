"""Contract test: population + scripted sales team on the REAL HubSpot and Salesforce sandboxes.

The test stands in for Closedloop at the MQL handover (one Salesforce Lead per HubSpot MQL), drives
the simulated clock from event to event until every plan is done, and checks the sandboxes' final
records (read back through ``salesforce.query`` and ``hubspot.get_contact``) against the ground truth.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sandboxes.common import SimClock
from sandboxes.ground_truth import GroundTruth
from sandboxes.hubspot import HubSpotSandbox
from sandboxes.population import PopulationSeeder, advance_clock_to, generate_population
from sandboxes.sales_team import SalesTeam, TeamRates
from sandboxes.salesforce import SalesforceSandbox
from sync.identity import normalise_email
from sync.timeutil import parse_timestamp

START = datetime(2026, 10, 1, tzinfo=UTC)
SEED = 2026
TOLERANCE = timedelta(seconds=2)


class Run:
    """One full simulated quarter: seeding, handover, sales work, ground truth."""

    def __init__(self, people: int = 200, rates: TeamRates | None = None) -> None:
        self.clock = SimClock(START, speed=0.0)
        self.hubspot = HubSpotSandbox(clock=self.clock)
        self.salesforce = SalesforceSandbox(clock=self.clock)
        self.people = generate_population(people, SEED, "mixed", START, span_days=30)
        self.seeder = PopulationSeeder(self.hubspot, self.people, self.clock)
        self.team = SalesTeam(self.salesforce, self.hubspot, self.clock, seed=SEED, rates=rates)
        self.handed: set[str] = set()
        self.lead_created: dict[str, datetime] = {}

    def hand_over(self) -> None:
        """What Closedloop does at the MQL handover: create the Lead with the common ID."""
        for contact_id in self.hubspot.find_contacts("lifecyclestage", "marketingqualifiedlead"):
            if contact_id in self.handed:
                continue
            self.handed.add(contact_id)
            props = self.hubspot.get_contact(contact_id) or {}
            email = normalise_email(props["email"])
            self.salesforce.insert(
                "Lead",
                {
                    "Email": email,
                    "FirstName": props.get("firstname"),
                    "LastName": props.get("lastname") or "[not provided]",
                    "Company": props.get("company") or "[not provided]",
                    "Closedloop_Id__c": f"CL{int(contact_id):010d}",
                },
            )
            assert email is not None
            self.lead_created[email] = self.clock.now()

    def drive(self) -> None:
        """Jump from one due event to the next until nothing is left to do."""
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


def _by_email(rows: list[dict[str, Any]], field: str = "Email") -> dict[str, dict[str, Any]]:
    return {str(r[field]): r for r in rows}


def _close(a: Any, b: datetime | None) -> bool:
    parsed = parse_timestamp(a)
    return parsed is not None and b is not None and abs(parsed - b) <= TOLERANCE


def test_run_settles_with_every_mql_handed_over_and_nothing_refused(run: Run) -> None:
    mqls = sum(p.is_mql for p in run.people)
    assert len(run.handed) == mqls and len(run.team.handed_over()) == mqls
    assert run.team.pending() == 0 and run.seeder.pending() == 0
    assert run.team.failures == []
    kinds = {a.kind for a in run.team.executed}
    assert {"contact", "convert", "propose", "win", "lose", "disqualify", "recycle"} <= kinds


def test_hubspot_contacts_agree_with_ground_truth(run: Run) -> None:
    truth = run.truth()
    assert len(run.hubspot.contacts()) == 200 and not truth.unmatched
    for planned in run.people:
        contact = run.hubspot.get_contact(run.seeder.ids[planned.key])
        assert contact is not None
        person = truth.get(run.seeder.ids[planned.key])
        assert person is not None and person.email == normalise_email(contact["email"])
        assert contact["hs_analytics_source"] == person.source
        assert contact["hs_analytics_source_data_1"] == person.campaign
        assert contact["hubspotscore"] == str(person.score)
        expected_cycle = "marketingqualifiedlead" if person.reached("mql") else "lead"
        assert contact["lifecyclestage"] == expected_cycle
        assert (contact.get("hs_lead_status") == "BAD_TIMING") == (person.stage == "recycled")
        assert _close(contact["createdate"], person.created_at)
        if person.mql_at is not None:
            assert _close(contact["hs_lifecyclestage_marketingqualifiedlead_date"], person.mql_at)


def test_salesforce_records_agree_with_ground_truth(run: Run) -> None:
    truth = run.truth()
    leads = _by_email(
        run.salesforce.query(
            "SELECT Id, Email, Status, IsConverted, ConvertedOpportunityId, Closedloop_Id__c FROM Lead"
        )
    )
    opps = {
        str(o["Id"]): o
        for o in run.salesforce.query(
            "SELECT Id, StageName, IsClosed, IsWon, Amount, CloseDate, Loss_Reason__c FROM Opportunity"
        )
    }
    assert set(leads) == {p.email for p in truth.people if p.reached("mql")}
    for person in truth.people:
        lead = leads.get(person.email)
        if lead is None:
            assert person.stage == "lead"
            continue
        assert lead["Id"] == person.lead_id and lead["Closedloop_Id__c"] == person.closedloop_id
        expected_status = {
            "mql": "Open - Not Contacted",
            "sal": "Working - Contacted",
            "recycled": "Working - Contacted",
            "disqualified": "Closed - Not Converted",
        }.get(person.stage, "Closed - Converted")
        assert lead["Status"] == expected_status, person.email
        assert lead["IsConverted"] is person.reached("sql")
        if not person.reached("sql"):
            continue
        opp = opps[str(lead["ConvertedOpportunityId"])]
        assert opp["Id"] == person.opportunity_id
        expected_stage = {
            "sql": {"Qualification"},
            "opportunity": {"Proposal/Price Quote", "Negotiation/Review"},
            "won": {"Closed Won"},
            "lost": {"Closed Lost"},
        }.get(person.stage, {"Closed Won"})  # kickoff and later: customer success after the win
        assert opp["StageName"] in expected_stage
        assert opp["IsWon"] is (person.outcome == "won") and opp["IsClosed"] is (
            person.outcome in ("won", "lost")
        )
        if person.outcome in ("won", "lost"):
            assert opp["CloseDate"] == person.close_date
            assert opp["Loss_Reason__c"] == person.loss_reason
            assert (opp["Amount"] is None and person.amount is None) or float(opp["Amount"]) == person.amount
        if person.outcome == "won":
            assert 300_000 * 0.85 <= float(opp["Amount"]) <= 3_000_000


def test_contact_roles_link_each_opportunity_to_its_person(run: Run) -> None:
    truth = run.truth()
    rows = run.salesforce.query("SELECT OpportunityId, ContactId, IsPrimary FROM OpportunityContactRole")
    contacts = {str(c["Id"]): c for c in run.salesforce.query("SELECT Id, Email FROM Contact")}
    by_opp = {str(r["OpportunityId"]): normalise_email(contacts[str(r["ContactId"])]["Email"]) for r in rows}
    converted = [p for p in truth.people if p.reached("sql")]
    upgraded = [p for p in truth.people if p.expansion_opportunity_id]
    assert len(by_opp) == len(converted) + len(upgraded)
    assert all(by_opp[str(p.opportunity_id)] == p.email for p in converted)
    assert all(by_opp[str(p.expansion_opportunity_id)] == p.email for p in upgraded)


def test_stage_times_match_salesforce_history(run: Run) -> None:
    truth = run.truth()
    history = run.salesforce.query(
        "SELECT LeadId, Field, NewValue, CreatedDate FROM LeadHistory WHERE Field = 'Status'"
    )
    first_touch = {
        str(h["LeadId"]): h["CreatedDate"] for h in history if h["NewValue"] == "Working - Contacted"
    }
    for person in truth.people:
        if person.lead_id is None:
            continue
        sal = person.entered_at("sal")
        assert (person.lead_id in first_touch) == (sal is not None)
        if sal is not None:
            assert _close(first_touch[person.lead_id], sal)


def test_aggregates_match_counts_read_from_the_sandboxes(run: Run) -> None:
    truth = run.truth()
    leads = run.salesforce.query("SELECT Id, IsConverted, Status FROM Lead")
    opps = run.salesforce.query("SELECT Id, StageName, Amount, Loss_Reason__c FROM Opportunity")
    mqls = sum(
        1 for c in run.hubspot.contacts() if c["properties"].get("lifecyclestage") == "marketingqualifiedlead"
    )
    converted = sum(1 for r in leads if r["IsConverted"])
    won = [o for o in opps if o["StageName"] == "Closed Won"]
    lost = [o for o in opps if o["StageName"] == "Closed Lost"]
    assert truth.reached_counts()["mql"] == mqls == len(leads)
    assert truth.mql_to_sql_rate() == pytest.approx(converted / mqls)
    assert truth.sql_to_won_rate() == pytest.approx(len(won) / converted)
    assert sum(truth.won_amount_by_campaign().values()) == pytest.approx(sum(float(o["Amount"]) for o in won))
    reasons: dict[str, int] = {}
    for o in lost:
        reasons[o["Loss_Reason__c"]] = reasons.get(o["Loss_Reason__c"], 0) + 1
    assert truth.loss_reasons() == reasons
    assert truth.sla_first_touch()["never"] == sum(1 for r in leads if r["Status"] == "Open - Not Contacted")
