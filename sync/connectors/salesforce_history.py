"""Salesforce history as snapshots for replay.

- Lead: the current record rewound through LeadHistory (each tracked field's ``OldValue``;
  ``leadConverted`` rewinds ``IsConverted``), then played forward row by row.
- Opportunity: each OpportunityHistory row is a snapshot of StageName/Amount/CloseDate/Probability;
  IsClosed/IsWon follow from the stage name (:class:`StageFlags`). Without history rows only the
  current record is known, at its LastModifiedDate. The primary opportunity at *t* is the most
  recently created one created by *t*.
- Contact: no history is read; it exists from its CreatedDate with its current fields.
Finally every record's current state counts from its last modification.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sync.connectors.contract import SFA, HistoryEvent
from sync.timeutil import parse_timestamp

LEAD, CONTACT, OPPORTUNITY = "Lead", "Contact", "Opportunity"
LEAD_HISTORY_FIELDS = ("LeadId", "Field", "OldValue", "NewValue", "CreatedDate")
OPPORTUNITY_HISTORY_FIELDS = (
    "OpportunityId",
    "StageName",
    "Amount",
    "CloseDate",
    "Probability",
    "CreatedDate",
)
_OPP_TRACKED = ("StageName", "Amount", "CloseDate", "Probability")
Record = Mapping[str, Any]


def truthy(value: Any) -> bool:
    """Salesforce booleans arrive as JSON booleans or, from some paths, as text."""
    return value is True or str(value).lower() == "true"


class StageFlags:
    """IsClosed/IsWon per Opportunity stage name, learned from current records.

    OpportunityHistory keeps only the stage name; Salesforce's defaults seed the table and every
    current Opportunity read teaches its own stage's flags. An unknown name counts as open.
    """

    def __init__(self) -> None:
        self._flags: dict[str, tuple[bool, bool]] = {"Closed Won": (True, True), "Closed Lost": (True, False)}

    def learn(self, opportunity: Record) -> None:
        name = opportunity.get("StageName")
        if name:
            self._flags[str(name)] = (truthy(opportunity.get("IsClosed")), truthy(opportunity.get("IsWon")))

    def of(self, stage_name: Any) -> tuple[bool, bool]:
        return self._flags.get(str(stage_name), (False, False))


def lead_events(lead: Record, history: Sequence[Record]) -> list[HistoryEvent]:
    """The Lead rewound through its LeadHistory to its creation, then played forward row by row."""
    rows = sorted(history, key=lambda r: (str(r.get("CreatedDate") or ""), str(r.get("Id") or "")))
    snap = dict(lead)
    for row in reversed(rows):
        _apply_lead_row(snap, row, forward=False)
    lead_id = str(lead["Id"])
    events = []
    created = parse_timestamp(lead.get("CreatedDate"))
    if created is not None:
        events.append(HistoryEvent(created, SFA, LEAD, lead_id, dict(snap)))
    for row in rows:
        at = parse_timestamp(row.get("CreatedDate"))
        if _apply_lead_row(snap, row, forward=True) and at is not None:
            events.append(HistoryEvent(at, SFA, LEAD, lead_id, dict(snap)))
    last = parse_timestamp(lead.get("LastModifiedDate"))
    if last is not None:
        events.append(HistoryEvent(last, SFA, LEAD, lead_id, dict(lead)))
    return events


def _apply_lead_row(snap: dict[str, Any], row: Record, forward: bool) -> bool:
    field = str(row.get("Field") or "")
    if field == "created":
        return False
    if field == "leadConverted":
        snap["IsConverted"] = forward
        if not forward:
            for name in (
                "ConvertedContactId",
                "ConvertedOpportunityId",
                "ConvertedAccountId",
                "ConvertedDate",
            ):
                snap[name] = None
        return True
    snap[field] = row.get("NewValue") if forward else row.get("OldValue")
    return True


def contact_events(contact: Record) -> list[HistoryEvent]:
    """A Contact exists from its creation with its current fields."""
    created = parse_timestamp(contact.get("CreatedDate")) or parse_timestamp(contact.get("LastModifiedDate"))
    return [HistoryEvent(created, SFA, CONTACT, str(contact["Id"]), dict(contact))] if created else []


def opportunity_events(opp: Record, history: Sequence[Record], flags: StageFlags) -> list[HistoryEvent]:
    """One snapshot per OpportunityHistory row, then the current record at its last modification."""
    rows = sorted(history, key=lambda r: (str(r.get("CreatedDate") or ""), str(r.get("Id") or "")))
    opp_id, created = str(opp["Id"]), str(opp.get("CreatedDate") or "")
    events = []
    for row in rows:
        at = parse_timestamp(row.get("CreatedDate"))
        if at is None:
            continue
        snap = dict(opp)
        snap.update({f: row.get(f) for f in _OPP_TRACKED if f in row})
        snap["IsClosed"], snap["IsWon"] = flags.of(snap.get("StageName"))
        events.append(HistoryEvent(at, SFA, OPPORTUNITY, opp_id, snap, created))
    last = parse_timestamp(opp.get("LastModifiedDate")) or parse_timestamp(opp.get("CreatedDate"))
    if last is not None:
        events.append(HistoryEvent(last, SFA, OPPORTUNITY, opp_id, dict(opp), created))
    return events
