"""Marketo flow-step webhook calls: what the admin's payload template must produce, validated per item.

A Marketo webhook is an HTTP call made by a smart campaign's "Call Webhook" flow step; the admin
writes its payload template with tokens ("Webhooks", https://experienceleague.adobe.com/en/docs/
marketo-developer/marketo/webhooks/webhooks). Closedloop expects JSON (request token encoding
JSON) holding one object, or an array of objects, like::

    {"leadId": {{lead.Id}}, "occurredAt": {{system.dateTime}}, "campaignId": {{campaign.id}}}

``leadId`` is required; ``mergedLeadIds`` (a list of lead IDs merged into this lead) is optional.
Marketo sends no event ID, so the inbox key is made of the lead, the time and the campaign (or,
without a time, a digest of the item): a repeated call is stored once.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sync.timeutil import parse_timestamp
from sync.web.hubspot_events import BadPayload
from sync.web.inbox import BadEvent, NewEvent

SOURCE = "marketo"
MAX_ITEMS_PER_REQUEST = 300
_MAX_LEAD_ID = 2**63 - 1


class MarketoWebhookCall(BaseModel):
    """One item of a webhook body; unknown keys are kept in the stored payload."""

    model_config = ConfigDict(extra="allow")

    leadId: int = Field(ge=1, le=_MAX_LEAD_ID)
    occurredAt: str | None = Field(default=None, max_length=40)
    campaignId: int | str | None = None
    mergedLeadIds: list[int] = Field(default_factory=list, max_length=100)

    @field_validator("leadId", mode="before")
    @classmethod
    def _lead_id(cls, value: Any) -> Any:
        # {{lead.Id}} is a bare number with JSON encoding, a quoted one when the admin quoted it.
        if isinstance(value, bool):
            raise ValueError("must be a lead ID")
        if isinstance(value, str) and value.strip().isdigit():
            return int(value.strip())
        return value

    @field_validator("occurredAt")
    @classmethod
    def _time(cls, value: str | None) -> str | None:
        if value not in (None, "") and _timestamp(value) is None:
            raise ValueError("must be an ISO 8601 date-time")
        return value or None


def _timestamp(value: str) -> Any:
    try:
        return parse_timestamp(value)
    except (ValueError, TypeError, OverflowError):
        return None


def parse_body(body: bytes) -> list[Any]:
    """The decoded items (an object counts as one), or :class:`BadPayload`."""
    try:
        data = json.loads(body, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        raise BadPayload("the body is not valid JSON") from exc
    items = [data] if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise BadPayload("the body must be a JSON object or an array of objects")
    if len(items) > MAX_ITEMS_PER_REQUEST:
        raise BadPayload(f"too many items in one request (at most {MAX_ITEMS_PER_REQUEST})")
    return items


def split_calls(items: list[Any]) -> tuple[list[NewEvent], list[BadEvent]]:
    """Inbox events for the valid items, one ``BadEvent`` for each invalid one."""
    good: list[NewEvent] = []
    bad: list[BadEvent] = []
    for item in items:
        try:
            call = MarketoWebhookCall.model_validate(item)
        except ValidationError as exc:
            bad.append(BadEvent(SOURCE, "invalid Marketo webhook call: " + _summary(exc), item, None, "lead"))
            continue
        when = parse_timestamp(call.occurredAt) if call.occurredAt else None
        payload = dict(item) | {"leadId": call.leadId, "mergedLeadIds": call.mergedLeadIds}
        good.append(
            NewEvent(
                source=SOURCE,
                event_key=_event_key(call, item),
                object_type="lead",
                record_id=str(call.leadId),
                occurred_at=when,
                payload=payload,
            )
        )
    return good, bad


def _event_key(call: MarketoWebhookCall, item: Any) -> str:
    if call.occurredAt:
        return f"{call.leadId}:{call.occurredAt}:{call.campaignId or ''}"[:200]
    digest = hashlib.sha256(json.dumps(item, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    return f"{call.leadId}:{digest[:32]}"


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _summary(exc: ValidationError) -> str:
    # loc and msg only: the offending values stay in the payload column, not in messages or logs
    parts = (f"{'.'.join(str(p) for p in err['loc']) or 'item'}: {err['msg']}" for err in exc.errors())
    return "; ".join(parts)
