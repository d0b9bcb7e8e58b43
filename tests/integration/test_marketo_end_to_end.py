"""The closed loop with Marketo as the marketing tool: real Redis broker, worker processes, PostgreSQL.

The Marketo sandbox is seeded with the shared population (programs as campaigns, scores in
``leadScore``, MQLs by score and lead status), Closedloop hands MQLs to the Salesforce sandbox,
the scripted sales team works them, and afterwards the transition log, Salesforce and the Marketo
leads' closed-loop fields must equal the ground truth exactly, funnel figures included.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from sandboxes.scenario import Scenario, ScenarioConfig
from sandboxes.verify import verify
from sync.store.models import RecordLink, Transition
from tests.conftest import FULL_PROFILE
from tests.integration.harness import WorkerProcess
from tests.integration.test_end_to_end import _funnel_matches_truth

pytestmark = pytest.mark.integration


def _run(tmp_path: Path, pg_url: str, redis_url: str, people: int, locale: str, seed: int) -> None:
    config = ScenarioConfig(
        workdir=tmp_path,
        ma="marketo",
        people=people,
        span_days=30 if FULL_PROFILE else 10,  # fewer simulated days: fewer poll rounds in make test
        seed=seed,
        locale=locale,  # type: ignore[arg-type]
        database_url=pg_url,
        redis_url=redis_url,
        embedded_worker=False,
        marketo_window_limit=2000,  # simulated days pass in seconds (see ScenarioConfig)
    )
    scenario = Scenario(config)
    scenario.start()
    workers = [WorkerProcess(scenario.settings_env(), f"w{i}", log_dir=tmp_path).start() for i in range(2)]
    try:
        stats = scenario.run()
        assert scenario.runtime is not None and scenario.boxes is not None
        marketo = scenario.boxes.marketo
        assert marketo is not None
        truth = scenario.ground_truth()
        verdict = verify(truth, scenario.runtime.store, scenario.marketing, scenario.boxes.salesforce)
        assert verdict.ok, verdict.summary()
        assert verdict.checked_people == people
        outcomes = truth.outcome_counts()
        assert outcomes.get("won", 0) > 0 and outcomes.get("lost", 0) > 0, outcomes  # the loop really closed
        assert stats.tasks > 0
        assert scenario.boxes.hubspot.counter.total() == 0  # Marketo really was the marketing tool
        assert marketo.limits.rejected["606"] == 0 and marketo.limits.rejected["615"] == 0
        with scenario.runtime.store.session() as session:
            roles = set(session.execute(select(RecordLink.role, RecordLink.connector)).all())
            assert roles == {("ma", "marketo"), ("sfa", "salesforce")}
            sources = set(session.scalars(select(Transition.source_connector)))
            assert sources == {"marketo", "salesforce"}
        _funnel_matches_truth(scenario, truth)
    finally:
        for worker in workers:
            worker.stop()
        scenario.stop()


def test_marketo_closed_loop_matches_ground_truth(tmp_path: Path, pg_url: str, redis_url: str) -> None:
    _run(tmp_path, pg_url, redis_url, people=60 if not FULL_PROFILE else 2000, locale="en", seed=21)


def test_marketo_japanese_population_with_messy_emails(tmp_path: Path, pg_url: str, redis_url: str) -> None:
    _run(tmp_path, pg_url, redis_url, people=30 if not FULL_PROFILE else 1000, locale="ja", seed=22)
