"""Replay a person's history through the stage engine: every stage entered, with the source's time.

Rather than a hand-written table from history events to stages, the history is replayed as a
sequence of *snapshots* of the person (the marketing record, each sales-side person record, the
primary outcome record) and the mapping's own stage conditions are evaluated on each one with
:func:`sync.stages.compute_stage` and :func:`sync.stages.decide_transition` — the same rules the
engine applies to live changes, so an admin's stage definitions apply to history exactly as they
do from now on. The connectors turn their system's history into snapshots
(:class:`sync.connectors.contract.HistoryEvent`).
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
from sync.stages import PersonView, compute_stage, decide_transition


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
    state; transitions are decided from ``start`` on for the events after it.
    """
    order: dict[tuple[str, str], int] = {(MA, obj): 0 for obj in profiles.ma.person_objects}
    order |= {(SFA, obj): i + 1 for i, obj in enumerate(profiles.sfa.evidence_order)}
    ordered = sorted(events, key=lambda e: (e.at, order.get((e.role, e.object), len(order))))
    outcome = profiles.sfa.outcome_object
    ma: dict[str, Any] | None = None
    people: dict[str, dict[str, Any]] = {}
    outcomes: dict[str, tuple[str, dict[str, Any]]] = {}
    current, steps = (start if after is None else None), []
    for event in ordered:
        if event.role == MA:
            ma = dict(event.snapshot)
        elif event.object == outcome:
            outcomes[event.record_id] = (event.created, dict(event.snapshot))
        else:
            people[event.object] = dict(event.snapshot)
        sfa = dict(people)
        if outcomes and outcome is not None:
            sfa[outcome] = max(outcomes.values(), key=lambda o: o[0])[1]
        if after is not None:
            if event.at <= after:
                continue
            current, after = start, None
        view = PersonView(ma=ma, sfa=sfa)
        for stage_id in decide_transition(mapping, current, compute_stage(mapping, view)):
            steps.append(_step(mapping, profiles, stage_id, current, event, view))
            current = stage_id
    return steps


def _step(
    mapping: Mapping,
    profiles: Profiles,
    stage_id: str,
    current: str | None,
    event: HistoryEvent,
    view: PersonView,
) -> Step:
    stage = mapping.stage(stage_id)
    obj = stage.sfa.object if stage.sfa is not None else None
    role, record_id = event.role, event.record_id
    evidence = view.record(obj) if obj else None
    id_field = profiles.sfa.id_field
    if obj and evidence is not None and evidence.get(id_field):
        role, record_id = SFA, str(evidence[id_field])
    amount = None
    outcome = profiles.sfa.outcome_object
    if obj is not None and obj == outcome and profiles.sfa.amount_field:
        amount = to_decimal((view.record(outcome) or {}).get(profiles.sfa.amount_field))
    return Step(
        stage_id, current, event.at, role, record_id, detour_reason(mapping, profiles, stage_id, view), amount
    )
