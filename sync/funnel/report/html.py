"""A single self-contained HTML report (inline CSS and SVG; opens offline, no scripts)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import timedelta
from html import escape
from importlib import resources
from string import Template

from sync.funnel.analytics import NO_REASON
from sync.funnel.figures import FunnelReport, ReasonBreakdown
from sync.funnel.report.fmt import LEGEND, campaign_name, day, duration, money, pct, sla_name, stage_name
from sync.funnel.report.svg import PALETTE, Bar, bar_chart, funnel_chart, stacked_chart

GREEN, RED, GREY, LIGHT = "#16a34a", "#dc2626", "#9ca3af", "#bfdbfe"


def _template() -> Template:
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
    return '<p class="key">' + "".join(f'<span style="--c:{c}">{escape(n)}</span>' for n, c in items) + "</p>"


def _of(part: int, whole: int) -> str:
    return f"{pct(part / whole if whole else None)} ({part:,} of {whole:,})"


def _rule(from_stage: str, to_stage: str, allowance: str) -> str:
    return f"{stage_name(from_stage)} → {stage_name(to_stage)} within {allowance}"


def summary_lines(report: FunnelReport) -> list[str]:
    """Plain-language sentences for the top of the report."""
    mqls = sum(r.mqls for r in report.by_campaign)
    sqls = sum(r.sqls for r in report.by_campaign)
    wins = sum(r.wins for r in report.by_campaign)
    amount = sum((r.won_amount for r in report.by_campaign), start=0)
    period = f"between {day(report.since)} and {day(report.until - timedelta(seconds=1))}"
    if not mqls:
        return [f"No one became an MQL {period}."]
    worth = f", worth {money(amount)} in total." if wins else "."
    lines = [
        f"Of the {mqls:,} people who became MQLs {period}, {sqls:,} have since become SQLs "
        f"({pct(sqls / mqls)}) and {wins:,} won deals ({pct(wins / mqls)}){worth}"
    ]
    if wins:
        best = max(report.by_campaign, key=lambda r: (r.wins, r.mqls))
        name = campaign_name(best.campaign)
        lines.append(f"The campaign with the most wins was “{name}”: {best.wins:,} of the {wins:,} wins.")
    speed = next((v for v in report.velocity if v.count and v.from_stage == "mql"), None)
    if speed:
        lines.append(
            f"Half of the MQLs that reached {stage_name(speed.to_stage)} did so within "
            f"{duration(speed.median_hours)} (9 in 10 within {duration(speed.p90_hours)})."
        )
    lines += _loss_lines(report)
    for s in report.sla:
        if s.compliance_rate is not None:
            text = f"SLA “{sla_name(s.sla_id)}” ({_rule(s.from_stage, s.to_stage, s.allowance)})"
            text += f" was kept {pct(s.compliance_rate)} of the time"
            text += f"; {s.open_breaches:,} missed and still waiting." if s.open_breaches else "."
            lines.append(text)
    bands = [b for b in report.score_validation if b.mqls]
    if len(bands) >= 2:
        low, high = bands[0], bands[-1]
        lines.append(
            f"MQLs scoring {high.label} were won {pct(high.win_rate)} of the time, "
            f"against {pct(low.win_rate)} for those scoring {low.label}."
        )
    return lines


def _loss_lines(report: FunnelReport) -> list[str]:
    lost = report.loss_reasons.overall
    total = sum(r.count for r in lost)
    known = [r for r in lost if r.reason != NO_REASON]
    missing = total - sum(r.count for r in known)
    lines = []
    if known:
        top = known[0]
        lines.append(
            f"The most common recorded reason for lost deals: “{top.reason}” ({top.count:,} of {total:,})."
        )
    if missing:
        lines.append(f"{missing:,} of {total:,} lost deals have no loss reason recorded in Salesforce.")
    return lines


def _funnel(report: FunnelReport) -> str:
    steps = [(stage_name(s.stage), s.reached) for s in report.stages if s.stage in report.success_path]
    notes = []
    for i, (label, count) in enumerate(steps):
        prev = steps[i - 1][1] if i else 0
        notes.append((label, count, f"{pct(count / prev)} of the stage above" if i and prev else "reached"))
    chart = funnel_chart("chart-funnel", "People reaching each funnel stage in the period", notes)
    side = [s for s in report.stages if s.stage not in report.success_path]
    detours = ", ".join(f"{stage_name(s.stage)}: {s.reached:,}" for s in side)
    table = _table(
        ["Stage", "Reached in period", "In this stage now"],
        [[stage_name(s.stage), f"{s.reached:,}", f"{s.current:,}"] for s in report.stages],
    )
    explain = "How many different people entered each stage during the period. " + (
        f"Left the main path — {detours}." if detours else ""
    )
    return _section("funnel", "Funnel", explain, chart + table)


def _conversion(report: FunnelReport) -> str:
    speed = {(v.from_stage, v.to_stage): v for v in report.velocity}
    rows = []
    for c in report.conversion:
        v = speed.get((c.from_stage, c.to_stage))
        label = f"{stage_name(c.from_stage)} → {stage_name(c.to_stage)}"
        if c.within_days is not None:
            label += f" within {c.within_days:g} days"
        median, p90 = (v.median_hours, v.p90_hours) if v else (None, None)
        rows.append(
            [label, f"{c.cohort:,}", f"{c.converted:,}", pct(c.rate), duration(median), duration(p90)]
        )
    explain = (
        "Of the people who entered the first stage during the period, how many went on to the second "
        "(skipping it counts as reaching it), and how long that took."
    )
    headers = ["Step", "Entered", "Went on", "Rate", "Typical time (median)", "9 in 10 within"]
    return _section("conversion", "Conversion and speed", explain, _table(headers, rows))


def _campaigns(report: FunnelReport) -> str:
    bars: list[Bar] = []
    for r in report.by_campaign:
        bars.append(
            Bar(campaign_name(r.campaign), r.mql_to_sql or 0, f"to SQL {_of(r.sqls, r.mqls)}", PALETTE[0])
        )
        bars.append(Bar("", r.mql_to_won or 0, f"won {_of(r.wins, r.mqls)}", GREEN))
    title = "Share of each campaign's MQLs that became SQLs and won deals"
    chart = bar_chart("chart-campaigns", title, bars, scale_max=1.0, empty="No MQLs in this period.")
    rows = [
        [
            campaign_name(r.campaign),
            f"{r.mqls:,}",
            f"{r.sqls:,}",
            f"{r.wins:,}",
            money(r.won_amount),
            pct(r.share_of_wins),
        ]
        for r in report.by_campaign
    ]
    table = _table(["Campaign", "MQLs", "SQLs", "Wins", "Won amount", "Share of all wins"], rows)
    key = _key(("became SQL", PALETTE[0]), ("became a won deal", GREEN))
    explain = "The MQLs of the period, by the campaign that brought them in, and what they became."
    return _section("campaigns", "Conversion by campaign", explain, key + chart + table)


def _reason_chart(chart_id: str, title: str, breakdown: ReasonBreakdown, colour: str) -> str:
    total = sum(r.count for r in breakdown.overall)
    bars = [Bar(r.reason, r.count, _of(r.count, total), colour) for r in breakdown.overall]
    return bar_chart(chart_id, title, bars, empty="None recorded in this period.")


def _reasons(report: FunnelReport) -> str:
    lost = _reason_chart("chart-loss-reasons", "Why deals were lost", report.loss_reasons, RED)
    dq = _reason_chart(
        "chart-disqualification-reasons", "Why leads were disqualified", report.disqualification_reasons, GREY
    )
    per = report.loss_reasons.by_campaign
    rows = [[campaign_name(c), ", ".join(f"{r.reason} ({r.count})" for r in rs)] for c, rs in per.items()]
    table = _table(["Campaign", "Loss reasons (count)"], rows, text_columns=2) if rows else ""
    explain = "Reasons recorded by sales when a deal was lost or a lead disqualified during the period."
    body = "<h3>Lost deals</h3>" + lost + table + "<h3>Disqualified leads</h3>" + dq
    return _section("reasons", "Why deals were lost and leads disqualified", explain, body)


def _scores(report: FunnelReport) -> str:
    bars = [
        Bar(f"score {b.label}", b.win_rate or 0, f"won {_of(b.wins, b.mqls)}", PALETTE[3])
        for b in report.score_validation
    ]
    top = max((b.value for b in bars), default=0)
    scale = min(math.ceil(top * 10 + 1e-9) / 10, 1.0)  # the next 10% above the best band
    title = "Win rate by lead score at the time of MQL"
    chart = bar_chart("chart-score", title, bars, scale_max=scale, empty="No scored MQLs in this period.")
    explain = (
        "Does a higher marketing score mean a better chance to win? Each bar is the share of the "
        "period's MQLs in that score range that later became won deals."
    )
    return _section("scores", "Is the lead score right?", explain, chart)


def _slas(report: FunnelReport) -> str:
    rows = []
    for s in report.sla:
        pieces = [
            ("met on time", s.met, GREEN),
            ("missed", s.breached, RED),
            ("cancelled (left the funnel)", s.cancelled, GREY),
            ("still running", s.running, LIGHT),
        ]
        rows.append((sla_name(s.sla_id), pieces, f"{pct(s.compliance_rate)} kept"))
    title = "SLA compliance: agreed response times between teams"
    chart = stacked_chart("chart-sla", title, rows, empty="No SLAs configured.")
    key = _key(
        ("met on time", GREEN),
        ("missed", RED),
        ("cancelled (left the funnel)", GREY),
        ("still running", LIGHT),
    )
    table = _table(
        ["SLA", "Rule", "Met on time", "Missed", "Missed, still waiting", "Kept"],
        [
            [
                sla_name(s.sla_id),
                _rule(s.from_stage, s.to_stage, s.allowance),
                f"{s.met:,}",
                f"{s.breached:,}",
                f"{s.open_breaches:,}",
                pct(s.compliance_rate),
            ]
            for s in report.sla
        ],
        text_columns=2,
    )
    explain = (
        "Timers started in the period. “Kept” is the share met on time among those finished "
        "(met or missed); people who left the funnel in time are not counted."
    )
    return _section("sla", "Response-time agreements (SLAs)", explain, key + chart + table)


def render_html(report: FunnelReport) -> str:
    """The whole report as one self-contained HTML document."""
    last = report.until - timedelta(seconds=1)
    sections = [_funnel(report), _conversion(report), _campaigns(report), _reasons(report), _scores(report)]
    if report.sla:
        sections.append(_slas(report))
    legend = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in LEGEND.items())
    return _template().substitute(
        title=escape(f"Marketing and sales funnel, {day(report.since)} – {day(last)}"),
        subtitle=escape(
            "From first lead to won deal, measured from HubSpot and Salesforce together. "
            "Terms such as MQL, SAL and SQL are explained at the bottom of the page."
        ),
        summary="".join(f"<li>{escape(line)}</li>" for line in summary_lines(report)),
        sections="\n".join(sections),
        legend=legend,
        footer=escape(f"Generated {report.generated_at:%Y-%m-%d %H:%M} UTC by Closedloop. All times UTC."),
    )
