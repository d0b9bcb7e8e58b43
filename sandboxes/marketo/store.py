"""Leads, activities and programs of the Marketo sandbox, with Marketo's write semantics.

Every change is logged as an activity at the sandbox time it happened: "New Lead" on creation,
"Change Data Value" per changed field (old/new value, source, API request id), "Change Score"
for score fields, "Merge Leads" on the winner and "Delete Lead" for deletions
("Activities", https://experienceleague.adobe.com/en/docs/marketo-developer/marketo/rest/lead-database/activities).
Activity paging tokens are opaque positions in that log ("Paging Tokens",
.../rest/paging-tokens); a page scans ``batchSize`` activities of every type and returns the
requested types among them, so a page may be empty while ``moreResult`` is true.
"""

from __future__ import annotations

import base64
import bisect
import itertools
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sandboxes.common import SimClock
from sandboxes.marketo.errors import MESSAGES, MarketoError, reason
from sandboxes.marketo.schema import (
    ACTIVITY_TYPE_IDS,
    CHANGE_DATA_VALUE,
    CHANGE_SCORE,
    DELETE_LEAD,
    MERGE_LEADS,
    NEW_LEAD,
    WRITE_TYPES,
    FieldDef,
    FieldValueError,
    coerce,
    iso_z,
    standard_fields,
)

MAX_BATCH = 300
DEFAULT_FIELDS = ["id", "updatedAt", "lastName", "email", "createdAt", "firstName"]
SEARCHABLE_CUSTOM_TYPES = {"string", "email", "integer"}
FIELD_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
FIELD_LABEL = re.compile(r"[\w ]+")


@dataclass(frozen=True)
class Source:
    """Who made a change, as Change Data Value reports it."""

    label: str  # "Source" attribute: "Web service API", "Marketo Flow Action", "Web form fillout"
    api_method: str | None = None
    request_id: str | None = None
    user: str | None = None
    reason: str | None = None


API_SOURCE = Source("Web service API", api_method="syncLead", user="closedloop@api.sandbox")
UI_SOURCE = Source("Person Detail Page", user="admin@sandbox")


@dataclass
class Lead:
    id: int
    values: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    deleted: bool = False

    def name(self) -> str:
        parts = [self.values.get("firstName"), self.values.get("lastName")]
        return " ".join(str(p) for p in parts if p) or str(self.values.get("email") or self.id)


@dataclass
class Activity:
    id: int
    lead_id: int
    date: datetime
    type_id: int
    primary_id: int | None
    primary_value: str | None
    attributes: list[tuple[str, Any]] = field(default_factory=list)

    def render(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "marketoGUID": str(self.id),
            "leadId": self.lead_id,
            "activityDate": iso_z(self.date),
            "activityTypeId": self.type_id,
        }
        if self.primary_id is not None:
            out["primaryAttributeValueId"] = self.primary_id
        if self.primary_value is not None:
            out["primaryAttributeValue"] = self.primary_value
        # Empty attributes are left out of an activity record ("Activities", Describe).
        out["attributes"] = [{"name": n, "value": v} for n, v in self.attributes if v is not None]
        return out


@dataclass
class Program:
    id: int
    name: str
    type: str
    channel: str
    created_at: datetime
    description: str = ""

    def render(self) -> dict[str, Any]:
        stamp = iso_z(self.created_at).replace("Z", "Z+0000")
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "createdAt": stamp,
            "updatedAt": stamp,
            "url": f"https://app-sandbox.marketo.com/#PG{self.id}A1",
            "type": self.type,
            "channel": self.channel,
            "folder": {"type": "Folder", "value": 1000, "folderName": "Marketing Activities"},
            "status": "",
            "workspace": "Default",
            "tags": [],
            "costs": None,
        }


def encode_position(when: datetime, activity_id: int) -> str:
    raw = f"{when.astimezone(UTC).isoformat()}|{activity_id}".encode()
    return base64.b32encode(raw).decode().rstrip("=")


def decode_position(token: str) -> tuple[datetime, int]:
    try:
        padded = token + "=" * (-len(token) % 8)
        when, activity_id = base64.b32decode(padded.encode()).decode().split("|")
        return datetime.fromisoformat(when), int(activity_id)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MarketoError("1003", "Invalid next page token") from exc


def _text(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


class LeadStore:
    """In-memory lead database with an activity log; callers hold :attr:`lock`."""

    def __init__(self, clock: SimClock) -> None:
        self.clock = clock
        self.lock = threading.RLock()
        self.fields: dict[str, FieldDef] = {f.name: f for f in standard_fields()}
        self.leads: dict[int, Lead] = {}
        self.activities: list[Activity] = []
        self.programs: dict[int, Program] = {}
        # (field, value) -> ids of leads that held it: lookups stay fast with tens of thousands of
        # leads (entries may be stale; ``find`` checks each lead's current value).
        self._index: dict[tuple[str, Any], set[int]] = {}
        self.listeners: list[Callable[[list[Activity]], None]] = []
        self._lead_ids = itertools.count(1001)
        self._activity_ids = itertools.count(5_000_001)
        self._program_ids = itertools.count(1001)
        self._field_ids = itertools.count(100)

    # ----- schema -----------------------------------------------------------------------------

    def add_field(
        self,
        name: str,
        display_name: str,
        data_type: str,
        length: int | None = None,
        description: str | None = None,
        is_hidden: bool = False,
    ) -> FieldDef:
        """Add a custom field, as an admin does in Field Management (or Create Lead Fields)."""
        if name in self.fields:
            raise ValueError(f"field {name} exists")
        definition = FieldDef(
            next(self._field_ids),
            name,
            display_name,
            data_type,
            length if length is not None else (255 if data_type == "string" else None),
            searchable=data_type in SEARCHABLE_CUSTOM_TYPES,
            is_custom=True,
            description=description,
            is_hidden=is_hidden,
        )
        self.fields[name] = definition
        return definition

    def create_field(self, spec: Any) -> dict[str, Any]:
        """One Create Lead Fields input: created, or skipped with Marketo's reason."""
        if not isinstance(spec, dict):
            return {"status": "skipped", "reasons": [reason("1003")]}
        name, label, data_type = spec.get("name"), spec.get("displayName"), spec.get("dataType")

        def skipped(code: str, message: str) -> dict[str, Any]:
            return {"name": name, "status": "skipped", "reasons": [reason(code, message)]}

        missing = [k for k, v in (("name", name), ("displayName", label), ("dataType", data_type)) if not v]
        if missing:
            return skipped("1002", f"Missing value for required parameter '{missing[0]}'")
        # name: unique, starts with a letter, letters/digits/underscore; displayName: unique, no
        # special characters ("Leads", Create Fields).
        if not FIELD_NAME.fullmatch(str(name)) or not FIELD_LABEL.fullmatch(str(label)):
            return skipped("1003", "Invalid field name or display name")
        if data_type not in WRITE_TYPES:
            return skipped("1003", f"Invalid dataType '{data_type}'")
        if name in self.fields or any(f.display_name == label for f in self.fields.values()):
            return skipped("1017", "Field already exists")
        self.add_field(
            str(name),
            str(label),
            str(data_type),
            description=spec.get("description"),
            is_hidden=bool(spec.get("isHidden", False)),
        )
        return {"name": name, "status": "created"}

    def field_by_id(self, field_id: int) -> FieldDef | None:
        return next((f for f in self.fields.values() if f.id == field_id), None)

    def searchable(self, name: str) -> bool:
        definition = self.fields.get(name)
        return definition is not None and definition.searchable

    # ----- programs ---------------------------------------------------------------------------

    def add_program(self, name: str, type_: str = "Default", channel: str = "Content") -> Program:
        program = Program(next(self._program_ids), name, type_, channel, self.clock.now())
        self.programs[program.id] = program
        return program

    # ----- reads ------------------------------------------------------------------------------

    def live(self) -> Iterable[Lead]:
        return (lead for lead in self.leads.values() if not lead.deleted)

    def get(self, lead_id: int) -> Lead | None:
        lead = self.leads.get(lead_id)
        return lead if lead is not None and not lead.deleted else None

    def find(self, field_name: str, value: Any) -> list[Lead]:
        """Live leads whose field equals ``value`` (email compares case-insensitively)."""
        if field_name == "id":
            try:
                lead = self.get(int(str(value)))
            except ValueError:
                return []
            return [lead] if lead else []
        definition = self.fields[field_name]
        try:
            wanted = coerce(definition, value)
        except FieldValueError:
            return []
        if wanted is None:
            return []
        key = self._key(field_name, wanted)
        found = (self.get(lead_id) for lead_id in sorted(self._index.get(key, ())))
        return [
            lead
            for lead in found
            if lead is not None and self._key(field_name, lead.values.get(field_name)) == key
        ]

    def _key(self, field_name: str, value: Any) -> tuple[str, Any]:
        """The index key: emails compare case-insensitively."""
        if value is not None and self.fields[field_name].data_type == "email":
            return field_name, str(value).lower()
        return field_name, value

    def _indexed(self, lead: Lead, field_name: str, value: Any) -> None:
        if value is not None:
            self._index.setdefault(self._key(field_name, value), set()).add(lead.id)

    def render(self, lead: Lead, fields: list[str]) -> dict[str, Any]:
        """A lead as Get Leads returns it: requested fields, nulls left out."""
        out: dict[str, Any] = {}
        for name in fields:
            if name == "id":
                out["id"] = lead.id
            elif name == "createdAt":
                out[name] = iso_z(lead.created_at)
            elif name == "updatedAt":
                out[name] = iso_z(lead.updated_at)
            elif lead.values.get(name) is not None:
                out[name] = lead.values[name]
        return out

    # ----- writes -----------------------------------------------------------------------------

    def _log(self, pending: list[Activity], activity: Activity) -> None:
        # The log stays ordered by (activityDate, id); a backdated activity is slotted in.
        if self.activities and _position(activity) < _position(self.activities[-1]):
            bisect.insort(self.activities, activity, key=_position)
        else:
            self.activities.append(activity)
        pending.append(activity)

    def _activity(
        self,
        lead_id: int,
        at: datetime,
        type_name: str,
        primary_id: int | None,
        primary_value: str | None,
        attributes: list[tuple[str, Any]],
    ) -> Activity:
        return Activity(
            next(self._activity_ids),
            lead_id,
            at,
            ACTIVITY_TYPE_IDS[type_name],
            primary_id,
            primary_value,
            attributes,
        )

    def _publish(self, pending: list[Activity]) -> None:
        if pending:
            for listener in self.listeners:
                listener(list(pending))

    def validate(self, values: dict[str, Any]) -> dict[str, Any]:
        """Coerce writable values; raise :class:`RecordRejected` with Marketo's reason."""
        out: dict[str, Any] = {}
        for name, value in values.items():
            definition = self.fields.get(name)
            if definition is None:
                raise RecordRejected("1006", f"Field '{name}' not found")
            if definition.read_only:
                raise RecordRejected("1003", f"Field '{name}' is not updateable")
            try:
                out[name] = coerce(definition, value)
            except FieldValueError as exc:
                raise RecordRejected(
                    "1001", f"Invalid value '{value}'. Required of type '{definition.data_type}'"
                ) from exc
        return out

    def create(self, values: dict[str, Any], source: Source, at: datetime | None = None) -> Lead:
        """Create a lead from validated values; logs New Lead (and nothing per field)."""
        when = at or self.clock.now()
        lead = Lead(next(self._lead_ids), {k: v for k, v in values.items() if v is not None}, when, when)
        self.leads[lead.id] = lead
        for name, value in lead.values.items():
            self._indexed(lead, name, value)
        pending: list[Activity] = []
        self._log(
            pending,
            self._activity(
                lead.id,
                when,
                NEW_LEAD,
                None,
                None,
                [
                    ("Created Date", when.date().isoformat()),
                    ("Lead Source", lead.values.get("leadSource")),
                    ("Source Type", source.label),
                ],
            ),
        )
        self._publish(pending)
        return lead

    def update(self, lead: Lead, values: dict[str, Any], source: Source, at: datetime | None = None) -> int:
        """Apply validated values; logs one activity per changed field; returns the change count."""
        when = at or self.clock.now()
        pending: list[Activity] = []
        for name, new in values.items():
            old = lead.values.get(name)
            if old == new:
                continue
            definition = self.fields[name]
            if new is None:
                lead.values.pop(name, None)
            else:
                lead.values[name] = new
                self._indexed(lead, name, new)
            if definition.data_type == "score":
                change = (new or 0) - (old or 0)
                attributes: list[tuple[str, Any]] = [
                    ("Change Value", f"{change:+d}"),
                    ("New Value", new),
                    ("Old Value", old),
                    ("Reason", source.reason or source.label),
                ]
                self._log(
                    pending,
                    self._activity(
                        lead.id, when, CHANGE_SCORE, definition.id, definition.display_name, attributes
                    ),
                )
            else:
                attributes = [
                    ("Api Method Name", source.api_method),
                    ("Modifying User", source.user),
                    ("New Value", _text(new)),
                    ("Old Value", _text(old)),
                    ("Reason", source.reason),
                    ("Request Id", source.request_id),
                    ("Source", source.label),
                ]
                self._log(
                    pending,
                    self._activity(
                        lead.id, when, CHANGE_DATA_VALUE, definition.id, definition.display_name, attributes
                    ),
                )
        if pending:
            lead.updated_at = when
        self._publish(pending)
        return len(pending)

    def delete(self, lead: Lead, at: datetime | None = None) -> None:
        when = at or self.clock.now()
        lead.deleted = True
        pending: list[Activity] = []
        self._log(
            pending,
            self._activity(lead.id, when, DELETE_LEAD, lead.id, lead.name(), [("Remove from CRM", False)]),
        )
        self._publish(pending)

    def merge(self, winner: Lead, losers: list[Lead], source_label: str, at: datetime | None = None) -> None:
        """Merge ``losers`` into ``winner``: the winner keeps its values, the losers disappear."""
        when = at or self.clock.now()
        for loser in losers:
            loser.deleted = True
        winner.updated_at = when
        pending: list[Activity] = []
        self._log(
            pending,
            self._activity(
                winner.id,
                when,
                MERGE_LEADS,
                winner.id,
                winner.name(),
                [
                    ("Merge IDs", [loser.id for loser in losers]),
                    ("Merge Source", source_label),
                    ("Merged in Sales", False),
                    ("Master Updated", False),
                ],
            ),
        )
        self._publish(pending)

    def sync(
        self, records: list[Any], action: str, lookup_field: str, source: Source
    ) -> list[dict[str, Any]]:
        """Sync Leads (createOrUpdate / createOnly / updateOnly): one result per input, in order."""
        results: list[dict[str, Any]] = []
        for record in records:
            try:
                results.append(self._sync_one(record, action, lookup_field, source))
            except RecordRejected as exc:
                results.append({"status": "skipped", "reasons": [reason(exc.code, exc.message)]})
        return results

    def _sync_one(self, record: Any, action: str, lookup_field: str, source: Source) -> dict[str, Any]:
        if not isinstance(record, dict):
            raise RecordRejected("1003", "Invalid data")
        record = dict(record)
        lead_id = record.pop("id", None)
        if lead_id is not None and action == "createOnly":
            # "an id submitted with action createOnly" is invalid data (Error Codes, 1003).
            raise RecordRejected("1003", "Invalid data: id not allowed with createOnly")
        key_field = "id" if lead_id is not None else lookup_field
        key_value = lead_id if lead_id is not None else record.get(lookup_field)
        values = self.validate(record)
        matches = self.find(key_field, key_value) if key_value not in (None, "") else []
        if len(matches) > 1:
            raise RecordRejected("1007")
        if matches:
            if action == "createOnly":
                raise RecordRejected("1005")
            lead = matches[0]
            self.update(lead, values, source)
            return {"id": lead.id, "status": "updated"}
        if action == "updateOnly" or lead_id is not None:
            raise RecordRejected("1004")
        if key_value in (None, "") and action != "createOnly":
            raise RecordRejected("1003", f"Value for lookup field '{lookup_field}' not found")
        lead = self.create(values, source)
        return {"id": lead.id, "status": "created"}

    # ----- activity feed ----------------------------------------------------------------------

    def since_token(self, since: datetime) -> str:
        """A date-based paging token: activities at or after ``since``."""
        return encode_position(since, -1)

    def page(
        self,
        token: str,
        type_ids: set[int] | None,
        batch_size: int,
        lead_ids: set[int] | None = None,
    ) -> tuple[list[dict[str, Any]], str, bool]:
        """(records, nextPageToken, moreResult) after the token's position."""
        when, last_id = decode_position(token)
        start = bisect.bisect_right(self.activities, (when, last_id), key=_position)
        scanned = self.activities[start : start + batch_size]
        records = [
            a.render()
            for a in scanned
            if (type_ids is None or a.type_id in type_ids) and (lead_ids is None or a.lead_id in lead_ids)
        ]
        if not scanned:
            return records, token, False
        last = scanned[-1]
        more = start + len(scanned) < len(self.activities)
        return records, encode_position(last.date, last.id), more


def _position(activity: Activity) -> tuple[datetime, int]:
    return activity.date, activity.id


class RecordRejected(Exception):
    """A record-level failure: the record is ``skipped`` with this reason."""

    def __init__(self, code: str, message: str | None = None) -> None:
        self.code = code
        self.message = message or MESSAGES.get(code, "Error")
        super().__init__(self.message)
