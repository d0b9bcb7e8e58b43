"""Durable inbox writes: new events inserted once per (source, event_key); bad items recorded as errors.

Good events and error rows of one request are committed in one transaction, so a request either
leaves all of its traces or none (and the sender retries).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from sync.store.db import Store
from sync.store.models import InboxEvent, SyncError
from sync.timeutil import utcnow

_MAX_ERROR_PAYLOAD_CHARS = 20_000
# The role an event is stored for: a fixed connector -> role map, or (connector, object type) -> role
# when one connector plays both roles (one HubSpot portal: contacts for marketing, deals for sales).
Roles = Mapping[str, str] | Callable[[str, str | None], str]


@dataclass(frozen=True)
class NewEvent:
    """One event to put in the inbox."""

    source: str  # the receiving connector
    event_key: str
    object_type: str
    record_id: str
    occurred_at: datetime | None
    payload: dict[str, Any]


@dataclass(frozen=True)
class BadEvent:
    """One rejected item, kept as a ``bad_event`` error so it is visible and replayable."""

    system: str
    message: str
    payload: Any
    record_id: str | None = None
    object_type: str | None = None


@dataclass
class InboxResult:
    """IDs of the newly stored events, how many were already known, and how many errors were recorded."""

    new_ids: list[int] = field(default_factory=list)
    duplicates: int = 0
    errors: int = 0


def store_events(
    store: Store,
    events: Sequence[NewEvent],
    bad: Sequence[BadEvent] = (),
    roles: Roles | None = None,
) -> InboxResult:
    """Insert ``events`` (ignoring ones already stored) and record ``bad`` items, in one transaction.

    ``roles`` says which role (ma, sfa) each event is for: a map from receiving connector to role,
    or a function of the connector and the event's object type.
    """
    role_of = _role_function(roles)
    unique = _first_of_each_key(events)
    result = InboxResult(duplicates=len(events) - len(unique))
    with store.session() as session:
        new_ids = _insert_or_ignore(session, unique, role_of)
        result.new_ids = sorted(new_ids)
        result.duplicates += len(unique) - len(new_ids)
        for item in bad:
            session.add(_error_row(item, role_of(item.system, item.object_type)))
        result.errors = len(bad)
    return result


def _role_function(roles: Roles | None) -> Callable[[str, str | None], str]:
    if roles is None:
        return lambda _connector, _object: ""
    if callable(roles):
        return roles
    fixed = dict(roles)
    return lambda connector, _object: fixed.get(connector, "")


def _first_of_each_key(events: Sequence[NewEvent]) -> list[NewEvent]:
    seen: set[tuple[str, str]] = set()
    unique: list[NewEvent] = []
    for event in events:
        if (event.source, event.event_key) not in seen:
            seen.add((event.source, event.event_key))
            unique.append(event)
    return unique


def _insert_or_ignore(
    session: Session, events: Sequence[NewEvent], role_of: Callable[[str, str | None], str]
) -> list[int]:
    """Insert rows, skipping (source, event_key) pairs already present; return the new row IDs."""
    if not events:
        return []
    now = utcnow()
    rows = [
        {
            "source": e.source,
            "role": role_of(e.source, e.object_type),
            "event_key": e.event_key,
            "object_type": e.object_type,
            "record_id": e.record_id,
            "occurred_at": e.occurred_at,
            "received_at": now,
            "payload": e.payload,
            "status": "pending",
            "attempts": 0,
        }
        for e in events
    ]
    dialect = session.get_bind().dialect.name
    if dialect in ("sqlite", "postgresql"):
        module: Any = sqlite if dialect == "sqlite" else postgresql
        stmt = (
            module.insert(InboxEvent)
            .values(rows)
            .on_conflict_do_nothing(index_elements=["source", "event_key"])
            .returning(InboxEvent.id)
        )
        return [int(row_id) for row_id in session.execute(stmt).scalars()]
    # Other backends: one row per savepoint, a unique violation means "already stored".
    new_ids: list[int] = []
    for row in rows:
        try:
            with session.begin_nested():
                inserted = session.execute(insert(InboxEvent).values(row).returning(InboxEvent.id))
                new_ids.append(int(inserted.scalar_one()))
        except IntegrityError:
            continue
    return new_ids


def _error_row(item: BadEvent, role: str) -> SyncError:
    now = utcnow()
    return SyncError(
        role=role,
        connector=item.system,
        object_type=item.object_type,
        record_id=item.record_id,
        operation="webhook",
        category="bad_event",
        message=item.message[:2000],
        payload=_json_safe(item.payload),
        status="open",
        attempts=1,
        created_at=now,
        last_attempt_at=now,
    )


def _json_safe(payload: Any) -> dict[str, Any]:
    """A dict the JSON column can hold, whatever the sender sent (truncated when huge or odd)."""
    try:
        text = json.dumps(payload, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return {"unparsed": "payload could not be stored as JSON"}
    if len(text) > _MAX_ERROR_PAYLOAD_CHARS:
        return {"truncated": text[:_MAX_ERROR_PAYLOAD_CHARS]}
    return payload if isinstance(payload, dict) else {"item": payload}
