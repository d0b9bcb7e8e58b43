"""Fault injection: the closed loop must reach the ground truth through API faults and infrastructure crashes.

One scenario runs with separate worker processes, a private Redis and a private PostgreSQL cluster
(so they can be crashed without touching the shared services), while both sandboxes answer 10% of
calls with 429s, 5xx, dropped connections and slow responses, and Salesforce refuses row locks.
During the run a worker is SIGKILLed mid-batch (a replacement starts), Redis is SIGKILLed and
restarted, and PostgreSQL is stopped in immediate mode (no checkpoint; it replays its WAL on the
way back up) and restarted. After the recovery
the beat would do (replay of transient errors, inbox sweep), both systems and the transition log
must equal the ground truth, with no duplicate record anywhere.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery
from sqlalchemy import func, select

from sandboxes.common import CallCounter, FaultRule
from sandboxes.scenario import Scenario, ScenarioConfig
from sandboxes.verify import verify
from sync import operations
from sync.store.db import upgrade
from sync.store.models import InboxEvent, Person, SyncError
from tests.conftest import FULL_PROFILE
from tests.integration.harness import WorkerProcess
from tests.integration.servers import PrivatePostgres, PrivateRedis

pytestmark = [pytest.mark.integration, pytest.mark.timeout(7200 if FULL_PROFILE else 300)]

PEOPLE = 5000 if FULL_PROFILE else 100


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path / "redis").start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A migrated PostgreSQL cluster of this test alone, in /tmp so its server user can reach it."""
    workdir = Path(tempfile.mkdtemp(prefix="closedloop-pg-"))
    server = PrivatePostgres(workdir)
    try:
        server.init()
        upgrade(server.url)
        yield server
    finally:
        server.stop(mode="immediate")
        shutil.rmtree(workdir, ignore_errors=True)


class Supervisor:
    """Restarts worker processes that exit on their own, as systemd or Docker's restart policy would.

    Needed because a Celery 5.7 / kombu 5.7 worker that loses its Redis connection while holding
    unacknowledged tasks can die with "Unrecoverable error: AttributeError ... 'hostname'" (kombu
    restores the unacked tasks through the connection it just dropped). Tasks are not lost: they
    stay unacknowledged in Redis and are redelivered after the visibility timeout.
    """

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.workers: list[WorkerProcess] = []
        self.killed: set[int] = set()
        self.restarts = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._lock = threading.Lock()

    def start(self, count: int) -> Supervisor:
        self.workers = [WorkerProcess(self.env, f"f{i}", log_dir=self.log_dir).start() for i in range(count)]
        self._thread.start()
        return self

    def kill_busy(self, celery_app: Celery) -> bool:
        """SIGKILL a worker that is running a task (asked over Celery's remote control), start a replacement.

        Returns whether the victim really was mid-task.
        """
        active = celery_app.control.inspect(timeout=2).active() or {}
        busy = {host.split("@", 1)[0] for host, tasks in active.items() if tasks}
        with self._lock:
            live = [w for w in self.workers if w.proc is not None and w.proc.poll() is None]
            victim = next((w for w in live if w.name in busy), live[0])
            assert victim.proc is not None
            self.killed.add(victim.proc.pid)
            victim.kill()
            self.workers.append(
                WorkerProcess(self.env, f"f{len(self.workers)}", log_dir=self.log_dir).start()
            )
        return victim.name in busy

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            with self._lock:
                for i, worker in enumerate(self.workers):
                    proc = worker.proc
                    if proc is not None and proc.poll() is not None and proc.pid not in self.killed:
                        self.killed.add(proc.pid)
                        self.restarts += 1
                        name = f"f{i}-restart{self.restarts}"
                        self.workers[i] = WorkerProcess(self.env, name, log_dir=self.log_dir).start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        for worker in self.workers:
            worker.stop()


class ChaosScenario(Scenario):
    """A scenario that fires one crash while the Nth, Mth... dispatch has tasks in flight."""

    def __init__(self, config: ScenarioConfig, redis_url: str) -> None:
        super().__init__(config)
        self.redis_url = redis_url
        self.schedule: dict[int, Callable[[], bool | None]] = {}
        self.fired: list[tuple[str, bool]] = []  # (action, tasks were in flight)
        self._dispatches = 0
        self._threads: list[threading.Thread] = []
        self.timings: list[tuple[int, float, bool]] = []
        self.slow_down: Callable[[bool], None] = lambda _on: None

    def dispatch(self, batches: list[list[str]], timeout: float = 300.0) -> None:
        self._dispatches += 1
        action = self.schedule.pop(self._dispatches, None)
        if action is not None:
            self.slow_down(True)  # slow answers keep the tasks inside their batches until the crash
            # A backfill of everyone known so far keeps both workers busy while the crash happens.
            batches = batches + self._everyone(size=20)
            thread = threading.Thread(target=self._fire, args=(action,), daemon=True)
            self._threads.append(thread)
            thread.start()
        began = time.monotonic()
        super().dispatch(batches, timeout)
        self.timings.append((len(batches), round(time.monotonic() - began, 2), action is not None))
        for thread in self._threads:
            thread.join(timeout=30)

    def _everyone(self, size: int) -> list[list[str]]:
        assert self.runtime is not None
        with self.runtime.store.session() as session:
            ids = [str(c) for c in session.scalars(select(Person.common_id).order_by(Person.common_id))]
        return [ids[i : i + size] for i in range(0, len(ids), size)]

    def _fire(self, action: Callable[[], bool | None]) -> None:
        client = redis.Redis.from_url(self.redis_url)
        deadline = time.monotonic() + 10
        in_flight = False
        while time.monotonic() < deadline and not in_flight:
            in_flight = bool(client.hlen("unacked"))
            time.sleep(0.01)
        time.sleep(0.3)  # let the workers get into their batches
        in_flight = in_flight and bool(client.hlen("unacked"))
        client.close()
        try:
            mid_task = action()
        finally:
            self.slow_down(False)
        self.fired.append((getattr(action, "__name__", "action"), in_flight and mid_task is not False))


def _open_errors(scenario: Scenario) -> Counter[str]:
    assert scenario.runtime is not None
    with scenario.runtime.store.session() as session:
        rows = session.execute(
            select(SyncError.category, func.count())
            .where(SyncError.status == "open")
            .group_by(SyncError.category)
        )
        return Counter({category: count for category, count in rows})


def test_faults_and_crashes_end_in_ground_truth(
    tmp_path: Path, private_postgres: PrivatePostgres, private_redis: PrivateRedis
) -> None:
    config = ScenarioConfig(
        workdir=tmp_path,
        people=PEOPLE,
        seed=21,
        span_days=30 if FULL_PROFILE else 10,
        database_url=private_postgres.url,
        redis_url=private_redis.url,
        embedded_worker=False,
        hubspot_search_per_second=50,
        # small batches keep both workers busy; a dead worker's task comes back after 6 s
        extra_settings={"batch_size": 50, "broker_visibility_timeout": 6},
    )
    scenario = ChaosScenario(config, private_redis.url)
    scenario.start()
    assert scenario.boxes is not None and scenario.runtime is not None
    boxes = scenario.boxes
    env = scenario.settings_env()
    supervisor = Supervisor(env, tmp_path).start(2)
    from workers.celery_app import app as celery_app

    def kill_worker() -> bool:
        return supervisor.kill_busy(celery_app)

    def restart_redis() -> None:
        private_redis.crash_and_restart()

    def restart_postgres() -> None:
        private_postgres.crash_and_restart()

    scenario.schedule = {8: kill_worker, 16: restart_redis, 24: restart_postgres}
    faults = FaultRule(rate_429=0.03, rate_5xx=0.03, rate_drop=0.02, rate_slow=0.02, slow_seconds=0.4)
    boxes.hubspot.faults.rules = [faults]
    boxes.salesforce.faults.rules = [faults]
    boxes.salesforce.lock_row_rate = 0.05

    def slow_down(on: bool) -> None:
        rules = [FaultRule(rate_slow=1.0, slow_seconds=1.0)] if on else [faults]
        boxes.hubspot.faults.rules, boxes.salesforce.faults.rules = rules, list(rules)

    scenario.slow_down = slow_down
    try:
        scenario.run()
        injected = {
            "hubspot": _faulted(boxes.hubspot.counter),
            "salesforce": _faulted(boxes.salesforce.counter),
        }
        # Recovery as the beat does it: replay transient failures, sweep the inbox, poll once more.
        boxes.hubspot.faults.rules = []
        boxes.salesforce.faults.rules = []
        boxes.salesforce.lock_row_rate = 0.0
        operations.retry_failed()
        operations.sweep_inbox(min_age_seconds=0)
        scenario.sync_until_quiet()

        print(
            "chaos rounds (batches, seconds, crash):", [t for t in scenario.timings if t[2]], scenario.stats
        )
        assert [name for name, _ in scenario.fired] == ["kill_worker", "restart_redis", "restart_postgres"]
        assert all(in_flight for _, in_flight in scenario.fired), scenario.fired
        assert injected["hubspot"] > 0 and injected["salesforce"] > 0, injected
        truth = scenario.ground_truth()
        verdict = verify(truth, scenario.runtime.store, boxes.hubspot, boxes.salesforce)
        assert verdict.ok, verdict.summary()
        assert verdict.checked_people == PEOPLE
        _assert_no_duplicates(scenario)
        assert not _open_errors(scenario), _open_errors(scenario)
        with scenario.runtime.store.session() as session:
            pending = session.scalar(select(func.count()).where(InboxEvent.status == "pending"))
        assert pending == 0
        # No task was given up: a database error sends it back to the queue instead of failing it.
        dropped = [p.name for p in tmp_path.glob("worker-*.log") if "raised unexpected" in p.read_text()]
        assert not dropped, dropped
    finally:
        supervisor.stop()
        scenario.stop()


def _assert_no_duplicates(scenario: Scenario) -> None:
    """No common ID on two live records of one object, no e-mail on two live HubSpot contacts."""
    assert scenario.boxes is not None
    contacts = [c for c in scenario.boxes.hubspot.contacts() if not c.get("archived")]
    emails = Counter((c["properties"].get("email") or "").lower() for c in contacts)
    ids = Counter(c["properties"].get("closedloop_id") for c in contacts)
    assert not [e for e, n in emails.items() if e and n > 1]
    assert not [i for i, n in ids.items() if i and n > 1]
    for sobject in ("Lead", "Contact"):
        records = scenario.boxes.salesforce.records(sobject)
        common = Counter(r.get("Closedloop_Id__c") for r in records)
        assert not [i for i, n in common.items() if i and n > 1], sobject


def _faulted(counter: CallCounter) -> int:
    """Calls answered with an injected fault (dropped connections count as status 0)."""
    return sum(c["count"] for c in counter.snapshot() if c["status"] in (0, 429, 500, 502, 503))
