"""Replay a person's history through the stage engine: every stage entered, with the source's time.

Rather than a hand-written table from history events to stages, the history is replayed as a
sequence of *snapshots* of the person (the marketing record, each sales-side person record, the
primary outcome record, every related record such as the account and its meetings) and the
mapping's own stage conditions are evaluated on each one with :func:`sync.stages.compute_stage`
and :func:`sync.stages.decide_transition` — the same rules the engine applies to live changes, so
an admin's stage definitions apply to history exactly as they do from now on. The connectors turn
their system's history into snapshots (:class:`sync.connectors.contract.HistoryEvent`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sync.connectors.contract import MA, SFA, HistoryEvent
from sync.facts import Profiles, detour_reason, to_decimal
from sync.mapping import Mapping
from sync.stages import PersonView, compute_stage, decide_transition, entered_at, evidence


@dataclass(frozen=True, slots=True)
class Step:
    """One reconstructed transition."""

    to_stage: str
    from_stage: str | None
    at: datetime
    role: str
    record_id: str
    reason: str | None
    amount: Decimal | None
    view: PersonView | None = None  # the person's records at that moment, as far as history tells


def replay(
    mapping: Mapping,
    profiles: Profiles,
    events: Iterable[HistoryEvent],
    start: str | None = None,
    after: datetime | None = None,
) -> list[Step]:
    """The transitions the mapping's stage rules yield over the person's snapshots, oldest first.

    Events at the same instant apply marketing first, then the sales side in evidence order. With
    ``after`` (the person's last recorded transition), earlier events only build up the records'
    state; transitions are decided from ``start`` on for the events after it. A stage proven by a
    related record with its own time of entry (a meeting's start) is entered then, when that is
    earlier than the record's appearance but not before the previous step.
    """
    order: dict[tuple[str, str], int] = {(MA, obj): 0 for obj in profiles.ma.person_objects}
    order |= {(SFA, obj): i + 1 for i, obj in enumerate(profiles.sfa.evidence_order)}
    ordered = sorted(events, key=lambda e: (e.at, order.get((e.role, e.object), len(order))))
    outcome = profiles.sfa.outcome_object
    related_objects = mapping.related_objects()
    ma: dict[str, Any] | None = None
    people: dict[str, dict[str, Any]] = {}
    outcomes: dict[str, tuple[str, dict[str, Any]]] = {}
    related: dict[str, dict[str, dict[str, Any]]] = {}  # object -> record id -> snapshot
    current, steps = (start if after is None else None), []
    floor = after
    for event in ordered:
        if event.role == MA:
            ma = dict(event.snapshot)
        elif event.object == outcome:
            outcomes[event.record_id] = (event.created, dict(event.snapshot))
        elif event.object in related_objects:
            related.setdefault(event.object, {})[event.record_id] = dict(event.snapshot)
        else:
            people[event.object] = dict(event.snapshot)
        sfa = dict(people)
        if outcomes and outcome is not None:
            sfa[outcome] = max(outcomes.values(), key=lambda o: o[0])[1]
        if after is not None:
            if event.at <= after:
                continue
            current, after = start, None
        view = PersonView(ma=ma, sfa=sfa, related={obj: list(rs.values()) for obj, rs in related.items()})
        for stage_id in decide_transition(mapping, current, compute_stage(mapping, view)):
            step = _step(mapping, profiles, stage_id, current, event, view, floor)
            steps.append(step)
            current, floor = stage_id, step.at
    return steps


def _at(
    mapping: Mapping, stage_id: str, event: HistoryEvent, view: PersonView, floor: datetime | None
) -> datetime:
    """The event's time, or the related record's own earlier time of entry (never before ``floor``)."""
    stage = mapping.stage(stage_id)
    spec = stage.entered_at.sfa if stage.entered_at is not None else None
    if spec is None or spec.object not in mapping.related_objects():
        return event.at
    own = entered_at(mapping, stage_id, view)
    at = min(own, event.at) if own is not None else event.at
    return max(at, floor) if floor is not None else at


def _step(
    mapping: Mapping,
    profiles: Profiles,
    stage_id: str,
    current: str | None,
    event: HistoryEvent,
    view: PersonView,
    floor: datetime | None,
) -> Step:
    stage = mapping.stage(stage_id)
    obj = stage.sfa.object if stage.sfa is not None else None
    role, record_id = event.role, event.record_id
    proof = evidence(mapping, stage_id, view)
    id_field = profiles.sfa.id_field
    if proof is not None and proof.get(id_field):
        role, record_id = SFA, str(proof[id_field])
    amount = None
    outcome = profiles.sfa.outcome_object
    if obj is not None and obj == outcome and profiles.sfa.amount_field:
        amount = to_decimal((view.record(outcome) or {}).get(profiles.sfa.amount_field))
    at = _at(mapping, stage_id, event, view, floor)
    reason = detour_reason(mapping, profiles, stage_id, view)
    return Step(stage_id, current, at, role, record_id, reason, amount, view)
