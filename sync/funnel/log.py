"""The funnel package's structlog logger, obtained through ``sync.logs.get_logger``."""

from __future__ import annotations

from typing import Any

from sync.logs import get_logger

NAME = "closedloop.funnel"


def logger() -> Any:
    """A bound logger, built at call time so it follows the logging configuration in force."""
    return get_logger(NAME)
