"""The Celery app: Redis broker when ``CLOSEDLOOP_REDIS_URL`` is set, an in-process broker otherwise."""

from __future__ import annotations

from celery import Celery

from sync.config import Settings

EMBEDDED_BROKER = "memory://localhost//"  # in-process transport; naming the host keeps kombu quiet


def beat_schedule(poll_interval: float) -> dict[str, dict[str, object]]:
    """Polling of both roles' systems (the safety net), inbox sweep, SLA detection, error replay and
    owner names."""
    return {
        "poll-ma": {"task": "closedloop.poll", "schedule": poll_interval, "args": ("ma",)},
        "poll-sfa": {"task": "closedloop.poll", "schedule": poll_interval, "args": ("sfa",)},
        "sweep-inbox": {"task": "closedloop.sweep_inbox", "schedule": 15.0},
        "detect-sla-breaches": {"task": "closedloop.detect_sla_breaches", "schedule": 60.0},
        "retry-failed": {"task": "closedloop.retry_failed", "schedule": 60.0},
        "refresh-owner-names": {"task": "closedloop.refresh_owner_names", "schedule": 300.0},
    }


def _transport_options(redis_url: str | None, visibility_timeout: float = 600.0) -> dict[str, object]:
    # The in-memory transport polls its queues; its default of one second would add a second to
    # every hand-off in the embedded mode.
    if not redis_url:
        return {"polling_interval": 0.01}
    # kombu sweeps for unacknowledged tasks of dead workers every interval x throttle seconds (100 s
    # by default); the sweep must run well within the visibility timeout or redelivery lags far behind.
    return {
        "visibility_timeout": visibility_timeout,
        "unacked_restore_interval": max(1.0, min(10.0, visibility_timeout / 5)),
        "unacked_restore_throttle": 1,
    }


def create_app(settings: Settings | None = None) -> Celery:
    """A configured Celery app; tasks are registered by importing ``workers.tasks``."""
    settings = settings or Settings()
    broker = settings.redis_url or EMBEDDED_BROKER
    app = Celery("closedloop", broker=broker, include=["workers.tasks"])
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        result_backend=None,
        task_acks_late=True,  # a task lost with its worker is delivered again
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        broker_transport_options=_transport_options(settings.redis_url, settings.broker_visibility_timeout),
        worker_hijack_root_logger=False,
        beat_schedule=beat_schedule(settings.poll_interval),
        timezone="UTC",
    )
    return app


app = create_app()


def configure(settings: Settings) -> Celery:
    """Point the shared app at the broker and schedule of ``settings`` (before any task is sent)."""
    # Celery caches its producer pool per app and never looks at broker_url again: reset it, as Celery
    # itself does after a fork, so tasks go to the broker configured now.
    app._after_fork()
    app.conf.broker_url = settings.redis_url or EMBEDDED_BROKER
    app.conf.broker_transport_options = _transport_options(
        settings.redis_url, settings.broker_visibility_timeout
    )
    app.conf.beat_schedule = beat_schedule(settings.poll_interval)
    return app
