"""KPI planning: from a revenue target back to the wins, SQLs, MQLs, leads (and visits) it takes."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from sync.funnel.figures import FunnelReport

Pair = tuple[str, str]

# Fallbacks from DOMAIN.md when a rate has not been measured. Ranges give their midpoint;
# where DOMAIN.md only has the worked KPI-tree example, that example's figure is used.
BENCHMARKS: dict[Pair, tuple[float, str]] = {
    ("mql", "sql"): (0.20, "benchmark: midpoint of MQL→SQL 10–30% (DOMAIN.md)"),
    ("sql", "won"): (0.30, "benchmark: midpoint of SQL→won 20–40% (DOMAIN.md)"),
    ("opportunity", "won"): (0.30, "benchmark: KPI-tree example, opportunity→won 30% (DOMAIN.md)"),
    ("mql", "opportunity"): (0.20, "benchmark: KPI-tree example, MQL→opportunity 20% (DOMAIN.md)"),
    ("lead", "mql"): (0.50, "benchmark: KPI-tree example, lead→MQL 50% (DOMAIN.md)"),
    ("visit", "lead"): (0.02, "benchmark: KPI-tree example, visit→lead 2% (DOMAIN.md)"),
}
DEFAULT_PLAN_PATH: tuple[str, ...] = ("lead", "mql", "sql", "won")


@dataclass(frozen=True)
class PlanStep:
    """How many people a stage needs, and the rate (with its origin) used to get to the next stage."""

    stage: str
    count: int
    rate_to_next: float | None
    rate_source: str | None


@dataclass(frozen=True)
class Plan:
    """A backwards-computed KPI tree, first stage first."""

    revenue: Decimal
    deal_size: Decimal
    steps: list[PlanStep]

    def count(self, stage: str) -> int:
        """The target count of one stage."""
        return next(s.count for s in self.steps if s.stage == stage)


def measured_rates(report: FunnelReport) -> dict[Pair, float]:
    """Measured ever-conversion rates from a report (only those with a non-empty cohort)."""
    return {
        (c.from_stage, c.to_stage): c.rate
        for c in report.conversion
        if c.within_days is None and c.rate is not None
    }


def _exact(value: float | int | Decimal) -> Fraction:
    # Via the decimal text, so 0.2 is exactly 1/5 and 34 / 0.2 is 170, not 170.00000000000003.
    return Fraction(str(value))


def plan_backwards(
    revenue: float | int | Decimal,
    deal_size: float | int | Decimal,
    rates: Mapping[Pair, float] | FunnelReport | None = None,
    *,
    path: Sequence[str] = DEFAULT_PLAN_PATH,
    visit_to_lead: float | None = None,
    visit_stage: str = "visit",
) -> Plan:
    """Wins = revenue / deal size, then each earlier stage = next stage / rate, rounding up each step.

    ``rates`` maps ``(from, to)`` pairs to fractions, or is a report whose measured rates are used;
    a missing rate falls back to ``BENCHMARKS`` (labelled as such). Visits are added in front of the
    first stage when ``visit_to_lead`` is given.
    """
    if not path:
        raise ValueError("the plan path needs at least one stage")
    given = measured_rates(rates) if isinstance(rates, FunnelReport) else dict(rates or {})
    origin = "measured" if isinstance(rates, FunnelReport) else "given"
    sources = dict.fromkeys(given, origin)
    if _exact(deal_size) <= 0:
        raise ValueError("deal size must be greater than zero")
    stages = list(path)
    if visit_to_lead is not None:
        given[(visit_stage, stages[0])] = visit_to_lead
        sources[(visit_stage, stages[0])] = "given"
        stages.insert(0, visit_stage)
    count = math.ceil(_exact(revenue) / _exact(deal_size))
    steps = [PlanStep(stages[-1], count, None, None)]
    for earlier, later in zip(reversed(stages[:-1]), reversed(stages[1:]), strict=True):
        rate, source = _rate(given, sources, (earlier, later))
        count = math.ceil(count / _exact(rate))
        steps.append(PlanStep(earlier, count, rate, source))
    steps.reverse()
    return Plan(Decimal(str(revenue)), Decimal(str(deal_size)), steps)


def _rate(given: Mapping[Pair, float], sources: Mapping[Pair, str], pair: Pair) -> tuple[float, str]:
    if pair in given:
        rate, source = given[pair], sources[pair]
    elif pair in BENCHMARKS:
        rate, source = BENCHMARKS[pair]
    else:
        raise ValueError(f"no rate for {pair[0]}→{pair[1]}: measure it or pass it in rates")
    if not 0 < rate <= 1:
        raise ValueError(f"rate {pair[0]}→{pair[1]} must be in (0, 1], got {rate}")
    return rate, source
