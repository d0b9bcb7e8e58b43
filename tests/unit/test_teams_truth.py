"""Unit tests: the four teams' plans (shares, determinism) and the ground truth's SLA and customer figures.

Shares are counted from the fake Salesforce's records (tests/unit/test_population.py); the figures of
the tiny scripted case below are worked out by hand in the comments.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from sandboxes.customer_success import SHEET_FIELDS, add_jp_business_days, kickoff_due
from sandboxes.ground_truth import GroundTruth, PersonTruth
from sandboxes.sales_team import SalesTeam, TeamRates, person_rng, plan_for
from sync.funnel.business_time import Calendar
from tests.unit.test_population import UPGRADE, FakeHubSpot, FakeSalesforce, _clock, _worked_team

JST = ZoneInfo("Asia/Tokyo")
BUSY = TeamRates(contact_rate=1.0, mql_to_sql=0.9, sql_to_won=0.9, disqualify_share=0.5)


def test_jp_business_days_agree_with_closedloops_calendar() -> None:
    """Two independent implementations of the same rule (weekends, JP holidays, Tokyo, 09:00 start)."""
    calendar = Calendar.of("JP", tz="Asia/Tokyo")
    rng = random.Random(4)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for _ in range(2000):
        at = start + timedelta(minutes=rng.randrange(0, 2 * 365 * 24 * 60))
        for days in (0, 1, 3):
            assert add_jp_business_days(at, days) == calendar.add_business_days(at, days), (at, days)


def test_team_shares_within_tolerance_on_2000_leads() -> None:
    rates = BUSY
    team, sf, _hs = _worked_team(2000, seed=17, rates=rates)
    assert not team.failures
    leads = sf.records("Lead")
    converted = [lead for lead in leads if lead["IsConverted"]]
    incomplete = [lead for lead in converted if any(lead.get(f) in (None, "") for f in SHEET_FIELDS)]
    assert abs(len(incomplete) / len(converted) - rates.incomplete_sheet_share) < 0.04
    assert all(lead.get("OwnerId") for lead in leads)  # every handed-over lead has an inside sales owner
    won_at = {
        rid: at
        for at, sobject, rid, f in sf.log
        if sobject == "Opportunity" and f.get("StageName") == "Closed Won"
    }
    account_of = {lead["ConvertedOpportunityId"]: lead["ConvertedAccountId"] for lead in converted}
    kickoff = {e["WhatId"]: datetime.fromisoformat(e["StartDateTime"]) for e in sf.records("Event")}
    wins = [rid for rid in won_at if rid in account_of]
    on_time = late = never = 0
    for rid in wins:
        at = kickoff.get(account_of[rid])
        if at is None:
            never += 1
        elif at <= kickoff_due(won_at[rid]):
            on_time += 1
        else:
            late += 1
    assert abs(never / len(wins) - rates.no_kickoff_share) < 0.03
    assert abs(late / len(wins) - rates.kickoff_late_share) < 0.04
    accounts = [sf.tables["Account"][account_of[rid]] for rid in wins]
    customers = [a for a in accounts if a.get("Customer_Status__c") in ("Active", "Churned")]
    assert len(customers) == on_time + late  # every kicked-off account goes live, no other
    churned = sum(a["Customer_Status__c"] == "Churned" for a in customers)
    upgraded = {o["AccountId"] for o in sf.records("Opportunity") if o.get("Type") == UPGRADE}
    assert upgraded <= {a["Id"] for a in customers if a["Customer_Status__c"] == "Active"}
    assert abs(churned / len(customers) - rates.churn_share) < 0.04
    assert abs(len(upgraded) / len(customers) - rates.expansion_share) < 0.04
    scored = [c for c in sf.records("Contact") if c.get("NPS__c") is not None]
    assert abs(len(scored) / len(customers) - rates.nps_share) < 0.05


def test_team_plans_are_deterministic_and_leave_the_funnel_plan_alone() -> None:
    clock = _clock()
    sf, hs = FakeSalesforce(clock), FakeHubSpot(clock)
    for i in range(300):
        sf.insert("Lead", {"Email": f"p{i}@example.com", "Company": "Acme"})
    one, two = SalesTeam(sf, hs, clock, seed=3, rates=BUSY), SalesTeam(sf, hs, clock, seed=3, rates=BUSY)
    one.discover(), two.discover()
    assert one.plans == two.plans
    other = SalesTeam(sf, hs, clock, seed=4, rates=BUSY)
    other.discover()
    assert other.plans != one.plans
    for lead_id, plan in one.plans.items():
        person = one._people[lead_id]
        funnel = plan_for(person_rng(3, str(person.email)), person.created_at, BUSY)
        assert [a for a in plan if a.kind in {f.kind for f in funnel}] == funnel
        assert [a.due for a in plan] == sorted(a.due for a in plan)
        assert plan[0].kind == "assign"
        dues = [a.due for a in plan]
        assert all(b - a >= timedelta(seconds=1) for a, b in zip(dues, dues[1:], strict=False))


def test_rates_validation_of_team_shares() -> None:
    with pytest.raises(ValueError):
        TeamRates(kickoff_late_share=0.9, no_kickoff_share=0.2)
    with pytest.raises(ValueError):
        TeamRates(churn_share=0.6, expansion_share=0.5)
    with pytest.raises(ValueError):
        TeamRates(nps_share=1.5)


# ------------------------------------------------------------------------------------ by hand


def _jst(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=JST).astimezone(UTC)


def _person(email: str, mql: datetime, path: list[tuple[str, datetime]], **kw: object) -> PersonTruth:
    base = [("lead", mql - timedelta(days=1)), ("mql", mql)]
    return PersonTruth(
        key=email,
        email=email,
        hubspot_id=None,
        campaign=str(kw.pop("campaign", "webinar")),
        source="ORGANIC_SEARCH",
        score=60,
        created_at=mql - timedelta(days=1),
        mql_at=mql,
        path=base + path,
        lead_id=f"00Q{email}",
        **kw,  # type: ignore[arg-type]
    )


def _tiny() -> GroundTruth:
    mql = _jst(2026, 10, 26, 10, 0)  # Monday 26 Oct 2026 (ISO week 44)
    return GroundTruth(
        [
            # a: touched in 2 h (met), full sheet (met), won Fri 30 Oct 10:00 JST; 3 Nov is Culture Day,
            # so the kickoff is due Thu 5 Nov 10:00 JST; kicked off 5 Nov 09:30 JST (met); customer in
            # Nov, churned; NPS 10.
            _person(
                "a@x",
                mql,
                [
                    ("sal", mql + timedelta(hours=2)),
                    ("sql", mql + timedelta(days=2)),
                    ("opportunity", mql + timedelta(days=3)),
                    ("won", _jst(2026, 10, 30, 10, 0)),
                    ("kickoff", _jst(2026, 11, 5, 9, 30)),
                    ("customer", _jst(2026, 11, 7, 12, 0)),
                    ("churned", _jst(2026, 12, 1, 12, 0)),
                ],
                is_rep="Haruka Tanaka",
                cs_rep="Yuki Nakamura",
                sheet_blank=[],
                nps=10,
            ),
            # b: touched after 30 h (breached), sheet missing Budget (breached), won Sat 31 Oct 12:00 JST:
            # the clock starts Mon 2 Nov 09:00, due Fri 6 Nov 09:00 JST; kicked off 6 Nov 09:30 (breached,
            # 141.5 h after the win); customer in Nov, expanded; NPS 8.
            _person(
                "b@x",
                mql,
                [
                    ("sal", mql + timedelta(hours=30)),
                    ("sql", mql + timedelta(days=3)),
                    ("opportunity", mql + timedelta(days=4)),
                    ("won", _jst(2026, 10, 31, 12, 0)),
                    ("kickoff", _jst(2026, 11, 6, 9, 30)),
                    ("customer", _jst(2026, 11, 9, 12, 0)),
                    ("expansion", _jst(2026, 11, 20, 12, 0)),
                ],
                is_rep="Emily Carter",
                cs_rep="James Miller",
                sheet_blank=["Budget__c"],
                nps=8,
                campaign="partner",
            ),
            # c: never touched: breached once 24 h have passed.
            _person("c@x", mql, [], is_rep="Emily Carter"),
            # d: won Mon 9 Nov 10:00 JST, never kicked off: due Thu 12 Nov 10:00 JST, breached after that.
            _person(
                "d@x",
                mql,
                [
                    ("sal", mql + timedelta(hours=1)),
                    ("sql", mql + timedelta(days=1)),
                    ("won", _jst(2026, 11, 9, 10, 0)),
                ],
                is_rep="Haruka Tanaka",
                cs_rep="Yuki Nakamura",
                sheet_blank=[],
                nps=3,
            ),
        ]
    )


def test_sla_figures_by_hand() -> None:
    truth = _tiny()
    before = _jst(2026, 11, 12, 9, 0)  # d's kickoff timer still running
    after = _jst(2026, 11, 12, 11, 0)
    assert kickoff_due(_jst(2026, 10, 30, 10, 0)) == _jst(2026, 11, 5, 10, 0)
    assert kickoff_due(_jst(2026, 10, 31, 12, 0)) == _jst(2026, 11, 6, 9, 0)
    assert truth.sla_counts("first_touch", after) == {"met": 2, "breached": 2, "running": 0}
    assert truth.sla_counts("info_sheet", after) == {"met": 2, "breached": 1, "running": 0}
    assert truth.sla_counts("kickoff", before) == {"met": 1, "breached": 1, "running": 1}
    assert truth.sla_counts("kickoff", after) == {"met": 1, "breached": 2, "running": 0}
    assert truth.sla_by("owner", "first_touch", after) == {"Haruka Tanaka": (2, 0), "Emily Carter": (0, 2)}
    assert truth.sla_by("owner", "info_sheet", after) == {"Haruka Tanaka": (2, 0), "Emily Carter": (0, 1)}
    assert truth.sla_by("owner", "kickoff", after) == {"Yuki Nakamura": (1, 1), "James Miller": (0, 1)}
    assert truth.sla_by("team", "*", after) == {"inside_sales": (4, 3), "customer_success": (1, 2)}
    # Weeks of the timer starts: MQL and the conversions in W44; wins 30/31 Oct in W44, 9 Nov in W46.
    assert truth.sla_by("week", "*", after) == {"2026-W44": (5, 4), "2026-W46": (0, 1)}
    assert truth.sla_by("campaign", "kickoff", after) == {"webinar": (1, 1), "partner": (0, 1)}


def test_customer_figures_by_hand(tmp_path: object) -> None:
    truth = _tiny()
    # a: 30 Oct 10:00 -> 5 Nov 09:30 JST = 143.5 h; b: 31 Oct 12:00 -> 6 Nov 09:30 = 141.5 h.
    assert truth.won_to_kickoff_hours() == [143.5, 141.5]
    assert truth.median_won_to_kickoff_hours() == 142.5
    assert truth.churn_by_cohort() == {"2026-11": (1, 2)}  # a and b became customers in Nov; a churned
    assert truth.churn_rate_by_cohort() == {"2026-11": 0.5}
    assert truth.expansion_rate() == 0.5
    # Scores 10, 8, 3: one promoter, one detractor of three -> 0.0; without d: 50.0.
    assert truth.nps() == 0.0
    assert GroundTruth(p for p in truth.people if p.email != "d@x").nps() == 50.0
    assert truth.current_counts()["churned"] == 1 and truth.current_counts()["expansion"] == 1
    assert {p.email: p.outcome for p in truth.people} == {
        "a@x": "won",
        "b@x": "won",
        "c@x": "open",
        "d@x": "won",
    }
    again = [PersonTruth.from_dict(p.to_dict()) for p in truth.people]
    assert [p.to_dict() for p in again] == [p.to_dict() for p in truth.people]
