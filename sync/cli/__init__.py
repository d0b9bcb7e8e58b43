"""The ``closedloop`` command line (Typer). Subcommands live in one module per area."""

from __future__ import annotations

from sync.cli import (  # noqa: F401
    backfill_cmd,
    config_cmd,
    funnel_cmd,
    health_cmd,
    mappings_cmd,
    reporting_cmd,
    sandbox_cmd,
    service_cmd,
)
from sync.cli.app import app

__all__ = ["app"]
