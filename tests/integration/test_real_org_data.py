"""What real orgs hold: leads entered before Closedloop, duplicate rules, and values too long for the store.

Against both emulators with the real clients, a PostgreSQL store and Redis-shared rate limits:

- an MQL whose email matches a Salesforce Lead or Contact nobody linked yet (identical, or differing
  in case) is handed over to that record — no second Lead, no DUPLICATES_DETECTED loop;
- a create that Salesforce's standard duplicate rule refuses links the person to the matched record,
  and the next sync stamps the common ID on it;
- a 60-character or quote-laden value typed into the common-ID field, a 330-character email and a
  64-character Salesforce common ID hold back nobody else: the others sync, PostgreSQL never sees a
  value too long for its column, and the one record Salesforce refuses gets its own recorded error.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from sandboxes.server import Sandboxes, start_sandboxes
from sync import operations
from sync.config import Settings
from sync.runtime import Runtime
from sync.setup import run_setup
from sync.store.models import Person, SyncError, Transition
from sync.timeutil import parse_timestamp
from tests.integration.harness import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

EXT = "Closedloop_Id__c"


@pytest.fixture
def org(tmp_path: Path, pg_url: str, redis_url: str) -> Iterator[tuple[Sandboxes, Runtime]]:
    boxes = start_sandboxes(tmp_path / "sandboxes")
    env = boxes.env() | {
        "CLOSEDLOOP_DATABASE_URL": pg_url,
        "CLOSEDLOOP_REDIS_URL": redis_url,
        "CLOSEDLOOP_MAPPINGS": str(ROOT / "mappings"),
        "CLOSEDLOOP_POLL_OVERLAP": "0",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    rt = Runtime.from_settings(Settings())
    try:
        mapping, _ = rt.mappings.get()
        run_setup(mapping, rt.ma, rt.sfa)
        yield boxes, rt
    finally:
        rt.store.dispose()
        boxes.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _mql(boxes: Sandboxes, email: str, **extra: str) -> str:
    return boxes.hubspot.seed_contact(
        {
            "email": email,
            "firstname": "Mia",
            "lastname": "Ito",
            "company": "Acme",
            "hubspotscore": "80",
            **extra,
        }
    )


def _sync_all(rt: Runtime, rounds: int = 3) -> None:
    """Poll and sync marketing first, then sales, a few rounds (our own writes come back once).

    Marketing first is the hard order: the MQL is handed over before any poll of sales has seen
    the lead that already exists there.
    """
    operations.configure(rt)  # what a worker runs: errors of a person resolved by a clean sync
    try:
        for _ in range(rounds):
            for role in ("ma", "sfa"):
                for batch in operations.poll(role):
                    operations.sync_people(batch)
    finally:
        operations.configure(None)


def _leads_by_email(boxes: Sandboxes) -> dict[str, list[dict[str, object]]]:
    out: dict[str, list[dict[str, object]]] = {}
    for lead in boxes.salesforce.records("Lead"):
        out.setdefault(str(lead.get("Email") or "").lower(), []).append(lead)
    return out


def _open_errors(rt: Runtime) -> list[SyncError]:
    with rt.store.session() as session:
        return list(session.scalars(select(SyncError).where(SyncError.status == "open")))


def test_an_mql_already_in_sales_is_handed_over_to_its_existing_record(
    org: tuple[Sandboxes, Runtime],
) -> None:
    boxes, rt = org
    sf = boxes.salesforce
    same = sf.insert("Lead", {"LastName": "Ito", "Company": "Acme", "Email": "same@example.com"})
    cased = sf.insert("Lead", {"LastName": "Ito", "Company": "Acme", "Email": "Cased.Person@Example.com"})
    account = sf.insert("Account", {"Name": "Acme"})
    contact = sf.insert("Contact", {"LastName": "Ito", "AccountId": account, "Email": "contact@example.com"})
    for email in ("same@example.com", "cased.person@example.com", "contact@example.com", "new@example.com"):
        _mql(boxes, email)

    _sync_all(rt)

    leads = _leads_by_email(boxes)
    assert [lead["Id"] for lead in leads["same@example.com"]] == [same]
    assert [lead["Id"] for lead in leads["cased.person@example.com"]] == [cased]
    assert "contact@example.com" not in leads  # the person is the existing Contact
    assert len(leads["new@example.com"]) == 1  # a person sales never had gets a new Lead
    with rt.store.session() as session:
        people = {p.email: p.common_id for p in session.scalars(select(Person))}
    assert sf.get("Lead", same)[EXT] == people["same@example.com"]  # type: ignore[index]
    assert sf.get("Lead", cased)[EXT] == people["cased.person@example.com"]  # type: ignore[index]
    assert sf.get("Contact", contact)[EXT] == people["contact@example.com"]  # type: ignore[index]
    assert _open_errors(rt) == []


def test_a_create_refused_by_the_duplicate_rule_links_the_matched_record(
    org: tuple[Sandboxes, Runtime],
) -> None:
    boxes, rt = org
    sf = boxes.salesforce
    # A Lead someone stamped with a value that is no common ID of ours: not adopted, not found as free,
    # so the handover tries to create and the standard duplicate rule names this Lead instead.
    taken = sf.insert(
        "Lead", {"LastName": "Ito", "Company": "Acme", "Email": "rule@example.com", EXT: "x" * 64}
    )
    _mql(boxes, "rule@example.com")

    _sync_all(rt, rounds=4)

    leads = _leads_by_email(boxes)
    assert [lead["Id"] for lead in leads["rule@example.com"]] == [taken]
    with rt.store.session() as session:
        person = session.scalars(select(Person).where(Person.email == "rule@example.com")).one()
    assert sf.get("Lead", taken)[EXT] == person.common_id  # type: ignore[index]
    assert [e for e in _open_errors(rt) if e.common_id == person.common_id] == []


def test_values_too_long_for_the_store_hold_back_nobody(org: tuple[Sandboxes, Runtime]) -> None:
    boxes, rt = org
    _mql(boxes, "long-id@example.com", closedloop_id="C" * 60)
    _mql(boxes, "quoted@example.com", closedloop_id="zz' OR Id != '")
    _mql(boxes, ("x" * 320) + "@example.com")
    boxes.salesforce.insert(
        "Lead", {"LastName": "Long", "Company": "Acme", "Email": "sf-long@example.com", EXT: "L" * 64}
    )
    for n in range(5):
        _mql(boxes, f"fine{n}@example.com")

    _sync_all(rt)

    leads = _leads_by_email(boxes)
    for email in ["long-id@example.com", "quoted@example.com", *(f"fine{n}@example.com" for n in range(5))]:
        assert len(leads.get(email, [])) == 1, email
    with rt.store.session() as session:
        ids = set(session.scalars(select(Person.common_id)))
    assert "C" * 60 not in ids and "zz' OR Id != '" not in ids and "L" * 64 not in ids
    assert all(len(cid) <= 40 for cid in ids)
    # The one record Salesforce cannot hold (its Email field takes 80 characters) is refused alone.
    [error] = _open_errors(rt)
    assert (error.role, error.category, error.code) == ("sfa", "validation", "STRING_TOO_LONG")
    with rt.store.session() as session:
        refused = session.get(Person, error.common_id)
    assert refused is not None and refused.email is None  # 334 characters: no address, not stored


@pytest.mark.parametrize("tracked", [True, False], ids=["tracked", "untracked"])
def test_lead_status_history_tracking_decides_what_a_fast_rep_leaves_in_the_log(
    org: tuple[Sandboxes, Runtime], tracked: bool
) -> None:
    """Field history tracking is an org setting: setup says which stages lose their own times without it.

    A rep works a lead and disqualifies it a second later, between two polls. With Lead.Status
    tracked, LeadHistory keeps both changes and the log shows SAL at its own time; without it only
    the last state is known, the log goes straight to disqualified, and setup said so beforehand.
    """
    boxes, rt = org
    sf = boxes.salesforce
    sf.set_history_tracking("Lead", "Status", tracked)
    mapping, _ = rt.mappings.get()
    notes = [n for n in run_setup(mapping, rt.ma, rt.sfa, dry_run=True).notices if "Lead.Status" in n]
    assert {n.split(":")[1].strip() for n in notes} == (
        set() if tracked else {"stage sal", "stage disqualified"}
    )

    _mql(boxes, "fast@example.com")
    _sync_all(rt)
    [lead] = _leads_by_email(boxes)["fast@example.com"]
    boxes.clock.advance(timedelta(minutes=5))
    sf.update("Lead", str(lead["Id"]), {"Status": "Working - Contacted"})
    worked = parse_timestamp(sf.get("Lead", str(lead["Id"]))["LastModifiedDate"])  # type: ignore[index]
    boxes.clock.advance(timedelta(seconds=1))
    sf.update("Lead", str(lead["Id"]), {"Status": "Closed - Not Converted"})
    _sync_all(rt)

    with rt.store.session() as session:
        person = session.scalars(select(Person).where(Person.email == "fast@example.com")).one()
        steps = session.execute(
            select(Transition.to_stage, Transition.occurred_at)
            .where(Transition.common_id == person.common_id)
            .order_by(Transition.occurred_at, Transition.id)
        ).all()
    path = [stage for stage, _ in steps]
    if tracked:
        assert path == ["lead", "mql", "sal", "disqualified"]
        assert dict(steps)["sal"] == worked
    else:
        assert path == ["lead", "mql", "disqualified"]
