"""Per-record baseline vs Closedloop's batched sync of the same records: API calls and wall time.

The baseline writes the way open-source reverse-ETL tools do, one upsert call per record, with the
same client libraries Closedloop uses: simple-salesforce ``sf.Lead.upsert("Closedloop_Id__c/<id>",
...)`` and hubspot-api-client ``crm.contacts.basic_api.update``. It reads its source with the same
search pages and sends the same mapped fields; its HubSpot calls pass the same moving-window limiter
(190 / 10 s), so neither side spends calls on 429s.

Closedloop side: N HubSpot MQLs handed over (Leads upserted in Salesforce, ID and stage written back
to HubSpot) by the real engine and embedded workers, until quiet. Baseline side: the same N people,
the same two writes per person, afterwards on the same sandboxes.

Run: .venv/bin/python bench/baseline.py [--people 500]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hubspot import HubSpot  # noqa: E402
from hubspot.crm.contacts import SimplePublicObjectInput  # noqa: E402
from hubspot.crm.contacts.exceptions import ApiException  # noqa: E402

from bench.common import calls_total, print_machine, print_table, running_closedloop  # noqa: E402
from bench.sync_calls import seed_mqls  # noqa: E402
from sandboxes.population import advance_clock_to  # noqa: E402
from sandboxes.scenario import Scenario  # noqa: E402
from sync.connectors.ratelimit import WindowLimiter, make_storage  # noqa: E402
from sync.connectors.salesforce import make_salesforce_client  # noqa: E402
from sync.logs import configure_logging  # noqa: E402
from sync.mapping.project import project  # noqa: E402


@dataclass
class SideFigures:
    name: str
    hubspot_calls: int
    salesforce_calls: int
    seconds: float

    @property
    def calls(self) -> int:
        return self.hubspot_calls + self.salesforce_calls


def _reset(scenario: Scenario) -> None:
    assert scenario.boxes is not None
    scenario.boxes.hubspot.counter.reset()
    scenario.boxes.salesforce.counter.reset()


def _figures(name: str, scenario: Scenario, seconds: float) -> SideFigures:
    assert scenario.boxes is not None
    return SideFigures(
        name,
        calls_total(scenario.boxes.hubspot.counter),
        calls_total(scenario.boxes.salesforce.counter),
        seconds,
    )


def closedloop_side(scenario: Scenario, people: int, seed: int) -> SideFigures:
    """Closedloop hands N MQLs over, batched, until both systems are quiet."""
    seed_mqls(scenario, people, seed)
    advance_clock_to(scenario.clock, scenario.clock.now() + timedelta(minutes=1))
    _reset(scenario)
    began = time.perf_counter()
    scenario.sync_until_quiet(max_rounds=20)
    return _figures("Closedloop (batched)", scenario, time.perf_counter() - began)


def baseline_side(scenario: Scenario) -> tuple[SideFigures, int]:
    """One upsert per record into Salesforce and one update per record into HubSpot."""
    assert scenario.runtime is not None
    runtime = scenario.runtime
    settings = runtime.settings
    mapping, _ = runtime.mappings.get()
    ext, ma_prop = mapping.identity.sfa_field, mapping.identity.ma_property
    token = settings.hubspot_access_token.get_secret_value() if settings.hubspot_access_token else ""
    hs = HubSpot(access_token=token, host=settings.hubspot_base_url.rstrip("/"))
    lead_api: Any = make_salesforce_client(settings).Lead  # simple-salesforce's per-object API
    limiter = WindowLimiter(
        make_storage(None),
        per_window=settings.hubspot_window_limit,
        window_seconds=10,
        per_day=10**9,
        namespace="b",
    )
    time.sleep(10.5)  # Closedloop's own calls age out of the sandbox's window first
    _reset(scenario)
    began = time.perf_counter()
    props = sorted({fm.ma for fm in mapping.fields} | {ma_prop, "lastmodifieddate"})
    written = 0
    for page in runtime.edges.ma.changed_since(None, props):  # the same search pages a poller reads
        for contact in page:
            cid = contact.properties.get(ma_prop)
            if not cid:
                continue
            fields = project(mapping, "ma", contact.properties, sfa_object="Lead")
            lead_api.upsert(f"{ext}/{cid}", fields)
            body = SimplePublicObjectInput(properties={"closedloop_stage": "mql", ma_prop: cid})
            while True:  # a 429 (the two windows' edges differ by the request's travel time) is retried
                limiter.acquire()
                try:
                    hs.crm.contacts.basic_api.update(contact.id, body)
                    break
                except ApiException as exc:
                    if exc.status != 429:
                        raise
                    time.sleep(0.5)
            written += 1
    return _figures("per-record baseline", scenario, time.perf_counter() - began), written


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--people", type=int, default=500)
    parser.add_argument("--seed", type=int, default=17)
    args = parser.parse_args()
    configure_logging("console", "WARNING")
    print_machine("baseline: per-record upserts vs Closedloop's batched sync")
    with running_closedloop(seed=args.seed) as scenario:
        ours = closedloop_side(scenario, args.people, args.seed)
        base, written = baseline_side(scenario)
    rows = [
        [side.name, side.hubspot_calls, side.salesforce_calls, side.calls, side.seconds]
        for side in (base, ours)
    ]
    print(f"\n{args.people:,} people handed over; the baseline wrote {written:,} of them (2 writes each)")
    print_table(["side", "HubSpot calls", "Salesforce calls", "all calls", "wall s"], rows)
    print(
        f"\nbaseline / Closedloop: {base.calls / ours.calls:.1f}x the API calls, "
        f"{base.seconds / ours.seconds:.1f}x the wall time"
    )
    print(
        "(Closedloop's calls include its reads of both systems and the echo-check round; the baseline reads"
    )
    print(" nothing from Salesforce and never checks whether a write changes anything.)")


if __name__ == "__main__":
    main()
