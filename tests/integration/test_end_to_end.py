"""The whole closed loop with a real Redis broker, separate worker processes, PostgreSQL and both sandboxes.

Afterwards both systems and the transition log must equal the scripted sales team's ground truth:
every stage path (with its times), no person twice in either system, loss reasons and amounts on
the right HubSpot contacts.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sandboxes.ground_truth import GroundTruth
from sandboxes.scenario import Scenario, ScenarioConfig
from sandboxes.verify import verify
from sync import operations
from sync.reporting import funnel_report
from tests.conftest import FULL_PROFILE
from tests.integration.four_teams import assert_four_teams_match
from tests.integration.harness import WorkerProcess

pytestmark = pytest.mark.integration


def _run(
    tmp_path: Path, pg_url: str, redis_url: str, people: int, locale: str, seed: int, exercised: bool = False
) -> None:
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
        _funnel_matches_truth(scenario, truth, exercised)
    finally:
        for worker in workers:
            worker.stop()
        scenario.stop()


def _funnel_matches_truth(scenario: Scenario, truth: GroundTruth, exercised: bool = False) -> None:
    """Every figure of the funnel report equals the same figure computed from the ground truth alone.

    With the handover SLAs of the Salesforce mappings, the four teams' figures too (``exercised``:
    each of them must be non-trivial, see :func:`assert_four_teams_match`).
    """
    assert scenario.runtime is not None
    mapping, _ = scenario.runtime.mappings.get()
    operations.detect_sla_breaches(now=scenario.clock.now())  # what the beat task does every minute
    operations.refresh_owner_names(now=scenario.clock.now())  # and every few minutes
    report = funnel_report(scenario.runtime.store, mapping, now=scenario.clock.now())
    reached = truth.reached_counts()
    current = truth.current_counts()
    for row in report.stages:
        assert (row.stage, row.reached, row.current) == (row.stage, reached[row.stage], current[row.stage])
    for a, b in (("mql", "sal"), ("mql", "sql"), ("sql", "won"), ("mql", "won")):
        measured = report.conversion_of(a, b)
        assert measured is not None
        assert measured.cohort == reached[a]
        assert measured.rate == pytest.approx(truth.conversion(a, b))
    campaigns = truth.by_campaign()
    for row in report.by_campaign:
        expected = campaigns[row.campaign]
        assert (row.mqls, row.sqls, row.wins) == (expected["mqls"], expected["sqls"], expected["wins"]), row
        assert int(row.won_amount) == expected["won_amount"], row
    assert {r.reason: r.count for r in report.loss_reasons.overall} == truth.loss_reasons()
    first_touch = next(s for s in report.sla if s.sla_id == "first_touch")
    expected_sla = truth.sla_first_touch(24)
    assert first_touch.met == expected_sla["met"]
    assert first_touch.breached == expected_sla["late"] + expected_sla["never"]
    if any(s.sla_id == "kickoff" for s in report.sla):
        assert_four_teams_match(report, truth, scenario.clock.now(), exercised)


def test_closed_loop_matches_ground_truth(tmp_path: Path, pg_url: str, redis_url: str) -> None:
    people = 500 if not FULL_PROFILE else 3000
    _run(tmp_path, pg_url, redis_url, people=people, locale="en", seed=11, exercised=True)


def test_japanese_population_with_messy_emails(tmp_path: Path, pg_url: str, redis_url: str) -> None:
    _run(tmp_path, pg_url, redis_url, people=200 if not FULL_PROFILE else 1000, locale="ja", seed=12)
