"""Terminal report (Rich tables)."""

from __future__ import annotations

from datetime import timedelta

from rich.console import Console
from rich.table import Table

from sync.funnel.figures import FunnelReport, ReasonBreakdown
from sync.funnel.report.fmt import day, duration, money, pct, stage_name


def _title(report: FunnelReport) -> str:
    last = report.until - timedelta(seconds=1)
    return f"Funnel {day(report.since)} – {day(last)}"


def _stages(report: FunnelReport) -> Table:
    table = Table(title="Stages", title_justify="left")
    table.add_column("Stage")
    for name in ("Reached in period", "In stage now", "Moves in", "Moves out"):
        table.add_column(name, justify="right")
    for s in report.stages:
        table.add_row(
            stage_name(s.stage), f"{s.reached:,}", f"{s.current:,}", f"{s.inflow:,}", f"{s.outflow:,}"
        )
    return table


def _conversion(report: FunnelReport) -> Table:
    table = Table(
        title="Conversion (of those who entered the first stage in the period)", title_justify="left"
    )
    table.add_column("From → to")
    for name in ("Entered", "Went on", "Rate", "Median time", "90% within"):
        table.add_column(name, justify="right")
    speed = {(v.from_stage, v.to_stage): v for v in report.velocity}
    for c in report.conversion:
        v = speed.get((c.from_stage, c.to_stage))
        label = f"{stage_name(c.from_stage)} → {stage_name(c.to_stage)}"
        if c.within_days is not None:
            label += f" (within {c.within_days:g} days)"
        median, p90 = (duration(v.median_hours), duration(v.p90_hours)) if v else ("", "")
        table.add_row(label, f"{c.cohort:,}", f"{c.converted:,}", pct(c.rate), median, p90)
    return table


def _campaigns(report: FunnelReport) -> Table:
    table = Table(title="Campaigns (MQLs of the period and what they became)", title_justify="left")
    table.add_column("Campaign")
    for name in ("MQLs", "SQLs", "Wins", "Won amount", "MQL→SQL", "SQL→won", "Share of wins"):
        table.add_column(name, justify="right")
    for r in report.by_campaign:
        table.add_row(
            r.campaign,
            f"{r.mqls:,}",
            f"{r.sqls:,}",
            f"{r.wins:,}",
            money(r.won_amount),
            pct(r.mql_to_sql),
            pct(r.sql_to_won),
            pct(r.share_of_wins),
        )
    return table


def _reasons(title: str, breakdown: ReasonBreakdown) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("Reason")
    table.add_column("Count", justify="right")
    table.add_column("Share", justify="right")
    total = sum(r.count for r in breakdown.overall)
    for r in breakdown.overall:
        table.add_row(r.reason, f"{r.count:,}", pct(r.count / total if total else None))
    return table


def _scores(report: FunnelReport) -> Table:
    table = Table(title="Score at MQL time vs outcome", title_justify="left")
    table.add_column("Score")
    for name in ("MQLs", "Won", "Lost", "Win rate"):
        table.add_column(name, justify="right")
    for b in report.score_validation:
        table.add_row(b.label, f"{b.mqls:,}", f"{b.wins:,}", f"{b.lost:,}", pct(b.win_rate))
    return table


def _slas(report: FunnelReport) -> Table:
    table = Table(title="SLAs (timers started in the period)", title_justify="left")
    table.add_column("SLA")
    table.add_column("Rule")
    for name in ("Met", "Breached", "Cancelled", "Running", "Open breaches", "Compliance"):
        table.add_column(name, justify="right")
    for s in report.sla:
        rule = f"{stage_name(s.from_stage)} → {stage_name(s.to_stage)} within {s.allowance}"
        table.add_row(
            s.sla_id,
            rule,
            str(s.met),
            str(s.breached),
            str(s.cancelled),
            str(s.running),
            str(s.open_breaches),
            pct(s.compliance_rate),
        )
    return table


def render_table(report: FunnelReport, console: Console) -> None:
    """Print the report as aligned Rich tables."""
    console.rule(_title(report))
    console.print(_stages(report))
    console.print(_conversion(report))
    if report.by_campaign:
        console.print(_campaigns(report))
    if report.loss_reasons.overall:
        console.print(_reasons("Why deals were lost", report.loss_reasons))
    if report.disqualification_reasons.overall:
        console.print(_reasons("Why leads were disqualified", report.disqualification_reasons))
    if report.score_validation:
        console.print(_scores(report))
    if report.sla:
        console.print(_slas(report))
