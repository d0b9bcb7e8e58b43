"""The standard-stage engine: pure functions from both systems' fresh state to funnel stages.

Rules (documented for admins in mappings/README.md):
- Evidence tiers: the marketing side (0) < each sales-side object in the mapping's evidence order
  (e.g. lead 1 < contact 2 < opportunity 3) < every related object (account, event, task: 4). A
  stage's tier is the tier of the condition that held (the higher if both ``ma`` and ``sfa`` hold).
  A condition on a related object holds when any of the person's records of that object satisfies it.
- ``compute_stage``: the furthest success-path stage whose condition holds. A terminal detour
  (lost, disqualified) that holds wins when its tier is >= that stage's tier (it is newer evidence;
  e.g. a closed-lost opportunity beats a converted lead). A recycle detour wins over a terminal
  detour that holds (recycling is what follows a loss) and over success stages of lower-or-equal tier,
  and over any stage proven only by the marketing side or the first sales object (a lead handed back
  before conversion).
- ``decide_transition``: never moves backward on the success path. Moving forward yields every
  skipped success stage up to and including the new one (reaching won implies having passed sal,
  sql and opportunity); a first sighting fills from the start of the path. Entering a detour
  yields just the detour. From a recycle detour, any success stage may be re-entered (yielding just
  that stage). From a terminal detour only a recycle detour, a terminal detour anchored later, or a
  success stage strictly after the detour's anchor moves on; the anchor is the first success stage
  whose lowest evidence tier reaches the detour's tier (lost -> opportunity, disqualified -> sal).
"""

from __future__ import annotations

from collections.abc import Mapping as AbcMapping
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sync.mapping.conditions import Predicate
from sync.mapping.model import Mapping, Stage
from sync.mapping.transforms import parse_datetime

Record = AbcMapping[str, Any]
RECYCLE_OVERRIDES_UP_TO = 1  # the first sales-side object's tier


@dataclass(frozen=True, slots=True)
class PersonView:
    """One person's fresh state in both roles' systems (any part may be missing).

    ``sfa`` holds the sales side's records by object name (for an outcome object: the primary one);
    ``related`` every related record by object name (e.g. the Account, Tasks and Events).
    """

    ma: Record | None = None
    sfa: AbcMapping[str, Record] = field(default_factory=dict)
    related: AbcMapping[str, Sequence[Record]] = field(default_factory=dict)

    def record(self, sfa_object: str | None) -> Record | None:
        """The marketing record (``None``), the named sales-side object's record, else its first related one."""
        if sfa_object is None:
            return self.ma
        found = self.sfa.get(sfa_object)
        if found is None and (related := self.related.get(sfa_object)):
            return related[0]
        return found


def tiers(mapping: Mapping) -> dict[str | None, int]:
    """Evidence tier per sales-side object, in the mapping's order, then the related objects (one tier).

    The marketing side is 0. Related records (an account, a meeting) come after the sale, so they
    outrank the outcome object: a lost upgrade opportunity must not undo a customer.
    """
    objects = mapping.sfa_objects()
    related = len(objects) + 1
    return (
        {None: 0}
        | {obj: i + 1 for i, obj in enumerate(objects)}
        | dict.fromkeys(mapping.related_objects(), related)
    )


@dataclass(frozen=True, slots=True)
class _CompiledStage:
    id: str
    ma: Predicate | None
    sfa_object: str | None
    sfa: Predicate | None
    sfa_tier: int
    recycle: bool
    related: bool  # the sfa condition names a related object: any of its records counts

    def tier(self, view: PersonView) -> int:
        """The evidence tier by which this stage holds, or -1 if it does not."""
        if self.sfa is not None:
            if self.related:
                if any(self.sfa(r) for r in view.related.get(self.sfa_object, ())):  # type: ignore[arg-type]
                    return self.sfa_tier
            else:
                rec = view.sfa.get(self.sfa_object)  # type: ignore[arg-type]
                if rec is not None and self.sfa(rec):
                    return self.sfa_tier
        if self.ma is not None and view.ma is not None and self.ma(view.ma):
            return 0
        return -1


@dataclass(frozen=True, slots=True)
class _Plan:
    furthest_first: tuple[_CompiledStage, ...]
    terminal: tuple[_CompiledStage, ...]
    recycle: tuple[_CompiledStage, ...]
    path: tuple[str, ...]
    index: dict[str, int]
    anchor: dict[str, int]  # terminal detour -> success index it leaves from
    recycle_ids: frozenset[str]


def _compile_stage(s: Stage, tier_of: dict[str | None, int], related: tuple[str, ...]) -> _CompiledStage:
    obj = s.sfa.object if s.sfa is not None else None
    return _CompiledStage(
        id=s.id,
        ma=s.ma.test if s.ma is not None else None,
        sfa_object=obj,
        sfa=s.sfa.test if s.sfa is not None else None,
        sfa_tier=tier_of[obj],
        recycle=s.recycle,
        related=obj in related,
    )


def _stage_tiers(s: Stage, tier_of: dict[str | None, int]) -> list[int]:
    return ([0] if s.ma is not None else []) + ([tier_of[s.sfa.object]] if s.sfa is not None else [])


def _build(mapping: Mapping) -> _Plan:
    tier_of = tiers(mapping)
    related = mapping.related_objects()
    success = [s for s in mapping.stages if not s.detour]
    path = tuple(s.id for s in success)
    anchor: dict[str, int] = {}
    for d in mapping.stages:
        if d.detour and not d.recycle:
            tier = max(_stage_tiers(d, tier_of))
            anchor[d.id] = next(
                (i for i, s in enumerate(success) if min(_stage_tiers(s, tier_of)) >= tier), len(path) - 1
            )
    return _Plan(
        furthest_first=tuple(_compile_stage(s, tier_of, related) for s in reversed(success)),
        terminal=tuple(
            _compile_stage(s, tier_of, related) for s in mapping.stages if s.detour and not s.recycle
        ),
        recycle=tuple(_compile_stage(s, tier_of, related) for s in mapping.stages if s.recycle),
        path=path,
        index={sid: i for i, sid in enumerate(path)},
        anchor=anchor,
        recycle_ids=frozenset(s.id for s in mapping.stages if s.recycle),
    )


def _plan(mapping: Mapping) -> _Plan:
    plan: _Plan = mapping.cached("stages.plan", _build)
    return plan


def detour_anchor(mapping: Mapping, detour_id: str) -> str | None:
    """The success stage a terminal detour leaves from (``lost`` -> opportunity); None for others."""
    plan = _plan(mapping)
    at = plan.anchor.get(detour_id)
    return plan.path[at] if at is not None else None


def _best(stages: tuple[_CompiledStage, ...], view: PersonView) -> tuple[str | None, int]:
    best, best_tier = None, -1
    for st in stages:
        t = st.tier(view)
        if t > best_tier:
            best, best_tier = st.id, t
    return best, best_tier


def compute_stage(mapping: Mapping, view: PersonView) -> str | None:
    """The person's standard stage from both systems' state, or None when no stage holds."""
    plan = _plan(mapping)
    success, success_tier = None, -1
    for st in plan.furthest_first:
        t = st.tier(view)
        if t >= 0:
            success, success_tier = st.id, t
            break
    recycled, recycle_tier = _best(plan.recycle, view) if plan.recycle else (None, -1)
    terminal, terminal_tier = _best(plan.terminal, view) if plan.terminal else (None, -1)
    if terminal is not None and terminal_tier >= success_tier:
        return recycled or terminal
    # Sales hands a lead back to marketing before it is converted, usually by a marketing-side status,
    # while the sales-side lead stays open: a recycle beats evidence up to the first sales object's tier.
    if recycled is not None and (recycle_tier >= success_tier or success_tier <= RECYCLE_OVERRIDES_UP_TO):
        return recycled
    return success


def decide_transition(mapping: Mapping, current: str | None, computed: str | None) -> list[str]:
    """The stages to enter, in order, moving from ``current`` to ``computed`` ([] for no change).

    An unknown ``current`` (e.g. a stage since removed from the mapping) counts as a first sighting.
    """
    if computed is None or computed == current:
        return []
    plan = _plan(mapping)
    index = plan.index
    if (
        current is not None
        and current not in index
        and current not in plan.anchor
        and current not in plan.recycle_ids
    ):
        current = None
    if computed not in index:
        if computed not in plan.anchor and computed not in plan.recycle_ids:
            raise ValueError(f"unknown stage {computed!r}")
        if (
            current in plan.anchor
            and computed in plan.anchor
            and plan.anchor[computed] <= plan.anchor[current]
        ):
            return []
        return [computed]
    target = index[computed]
    if current is None:
        return list(plan.path[: target + 1])
    if current in index:
        start = index[current]
    elif current in plan.recycle_ids:
        return [computed]
    else:
        start = plan.anchor[current]
    return list(plan.path[start + 1 : target + 1]) if target > start else []


def entered_at(mapping: Mapping, stage_id: str, view: PersonView) -> datetime | None:
    """When the source system says the person entered this stage (aware UTC), if the mapping says where."""
    spec = mapping.stage(stage_id).entered_at
    if spec is None:
        return None
    if spec.ma is not None:
        if view.ma is None:
            return None
        for name in spec.ma_properties:  # the first one the source filled
            if (when := parse_datetime(view.ma.get(name))) is not None:
                return when
        return None
    assert spec.sfa is not None
    obj, name = spec.sfa.object, spec.sfa.field
    if obj in mapping.related_objects():
        times = [
            when for r in _matching(mapping, stage_id, obj, view) if (when := parse_datetime(r.get(name)))
        ]
        return min(times) if times else None
    rec = view.record(obj)
    return parse_datetime(rec.get(name)) if rec is not None else None


def _matching(mapping: Mapping, stage_id: str, obj: str, view: PersonView) -> list[Record]:
    """The person's records of related object ``obj`` that satisfy the stage's condition on it (else all)."""
    records = view.related.get(obj, ())
    cond = mapping.stage(stage_id).sfa
    if cond is None or cond.object != obj:
        return list(records)
    return [r for r in records if cond(r)]


def evidence(mapping: Mapping, stage_id: str, view: PersonView) -> Record | None:
    """The sales-side record whose state proves the stage (None for a marketing-side stage).

    For a related object: the earliest of the person's records that satisfy the condition, by
    the stage's ``entered_at`` field when it names that object, else in the order read.
    """
    stage = mapping.stage(stage_id)
    if stage.sfa is None:
        return None
    obj = stage.sfa.object
    if obj not in mapping.related_objects():
        return view.record(obj)
    records = _matching(mapping, stage_id, obj, view)
    spec = stage.entered_at.sfa if stage.entered_at is not None else None
    if spec is not None and spec.object == obj:
        timed = [(when, i) for i, r in enumerate(records) if (when := parse_datetime(r.get(spec.field)))]
        if timed:
            return records[min(timed)[1]]
    return records[0] if records else None
