"""Thin Celery tasks: they take IDs and call the engine. Retries are decided in sync.connectors.errors."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.exc import InterfaceError, OperationalError
from structlog.contextvars import bound_contextvars

from sync import operations
from workers import progress
from workers.celery_app import app


@app.task(name="closedloop.poll", acks_late=True)
def poll(role: str) -> int:
    """One polling cycle of a role's system (ma, sfa); enqueues the changed people in full batches."""
    batches = operations.poll(role)
    for batch in batches:
        sync_people.delay(batch)
    return sum(len(b) for b in batches)


# A lost database connection (restart, failover) fails the whole task before anything is recorded: the
# task goes back to the queue, with backoff, instead of being acknowledged and lost.
DB_RETRY = {
    "autoretry_for": (OperationalError, InterfaceError),
    "retry_backoff": 1,
    "retry_backoff_max": 60,
    "retry_jitter": True,
    "max_retries": 12,
}


@app.task(name="closedloop.sync_people", acks_late=True, **DB_RETRY)
def sync_people(common_ids: list[str], cause: str = "poll") -> dict[str, Any]:
    """Sync these people end to end."""
    try:
        with bound_contextvars(run_id=uuid.uuid4().hex[:12], task="sync_people", people=len(common_ids)):
            return operations.sync_people(common_ids, cause)
    finally:
        progress.mark_done("sync_people", operations.runtime().settings.redis_url)


@app.task(name="closedloop.process_inbox", acks_late=True, **DB_RETRY)
def process_inbox(event_ids: list[int]) -> dict[str, Any]:
    """Process stored webhook events."""
    try:
        with bound_contextvars(run_id=uuid.uuid4().hex[:12], task="process_inbox", events=len(event_ids)):
            return operations.process_inbox(event_ids)
    finally:
        progress.mark_done("process_inbox", operations.runtime().settings.redis_url)


@app.task(name="closedloop.sweep_inbox", acks_late=True)
def sweep_inbox() -> int:
    """Pick up events whose enqueue was lost."""
    return operations.sweep_inbox()


@app.task(name="closedloop.detect_sla_breaches", acks_late=True)
def detect_sla_breaches() -> int:
    """Mark overdue SLA timers breached and apply feedback."""
    return operations.detect_sla_breaches()


@app.task(name="closedloop.refresh_owner_names", acks_late=True)
def refresh_owner_names() -> int:
    """Read the names of owners not named yet (reports show names, not ids)."""
    return operations.refresh_owner_names()


@app.task(name="closedloop.retry_failed", acks_late=True)
def retry_failed() -> int:
    """Replay people whose last sync failed transiently."""
    return operations.retry_failed()
