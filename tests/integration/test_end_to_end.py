"""The whole closed loop with a real Redis broker, separate worker processes, PostgreSQL and both sandboxes.

Afterwards both systems and the transition log must equal the scripted sales team's ground truth:
every stage path (with its times), no person twice in either system, loss reasons and amounts on
the right HubSpot contacts.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sync.sandbox.verify import verify
from sync.scenario import Scenario, ScenarioConfig
from tests.conftest import FULL_PROFILE
from tests.integration.harness import WorkerProcess

pytestmark = pytest.mark.integration


def _run(tmp_path: Path, pg_url: str, redis_url: str, people: int, locale: str, seed: int) -> None:
    config = ScenarioConfig(
        workdir=tmp_path,
        people=people,
        seed=seed,
        locale=locale,  # type: ignore[arg-type]
        database_url=pg_url,
        redis_url=redis_url,
        embedded_worker=False,
        hubspot_search_per_second=50,
    )
    scenario = Scenario(config)
    scenario.start()
    workers = [WorkerProcess(scenario.settings_env(), f"w{i}", log_dir=tmp_path).start() for i in range(2)]
    try:
        stats = scenario.run()
        assert scenario.runtime is not None and scenario.boxes is not None
        truth = scenario.ground_truth()
        verdict = verify(truth, scenario.runtime.store, scenario.boxes.hubspot, scenario.boxes.salesforce)
        assert verdict.ok, verdict.summary()
        assert verdict.checked_people == people
        outcomes = truth.outcome_counts()
        assert outcomes.get("won", 0) > 0 and outcomes.get("lost", 0) > 0, outcomes  # the loop really closed
        assert stats.tasks > 0
    finally:
        for worker in workers:
            worker.stop()
        scenario.stop()


def test_closed_loop_matches_ground_truth(tmp_path: Path, pg_url: str, redis_url: str) -> None:
    _run(tmp_path, pg_url, redis_url, people=1000 if not FULL_PROFILE else 3000, locale="en", seed=11)


def test_japanese_population_with_messy_emails(tmp_path: Path, pg_url: str, redis_url: str) -> None:
    _run(tmp_path, pg_url, redis_url, people=300 if not FULL_PROFILE else 1000, locale="ja", seed=12)
