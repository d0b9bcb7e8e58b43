"""``closedloop funnel report|plan``."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from sync.cli.app import funnel_app
from sync.config import load_settings
from sync.timeutil import as_utc


def _positive(value: float | None) -> float | None:
    """Typer callback: a finite number above zero (``inf`` and ``nan`` parse as floats too)."""
    if value is not None and not (0 < value < float("inf")):
        raise typer.BadParameter("must be a number greater than zero")
    return value


def _fraction(value: float | None) -> float | None:
    """Typer callback: a rate above 0 and at most 1."""
    if value is not None and not (0 < value <= 1):
        raise typer.BadParameter("must be a rate above 0 and at most 1, e.g. 0.02")
    return value


def _report(since: datetime | None, until: datetime | None, by: str | None):  # type: ignore[no-untyped-def]
    from sync.funnel.report.i18n import Locale
    from sync.mapping import load_mapping
    from sync.reporting import funnel_report
    from sync.store.db import Store

    settings = load_settings()
    store = Store(settings.database_url)
    mapping = load_mapping(settings.mappings)
    result = funnel_report(
        store,
        mapping,
        since=as_utc(since) if since else None,
        until=as_utc(until) if until else None,
        by=by,
    )
    return result, Locale.of(settings.language, mapping)


@funnel_app.command("report")
def report(
    since: datetime | None = typer.Option(None, help="Start of the period (default: first transition)"),
    until: datetime | None = typer.Option(None, help="End of the period (default: now)"),
    by: str | None = typer.Option(None, "--by", help="Group by campaign, source, owner or an attribute"),
    fmt: str = typer.Option("table", "--format", help="table, json, csv or html"),
    output: Path | None = typer.Option(None, "--output", help="Write to this file instead of stdout"),
) -> None:
    """Conversion, velocity, per-campaign contribution, loss reasons, score validation and SLAs."""
    from sync.funnel.gauges import update_funnel_gauges
    from sync.funnel.report.html import render_html
    from sync.funnel.report.json_csv import report_to_csv, report_to_json
    from sync.funnel.report.table import render_table

    if fmt not in ("table", "json", "csv", "html"):
        raise typer.BadParameter("must be table, json, csv or html", param_hint="--format")
    result, loc = _report(since, until, by)
    update_funnel_gauges(result)
    if fmt == "table":
        console = Console(file=output.open("w", encoding="utf-8") if output else None, width=120)
        render_table(result, console, loc)
        return
    text = {
        "json": lambda: json.dumps(report_to_json(result), indent=2, ensure_ascii=False),
        "csv": lambda: report_to_csv(result),
        "html": lambda: render_html(result, loc),
    }[fmt]()
    if output is None:
        typer.echo(text)
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {output}", err=True)


@funnel_app.command("plan")
def plan(
    revenue: float = typer.Option(..., help="Revenue target for the period", callback=_positive),
    deal_size: float = typer.Option(..., "--deal-size", help="Average won deal size", callback=_positive),
    visit_to_lead: float | None = typer.Option(
        None, help="Visit → lead rate, to plan site visits too", callback=_fraction
    ),
    measured: bool = typer.Option(True, "--measured/--benchmarks", help="Use rates measured in the store"),
) -> None:
    """Work the KPI tree backwards: wins → opportunities → SQLs → MQLs → leads (→ visits)."""
    from sync.funnel.plan import plan_backwards

    rates = _report(None, None, None)[0] if measured else None
    result = plan_backwards(revenue, deal_size, rates, visit_to_lead=visit_to_lead)
    table = Table(title=f"To reach {revenue:,.0f} at {deal_size:,.0f} per deal")
    for col in ("stage", "needed", "rate to next", "rate source"):
        table.add_column(col)
    for step in result.steps:
        rate = "" if step.rate_to_next is None else f"{float(step.rate_to_next):.0%}"
        table.add_row(step.stage, f"{step.count:,}", rate, step.rate_source or "")
    Console().print(table)
