"""Small time helpers: everything inside Closedloop is timezone-aware UTC."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any


def utcnow() -> datetime:
    """Now, aware, UTC."""
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """Treat a naive datetime as UTC; convert an aware one to UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def parse_timestamp(value: Any) -> datetime | None:
    """Parse what HubSpot and Salesforce send: epoch ms, ISO-8601 (Z, +hh:mm, +hhmm) or a date."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return as_utc(value)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, int | float) or (isinstance(value, str) and value.isdigit()):
        return datetime.fromtimestamp(int(value) / 1000, tz=UTC)
    text = str(value).strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    elif len(text) > 5 and text[-5] in "+-" and text[-4:].isdigit() and text[-3] != ":":
        text = text[:-2] + ":" + text[-2:]
    parsed = datetime.fromisoformat(text)
    return as_utc(parsed)


def to_epoch_ms(value: datetime) -> int:
    """Epoch milliseconds, as HubSpot's search filters expect."""
    return int(as_utc(value).timestamp() * 1000)


def to_sf_datetime(value: datetime) -> str:
    """A SOQL datetime literal (UTC, ``Z``)."""
    return as_utc(value).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
