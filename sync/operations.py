"""Operations shared by Celery tasks and the CLI, on the process-wide runtime."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from sync.config import Settings, load_settings
from sync.connectors.errors import ConnectorError
from sync.connectors.registry import role_of
from sync.logs import get_logger
from sync.roles import ROLES
from sync.runtime import Runtime
from sync.sla_hooks import ConnectorFeedback, SlaHooks
from sync.store.errors import record_error
from sync.store.models import InboxEvent, SyncError
from sync.timeutil import utcnow

log = get_logger(__name__)
_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def configure(runtime: Runtime | None) -> None:
    """Install (or clear) the runtime this process uses; the embedded mode and tests call it."""
    global _runtime
    with _runtime_lock:
        _runtime = runtime


def runtime() -> Runtime:
    """The process-wide runtime, built from settings on first use."""
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            _runtime = Runtime.from_settings(load_settings())
        return _runtime


def _settings() -> Settings:
    return runtime().settings


def poll(role: str) -> list[list[str]]:
    """One polling cycle of a role's system; returns the changed people in batches of the configured size."""
    from sync.locks import exclusive

    rt = runtime()
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    with exclusive(f"poll:{role}", rt.settings.redis_url) as held:
        if not held:
            log.info("poll_skipped_already_running", role=role)
            return []
        try:
            ids = rt.poller.poll(role)
        except ConnectorError as exc:
            log.error("poll_failed", role=role, error=exc.message[:300], category=exc.category)
            return []
    size = rt.settings.batch_size
    return [ids[i : i + size] for i in range(0, len(ids), size)]


def sync_people(common_ids: list[str], cause: str = "poll") -> dict[str, Any]:
    """Sync a batch; a failure that survived retries is recorded per person for later replay."""
    rt = runtime()
    try:
        result = rt.engine.sync_people(common_ids, cause=cause)
    except ConnectorError as exc:
        _record_batch_failure(common_ids, exc)
        return {"people": 0, "errors": len(common_ids)}
    _resolve_errors([c for c in common_ids if c not in set(result.error_keys)])
    return {k: v for k, v in result.__dict__.items() if k != "error_keys"}


def _record_batch_failure(common_ids: list[str], exc: ConnectorError) -> None:
    with runtime().store.session() as session:
        for cid in common_ids:
            record_error(
                session,
                role=role_of(runtime().settings, exc.system) or exc.system,
                connector=exc.system,
                operation="sync",
                category="transient" if exc.transient else exc.category,
                message=exc.message,
                common_id=cid,
                code=exc.code,
            )
    log.error("sync_batch_failed", people=len(common_ids), error=exc.message[:300])


def _resolve_errors(common_ids: list[str]) -> None:
    """People synced cleanly: their open errors are resolved."""
    if not common_ids:
        return
    with runtime().store.session() as session:
        session.execute(
            update(SyncError)
            .where(SyncError.common_id.in_(common_ids), SyncError.status == "open")
            .values(status="resolved", last_attempt_at=utcnow())
        )


def process_inbox(event_ids: list[int]) -> dict[str, Any]:
    """Process stored webhook events, together with every other event pending by then (coalesced).

    A webhook only says who changed; syncing each event alone would read both systems once per
    change. One drainer at a time waits ``inbox_coalesce_seconds`` so close arrivals join, then
    takes everything pending as one batch, and repeats until nothing is pending. A task that finds
    the drainer busy leaves its events to it: the drainer looks again after letting go, so no event
    waits for the sweep.
    """
    from sync.locks import exclusive

    rt = runtime()
    window = rt.settings.inbox_coalesce_seconds
    totals: Counter[str] = Counter()
    while True:
        with exclusive("inbox:drain", rt.settings.redis_url) as held:
            if not held:
                return {"coalesced": len(event_ids)}
            while True:
                if window > 0:
                    time.sleep(window)  # events arriving meanwhile join this batch
                pending = rt.inbox.pending_ids(limit=rt.settings.batch_size)
                if not pending:
                    break
                try:
                    result = rt.inbox.process(pending)
                except ConnectorError as exc:  # the events stay pending: the sweep retries them later
                    log.error("inbox_processing_failed", events=len(pending), error=exc.message[:300])
                    totals["errors"] += len(pending)
                    return dict(totals)
                totals.update({k: v for k, v in result.__dict__.items() if isinstance(v, int)})
        if not rt.inbox.pending_ids(limit=1):
            return dict(totals)


def sweep_inbox(min_age_seconds: float = 5.0) -> int:
    """Process pending events older than ``min_age_seconds`` (their enqueue may have been lost)."""
    rt = runtime()
    cutoff = utcnow() - timedelta(seconds=min_age_seconds)
    with rt.store.session() as session:
        ids = [
            r[0]
            for r in session.execute(
                select(InboxEvent.id)
                .where(InboxEvent.status == "pending", InboxEvent.received_at <= cutoff)
                .order_by(InboxEvent.id)
                .limit(2000)
            )
        ]
    if ids:
        process_inbox(ids)
    return len(ids)


def detect_sla_breaches(now: datetime | None = None) -> int:
    """Mark overdue SLA timers breached, apply their feedback, then post the webhook notifications due."""
    rt = runtime()
    mapping, _ = rt.mappings.get()
    hooks = SlaHooks(mapping)
    now = now or utcnow()
    with rt.store.session() as session:
        feedback = ConnectorFeedback(session, rt.ma, rt.sfa, {rule.id: rule.team for rule in hooks.rules})
        breaches = hooks.detect(session, now, feedback)
    done = feedback.send()  # after the commit: no transaction across the API calls
    with rt.store.session() as session:
        feedback.record(session, done, now)
    hooks.notify(rt.store.session, now, rt.settings)
    return len(breaches)


def refresh_owner_names(now: datetime | None = None) -> int:
    """Read the display names of owners not named yet from the sales side (reports show names)."""
    from sync.owner_names import refresh_owner_names as refresh

    rt = runtime()
    try:
        return refresh(rt.store.session, rt.sfa.owner_names, now)
    except ConnectorError as exc:  # names are cosmetic: the next run tries again
        log.warning("owner_names_failed", error=exc.message[:300], category=exc.category)
        return 0


def retry_failed(category: str | None = "transient", error_id: int | None = None, limit: int = 1000) -> int:
    """Sync again the people with open errors (all transient ones by default); returns people retried."""
    rt = runtime()
    with rt.store.session() as session:
        query = select(SyncError.common_id).where(
            SyncError.status == "open", SyncError.common_id.is_not(None)
        )
        if error_id is not None:
            query = query.where(SyncError.id == error_id)
        elif category is not None:
            query = query.where(SyncError.category == category)
        ids = [str(c) for c in dict.fromkeys(r[0] for r in session.execute(query.limit(limit))) if c]
    size = rt.settings.batch_size
    for start in range(0, len(ids), size):
        sync_people(ids[start : start + size], cause="replay")
    return len(ids)
