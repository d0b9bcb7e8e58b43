"""Salesforce history as snapshots for replay.

- Lead: the current record rewound through LeadHistory (each tracked field's ``OldValue``;
  ``leadConverted`` rewinds ``IsConverted``), then played forward row by row.
- Opportunity: each OpportunityHistory row is a snapshot of StageName/Amount/CloseDate/Probability;
  IsClosed/IsWon follow from the stage name (:class:`StageFlags`). Without history rows only the
  current record is known, at its LastModifiedDate. The primary opportunity at *t* is the most
  recently created one created by *t*.
- Account: the current record rewound through AccountHistory, like a Lead (its tracked fields).
- Contact, Event, Task: no history is read; each exists from its CreatedDate with its current fields.
Finally every record's current state counts from its last modification.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sync.connectors.contract import SFA, HistoryEvent
from sync.timeutil import parse_timestamp

LEAD, CONTACT, OPPORTUNITY, ACCOUNT = "Lead", "Contact", "Opportunity", "Account"
LEAD_HISTORY_FIELDS = ("LeadId", "Field", "OldValue", "NewValue", "CreatedDate")
ACCOUNT_HISTORY_FIELDS = ("AccountId", "Field", "OldValue", "NewValue", "CreatedDate")
# Field history objects read with the people: object -> (history object, its fields, parent field).
FIELD_HISTORY = {
    LEAD: ("LeadHistory", LEAD_HISTORY_FIELDS, "LeadId"),
    ACCOUNT: ("AccountHistory", ACCOUNT_HISTORY_FIELDS, "AccountId"),
}
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
    return field_history_events(LEAD, lead, history)


def field_history_events(obj: str, record: Record, history: Sequence[Record]) -> list[HistoryEvent]:
    """A record rewound through its field history (``OldValue``) to its creation, then played forward."""
    rows = sorted(history, key=lambda r: (str(r.get("CreatedDate") or ""), str(r.get("Id") or "")))
    snap = dict(record)
    for row in reversed(rows):
        _apply_row(snap, row, forward=False)
    record_id = str(record["Id"])
    events = []
    created = parse_timestamp(record.get("CreatedDate"))
    if created is not None:
        events.append(HistoryEvent(created, SFA, obj, record_id, dict(snap)))
    for row in rows:
        at = parse_timestamp(row.get("CreatedDate"))
        if _apply_row(snap, row, forward=True) and at is not None:
            events.append(HistoryEvent(at, SFA, obj, record_id, dict(snap)))
    last = parse_timestamp(record.get("LastModifiedDate"))
    if last is not None:
        events.append(HistoryEvent(last, SFA, obj, record_id, dict(record)))
    return events


def _apply_row(snap: dict[str, Any], row: Record, forward: bool) -> bool:
    field = str(row.get("Field") or "")
    if field == "created":
        return False
    if field == "leadConverted":  # LeadHistory only
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
    return existing_events(CONTACT, contact)


def existing_events(obj: str, record: Record) -> list[HistoryEvent]:
    """A record without history read (a Contact, an Event) exists from its creation as it is now."""
    created = parse_timestamp(record.get("CreatedDate")) or parse_timestamp(record.get("LastModifiedDate"))
    return [HistoryEvent(created, SFA, obj, str(record["Id"]), dict(record))] if created else []


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
