"""The ``closedloop`` command line: every ``sync`` command plus the processes that run Celery.

``web``, ``worker``, ``beat`` and ``run`` need the Celery app, which lives here in ``workers``; the
product package ``sync`` never imports ``workers``.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import typer

from sync.cli import app
from sync.cli.service_cmd import _settings
from sync.config import Settings

BEAT_SCHEDULE = Path("var/celerybeat-schedule")

__all__ = ["app"]


def _serve_web(settings: Settings, host: str, port: int, in_thread: bool) -> threading.Thread | None:
    import uvicorn

    from sync.operations import runtime
    from sync.web.app import create_app
    from sync.web.serving import uvicorn_config
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
        mapping=lambda: rt.mappings.get()[0],
    )
    server = uvicorn.Server(uvicorn_config(web, settings, host, port))
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

    # beat cannot create the folder of its schedule file and exits without saying why
    schedule = Path.cwd() / BEAT_SCHEDULE
    schedule.parent.mkdir(parents=True, exist_ok=True)
    celery_app.start(["beat", "--loglevel=INFO", f"--schedule={schedule}"])


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


if __name__ == "__main__":
    app()
