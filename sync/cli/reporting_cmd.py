"""``closedloop reporting grant|stages`` and ``closedloop funnel export``: the schema for BI tools."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from sync.cli.app import funnel_app, reporting_app
from sync.config import load_settings

if TYPE_CHECKING:
    from sync.store.db import Store


def _store() -> Store:
    from sync.store.db import Store

    return Store(load_settings().database_url)


@reporting_app.command("grant")
def grant(
    role: str = typer.Argument(..., help="An existing PostgreSQL role (created with LOGIN for a BI tool)"),
    apply: bool = typer.Option(False, "--apply", help="Run the statements instead of printing them"),
) -> None:
    """Print (or run) the GRANTs that let ROLE read the reporting schema and nothing else."""
    from sync.reporting_schema import ReportingError, apply_grants, grant_statements

    try:
        statements = grant_statements(role)
    except ReportingError as exc:
        raise typer.BadParameter(str(exc), param_hint="ROLE") from None
    if not apply:
        typer.echo("\n".join(statements))
        return
    store = _store()
    try:
        apply_grants(store, statements)
    except ReportingError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        store.dispose()
    typer.echo(f"granted read access to the reporting schema to {role}", err=True)


@reporting_app.command("stages")
def stages() -> None:
    """Publish the mapping's stages (order, labels) to the reporting schema's ``stages`` table."""
    from sync.mapping import load_mapping
    from sync.reporting_schema import publish_stages

    settings = load_settings()
    store = _store()
    try:
        count = publish_stages(store, load_mapping(settings.mappings))
    finally:
        store.dispose()
    typer.echo(f"published {count} stages", err=True)


@funnel_app.command("export")
def export(
    view: str = typer.Argument(..., help="A reporting view: people, transitions, funnel_by_day, ..."),
    fmt: str = typer.Option("csv", "--format", help="csv (UTF-8 with BOM, opens in Excel)"),
    output: Path | None = typer.Option(None, "--output", help="Write to this file instead of stdout"),
) -> None:
    """Export one reporting view for spreadsheet users."""
    from sync.reporting_schema import VIEWS, ReportingError

    if fmt != "csv":
        raise typer.BadParameter("must be csv", param_hint="--format")
    if view not in VIEWS:
        raise typer.BadParameter(f"unknown view {view!r}: use one of {', '.join(VIEWS)}", param_hint="VIEW")
    store = _store()
    try:
        _export(store, view, output)
    except ReportingError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        store.dispose()


def _export(store: Store, view: str, output: Path | None) -> None:
    """Write the view to ``output`` or stdout (as UTF-8 whatever the terminal's encoding)."""
    from sync.reporting_schema import export_csv, require_reporting_schema

    require_reporting_schema(store.engine)  # before an output file is created
    if output is None:
        sys.stdout.flush()
        stream = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="")
        try:
            count = export_csv(store, view, stream)
            stream.flush()
        finally:
            stream.detach()  # leave the process's stdout open
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        with output.open("w", encoding="utf-8", newline="") as stream:
            count = export_csv(store, view, stream)
    typer.echo(f"exported {count} rows of {view}" + (f" to {output}" if output else ""), err=True)
