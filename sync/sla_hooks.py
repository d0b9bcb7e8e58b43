"""Adapts the mapping's SLAs to the SLA timer engine, and delivers breach feedback to both tools."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from collections.abc import Mapping as AbcMapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from sync.connectors.contract import MA, SFA, MarketingConnector, SalesConnector
from sync.funnel import notify, sla
from sync.funnel.business_time import Calendar
from sync.logs import get_logger
from sync.mapping import Mapping
from sync.mapping.model import DEFAULT_NOTIFY_ENV
from sync.mapping.model import Calendar as CalendarSpec
from sync.store.models import Person, RecordLink, SlaTimer

if TYPE_CHECKING:
    from sync.config import Settings
    from sync.stages import PersonView

log = get_logger(__name__)

BREACH_PROPERTY = "closedloop_sla_breach"


def sla_rules(mapping: Mapping) -> list[sla.SlaRule]:
    """The mapping's SLAs as timer rules, each with the team owning the stage it waits on."""
    rules = []
    for entry in mapping.slas:
        notify_env = entry.notify.url_env if entry.notify is not None else None
        if entry.kind == sla.COMPLETE_AT and entry.stage is not None:
            rules.append(
                sla.SlaRule(
                    id=entry.id,
                    from_stage=entry.stage,
                    to_stage=entry.stage,
                    on_breach=tuple(entry.on_breach),
                    notify=notify_env,
                    kind=sla.COMPLETE_AT,
                    fields=tuple(str(ref) for ref in entry.fields or ()),
                    team=mapping.team_of(entry.stage),
                )
            )
            continue
        within = entry.within
        if entry.from_ is None or entry.to is None or within is None:
            continue  # the model's validator makes this impossible; the check narrows the types
        hours = None if within.business else within.as_timedelta().total_seconds() / 3600
        days = within.amount if within.business else None
        rules.append(
            sla.SlaRule(
                id=entry.id,
                from_stage=entry.from_,
                to_stage=entry.to,
                hours=hours,
                business_days=days,
                on_breach=tuple(entry.on_breach),
                notify=notify_env,
                team=mapping.team_of(entry.to),
            )
        )
    return rules


def sla_calendar(mapping: Mapping) -> Calendar:
    """The business calendar SLAs count on (no country = weekends only)."""
    spec: CalendarSpec | None = mapping.calendar
    if spec is None:
        return Calendar.of(country=None)
    weekdays = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    weekend = frozenset(i for i, d in enumerate(weekdays) if d not in spec.workdays)
    return Calendar(country=spec.country, subdivision=spec.subdivision, tz=spec.timezone, weekend=weekend)


class SlaHooks:
    """Called by the engine on every recorded transition."""

    def __init__(self, mapping: Mapping) -> None:
        self.rules = sla_rules(mapping)
        self.calendar = sla_calendar(mapping)
        self.success_path = mapping.success_path()
        self.detours = mapping.detours()

    def on_transition(
        self,
        session: Session,
        common_id: str,
        to_stage: str,
        occurred_at: datetime,
        view: PersonView | None = None,
    ) -> None:
        """Settle and start this person's timers; completeness SLAs need ``view`` (the records now)."""
        if self.rules:
            sla.on_transition(
                session,
                common_id,
                to_stage,
                occurred_at,
                self.rules,
                self.calendar,
                self.success_path,
                self.detours,
                blank_fields(view) if view is not None else None,
            )

    def detect(
        self, session: Session, now: datetime, feedback: sla.BreachFeedback | None
    ) -> list[sla.Breach]:
        """Mark and act on every overdue timer."""
        return sla.detect_breaches(session, now, self.rules, feedback)

    def notify(
        self,
        sessions: Callable[[], AbstractContextManager[Session]],
        now: datetime,
        settings: Settings,
        post: notify.Post = notify.post_json,
    ) -> notify.NotifyResult:
        """Post the breach notifications due (call with no transaction open: it makes network calls)."""
        return notify.deliver(
            sessions, self.rules, now, webhook_urls(settings), settings.sla_webhook_timeout, post
        )


def blank_fields(view: PersonView) -> sla.FieldsMissing:
    """Which ``Object.Field`` names the person's records leave blank (no such record: all its fields)."""

    def missing(fields: Sequence[str]) -> list[str]:
        out = []
        for name in fields:
            obj, _, field = name.partition(".")
            record = view.record(obj)
            if record is None or _blank(record.get(field)):
                out.append(name)
        return out

    return missing


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def webhook_urls(settings: Settings) -> Callable[[str], str | None]:
    """Resolves an SLA's ``notify.url_env``: the default name is the setting (env or settings file)."""

    def url_for(env_name: str) -> str | None:
        if env_name == DEFAULT_NOTIFY_ENV:
            secret = settings.sla_webhook_url
            return secret.get_secret_value() if secret is not None else None
        return os.environ.get(env_name) or None

    return url_for


@dataclass(frozen=True)
class _Action:
    """One breach consequence to send once the detection transaction is over."""

    sla_id: str
    common_id: str
    due_at: datetime
    action: str  # sfa_task | ma_property
    send: Callable[[], None]


class ConnectorFeedback:
    """Breach feedback through the connectors: a follow-up task for the sales owner, a marketing-side flag.

    Two phases, so no transaction stays open across an API call: inside the detection transaction
    it only looks up the records and queues the calls (:class:`sync.funnel.sla.Deferred` tells the
    detection not to record them yet); :meth:`send` makes them afterwards and :meth:`record` then
    marks, in a short transaction of its own, the ones that went through. A crash in between sends
    an action again on the next run rather than never.
    """

    def __init__(
        self,
        session: Session,
        ma: MarketingConnector,
        sfa: SalesConnector,
        teams: AbcMapping[str, str | None] | None = None,
    ) -> None:
        """``teams``: SLA id -> the team it waits on; its task goes to that team's owner of the person."""
        self.session = session
        self.ma = ma
        self.sfa = sfa
        self.teams = dict(teams or {})
        self.queued: list[_Action] = []

    def _record(self, common_id: str, role: str, objects: tuple[str, ...]) -> str | None:
        row = self.session.execute(
            select(RecordLink.record_id)
            .where(
                RecordLink.common_id == common_id,
                RecordLink.role == role,
                RecordLink.object_type.in_(objects),
            )
            .order_by(RecordLink.id.desc())
        ).first()
        return row[0] if row else None

    def create_sfa_task(self, common_id: str, sla_id: str, due_at: datetime) -> None:
        who = self._record(common_id, SFA, self.sfa.profile.person_objects)
        if who is None:
            raise LookupError(f"{common_id} has no sales-side record for an SLA task")
        person = self.session.get(Person, common_id)
        team = self.teams.get(sla_id)
        owner = None
        if person is not None:  # e.g. a late kickoff is customer success's: the Account owner's task
            owner = (person.owners or {}).get(team or "") or person.owner

        def send() -> None:
            self.sfa.create_follow_up(
                who,
                owner=owner,
                subject=f"SLA breached: {sla_id}",
                due=due_at.date(),
                description=f"Closedloop: SLA '{sla_id}' was due {due_at.isoformat()} and was not met.",
            )

        self.queued.append(_Action(sla_id, common_id, due_at, "sfa_task", send))
        raise sla.Deferred

    def set_ma_property(self, common_id: str, sla_id: str, breached_at: datetime) -> None:
        record = self._record(common_id, MA, self.ma.profile.person_objects)
        if record is None:
            raise LookupError(f"{common_id} has no marketing-side record for the SLA flag")

        def send() -> None:
            errors = self.ma.update({record: {BREACH_PROPERTY: f"{sla_id} {breached_at.isoformat()}"}})
            if errors:
                raise RuntimeError(errors[0].message)

        self.queued.append(_Action(sla_id, common_id, breached_at, "ma_property", send))
        raise sla.Deferred

    def send(self) -> list[_Action]:
        """Make the queued calls (no transaction open); the ones that went through."""
        done = []
        for item in self.queued:
            try:
                item.send()
            except Exception as exc:  # one failing sink must not stop the others; retried next run
                log.error(
                    "sla_feedback_failed", sla_id=item.sla_id, action=item.action, error=type(exc).__name__
                )
                continue
            done.append(item)
        return done

    @staticmethod
    def record(session: Session, done: Sequence[_Action], now: datetime) -> None:
        """Mark each action that went through on its timer, so it is never sent again."""
        for item in done:
            timer = session.scalars(
                select(SlaTimer).where(
                    SlaTimer.sla_id == item.sla_id,
                    SlaTimer.common_id == item.common_id,
                    or_(SlaTimer.due_at == item.due_at, SlaTimer.breached_at == item.due_at),
                )
            ).first()
            if timer is not None:
                timer.feedback = {**(timer.feedback or {}), item.action: now.isoformat()}
