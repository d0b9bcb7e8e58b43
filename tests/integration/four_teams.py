"""Checks shared by the end-to-end suites: the four teams' figures equal the ground truth's.

The report is measured by Closedloop from its transition log and SLA timers; the expected figures
come from the scripted teams' own record of what they did (``sandboxes.ground_truth``), never from
the store.
"""

from __future__ import annotations

import statistics
from datetime import datetime

import pytest

from sandboxes.ground_truth import GroundTruth
from sync.funnel.figures import FunnelReport

THREE_SLAS = ("first_touch", "info_sheet", "kickoff")


def assert_four_teams_match(
    report: FunnelReport, truth: GroundTruth, now: datetime, exercised: bool = True
) -> None:
    """The three handover SLAs, their breakdown by owner name/team/campaign/week, and the CS figures.

    ``exercised``: the population is large enough that every figure must be non-trivial (both SLA
    outcomes, churn, expansion, NPS answers); smaller runs check equality only.
    """
    summaries = {s.sla_id: s for s in report.sla}
    for sla_id in THREE_SLAS:
        expected = truth.sla_counts(sla_id, now)
        got = summaries[sla_id]
        assert (sla_id, got.met, got.breached) == (sla_id, expected["met"], expected["breached"])
        assert not exercised or (got.met and got.breached), f"{sla_id}: both outcomes must be exercised"

    measured = {
        (g.dimension, report.owner_name(g.value) if g.dimension == "owner" else g.value, g.sla_id): (
            g.met,
            g.breached,
        )
        for g in report.sla_groups
        if g.sla_id == "*" or g.sla_id in THREE_SLAS
    }
    assert measured == truth.sla_breakdown(now)
    owners = {value for (dimension, value, _sla) in measured if dimension == "owner"}
    assert not any(name.startswith("005") for name in owners), owners  # names, not user IDs
    teams = {value for (dimension, value, _sla) in measured if dimension == "team"}
    assert teams <= {"inside_sales", "customer_success"}

    cs = report.customer_success
    assert cs is not None
    hours = truth.won_to_kickoff_hours()
    assert cs.won_to_kickoff.count == len(hours)
    if hours:
        assert cs.won_to_kickoff.median_hours == pytest.approx(statistics.median(hours), abs=1e-6)
    assert (
        cs.kickoff_sla is not None and cs.kickoff_sla.breached == truth.sla_counts("kickoff", now)["breached"]
    )
    churn = {row.cohort: (row.churned, row.customers) for row in cs.churn_by_cohort}
    assert churn == truth.churn_by_cohort()
    assert cs.expansion_rate == pytest.approx(truth.expansion_rate())
    assert cs.nps is not None
    assert (round(cs.nps.score, 1) if cs.nps.score is not None else None) == truth.nps()
    if exercised:
        assert owners and teams == {"inside_sales", "customer_success"}
        assert hours and any(churned for churned, _ in churn.values()) and cs.expanded > 0
        assert cs.nps.score is not None
