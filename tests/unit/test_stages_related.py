"""Stages proven by related records (an Account, Events): tiers, any-of, earliest entry, replay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync.connectors.contract import SFA, HistoryEvent
from sync.connectors.hubspot_ma import PROFILE as MA_PROFILE
from sync.connectors.salesforce_sfa import PROFILE as SFA_PROFILE
from sync.facts import Profiles
from sync.mapping import load_mapping
from sync.replay import replay
from sync.stages import PersonView, compute_stage, decide_transition, entered_at, evidence, tiers

MAPPING = load_mapping(Path(__file__).parents[1] / "fixtures" / "after_won.yaml")
PROFILES = Profiles(MA_PROFILE, SFA_PROFILE)
CONVERTED = {"Id": "00Q1", "Status": "Closed - Converted", "IsConverted": True, "Email": "a@b.co"}
WON = {"Id": "0061", "IsClosed": True, "IsWon": True, "StageName": "Closed Won", "Type": "New Customer"}
UPGRADE_WON = {**WON, "Id": "0062", "Type": "Existing Customer - Upgrade"}
UPGRADE_LOST = {**UPGRADE_WON, "IsWon": False, "StageName": "Closed Lost"}
KICKOFF = {"Id": "00U1", "Type": "Kickoff", "StartDateTime": "2026-03-05T01:00:00.000+0000"}
CALL = {"Id": "00U0", "Type": "Call", "StartDateTime": "2026-03-01T01:00:00.000+0000"}


def account(status: str | None) -> dict[str, Any]:
    return {"Id": "0011", "Customer_Status__c": status}


def view(opportunity: Any = WON, **related: list[dict[str, Any]]) -> PersonView:
    sfa = {"Lead": CONVERTED} | ({"Opportunity": opportunity} if opportunity else {})
    return PersonView(sfa=sfa, related=related)


def test_related_objects_rank_above_the_outcome_all_on_one_tier() -> None:
    assert MAPPING.related_objects() == ("Account", "Event", "Task")
    assert tiers(MAPPING) == {
        None: 0,
        "Lead": 1,
        "Contact": 2,
        "Opportunity": 3,
        "Account": 4,
        "Event": 4,
        "Task": 4,
    }
    assert MAPPING.sfa_fields("Event") == {"Type", "StartDateTime"}
    assert MAPPING.sfa_fields("Account") == {"Customer_Status__c", "OwnerId"}  # the CS team's owner
    assert MAPPING.sfa_fields("Task") == set()


@pytest.mark.parametrize(
    ("person", "expected"),
    [
        (view(), "won"),
        (view(Event=[CALL]), "won"),
        (view(Event=[CALL, KICKOFF]), "kickoff"),  # any of the person's events
        (view(Event=[KICKOFF], Account=[account("Onboarding")]), "kickoff"),
        (view(Event=[KICKOFF], Account=[account("Active")]), "customer"),
        (view(Account=[account("Active")]), "customer"),
        (view(UPGRADE_WON, Account=[account("Active")]), "expansion"),
        # A lost upgrade is older evidence than the customer's account: still a customer.
        (view(UPGRADE_LOST, Account=[account("Active")]), "customer"),
        (view(Account=[account("Churned")], Event=[KICKOFF]), "churned"),
        (view(UPGRADE_WON, Account=[account("Churned")]), "churned"),
        (view(Account=[]), "won"),
    ],
)
def test_compute_stage_with_related_records(person: PersonView, expected: str) -> None:
    assert compute_stage(MAPPING, person) == expected


def test_churned_leaves_from_kickoff_and_a_new_activation_moves_on() -> None:
    assert decide_transition(MAPPING, "won", "churned") == ["churned"]
    assert decide_transition(MAPPING, "churned", "customer") == ["customer"]
    assert decide_transition(MAPPING, "churned", "kickoff") == []
    assert decide_transition(MAPPING, "won", "customer") == ["kickoff", "customer"]


def test_entered_at_is_the_earliest_matching_record_and_evidence_is_that_record() -> None:
    later = {**KICKOFF, "Id": "00U2", "StartDateTime": "2026-03-09T01:00:00.000+0000"}
    person = view(Event=[later, CALL, KICKOFF])  # the earlier Call does not satisfy kickoff

    assert entered_at(MAPPING, "kickoff", person) == datetime(2026, 3, 5, 1, tzinfo=UTC)
    found = evidence(MAPPING, "kickoff", person)
    assert found is not None and found["Id"] == "00U1"
    assert entered_at(MAPPING, "kickoff", view(Event=[CALL])) is None
    assert evidence(MAPPING, "kickoff", view(Event=[CALL])) is None
    won = evidence(MAPPING, "won", person)
    assert won is not None and won["Id"] == "0061"


def test_a_reason_on_a_related_object_reads_its_first_record() -> None:
    person = view(Account=[account("Churned"), account("Active")])
    assert person.record("Account") == account("Churned")
    assert person.record("Opportunity") == WON
    assert view().record("Account") is None


_times = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC))
_event = st.builds(
    lambda kind, when, n: {"Id": f"00U{n}", "Type": kind, "StartDateTime": when.isoformat()},
    st.sampled_from(["Kickoff", "Call", "Meeting"]),
    _times,
    st.integers(0, 10_000),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_event, max_size=6), st.randoms())
def test_any_of_and_earliest_do_not_depend_on_order(events: list[dict[str, Any]], rnd: Any) -> None:
    shuffled = list(events)
    rnd.shuffle(shuffled)
    a, b = view(Event=events), view(Event=shuffled)
    kickoffs = [datetime.fromisoformat(e["StartDateTime"]) for e in events if e["Type"] == "Kickoff"]

    assert compute_stage(MAPPING, a) == compute_stage(MAPPING, b) == ("kickoff" if kickoffs else "won")
    assert (
        entered_at(MAPPING, "kickoff", a) == entered_at(MAPPING, "kickoff", b) == min(kickoffs, default=None)
    )


# ------------------------------------------------------------------------------------------------ replay

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def snap(hours: float, obj: str, rid: str, record: dict[str, Any], created: str = "") -> HistoryEvent:
    return HistoryEvent(at(hours), SFA, obj, rid, {"Id": rid, **record}, created)


def test_replay_passes_related_records_per_id_and_times_stages_by_their_history() -> None:
    history = [
        snap(0, "Lead", "00Q1", CONVERTED),
        snap(1, "Opportunity", "0061", WON, "2026-03-01"),
        snap(2, "Account", "0011", account("Onboarding")),
        # The kickoff meeting started at hour 3, logged at hour 5: entered at its start.
        snap(5, "Event", "00U1", {**KICKOFF, "StartDateTime": at(3).isoformat()}),
        snap(5, "Event", "00U9", {**CALL}),  # another event of the same person does not replace it
        snap(8, "Account", "0011", account("Active")),
        snap(30, "Account", "0011", account("Churned")),
    ]

    steps = replay(MAPPING, PROFILES, history)

    assert [(s.to_stage, s.at) for s in steps if s.at > at(1)] == [
        ("kickoff", at(3)),
        ("customer", at(8)),
        ("churned", at(30)),
    ]
    kickoff = next(s for s in steps if s.to_stage == "kickoff")
    assert (kickoff.role, kickoff.record_id) == (SFA, "00U1")
    assert next(s for s in steps if s.to_stage == "churned").record_id == "0011"


def test_replay_kickoff_booked_ahead_counts_when_seen_and_never_before_the_previous_step() -> None:
    ahead = snap(5, "Event", "00U1", {**KICKOFF, "StartDateTime": at(100).isoformat()})
    before_won = snap(5, "Event", "00U1", {**KICKOFF, "StartDateTime": at(-10).isoformat()})
    base = [snap(0, "Lead", "00Q1", CONVERTED), snap(1, "Opportunity", "0061", WON, "2026-03-01")]

    booked = {s.to_stage: s.at for s in replay(MAPPING, PROFILES, [*base, ahead])}
    early = {s.to_stage: s.at for s in replay(MAPPING, PROFILES, [*base, before_won])}

    assert booked["kickoff"] == at(5)
    assert early["kickoff"] == early["won"] == at(1)
