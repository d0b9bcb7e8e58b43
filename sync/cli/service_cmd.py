"""Service commands: setup, sync --once, run, worker, beat, web, backfill."""

from __future__ import annotations

import signal
import threading

import typer

from sync.cli.app import app
from sync.config import Settings, load_settings
from sync.logs import configure_logging
from sync.roles import ROLES


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

    settings = _settings()
    operations.runtime().store.upgrade()
    while True:
        total = 0
        for role in ROLES:
            for batch in operations.poll(role):
                result = operations.sync_people(batch)
                total += int(result.get("people", 0))
        typer.echo(f"synced {total} people")
        if once:
            return
        time.sleep(settings.poll_interval)


def _serve_web(settings: Settings, host: str, port: int, in_thread: bool) -> threading.Thread | None:
    import uvicorn

    from sync.operations import runtime
    from sync.web.app import create_app
    from workers.tasks import process_inbox

    rt = runtime()

    def broker_ok() -> bool:
        if not settings.redis_url:
            return True
        import redis

        try:
            return bool(redis.Redis.from_url(settings.redis_url, socket_timeout=1).ping())
        except redis.exceptions.RedisError:
            return False

    def mappings_ok() -> bool:
        rt.mappings.get()
        return not rt.mappings.last_errors

    web = create_app(
        settings,
        rt.store,
        lambda ids: process_inbox.delay(list(ids)),
        ready_checks={"broker": broker_ok, "mappings": mappings_ok},
    )
    config = uvicorn.Config(web, host=host, port=port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    if not in_thread:
        server.run()
        return None
    thread = threading.Thread(target=server.run, name="closedloop-web", daemon=True)
    thread.start()
    return thread


@app.command()
def web(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on"),
    port: int = typer.Option(8000, help="Port to listen on"),
) -> None:
    """Serve webhooks, health, readiness and metrics."""
    settings = _settings()
    _serve_web(settings, host, port, in_thread=False)


@app.command()
def worker(concurrency: int = typer.Option(4, help="Worker threads/processes")) -> None:
    """Run a Celery worker (needs CLOSEDLOOP_REDIS_URL)."""
    settings = _settings()
    if not settings.redis_url:
        raise typer.BadParameter(
            "a separate worker needs CLOSEDLOOP_REDIS_URL; use `closedloop run` embedded"
        )
    from workers.celery_app import app as celery_app

    celery_app.worker_main(["worker", f"--concurrency={concurrency}", "--loglevel=INFO", "--without-gossip"])


@app.command()
def beat() -> None:
    """Run the Celery beat scheduler (needs CLOSEDLOOP_REDIS_URL)."""
    settings = _settings()
    if not settings.redis_url:
        raise typer.BadParameter("a separate beat needs CLOSEDLOOP_REDIS_URL; use `closedloop run` embedded")
    from workers.celery_app import app as celery_app

    celery_app.start(["beat", "--loglevel=INFO", "--schedule=var/celerybeat-schedule"])


@app.command()
def run(
    host: str = typer.Option("127.0.0.1", help="Interface for the web process"),
    port: int = typer.Option(8000, help="Port for the web process"),
    concurrency: int = typer.Option(4, help="Worker threads"),
) -> None:
    """Web + worker + beat in one process (small installs and the embedded default)."""
    from sync.embedded import embedded_worker
    from sync.operations import runtime
    from workers.celery_app import app as celery_app

    settings = _settings()
    runtime().store.upgrade()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    _serve_web(settings, host, port, in_thread=True)
    with embedded_worker(celery_app, concurrency=concurrency):
        typer.echo(f"closedloop running: web on http://{host}:{port}, worker and beat in process", err=True)
        stop.wait()
    typer.echo("closedloop stopped", err=True)


@app.command()
def demo(
    people: int = typer.Option(2000, "--people", help="Marketing contacts (or leads) to seed"),
    seed: int = typer.Option(7, "--seed", help="Random seed (same seed, same story)"),
    keep_running: bool = typer.Option(False, "--keep-running", help="Leave sandboxes and service up"),
    ma: str = typer.Option("hubspot", "--ma", help="The marketing tool: hubspot or marketo"),
) -> None:
    """The whole closed loop on the embedded default: sandboxes, SQLite, in-process Celery."""
    from sandboxes.demo import run_demo

    if ma not in ("hubspot", "marketo"):
        raise typer.BadParameter("must be hubspot or marketo", param_hint="--ma")
    configure_logging("console", "ERROR")  # the demo shows its own progress; breaches are in the report
    raise typer.Exit(run_demo(people=people, seed=seed, keep_running=keep_running, ma=ma))  # type: ignore[arg-type]
