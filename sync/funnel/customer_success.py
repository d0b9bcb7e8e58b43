"""Customer-success figures from the transition log: won → kickoff time, churn by customer cohort,
expansion rate and NPS.

Definitions (period = ``[since, until)``):
- *won → kickoff*: people who first entered ``won`` in the period and later entered ``kickoff``:
  hours between, count, median and p90 (nearest rank);
- *churn by cohort*: cohort = the UTC month a person first entered ``customer`` (in the period);
  churned = entered ``churned`` after that (any time up to now); rate = churned / customers;
- *expansion rate*: of the period's new customers, the share that entered ``expansion`` later;
- *NPS*: % promoters (9-10) minus % detractors (0-6) over the live people with a score; None when
  the mapping reads no score or nobody has one.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from sync.funnel.analytics import percentile
from sync.funnel.figures import Velocity, ratio
from sync.funnel.filters import EVERYONE, PeopleFilter
from sync.funnel.sla_stats import SlaSummary
from sync.store.models import Person, Transition

if TYPE_CHECKING:
    from sync.mapping import Mapping

CS_TEAM = "customer_success"
# Used when the mapping has no customer_success team: the stage ids of mappings/default.yaml.
WON, KICKOFF, CUSTOMER, EXPANSION, CHURNED = "won", "kickoff", "customer", "expansion", "churned"


@dataclass(frozen=True)
class CsStages:
    """The stage ids the customer-success figures read."""

    won: str = WON
    kickoff: str = KICKOFF
    customer: str = CUSTOMER
    expansion: str = EXPANSION
    churned: str = CHURNED


def cs_stages(mapping: Mapping) -> CsStages:
    """From the ``customer_success`` team: its success-path stages in path order are kickoff,
    customer, expansion, its detour is churned; won is the success-path stage before the team's
    first one. Without that team, the standard ids."""
    team = next((t for t in mapping.teams() if t.id == CS_TEAM), None)
    if team is None:
        return CsStages()
    path = mapping.success_path()
    ours = [s for s in path if s in team.stages]
    detours = [s for s in mapping.detours() if s in team.stages]
    defaults = CsStages()
    won = path[path.index(ours[0]) - 1] if ours and path.index(ours[0]) > 0 else defaults.won
    picked = ours + [defaults.kickoff, defaults.customer, defaults.expansion][len(ours) :]
    return CsStages(won, picked[0], picked[1], picked[2], detours[0] if detours else defaults.churned)


@dataclass(frozen=True)
class CohortChurn:
    """New customers of one UTC month, and how many of them later churned."""

    cohort: str  # YYYY-MM
    customers: int
    churned: int

    @property
    def rate(self) -> float | None:
        """Churned share of the cohort."""
        return ratio(self.churned, self.customers)


@dataclass(frozen=True)
class Nps:
    """Net Promoter Score over the people with a score."""

    responses: int
    promoters: int
    detractors: int

    @property
    def score(self) -> float | None:
        """% promoters minus % detractors (-100 to 100); None without responses."""
        if not self.responses:
            return None
        return 100 * (self.promoters - self.detractors) / self.responses


@dataclass(frozen=True)
class CustomerSuccess:
    """The customer-success figures of a report."""

    stages: CsStages
    won_to_kickoff: Velocity
    kickoff_sla: SlaSummary | None
    churn_by_cohort: list[CohortChurn]
    customers: int
    expanded: int
    nps: Nps | None

    @property
    def expansion_rate(self) -> float | None:
        """New customers who later expanded, as a share of new customers."""
        return ratio(self.expanded, self.customers)

    @property
    def churn_rate(self) -> float | None:
        """Churned share over every cohort of the period."""
        return ratio(sum(c.churned for c in self.churn_by_cohort), self.customers)

    @property
    def empty(self) -> bool:
        """Nothing to show (no CS stage reached, no kickoff SLA, no NPS)."""
        return (
            not self.won_to_kickoff.count
            and not self.customers
            and self.kickoff_sla is None
            and (self.nps is None or not self.nps.responses)
        )


def _firsts(
    session: Session, stages: Sequence[str], who: PeopleFilter
) -> dict[str, dict[str, list[datetime]]]:
    """Per person, the times of every entry into each of ``stages``, in time order."""
    query = (
        select(Transition.common_id, Transition.to_stage, Transition.occurred_at)
        .where(Transition.to_stage.in_(list(stages)))
        .order_by(Transition.common_id, Transition.occurred_at, Transition.id)
    )
    if who.conditions():
        query = query.join(Person, Person.common_id == Transition.common_id).where(*who.conditions())
    out: dict[str, dict[str, list[datetime]]] = {}
    for cid, stage, at in session.execute(query):
        out.setdefault(cid, {}).setdefault(stage, []).append(at)
    return out


def _first(times: Sequence[datetime] | None) -> datetime | None:
    return times[0] if times else None


def _after(times: Sequence[datetime] | None, start: datetime) -> datetime | None:
    return next((t for t in times or () if t >= start), None)


def _won_to_kickoff(people: dict[str, dict[str, list[datetime]]], s: CsStages, since: datetime,
                    until: datetime) -> Velocity:  # fmt: skip
    hours = []
    for entries in people.values():
        won = _first(entries.get(s.won))
        if won is None or not since <= won < until:
            continue
        kickoff = _after(entries.get(s.kickoff), won)
        if kickoff is not None:
            hours.append((kickoff - won).total_seconds() / 3600)
    if not hours:
        return Velocity(s.won, s.kickoff, 0, None, None)
    hours.sort()
    return Velocity(s.won, s.kickoff, len(hours), statistics.median(hours), percentile(hours, 0.9))


def nps_of(session: Session, who: PeopleFilter = EVERYONE) -> Nps:
    """Promoters (9-10) and detractors (0-6) among the live people with a score."""
    query = select(Person.nps).where(
        Person.nps.is_not(None), Person.merged_into.is_(None), Person.deleted_at.is_(None), *who.conditions()
    )
    scores = [Decimal(v) for (v,) in session.execute(query) if v is not None]
    return Nps(len(scores), sum(1 for v in scores if v >= 9), sum(1 for v in scores if v <= 6))


def measure_customer_success(
    session: Session,
    stages: CsStages,
    since: datetime,
    until: datetime,
    sla: Sequence[SlaSummary] = (),
    nps_mapped: bool = False,
    who: PeopleFilter = EVERYONE,
) -> CustomerSuccess:
    """Every customer-success figure over ``[since, until)``; ``sla``: the report's SLA summaries."""
    s = stages
    people = _firsts(session, (s.won, s.kickoff, s.customer, s.expansion, s.churned), who)
    cohorts: dict[str, list[int]] = {}
    customers = expanded = 0
    for entries in people.values():
        became = _first(entries.get(s.customer))
        if became is None or not since <= became < until:
            continue
        customers += 1
        tally = cohorts.setdefault(f"{became:%Y-%m}", [0, 0])
        tally[0] += 1
        if _after(entries.get(s.churned), became) is not None:
            tally[1] += 1
        if _after(entries.get(s.expansion), became) is not None:
            expanded += 1
    kickoff_sla = next((x for x in sla if x.to_stage == s.kickoff and x.from_stage != x.to_stage), None)
    return CustomerSuccess(
        stages=s,
        won_to_kickoff=_won_to_kickoff(people, s, since, until),
        kickoff_sla=kickoff_sla,
        churn_by_cohort=[CohortChurn(k, n, c) for k, (n, c) in sorted(cohorts.items())],
        customers=customers,
        expanded=expanded,
        nps=nps_of(session, who) if nps_mapped else None,
    )
