"""Operator mistakes become one or two lines that name the fix, and a non-zero exit.

A store that is missing, not migrated, unreachable or unwritable, an unknown migration revision, a
closed Redis, unreachable or refusing APIs, missing credentials, an unwritable output path and a
broken mapping are things an operator fixes, not bugs: they get a short message instead of a
traceback. Messages never carry a secret (URLs are masked, SQL and its parameters are never shown).
Anything not recognised here is a bug and keeps its traceback.

:func:`operator_errors` is the one place that does this; the root command group wraps every command
in it, and a command living elsewhere (a worker module, say) can use :func:`handle_operator_errors`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import typer

from sync.logs import redact_text

F = TypeVar("F", bound=Callable[..., Any])
EXIT_OPERATOR_ERROR = 1
MAX_MAPPING_ERRORS_SHOWN = 5


class OperatorError(Exception):
    """A mistake a command detected itself; ``str(exc)`` is the whole message, naming the fix."""


def _setting(name: str) -> str:
    """The masked value of a setting for a message, or just its variable name if unreadable."""
    from sync.config import Settings, mask_url

    try:
        value = getattr(Settings(), name)
    except Exception:  # noqa: BLE001 - an invalid setting is reported by the command itself
        value = None
    variable = f"CLOSEDLOOP_{name.upper()}"
    return f"{mask_url(str(value))} ({variable})" if value else variable


def _mapping(exc: Exception) -> str:
    errors = [str(e) for e in getattr(exc, "errors", [])]
    shown = errors[:MAX_MAPPING_ERRORS_SHOWN]
    more = len(errors) - len(shown)
    lines = ["the mapping is invalid:", *(f"  {e}" for e in shown)]
    if more:
        lines.append(f"  ... and {more} more")
    lines.append("fix it (check with `closedloop mappings lint PATH`) and start again")
    return "\n".join(lines)


def _database(exc: Exception) -> str | None:
    detail = str(getattr(exc, "orig", None) or exc).lower()
    db = _setting("database_url")
    if "no such table" in detail or "undefinedtable" in type(getattr(exc, "orig", None)).__name__.lower():
        return (
            f"the database {db} has no Closedloop tables (new or not migrated): run `closedloop db upgrade`"
        )
    if "no such column" in detail or "undefinedcolumn" in type(getattr(exc, "orig", None)).__name__.lower():
        return f"the database {db} has an older schema than this version: run `closedloop db upgrade`"
    if "does not exist" in detail and "database" in detail:
        return (
            f"the database {db} does not exist: create it (e.g. createdb), then run `closedloop db upgrade`"
        )
    if "password authentication failed" in detail or "authentication failed" in detail:
        return f"the database {db} refused the user or password: fix CLOSEDLOOP_DATABASE_URL"
    if "database is locked" in detail:
        return f"the SQLite file of {db} is locked by another process: stop it, or use PostgreSQL to share"
    if "unable to open database file" in detail or "readonly database" in detail or "disk i/o" in detail:
        return f"cannot open or write the SQLite file of {db}: check the path and its permissions"
    if any(
        s in detail for s in ("connection refused", "could not translate", "timeout", "connection failed")
    ):
        return f"cannot reach the database {db}: start PostgreSQL or fix CLOSEDLOOP_DATABASE_URL"
    return None


def _migration(exc: Exception) -> str:
    text = str(exc)
    if "locate revision" in text:
        return f"{text}: run `closedloop db upgrade` (no argument) to reach the newest schema"
    return f"database migration failed: {text}"


def _redis(exc: Exception) -> str:
    url = _setting("redis_url")
    if "auth" in type(exc).__name__.lower() or "auth" in str(exc).lower():
        return f"Redis at {url} refused the password: fix CLOSEDLOOP_REDIS_URL"
    return (
        f"cannot reach Redis at {url}: start Redis, fix CLOSEDLOOP_REDIS_URL, or unset it (embedded broker)"
    )


_API_SETTINGS = {
    "hubspot": ("HubSpot", "CLOSEDLOOP_HUBSPOT_BASE_URL", "CLOSEDLOOP_HUBSPOT_ACCESS_TOKEN"),
    "salesforce": ("Salesforce", "CLOSEDLOOP_SALESFORCE_INSTANCE_URL", "CLOSEDLOOP_SALESFORCE_*"),
}


def _connector(exc: Exception) -> str:
    name, url_var, credential_var = _API_SETTINGS.get(
        str(getattr(exc, "system", "")), ("the API", "the base URL settings", "the credential settings")
    )
    message = str(getattr(exc, "message", exc))
    category = getattr(exc, "category", "")
    if category == "network":
        return f"{name} is unreachable ({message}): check {url_var} and the network, then try again"
    if category == "auth":
        return f"{name}: {message}: set or fix {credential_var} (see `closedloop config check`)"
    if category == "budget":
        return f"{name}: {message}: the API budget is spent; try again later"
    return f"{name} refused the request: {message}"


def _file(exc: OSError) -> str | None:
    if exc.filename is None:
        return None
    reason = exc.strerror or type(exc).__name__
    return f"cannot use {exc.filename}: {reason}: choose a path you can write to, or fix its permissions"


def _explainers() -> list[tuple[tuple[type[BaseException], ...], Callable[[Any], str | None]]]:
    """(exception types, message) pairs; imported lazily so ``--help`` stays fast."""
    import kombu.exceptions
    import redis.exceptions
    import sqlalchemy.exc
    from alembic.util import CommandError

    from sync.connectors.errors import ConnectorError
    from sync.mapping import MappingError

    return [
        ((OperatorError,), str),
        ((MappingError,), _mapping),
        ((sqlalchemy.exc.DBAPIError,), _database),
        ((CommandError,), _migration),
        ((redis.exceptions.ConnectionError, redis.exceptions.TimeoutError), _redis),
        ((kombu.exceptions.OperationalError,), _redis),
        ((ConnectorError,), _connector),
        ((OSError,), _file),
    ]


def explain(exc: BaseException) -> str | None:
    """The operator's message for a known mistake (secrets masked), or None for a bug."""
    for kinds, describe in _explainers():
        if isinstance(exc, kinds):
            message = describe(exc)
            return redact_text(message) if message else None
    return None


@contextmanager
def operator_errors() -> Iterator[None]:
    """Turn known operator mistakes raised inside into ``error: ...`` on stderr and exit status 1."""
    try:
        yield
    except Exception as exc:
        message = explain(exc)
        if message is None:
            raise
        typer.echo(f"error: {message}", err=True)
        raise typer.Exit(EXIT_OPERATOR_ERROR) from None


def handle_operator_errors(fn: F) -> F:
    """Decorator form of :func:`operator_errors`, for a command registered outside the root group."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with operator_errors():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
