"""Sustained HubSpot write throughput under the sandbox's rate limit (190 calls / 10 s), vs the ceiling.

Ceiling: 190 calls / 10 s x 100 records per batch call = 1,900 records/s.

1. Write path: Closedloop's HubSpot connector, behind its shared moving-window limiter, updates
   contacts in 100-record batch calls for ``--seconds`` (threads share one limiter, as workers
   share one through Redis). Records/s counts only records the sandbox accepted (HTTP 200); 429s
   the sandbox had to send are reported (each one is a wasted call).
2. End to end (``--people``): sales outcomes on N Leads synced back to HubSpot through the real
   engine and embedded workers; records/s written to HubSpot and HubSpot window calls/s.

Run: .venv/bin/python bench/throughput.py [--seconds 40] [--threads 2] [--people 2000]
Target (DESIGN.md): >= 90% of the ceiling, sustained over >= 30 s.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    HUBSPOT_BATCH_MAX,
    WriteTally,
    calls_total,
    print_machine,
    running_closedloop,
)
from bench.sync_calls import seed_mqls, work_leads  # noqa: E402
from sandboxes.common import CallCounter  # noqa: E402
from sandboxes.population import advance_clock_to  # noqa: E402
from sandboxes.scenario import Scenario  # noqa: E402
from sync.logs import configure_logging  # noqa: E402

WINDOW_CALLS = 190
WINDOW_SECONDS = 10
CEILING = WINDOW_CALLS / WINDOW_SECONDS * HUBSPOT_BATCH_MAX  # records/s


@dataclass
class WritePathFigures:
    seconds: float
    records: int
    calls_ok: int
    calls_429: int
    limiter_waits: int

    @property
    def rate(self) -> float:
        return self.records / self.seconds

    @property
    def share(self) -> float:
        return self.rate / CEILING


def _statuses(counter: CallCounter, marker: str) -> dict[int, int]:
    out: dict[int, int] = {}
    for row in counter.snapshot():
        if marker in str(row["endpoint"]):
            out[int(row["status"])] = out.get(int(row["status"]), 0) + int(row["count"])
    return out


def write_path(scenario: Scenario, seconds: float, threads: int, contacts: int = 2000) -> WritePathFigures:
    """Batch updates through the connector and its limiter for ``seconds``; figures of whole windows.

    The limiter's first window is free (an empty window admits a burst of 190), so the clock starts
    at the first call and the run lasts whole windows: the rate is what the limit allows on average.
    """
    assert scenario.boxes is not None and scenario.runtime is not None
    hubspot = scenario.runtime.edges.ma
    ids = [
        scenario.boxes.hubspot.seed_contact({"email": f"tp{i}@bench.example", "firstname": "T"})
        for i in range(contacts)
    ]
    # Let the seeding's window (none: seeding is in-process) and earlier calls age out.
    time.sleep(WINDOW_SECONDS + 0.5)
    scenario.boxes.hubspot.counter.reset()
    limiter = hubspot._limiter  # noqa: SLF001 - read-only: how often callers had to wait
    waits0 = limiter.waits
    windows = max(1, round(seconds / WINDOW_SECONDS))
    began = time.monotonic()
    stop_at = began + windows * WINDOW_SECONDS
    done = [0]
    lock = threading.Lock()

    def worker(offset: int) -> None:
        n = offset
        while True:
            start = (n * HUBSPOT_BATCH_MAX) % (contacts - HUBSPOT_BATCH_MAX + 1)
            chunk = ids[start : start + HUBSPOT_BATCH_MAX]
            updates = {cid: {"closedloop_stage": f"s{n % 7}"} for cid in chunk}
            if time.monotonic() >= stop_at:
                return
            errors = hubspot.update(updates)
            # A call admitted before the end may finish after it; it counts only if it finished in time.
            if time.monotonic() <= stop_at:
                with lock:
                    done[0] += len(updates) - len(errors)
            n += threads

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    statuses = _statuses(scenario.boxes.hubspot.counter, "/batch/update")
    return WritePathFigures(
        seconds=windows * WINDOW_SECONDS,
        records=done[0],
        calls_ok=statuses.get(200, 0),
        calls_429=statuses.get(429, 0),
        limiter_waits=limiter.waits - waits0,
    )


@dataclass
class EndToEndFigures:
    people: int
    seconds: float
    records: int
    hubspot_window_calls: int

    @property
    def rate(self) -> float:
        return self.records / self.seconds


def end_to_end(scenario: Scenario, people: int, seed: int = 13) -> EndToEndFigures:
    """Sales outcomes on ``people`` Leads, synced back to HubSpot by the engine and workers."""
    assert scenario.boxes is not None and scenario.runtime is not None
    tally = WriteTally()
    tally.install(scenario.runtime)
    seed_mqls(scenario, people, seed)
    scenario.sync_until_quiet(max_rounds=20)
    work_leads(scenario, seed)
    advance_clock_to(scenario.clock, scenario.clock.now() + timedelta(minutes=1))
    counter = scenario.boxes.hubspot.counter
    counter.reset()
    tally.reset()
    began = time.monotonic()
    scenario.sync_until_quiet(max_rounds=20)
    seconds = time.monotonic() - began
    search = sum(int(r["count"]) for r in counter.snapshot() if str(r["endpoint"]).endswith("/search"))
    return EndToEndFigures(people, seconds, tally.total("hubspot"), calls_total(counter) - search)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=40.0, help="write-path run, in whole 10 s windows")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--people", type=int, default=2000, help="end-to-end people (0 skips it)")
    args = parser.parse_args()
    configure_logging("console", "WARNING")
    print_machine("throughput: HubSpot records/s under 190 calls / 10 s")
    with running_closedloop(hubspot_window_limit=WINDOW_CALLS) as scenario:
        wp = write_path(scenario, args.seconds, args.threads)
        print(
            f"\nwrite path ({args.threads} threads, one shared limiter): {wp.records:,} records in "
            f"{wp.seconds:.0f}s = {wp.rate:,.0f} records/s = {wp.share:.1%} of the {CEILING:,.0f}/s ceiling "
            f"(target >= 90%: {'met' if wp.share >= 0.9 else 'MISSED'})"
        )
        print(
            f"  batch/update calls: {wp.calls_ok} accepted, {wp.calls_429} answered 429; "
            f"limiter waits: {wp.limiter_waits}"
        )
        if args.people:
            e2e = end_to_end(scenario, args.people)
            window_rate = e2e.hubspot_window_calls / e2e.seconds
            print(
                f"\nend to end ({e2e.people:,} sales outcomes -> HubSpot): {e2e.records:,} records in "
                f"{e2e.seconds:.1f}s = {e2e.rate:,.0f} records/s = {e2e.rate / CEILING:.1%} of the ceiling; "
                f"HubSpot window calls {e2e.hubspot_window_calls} = {window_rate:.1f}/s "
                f"({window_rate / (WINDOW_CALLS / WINDOW_SECONDS):.0%} of the 19/s window)"
            )


if __name__ == "__main__":
    main()
