"""Contract test: the four teams' work (owners, information sheet, customer success) on the REAL Salesforce sandbox.

A quarter with generous qualification and win rates, so many people reach customer success. Every
expectation is read back from the sandbox (SOQL through ``salesforce.query``) and compared with the
ground truth; the SLA figures are recomputed from raw records with Closedloop's own business calendar
as a second, independent implementation of "3 business days, JP calendar, Asia/Tokyo".

Salesforce Object Reference (API 59.0) for the records read here: User (Name = FirstName + LastName,
Department), Lead.OwnerId / Opportunity.OwnerId / Account.OwnerId (reference to User), Event (WhoId
a Lead or Contact, WhatId an Account or Opportunity, StartDateTime), OpportunityContactRole
(OpportunityId, ContactId, Role, IsPrimary); converted Leads are read-only ("CANNOT_UPDATE_CONVERTED_LEAD",
"Converting Leads", Salesforce Help).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from sandboxes.customer_success import EXPANSION_TYPE, SHEET_FIELDS
from sandboxes.ground_truth import GroundTruth
from sandboxes.reps import DEPARTMENTS, REPS, ensure_users
from sandboxes.sales_team import TeamRates
from sandboxes.salesforce import SALES_USER_ID, SfError
from sync.funnel.business_time import Calendar
from sync.identity import normalise_email
from sync.timeutil import parse_timestamp
from tests.contract.test_sales_team import Run, _close

BUSY_TEAM = TeamRates(contact_rate=0.95, mql_to_sql=0.7, sql_to_won=0.8)


@pytest.fixture(scope="module")
def run() -> Run:
    result = Run(people=300, rates=BUSY_TEAM)
    result.drive()
    return result


@pytest.fixture(scope="module")
def truth(run: Run) -> GroundTruth:
    return run.truth()


def _users(run: Run) -> dict[str, str]:
    """User Id -> Name."""
    return {str(u["Id"]): str(u["Name"]) for u in run.salesforce.query("SELECT Id, Name FROM User")}


def _rows(run: Run, soql: str, key: str = "Id") -> dict[str, dict[str, Any]]:
    return {str(r[key]): r for r in run.salesforce.query(soql)}


def test_run_settles_and_reaches_every_customer_success_step(run: Run, truth: GroundTruth) -> None:
    assert run.team.pending() == 0 and run.team.failures == [] and not truth.unmatched
    kinds = {a.kind for a in run.team.executed}
    assert {"assign", "fill_sheet", "kickoff", "activate", "churn", "expand", "expand_win", "nps"} <= kinds
    reached = truth.reached_counts()
    assert reached["kickoff"] < reached["won"]  # some never kicked off
    assert reached["churned"] > 0 and reached["expansion"] > 0


def test_reps_are_named_users_created_once(run: Run) -> None:
    users = run.salesforce.query("SELECT Id, Name, Username, Department, IsActive FROM User")
    by_username = {u["Username"]: u for u in users}
    for rep in REPS:
        user = by_username[rep.username]
        assert user["Name"] == rep.name and user["Department"] == DEPARTMENTS[rep.team] and user["IsActive"]
    again = ensure_users(run.salesforce)
    assert len(run.salesforce.query("SELECT Id FROM User")) == len(users)  # nothing created twice
    assert {rep: by_username[rep.username]["Id"] for rep in REPS} == again


def test_every_record_is_owned_by_the_planned_rep(run: Run, truth: GroundTruth) -> None:
    users = _users(run)
    leads = _rows(run, "SELECT Id, OwnerId FROM Lead")
    opps = _rows(run, "SELECT Id, OwnerId FROM Opportunity")
    accounts = _rows(run, "SELECT Id, OwnerId FROM Account")
    handed = [p for p in truth.people if p.lead_id]
    assert handed and all(p.is_rep for p in handed)
    for p in handed:
        assert users[leads[str(p.lead_id)]["OwnerId"]] == p.is_rep
        if p.reached("sql"):
            assert users[opps[str(p.opportunity_id)]["OwnerId"]] == p.fs_rep
            owner = accounts[str(p.account_id)]["OwnerId"]
            if p.reached("won"):
                assert users[owner] == p.cs_rep
            else:  # never won: the account stays with whoever converted the lead
                assert owner == SALES_USER_ID and p.cs_rep is None
    cs_names = {r.name for r in REPS if r.team == "customer_success"}
    assert {p.cs_rep for p in truth.people if p.reached("won")} == cs_names


def test_information_sheet_is_filled_as_recorded_and_frozen_by_conversion(
    run: Run, truth: GroundTruth
) -> None:
    leads = _rows(run, f"SELECT Id, IsConverted, {', '.join(SHEET_FIELDS)} FROM Lead")
    converted = [p for p in truth.people if p.reached("sql")]
    assert any(p.sheet_blank for p in converted) and any(p.sheet_blank == [] for p in converted)
    for p in truth.people:
        lead = leads.get(str(p.lead_id))
        if lead is None:
            continue
        if not p.reached("sql"):
            assert p.sheet_blank is None and all(lead[f] is None for f in SHEET_FIELDS)
            continue
        assert lead["IsConverted"] and p.sheet_blank is not None
        assert [f for f in SHEET_FIELDS if lead[f] in (None, "")] == p.sheet_blank
    with pytest.raises(SfError) as refused:  # filled before conversion: afterwards nobody can
        run.salesforce.update("Lead", str(converted[0].lead_id), {"Need__c": "too late"})
    assert refused.value.code == "CANNOT_UPDATE_CONVERTED_LEAD"


def test_kickoff_events_match_the_truth(run: Run, truth: GroundTruth) -> None:
    users = _users(run)
    events = run.salesforce.query("SELECT Id, Type, WhoId, WhatId, StartDateTime, OwnerId FROM Event")
    by_account = {str(e["WhatId"]): e for e in events}
    assert len(by_account) == len(events) == truth.reached_counts()["kickoff"]
    for p in truth.people:
        event = by_account.get(str(p.account_id))
        if not p.reached("kickoff"):
            assert event is None
            continue
        assert event is not None and event["Type"] == "Kickoff" and event["WhoId"] == p.contact_id
        assert users[event["OwnerId"]] == p.cs_rep
        assert _close(event["StartDateTime"], p.entered_at("kickoff"))


def test_account_status_and_stage_order_match_the_truth(run: Run, truth: GroundTruth) -> None:
    accounts = _rows(run, "SELECT Id, Customer_Status__c, LastModifiedDate FROM Account")
    for p in truth.people:
        if p.account_id is None:
            continue
        expected = "Churned" if p.reached("churned") else "Active" if p.reached("customer") else None
        assert accounts[p.account_id]["Customer_Status__c"] == expected
        stages = [s for s, _at in p.path]
        if p.reached("customer"):
            assert stages[stages.index("won") :][:3] == ["won", "kickoff", "customer"]
            after_win = [at for _s, at in p.path[stages.index("won") :]]
            assert all((b - a) >= timedelta(hours=1) for a, b in zip(after_win, after_win[1:], strict=False))
        if p.reached("churned"):
            assert stages[-2:] == ["customer", "churned"] and not p.reached("expansion")


def test_expansion_opportunities_match_the_truth(run: Run, truth: GroundTruth) -> None:
    users = _users(run)
    opps = _rows(
        run, "SELECT Id, AccountId, Type, StageName, IsWon, Amount, CloseDate, OwnerId FROM Opportunity"
    )
    roles = run.salesforce.query("SELECT OpportunityId, ContactId, IsPrimary FROM OpportunityContactRole")
    contact_of = {str(r["OpportunityId"]): str(r["ContactId"]) for r in roles}
    upgrades = {rid: o for rid, o in opps.items() if o["Type"] == EXPANSION_TYPE}
    expanded = [p for p in truth.people if p.reached("expansion")]
    assert expanded and len(upgrades) == len(expanded)
    for p in expanded:
        opp = upgrades[str(p.expansion_opportunity_id)]
        assert opp["AccountId"] == p.account_id and opp["IsWon"] and opp["StageName"] == "Closed Won"
        assert float(opp["Amount"]) == p.expansion_amount and opp["CloseDate"] == p.expansion_close_date
        assert users[opp["OwnerId"]] == p.fs_rep
        assert contact_of[str(opp["Id"])] == p.contact_id


def test_nps_answers_match_the_truth(run: Run, truth: GroundTruth) -> None:
    contacts = _rows(run, "SELECT Id, Email, NPS__c FROM Contact")
    answered = [p for p in truth.people if p.nps is not None]
    assert answered and all(p.reached("customer") for p in answered)
    for p in truth.people:
        if p.contact_id is None:
            continue
        contact = contacts[p.contact_id]
        assert normalise_email(contact["Email"]) == p.email
        assert contact["NPS__c"] == (None if p.nps is None else float(p.nps))
        assert contact["NPS__c"] is None or 0 <= contact["NPS__c"] <= 10


def test_sla_figures_by_owner_agree_with_raw_records(run: Run, truth: GroundTruth) -> None:
    """first_touch and kickoff per owner, recomputed from history rows, events and users."""
    now = run.clock.now()
    users = _users(run)
    calendar = Calendar.of("JP", tz="Asia/Tokyo")
    leads = _rows(run, "SELECT Id, Email, OwnerId, ConvertedAccountId, ConvertedOpportunityId FROM Lead")
    touched: dict[str, datetime] = {}
    for h in run.salesforce.query(
        "SELECT LeadId, NewValue, CreatedDate FROM LeadHistory WHERE Field = 'Status' ORDER BY CreatedDate"
    ):
        if h["NewValue"] == "Working - Contacted":
            touched.setdefault(str(h["LeadId"]), parse_timestamp(h["CreatedDate"]))  # type: ignore[arg-type]
    won_at: dict[str, datetime] = {}
    for h in run.salesforce.query(
        "SELECT OpportunityId, StageName, CreatedDate FROM OpportunityHistory ORDER BY CreatedDate"
    ):
        if h["StageName"] == "Closed Won":
            won_at.setdefault(str(h["OpportunityId"]), parse_timestamp(h["CreatedDate"]))  # type: ignore[arg-type]
    kickoff = {
        str(e["WhatId"]): parse_timestamp(e["StartDateTime"])
        for e in run.salesforce.query("SELECT WhatId, StartDateTime FROM Event WHERE Type = 'Kickoff'")
    }
    account_owner = {
        str(a["Id"]): users[a["OwnerId"]] for a in run.salesforce.query("SELECT Id, OwnerId FROM Account")
    }
    first_touch: dict[str, list[int]] = {}
    kickoffs: dict[str, list[int]] = {}
    for lead in leads.values():
        mql = run.lead_created[normalise_email(lead["Email"]) or ""]  # the handover happens at the MQL
        touch = touched.get(str(lead["Id"]))
        if touch is not None or now - mql > timedelta(hours=24):
            met = touch is not None and touch - mql <= timedelta(hours=24)
            first_touch.setdefault(users[lead["OwnerId"]], [0, 0])[0 if met else 1] += 1
        won = won_at.get(str(lead["ConvertedOpportunityId"]))
        if won is None:
            continue
        due = calendar.add_business_days(won, 3)
        done = kickoff.get(str(lead["ConvertedAccountId"]))
        if done is not None or now > due:
            met = done is not None and done <= due
            kickoffs.setdefault(account_owner[str(lead["ConvertedAccountId"])], [0, 0])[0 if met else 1] += 1
    assert truth.sla_by("owner", "first_touch", now) == {k: tuple(v) for k, v in first_touch.items()}
    assert truth.sla_by("owner", "kickoff", now) == {k: tuple(v) for k, v in kickoffs.items()}
    team_total = truth.sla_by("team", "*", now)["customer_success"]
    assert team_total == tuple(map(sum, zip(*kickoffs.values(), strict=True)))
