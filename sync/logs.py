"""Structured logging (structlog): JSON by default, console for humans; secrets redacted."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_SECRET_KEYS = re.compile(r"(token|secret|password|session_id|authorization|api_key|private_key)", re.I)
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._!\-]+", re.I)
_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@\s]+@")
# Drivers accept credentials as query parameters too (``?password=``, libpq's ``sslpassword=``).
_QUERY_SECRET = re.compile(
    r"([?&;](?:[a-z_]*password|passwd|pwd|[a-z_]*token|[a-z_]*secret|api_?key)=)[^&;#\s'\"]+", re.I
)


def redact_text(text: str) -> str:
    """Mask bearer tokens, URL passwords and secret query parameters inside free text."""
    text = _URL_PASSWORD.sub(r"\1***@", _BEARER.sub(r"\1***", text))
    return _QUERY_SECRET.sub(r"\1***", text)


def _redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in list(event.items()):
        if _SECRET_KEYS.search(key) and value:
            event[key] = "***"
        elif isinstance(value, str):
            event[key] = redact_text(value)
    return event


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is at the time of each record."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def _stderr_logger(*_args: Any) -> structlog.PrintLogger:
    return structlog.PrintLogger(file=sys.stderr)


def configure_logging(fmt: str = "json", level: str = "INFO") -> None:
    """Configure structlog and the stdlib root logger once per process."""
    renderer: Any = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    logging.basicConfig(handlers=[_StderrHandler()], level=level.upper(), format="%(message)s", force=True)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        # Resolve sys.stderr per logger, not once: tests and embedding hosts swap the stream.
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> Any:
    """A bound structlog logger carrying ``component=name``."""
    return structlog.get_logger(component=name)
