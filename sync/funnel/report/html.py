"""A single self-contained HTML report (inline CSS and SVG; opens offline, no scripts).

Every word comes from the report's :class:`Locale` (English by default), so the same page reads in
Japanese with ``CLOSEDLOOP_LANGUAGE=ja``; the live dashboard reuses the sections.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import timedelta
from html import escape
from importlib import resources
from string import Template

from sync.funnel.analytics import NO_REASON
from sync.funnel.figures import FunnelReport, ReasonBreakdown
from sync.funnel.report.i18n import ENGLISH, Locale
from sync.funnel.report.svg import PALETTE, Bar, bar_chart, funnel_chart, stacked_chart
from sync.funnel.report.table import cs_rows
from sync.funnel.sla_stats import ALL_SLAS, DIMENSIONS, SlaGroup

GREEN, RED, GREY, LIGHT = "#16a34a", "#dc2626", "#9ca3af", "#bfdbfe"


def template() -> Template:
    """The page template shared by the report file and the dashboard."""
    text = resources.files("sync.funnel.report").joinpath("templates/report.html").read_text("utf-8")
    return Template(text)


def _section(section_id: str, title: str, explain: str, body: str) -> str:
    return (
        f'<section id="{section_id}"><h2>{escape(title)}</h2>'
        f'<p class="explain">{escape(explain)}</p>{body}</section>'
    )


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], text_columns: int = 1) -> str:
    """A table whose first ``text_columns`` columns are left-aligned text, the rest numbers."""

    def cell(tag: str, i: int, value: str) -> str:
        cls = ' class="text"' if i < text_columns else ""
        return f"<{tag}{cls}>{escape(value)}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(cell("td", i, c) for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _key(*items: tuple[str, str]) -> str:
    # the swatch is an SVG rect (a presentation attribute), so a strict CSP needs no inline styles
    swatch = (
        '<svg width="11" height="11" aria-hidden="true"><rect width="11" height="11" rx="2" fill="{}"/></svg>'
    )
    spans = "".join(f"<span>{swatch.format(c)}{escape(n)}</span>" for n, c in items)
    return f'<p class="key">{spans}</p>'


def _of(loc: Locale, part: int, whole: int) -> str:
    return loc.t("of", pct=loc.pct(part / whole if whole else None), part=loc.num(part), whole=loc.num(whole))


def summary_lines(report: FunnelReport, loc: Locale = ENGLISH) -> list[str]:
    """Plain-language sentences for the top of the report."""
    mqls = sum(r.mqls for r in report.by_campaign)
    sqls = sum(r.sqls for r in report.by_campaign)
    wins = sum(r.wins for r in report.by_campaign)
    amount = sum((r.won_amount for r in report.by_campaign), start=0)
    last = report.until - timedelta(seconds=1)
    period = loc.t("period", since=loc.day(report.since), until=loc.day(last))
    if not mqls:
        return [loc.t("no_mqls", period=period)]
    worth = loc.t("worth", amount=loc.money(amount)) if wins else "."
    lines = [
        loc.t(
            "summary_mqls",
            mqls=loc.num(mqls),
            period=period,
            sqls=loc.num(sqls),
            sql_pct=loc.pct(sqls / mqls),
            wins=loc.num(wins),
            won_pct=loc.pct(wins / mqls),
            worth=worth,
        )
    ]
    if wins:
        best = max(report.by_campaign, key=lambda r: (r.wins, r.mqls))
        name = loc.campaign(best.campaign)
        lines.append(loc.t("summary_best", name=name, best=loc.num(best.wins), wins=loc.num(wins)))
    speed = next((v for v in report.velocity if v.count and v.from_stage == "mql"), None)
    if speed:
        lines.append(
            loc.t(
                "summary_speed",
                stage=loc.stage(speed.to_stage),
                median=loc.duration(speed.median_hours),
                p90=loc.duration(speed.p90_hours),
            )
        )
    lines += _loss_lines(report, loc)
    for s in report.sla:
        if s.compliance_rate is not None:
            rule = loc.rule(s.from_stage, s.to_stage, s.allowance)
            text = loc.t("summary_sla", name=loc.sla(s.sla_id), rule=rule, pct=loc.pct(s.compliance_rate))
            text += loc.t("summary_sla_open", n=loc.num(s.open_breaches)) if s.open_breaches else "."
            lines.append(text)
    slow = report.slowest_step()
    if slow is not None:
        lines.append(
            loc.t(
                "summary_slowest",
                src=loc.stage(slow.from_stage),
                dst=loc.stage(slow.to_stage),
                median=loc.duration(slow.median_hours),
            )
        )
    worst = worst_team(report)
    if worst is not None:
        pct = loc.pct(worst.compliance_rate)
        lines.append(
            loc.t("summary_sla_team", team=loc.team(worst.value), n=loc.num(worst.breached), pct=pct)
        )
    lines += _cs_lines(report, loc)
    bands = [b for b in report.score_validation if b.mqls]
    if len(bands) >= 2:
        low, high = bands[0], bands[-1]
        lines.append(
            loc.t(
                "summary_scores",
                high=high.label,
                high_pct=loc.pct(high.win_rate),
                low=low.label,
                low_pct=loc.pct(low.win_rate),
            )
        )
    return lines


def _loss_lines(report: FunnelReport, loc: Locale) -> list[str]:
    lost = report.loss_reasons.overall
    total = sum(r.count for r in lost)
    known = [r for r in lost if r.reason != NO_REASON]
    missing = total - sum(r.count for r in known)
    lines = []
    if known:
        top = known[0]
        lines.append(loc.t("summary_loss", reason=top.reason, count=loc.num(top.count), total=loc.num(total)))
    if missing:
        lines.append(loc.t("summary_loss_missing", missing=loc.num(missing), total=loc.num(total)))
    return lines


def _funnel(report: FunnelReport, loc: Locale) -> str:
    steps = [(loc.stage(s.stage), s.reached) for s in report.stages if s.stage in report.success_path]
    notes = []
    for i, (label, count) in enumerate(steps):
        prev = steps[i - 1][1] if i else 0
        note = loc.t("of_stage_above", pct=loc.pct(count / prev)) if i and prev else loc.t("reached")
        notes.append((label, count, note))
    chart = funnel_chart("chart-funnel", loc.t("funnel_chart"), notes)
    side = [s for s in report.stages if s.stage not in report.success_path]
    detours = ", ".join(f"{loc.stage(s.stage)}: {loc.num(s.reached)}" for s in side)
    table = _table(
        [loc.t("stage"), loc.t("reached_in_period"), loc.t("in_stage_now")],
        [[loc.stage(s.stage), loc.num(s.reached), loc.num(s.current)] for s in report.stages],
    )
    explain = loc.t("funnel_explain") + (loc.t("funnel_detours", detours=detours) if detours else "")
    return _section("funnel", loc.t("funnel"), explain, chart + table)


def _conversion(report: FunnelReport, loc: Locale) -> str:
    speed = {(v.from_stage, v.to_stage): v for v in report.velocity}
    rows = []
    for c in report.conversion:
        v = speed.get((c.from_stage, c.to_stage))
        label = f"{loc.stage(c.from_stage)} → {loc.stage(c.to_stage)}"
        if c.within_days is not None:
            label += loc.t("within_days", days=f"{c.within_days:g}")
        median, p90 = (v.median_hours, v.p90_hours) if v else (None, None)
        rows.append(
            [
                label,
                loc.num(c.cohort),
                loc.num(c.converted),
                loc.pct(c.rate),
                loc.duration(median),
                loc.duration(p90),
            ]
        )
    headers = [loc.t(k) for k in ("step", "entered", "went_on", "rate", "median", "p90")]
    return _section("conversion", loc.t("conversion"), loc.t("conversion_explain"), _table(headers, rows))


def _campaigns(report: FunnelReport, loc: Locale) -> str:
    bars: list[Bar] = []
    for r in report.by_campaign:
        to_sql = loc.t("to_sql", of=_of(loc, r.sqls, r.mqls))
        bars.append(Bar(loc.campaign(r.campaign), r.mql_to_sql or 0, to_sql, PALETTE[0]))
        bars.append(Bar("", r.mql_to_won or 0, loc.t("won_of", of=_of(loc, r.wins, r.mqls)), GREEN))
    title = loc.t("campaigns_chart")
    chart = bar_chart("chart-campaigns", title, bars, scale_max=1.0, empty=loc.t("no_mqls_chart"))
    rows = [
        [
            loc.campaign(r.campaign),
            loc.num(r.mqls),
            loc.num(r.sqls),
            loc.num(r.wins),
            loc.money(r.won_amount),
            loc.pct(r.share_of_wins),
        ]
        for r in report.by_campaign
    ]
    headers = [loc.t(k) for k in ("campaign", "mqls", "sqls", "wins", "won_amount", "share_of_wins")]
    key = _key((loc.t("became_sql"), PALETTE[0]), (loc.t("became_won"), GREEN))
    table = _table(headers, rows)
    return _section("campaigns", loc.t("campaigns"), loc.t("campaigns_explain"), key + chart + table)


def _reason_chart(loc: Locale, chart_id: str, title: str, breakdown: ReasonBreakdown, colour: str) -> str:
    total = sum(r.count for r in breakdown.overall)
    bars = [Bar(r.reason, r.count, _of(loc, r.count, total), colour) for r in breakdown.overall]
    return bar_chart(chart_id, title, bars, empty=loc.t("none_recorded"))


def _reasons(report: FunnelReport, loc: Locale) -> str:
    lost = _reason_chart(loc, "chart-loss-reasons", loc.t("lost_chart"), report.loss_reasons, RED)
    dq = _reason_chart(
        loc, "chart-disqualification-reasons", loc.t("dq_chart"), report.disqualification_reasons, GREY
    )
    per = report.loss_reasons.by_campaign
    rows = [[loc.campaign(c), ", ".join(f"{r.reason} ({r.count})" for r in rs)] for c, rs in per.items()]
    headers = [loc.t("campaign"), loc.t("loss_reasons_count")]
    table = _table(headers, rows, text_columns=2) if rows else ""
    body = f"<h3>{escape(loc.t('lost_deals'))}</h3>" + lost + table
    body += f"<h3>{escape(loc.t('dq_leads'))}</h3>" + dq
    return _section("reasons", loc.t("reasons"), loc.t("reasons_explain"), body)


def _scores(report: FunnelReport, loc: Locale) -> str:
    bars = [
        Bar(loc.t("score_bar", label=b.label), b.win_rate or 0, loc.t("won_of", of=_of(loc, b.wins, b.mqls)),
            PALETTE[3])
        for b in report.score_validation
    ]  # fmt: skip
    top = max((b.value for b in bars), default=0)
    scale = min(math.ceil(top * 10 + 1e-9) / 10, 1.0)  # the next 10% above the best band
    chart = bar_chart("chart-score", loc.t("score_chart"), bars, scale_max=scale, empty=loc.t("no_scores"))
    return _section("scores", loc.t("scores"), loc.t("scores_explain"), chart)


def _slas(report: FunnelReport, loc: Locale) -> str:
    names = [("met_on_time", GREEN), ("missed", RED), ("cancelled", GREY), ("running", LIGHT)]
    rows = []
    for s in report.sla:
        counts = (s.met, s.breached, s.cancelled, s.running)
        pieces = [(loc.t(name), n, colour) for (name, colour), n in zip(names, counts, strict=True)]
        rows.append((loc.sla(s.sla_id), pieces, loc.t("kept", pct=loc.pct(s.compliance_rate))))
    chart = stacked_chart("chart-sla", loc.t("sla_chart"), rows, empty=loc.t("no_slas"))
    key = _key(*((loc.t(name), colour) for name, colour in names))
    table = _table(
        [loc.t(k) for k in ("sla", "rule_col", "met_col", "missed_col", "missed_waiting", "kept_col")],
        [
            [
                loc.sla(s.sla_id),
                loc.rule(s.from_stage, s.to_stage, s.allowance),
                loc.num(s.met),
                loc.num(s.breached),
                loc.num(s.open_breaches),
                loc.pct(s.compliance_rate),
            ]
            for s in report.sla
        ],
        text_columns=2,
    )
    return _section("sla", loc.t("slas"), loc.t("sla_explain"), key + chart + table)


def _sla_groups(report: FunnelReport, loc: Locale) -> str:
    """Breaches by owner, team, campaign and week (all SLAs together), one table each."""
    tables = []
    for dimension in DIMENSIONS:
        rows = [g for g in report.sla_groups if g.dimension == dimension and g.sla_id == ALL_SLAS]
        if not rows:
            continue
        name = loc.t(f"dim_{dimension}")
        heads = [name, loc.t("met_col"), loc.t("missed_col"), loc.t("kept_col")]
        body = [
            [
                _dimension_value(report, dimension, g.value, loc),
                loc.num(g.met),
                loc.num(g.breached),
                loc.pct(g.compliance_rate),
            ]
            for g in rows
        ]
        tables.append(f"<h3>{escape(loc.t('sla_by', dimension=name))}</h3>" + _table(heads, body))
    return _section(
        "sla-breakdown",
        loc.t("sla_by", dimension=loc.t("dim_team")),
        loc.t("sla_by_explain"),
        "".join(tables),
    )


def _dimension_value(report: FunnelReport, dimension: str, value: str, loc: Locale) -> str:
    if dimension == "team":
        return loc.team(value)
    return report.owner_name(value) if dimension == "owner" else value


def _customer_success(report: FunnelReport, loc: Locale) -> str:
    """Won → kickoff, kickoff SLA, churn by cohort, expansion and NPS."""
    rows = cs_rows(report, loc)
    if not rows:
        return ""
    body = _table([loc.t("cs_figure"), loc.t("cs_value")], [list(r) for r in rows], text_columns=2)
    cs = report.customer_success
    if cs is not None and cs.churn_by_cohort:
        heads = [loc.t(k) for k in ("cs_cohort", "cs_customers", "cs_churned", "cs_churn_rate")]
        cohorts = [
            [c.cohort, loc.num(c.customers), loc.num(c.churned), loc.pct(c.rate)] for c in cs.churn_by_cohort
        ]
        body += f"<h3>{escape(loc.t('cs_by_cohort'))}</h3>" + _table(heads, cohorts)
    return _section("customer-success", loc.t("cs"), loc.t("cs_explain"), body)


def _cs_lines(report: FunnelReport, loc: Locale) -> list[str]:
    cs = report.customer_success
    if cs is None or cs.empty:
        return []
    lines = []
    k = cs.won_to_kickoff
    if k.count:
        lines.append(
            loc.t("summary_kickoff", median=loc.duration(k.median_hours), p90=loc.duration(k.p90_hours))
        )
    if cs.customers:
        lines.append(loc.t("summary_cs", n=loc.num(cs.customers), churn=loc.pct(cs.churn_rate),
                           expansion=loc.pct(cs.expansion_rate)))  # fmt: skip
    if cs.nps is not None and cs.nps.responses:
        lines.append(loc.t("summary_nps", score=loc.nps(cs.nps.score), n=loc.num(cs.nps.responses)))
    return lines


def worst_team(report: FunnelReport) -> SlaGroup | None:
    """The team whose SLAs were missed most often (None when nothing was missed)."""
    teams = [g for g in report.sla_groups if g.dimension == "team" and g.sla_id == ALL_SLAS and g.breached]
    return max(teams, key=lambda g: (g.breached, -(g.compliance_rate or 0)), default=None)


def sections(report: FunnelReport, loc: Locale = ENGLISH) -> str:
    """The report's sections (funnel, conversion, campaigns, reasons, scores, SLAs) as HTML."""
    parts = [
        _funnel(report, loc),
        _conversion(report, loc),
        _campaigns(report, loc),
        _reasons(report, loc),
        _scores(report, loc),
    ]
    if report.sla:
        parts.append(_slas(report, loc))
    if report.sla_groups:
        parts.append(_sla_groups(report, loc))
    cs = _customer_success(report, loc)
    if cs:
        parts.append(cs)
    return "\n".join(parts)


def render_page(report: FunnelReport, loc: Locale, title: str, head: str = "", top: str = "") -> str:
    """The report page with ``head`` elements and ``top`` content (the dashboard's filters) added."""
    legend = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in loc.legend())
    return template().substitute(
        lang=loc.language,
        head=head,
        top=top,
        title=escape(title),
        subtitle=escape(loc.t("subtitle")),
        in_short=escape(loc.t("in_short")),
        legend_title=escape(loc.t("legend")),
        summary="".join(f"<li>{escape(line)}</li>" for line in summary_lines(report, loc)),
        sections=sections(report, loc),
        legend=legend,
        footer=escape(loc.t("footer", at=loc.moment(report.generated_at))),
    )


def report_title(report: FunnelReport, loc: Locale) -> str:
    """``Marketing and sales funnel, 1 Oct 2026 – 31 Oct 2026`` in the report's language."""
    last = report.until - timedelta(seconds=1)
    return loc.t("title", since=loc.day(report.since), until=loc.day(last))


def render_html(report: FunnelReport, loc: Locale = ENGLISH) -> str:
    """The whole report as one self-contained HTML document."""
    return render_page(report, loc, report_title(report, loc))
