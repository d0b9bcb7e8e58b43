"""The HubSpot poller against a search index that lags and reorders (issue 18, item 11).

HubSpot's search is eventually consistent: a change becomes searchable seconds after it was made,
and not necessarily in the order the changes were made ("Propagation Time",
https://docs.locoia.com/connectors/connectors/hubspot; https://blog.sequin.io/building-a-sync-on-hubspots-api/).
The real poller, connector, identity map and store run against the sandbox over HTTP; the poller
must report every change once it is searchable, as long as its overlap covers the indexing lag.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hubspot.crm.contacts import SimplePublicObjectInput, SimplePublicObjectInputForCreate
from limits import storage

from sandboxes.common import SimClock
from sync.connectors.errors import RetryPolicy
from sync.connectors.hubspot import HubSpotConnector
from sync.connectors.hubspot_ma import HubSpotMarketing
from sync.connectors.ratelimit import WindowLimiter
from sync.identity import RecordRef
from sync.mapping import load_mapping
from sync.poller import Poller
from sync.roles import MA
from sync.store.db import Store, upgrade
from tests.contract.hubspot_fixtures import HubSpotEnv, start_hubspot
from tests.fakes import FakeSales

pytestmark = pytest.mark.integration

MAPPING = Path(__file__).parents[2] / "mappings" / "default.yaml"
DELAY, JITTER = 0.2, 0.6  # each change is searchable 0.2-0.8 s after it was made
OVERLAP = timedelta(seconds=1)  # at least the longest lag


@pytest.fixture
def lagging_portal() -> Iterator[HubSpotEnv]:
    # A running clock: record timestamps advance with real time, as in a real portal.
    env = start_hubspot(
        clock=SimClock(),
        search_delay_seconds=DELAY,
        search_jitter_seconds=JITTER,
        search_per_second=10_000,
        window_limit=100_000,
    )
    yield env
    env.server.stop()


def test_poller_reports_every_change_despite_a_lagging_reordering_index(
    lagging_portal: HubSpotEnv, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'closedloop.db'}"
    upgrade(url)
    store = Store(url)
    limiter = WindowLimiter(storage.MemoryStorage(), 100_000, 10, 1_000_000, "test-hubspot")
    connector = HubSpotConnector(
        lagging_portal.url, lagging_portal.sandbox.token, limiter, RetryPolicy(base_seconds=0.01)
    )
    # Polling the marketing role never touches the sales side; it is not part of this test.
    marketing = HubSpotMarketing(connector, load_mapping(MAPPING))
    poller = Poller(store, marketing, FakeSales(), overlap=OVERLAP)
    api = lagging_portal.client.crm.contacts.basic_api
    rng = random.Random(5)

    writes: list[tuple[str, float]] = []  # (contact id, when written)
    polls: list[tuple[float, set[str]]] = []  # (when started, common ids reported)
    ids: list[str] = []
    end_writes = time.monotonic() + 3.0
    while time.monotonic() < end_writes:
        if not ids or rng.random() < 0.5:
            created = api.create(
                SimplePublicObjectInputForCreate(properties={"email": f"p{len(ids)}@lag.io"})
            )
            ids.append(created.id)
            writes.append((created.id, time.monotonic()))
        else:
            target = rng.choice(ids)
            api.update(target, SimplePublicObjectInput(properties={"jobtitle": f"t{len(writes)}"}))
            writes.append((target, time.monotonic()))
        started = time.monotonic()
        polls.append((started, set(poller.poll("ma"))))
        time.sleep(rng.uniform(0.0, 0.08))
    settle_until = time.monotonic() + DELAY + JITTER + OVERLAP.total_seconds() + 0.3
    while time.monotonic() < settle_until:
        polls.append((time.monotonic(), set(poller.poll("ma"))))
        time.sleep(0.1)
    assert lagging_portal.sandbox.search_lagging() == 0

    common = _common_ids(poller, marketing, store, ids)
    missed = [
        (cid, at)
        for cid, at in writes
        if not any(start >= at and common[cid] in seen for start, seen in polls)
    ]
    assert missed == [], f"{len(missed)} of {len(writes)} changes never reported"

    # The index really did reorder: some contact was first reported before one created earlier.
    first_seen = {cid: next(i for i, (_, seen) in enumerate(polls) if common[cid] in seen) for cid in ids}
    assert any(first_seen[later] < first_seen[earlier] for earlier, later in zip(ids, ids[1:], strict=False))
    # and a quiet poller reports nothing once everything was seen.
    assert poller.poll("ma") == []


def _common_ids(poller: Poller, marketing: HubSpotMarketing, store: Store, ids: list[str]) -> dict[str, Any]:
    """HubSpot id -> the common ID the poller's identity map gave that contact."""
    refs = {hid: RecordRef(MA, "contact", hid) for hid in ids}
    with store.session() as session:
        return {hid: poller.resolve(session, marketing.candidates([refs[hid]]))[0] for hid in ids}


@pytest.mark.slow  # the poller test above holds the same property in seconds
def test_scenario_with_a_lagging_search_matches_the_ground_truth(
    tmp_path: Path, sqlite_url: str, redis_url: str
) -> None:
    """The whole loop with HubSpot search lagging 0.3 s behind every change: no person is missed.

    The scenario polls without overlap, which is safe only because a constant lag keeps changes
    searchable in the order they were made; it treats a lagging index as "not quiet yet".
    """
    from sandboxes.scenario import Scenario, ScenarioConfig
    from sandboxes.verify import verify

    config = ScenarioConfig(
        workdir=tmp_path,
        people=40,
        seed=21,
        database_url=sqlite_url,
        redis_url=redis_url,
        hubspot_search_per_second=50,
        hubspot_search_delay_seconds=0.1,
    )
    scenario = Scenario(config)
    scenario.start()
    try:
        scenario.run()
        assert scenario.runtime is not None and scenario.boxes is not None
        assert scenario.boxes.hubspot.stores["contacts"].index.delay_seconds == 0.1
        truth = scenario.ground_truth()
        verdict = verify(truth, scenario.runtime.store, scenario.boxes.hubspot, scenario.boxes.salesforce)
        assert verdict.ok, verdict.summary()
        assert verdict.checked_people == 40
    finally:
        scenario.stop()
