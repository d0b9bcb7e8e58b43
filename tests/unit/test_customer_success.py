"""Customer-success figures, owners per team and owner names, from raw store rows (SQLite and PostgreSQL).

Every expected figure is worked out by hand from the rows inserted here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from sync.facts import refresh_team_facts
from sync.funnel.customer_success import CsStages, cs_stages
from sync.funnel.report.json_csv import report_to_csv, report_to_json
from sync.mapping import Mapping, parse_mapping_text
from sync.owner_names import missing_owner_ids, owner_names, refresh_owner_names
from sync.reporting import funnel_report
from sync.sla_hooks import ConnectorFeedback, SlaHooks
from sync.stages import PersonView
from sync.store.db import Store
from sync.store.models import OwnerName, Person, RecordLink, SlaTimer, Transition
from tests.fakes import FakeMarketing, FakeSales

DEFAULT = (Path(__file__).parents[2] / "mappings" / "default.yaml").read_text(encoding="utf-8")
SINCE, UNTIL = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)
NOW = datetime(2026, 11, 25, tzinfo=UTC)


def cs_mapping() -> Mapping:
    """The default mapping: stages after the contract, the kickoff SLA, four teams and NPS."""
    return parse_mapping_text(DEFAULT, "default.yaml")


def at(month: int, day: int, hour: int = 0) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


# person -> (owner, owners per team, nps, merged, [(stage, time)])
PEOPLE: dict[str, tuple[str | None, dict[str, str] | None, int | None, bool, list[tuple[str, datetime]]]] = {
    "p1": ("005A", {"customer_success": "005C"}, 10, False,
           [("won", at(10, 1)), ("kickoff", at(10, 2)), ("customer", at(10, 5)), ("churned", at(11, 10))]),
    "p2": ("005A", None, 9, False,
           [("won", at(10, 3)), ("kickoff", at(10, 3, 6)), ("customer", at(10, 20)), ("expansion", at(11, 1))]),
    "p3": ("005B", {"customer_success": "005C"}, 5, False,
           [("won", at(10, 10)), ("kickoff", at(10, 15)), ("customer", at(11, 2))]),
    "p4": ("005B", None, 7, False, [("won", at(10, 12))]),
    # before the period: neither in won -> kickoff nor in a cohort; its later churn does not count
    "p5": (None, None, None, False,
           [("won", at(9, 1)), ("kickoff", at(9, 2)), ("customer", at(9, 15)), ("churned", at(10, 20))]),
    # churned before becoming a customer (data out of order): a customer, not churned
    "p6": (None, None, None, False, [("churned", at(11, 4)), ("customer", at(11, 5))]),
    "p7": (None, None, 0, True, []),  # merged away: its score is not counted
}  # fmt: skip
# kickoff SLA timers: p1 and p2 met, p3 breached (120 h > 3 business days)
TIMERS = [("p1", at(10, 1), "met"), ("p2", at(10, 3), "met"), ("p3", at(10, 10), "breached")]


def insert(session: Session) -> None:
    for cid, (owner, owners, nps, merged, moves) in PEOPLE.items():
        session.add(
            Person(common_id=cid, owner=owner, owners=owners, nps=None if nps is None else Decimal(nps),
                   merged_into="p1" if merged else None, attributes={}, created_at=at(9, 1), updated_at=NOW)
        )  # fmt: skip
        previous = None
        for stage, when in moves:
            session.add(
                Transition(
                    common_id=cid, from_stage=previous, to_stage=stage, occurred_at=when, recorded_at=when
                )
            )
            previous = stage
    for cid, started, status in TIMERS:
        session.add(
            SlaTimer(sla_id="kickoff", common_id=cid, started_at=started, due_at=started + timedelta(days=3),
                     status=status, feedback={})
        )  # fmt: skip
    session.add(OwnerName(owner_id="005C", name="佐藤 花子", fetched_at=NOW))


@pytest.fixture
def filled(store: Store) -> Store:
    with store.session() as session:
        insert(session)
    return store


def test_stage_ids_come_from_the_customer_success_team() -> None:
    assert cs_stages(cs_mapping()) == CsStages("won", "kickoff", "customer", "expansion", "churned")
    renamed = cs_mapping().model_copy(
        update={"declared_teams": [t for t in cs_mapping().teams() if t.id != "customer_success"]}
    )
    assert cs_stages(renamed) == CsStages()  # no such team: the standard ids


def test_customer_success_figures_from_raw_rows(filled: Store) -> None:
    report = funnel_report(filled, cs_mapping(), SINCE, UNTIL, now=NOW)
    cs = report.customer_success
    assert cs is not None
    k = cs.won_to_kickoff
    assert (k.count, k.median_hours, k.p90_hours) == (3, 24.0, 120.0)  # 6 h, 24 h, 120 h
    assert cs.kickoff_sla is not None and cs.kickoff_sla.compliance_rate == pytest.approx(2 / 3)
    assert [(c.cohort, c.customers, c.churned, c.rate) for c in cs.churn_by_cohort] == [
        ("2026-10", 2, 1, 0.5),
        ("2026-11", 2, 0, 0.0),
    ]
    assert (cs.customers, cs.expanded, cs.expansion_rate, cs.churn_rate) == (4, 1, 0.25, 0.25)
    assert cs.nps is not None and (cs.nps.responses, cs.nps.promoters, cs.nps.detractors) == (4, 2, 1)
    assert cs.nps.score == 25.0
    slow = report.slowest_step()
    assert slow is not None and (slow.from_stage, slow.to_stage) == ("won", "kickoff")


def test_nps_is_none_when_the_mapping_reads_no_score(filled: Store) -> None:
    mapping = cs_mapping().model_copy(update={"nps": None})
    cs = funnel_report(filled, mapping, SINCE, UNTIL, now=NOW).customer_success
    assert cs is not None and cs.nps is None


def test_breaches_belong_to_the_sla_teams_owner_shown_by_name(filled: Store) -> None:
    report = funnel_report(filled, cs_mapping(), SINCE, UNTIL, now=NOW)
    owners = {
        (g.value, g.met, g.breached) for g in report.sla_groups if g.dimension == "owner" and g.sla_id == "*"
    }
    assert owners == {("005C", 1, 1), ("005A", 1, 0)}  # p1, p3: CS owner 005C; p2: its current owner
    data = report_to_json(report)
    names = {row["value"]: row["name"] for row in data["sla_breakdown"] if row["dimension"] == "owner"}
    assert names == {"005C": "佐藤 花子", "005A": "005A"}  # no name read yet: the id
    assert data["customer_success"]["nps"]["score"] == 25.0
    assert data["customer_success"]["won_to_kickoff"]["median_hours"] == 24.0
    assert data["customer_success"]["churn_by_cohort"][0] == {
        "cohort": "2026-10", "customers": 2, "churned": 1, "rate": 0.5
    }  # fmt: skip
    assert data["slowest_step"]["to_stage"] == "kickoff"
    csv = report_to_csv(report)
    assert "sla_by_owner,佐藤 花子,*,breached,1" in csv
    assert "customer_success,churn_by_cohort,2026-10,rate,0.5" in csv
    assert "customer_success,,nps,score,25.0" in csv


def test_grouping_by_owner_shows_names(filled: Store) -> None:
    with filled.session() as session:
        session.add(OwnerName(owner_id="005A", name="Ken Baker", fetched_at=NOW))
    data = report_to_json(funnel_report(filled, cs_mapping(), SINCE, UNTIL, by="owner", now=NOW))
    names = {g["value"]: g["name"] for g in data["groups"]}
    assert names["005A"] == "Ken Baker" and names["005B"] == "005B"


def test_team_owners_and_nps_are_read_from_the_records() -> None:
    mapping = cs_mapping()
    person = Person(common_id="p", owners={"inside_sales": "005OLD"})
    view = PersonView(
        sfa={"Lead": {"OwnerId": ""}, "Opportunity": {"OwnerId": "005FS"}, "Contact": {"NPS__c": "8"}},
        related={"Account": [{"OwnerId": "005CS"}, {"OwnerId": "005X"}]},
    )
    refresh_team_facts(person, view, mapping)
    # a blank owner keeps the known one; a related object's first record is used
    assert person.owners == {"inside_sales": "005OLD", "field_sales": "005FS", "customer_success": "005CS"}
    assert person.nps == Decimal(8)
    refresh_team_facts(person, PersonView(sfa={"Contact": {"NPS__c": 11}}), mapping)
    assert person.nps == Decimal(8)  # outside 0-10: ignored


def test_owner_names_are_read_once_with_no_transaction_open(filled: Store) -> None:
    sales = FakeSales()
    sales.users = {"005A": "Ken Baker", "005B": "山田 太郎"}
    open_sessions = 0
    seen: list[tuple[list[str], int]] = []

    @contextmanager
    def sessions() -> Iterator[Session]:
        nonlocal open_sessions
        open_sessions += 1
        try:
            with filled.session() as session:
                yield session
        finally:
            open_sessions -= 1

    def lookup(ids: list[str]) -> dict[str, str]:
        seen.append((list(ids), open_sessions))
        return sales.owner_names(ids)

    assert refresh_owner_names(sessions, lookup, NOW) == 2  # 005C is named already
    assert seen == [(["005A", "005B"], 0)]
    with filled.session() as session:
        assert owner_names(session) == {"005A": "Ken Baker", "005B": "山田 太郎", "005C": "佐藤 花子"}
        assert missing_owner_ids(session) == []
    assert refresh_owner_names(sessions, lookup, NOW) == 0 and len(seen) == 1  # nothing asked again


def test_a_breach_task_goes_to_the_owner_of_the_team_the_sla_waits_on(store: Store) -> None:
    """A late kickoff is customer success's: its Salesforce task goes to the Account owner, not the
    opportunity's field sales owner; an SLA whose team has no owner of the person falls back."""
    mapping = cs_mapping()
    hooks, sales = SlaHooks(mapping), FakeSales()
    with store.session() as session:
        for cid, owners in (("p1", {"field_sales": "005FS", "customer_success": "005CS"}), ("p2", None)):
            when = at(11, 2)
            session.add(
                Person(
                    common_id=cid, stage="won", owner="005FS", owners=owners, created_at=when, updated_at=when
                )
            )
            session.add(
                RecordLink(
                    common_id=cid,
                    role="sfa",
                    connector="fake",
                    object_type="Contact",
                    record_id=f"003{cid}",
                    created_at=when,
                )
            )
            hooks.on_transition(session, cid, "won", at(11, 2, 1))
    with store.session() as session:
        feedback = ConnectorFeedback(session, FakeMarketing(), sales, {r.id: r.team for r in hooks.rules})
        breaches = hooks.detect(session, at(11, 20), feedback)
    assert sorted(b.sla_id for b in breaches) == ["kickoff", "kickoff"]
    feedback.send()
    assert {(f["record"], f["owner"]) for f in sales.follow_ups} == {("003p1", "005CS"), ("003p2", "005FS")}
