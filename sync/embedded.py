"""Run worker and beat inside this process: the embedded default, with no external broker.

With ``CLOSEDLOOP_REDIS_URL`` unset, Celery uses its in-memory transport; a worker thread pool
consumes it and a small scheduler thread plays beat (Celery's own beat would run in a separate
process, which cannot see an in-memory broker).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery import Celery
from celery.contrib.testing.worker import start_worker

from sync.logs import get_logger

log = get_logger(__name__)


class Scheduler:
    """Sends the beat schedule's tasks at their intervals until stopped."""

    def __init__(self, app: Celery, schedule: dict[str, dict[str, Any]]) -> None:
        self.app = app
        self.schedule = schedule
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="closedloop-beat", daemon=True)

    def _run(self) -> None:
        due = {name: 0.0 for name in self.schedule}
        while not self._stop.is_set():
            now = time.monotonic()
            for name, entry in self.schedule.items():
                if now >= due[name]:
                    self.app.send_task(str(entry["task"]), args=tuple(entry.get("args", ())))  # type: ignore[arg-type]
                    due[name] = now + float(entry["schedule"])  # type: ignore[arg-type]
            self._stop.wait(0.2)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


@contextmanager
def embedded_worker(app: Celery, concurrency: int = 4, beat: bool = True) -> Iterator[None]:
    """A Celery worker (threads) and optionally the scheduler, running until the block exits."""
    scheduler = Scheduler(app, dict(app.conf.beat_schedule or {})) if beat else None
    with start_worker(
        app,
        pool="threads",
        concurrency=concurrency,
        perform_ping_check=False,
        loglevel="WARNING",
        shutdown_timeout=30.0,
    ):
        if scheduler is not None:
            scheduler.start()
        try:
            yield
        finally:
            if scheduler is not None:
                scheduler.stop()
