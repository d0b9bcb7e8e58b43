"""SLA timers between teams: start on entering a stage, met on reaching the next, breached when late."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from sync.funnel.business_time import Calendar, due_at
from sync.funnel.log import logger
from sync.funnel.stages import DETOURS, SUCCESS_PATH, at_or_after
from sync.store.models import SlaTimer
from sync.timeutil import as_utc

ACTIONS = ("log", "sfa_task", "ma_property")
TIME_TO, COMPLETE_AT = "time_to", "complete_at"
MISSING = "missing_fields"  # feedback key of a completeness breach: the fields found blank
FieldsMissing = Callable[[Sequence[str]], list[str]]


@dataclass(frozen=True)
class SlaRule:
    """One SLA: reach ``to_stage`` within ``hours`` or ``business_days`` of entering ``from_stage``.

    A ``complete_at`` rule instead checks, on entering ``from_stage`` (= ``to_stage``), that every
    one of ``fields`` (``Object.Field``) is filled.
    """

    id: str
    from_stage: str
    to_stage: str
    hours: float | None = None
    business_days: int | None = None
    on_breach: tuple[str, ...] = ("log",)
    notify: str | None = None  # the environment variable holding a webhook URL for breach notifications
    kind: str = TIME_TO
    fields: tuple[str, ...] = ()
    team: str | None = None  # the team owning the stage the SLA waits on (for breach analysis)

    def __post_init__(self) -> None:
        if self.kind == COMPLETE_AT:
            if not self.fields or self.hours is not None or self.business_days is not None:
                raise ValueError(f"SLA {self.id!r}: a completeness SLA takes fields and no allowance")
        elif self.kind != TIME_TO:
            raise ValueError(f"SLA {self.id!r}: unknown kind {self.kind!r}")
        elif (self.hours is None) == (self.business_days is None):
            raise ValueError(f"SLA {self.id!r}: give exactly one of hours or business_days")
        unknown = set(self.on_breach) - set(ACTIONS)
        if unknown:
            raise ValueError(f"SLA {self.id!r}: unknown on_breach actions {sorted(unknown)}")

    @property
    def allowance(self) -> str:
        """A human-readable allowance, e.g. ``24h`` or ``3 business days`` (``on entry`` for completeness)."""
        if self.kind == COMPLETE_AT:
            return "on entry"
        if self.hours is not None:
            return f"{self.hours:g}h"
        return f"{self.business_days} business day" + ("" if self.business_days == 1 else "s")


class Deferred(Exception):  # noqa: N818 - a signal, not an error
    """Raised by a feedback sink that will make its call after the transaction: not recorded yet."""


class BreachFeedback(Protocol):
    """Where breach consequences go (the sales CRM and the marketing tool)."""

    def create_sfa_task(self, common_id: str, sla_id: str, due_at: datetime) -> None:
        """Create a follow-up task for the owner in the SFA."""

    def set_ma_property(self, common_id: str, sla_id: str, breached_at: datetime) -> None:
        """Flag the breach on the person's MA record."""


@dataclass(frozen=True)
class Breach:
    """A breached timer and the actions applied to it during this detection run."""

    sla_id: str
    common_id: str
    started_at: datetime
    due_at: datetime
    breached_at: datetime
    detected_at: datetime
    actions: tuple[str, ...]
    missing: tuple[str, ...] = ()  # a completeness breach: the fields that were blank


def on_transition(
    session: Session,
    common_id: str,
    to_stage: str,
    occurred_at: datetime,
    rules: Sequence[SlaRule],
    calendar: Calendar,
    success_path: Sequence[str] = SUCCESS_PATH,
    detours: Sequence[str] = DETOURS,
    fields_missing: FieldsMissing | None = None,
) -> list[SlaTimer]:
    """Close this person's open timers that the move settles, then start timers it triggers.

    ``fields_missing`` says which of some ``Object.Field`` names the person's records leave blank
    right now; completeness SLAs are checked only when it is given. Returns the timers started.
    Idempotent: the same transition seen twice changes nothing more.
    """
    at = as_utc(occurred_at)
    by_id = {rule.id: rule for rule in rules}
    open_timers = session.scalars(
        select(SlaTimer).where(SlaTimer.common_id == common_id, SlaTimer.status.in_(("open", "breached")))
    ).all()
    for timer in open_timers:
        rule = by_id.get(timer.sla_id)
        if rule is None or rule.kind != TIME_TO or at < timer.started_at or timer.met_at is not None:
            continue
        if at_or_after(to_stage, rule.to_stage, success_path):
            _settle(timer, at)
        elif to_stage in detours and timer.status == "open":
            _leave(timer, at)
    started = []
    for rule in rules:
        if rule.from_stage != to_stage:
            continue
        if rule.kind == COMPLETE_AT:
            if fields_missing is not None and not _exists(session, rule.id, common_id, at):
                started.append(_check_complete(session, rule, common_id, at, fields_missing(rule.fields)))
            continue
        running = any(t.sla_id == rule.id and t.status == "open" for t in open_timers)
        if running or _exists(session, rule.id, common_id, at):
            continue
        timer = SlaTimer(
            sla_id=rule.id,
            common_id=common_id,
            started_at=at,
            due_at=due_at(at, calendar, rule.hours, rule.business_days),
            status="open",
            feedback={},
        )
        session.add(timer)
        started.append(timer)
    session.flush()
    return started


def _check_complete(
    session: Session, rule: SlaRule, common_id: str, at: datetime, missing: list[str]
) -> SlaTimer:
    """A completeness check is decided at entry: met, or breached naming the blank fields."""
    timer = SlaTimer(
        sla_id=rule.id,
        common_id=common_id,
        started_at=at,
        due_at=at,
        met_at=at,  # settled at once: a later stage neither meets nor clears it
        status="breached" if missing else "met",
        breached_at=at if missing else None,
        feedback={MISSING: list(missing)} if missing else {},
    )
    session.add(timer)
    return timer


def _settle(timer: SlaTimer, at: datetime) -> None:
    """The target stage was reached: met if on time, otherwise a (not yet detected) breach."""
    timer.met_at = at
    if timer.status == "open":
        if at <= timer.due_at:
            timer.status = "met"
        else:
            timer.status, timer.breached_at = "breached", timer.due_at


def _leave(timer: SlaTimer, at: datetime) -> None:
    """The person left through a detour: cancelled, unless the allowance had already run out."""
    if at <= timer.due_at:
        timer.status = "cancelled"
    else:
        timer.status, timer.breached_at = "breached", timer.due_at


def _exists(session: Session, sla_id: str, common_id: str, started_at: datetime) -> bool:
    query = select(SlaTimer.id).where(
        SlaTimer.sla_id == sla_id, SlaTimer.common_id == common_id, SlaTimer.started_at == started_at
    )
    return session.scalar(query) is not None


def detect_breaches(
    session: Session,
    now: datetime,
    rules: Sequence[SlaRule],
    feedback: BreachFeedback | None,
    retry_window: timedelta = timedelta(days=7),
) -> list[Breach]:
    """Mark overdue timers breached and apply each rule's ``on_breach`` actions exactly once.

    ``breached_at`` is the due time (the true moment of the breach); ``detected_at`` is ``now``.
    An action whose sink failed is retried on later runs for ``retry_window`` after detection.
    """
    now = as_utc(now)
    by_id = {rule.id: rule for rule in rules}
    due = or_(
        and_(SlaTimer.status == "open", SlaTimer.due_at < now),
        and_(SlaTimer.status == "breached", SlaTimer.detected_at.is_(None)),
        and_(SlaTimer.status == "breached", SlaTimer.detected_at >= now - retry_window),
    )
    found = []
    for timer in session.scalars(select(SlaTimer).where(due).order_by(SlaTimer.due_at)):
        rule = by_id.get(timer.sla_id)
        actions = rule.on_breach if rule else ("log",)
        if timer.status == "breached" and timer.detected_at is not None and _done(timer, actions):
            continue
        if timer.status == "open":
            timer.status, timer.breached_at = "breached", timer.due_at
        if timer.detected_at is None:
            timer.detected_at = now
            _count_breach(timer.sla_id)
        applied = _apply(timer, actions, feedback, now)
        found.append(
            Breach(
                sla_id=timer.sla_id,
                common_id=timer.common_id,
                started_at=timer.started_at,
                due_at=timer.due_at,
                breached_at=timer.breached_at or timer.due_at,
                detected_at=timer.detected_at,
                actions=tuple(applied),
                missing=tuple((timer.feedback or {}).get(MISSING, ())),
            )
        )
    session.flush()
    return found


def _done(timer: SlaTimer, actions: Iterable[str]) -> bool:
    return all(action in (timer.feedback or {}) for action in actions)


def _apply(timer: SlaTimer, actions: Iterable[str], sink: BreachFeedback | None, now: datetime) -> list[str]:
    """Run the actions not yet recorded in ``timer.feedback``; record each one that succeeded."""
    record = dict(timer.feedback or {})
    applied = []
    for action in actions:
        if action in record:
            continue
        try:
            if action == "log":
                logger().warning(
                    "sla_breached",
                    sla_id=timer.sla_id,
                    common_id=timer.common_id,
                    due_at=timer.due_at.isoformat(),
                    detected_at=now.isoformat(),
                    met_at=timer.met_at.isoformat() if timer.met_at else None,
                    **({"missing_fields": record[MISSING]} if MISSING in record else {}),
                )
            elif sink is None:
                continue
            elif action == "sfa_task":
                sink.create_sfa_task(timer.common_id, timer.sla_id, timer.due_at)
            elif action == "ma_property":
                sink.set_ma_property(timer.common_id, timer.sla_id, timer.breached_at or timer.due_at)
        except Deferred:
            continue  # the sink sends it after the transaction and records it then
        except Exception as exc:  # a failing sink must not stop the other timers; retried next run
            logger().error(
                "sla_feedback_failed",
                sla_id=timer.sla_id,
                common_id=timer.common_id,
                action=action,
                error=type(exc).__name__,
            )
            continue
        record[action] = now.isoformat()
        applied.append(action)
    timer.feedback = record  # a new dict, so SQLAlchemy sees the change
    return applied


def _count_breach(sla_id: str) -> None:
    """Increment ``sla_breaches_total{sla}`` if the metrics module is available."""
    try:
        from sync.metrics import sla_breaches_total
    except ImportError:
        return
    try:
        sla_breaches_total.labels(sla=sla_id).inc()
    except Exception as exc:  # metrics must never break SLA processing
        logger().debug("sla_metric_failed", error=type(exc).__name__)
