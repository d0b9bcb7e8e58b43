"""SLA compliance figures per SLA for a reporting period."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import Session

from sync.funnel.filters import EVERYONE, PeopleFilter
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
