"""SLA compliance figures per SLA for a reporting period."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import Session

from sync.funnel.filters import EVERYONE, NO_VALUE, PeopleFilter
from sync.funnel.sla import SlaRule
from sync.store.models import Person, SlaTimer
from sync.timeutil import as_utc


@dataclass(frozen=True)
class SlaSummary:
    """Timers started in the period, by outcome.

    ``compliance_rate`` = met on time / closed (met + breached); cancelled timers (the person left
    through a detour in time) and still-running ones are not counted. ``open_breaches`` are breached
    timers whose target stage has not been reached yet, plus running timers already past due.
    """

    sla_id: str
    from_stage: str
    to_stage: str
    allowance: str
    started: int
    met: int
    breached: int
    cancelled: int
    running: int
    open_breaches: int

    @property
    def compliance_rate(self) -> float | None:
        """Met on time as a share of closed timers; None when none closed."""
        closed = self.met + self.breached
        return self.met / closed if closed else None


def summarise_slas(
    session: Session,
    rules: Sequence[SlaRule],
    since: datetime,
    until: datetime,
    now: datetime,
    who: PeopleFilter = EVERYONE,
) -> list[SlaSummary]:
    """One summary per rule, over timers started in ``[since, until)``."""
    now = as_utc(now)

    def count(condition: ColumnElement[bool]) -> ColumnElement[int]:
        return func.sum(case((condition, 1), else_=0))

    open_breach = ((SlaTimer.status == "breached") & SlaTimer.met_at.is_(None)) | (
        (SlaTimer.status == "open") & (SlaTimer.due_at < now)
    )
    query = (
        select(
            SlaTimer.sla_id,
            func.count(),
            count(SlaTimer.status == "met"),
            count(SlaTimer.status == "breached"),
            count(SlaTimer.status == "cancelled"),
            count(SlaTimer.status == "open"),
            count(open_breach),
        )
        .where(SlaTimer.started_at >= as_utc(since), SlaTimer.started_at < as_utc(until))
        .group_by(SlaTimer.sla_id)
    )
    if who.conditions():
        query = query.join(Person, Person.common_id == SlaTimer.common_id).where(*who.conditions())
    rows = {row[0]: [int(v or 0) for v in row[1:]] for row in session.execute(query)}
    out = []
    for rule in rules:
        started, met, breached, cancelled, running, open_breaches = rows.get(rule.id, [0] * 6)
        out.append(
            SlaSummary(
                rule.id,
                rule.from_stage,
                rule.to_stage,
                rule.allowance,
                started,
                met,
                breached,
                cancelled,
                running,
                open_breaches,
            )
        )
    return out


# --- breach analysis: by owner, team, campaign and ISO week ---------------------------------------

DIMENSIONS = ("owner", "team", "campaign", "week")
ALL_SLAS = "*"


def iso_week(at: datetime) -> str:
    """``2026-W45``: the ISO week (UTC) a timer started in."""
    year, week, _ = as_utc(at).isocalendar()
    return f"{year}-W{week:02d}"


@dataclass(frozen=True)
class SlaGroup:
    """Closed timers of one SLA (or ``*``: all SLAs) for one owner, team, campaign or week.

    Counted like :class:`SlaSummary`: met on time vs breached, over timers started in the period.
    """

    dimension: str
    value: str
    sla_id: str
    met: int
    breached: int

    @property
    def compliance_rate(self) -> float | None:
        """Met on time as a share of closed timers; None when none closed."""
        closed = self.met + self.breached
        return self.met / closed if closed else None


def breakdown_slas(
    session: Session,
    rules: Sequence[SlaRule],
    since: datetime,
    until: datetime,
    who: PeopleFilter = EVERYONE,
) -> list[SlaGroup]:
    """Compliance and breaches per owner, team, campaign and week: one row per SLA and one for all (``*``).

    The team is the rule's; the owner is the person's owner in that team (``Person.owners``), else
    the person's current owner; campaign the current one (``(none)`` when blank). Rows are sorted
    by dimension, totals before single SLAs, then most breaches first (weeks: in time order).
    """
    teams = {rule.id: rule.team or NO_VALUE for rule in rules}
    query = (
        select(
            SlaTimer.sla_id,
            SlaTimer.status,
            SlaTimer.started_at,
            Person.owner,
            Person.campaign,
            Person.owners,
        )
        .outerjoin(Person, Person.common_id == SlaTimer.common_id)
        .where(
            SlaTimer.started_at >= as_utc(since),
            SlaTimer.started_at < as_utc(until),
            SlaTimer.status.in_(("met", "breached")),
        )
    )
    if who.conditions():
        query = query.where(*who.conditions())
    counts: dict[tuple[str, str, str], list[int]] = {}
    for sla_id, status, started_at, owner, campaign, owners in session.execute(query):
        if sla_id not in teams:
            continue
        values = {
            "owner": (owners or {}).get(teams[sla_id]) or owner or NO_VALUE,
            "team": teams[sla_id],
            "campaign": campaign or NO_VALUE,
            "week": iso_week(started_at),
        }
        for dimension, value in values.items():
            for key in ((dimension, value, sla_id), (dimension, value, ALL_SLAS)):
                tally = counts.setdefault(key, [0, 0])
                tally[0 if status == "met" else 1] += 1
    groups = [SlaGroup(d, v, s, met, breached) for (d, v, s), (met, breached) in counts.items()]
    order = {d: i for i, d in enumerate(DIMENSIONS)}

    def rank(g: SlaGroup) -> tuple[int, bool, int, str, str]:
        worst = 0 if g.dimension == "week" else -g.breached  # weeks read as a trend: in time order
        return order[g.dimension], g.sla_id != ALL_SLAS, worst, g.value, g.sla_id

    return sorted(groups, key=rank)
