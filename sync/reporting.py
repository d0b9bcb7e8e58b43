"""The funnel report for a store and mapping: the glue between the CLI/demo and ``sync.funnel``."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select

from sync.funnel.build import build_report
from sync.funnel.customer_success import cs_stages
from sync.funnel.figures import FunnelReport
from sync.funnel.filters import EVERYONE, PeopleFilter
from sync.mapping import Mapping
from sync.sla_hooks import sla_rules
from sync.store.db import Store
from sync.store.models import Transition
from sync.timeutil import utcnow


def default_period(store: Store, now: datetime | None = None) -> tuple[datetime, datetime]:
    """From the first recorded transition (or 90 days back) until just after ``now``."""
    now = now or utcnow()
    with store.session() as session:
        first = session.scalar(select(func.min(Transition.occurred_at)))
        last = session.scalar(select(func.max(Transition.occurred_at)))
    since = first or now - timedelta(days=90)
    until = max(now, last or now) + timedelta(seconds=1)
    return since, until


def funnel_report(
    store: Store,
    mapping: Mapping,
    since: datetime | None = None,
    until: datetime | None = None,
    by: str | None = None,
    now: datetime | None = None,
    who: PeopleFilter = EVERYONE,
) -> FunnelReport:
    """Measure the funnel with the mapping's stages and SLAs (``who``: only some people)."""
    default_since, default_until = default_period(store, now)
    return build_report(
        store,
        since or default_since,
        until or default_until,
        by=by,
        success_path=mapping.success_path(),
        detours=mapping.detours(),
        slas=sla_rules(mapping),
        now=now,
        who=who,
        cs=cs_stages(mapping),
        nps_mapped=mapping.nps is not None,
    )
