"""Funnel analytics over the transition log, streamed one person at a time (flat memory).

Definitions (period = ``[since, until)``):
- *reached* a stage: distinct people with a move into it during the period;
- *current*: people whose present stage it is (not merged, not deleted), regardless of period;
- *in-flow* / *out-flow*: moves into / out of the stage during the period;
- *conversion A→B*: of the people who entered A during the period (first entry = start), the share
  who later reached B or a later success-path stage (ever, or within N days);
- *velocity A→B*: hours from that start to reaching B (or beyond), median and p90 (nearest rank).
Campaign, score and reason figures use the person's attributes from the people table.
"""

from __future__ import annotations

import math
import statistics
from array import array
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from functools import cached_property
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from sync.funnel.figures import (
    CampaignRow,
    Conversion,
    GroupFigures,
    ReasonBreakdown,
    ReasonCount,
    ScoreBand,
    StageCount,
    Velocity,
    ratio,
)
from sync.funnel.filters import EVERYONE, NO_VALUE, PeopleFilter
from sync.store.models import Person, Transition

NO_REASON = "(not recorded)"
Pair = tuple[str, str]
DEFAULT_CONVERSIONS: tuple[Pair, ...] = (("mql", "sal"), ("mql", "sql"), ("sql", "won"), ("mql", "won"))
DEFAULT_VELOCITY: tuple[Pair, ...] = (
    ("mql", "sal"),
    ("sal", "sql"),
    ("mql", "sql"),
    ("sql", "won"),
    ("mql", "won"),
)
DEFAULT_SCORE_BANDS: tuple[float, ...] = (50, 60, 70, 80, 90)
PERSON_COLUMNS = ("campaign", "source", "owner")


@dataclass(frozen=True)
class Spec:
    """What to measure."""

    since: datetime
    until: datetime
    success_path: tuple[str, ...]
    detours: tuple[str, ...]
    conversions: tuple[tuple[str, str, float | None], ...]
    velocity: tuple[tuple[str, str], ...]
    score_bands: tuple[float, ...] = DEFAULT_SCORE_BANDS
    mql_stage: str = "mql"
    sql_stage: str = "sql"
    won_stage: str = "won"
    lost_stage: str = "lost"
    disqualified_stage: str = "disqualified"

    @cached_property
    def rank(self) -> dict[str, int]:
        """Position of each success-path stage."""
        return {stage: i for i, stage in enumerate(self.success_path)}

    @property
    def stages(self) -> tuple[str, ...]:
        """Every stage reported, success path first."""
        return self.success_path + tuple(d for d in self.detours if d not in self.success_path)


@dataclass
class _Event:
    from_stage: str | None
    to_stage: str
    at: datetime
    reason: str | None
    amount: Decimal | None
    score: Decimal | None


@dataclass
class _Person:
    common_id: str
    campaign: str
    group: str
    score_at_mql: Decimal | None
    events: list[_Event] = field(default_factory=list)


class _FunnelTally:
    """Stage counts, conversions and velocity for one population (all people, or one group)."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.reached: Counter[str] = Counter()
        self.inflow: Counter[str] = Counter()
        self.outflow: Counter[str] = Counter()
        self.cohort: Counter[int] = Counter()
        self.converted: Counter[int] = Counter()
        self.hours: dict[int, array[float]] = defaultdict(lambda: array("d"))

    def add(self, person: _Person, first: dict[str, datetime]) -> None:
        spec = self.spec
        for event in person.events:
            if spec.since <= event.at < spec.until:
                self.inflow[event.to_stage] += 1
                if event.from_stage:
                    self.outflow[event.from_stage] += 1
        self.reached.update(first.keys())
        for i, (a, b, within) in enumerate(spec.conversions):
            if a in first:
                self.cohort[i] += 1
                reached = first_reach(person.events, b, first[a], spec.rank)
                if reached and (within is None or reached - first[a] <= timedelta(days=within)):
                    self.converted[i] += 1
        for i, (a, b) in enumerate(spec.velocity):
            if a in first:
                reached = first_reach(person.events, b, first[a], spec.rank)
                if reached:
                    self.hours[i].append((reached - first[a]).total_seconds() / 3600)

    def figures(self, current: Counter[str]) -> tuple[list[StageCount], list[Conversion], list[Velocity]]:
        spec = self.spec
        stages = [
            StageCount(s, self.reached[s], current[s], self.inflow[s], self.outflow[s]) for s in spec.stages
        ]
        conversion = [
            Conversion(a, b, within, self.cohort[i], self.converted[i])
            for i, (a, b, within) in enumerate(spec.conversions)
        ]
        velocity = [_velocity(a, b, self.hours[i]) for i, (a, b) in enumerate(spec.velocity)]
        return stages, conversion, velocity


def _velocity(a: str, b: str, hours: array[float]) -> Velocity:
    if not hours:
        return Velocity(a, b, 0, None, None)
    ordered = sorted(hours)
    return Velocity(a, b, len(ordered), statistics.median(ordered), percentile(ordered, 0.9))


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending sequence."""
    return ordered[max(math.ceil(q * len(ordered)) - 1, 0)]


def first_reach(
    events: Sequence[_Event], target: str, after: datetime, rank: dict[str, int]
) -> datetime | None:
    """When the person first reached ``target`` (or a later success-path stage) at or after ``after``."""
    floor = rank.get(target)
    for event in events:
        if event.at >= after and (
            event.to_stage == target or (floor is not None and rank.get(event.to_stage, -1) >= floor)
        ):
            return event.at
    return None


def band_edges_label(edges: Sequence[float], score: float) -> tuple[str, float | None, float | None]:
    """The band of ``score`` for ascending ``edges``: ``<50``, ``50-59``, …, ``90+``."""
    if score < edges[0]:
        return f"<{edges[0]:g}", None, edges[0]
    for low, high in zip(edges, edges[1:], strict=False):
        if low <= score < high:
            return f"{low:g}-{high - 1:g}", low, high
    return f"{edges[-1]:g}+", edges[-1], None


@dataclass
class Measured:
    """The raw result of one analytics pass."""

    stages: list[StageCount]
    conversion: list[Conversion]
    velocity: list[Velocity]
    by_campaign: list[CampaignRow]
    loss_reasons: ReasonBreakdown
    disqualification_reasons: ReasonBreakdown
    score_validation: list[ScoreBand]
    groups: list[GroupFigures]


class _Analysis:
    def __init__(self, spec: Spec, grouped: bool) -> None:
        self.spec = spec
        self.grouped = grouped
        self.total = _FunnelTally(spec)
        self.groups: dict[str, _FunnelTally] = {}
        self.campaigns: dict[str, list[Any]] = defaultdict(lambda: [0, 0, 0, Decimal(0)])
        self.reasons: dict[str, Counter[tuple[str, str]]] = {
            spec.lost_stage: Counter(),
            spec.disqualified_stage: Counter(),
        }
        self.bands: dict[str, list[Any]] = {}

    def add(self, person: _Person) -> None:
        spec = self.spec
        first: dict[str, datetime] = {}
        for event in person.events:
            if spec.since <= event.at < spec.until:
                first.setdefault(event.to_stage, event.at)
                if event.to_stage in self.reasons:
                    key = (person.campaign, event.reason or NO_REASON)
                    self.reasons[event.to_stage][key] += 1
        self.total.add(person, first)
        if self.grouped:
            self.groups.setdefault(person.group, _FunnelTally(spec)).add(person, first)
        start = first.get(spec.mql_stage)
        if start is not None:
            self._add_mql(person, start)

    def _add_mql(self, person: _Person, start: datetime) -> None:
        spec = self.spec
        row = self.campaigns[person.campaign]
        row[0] += 1
        if first_reach(person.events, spec.sql_stage, start, spec.rank):
            row[1] += 1
        won = next((e for e in person.events if e.at >= start and e.to_stage == spec.won_stage), None)
        if won:
            row[2] += 1
            row[3] += won.amount or Decimal(0)
        score = person.score_at_mql
        if score is None:
            entry = (e for e in person.events if e.at == start and e.to_stage == spec.mql_stage)
            score = next(entry).score
        if score is None:
            return
        label, low, high = band_edges_label(spec.score_bands, float(score))
        band = self.bands.setdefault(label, [low, high, 0, 0, 0])
        band[2] += 1
        band[3] += 1 if won else 0
        band[4] += 1 if any(e.at >= start and e.to_stage == spec.lost_stage for e in person.events) else 0

    def result(self, current: dict[str | None, Counter[str]]) -> Measured:
        spec = self.spec
        overall: Counter[str] = Counter()
        for counts in current.values():
            overall.update(counts)
        stages, conversion, velocity = self.total.figures(overall)
        wins = sum(row[2] for row in self.campaigns.values())
        campaigns = [
            CampaignRow(name, mqls, sqls, won, amount, ratio(won, wins))
            for name, (mqls, sqls, won, amount) in self.campaigns.items()
        ]
        campaigns.sort(key=lambda r: (-r.wins, -r.mqls, r.campaign))
        bands = [ScoreBand(label, lo, hi, n, w, lost) for label, (lo, hi, n, w, lost) in self.bands.items()]
        bands.sort(key=lambda b: -math.inf if b.low is None else b.low)
        groups = []
        for value in sorted(set(self.groups) | {str(k) for k in current if k is not None and self.grouped}):
            tally = self.groups.get(value) or _FunnelTally(spec)
            g_stages, g_conv, g_vel = tally.figures(current.get(value, Counter()))
            groups.append(GroupFigures(value, g_stages, g_conv, g_vel))
        return Measured(
            stages,
            conversion,
            velocity,
            campaigns,
            _breakdown(self.reasons[spec.lost_stage]),
            _breakdown(self.reasons[spec.disqualified_stage]),
            bands,
            groups,
        )


def _breakdown(counts: Counter[tuple[str, str]]) -> ReasonBreakdown:
    overall: Counter[str] = Counter()
    per: dict[str, Counter[str]] = defaultdict(Counter)
    for (campaign, reason), n in counts.items():
        overall[reason] += n
        per[campaign][reason] += n

    def ranked(c: Counter[str]) -> list[ReasonCount]:
        return [ReasonCount(r, n) for r, n in sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))]

    return ReasonBreakdown(ranked(overall), {k: ranked(v) for k, v in sorted(per.items())})


def group_column(by: str | None) -> ColumnElement[Any] | None:
    """The people-table expression to group by: a column, or a key inside ``attributes``."""
    if by is None:
        return None
    if by in PERSON_COLUMNS:
        column: ColumnElement[Any] = getattr(Person, by)
        return column
    return Person.attributes[by].as_string()


def _label(value: object) -> str:
    return NO_VALUE if value is None or value == "" else str(value)


def _people(session: Session, spec: Spec, by: str | None, who: PeopleFilter) -> Iterator[_Person]:
    """Each person with moves since the period start, events in time order, one at a time."""
    group = group_column(by)
    columns = [
        Transition.common_id,
        Transition.from_stage,
        Transition.to_stage,
        Transition.occurred_at,
        Transition.reason,
        Transition.amount,
        Transition.score,
        Person.campaign,
        Person.score_at_mql,
    ]
    query = (
        select(*columns, *([group] if group is not None else []))
        .outerjoin(Person, Person.common_id == Transition.common_id)
        .where(Transition.occurred_at >= spec.since, *who.conditions())
        .order_by(Transition.common_id, Transition.occurred_at, Transition.id)
        .execution_options(yield_per=5000)
    )
    person: _Person | None = None
    rows: Iterable[Any] = session.connection().execute(query)  # Core rows: no ORM loading cost
    for row in rows:
        if person is None or person.common_id != row[0]:
            if person is not None:
                yield person
            value = row[9] if group is not None else None
            person = _Person(row[0], _label(row[7]), _label(value), row[8])
        person.events.append(_Event(row[1], row[2], row[3], row[4], row[5], row[6]))  # already UTC-aware
    if person is not None:
        yield person


def current_counts(
    session: Session, by: str | None, who: PeopleFilter = EVERYONE
) -> dict[str | None, Counter[str]]:
    """People per present stage (SQL ``GROUP BY``), keyed by group label (None when ungrouped)."""
    group = group_column(by)
    live = (
        Person.merged_into.is_(None),
        Person.deleted_at.is_(None),
        Person.stage.is_not(None),
        *who.conditions(),
    )
    if group is None:
        rows = session.execute(select(Person.stage, func.count()).where(*live).group_by(Person.stage))
        return {None: Counter({stage: n for stage, n in rows if stage})}
    out: dict[str | None, Counter[str]] = defaultdict(Counter)
    query = select(group, Person.stage, func.count()).where(*live).group_by(group, Person.stage)
    for value, stage, n in session.execute(query):
        out[_label(value)][stage] += n
    return out


def measure(session: Session, spec: Spec, by: str | None = None, who: PeopleFilter = EVERYONE) -> Measured:
    """Run every funnel measurement in one streamed pass over the transition log."""
    analysis = _Analysis(spec, grouped=by is not None)
    for person in _people(session, spec, by, who):
        analysis.add(person)
    return analysis.result(current_counts(session, by, who))
