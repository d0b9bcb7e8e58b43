"""Webhook storms: every HubSpot webhook arrives three times in shuffled order, then a burst of signed events.

The web process (``closedloop web``) and two workers run as separate processes on a real Redis and
PostgreSQL. The HubSpot sandbox delivers to a tripling proxy that forwards each signed request
three times, batches shuffled (signatures stay valid: the web process's public base URL is the
proxy's). The end state must still equal the ground truth, every inbox event must be processed,
and the processes' memory must stay bounded through the burst.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from fastapi import FastAPI, Request, Response
from sqlalchemy import func, select

from sandboxes.common import ServerThread, free_port
from sandboxes.hubspot_webhooks import sign_v3
from sandboxes.scenario import Scenario, ScenarioConfig
from sandboxes.verify import verify
from sync import operations
from sync.store.models import InboxEvent
from tests.conftest import FULL_PROFILE
from tests.integration.harness import ROOT, WorkerProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(7200 if FULL_PROFILE else 300)]

PEOPLE = 1000 if FULL_PROFILE else 100
BURST = 10_000 if FULL_PROFILE else 2_000
SECRET = "storm-client-secret"
WATCHED = ["email", "hubspotscore", "lifecyclestage", "hs_lead_status", "company"]
RSS_LIMIT_MB = 600  # a worker or the web process idles at ~150 MB
RSS_GROWTH_MB = 200


class TriplingProxy:
    """Accepts HubSpot's webhook POSTs and forwards each one three times, in shuffled order."""

    def __init__(self, target: str, seed: int = 5) -> None:
        self.target = target
        self.rng = random.Random(seed)
        self._buffer: list[tuple[bytes, dict[str, str]]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.forwarded = 0
        self.failed = 0
        app = FastAPI()

        @app.post("/webhooks/hubspot")
        async def receive(request: Request) -> Response:
            body = await request.body()
            keep = {
                k: v
                for k, v in request.headers.items()
                if k.lower().startswith(("x-hubspot", "content-type"))
            }
            with self._lock:
                self._buffer.extend([(body, keep)] * 3)
            return Response(status_code=204)

        self.server = ServerThread(app)
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> TriplingProxy:
        self.server.start()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.server.stop()

    def idle(self) -> bool:
        with self._lock:
            return not self._buffer

    def _run(self) -> None:
        session = requests.Session()
        while not self._stop.is_set():
            with self._lock:
                batch, self._buffer = self._buffer, []
            if not batch:
                time.sleep(0.05)
                continue
            self.rng.shuffle(batch)
            for body, headers in batch:
                try:
                    ok = session.post(
                        f"{self.target}/webhooks/hubspot", data=body, headers=headers, timeout=30
                    ).ok
                except requests.RequestException:
                    ok = False
                self.forwarded += ok
                self.failed += not ok


class WebProcess:
    """``closedloop web`` in its own process."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.port = free_port()
        self.env = env
        self.log_path = log_dir / "web.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> WebProcess:
        cmd = [sys.executable, "-c", "from workers.cli import app; app()", "web", "--port", str(self.port)]
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=self.env, stdout=self.log_path.open("wb"), stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"{self.url}/healthz", timeout=1).status_code < 500:
                    return self
            except requests.RequestException:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"web process did not start: {self.log_path.read_text()[-2000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)


def rss_mb(pid: int) -> float:
    """Resident set size of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


@pytest.fixture
def storm(
    tmp_path: Path, pg_url: str, redis_url: str
) -> Iterator[tuple[Scenario, WebProcess, TriplingProxy, list[WorkerProcess]]]:
    config = ScenarioConfig(
        workdir=tmp_path,
        people=PEOPLE,
        seed=31,
        database_url=pg_url,
        redis_url=redis_url,
        embedded_worker=False,
        hubspot_search_per_second=50,
    )
    scenario = Scenario(config)
    scenario.start()
    assert scenario.boxes is not None
    env = scenario.settings_env()
    proxy = TriplingProxy(target="http://127.0.0.1:0")
    proxy.start()
    env_web = {**env, "CLOSEDLOOP_HUBSPOT_WEBHOOK_SECRET": SECRET, "CLOSEDLOOP_PUBLIC_BASE_URL": proxy.url}
    web = WebProcess({**os.environ, **env_web, "CLOSEDLOOP_LOG_LEVEL": "WARNING"}, tmp_path).start()
    proxy.target = web.url
    workers = [WorkerProcess(env, f"s{i}", log_dir=tmp_path).start() for i in range(2)]
    scenario.boxes.hubspot.configure_webhooks(
        f"{proxy.url}/webhooks/hubspot", SECRET, WATCHED, retry_base_seconds=0.2
    )
    scenario.boxes.hubspot.start_webhook_delivery()
    try:
        yield scenario, web, proxy, workers
    finally:
        scenario.boxes.hubspot.stop_webhook_delivery()
        for worker in workers:
            worker.stop()
        web.stop()
        proxy.stop()
        scenario.stop()


def _drain(scenario: Scenario, proxy: TriplingProxy, timeout: float = 120) -> None:
    """Wait until the sandbox and the proxy have delivered everything and the workers are idle."""
    assert scenario.boxes is not None
    deadline = time.monotonic() + timeout
    while not (scenario.boxes.hubspot.webhooks.wait_idle(0.1) and proxy.idle()):
        assert time.monotonic() < deadline, "webhooks were not delivered in time"
    time.sleep(0.5)  # the last forwarded request's enqueue runs after its response
    scenario._wait_until_done(scenario.config.redis_url, timeout)


def _signed_burst(web_url: str, public_url: str, contact_ids: list[str], count: int) -> int:
    """POST ``count`` signed, valid propertyChange events in batches of 100; returns events accepted."""
    accepted = 0
    session = requests.Session()
    uri = f"{public_url}/webhooks/hubspot"
    for start in range(0, count, 100):
        events = [
            {
                "eventId": 10**12 + i,
                "subscriptionId": 1,
                "portalId": 62515,
                "appId": 1160452,
                "occurredAt": int(time.time() * 1000),
                "subscriptionType": "contact.propertyChange",
                "attemptNumber": 0,
                "objectId": int(contact_ids[i % len(contact_ids)]),
                "propertyName": "hubspotscore",
                "propertyValue": "1",
                "changeSource": "CRM_UI",
            }
            for i in range(start, min(start + 100, count))
        ]
        body = json.dumps(events, separators=(",", ":"))
        ts = str(int(time.time() * 1000))
        headers = {
            "Content-Type": "application/json",
            "X-HubSpot-Signature-v3": sign_v3(SECRET, "POST", uri, body, ts),
            "X-HubSpot-Request-Timestamp": ts,
        }
        response = session.post(f"{web_url}/webhooks/hubspot", data=body, headers=headers, timeout=30)
        assert response.status_code == 200, response.text
        accepted += int(response.json()["accepted"])
    return accepted


def test_tripled_shuffled_webhooks_and_a_burst_end_in_ground_truth(
    storm: tuple[Scenario, WebProcess, TriplingProxy, list[WorkerProcess]],
) -> None:
    scenario, web, proxy, workers = storm
    assert scenario.boxes is not None and scenario.runtime is not None
    scenario.run()
    _drain(scenario, proxy)
    deliveries = [d for d in scenario.boxes.hubspot.webhooks.deliveries if d.status is not None]
    assert deliveries and proxy.forwarded == 3 * len(deliveries) and proxy.failed == 0
    delivered_ids = {event_id for d in deliveries for event_id in d.event_ids}
    with scenario.runtime.store.session() as session:
        stored = session.scalar(
            select(func.count()).select_from(InboxEvent).where(InboxEvent.source == "hubspot")
        )
    assert stored == len(delivered_ids)  # three copies each, one inbox row each

    procs = [web.proc, *(w.proc for w in workers)]
    before = {p.pid: rss_mb(p.pid) for p in procs if p is not None}
    contact_ids = [str(c["id"]) for c in scenario.boxes.hubspot.contacts() if not c.get("archived")]
    accepted = _signed_burst(web.url, proxy.url, contact_ids, BURST)
    assert accepted == BURST
    peak = dict(before)
    deadline = time.monotonic() + 300
    while True:
        for pid in peak:
            peak[pid] = max(peak[pid], rss_mb(pid))
        with scenario.runtime.store.session() as session:
            pending = session.scalar(select(func.count()).where(InboxEvent.status == "pending"))
        if not pending:
            break
        assert time.monotonic() < deadline, f"{pending} inbox events still pending"
        time.sleep(0.2)
    operations.sweep_inbox(min_age_seconds=0)
    scenario.sync_until_quiet()

    print(
        f"storm: {len(delivered_ids)} events x3 via {proxy.forwarded} POSTs; burst {BURST}; RSS MB",
        before,
        peak,
    )
    for pid, mb in peak.items():
        assert mb < RSS_LIMIT_MB and mb - before[pid] < RSS_GROWTH_MB, (pid, before[pid], mb)
    with scenario.runtime.store.session() as session:
        by_status = dict(
            session.execute(select(InboxEvent.status, func.count()).group_by(InboxEvent.status)).all()
        )
    assert by_status.get("pending", 0) == 0, by_status
    assert by_status.get("done", 0) >= BURST, by_status
    truth = scenario.ground_truth()
    verdict = verify(truth, scenario.runtime.store, scenario.boxes.hubspot, scenario.boxes.salesforce)
    assert verdict.ok, verdict.summary()
    assert verdict.checked_people == PEOPLE
