"""Validation of HubSpot webhook payloads: a JSON array of event objects, each checked on its own."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError, model_validator

from sync.web.inbox import BadEvent, NewEvent

MAX_EVENTS_PER_REQUEST = 1000  # HubSpot sends at most 100; anything far beyond is not HubSpot
_MAX_INT64 = 2**63 - 1
_SUBSCRIPTION_TYPE = r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)+$"  # e.g. contact.propertyChange
_MAX_EPOCH_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
# Generic "object.*" subscriptions name the object by type ID.
_OBJECT_TYPE_IDS = {"0-1": "contact", "0-2": "company", "0-3": "deal", "0-5": "ticket"}


class BadPayload(Exception):
    """The body as a whole is unusable (not JSON, not an array, too many items)."""


class HubSpotEvent(BaseModel):
    """One webhook event; unknown keys are kept (they go into the stored payload unchanged)."""

    model_config = ConfigDict(extra="allow")

    eventId: StrictInt = Field(ge=0, le=_MAX_INT64)
    subscriptionType: StrictStr = Field(min_length=3, max_length=100, pattern=_SUBSCRIPTION_TYPE)
    # Association changes name both ends (fromObjectId, toObjectId) and no objectId.
    objectId: StrictInt | None = Field(default=None, ge=0, le=_MAX_INT64)
    fromObjectId: StrictInt | None = Field(default=None, ge=0, le=_MAX_INT64)
    toObjectId: StrictInt | None = Field(default=None, ge=0, le=_MAX_INT64)
    occurredAt: StrictInt = Field(ge=0, le=_MAX_EPOCH_MS)
    objectTypeId: StrictStr | None = Field(default=None, max_length=20, pattern=r"^[0-9]+-[0-9]+$")

    @model_validator(mode="after")
    def _names_its_record(self) -> HubSpotEvent:
        association = self.subscriptionType.endswith(".associationChange")
        if self.objectId is None and not (association and self.fromObjectId is not None):
            ends = " (or, for an association change, fromObjectId and toObjectId)" if association else ""
            raise ValueError(f"objectId is required{ends}")
        if association and self.objectId is None and self.toObjectId is None:
            raise ValueError("an association change needs fromObjectId and toObjectId")
        return self

    def record_id(self) -> str:
        """The changed record: ``objectId``, or the ``fromObjectId`` of an association change."""
        return str(self.objectId if self.objectId is not None else self.fromObjectId)

    def object_type(self) -> str:
        """``contact`` for ``contact.*`` (and ``object.*`` with type 0-1), likewise for other objects."""
        prefix = self.subscriptionType.split(".", 1)[0]
        if prefix == "object":
            return _OBJECT_TYPE_IDS.get(self.objectTypeId or "", self.objectTypeId or "object")
        return prefix[:40]


def parse_body(body: bytes) -> list[Any]:
    """The decoded JSON array, or :class:`BadPayload` (NaN/Infinity are refused like any non-JSON)."""
    try:
        data = json.loads(body, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        raise BadPayload("the body is not valid JSON") from exc
    if not isinstance(data, list):
        raise BadPayload("the body must be a JSON array of events")
    if len(data) > MAX_EVENTS_PER_REQUEST:
        raise BadPayload(f"too many events in one request (at most {MAX_EVENTS_PER_REQUEST})")
    return data


def split_events(items: list[Any]) -> tuple[list[NewEvent], list[BadEvent]]:
    """Inbox events for the valid items, one ``BadEvent`` for each invalid one."""
    good: list[NewEvent] = []
    bad: list[BadEvent] = []
    for item in items:
        try:
            event = HubSpotEvent.model_validate(item)
        except ValidationError as exc:
            bad.append(BadEvent("hubspot", "invalid HubSpot event: " + _summary(exc), item, _object_id(item)))
            continue
        good.append(
            NewEvent(
                source="hubspot",
                event_key=str(event.eventId),
                object_type=event.object_type(),
                record_id=event.record_id(),
                occurred_at=datetime.fromtimestamp(event.occurredAt / 1000, tz=UTC),
                payload=item,
            )
        )
    return good, bad


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _summary(exc: ValidationError) -> str:
    # loc and msg only: the offending values stay in the payload column, not in messages or logs
    parts = (f"{'.'.join(str(p) for p in err['loc']) or 'item'}: {err['msg']}" for err in exc.errors())
    return "; ".join(parts)


def _object_id(item: Any) -> str | None:
    value = item.get("objectId", item.get("fromObjectId")) if isinstance(item, dict) else None
    valid = isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _MAX_INT64
    return str(value) if valid else None
