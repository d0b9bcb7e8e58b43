"""Machine-readable report outputs: a JSON-ready dict and a tidy CSV."""

from __future__ import annotations

import csv
import io
from dataclasses import asdict
from datetime import datetime
from decimal import Decimal
from typing import Any

from sync.funnel.customer_success import CustomerSuccess
from sync.funnel.figures import FunnelReport, ReasonBreakdown

CSV_COLUMNS = ("section", "group", "item", "metric", "value")


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _reasons(breakdown: ReasonBreakdown) -> dict[str, Any]:
    return {
        "overall": [asdict(r) for r in breakdown.overall],
        "by_campaign": {k: [asdict(r) for r in v] for k, v in breakdown.by_campaign.items()},
    }


def customer_success_json(cs: CustomerSuccess | None) -> dict[str, Any] | None:
    """The customer-success figures as plain data (None when the report has none)."""
    if cs is None:
        return None
    sla = cs.kickoff_sla
    return {
        "stages": asdict(cs.stages),
        "won_to_kickoff": asdict(cs.won_to_kickoff),
        "kickoff_sla": asdict(sla) | {"compliance_rate": sla.compliance_rate} if sla else None,
        "churn_by_cohort": [asdict(c) | {"rate": c.rate} for c in cs.churn_by_cohort],
        "customers": cs.customers,
        "churn_rate": cs.churn_rate,
        "expanded": cs.expanded,
        "expansion_rate": cs.expansion_rate,
        "nps": asdict(cs.nps) | {"score": cs.nps.score} if cs.nps else None,
    }


def report_to_json(report: FunnelReport) -> dict[str, Any]:
    """A JSON-serialisable dict with stable top-level keys; rates are fractions (0.2 = 20%)."""
    data: dict[str, Any] = {
        "period": {"since": report.since, "until": report.until},
        "generated_at": report.generated_at,
        "success_path": list(report.success_path),
        "detours": list(report.detours),
        "stages": [asdict(s) for s in report.stages],
        "conversion": [asdict(c) | {"rate": c.rate} for c in report.conversion],
        "velocity": [asdict(v) for v in report.velocity],
        "by_campaign": [
            asdict(r) | {"mql_to_sql": r.mql_to_sql, "sql_to_won": r.sql_to_won, "mql_to_won": r.mql_to_won}
            for r in report.by_campaign
        ],
        "loss_reasons": _reasons(report.loss_reasons),
        "disqualification_reasons": _reasons(report.disqualification_reasons),
        "score_validation": [asdict(b) | {"win_rate": b.win_rate} for b in report.score_validation],
        "sla": [asdict(s) | {"compliance_rate": s.compliance_rate} for s in report.sla],
        "sla_breakdown": [
            asdict(g)
            | {
                "compliance_rate": g.compliance_rate,
                "name": report.owner_name(g.value) if g.dimension == "owner" else None,
            }
            for g in report.sla_groups
        ],
        "owner_names": dict(report.owner_names),
        "customer_success": customer_success_json(report.customer_success),
        "slowest_step": asdict(slow) if (slow := report.slowest_step()) else None,
        "group_by": report.group_by,
        "groups": [
            {
                "value": g.value,
                "name": report.owner_name(g.value) if report.group_by == "owner" else None,
                "stages": [asdict(s) for s in g.stages],
                "conversion": [asdict(c) | {"rate": c.rate} for c in g.conversion],
                "velocity": [asdict(v) for v in g.velocity],
            }
            for g in report.groups
        ],
    }
    result: dict[str, Any] = _plain(data)
    return result


STAGE_METRICS = ("reached", "current", "inflow", "outflow")
VELOCITY_METRICS = ("count", "median_hours", "p90_hours")
CAMPAIGN_METRICS = (
    "mqls",
    "sqls",
    "wins",
    "won_amount",
    "share_of_wins",
    "mql_to_sql",
    "sql_to_won",
    "mql_to_won",
)
BAND_METRICS = ("mqls", "wins", "lost", "win_rate")
SLA_METRICS = ("started", "met", "breached", "cancelled", "running", "open_breaches", "compliance_rate")
SLA_GROUP_METRICS = ("met", "breached", "compliance_rate")
Row = tuple[str, str, str, str, Any]


def _pairs(obj: Any, metrics: tuple[str, ...]) -> list[tuple[str, Any]]:
    return [(m, getattr(obj, m)) for m in metrics]


def _csv_rows(report: FunnelReport) -> list[Row]:
    rows: list[Row] = [
        ("period", "", "", "since", report.since.isoformat()),
        ("period", "", "", "until", report.until.isoformat()),
    ]
    for s in report.stages:
        rows += [("stages", "", s.stage, m, v) for m, v in _pairs(s, STAGE_METRICS)]
    for c in report.conversion:
        item = f"{c.from_stage}->{c.to_stage}" + (f" within {c.within_days:g}d" if c.within_days else "")
        rows += [("conversion", "", item, m, v) for m, v in _pairs(c, ("cohort", "converted", "rate"))]
    for vel in report.velocity:
        item = f"{vel.from_stage}->{vel.to_stage}"
        rows += [("velocity", "", item, m, v) for m, v in _pairs(vel, VELOCITY_METRICS)]
    for r in report.by_campaign:
        rows += [("by_campaign", r.campaign, "", m, v) for m, v in _pairs(r, CAMPAIGN_METRICS)]
    reasons = (
        ("loss_reasons", report.loss_reasons),
        ("disqualification_reasons", report.disqualification_reasons),
    )
    for section, breakdown in reasons:
        rows += [(section, "", rc.reason, "count", rc.count) for rc in breakdown.overall]
        for campaign, counts in breakdown.by_campaign.items():
            rows += [(section, campaign, rc.reason, "count", rc.count) for rc in counts]
    for b in report.score_validation:
        rows += [("score_validation", "", b.label, m, v) for m, v in _pairs(b, BAND_METRICS)]
    for sla in report.sla:
        rows += [("sla", "", sla.sla_id, m, v) for m, v in _pairs(sla, SLA_METRICS)]
    for sg in report.sla_groups:
        value = report.owner_name(sg.value) if sg.dimension == "owner" else sg.value
        rows += [(f"sla_by_{sg.dimension}", value, sg.sla_id, m, v) for m, v in _pairs(sg, SLA_GROUP_METRICS)]
    rows += _cs_rows(report.customer_success)
    slow = report.slowest_step()
    if slow is not None:
        rows.append(
            ("slowest_step", "", f"{slow.from_stage}->{slow.to_stage}", "median_hours", slow.median_hours)
        )
    section = f"group:{report.group_by}"
    for g in report.groups:
        value = report.owner_name(g.value) if report.group_by == "owner" else g.value
        for s in g.stages:
            rows += [(section, value, s.stage, m, v) for m, v in _pairs(s, ("reached", "current"))]
        rows += [(section, value, f"{c.from_stage}->{c.to_stage}", "rate", c.rate) for c in g.conversion]
    return rows


def _cs_rows(cs: CustomerSuccess | None) -> list[Row]:
    if cs is None:
        return []
    section = "customer_success"
    k = cs.won_to_kickoff
    rows: list[Row] = [
        (section, "", f"{k.from_stage}->{k.to_stage}", m, v) for m, v in _pairs(k, VELOCITY_METRICS)
    ]
    if cs.kickoff_sla is not None:
        rows.append(
            (section, "", f"sla:{cs.kickoff_sla.sla_id}", "compliance_rate", cs.kickoff_sla.compliance_rate)
        )
    rows += [(section, "churn_by_cohort", c.cohort, m, v) for c in cs.churn_by_cohort
             for m, v in _pairs(c, ("customers", "churned", "rate"))]  # fmt: skip
    rows += [
        (section, "", cs.stages.customer, "customers", cs.customers),
        (section, "", cs.stages.churned, "churn_rate", cs.churn_rate),
        (section, "", cs.stages.expansion, "expanded", cs.expanded),
        (section, "", cs.stages.expansion, "expansion_rate", cs.expansion_rate),
    ]
    if cs.nps is not None:
        rows += [
            (section, "", "nps", m, v)
            for m, v in _pairs(cs.nps, ("responses", "promoters", "detractors", "score"))
        ]
    return rows


def report_to_csv(report: FunnelReport) -> str:
    """One tidy row per figure: section, group, item, metric, value (rates as fractions; blank if none)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for section, group, item, metric, value in _csv_rows(report):
        writer.writerow((section, group, item, metric, "" if value is None else _plain(value)))
    return out.getvalue()
