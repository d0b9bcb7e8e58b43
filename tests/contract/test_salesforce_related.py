"""Stages after the sale from a person's related Salesforce records, over HTTPS against the sandbox.

A won opportunity, a kickoff Event and an Account whose Customer_Status__c goes Onboarding → Active →
Churned between two polls: read_people reads the Account (with its AccountHistory) and the Events in
the same Composite rounds as the person; history and replay yield kickoff at the Event's
StartDateTime and customer and churned at the AccountHistory times.

Object Reference: "AccountHistory" (AccountId, Field, OldValue, NewValue, CreatedDate), "Event"
(WhoId: a Lead or Contact; WhatId: e.g. an Account or Opportunity; StartDateTime), "Task";
REST API Developer Guide, "Composite" (at most 5 query subrequests per call, one API call).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sandboxes.common import SimClock
from sandboxes.salesforce import SalesforceSandbox
from sync.connectors.contract import SFA
from sync.connectors.hubspot_ma import PROFILE as MA_PROFILE
from sync.connectors.salesforce_sfa import STREAMS, SalesforceSales
from sync.facts import Profiles
from sync.identity import RecordRef
from sync.mapping import load_mapping
from sync.people import PersonState
from sync.replay import replay
from sync.stages import compute_stage
from tests.contract.test_salesforce_poll import _roundtrip, connected

ROOT = Path(__file__).parents[2]
MAPPING = load_mapping(ROOT / "tests" / "fixtures" / "after_won.yaml")
START = datetime(2026, 9, 1, 9, 0, tzinfo=UTC)
CID = "CID-R1"


@pytest.fixture
def org(tmp_path: Path) -> Iterator[tuple[SalesforceSandbox, SalesforceSales]]:
    with connected(tmp_path, MAPPING, SimClock(start=START, speed=0)) as pair:
        yield pair


def _close(a: datetime, b: datetime) -> bool:
    return abs(a - b) < timedelta(seconds=1)


def _won_customer(sandbox: SalesforceSandbox) -> dict[str, str]:
    """A lead worked, converted and won; its account onboarding. Returns the records' IDs."""
    lead = sandbox.insert(
        "Lead",
        {"LastName": "Sato", "Company": "Kaisha KK", "Email": "sato@example.jp", "Closedloop_Id__c": CID},
    )
    sandbox.update("Lead", lead, {"Status": "Working - Contacted"})
    sandbox.clock.advance(timedelta(hours=2))
    converted = {k: str(v) for k, v in sandbox.convert_lead(lead, opportunity_name="Kaisha deal").items()}
    sandbox.clock.advance(timedelta(days=3))
    sandbox.update("Opportunity", converted["opportunityId"], {"StageName": "Closed Won"})
    sandbox.update("Account", converted["accountId"], {"Customer_Status__c": "Onboarding"})
    return {"lead": lead, **converted}


def _event(sandbox: SalesforceSandbox, who: str, what: str, kind: str, start: datetime) -> str:
    return sandbox.insert(
        "Event",
        {
            "WhoId": who,
            "WhatId": what,
            "Type": kind,
            "Subject": kind,
            "StartDateTime": start,
            "DurationInMinutes": 60,
        },
    )


def test_kickoff_customer_and_churned_come_from_the_event_and_account_history(org: Any) -> None:
    sandbox, sales = org
    profiles = Profiles(MA_PROFILE, sales.profile)
    ids = _won_customer(sandbox)
    won_at = sandbox.clock.now()
    sandbox.clock.advance(timedelta(days=1))
    kickoff_at = sandbox.clock.now() - timedelta(hours=3)  # logged three hours after it started
    kickoff = _event(sandbox, ids["contactId"], ids["accountId"], "Kickoff", kickoff_at)
    _event(sandbox, ids["contactId"], ids["opportunityId"], "Meeting", won_at - timedelta(days=2))
    sandbox.insert("Task", {"WhoId": ids["contactId"], "Subject": "Call", "Type": "Call"})
    links = {CID: [RecordRef(SFA, "Lead", ids["lead"])]}
    first = sales.poll({}, timedelta(0))

    sandbox.counter.reset()
    states = sales.read_people([CID], links)
    history = sales.history(states)
    calls = sandbox.counter.total()

    state = states[CID]
    assert [a["Id"] for a in state.related["Account"]] == [ids["accountId"]]
    assert state.related["Account"][0]["Customer_Status__c"] == "Onboarding"
    assert sorted(e["Type"] for e in state.related["Event"]) == ["Kickoff", "Meeting"]
    assert "Task" not in state.related  # no stage names a Task: never read
    assert compute_stage(MAPPING, PersonState(CID, sfa_state=state).view()) == "kickoff"
    assert calls == 3  # person records; then what they point to, 7 queries in two Composite calls
    steps = replay(MAPPING, profiles, history[CID])
    at = {s.to_stage: s.at for s in steps}
    assert [s.to_stage for s in steps] == ["lead", "mql", "sal", "sql", "opportunity", "won", "kickoff"]
    assert _close(at["won"], won_at)
    assert at["kickoff"] == kickoff_at.replace(microsecond=0)  # the Event's StartDateTime
    kickoff_step = steps[-1]
    assert (kickoff_step.role, kickoff_step.record_id) == (SFA, kickoff)

    sandbox.clock.advance(timedelta(days=2))
    active_at = sandbox.clock.now()
    sandbox.update("Account", ids["accountId"], {"Customer_Status__c": "Active"})
    sandbox.clock.advance(timedelta(days=40))
    churned_at = sandbox.clock.now()
    sandbox.update("Account", ids["accountId"], {"Customer_Status__c": "Churned"})

    second = sales.poll(_roundtrip(first.cursors), timedelta(0))
    assert {r.record_id for c in second.candidates for r in c.records} == {ids["contactId"]}
    assert {c.common_id for c in second.candidates} == {CID}
    states = sales.read_people([CID], links)
    later = replay(MAPPING, profiles, sales.history(states)[CID], start="kickoff", after=at["kickoff"])

    assert [s.to_stage for s in later] == ["customer", "churned"]
    assert _close(later[0].at, active_at) and _close(later[1].at, churned_at)
    assert {s.record_id for s in later} == {ids["accountId"]}


def test_an_activity_reaches_its_person_through_who_or_what(org: Any) -> None:
    sandbox, sales = org
    ids = _won_customer(sandbox)
    first = sales.poll({}, timedelta(0))
    other = sandbox.insert(
        "Lead", {"LastName": "Kim", "Company": "K", "Email": "k@example.com", "Closedloop_Id__c": "CID-2"}
    )
    base = _roundtrip(first.cursors)

    _event(sandbox, other, ids["opportunityId"], "Call", sandbox.clock.now())
    batch = sales.poll(base, timedelta(0))

    found = {(ref.object_type, ref.record_id) for c in batch.candidates for ref in c.records}
    assert ("Lead", other) in found and ("Contact", ids["contactId"]) in found
    assert set(batch.cursors) == {*STREAMS, "Account", "Event"}
    event_refs = sales.candidates([RecordRef(SFA, "Event", sandbox.records("Event")[0]["Id"])])
    assert {c.common_id for c in event_refs} == {CID, "CID-2"}


def test_an_idle_poll_of_six_streams_costs_two_composite_calls(org: Any) -> None:
    sandbox, sales = org
    first = sales.poll({}, timedelta(0))
    sandbox.counter.reset()

    idle = sales.poll(_roundtrip(first.cursors), timedelta(0))

    assert len(sales.streams) == 6  # Lead, Contact, Opportunity, contact roles, Account, Event
    assert idle.candidates == [] and sandbox.counter.total() == 2


def test_untracked_account_fields_of_a_stage_are_a_notice(org: Any) -> None:
    sandbox, sales = org
    assert sales.history_notices(MAPPING) == []
    sandbox.set_history_tracking("Account", "Customer_Status__c", False)

    notices = sales.history_notices(MAPPING)

    assert len(notices) == 2 and all("Account.Customer_Status__c not history-tracked" in n for n in notices)
    assert {n.split(":")[1].strip() for n in notices} == {"stage customer", "stage churned"}
