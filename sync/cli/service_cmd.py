"""Service commands: setup, sync --once, demo (the processes web, worker, beat and run: workers/cli.py)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import typer

from sync.cli.app import app
from sync.cli.errors import OperatorError
from sync.config import Settings, load_settings
from sync.logs import configure_logging
from sync.roles import ROLES

BEAT_SCHEDULE = Path("var/celerybeat-schedule")
CONNECTOR_LABELS = {"hubspot": "HubSpot", "salesforce": "Salesforce"}


def _settings() -> Settings:
    settings = load_settings()
    configure_logging(settings.log_format, settings.log_level)
    return settings


@app.command()
def setup(dry_run: bool = typer.Option(False, "--dry-run", help="Only print what would be created")) -> None:
    """Create the fields Closedloop writes and check the ones it reads, in both systems (idempotent)."""
    from sync.operations import runtime
    from sync.setup import run_setup

    _settings()
    rt = runtime()
    mapping, _ = rt.mappings.get()
    report = run_setup(mapping, rt.ma, rt.sfa, dry_run=dry_run)
    for line in (*report.created, *report.missing):
        typer.echo(line)
    for problem in report.problems:
        typer.echo(f"problem: {problem}")
    for notice in report.notices:
        typer.echo(f"note: {notice}")
    if not (report.created or report.missing or report.problems):
        typer.echo("everything Closedloop needs is in place")
    if report.missing or report.problems:
        raise typer.Exit(1)


@app.command("sync")
def sync_once(
    once: bool = typer.Option(True, "--once/--loop", help="One polling cycle, in the foreground"),
) -> None:
    """Poll both systems and sync what changed, in the foreground (useful for admins)."""
    import time

    from sync import operations
    from sync.connectors.registry import chosen

    settings = _settings()
    operations.runtime().store.upgrade()
    while True:
        total = 0
        missed = []
        for role in ROLES:
            before = _last_poll(role)
            for batch in operations.poll(role):
                result = operations.sync_people(batch)
                total += int(result.get("people", 0))
            if _last_poll(role) == before:
                name = chosen(settings)[role]
                missed.append(CONNECTOR_LABELS.get(name, name))
        typer.echo(f"synced {total} people")
        if missed:
            problem = (
                f"{' and '.join(missed)} could not be polled (see the log above: unreachable, refused, "
                "or another poll was running); check the API URLs, credentials and network"
            )
            if once:
                raise OperatorError(problem)
            typer.echo(f"warning: {problem}", err=True)
        if once:
            return
        time.sleep(settings.poll_interval)


def _last_poll(role: str) -> datetime | None:
    """When a poll of ``role`` last completed: every successful poll stamps its streams' cursors."""
    from sqlalchemy import func, select

    from sync import operations
    from sync.store.models import Cursor

    with operations.runtime().store.session() as session:
        return session.scalar(
            select(func.max(Cursor.last_success_at)).where(Cursor.stream.startswith(f"{role}:"))
        )


@app.command()
def demo(
    people: int = typer.Option(2000, "--people", help="Marketing contacts (or leads) to seed"),
    seed: int = typer.Option(7, "--seed", help="Random seed (same seed, same story)"),
    keep_running: bool = typer.Option(False, "--keep-running", help="Leave sandboxes and service up"),
    ma: str = typer.Option("hubspot", "--ma", help="The marketing tool: hubspot or marketo"),
    sfa: str = typer.Option(
        "salesforce", "--sfa", help="Sales side: salesforce, or hubspot (deals in the same HubSpot portal)"
    ),
) -> None:
    """The whole closed loop on the embedded default: sandboxes, SQLite, in-process Celery."""
    from sandboxes.demo import run_demo

    if ma not in ("hubspot", "marketo"):
        raise typer.BadParameter("must be hubspot or marketo", param_hint="--ma")
    if sfa not in ("salesforce", "hubspot"):
        raise typer.BadParameter("use salesforce or hubspot", param_hint="--sfa")
    if ma == "marketo" and sfa == "hubspot":
        raise typer.BadParameter("the demo pairs Marketo with Salesforce", param_hint="--sfa")
    configure_logging("console", "ERROR")  # the demo shows its own progress; breaches are in the report
    raise typer.Exit(
        run_demo(
            people=people,
            seed=seed,
            keep_running=keep_running,
            ma="marketo" if ma == "marketo" else "hubspot",
            sfa="hubspot" if sfa == "hubspot" else "salesforce",
        )
    )
