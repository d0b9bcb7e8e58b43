"""Compare what Closedloop produced with the ground truth of a sandbox run.

Everything is read from the sandboxes' own records and from Closedloop's store; the expected
values come only from :class:`GroundTruth`. Used by the end-to-end tests and the demo.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from sqlalchemy import select

from sandboxes.ground_truth import GroundTruth, PersonTruth
from sandboxes.salesforce import SalesforceSandbox
from sync.identity import normalise_email
from sync.store.db import Store
from sync.store.models import MatchKey, Person, Transition
from sync.timeutil import parse_timestamp


@dataclass
class Verdict:
    """Mismatches found, by kind; empty means Closedloop agrees with the ground truth."""

    checked_people: int = 0
    mismatches: dict[str, list[str]] = field(default_factory=dict)

    def add(self, kind: str, message: str) -> None:
        self.mismatches.setdefault(kind, []).append(message)

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def summary(self, examples: int = 3) -> str:
        if self.ok:
            return f"all {self.checked_people} people match the ground truth"
        lines = [
            f"{kind}: {len(items)} (e.g. {'; '.join(items[:examples])})"
            for kind, items in self.mismatches.items()
        ]
        return "\n".join(lines)


class MarketingContacts(Protocol):
    """The marketing tool's people as HubSpot-shaped contacts (the HubSpot sandbox, or a view of Marketo's)."""

    def contacts(self) -> list[dict[str, Any]]: ...


def _number(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value)) if value not in (None, "") else None
    except InvalidOperation:
        return None


def verify(
    truth: GroundTruth,
    store: Store,
    marketing: MarketingContacts,
    salesforce: SalesforceSandbox | None,
    check_times: bool = True,
) -> Verdict:
    """Check stages, transition paths, closed-loop properties and the absence of duplicates.

    ``marketing`` is the HubSpot sandbox or :class:`sandboxes.marketo.people.MarketoPeople`.
    Without ``salesforce`` one HubSpot portal played both roles: the handover is the contact's
    lead status being set (there is no Lead to count).
    """
    verdict = Verdict()
    contacts_by_email: dict[str, list[dict[str, Any]]] = {}
    for contact in marketing.contacts():
        if contact.get("archived"):
            continue
        email = normalise_email(contact["properties"].get("email"))
        if email:
            contacts_by_email.setdefault(email, []).append(contact)
    if salesforce is not None:
        leads = Counter(normalise_email(lead.get("Email")) for lead in salesforce.records("Lead"))
    else:  # one portal: a contact handed to sales carries a lead status
        leads = Counter(
            email
            for email, found in contacts_by_email.items()
            if any(c["properties"].get("hs_lead_status") for c in found)
        )
    for email, count in leads.items():
        if count > 1:
            verdict.add("duplicate_salesforce_lead", f"{email} x{count}")
    for email, contacts in contacts_by_email.items():
        if len(contacts) > 1:
            verdict.add("duplicate_hubspot_contact", f"{email} x{len(contacts)}")

    with store.session() as session:
        owners = dict(
            session.execute(
                select(MatchKey.key_value, MatchKey.common_id).where(MatchKey.key_type == "email")
            ).all()
        )
        people = {p.common_id: p for p in session.execute(select(Person)).scalars()}
        paths: dict[str, list[tuple[str, Any]]] = {}
        rows = session.execute(
            select(Transition.common_id, Transition.to_stage, Transition.occurred_at).order_by(
                Transition.occurred_at, Transition.id
            )
        )
        for owner, stage, when in rows:
            paths.setdefault(owner, []).append((stage, when))

    for person in truth.people:
        verdict.checked_people += 1
        found = owners.get(person.email)
        if found is None or found not in people:
            verdict.add("unknown_person", person.email)
            continue
        cid = found
        if people[cid].stage != person.stage:
            verdict.add("final_stage", f"{person.email}: {people[cid].stage} != {person.stage}")
        got = paths.get(cid, [])
        if [s for s, _ in got] != [s for s, _ in person.path]:
            verdict.add("path", f"{person.email}: {[s for s, _ in got]} != {[s for s, _ in person.path]}")
        elif check_times:
            for (stage, at), (_s, expected) in zip(got, person.path, strict=True):
                if abs((at - expected).total_seconds()) > 1.0:
                    verdict.add(
                        "transition_time",
                        f"{person.email} {stage}: {at.isoformat()} != {expected.isoformat()}",
                    )
        if person.mql_at is not None and leads.get(person.email, 0) != 1:
            verdict.add("handover", f"{person.email}: {leads.get(person.email, 0)} Salesforce leads")
        if person.mql_at is None and leads.get(person.email, 0):
            verdict.add("early_handover", person.email)
        _check_contact(verdict, person, contacts_by_email.get(person.email, []))
    return verdict


def _check_contact(verdict: Verdict, person: PersonTruth, contacts: list[dict[str, Any]]) -> None:
    if not contacts:
        verdict.add("missing_hubspot_contact", person.email)
        return
    props = contacts[0]["properties"]
    if person.mql_at is None:
        return  # never handed to sales: no closed loop expected
    if props.get("closedloop_stage") != person.stage:
        verdict.add("closedloop_stage", f"{person.email}: {props.get('closedloop_stage')} != {person.stage}")
    if props.get("closedloop_outcome") != person.outcome:
        verdict.add(
            "closedloop_outcome", f"{person.email}: {props.get('closedloop_outcome')} != {person.outcome}"
        )
    if (props.get("closedloop_loss_reason") or None) != person.loss_reason:
        verdict.add(
            "loss_reason", f"{person.email}: {props.get('closedloop_loss_reason')} != {person.loss_reason}"
        )
    # The closed loop reports the primary opportunity: the upgrade one once customer success opened it.
    upgraded = person.expansion_opportunity_id is not None
    amount = person.expansion_amount if upgraded else person.amount
    close_date = person.expansion_close_date if upgraded else person.close_date
    if amount is not None and _number(props.get("closedloop_amount")) != Decimal(amount):
        verdict.add("amount", f"{person.email}: {props.get('closedloop_amount')} != {amount}")
    if close_date and props.get("closedloop_close_date") != close_date:
        got = parse_timestamp(props.get("closedloop_close_date"))
        if got is None or got.date().isoformat() != close_date:
            verdict.add("close_date", f"{person.email}: {props.get('closedloop_close_date')} != {close_date}")
