"""``closedloop sandbox serve``: both sandboxes on real sockets until SIGTERM/SIGINT."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path

import typer

from sync.cli.app import sandbox_app


@sandbox_app.command("serve")
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on"),
    hubspot_port: int = typer.Option(0, help="HubSpot sandbox port (0 = any free port)"),
    salesforce_port: int = typer.Option(0, help="Salesforce sandbox port (0 = any free port)"),
    workdir: Path = typer.Option(Path("var/sandbox"), help="Where the TLS CA and certificate are written"),
) -> None:
    """Serve both sandboxes; the first stdout line is JSON with their URLs and credentials."""
    from sandboxes.server import start_sandboxes

    boxes = start_sandboxes(workdir, host=host, hubspot_port=hubspot_port, salesforce_port=salesforce_port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    typer.echo(json.dumps(boxes.info()), nl=True)
    try:
        stop.wait()
    finally:
        boxes.stop()
