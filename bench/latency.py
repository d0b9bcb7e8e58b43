"""Change → other system updated, through webhooks: HubSpot edit → Salesforce Lead, Salesforce → HubSpot.

Run: .venv/bin/python bench/latency.py [--changes 200] [--rate 4] [--database-url URL] [--redis-url URL]
Target (DESIGN.md): p95 <= 2 s. Polling is off (no beat), so every change travels the webhook path:
sandbox notification → web app → inbox → Celery → engine → write to the other system.

Setup hands ``--changes`` MQL contacts over as Salesforce Leads (through webhooks too). Then changes
are made at ``--rate`` per second, alternating: a HubSpot ``company`` edit (done when the Lead's
``Company`` equals it) and a Salesforce Lead ``Status`` edit (done when the contact's
``closedloop_sfa_status`` equals it). Each person gets one change, so every latency is unambiguous.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sandboxes.population import generate_population
from sandboxes.realtime import RealtimeLink, webhook_properties
from sandboxes.scenario import Scenario, ScenarioConfig
from sync.logs import configure_logging

SECRET = "bench-webhook-secret"
STATUSES = ("Working - Contacted", "Open - Not Contacted")


@dataclass
class Change:
    kind: str
    started: float
    done: Callable[[], bool]
    finished: float | None = None


class Watcher:
    """Checks pending changes every few milliseconds (in-process sandbox reads, not API calls)."""

    def __init__(self) -> None:
        self.changes: list[Change] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def add(self, change: Change) -> None:
        with self._lock:
            self.changes.append(change)

    def open(self) -> int:
        with self._lock:
            return sum(1 for c in self.changes if c.finished is None)

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                pending = [c for c in self.changes if c.finished is None]
            for change in pending:
                if change.done():
                    change.finished = time.monotonic()
            self._stop.wait(0.005)

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]  # nearest rank


def run(args: argparse.Namespace) -> int:
    configure_logging("console", "WARNING")
    workdir = Path(tempfile.mkdtemp(prefix="closedloop-latency-"))
    scenario = Scenario(
        ScenarioConfig(
            workdir=workdir,
            people=0,
            database_url=args.database_url,
            redis_url=args.redis_url,
            worker_concurrency=args.concurrency,
            extra_settings={"hubspot_webhook_secret": SECRET, "poll_interval": 3600, "log_level": "WARNING"},
        )
    )
    scenario.clock.speed = 1.0
    scenario.start()
    assert scenario.runtime is not None and scenario.boxes is not None
    rt, boxes = scenario.runtime, scenario.boxes
    hubspot, salesforce = boxes.hubspot, boxes.salesforce
    from workers.tasks import process_inbox

    mapping, _ = rt.mappings.get()
    link = RealtimeLink(
        rt.settings, rt.store, lambda ids: process_inbox.delay(list(ids)), boxes, webhook_properties(mapping)
    ).start()
    try:
        # Setup: MQL contacts, handed over as Leads through webhooks.
        people = [p for p in generate_population(args.changes * 3, seed=args.seed) if p.is_mql][
            : args.changes
        ]
        if len(people) < args.changes:
            raise SystemExit("population too small for the requested number of changes")
        began = time.monotonic()
        contact_ids = []
        for p in people:
            contact_ids.append(hubspot.seed_contact({**p.creation_properties(), **p.mql_properties()}))
        link.wait_until_quiet(timeout=600)
        setup_seconds = time.monotonic() - began
        leads = {(r.get("Email") or "").lower(): r["Id"] for r in salesforce.records("Lead")}
        lead_ids = [leads[p.normalised_email] for p in people]
        hs_calls0 = hubspot.counter.total()
        sf_calls0 = salesforce.counter.total()

        def hubspot_edit(i: int) -> Change:
            value = f"Bench Co {i}"
            hubspot.update_contact(contact_ids[i], {"company": value})
            return Change(
                "HubSpot → Salesforce",
                time.monotonic(),
                lambda: (salesforce.get("Lead", lead_ids[i]) or {}).get("Company") == value,
            )

        def salesforce_edit(i: int) -> Change:
            value = STATUSES[i % 4 // 2]
            salesforce.update("Lead", lead_ids[i], {"Status": value})
            return Change(
                "Salesforce → HubSpot",
                time.monotonic(),
                lambda: (hubspot.get_contact(contact_ids[i]) or {}).get("closedloop_sfa_status") == value,
            )

        with Watcher() as watcher:
            t0 = time.monotonic()
            for i in range(args.changes):
                due = t0 + i / args.rate
                time.sleep(max(0.0, due - time.monotonic()))
                watcher.add(hubspot_edit(i) if i % 2 == 0 else salesforce_edit(i))
            deadline = time.monotonic() + 120
            while watcher.open() and time.monotonic() < deadline:
                time.sleep(0.05)
            drive_seconds = time.monotonic() - t0
        link.wait_until_quiet(timeout=120)
        _report(
            args,
            watcher.changes,
            setup_seconds,
            drive_seconds,
            hubspot.counter.total() - hs_calls0,
            salesforce.counter.total() - sf_calls0,
        )
        p95 = _percentile([c.finished - c.started for c in watcher.changes if c.finished], 0.95)
        missing = sum(1 for c in watcher.changes if c.finished is None)
        return 0 if missing == 0 and p95 <= 2.0 else 1
    finally:
        link.stop()
        scenario.stop()


def _report(
    args: argparse.Namespace,
    changes: list[Change],
    setup_seconds: float,
    drive_seconds: float,
    hs_calls: int,
    sf_calls: int,
) -> None:
    print(
        f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"store {'PostgreSQL' if args.database_url else 'SQLite'}, "
        f"broker {'Redis' if args.redis_url else 'in-memory'}, {args.concurrency} worker threads"
    )
    print(
        f"{args.changes} changes at {args.rate}/s; setup (hand-over of {args.changes} MQLs) {setup_seconds:.1f}s"
    )
    header = f"{'direction':<22}{'n':>5}{'done':>6}{'p50 s':>8}{'p95 s':>8}{'max s':>8}"
    print(header)
    print("-" * len(header))
    kinds = sorted({c.kind for c in changes}) + ["all"]
    for kind in kinds:
        chosen = [c for c in changes if kind in ("all", c.kind)]
        lat = [c.finished - c.started for c in chosen if c.finished is not None]
        if not lat:
            print(f"{kind:<22}{len(chosen):>5}{0:>6}")
            continue
        print(
            f"{kind:<22}{len(chosen):>5}{len(lat):>6}{statistics.median(lat):>8.3f}"
            f"{_percentile(lat, 0.95):>8.3f}{max(lat):>8.3f}"
        )
    print(
        f"API calls during the changes: HubSpot {hs_calls} ({hs_calls / max(1, len(changes)):.1f}/change), "
        f"Salesforce {sf_calls} ({sf_calls / max(1, len(changes)):.1f}/change); wall {drive_seconds:.1f}s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--rate", type=float, default=4.0, help="changes per second")
    parser.add_argument("--concurrency", type=int, default=4, help="embedded worker threads")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temp directory")
    parser.add_argument("--redis-url", default=None, help="default: the in-memory broker")
    raise SystemExit(run(parser.parse_args()))


if __name__ == "__main__":
    main()
