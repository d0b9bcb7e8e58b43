"""One HubSpot portal in both roles, end to end: real Redis, separate worker processes, PostgreSQL.

The scripted sales team works the handed contacts in the same portal (lead status, then deals in
the default Sales Pipeline), with fast reps (every first touch within a day) and more deals than
the default team so every stage and outcome is exercised. Afterwards the transition log (paths and
times), the contacts' closed-loop properties and every funnel figure must equal the ground truth
built from the team's executed actions alone.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sandboxes.sales_team import TeamRates
from sandboxes.scenario import Scenario, ScenarioConfig
from sandboxes.verify import verify
from sync.connectors.hubspot_sfa import HubSpotSales
from tests.conftest import FULL_PROFILE
from tests.integration.harness import WorkerProcess
from tests.integration.test_end_to_end import _funnel_matches_truth

pytestmark = pytest.mark.integration

# Fast reps: every first touch within a day, and for a third of the people two changes within one
# poll interval (the history read with the people must fill in the stage in between).
FAST_REPS = TeamRates(late_touch_share=0.0, mql_to_sql=0.5, sql_to_won=0.5, fast_share=0.3)


def test_one_portal_in_both_roles_matches_ground_truth(tmp_path: Path, pg_url: str, redis_url: str) -> None:
    people = 80 if not FULL_PROFILE else 1500
    config = ScenarioConfig(
        workdir=tmp_path,
        people=people,
        span_days=30 if FULL_PROFILE else 10,  # fewer simulated days: fewer poll rounds in make test
        seed=15,
        database_url=pg_url,
        redis_url=redis_url,
        embedded_worker=False,
        hubspot_search_per_second=50,
        sfa="hubspot",
        team_rates=FAST_REPS,
    )
    scenario = Scenario(config)
    scenario.start()
    workers = [WorkerProcess(scenario.settings_env(), f"w{i}", log_dir=tmp_path).start() for i in range(2)]
    try:
        stats = scenario.run()
        assert scenario.runtime is not None and scenario.boxes is not None
        assert isinstance(scenario.runtime.sfa, HubSpotSales) and scenario.runtime.sfa.same_portal
        truth = scenario.ground_truth()
        verdict = verify(truth, scenario.runtime.store, scenario.boxes.hubspot, None)
        assert verdict.ok, verdict.summary()
        assert verdict.checked_people == people
        outcomes = truth.outcome_counts()
        assert outcomes.get("won", 0) > 0 and outcomes.get("lost", 0) > 0, outcomes  # the loop really closed
        assert outcomes.get("disqualified", 0) > 0, outcomes
        assert stats.tasks > 0
        # Nothing was created on the sales side: the handover marked the marketing contacts themselves.
        assert len(scenario.boxes.hubspot.contacts()) == people
        assert scenario.boxes.salesforce.records("Lead") == []
        _funnel_matches_truth(scenario, truth)  # detects SLA breaches, as the beat task does
        # Each breached first touch (on_breach: sfa_task) is a to-do task on its contact.
        expected = truth.sla_first_touch(24)
        tasks = scenario.boxes.hubspot.tasks.records
        assert len(tasks) == expected["late"] + expected["never"] > 0
        assert all(
            scenario.boxes.hubspot.live_associations("tasks", task_id, "contacts") for task_id in tasks
        )
    finally:
        for worker in workers:
            worker.stop()
        scenario.stop()
