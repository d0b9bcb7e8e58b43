"""Marketo API efficiency: records per write call, calls per idle cycle, share of the 100 / 20 s window.

1. Bulk flows through the whole of Closedloop (sandboxes, SQLite, embedded worker, Marketo +
   Salesforce mapping, ``CLOSEDLOOP_BATCH_SIZE=300``): N Marketo leads that are all MQLs are synced
   (Salesforce Leads created, the common ID and stage written back to Marketo), then the sales team
   accepts or disqualifies every Lead and the outcomes flow back. Records are what Closedloop handed
   to the Marketo edge's Sync Leads; calls are the Sync Leads requests marketorestpython sent,
   retries included (the sandbox's count of POST leads.json also holds the library's long reads,
   sent as POST with ``_method=GET``).
2. Idle cycle: once both systems are quiet, the Marketo calls of one polling cycle.
3. Write path under the real window (100 calls / 20 s, 10 in flight): two writer processes share
   one Redis window (marketorestpython sleeps 0.2 s between calls of one process, so one process
   alone cannot fill 5 calls/s) and send 300-record Sync Leads calls for ``--seconds``. Share =
   records Marketo accepted / (300 x the calls the window allows in that time).

Run: .venv/bin/python bench/marketo_calls.py [--people 1500] [--seconds 60] [--redis-url URL]
Targets: >= 285 of 300 records per Marketo write call; 1 Marketo call per idle cycle; >= 90% of the
window sustained on the write path.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import print_machine, print_table, running_closedloop  # noqa: E402
from sandboxes.common import ServerThread  # noqa: E402
from sandboxes.marketo import FORM_SOURCE, MarketoSandbox  # noqa: E402
from sandboxes.population import advance_clock_to, generate_population  # noqa: E402
from sandboxes.scenario import Scenario  # noqa: E402
from sync import operations  # noqa: E402
from sync.logs import configure_logging  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MAPPING = ROOT / "mappings" / "marketo-salesforce.yaml"
BATCH = 300
WINDOW_CALLS, WINDOW_SECONDS = 100, 20


# -- 1 and 2: bulk flows and the idle cycle through Closedloop ---------------------------------------


def bulk_phase(scenario: Scenario, handed: Counter[str], name: str, action: Any) -> list[Any]:
    """Run ``action``, sync until quiet; (phase, records, write calls, per call, seconds)."""
    assert scenario.boxes is not None and scenario.boxes.marketo is not None
    action()
    advance_clock_to(scenario.clock, scenario.clock.now() + timedelta(minutes=1))
    scenario.boxes.marketo.counter.reset()
    handed.clear()
    began = time.perf_counter()
    scenario.sync_until_quiet(max_rounds=20)
    seconds = time.perf_counter() - began
    calls, records = handed["calls"], handed["records"]
    return [name, records, calls, round(records / calls, 1) if calls else None, round(seconds, 1)]


def seed_mqls(scenario: Scenario, people: int, seed: int) -> None:
    """Marketo leads created by form fill-outs (in-process: not counted), every one an MQL."""
    assert scenario.boxes is not None and scenario.boxes.marketo is not None
    marketo = scenario.boxes.marketo
    for contact in generate_population(people, seed=seed):
        props = contact.creation_properties()
        values = {
            "email": props.get("email"),
            "firstName": props.get("firstname"),
            "lastName": props.get("lastname"),
            "company": props.get("company"),
            "leadScore": max(contact.score, 60),
            "leadStatus": "MQL",
        }
        marketo.create_lead(values, source=FORM_SOURCE)


def work_leads(scenario: Scenario, seed: int, disqualify_share: float = 0.3) -> None:
    assert scenario.boxes is not None
    rng = random.Random(seed)
    for lead in scenario.boxes.salesforce.records("Lead"):
        status = "Closed - Not Converted" if rng.random() < disqualify_share else "Working - Contacted"
        scenario.boxes.salesforce.update("Lead", lead["Id"], {"Status": status})


def through_closedloop(people: int, seed: int) -> tuple[list[list[Any]], int, list[str]]:
    """Bulk phases and the idle cycle; (phase rows, idle Marketo calls, idle call detail)."""
    settings = {"batch_size": BATCH, "poll_overlap": 0}
    with running_closedloop(
        ma="marketo", mappings=MAPPING, seed=seed, marketo_window_limit=5000, extra_settings=settings
    ) as scenario:
        assert (
            scenario.runtime is not None and scenario.boxes is not None and scenario.boxes.marketo is not None
        )
        edge = scenario.runtime.edges.ma
        handed: Counter[str] = Counter()
        upsert, sync_leads = edge.upsert, edge.client.create_update_leads

        def counted(records: Any, *args: Any, **kwargs: Any) -> Any:
            handed["records"] += len(records)
            return upsert(records, *args, **kwargs)

        def sent(*args: Any, **kwargs: Any) -> Any:
            handed["calls"] += 1
            return sync_leads(*args, **kwargs)

        edge.upsert = counted  # instances only: what Closedloop hands to Sync Leads, and the requests
        edge.client.create_update_leads = sent
        handover = "MQL handover (Marketo -> Salesforce Leads)"
        rows = [
            bulk_phase(scenario, handed, handover, lambda: seed_mqls(scenario, people, seed)),
            bulk_phase(
                scenario, handed, "sales outcomes (Salesforce -> Marketo)", lambda: work_leads(scenario, seed)
            ),
        ]
        marketo = scenario.boxes.marketo
        operations.poll("ma")  # settle: nothing changed since the last round
        marketo.counter.reset()
        found = operations.poll("ma")
        idle = marketo.counter.total()
        detail = [f"{r['method']} {r['endpoint']} x{r['count']}" for r in marketo.counter.snapshot()]
        assert not found, f"an idle cycle found {len(found)} people"
    return rows, idle, detail


# -- 3: the write path under the real window --------------------------------------------------------


def _writer(url: str, redis_url: str, seconds: float, start_at: float, offset: int, out: Any) -> None:
    """One worker process: 300-record createOrUpdate calls until the deadline, through the shared window."""
    from pydantic import SecretStr

    from sync.config import Settings
    from sync.connectors.errors import RetryPolicy
    from sync.connectors.marketo_ma import open_edge
    from sync.connectors.ratelimit import make_storage

    settings = Settings(
        ma="marketo",
        marketo_base_url=url,
        marketo_client_id="sandbox-client-id",
        marketo_client_secret=SecretStr("sandbox-client-secret"),
        marketo_window_limit=WINDOW_CALLS,
        marketo_window_seconds=WINDOW_SECONDS,
    )
    edge = open_edge(
        settings, RetryPolicy(max_attempts=10, base_seconds=0.2, max_seconds=5), make_storage(redis_url)
    )
    edge.client.authenticate()  # identity calls are not counted by Marketo
    time.sleep(max(0.0, start_at - time.time()))
    deadline = start_at + seconds
    accepted = calls = 0
    n = 0
    while True:
        records = [{"email": f"w{offset}-{n + i}@example.com", "leadScore": 10} for i in range(BATCH)]
        n += BATCH
        results = edge.upsert(records, "email")
        if time.time() > deadline:
            break  # a call finished after the run does not count
        calls += 1
        accepted += sum(1 for r in results if r.error is None)
    out.put((accepted, calls))


def write_path(redis_url: str, seconds: float, writers: int = 2) -> dict[str, Any]:
    import redis

    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(match="*marketo*"):
        client.delete(key)  # a fresh shared window and concurrency gate
    sandbox = MarketoSandbox(window_limit=WINDOW_CALLS, window_seconds=WINDOW_SECONDS)
    server = ServerThread(sandbox.app).start()
    try:
        ctx = multiprocessing.get_context("spawn")
        out = ctx.Queue()
        start_at = time.time() + 8.0  # every writer has started and authenticated
        procs = [
            ctx.Process(target=_writer, args=(server.url, redis_url, seconds, start_at, i, out))
            for i in range(writers)
        ]
        for proc in procs:
            proc.start()
        totals = [out.get(timeout=seconds + 120) for _ in procs]
        for proc in procs:
            proc.join(timeout=30)
    finally:
        server.stop()
    accepted = sum(a for a, _ in totals)
    calls = sum(c for _, c in totals)
    ceiling = WINDOW_CALLS * seconds / WINDOW_SECONDS * BATCH
    return {
        "writers": writers,
        "seconds": seconds,
        "calls": calls,
        "records": accepted,
        "records_per_second": accepted / seconds,
        "share": accepted / ceiling,
        "rejected_606": sandbox.limits.rejected["606"],
        "rejected_615": sandbox.limits.rejected["615"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--people", type=int, default=1500)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--redis-url", default=os.environ.get("CLOSEDLOOP_REDIS_URL"))
    parser.add_argument("--write-path-only", action="store_true", help="skip the flows through Closedloop")
    args = parser.parse_args()
    if not args.redis_url:
        raise SystemExit(
            "--redis-url (or CLOSEDLOOP_REDIS_URL) is needed: the writers share their window there"
        )
    configure_logging("console", "ERROR")
    print_machine("Marketo API efficiency")
    rows: list[list[Any]] = []
    idle = 1
    if not args.write_path_only:
        rows, idle, detail = through_closedloop(args.people, args.seed)
        print_table(["phase", "records", "write calls", "records / call", "seconds"], rows)
        print(f"idle cycle: {idle} Marketo call(s) ({'; '.join(detail)})")
    figures = write_path(args.redis_url, args.seconds)
    print(
        f"write path, {figures['writers']} writers, {figures['seconds']:.0f} s: {figures['records']:,} records in "
        f"{figures['calls']} calls = {figures['records_per_second']:.0f}/s = {figures['share']:.1%} of "
        f"{WINDOW_CALLS * BATCH // WINDOW_SECONDS:,}/s; answered 606: {figures['rejected_606']}, "
        f"615: {figures['rejected_615']}"
    )
    per_call = min((r[3] or 0 for r in rows), default=BATCH)
    met = per_call >= 285 and idle == 1 and figures["share"] >= 0.9
    print(f"targets (>= 285 records/call, 1 idle call, >= 90% of the window): {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
