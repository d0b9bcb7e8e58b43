"""Terminal report (Rich tables), in the report's language."""

from __future__ import annotations

from datetime import timedelta

from rich.console import Console
from rich.table import Table

from sync.funnel.figures import FunnelReport, ReasonBreakdown
from sync.funnel.report.i18n import ENGLISH, Locale
from sync.funnel.sla_stats import ALL_SLAS, DIMENSIONS


def _table(title: str, first: list[str], numbers: list[str]) -> Table:
    table = Table(title=title, title_justify="left")
    for name in first:
        table.add_column(name)
    for name in numbers:
        table.add_column(name, justify="right")
    return table


def _title(report: FunnelReport, loc: Locale) -> str:
    last = report.until - timedelta(seconds=1)
    return loc.t("t_title", since=loc.day(report.since), until=loc.day(last))


def _stages(report: FunnelReport, loc: Locale) -> Table:
    heads = ("reached_in_period", "t_in_stage_now", "t_moves_in", "t_moves_out")
    table = _table(loc.t("t_stages"), [loc.t("stage")], [loc.t(h) for h in heads])
    for s in report.stages:
        counts = (s.reached, s.current, s.inflow, s.outflow)
        table.add_row(loc.stage(s.stage), *(loc.num(n) for n in counts))
    return table


def _conversion(report: FunnelReport, loc: Locale) -> Table:
    heads = ("entered", "went_on", "rate", "t_median", "t_p90")
    table = _table(loc.t("t_conversion"), [loc.t("t_from_to")], [loc.t(h) for h in heads])
    speed = {(v.from_stage, v.to_stage): v for v in report.velocity}
    for c in report.conversion:
        v = speed.get((c.from_stage, c.to_stage))
        label = f"{loc.stage(c.from_stage)} → {loc.stage(c.to_stage)}"
        if c.within_days is not None:
            label += loc.t("t_within", days=f"{c.within_days:g}")
        median, p90 = (loc.duration(v.median_hours), loc.duration(v.p90_hours)) if v else ("", "")
        table.add_row(label, loc.num(c.cohort), loc.num(c.converted), loc.pct(c.rate), median, p90)
    return table


def _campaigns(report: FunnelReport, loc: Locale) -> Table:
    heads = ("mqls", "sqls", "wins", "won_amount", "t_mql_sql", "t_sql_won", "t_share")
    table = _table(loc.t("t_campaigns"), [loc.t("campaign")], [loc.t(h) for h in heads])
    for r in report.by_campaign:
        table.add_row(
            loc.campaign(r.campaign),
            loc.num(r.mqls),
            loc.num(r.sqls),
            loc.num(r.wins),
            loc.money(r.won_amount),
            loc.pct(r.mql_to_sql),
            loc.pct(r.sql_to_won),
            loc.pct(r.share_of_wins),
        )
    return table


def _reasons(title: str, breakdown: ReasonBreakdown, loc: Locale) -> Table:
    table = _table(title, [loc.t("t_reason")], [loc.t("t_count"), loc.t("t_share_col")])
    total = sum(r.count for r in breakdown.overall)
    for r in breakdown.overall:
        table.add_row(r.reason, loc.num(r.count), loc.pct(r.count / total if total else None))
    return table


def _scores(report: FunnelReport, loc: Locale) -> Table:
    heads = ("mqls", "t_won", "t_lost", "t_win_rate")
    table = _table(loc.t("t_scores"), [loc.t("t_score")], [loc.t(h) for h in heads])
    for b in report.score_validation:
        table.add_row(b.label, loc.num(b.mqls), loc.num(b.wins), loc.num(b.lost), loc.pct(b.win_rate))
    return table


def _slas(report: FunnelReport, loc: Locale) -> Table:
    heads = ("t_met", "t_breached", "t_cancelled", "t_running", "t_open", "t_compliance")
    table = _table(loc.t("t_slas"), [loc.t("sla"), loc.t("rule_col")], [loc.t(h) for h in heads])
    for s in report.sla:
        counts = (s.met, s.breached, s.cancelled, s.running, s.open_breaches)
        rule = loc.rule(s.from_stage, s.to_stage, s.allowance)
        table.add_row(s.sla_id, rule, *(loc.num(n) for n in counts), loc.pct(s.compliance_rate))
    return table


def _group_value(report: FunnelReport, dimension: str, value: str, loc: Locale) -> str:
    if dimension == "team":
        return loc.team(value)
    return report.owner_name(value) if dimension == "owner" else value


def _sla_groups(report: FunnelReport, loc: Locale) -> list[Table]:
    """One table per dimension (owner, team, campaign, week), all SLAs together."""
    tables = []
    for dimension in DIMENSIONS:
        rows = [g for g in report.sla_groups if g.dimension == dimension and g.sla_id == ALL_SLAS]
        if not rows:
            continue
        name = loc.t(f"dim_{dimension}")
        heads = [loc.t(h) for h in ("t_met", "t_breached", "t_compliance")]
        table = _table(loc.t("sla_by", dimension=name), [name], heads)
        for g in rows:
            value = _group_value(report, dimension, g.value, loc)
            table.add_row(value, loc.num(g.met), loc.num(g.breached), loc.pct(g.compliance_rate))
        tables.append(table)
    return tables


def cs_rows(report: FunnelReport, loc: Locale) -> list[tuple[str, str]]:
    """The customer-success figures as (label, value) pairs, in the report's language."""
    cs = report.customer_success
    if cs is None or cs.empty:
        return []
    k = cs.won_to_kickoff
    step = f"{loc.stage(k.from_stage)} → {loc.stage(k.to_stage)}"
    rows = [
        (f"{step}: {loc.t('cs_people')}", loc.num(k.count)),
        (f"{step}: {loc.t('median')}", loc.duration(k.median_hours)),
        (f"{step}: {loc.t('p90')}", loc.duration(k.p90_hours)),
    ]
    if cs.kickoff_sla is not None:
        rows.append((loc.t("cs_kickoff_sla"), loc.pct(cs.kickoff_sla.compliance_rate)))
    rows += [
        (loc.t("cs_customers"), loc.num(cs.customers)),
        (loc.t("cs_churn_rate"), loc.pct(cs.churn_rate)),
        (loc.t("cs_expansion_rate"), loc.pct(cs.expansion_rate)),
    ]
    if cs.nps is not None:
        nps = cs.nps
        value = loc.t("cs_nps_value", score=loc.nps(nps.score), n=loc.num(nps.responses),
                      p=loc.num(nps.promoters), d=loc.num(nps.detractors))  # fmt: skip
        rows.append((loc.t("cs_nps"), value))
    return rows


def _customer_success(report: FunnelReport, loc: Locale) -> list[Table]:
    rows = cs_rows(report, loc)
    if not rows:
        return []
    figures = _table(loc.t("cs"), [loc.t("cs_figure")], [loc.t("cs_value")])
    for label, value in rows:
        figures.add_row(label, value)
    tables = [figures]
    cohorts = report.customer_success.churn_by_cohort if report.customer_success else []
    if cohorts:
        heads = [loc.t(h) for h in ("cs_customers", "cs_churned", "cs_churn_rate")]
        table = _table(loc.t("cs_by_cohort"), [loc.t("cs_cohort")], heads)
        for c in cohorts:
            table.add_row(c.cohort, loc.num(c.customers), loc.num(c.churned), loc.pct(c.rate))
        tables.append(table)
    return tables


def render_table(report: FunnelReport, console: Console, loc: Locale = ENGLISH) -> None:
    """Print the report as aligned Rich tables."""
    console.rule(_title(report, loc))
    console.print(_stages(report, loc))
    console.print(_conversion(report, loc))
    if report.by_campaign:
        console.print(_campaigns(report, loc))
    if report.loss_reasons.overall:
        console.print(_reasons(loc.t("lost_chart"), report.loss_reasons, loc))
    if report.disqualification_reasons.overall:
        console.print(_reasons(loc.t("dq_chart"), report.disqualification_reasons, loc))
    if report.score_validation:
        console.print(_scores(report, loc))
    if report.sla:
        console.print(_slas(report, loc))
    for table in _sla_groups(report, loc):
        console.print(table)
    for table in _customer_success(report, loc):
        console.print(table)
