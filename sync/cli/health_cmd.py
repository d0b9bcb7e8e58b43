"""Sync health: ``closedloop status``, ``errors``, ``errors dismiss``, ``replay``."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select, update

from sync.cli.app import app, errors_app
from sync.config import Settings, load_settings
from sync.store.db import Store
from sync.store.models import Cursor, InboxEvent, SyncError
from sync.timeutil import utcnow


def _store() -> Store:
    return Store(load_settings().database_url)


def _age(when: datetime | None) -> str:
    if when is None:
        return "never"
    seconds = (utcnow() - when).total_seconds()
    return f"{seconds:,.0f}s ago" if seconds < 3600 else f"{seconds / 3600:,.1f}h ago"


@app.command()
def status(as_json: bool = typer.Option(False, "--json", help="Machine-readable output")) -> None:
    """Lag per stream, inbox and queue depth, last success, API budget."""
    settings = load_settings()
    store = Store(settings.database_url)
    with store.session() as session:
        cursors = list(session.execute(select(Cursor).order_by(Cursor.stream)).scalars())
        pending = session.scalar(select(func.count()).where(InboxEvent.status == "pending")) or 0
        oldest = session.scalar(
            select(func.min(InboxEvent.received_at)).where(InboxEvent.status == "pending")
        )
        open_errors = session.scalar(select(func.count()).where(SyncError.status == "open")) or 0
    queue_depth = None
    if settings.redis_url:
        import redis

        queue_depth = int(redis.Redis.from_url(settings.redis_url).llen("celery"))
    budget: dict[str, Any] = {
        "hubspot": {
            "window_limit_per_10s": settings.hubspot_window_limit,
            "daily_cap": settings.hubspot_daily_limit,
        },
        "salesforce": {"share_of_daily_allocation": settings.salesforce_api_share},
    }
    if settings.ma == "marketo":
        budget["marketo"] = _marketo_budget(settings)
    data = {
        "streams": [
            {
                "stream": c.stream,
                "watermark": c.watermark.isoformat() if c.watermark else None,
                "lag_seconds": (utcnow() - c.watermark).total_seconds() if c.watermark else None,
                "last_success": c.last_success_at.isoformat() if c.last_success_at else None,
            }
            for c in cursors
        ],
        "inbox_pending": pending,
        "inbox_oldest_pending": oldest.isoformat() if oldest else None,
        "queue_depth": queue_depth,
        "open_errors": open_errors,
        "budget": budget,
    }
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    console = Console()
    table = Table(title="Streams")
    for col in ("stream", "watermark", "last success"):
        table.add_column(col)
    for c in cursors:
        table.add_row(c.stream, c.watermark.isoformat() if c.watermark else "-", _age(c.last_success_at))
    console.print(table)
    console.print(f"inbox pending: {pending} (oldest {_age(oldest)})")
    console.print(f"queue depth: {queue_depth if queue_depth is not None else 'embedded (in-process)'}")
    console.print(f"open errors: {open_errors}  (see `closedloop errors`)")
    marketo = budget.get("marketo")
    if marketo:
        used = marketo["calls_last_24h"]
        console.print(
            f"Marketo calls in the last 24 h: {'unknown (embedded mode)' if used is None else f'{used:,}'}"
            f" of our share of {marketo['daily_share_calls']:,} ({marketo['window_limit']} per "
            f"{marketo['window_seconds']} s)"
        )


def _marketo_budget(settings: Settings) -> dict[str, Any]:
    """Marketo's budget and Closedloop's own use of it, as every worker counted it in Redis (no API call)."""
    from sync.connectors.marketo_ma import window_limiter
    from sync.connectors.ratelimit import make_storage

    limiter = window_limiter(settings, make_storage(settings.redis_url))
    return {
        "window_limit": settings.marketo_window_limit,
        "window_seconds": settings.marketo_window_seconds,
        "daily_share_calls": limiter.per_day,
        "calls_last_24h": limiter.used_today() if settings.redis_url else None,
    }


@errors_app.callback()
def errors(
    ctx: typer.Context,
    status_filter: str = typer.Option("open", "--status", help="open, resolved, dismissed or all"),
    examples: int = typer.Option(3, help="Examples shown per category"),
) -> None:
    """Recorded errors grouped by category, with counts and examples."""
    if ctx.invoked_subcommand is not None:
        return
    store = _store()
    with store.session() as session:
        query = select(SyncError).order_by(SyncError.category, SyncError.id.desc())
        if status_filter != "all":
            query = query.where(SyncError.status == status_filter)
        rows = list(session.execute(query.limit(10_000)).scalars())
    if not rows:
        typer.echo(f"no {status_filter} errors")
        return
    console = Console()
    by_category: dict[str, list[SyncError]] = {}
    for row in rows:
        by_category.setdefault(row.category, []).append(row)
    for category, items in by_category.items():
        table = Table(title=f"{category}: {len(items)}")
        for col in ("id", "system", "object", "common id", "code", "message", "attempts"):
            table.add_column(col)
        for row in items[:examples]:
            table.add_row(
                str(row.id),
                row.role,
                row.object_type or "-",
                row.common_id or "-",
                row.code or "-",
                row.message[:120],
                str(row.attempts),
            )
        console.print(table)


@errors_app.command("dismiss")
def dismiss(
    error_id: int | None = typer.Option(None, "--id", help="One error"),
    category: str | None = typer.Option(None, "--category", help="Every open error of a category"),
) -> None:
    """Dismiss errors that will not be fixed (they stop being retried)."""
    if error_id is None and category is None:
        raise typer.BadParameter("give --id or --category")
    store = _store()
    with store.session() as session:
        query = update(SyncError).where(SyncError.status == "open")
        query = (
            query.where(SyncError.id == error_id)
            if error_id is not None
            else query.where(SyncError.category == category)
        )
        count = session.execute(query.values(status="dismissed")).rowcount  # type: ignore[attr-defined]
    typer.echo(f"dismissed {count} error(s)")


@app.command()
def replay(
    category: str | None = typer.Option(None, "--category", help="Retry every open error of a category"),
    error_id: int | None = typer.Option(None, "--id", help="Retry one error"),
) -> None:
    """Retry recorded errors after a fix (all open ones when no filter is given)."""
    from sync import operations

    retried = operations.retry_failed(category=category, error_id=error_id)
    typer.echo(f"retried {retried} person(s)")
