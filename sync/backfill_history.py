"""Reconstruct a person's stage transitions from the history both systems keep.

Choice: rather than a hand-written table from history events to stages, the history is replayed
as a sequence of *snapshots* of the person (HubSpot properties, Lead, Contact, primary Opportunity)
and the mapping's own stage conditions are evaluated on each one with :func:`sync.stages.compute_stage`
and :func:`sync.stages.decide_transition` — the same rules the engine applies to live changes. So an
admin's stage definitions apply to history exactly as they do from now on.

What each system tells us (and so what a snapshot holds at time *t*):
- HubSpot: ``createdate`` and one ``hs_lifecyclestage_<stage>_date`` per stage reached. Before the
  contact's last modification a snapshot holds only ``email``, ``createdate`` and the lifecycle
  stage in force at *t*; other properties (score, lead status) keep no history through these APIs,
  so their current values count from ``lastmodifieddate`` (the latest time they can have changed).
- Salesforce Lead: the current record rewound through LeadHistory (each tracked field's
  ``OldValue``; ``leadConverted`` rewinds ``IsConverted``), then played forward row by row.
- Opportunity: each OpportunityHistory row is a snapshot of StageName/Amount/CloseDate/Probability;
  IsClosed/IsWon follow from the stage name (:class:`StageFlags`). Without history rows only the
  current record is known, at its LastModifiedDate. The primary opportunity at *t* is the most
  recently created one created by *t* (as the engine's :attr:`PersonState.opportunity`).
- Contact: no history is read; it exists from its CreatedDate with its current fields.
Finally every record's current state counts from its last modification.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from collections.abc import Mapping as AbcMapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sync.connectors.contract import MA, SFA
from sync.connectors.hubspot import LIFECYCLE_ORDER
from sync.connectors.hubspot_ma import PROFILE as HUBSPOT_PROFILE
from sync.connectors.salesforce_sfa import PROFILE as SALESFORCE_PROFILE
from sync.facts import Profiles, detour_reason, to_decimal
from sync.mapping import Mapping
from sync.stages import PersonView, compute_stage, decide_transition
from sync.timeutil import parse_timestamp

Record = AbcMapping[str, Any]
# HubSpot's default lifecycle stages in pipeline order (ties on one timestamp go to the later one).
LIFECYCLE_STAGES = (*LIFECYCLE_ORDER, "other")
HISTORY_MA_PROPERTIES = ("createdate", "lastmodifieddate", "lifecyclestage") + tuple(
    f"hs_lifecyclestage_{s}_date" for s in LIFECYCLE_STAGES
)
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
_PART_ORDER = {"ma": 0, "lead": 1, "contact": 2, "opportunity": 3}


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
            self._flags[str(name)] = (_truthy(opportunity.get("IsClosed")), _truthy(opportunity.get("IsWon")))

    def of(self, stage_name: Any) -> tuple[bool, bool]:
        return self._flags.get(str(stage_name), (False, False))


@dataclass(frozen=True, slots=True)
class HistoryEvent:
    """The state of one record of a person from ``at`` on."""

    at: datetime
    part: str  # ma | lead | contact | opportunity
    record_id: str
    snapshot: Record
    created: str = ""  # opportunities: CreatedDate, to find the primary one


@dataclass(frozen=True, slots=True)
class Step:
    """One reconstructed transition."""

    to_stage: str
    from_stage: str | None
    at: datetime
    system: str
    record_id: str
    reason: str | None
    amount: Decimal | None


def hubspot_events(contact_id: str, props: Record) -> list[HistoryEvent]:
    """Snapshots of a HubSpot contact at its creation, each lifecycle stage date, and its last change."""
    created = parse_timestamp(props.get("createdate"))
    dates = [
        (when, index, stage)
        for index, stage in enumerate(LIFECYCLE_STAGES)
        if (when := parse_timestamp(props.get(f"hs_lifecyclestage_{stage}_date"))) is not None
    ]
    dates.sort()
    times = sorted({t for t in [created, *(d[0] for d in dates)] if t is not None})
    events = []
    for at in times:
        in_force = [stage for when, _i, stage in dates if when <= at]
        snap: dict[str, Any] = {"email": props.get("email"), "createdate": props.get("createdate")}
        if in_force:
            snap["lifecyclestage"] = in_force[-1]
        for when, _i, stage in dates:
            if when <= at:
                snap[f"hs_lifecyclestage_{stage}_date"] = props.get(f"hs_lifecyclestage_{stage}_date")
        events.append(HistoryEvent(at, "ma", contact_id, snap))
    last = parse_timestamp(props.get("lastmodifieddate")) or (times[-1] if times else None)
    if last is not None:
        events.append(HistoryEvent(last, "ma", contact_id, dict(props)))
    return events


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
        events.append(HistoryEvent(created, "lead", lead_id, dict(snap)))
    for row in rows:
        at = parse_timestamp(row.get("CreatedDate"))
        if _apply_lead_row(snap, row, forward=True) and at is not None:
            events.append(HistoryEvent(at, "lead", lead_id, dict(snap)))
    last = parse_timestamp(lead.get("LastModifiedDate"))
    if last is not None:
        events.append(HistoryEvent(last, "lead", lead_id, dict(lead)))
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
    return [HistoryEvent(created, "contact", str(contact["Id"]), dict(contact))] if created else []


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
        events.append(HistoryEvent(at, "opportunity", opp_id, snap, created))
    last = parse_timestamp(opp.get("LastModifiedDate")) or parse_timestamp(opp.get("CreatedDate"))
    if last is not None:
        events.append(HistoryEvent(last, "opportunity", opp_id, dict(opp), created))
    return events


def replay(mapping: Mapping, events: Iterable[HistoryEvent], start: str | None = None) -> list[Step]:
    """The transitions the mapping's stage rules yield over the person's snapshots, oldest first."""
    ordered = sorted(events, key=lambda e: (e.at, _PART_ORDER[e.part]))
    parts: dict[str, Record | None] = {"ma": None, "lead": None, "contact": None}
    opps: dict[str, tuple[str, Record]] = {}
    current, steps = start, []
    for event in ordered:
        if event.part == "opportunity":
            opps[event.record_id] = (event.created, event.snapshot)
        else:
            parts[event.part] = event.snapshot
        primary = max(opps.values(), key=lambda o: o[0])[1] if opps else None
        sfa = {"Lead": parts["lead"], "Contact": parts["contact"], "Opportunity": primary}
        view = PersonView(ma=parts["ma"], sfa={obj: rec for obj, rec in sfa.items() if rec is not None})
        for stage_id in decide_transition(mapping, current, compute_stage(mapping, view)):
            steps.append(_step(mapping, stage_id, current, event, view))
            current = stage_id
    return steps


def _step(
    mapping: Mapping, stage_id: str, current: str | None, event: HistoryEvent, view: PersonView
) -> Step:
    stage = mapping.stage(stage_id)
    obj = stage.sfa.object if stage.sfa is not None else None
    role, record_id = (MA if event.part == "ma" else SFA), event.record_id
    evidence = view.record(obj) if obj else None
    if obj and evidence is not None and evidence.get("Id"):
        role, record_id = SFA, str(evidence["Id"])
    profiles = Profiles(HUBSPOT_PROFILE, SALESFORCE_PROFILE)
    reason = detour_reason(mapping, profiles, stage_id, view)
    opportunity = view.record("Opportunity")
    amount = to_decimal(opportunity.get("Amount")) if obj == "Opportunity" and opportunity else None
    return Step(stage_id, current, event.at, role, record_id, reason, amount)


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() == "true"
