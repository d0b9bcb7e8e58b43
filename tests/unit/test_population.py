"""Unit tests: the seeded population, the scripted sales team (against small fakes) and ground truth.

The fakes implement the same in-process methods as the HubSpot and Salesforce sandboxes, validate
picklist values like Salesforce does, and keep their own write log, so every expectation below is
computed from what the fakes saw, never from the code under test.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sandboxes.common import SimClock
from sandboxes.ground_truth import GroundTruth
from sandboxes.population import CAMPAIGNS, PopulationSeeder, generate_population, seed_hubspot
from sandboxes.sales_team import SalesTeam, TeamRates
from sync.identity import normalise_email as sync_normalise_email

START = datetime(2026, 10, 1, tzinfo=UTC)
LEAD_STATUSES = {
    "Open - Not Contacted",
    "Working - Contacted",
    "Closed - Converted",
    "Closed - Not Converted",
}
OPEN_STAGES = {"Prospecting", "Qualification", "Proposal/Price Quote", "Negotiation/Review"}
STAGES = OPEN_STAGES | {"Closed Won", "Closed Lost"}
LOSS_REASONS = {"Price", "Competitor", "No Budget", "No Decision", "Timing", "Product Fit", "Other"}
UPGRADE = "Existing Customer - Upgrade"  # customer success's expansion opportunities


def _new_business(sf: FakeSalesforce) -> list[dict[str, Any]]:
    """The opportunities lead conversion created (not customer success's upgrades)."""
    return [o for o in sf.records("Opportunity") if o.get("Type") != UPGRADE]


class FakeHubSpot:
    """Just enough of HubSpotSandbox: contacts with properties, and a write log."""

    def __init__(self, clock: SimClock) -> None:
        self.clock = clock
        self.store: dict[str, dict[str, str | None]] = {}
        self.log: list[tuple[datetime, str, str, dict[str, str | None]]] = []
        self._ids = itertools.count(1001)

    def seed_contact(self, properties: dict[str, str | None]) -> str:
        contact_id = str(next(self._ids))
        now = self.clock.now()
        self.store[contact_id] = dict(properties, createdate=now.isoformat())
        self.log.append((now, "create", contact_id, dict(properties)))
        return contact_id

    def update_contact(self, contact_id: str, properties: dict[str, str | None]) -> None:
        if contact_id not in self.store:
            raise KeyError(contact_id)
        self.store[contact_id].update(properties)
        self.log.append((self.clock.now(), "update", contact_id, dict(properties)))

    def get_contact(self, contact_id: str) -> dict[str, str | None] | None:
        return self.store.get(contact_id)

    def contacts(self) -> list[dict[str, Any]]:
        return [{"id": cid, "properties": dict(p), "archived": False} for cid, p in self.store.items()]


class FakeSalesforce:
    """Just enough of SalesforceSandbox: Lead/Contact/Account/Opportunity with Salesforce's rules."""

    def __init__(self, clock: SimClock) -> None:
        self.clock = clock
        self.tables: dict[str, dict[str, dict[str, Any]]] = {}
        self.log: list[tuple[datetime, str, str, dict[str, Any]]] = []
        self.queries: list[str] = []
        self._ids = itertools.count(1)

    def insert(self, sobject: str, fields: dict[str, Any]) -> str:
        record_id = f"{sobject[:3]}{next(self._ids):015d}"
        now = self.clock.now()
        record = {"Id": record_id, "CreatedDate": now.isoformat(), "IsDeleted": False, **fields}
        if sobject == "Lead":
            record.setdefault("Status", "Open - Not Contacted")
            record.setdefault("IsConverted", False)
        self.tables.setdefault(sobject, {})[record_id] = record
        return record_id

    def update(self, sobject: str, record_id: str, fields: dict[str, Any]) -> None:
        record = self.tables[sobject][record_id]
        if sobject == "Lead":
            if record["IsConverted"]:
                raise ValueError("CANNOT_UPDATE_CONVERTED_LEAD")
            if fields.get("Status", record["Status"]) not in LEAD_STATUSES:
                raise ValueError("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST")
        if sobject == "Opportunity":
            if fields.get("StageName", record["StageName"]) not in STAGES:
                raise ValueError("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST")
            if "Loss_Reason__c" in fields and fields["Loss_Reason__c"] not in LOSS_REASONS:
                raise ValueError("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST")
        record.update(fields)
        self.log.append((self.clock.now(), sobject, record_id, dict(fields)))

    def get(self, sobject: str, record_id: str) -> dict[str, Any] | None:
        record = self.tables.get(sobject, {}).get(record_id)
        return dict(record) if record else None

    def records(self, sobject: str) -> list[dict[str, Any]]:
        return [dict(r) for r in self.tables.get(sobject, {}).values()]

    def query(self, soql: str) -> list[dict[str, Any]]:
        """Only the shape the team sends: SELECT ... FROM Lead [WHERE CreatedDate >= x] ORDER BY ..."""
        match = re.fullmatch(
            r"SELECT [\w, ]+ FROM Lead(?: WHERE CreatedDate >= (\S+))? ORDER BY CreatedDate", soql
        )
        assert match is not None, soql
        since = datetime.fromisoformat(match.group(1).replace("Z", "+00:00")) if match.group(1) else None
        self.queries.append(soql)
        floor = since.isoformat() if since else ""  # same format as CreatedDate: string order is time order
        rows = [dict(r) for r in self.tables.get("Lead", {}).values() if r["CreatedDate"] >= floor]
        return sorted(rows, key=lambda r: r["CreatedDate"])

    def convert_lead(
        self,
        lead_id: str,
        converted_status: str = "Closed - Converted",
        opportunity_name: str | None = None,
        create_opportunity: bool = True,
    ) -> dict[str, str | None]:
        lead = self.tables["Lead"][lead_id]
        if lead["IsConverted"]:
            raise ValueError("already converted")
        account = self.insert("Account", {"Name": lead["Company"]})
        contact = self.insert("Contact", {"Email": lead["Email"], "AccountId": account})
        opp = self.insert(
            "Opportunity",
            {"Name": opportunity_name, "StageName": "Prospecting", "AccountId": account, "Amount": None},
        )
        lead.update(
            Status=converted_status,
            IsConverted=True,
            ConvertedAccountId=account,
            ConvertedContactId=contact,
            ConvertedOpportunityId=opp,
        )
        self.log.append((self.clock.now(), "Lead", lead_id, {"convert": True}))
        return {"accountId": account, "contactId": contact, "opportunityId": opp}


def _clock() -> SimClock:
    return SimClock(START, speed=0.0)  # time moves only when advanced: runs are reproducible


def _hand_over(sf: FakeSalesforce, emails: list[str]) -> list[str]:
    """Stand in for Closedloop's MQL handover: one Lead per email."""
    return [
        sf.insert(
            "Lead", {"Email": e, "LastName": "Doe", "Company": "Acme", "Closedloop_Id__c": f"CL{i:05d}"}
        )
        for i, e in enumerate(emails)
    ]


def _drive(clock: SimClock, team: SalesTeam, step: timedelta = timedelta(hours=2)) -> None:
    team.run_due()
    for _ in range(10_000):
        if team.pending() == 0:
            return
        clock.advance(step)
        team.run_due()
    raise AssertionError("sales team never finished")


def _worked_team(
    n: int,
    seed: int,
    rates: TeamRates | None = None,
    extra: Callable[[int], dict[str, str | None]] = lambda _i: {},
) -> tuple[SalesTeam, FakeSalesforce, FakeHubSpot]:
    clock = _clock()
    sf, hs = FakeSalesforce(clock), FakeHubSpot(clock)
    emails = [f"person{i}@example.com" for i in range(n)]
    for i, e in enumerate(emails):
        hs.seed_contact({"email": e, **extra(i)})
    _hand_over(sf, emails)
    team = SalesTeam(sf, hs, clock, seed=seed, rates=rates)
    _drive(clock, team)
    return team, sf, hs


# ------------------------------------------------------------------------------------ population


def test_population_is_deterministic_for_a_seed() -> None:
    assert generate_population(300, 7, "mixed") == generate_population(300, 7, "mixed")
    assert generate_population(300, 7, "mixed") != generate_population(300, 8, "mixed")


def test_population_distribution_roughly_as_configured() -> None:
    people = generate_population(2000, 11, "en", START, span_days=30)
    assert len(people) == 2000
    mql_share = sum(p.score >= 50 for p in people) / len(people)
    assert 0.45 <= mql_share <= 0.55
    lower = generate_population(2000, 11, "en", START, span_days=30, mql_share=0.3)
    assert 0.25 <= sum(p.score >= 50 for p in lower) / 2000 <= 0.35
    campaign_source = {c.name: c.source for c in CAMPAIGNS}
    seen = Counter(p.campaign for p in people)
    assert set(seen) == set(campaign_source)
    assert all(campaign_source[p.campaign] == p.source for p in people)
    assert all(START <= p.created_at < START + timedelta(days=30) for p in people)
    assert [p.created_at for p in people] == sorted(p.created_at for p in people)
    # Creation spread: each ten-day third holds a fair share.
    thirds = Counter(int((p.created_at - START) / timedelta(days=10)) for p in people)
    assert all(500 <= thirds[i] <= 800 for i in range(3))
    late = [p for p in people if p.mql_at is not None and p.mql_at > p.created_at]
    assert 0.2 * mql_share * 2000 < len(late) < 0.5 * mql_share * 2000
    for p in people:
        props = p.creation_properties()
        assert set(props) >= {"email", "firstname", "lastname", "company", "jobtitle", "phone"}
        assert props["hs_analytics_source"] == p.source and props["hs_analytics_source_data_1"] == p.campaign
        assert 0 <= p.score <= 100
        assert (p.mql_at is not None) == (p.score >= 50)
        created_as_mql = props["lifecyclestage"] == "marketingqualifiedlead"
        assert created_as_mql == (int(props["hubspotscore"] or 0) >= 50)
        if p in late:
            assert not created_as_mql and p.mql_properties()["hubspotscore"] == str(p.score)


@pytest.mark.parametrize("locale", ["en", "ja", "mixed"])
def test_emails_unique_after_normalisation(locale: str) -> None:
    people = generate_population(3000, 3, locale)  # type: ignore[arg-type]
    normalised = [sync_normalise_email(p.email) for p in people]
    assert None not in normalised
    assert len(set(normalised)) == len(people)
    assert all(p.normalised_email == sync_normalise_email(p.email) for p in people)


def test_ja_locale_is_full_width_mixed_case_and_padded() -> None:
    people = generate_population(500, 5, "ja")
    full_width = [p for p in people if any(0xFF01 <= ord(ch) <= 0xFF5E for ch in p.email)]
    padded = [p for p in people if p.email != p.email.strip()]
    mixed_case = [p for p in people if unicodedata.normalize("NFKC", p.email) != p.normalised_email.strip()]
    assert len(full_width) > 50 and len(padded) > 100 and len(mixed_case) > 100
    assert all(any(ord(ch) > 0x3000 for ch in p.lastname + p.firstname) for p in people)
    assert any("株式会社" in p.company for p in people)
    assert any(any(0xFF21 <= ord(ch) <= 0xFF3A for ch in p.company) for p in people)  # ＡＢＣ商事
    assert any(p.email != p.normalised_email for p in people)


def test_en_locale_has_apostrophes() -> None:
    people = generate_population(500, 5, "en")
    assert any("'" in p.lastname for p in people)
    assert any(p.company == "Macy's" for p in people)
    assert any("'" in p.normalised_email for p in people)  # legal in a local part; tests quoting downstream
    assert all(p.locale == "en" for p in people)


def test_seeding_writes_each_contact_and_late_mql_in_time_order() -> None:
    clock = _clock()
    hs = FakeHubSpot(clock)
    people = generate_population(200, 9, "mixed", START)
    ids = seed_hubspot(hs, people, clock)
    assert set(ids) == {p.key for p in people} and len(set(ids.values())) == 200
    times = [at for at, *_rest in hs.log]
    assert times == sorted(times)
    for p in people:
        stored = hs.store[ids[p.key]]
        assert stored["email"] == p.email
        assert stored["hubspotscore"] == str(p.score)
        assert stored["lifecyclestage"] == ("marketingqualifiedlead" if p.score >= 50 else "lead")
        writes = [(at, kind) for at, kind, cid, _props in hs.log if cid == ids[p.key]]
        assert writes[0][0] >= p.created_at
        if p.mql_at is not None and p.mql_at > p.created_at:
            assert writes[1][1] == "update" and writes[1][0] >= p.mql_at
        else:
            assert len(writes) == 1


def test_incremental_seeder_writes_only_what_is_due() -> None:
    clock = _clock()
    hs = FakeHubSpot(clock)
    people = generate_population(100, 2, "en", START, span_days=10)
    seeder = PopulationSeeder(hs, people, clock)
    total = seeder.pending()
    clock.advance(timedelta(days=5))
    done = seeder.run_due()
    due = [p for p in people if p.created_at <= START + timedelta(days=5)]
    assert len(hs.store) == len(due) and done >= len(due)
    assert seeder.pending() == total - done
    next_due = seeder.next_due()
    assert next_due is not None and next_due > START + timedelta(days=5)


# ------------------------------------------------------------------------------------ sales team


def test_team_executes_plans_in_time_order_with_valid_transitions() -> None:
    team, sf, _hs = _worked_team(300, seed=1)
    assert team.pending() == 0 and team.next_due() is None and not team.failures
    done = [a.done_at for a in team.executed]
    assert done == sorted(done)
    assert [a.due_at for a in team.executed] == sorted(a.due_at for a in team.executed)
    assert all(a.done_at >= a.due_at for a in team.executed)
    # Salesforce writes per lead/opportunity follow the funnel's order.
    lead_statuses: dict[str, list[str]] = {}
    for _at, sobject, rid, fields in sf.log:
        if sobject == "Lead" and "Status" in fields:
            lead_statuses.setdefault(rid, []).append(fields["Status"])
    allowed = (["Working - Contacted"], ["Working - Contacted", "Closed - Not Converted"])
    assert all(seq in allowed for seq in lead_statuses.values())
    opp_stages: dict[str, list[str]] = {}
    for _at, sobject, rid, fields in sf.log:
        if sobject == "Opportunity":
            opp_stages.setdefault(rid, []).append(fields["StageName"])
    upgrades = {rid for rid, o in sf.tables["Opportunity"].items() if o.get("Type") == UPGRADE}
    assert upgrades and all(opp_stages[rid] == ["Closed Won"] for rid in upgrades)  # created open, then won
    for rid, seq in opp_stages.items():
        if rid in upgrades:
            continue
        assert seq[0] == "Qualification" and seq[-1] in ("Closed Won", "Closed Lost")
        if seq[-1] == "Closed Won":
            assert seq == ["Qualification", "Proposal/Price Quote", "Negotiation/Review", "Closed Won"]


def test_team_is_deterministic_per_seed() -> None:
    _t1, sf1, hs1 = _worked_team(200, seed=42)
    _t2, sf2, hs2 = _worked_team(200, seed=42)
    _t3, sf3, _hs3 = _worked_team(200, seed=43)
    assert sf1.tables == sf2.tables and hs1.store == hs2.store and sf1.log == sf2.log
    assert sf1.tables != sf3.tables


def test_team_rates_within_tolerance_on_2000_leads() -> None:
    rates = TeamRates()
    team, sf, hs = _worked_team(2000, seed=5, rates=rates)
    leads = sf.records("Lead")
    n = len(leads)
    contacted = [lead for lead in leads if lead["Status"] != "Open - Not Contacted"]
    converted = [lead for lead in leads if lead["IsConverted"]]
    opps = _new_business(sf)
    won = [o for o in opps if o["StageName"] == "Closed Won"]
    lost = [o for o in opps if o["StageName"] == "Closed Lost"]
    assert abs(len(contacted) / n - rates.contact_rate) < 0.03
    assert abs(len(converted) / n - rates.mql_to_sql) < 0.03
    assert abs(len(won) / len(converted) - rates.sql_to_won) < 0.07
    assert len(won) + len(lost) == len(opps) == len(converted)
    assert all(o["Loss_Reason__c"] in LOSS_REASONS for o in lost)
    assert len({o["Loss_Reason__c"] for o in lost}) >= 5
    assert all(300_000 * 0.85 <= o["Amount"] <= 3_000_000 and o["CloseDate"] for o in won)
    # Not qualified but contacted: disqualified or recycled in the configured shares.
    unqualified = len(contacted) - len(converted)
    disqualified = sum(lead["Status"] == "Closed - Not Converted" for lead in leads)
    recycled = sum(p.get("hs_lead_status") == "BAD_TIMING" for p in hs.store.values())
    assert abs(disqualified / unqualified - rates.disqualify_share) < 0.06
    assert abs(recycled / unqualified - rates.recycle_share) < 0.06
    # First touch: mostly within 24 h of the Lead's creation, with a tail beyond.
    created = {lead["Id"]: datetime.fromisoformat(lead["CreatedDate"]) for lead in leads}
    first_touch = {
        rid: at
        for at, sobject, rid, f in reversed(sf.log)
        if sobject == "Lead" and f.get("Status") == "Working - Contacted"
    }
    late = sum((first_touch[rid] - created[rid]) > timedelta(hours=24) for rid in first_touch)
    assert abs(late / len(first_touch) - rates.late_touch_share) < 0.03
    # Some late touches can be late only because of the 2-hour driving step, never more than that.
    assert all(first_touch[rid] - created[rid] < timedelta(hours=122) for rid in first_touch)
    assert len(team.handed_over()) == n


def _rates_by(sf: FakeSalesforce, hs: FakeHubSpot, prop: str) -> dict[str, tuple[float, float]]:
    """Per value of a HubSpot property: (qualified share of leads, won share of qualified)."""
    value_of = {sync_normalise_email(p["email"]): p.get(prop) for p in hs.store.values()}
    groups: dict[str, list[dict[str, Any]]] = {}
    for lead in sf.records("Lead"):
        groups.setdefault(str(value_of[lead["Email"]]), []).append(lead)
    out: dict[str, tuple[float, float]] = {}
    for value, leads in groups.items():
        converted = [lead for lead in leads if lead["IsConverted"]]
        won = [
            c
            for c in converted
            if sf.tables["Opportunity"][c["ConvertedOpportunityId"]]["StageName"] == "Closed Won"
        ]
        out[value] = (len(converted) / len(leads), len(won) / len(converted))
    return out


def test_campaign_quality_tilts_qualification_and_wins() -> None:
    rates = TeamRates()
    quality = dict(rates.campaign_quality)
    good, poor = "partner-referral-program", "newsletter-2026-autumn"
    _team, sf, hs = _worked_team(
        3000, seed=8, rates=rates, extra=lambda i: {"hs_analytics_source_data_1": good if i % 2 else poor}
    )
    by_campaign = _rates_by(sf, hs, "hs_analytics_source_data_1")
    for name, tol_q, tol_w in ((good, 0.04, 0.07), (poor, 0.03, 0.09)):
        qualified, won = by_campaign[name]
        assert abs(qualified - rates.mql_to_sql * quality[name]) < tol_q
        assert abs(won - rates.sql_to_won * quality[name]) < tol_w


def test_score_tilts_qualification_but_not_wins() -> None:
    rates = TeamRates()
    _team, sf, hs = _worked_team(
        4000, seed=9, rates=rates, extra=lambda i: {"hubspotscore": "95" if i % 2 else "50"}
    )
    by_score = _rates_by(sf, hs, "hubspotscore")
    for score in (95, 50):
        qualified, won = by_score[str(score)]
        tilt = 1 + rates.score_effect * (score - rates.score_pivot)
        assert abs(qualified - rates.mql_to_sql * tilt) < 0.03
        assert abs(won - rates.sql_to_won) < 0.07


def test_discovery_only_reads_recent_leads() -> None:
    clock = _clock()
    sf, hs = FakeSalesforce(clock), FakeHubSpot(clock)
    team = SalesTeam(sf, hs, clock, seed=3)
    sf.insert("Lead", {"Email": "first@example.com", "Company": "A"})
    assert team.discover() == 1
    clock.advance(timedelta(days=2))
    sf.insert("Lead", {"Email": "second@example.com", "Company": "B"})
    assert team.discover() == 1 and team.discover() == 0
    assert "WHERE" not in sf.queries[0]
    since = datetime.fromisoformat(sf.queries[-1].split(">= ")[1].split(" ")[0].replace("Z", "+00:00"))
    second_created = datetime.fromisoformat(sf.records("Lead")[1]["CreatedDate"])
    assert second_created - timedelta(minutes=10) <= since <= second_created
    assert [h.email for h in team.handed_over()] == ["first@example.com", "second@example.com"]


def test_rates_validation() -> None:
    with pytest.raises(ValueError):
        TeamRates(contact_rate=0.1, mql_to_sql=0.2)
    with pytest.raises(ValueError):
        TeamRates(disqualify_share=0.8, recycle_share=0.3)


def test_team_ignores_leads_already_worked_and_records_refusals() -> None:
    clock = _clock()
    sf, hs = FakeSalesforce(clock), FakeHubSpot(clock)
    sf.insert("Lead", {"Email": "a@example.com", "Company": "A", "Status": "Working - Contacted"})
    team = SalesTeam(
        sf,
        hs,
        clock,
        seed=1,
        rates=TeamRates(contact_rate=1.0, mql_to_sql=0.0, recycle_share=1.0, disqualify_share=0.0),
    )
    assert team.discover() == 0
    sf.insert("Lead", {"Email": "nobody@example.com", "Company": "B"})  # no HubSpot contact to recycle
    _drive(clock, team)
    assert [f.kind for f in team.failures] == ["recycle"]
    assert [a.kind for a in team.executed] == ["assign", "contact"]


# ------------------------------------------------------------------------------------ ground truth


def _fake_stage(sf: FakeSalesforce, hs: FakeHubSpot, email: str, is_mql: bool) -> str:
    """The default funnel's final stage, read independently from the fakes' final records."""
    lead = next((r for r in sf.records("Lead") if r["Email"] == email), None)
    contact = next(p for p in hs.store.values() if sync_normalise_email(p["email"]) == email)
    if lead is None:
        return "mql" if is_mql else "lead"
    if lead["IsConverted"]:
        opp = sf.get("Opportunity", lead["ConvertedOpportunityId"])
        account = sf.get("Account", lead["ConvertedAccountId"])
        assert opp is not None and account is not None
        if account.get("Customer_Status__c") == "Churned":
            return "churned"
        upgrade = any(
            o.get("Type") == UPGRADE and o["StageName"] == "Closed Won" and o["AccountId"] == account["Id"]
            for o in sf.records("Opportunity")
        )
        if upgrade:
            return "expansion"
        if account.get("Customer_Status__c") == "Active":
            return "customer"
        kickoffs = [
            e for e in sf.records("Event") if e.get("WhatId") == account["Id"] and e["Type"] == "Kickoff"
        ]
        if kickoffs:
            return "kickoff"
        return {"Closed Won": "won", "Closed Lost": "lost"}.get(
            opp["StageName"], "sql" if opp["StageName"] in ("Prospecting", "Qualification") else "opportunity"
        )
    if lead["Status"] == "Closed - Not Converted":
        return "disqualified"
    if contact.get("hs_lead_status") == "BAD_TIMING":
        return "recycled"
    return "sal" if lead["Status"] == "Working - Contacted" else "mql"


def test_ground_truth_agrees_with_final_records(tmp_path: Path) -> None:
    clock = _clock()
    sf, hs = FakeSalesforce(clock), FakeHubSpot(clock)
    people = generate_population(600, 21, "mixed", START, span_days=20)
    seeder = PopulationSeeder(hs, people, clock)
    team = SalesTeam(sf, hs, clock, seed=21)
    handed: set[str] = set()
    while seeder.pending() or team.pending() or len(handed) < sum(p.is_mql for p in people):
        clock.advance(timedelta(hours=3))
        seeder.run_due()
        for cid, props in hs.store.items():  # stand in for Closedloop: hand every MQL over once
            if props.get("lifecyclestage") == "marketingqualifiedlead" and cid not in handed:
                handed.add(cid)
                email = sync_normalise_email(props["email"])
                sf.insert("Lead", {"Email": email, "LastName": "X", "Company": props["company"]})
        team.run_due()
    truth = GroundTruth.build(
        people, seeder.ids, team.executed, team.handed_over(), seeder.mql_times(), seeder.created_times()
    )
    assert len(truth.people) == 600 and not truth.unmatched
    for p in people:
        person = truth.get(seeder.ids[p.key])
        assert person is not None and truth.get(p.normalised_email) is person
        assert person.stage == _fake_stage(sf, hs, p.normalised_email, p.is_mql)
        assert [s for s, _at in person.path][:2] == (["lead", "mql"] if p.is_mql else ["lead"])
        times = [at for _s, at in person.path]
        assert times == sorted(times)
        if person.outcome in ("won", "lost"):
            opp = sf.get("Opportunity", str(person.opportunity_id))
            assert opp is not None and opp["CloseDate"] == person.close_date
            assert opp.get("Amount") == person.amount and opp.get("Loss_Reason__c") == person.loss_reason
    # Aggregates against counts taken straight from the fakes.
    leads = sf.records("Lead")
    opps = _new_business(sf)
    mqls = sum(p.is_mql for p in people)
    assert truth.reached_counts()["mql"] == mqls
    assert truth.mql_to_sql_rate() == pytest.approx(sum(r["IsConverted"] for r in leads) / mqls)
    wins = [o for o in opps if o["StageName"] == "Closed Won"]
    assert truth.sql_to_won_rate() == pytest.approx(len(wins) / len(opps))
    assert sum(truth.won_amount_by_campaign().values()) == sum(o["Amount"] for o in wins)
    assert sum(truth.loss_reasons().values()) == sum(o["StageName"] == "Closed Lost" for o in opps)
    assert sum(truth.current_counts().values()) == 600
    sla = truth.sla_first_touch()
    assert sla["never"] == sum(r["Status"] == "Open - Not Contacted" for r in leads)
    path = tmp_path / "truth.json"
    truth.to_json(path)
    again = GroundTruth.from_json(path)
    assert [p.to_dict() for p in again.people] == [p.to_dict() for p in truth.people]
    assert again.summary() == truth.summary()
