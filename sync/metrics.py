"""Every Prometheus metric of Closedloop, in one place (default registry, names prefixed ``closedloop_``).

Import the objects from here; never create metrics elsewhere, so names and labels stay consistent.
Counters are exposed with a ``_total`` suffix (prometheus_client adds it).
Label values must come from small, fixed sets (never record IDs or free text).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge
from sqlalchemy import func, select

from sync.timeutil import as_utc, utcnow

if TYPE_CHECKING:
    from sync.store.db import Store

# --- ingestion (web process) ---
events_received_total = Counter(
    "closedloop_events_received", "Webhook events / outbound notifications accepted", ["source"]
)
events_rejected_total = Counter(
    "closedloop_events_rejected", "Webhook requests or items rejected, by reason", ["source", "reason"]
)
inbox_pending = Gauge("closedloop_inbox_pending", "Inbox events waiting to be processed")
inbox_lag_seconds = Gauge("closedloop_inbox_lag_seconds", "Age of the oldest pending inbox event")

# --- sync engine ---
sync_lag_seconds = Gauge(
    "closedloop_sync_lag_seconds", "Seconds since a polling stream last caught up", ["stream"]
)
sync_records_total = Counter(
    "closedloop_sync_records", "Records written by direction (ma_to_sfa, sfa_to_ma)", ["direction"]
)
api_calls_total = Counter(
    "closedloop_api_calls", "Calls to HubSpot / Salesforce", ["system", "endpoint", "status"]
)
rate_limit_waits_total = Counter(
    "closedloop_rate_limit_waits", "Times a call waited for rate-limit budget", ["system"]
)
rate_limit_wait_seconds_total = Counter(
    "closedloop_rate_limit_wait_seconds", "Seconds spent waiting for rate-limit budget", ["system"]
)
errors_total = Counter("closedloop_errors", "Recorded sync errors by category", ["category"])

# --- funnel and SLAs ---
transitions_total = Counter("closedloop_transitions", "Stage transitions recorded", ["to_stage"])
sla_breaches_total = Counter("closedloop_sla_breaches", "SLA breaches detected", ["sla"])
funnel_stage_reached = Gauge(
    "closedloop_funnel_stage_reached", "People who reached each stage (current report window)", ["stage"]
)
funnel_conversion_ratio = Gauge(
    "closedloop_funnel_conversion_ratio",
    "Share of people moving from one stage to the next",
    ["from_stage", "to_stage"],
)
sla_compliance_ratio = Gauge("closedloop_sla_compliance_ratio", "Share of SLA timers met in time", ["sla"])


def refresh_store_gauges(store: Store) -> None:
    """Set ``inbox_pending`` and ``inbox_lag_seconds`` from the inbox table."""
    from sync.store.models import InboxEvent  # deferred: keeps this module importable without the store

    with store.session() as session:
        count, oldest = session.execute(
            select(func.count(InboxEvent.id), func.min(InboxEvent.received_at)).where(
                InboxEvent.status == "pending"
            )
        ).one()
    inbox_pending.set(count or 0)
    lag = (utcnow() - as_utc(oldest)).total_seconds() if oldest is not None else 0.0
    inbox_lag_seconds.set(max(lag, 0.0))


def count_calls(system: str) -> Callable[[str, str], None]:
    """A callback that counts one API call of ``system`` by endpoint and status."""

    def record(endpoint: str, status: str) -> None:
        api_calls_total.labels(system=system, endpoint=endpoint, status=status).inc()

    return record
