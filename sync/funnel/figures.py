"""The figures of a funnel report (plain dataclasses; computed in ``analytics``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from sync.funnel.sla_stats import SlaGroup, SlaSummary

if TYPE_CHECKING:
    from sync.funnel.customer_success import CustomerSuccess


def ratio(part: int, whole: int) -> float | None:
    """``part / whole``, or None when there is nothing to divide by."""
    return part / whole if whole else None


@dataclass(frozen=True)
class StageCount:
    """People per stage: reached in the period, currently in it, and moves in/out during the period."""

    stage: str
    reached: int
    current: int
    inflow: int
    outflow: int


@dataclass(frozen=True)
class Conversion:
    """Of the people who entered ``from_stage`` in the period, how many reached ``to_stage`` (or beyond)."""

    from_stage: str
    to_stage: str
    within_days: float | None
    cohort: int
    converted: int

    @property
    def rate(self) -> float | None:
        """Converted share of the cohort."""
        return ratio(self.converted, self.cohort)


@dataclass(frozen=True)
class Velocity:
    """Time from entering ``from_stage`` to reaching ``to_stage``, in hours, for those who made it."""

    from_stage: str
    to_stage: str
    count: int
    median_hours: float | None
    p90_hours: float | None


@dataclass(frozen=True)
class CampaignRow:
    """What a campaign's MQLs of the period went on to become."""

    campaign: str
    mqls: int
    sqls: int
    wins: int
    won_amount: Decimal
    share_of_wins: float | None

    @property
    def mql_to_sql(self) -> float | None:
        """SQLs per MQL."""
        return ratio(self.sqls, self.mqls)

    @property
    def sql_to_won(self) -> float | None:
        """Wins per SQL."""
        return ratio(self.wins, self.sqls)

    @property
    def mql_to_won(self) -> float | None:
        """Wins per MQL."""
        return ratio(self.wins, self.mqls)


@dataclass(frozen=True)
class ReasonCount:
    """How many moves into a detour stage carried one reason."""

    reason: str
    count: int


@dataclass(frozen=True)
class ReasonBreakdown:
    """Reasons overall (most frequent first) and per campaign."""

    overall: list[ReasonCount]
    by_campaign: dict[str, list[ReasonCount]]


@dataclass(frozen=True)
class ScoreBand:
    """Outcomes of the period's MQLs whose score at MQL time fell in ``[low, high)``."""

    label: str
    low: float | None
    high: float | None
    mqls: int
    wins: int
    lost: int

    @property
    def win_rate(self) -> float | None:
        """Wins per MQL in the band."""
        return ratio(self.wins, self.mqls)


@dataclass(frozen=True)
class GroupFigures:
    """Stage counts, conversion and velocity for one value of the grouping key."""

    value: str
    stages: list[StageCount]
    conversion: list[Conversion]
    velocity: list[Velocity]


@dataclass(frozen=True)
class FunnelReport:
    """Everything measured about the funnel over ``[since, until)``."""

    since: datetime
    until: datetime
    generated_at: datetime
    success_path: tuple[str, ...]
    detours: tuple[str, ...]
    stages: list[StageCount]
    conversion: list[Conversion]
    velocity: list[Velocity]
    by_campaign: list[CampaignRow]
    loss_reasons: ReasonBreakdown
    disqualification_reasons: ReasonBreakdown
    score_validation: list[ScoreBand]
    sla: list[SlaSummary] = field(default_factory=list)
    sla_groups: list[SlaGroup] = field(default_factory=list)  # by owner, team, campaign, week
    group_by: str | None = None
    groups: list[GroupFigures] = field(default_factory=list)
    customer_success: CustomerSuccess | None = None
    owner_names: dict[str, str] = field(default_factory=dict)  # owner id -> display name

    def owner_name(self, owner_id: str) -> str:
        """An owner's display name, else the id itself."""
        return self.owner_names.get(owner_id) or owner_id

    def slowest_step(self) -> Velocity | None:
        """Where the funnel loses most time: the single step (no shorter measured step inside it,
        won → kickoff included) with the longest median time."""
        steps = list(self.velocity)
        if self.customer_success is not None:
            steps.append(self.customer_success.won_to_kickoff)
        rank = {s: i for i, s in enumerate(self.success_path)}

        def single(v: Velocity) -> bool:
            end = rank.get(v.to_stage, len(rank))
            return not any(
                o.from_stage == v.from_stage and rank.get(o.to_stage, len(rank)) < end for o in steps
            )

        timed = [v for v in steps if v.count and v.median_hours is not None and single(v)]
        return max(timed, key=lambda v: v.median_hours or 0.0, default=None)

    def stage(self, name: str) -> StageCount | None:
        """The counts of one stage, if it is part of the report."""
        return next((s for s in self.stages if s.stage == name), None)

    def conversion_of(self, from_stage: str, to_stage: str) -> Conversion | None:
        """The first conversion measured between two stages."""
        pair = (from_stage, to_stage)
        return next((c for c in self.conversion if (c.from_stage, c.to_stage) == pair), None)
