"""What HubSpot deals mean for the funnel: won and lost from pipeline stage metadata, deal-contact
association types from the portal's labels, derived fields the mapping can test, and the history of
``dealstage`` and ``hs_lead_status`` as snapshots for replay.

Derived fields (documented in mappings/README.md, "HubSpot as the sales side"), added to each record
Closedloop reads and never written to HubSpot:

- on a deal: ``closedloop_is_closed`` and ``closedloop_is_won`` (booleans from the ``isClosed`` and
  ``probability`` metadata of the deal's stage in its pipeline: closed with probability 1.0 is won,
  any other closed stage is lost), ``closedloop_probability`` (a number), and
  ``closedloop_stage_entered_at`` (when ``dealstage`` took its current value, from its property
  history);
- on a contact: ``closedloop_lead_status_at`` (when ``hs_lead_status`` took its current value);
- on both: ``closedloop_modified_at`` (the record's last modification).

Stage names are never read: a renamed or translated "Closed Won" keeps working, and every pipeline
of the portal is understood the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sync.connectors.contract import SFA, HistoryEvent
from sync.connectors.hubspot import HubSpotConnector, HubSpotContact
from sync.timeutil import parse_timestamp

CONTACT, DEAL = "contact", "deal"
IS_CLOSED = "closedloop_is_closed"
IS_WON = "closedloop_is_won"
PROBABILITY = "closedloop_probability"
STAGE_ENTERED_AT = "closedloop_stage_entered_at"
LEAD_STATUS_AT = "closedloop_lead_status_at"
MODIFIED_AT = "closedloop_modified_at"
DERIVED = frozenset({IS_CLOSED, IS_WON, PROBABILITY, STAGE_ENTERED_AT, LEAD_STATUS_AT, MODIFIED_AT})
REFRESH_SECONDS = 300.0  # pipelines and labels change rarely; an unknown stage or type refreshes at once

Record = dict[str, Any]


@dataclass(frozen=True)
class StageMeta:
    """The part of a pipeline stage's metadata the funnel needs."""

    is_closed: bool
    probability: float | None

    @property
    def is_won(self) -> bool:
        return self.is_closed and self.probability is not None and self.probability >= 1.0


def _number(value: Any) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


class _Cached:
    """A value read from HubSpot, kept ``REFRESH_SECONDS`` (or until :meth:`stale` says otherwise)."""

    def __init__(self, load: Callable[[], Any], clock: Callable[[], float] = time.monotonic) -> None:
        self._load = load
        self._clock = clock
        self._value: Any = None
        self._at: float | None = None

    def get(self, refresh: bool = False) -> Any:
        now = self._clock()
        if refresh or self._at is None or now - self._at > REFRESH_SECONDS:
            self._value, self._at = self._load(), now
        return self._value


class PortalMeta:
    """Deal pipeline stages and the association types (contact-deal, task-contact) of one portal, read at
    run time."""

    def __init__(self, edge: HubSpotConnector) -> None:
        self._stages = _Cached(lambda: _stage_table(edge.deal_pipelines()))
        self._types = _Cached(
            lambda: {
                "deals": _type_ids(edge.association_types("deals", "contacts")),
                "contacts": _type_ids(edge.association_types("contacts", "deals")),
            }
        )
        self._task_types = _Cached(lambda: edge.association_types("tasks", "contacts"))

    def task_type_id(self) -> int:
        """The unlabeled HubSpot-defined association type from a task to a contact."""
        types: list[dict[str, Any]] = self._task_types.get()
        for spec in types:
            if spec.get("category") == "HUBSPOT_DEFINED" and not spec.get("label"):
                return int(spec["typeId"])
        raise LookupError("HubSpot lists no default association type from tasks to contacts")

    def stage(self, pipeline: Any, stage: Any) -> StageMeta | None:
        """The metadata of ``stage`` in ``pipeline`` (a stage unknown after a refresh: None)."""
        key = (str(pipeline or ""), str(stage or ""))
        table: dict[tuple[str, str], StageMeta] = self._stages.get()
        if key not in table and key[1]:
            table = self._stages.get(refresh=True)
        return table.get(key)

    def type_ids(self, from_type: str, seen: set[int] | None = None) -> set[int]:
        """Association type IDs (every label) that tie a record of ``from_type`` to the other object."""
        types: dict[str, set[int]] = self._types.get()
        if seen and not seen <= types[from_type]:  # a label created since the last read
            types = self._types.get(refresh=True)
        return types[from_type]


def _stage_table(pipelines: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], StageMeta]:
    table: dict[tuple[str, str], StageMeta] = {}
    for pipeline in pipelines:
        for stage in pipeline.get("stages") or []:
            meta = stage.get("metadata") or {}
            closed = str(meta.get("isClosed", "false")).lower() == "true"
            table[(str(pipeline.get("id")), str(stage.get("id")))] = StageMeta(
                closed, _number(meta.get("probability"))
            )
    return table


def _type_ids(specs: Sequence[Mapping[str, Any]]) -> set[int]:
    return {int(s["typeId"]) for s in specs if s.get("typeId") is not None}


def deal_flags(meta: PortalMeta, props: Mapping[str, Any]) -> Record:
    """The derived stage fields of a deal in ``props`` (its pipeline and dealstage)."""
    stage = meta.stage(props.get("pipeline"), props.get("dealstage"))
    if stage is None:
        return {IS_CLOSED: False, IS_WON: False, PROBABILITY: None}
    return {IS_CLOSED: stage.is_closed, IS_WON: stage.is_won, PROBABILITY: stage.probability}


def changed_at(history: Sequence[Mapping[str, Any]]) -> str | None:
    """When a property took its current value: the newest entry of its history (newest first)."""
    return str(history[0].get("timestamp")) if history else None


def deal_record(meta: PortalMeta, deal: HubSpotContact) -> Record:
    """A deal's properties with the derived fields."""
    record = dict(deal.properties)
    record["hs_object_id"] = deal.id
    record.update(deal_flags(meta, record))
    record[STAGE_ENTERED_AT] = changed_at(deal.history.get("dealstage", [])) or record.get("createdate")
    record[MODIFIED_AT] = deal.updated_at.isoformat() if deal.updated_at else None
    return record


def contact_record(contact: HubSpotContact) -> Record:
    """A contact's properties with the derived fields."""
    record = dict(contact.properties)
    record["hs_object_id"] = contact.id
    record[LEAD_STATUS_AT] = changed_at(contact.history.get("hs_lead_status", []))
    record[MODIFIED_AT] = contact.updated_at.isoformat() if contact.updated_at else None
    return record


def _oldest_first(history: Sequence[Mapping[str, Any]]) -> list[tuple[datetime, Any]]:
    out = [(at, h.get("value")) for h in history if (at := parse_timestamp(h.get("timestamp"))) is not None]
    return sorted(out, key=lambda pair: pair[0])


def contact_events(contact: HubSpotContact, same_portal: bool) -> list[HistoryEvent]:
    """The contact as a sales-side record at each change of ``hs_lead_status``.

    In one portal the contact is a sales record only once its lead status is set (the handover);
    otherwise it is one from its creation, with the lead status it had then.
    """
    current = contact_record(contact)
    changes = _oldest_first(contact.history.get("hs_lead_status", []))
    events: list[HistoryEvent] = []
    created = parse_timestamp(current.get("createdate"))
    if not same_portal and created is not None and (not changes or changes[0][0] > created):
        events.append(HistoryEvent(created, SFA, CONTACT, contact.id, current | {"hs_lead_status": None}))
    for at, value in changes:
        if same_portal and not value and not events:
            continue
        snap = current | {
            "hs_lead_status": value or None,
            LEAD_STATUS_AT: at.isoformat(),
            MODIFIED_AT: at.isoformat(),
        }
        events.append(HistoryEvent(at, SFA, CONTACT, contact.id, snap))
    return events


def deal_events(meta: PortalMeta, deal: HubSpotContact) -> list[HistoryEvent]:
    """The deal at each change of ``dealstage`` (its other properties as they are now)."""
    current = deal_record(meta, deal)
    created = str(current.get("createdate") or "")
    events = []
    for at, value in _oldest_first(deal.history.get("dealstage", [])):
        snap = current | {"dealstage": value} | deal_flags(meta, current | {"dealstage": value})
        snap |= {STAGE_ENTERED_AT: at.isoformat(), MODIFIED_AT: at.isoformat()}
        events.append(HistoryEvent(at, SFA, DEAL, deal.id, snap, created))
    born = parse_timestamp(current.get("createdate"))
    if not events and born is not None:
        events.append(HistoryEvent(born, SFA, DEAL, deal.id, current, created))
    return events
