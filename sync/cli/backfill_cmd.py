"""``closedloop backfill``: the first load from both systems, with history, resumable."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from sync.cli.app import app
from sync.timeutil import as_utc


class _Bars:
    """Turns backfill progress events into Rich progress bars (one per stream)."""

    def __init__(self, progress: Progress, labels: dict[str, str]) -> None:
        self.progress = progress
        self.labels = labels
        self.tasks: dict[str, Any] = {}

    def __call__(self, event: str, data: dict[str, Any]) -> None:
        stream = data["stream"]
        if event == "start":
            total = max(int(data.get("total") or 0), int(data.get("completed") or 0))
            self.tasks[stream] = self.progress.add_task(
                self.labels.get(stream, stream), total=total or None, completed=data.get("completed", 0)
            )
        elif event == "advance" and stream in self.tasks:
            task = self.tasks[stream]
            self.progress.advance(task, data["n"])
            current = self.progress.tasks[task]
            if current.total is not None and current.completed > current.total:
                self.progress.update(task, total=current.completed)  # records added while we read
        elif event == "done" and stream in self.tasks:
            current = self.progress.tasks[self.tasks[stream]]
            self.progress.update(self.tasks[stream], total=current.completed)


@app.command()
def backfill(
    batch_size: int = typer.Option(
        200, "--batch-size", min=1, max=2000, help="People per commit and sync batch"
    ),
    since: datetime | None = typer.Option(
        None, "--since", help="Only records modified at or after this date (UTC); their history stays whole"
    ),
    sync: bool = typer.Option(
        True, "--sync/--no-sync", help="After the history, sync the people so both systems converge"
    ),
    restart: bool = typer.Option(
        False, "--restart", help="Forget the saved position and read everything again"
    ),
) -> None:
    """First load: link every HubSpot contact and Salesforce record, rebuild the funnel history, sync.

    Progress is saved after every page; run the command again to continue after an interruption.
    """
    from sync.backfill import Backfill, BackfillOptions, stream_labels
    from sync.config import load_settings
    from sync.connectors.errors import ConnectorError
    from sync.logs import configure_logging
    from sync.operations import runtime

    settings = load_settings()
    configure_logging(settings.log_format, settings.log_level)
    rt = runtime()
    rt.store.upgrade()
    mapping, _ = rt.mappings.get()
    options = BackfillOptions(
        batch_size=batch_size, since=as_utc(since) if since else None, sync=sync, restart=restart
    )
    columns = (
        TextColumn("{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    labels = stream_labels(rt.ma, rt.sfa)
    with Progress(*columns, console=Console(stderr=True)) as progress:
        job = Backfill(rt.store, mapping, rt.ma, rt.sfa, rt.engine, options, progress=_Bars(progress, labels))
        try:
            stats = job.run()
        except KeyboardInterrupt:
            typer.echo(
                "interrupted: progress is saved; run `closedloop backfill` again to continue", err=True
            )
            raise typer.Exit(130) from None
        except ConnectorError as exc:
            typer.echo(f"stopped: {exc.message}; progress is saved, run again to continue", err=True)
            raise typer.Exit(1) from None
    if stats.already_complete:
        typer.echo("backfill already complete (use --restart to read everything again)")
        return
    records = ", ".join(f"{labels.get(k, k)}: {v}" for k, v in stats.records.items())
    typer.echo(f"read {records or 'nothing new'}")
    typer.echo(
        f"people {stats.people}, histories rebuilt {stats.replayed}, transitions {stats.transitions}, "
        f"synced {stats.synced}, sync errors {stats.sync_errors}"
    )
    if stats.sync_errors:
        typer.echo("see `closedloop errors` for the records that failed", err=True)
