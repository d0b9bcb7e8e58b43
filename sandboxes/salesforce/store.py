"""The sandbox org's data: records, validation, system fields, history, transactions and queries.

Everything runs under one re-entrant lock. Writes inside :meth:`Store.atomic` are journalled so a
caller (allOrNone collections, composite) can roll back to a savepoint; change notifications for
outbound messages are released only when the outermost transaction ends.
"""

from __future__ import annotations

import copy
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sandboxes.common import SimClock
from sandboxes.salesforce import ids
from sandboxes.salesforce.duplicates import DuplicateChecker, DuplicateHeader
from sandboxes.salesforce.lookup import EqualityLookups
from sandboxes.salesforce.schema import (
    ACCOUNT_TRACKED,
    API_USER_ID,
    HISTORY_OBJECTS,
    LEAD_TRACKED,
    MAX_TRACKED_FIELDS,
    OPPORTUNITY_FIELD_TRACKED,
    OPPORTUNITY_TRACKED,
    SALES_USER_ID,
    STAGES_BY_NAME,
    FieldDef,
    ObjectDef,
    build_schema,
)
from sandboxes.salesforce.soql import Evaluator, FieldRef, bind, parse

_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class SfError(Exception):
    """An API error: HTTP status, Salesforce errorCode, message and the fields it concerns."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        fields: list[str] | None = None,
        extra: dict[str, Any] | None = None,
        always_fields: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields or []
        self.extra = extra or {}  # e.g. ``duplicateResult`` of a DUPLICATES_DETECTED error
        self.always_fields = always_fields  # the REST body carries ``"fields": []`` even when empty

    def rest_body(self) -> list[dict[str, Any]]:
        """The REST error body: a list of ``{message, errorCode, fields}``."""
        body: dict[str, Any] = dict(self.extra) | {"message": self.message, "errorCode": self.code}
        if self.fields or self.always_fields:
            body["fields"] = self.fields
        return [body]

    def save_error(self) -> dict[str, Any]:
        """The Error element inside a SaveResult (sObject Collections)."""
        return dict(self.extra) | {"statusCode": self.code, "message": self.message, "fields": self.fields}


def not_found() -> SfError:
    return SfError(404, "NOT_FOUND", "The requested resource does not exist")


@dataclass(frozen=True)
class Change:
    """A committed create or update, for outbound messaging."""

    sobject: str
    record_id: str
    created: bool


def format_datetime(value: datetime) -> str:
    """Salesforce's JSON datetime format: ``2026-11-23T08:00:00.000+0000``."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"


def value_out(fdef: FieldDef, value: Any) -> Any:
    """A stored value as the REST API renders it."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, date):
        return value.isoformat()
    if fdef.type in ("currency", "percent", "double"):
        return float(value)
    if fdef.type == "int":
        return int(value)
    return value


def _finish_event(record: dict[str, Any], written: set[str]) -> None:
    """Event times as the API keeps them: start, end and duration agree; ActivityDate follows start.

    Object Reference, "Event": ActivityDateTime/StartDateTime are required unless IsAllDayEvent;
    DurationInMinutes or EndDateTime is required, the other is derived.
    """
    start = record.get("StartDateTime")
    if start is None:
        missing = "ActivityDate" if record.get("IsAllDayEvent") else "StartDateTime"
        raise SfError(400, "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{missing}]", [missing])
    end, duration = record.get("EndDateTime"), record.get("DurationInMinutes")
    if end is not None and ("EndDateTime" in written or duration is None):
        if end < start:
            raise SfError(
                400,
                "FIELD_INTEGRITY_EXCEPTION",
                "End Date Time: End time must be after start time",
                ["EndDateTime"],
            )
        record["DurationInMinutes"] = float((end - start).total_seconds() // 60)
    elif duration is not None:
        record["EndDateTime"] = start + timedelta(minutes=float(duration))
    else:
        raise SfError(
            400,
            "REQUIRED_FIELD_MISSING",
            "Required fields are missing: [DurationInMinutes]",
            ["DurationInMinutes"],
        )
    record["ActivityDateTime"] = start
    record["ActivityDate"] = start.date()


def _parse_iso_datetime(text: str) -> datetime:
    cleaned = text.strip().replace("Z", "+00:00")
    if re.search(r"[+-]\d{4}$", cleaned):
        cleaned = cleaned[:-2] + ":" + cleaned[-2:]
    parsed = datetime.fromisoformat(cleaned)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


class Store:
    """Records of every object, keyed by 18-character ID, plus unique-field indexes."""

    def __init__(self, clock: SimClock, schema: dict[str, ObjectDef] | None = None) -> None:
        self.clock = clock
        self.schema = schema or build_schema()
        self.lock = threading.RLock()
        self.tables: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in self.schema}
        self._by_prefix = {o.key_prefix: o.name for o in self.schema.values()}
        self._seq = 0
        self._unique: dict[tuple[str, str], dict[str, str]] = {
            (o.name, f.name): {} for o in self.schema.values() for f in o.fields.values() if f.unique
        }
        self._depth = 0
        self._journal: list[tuple[str, str, dict[str, Any] | None]] = []
        self._pending: list[Change] = []
        self.listeners: list[Callable[[list[Change]], None]] = []
        self.lookups = EqualityLookups()
        self.duplicates = DuplicateChecker()
        # Case-folded values of the fields duplicate matching compares -> live record ids.
        self._match_index: dict[tuple[str, str], dict[str, set[str]]] = {
            key: {} for key in self.duplicates.indexed_fields() if key[0] in self.schema
        }
        self.history_tracking: dict[str, set[str]] = {
            "Lead": set(LEAD_TRACKED),
            "Account": set(ACCOUNT_TRACKED),
            "Opportunity": set(OPPORTUNITY_FIELD_TRACKED),
        }
        self._field_definitions: dict[tuple[str, str], str] = {}  # (object, field) -> FieldDefinition Id
        self._build_setup_rows()
        if "User" in self.schema:
            self._seed_user(API_USER_ID, "Integration", "User", "integration")
            self._seed_user(SALES_USER_ID, "Sales", "Operations", "salesops")

    # ------------------------------------------------------------------------------ lookup helpers

    def object(self, name: str) -> ObjectDef:
        """The object named ``name`` (case-insensitive), or 404 NOT_FOUND."""
        obj = self.schema.get(name) or next(
            (o for n, o in self.schema.items() if n.lower() == name.lower()), None
        )
        if obj is None:
            raise not_found()
        return obj

    def type_of(self, record_id: str) -> str | None:
        """The object a record ID belongs to, from its key prefix."""
        return self._by_prefix.get(record_id[:3])

    def find(self, sobject: str, record_id: str) -> dict[str, Any] | None:
        """The stored record (deleted or not) or None."""
        full = ids.normalize(record_id)
        return self.tables[sobject].get(full) if full else None

    def live(self, sobject: str, record_id: str) -> dict[str, Any]:
        """An existing, undeleted record, or the API's 404 error."""
        record = self.find(sobject, record_id)
        if record is None:
            raise not_found()
        if record["IsDeleted"]:
            raise SfError(404, "ENTITY_IS_DELETED", "entity is deleted", always_fields=True)
        return record

    def by_external_id(self, sobject: str, field_name: str, value: str) -> list[dict[str, Any]]:
        """Live records whose ``field_name`` equals ``value`` (unique fields case-insensitively)."""
        index = self._unique.get((sobject, field_name))
        if index is not None:
            rid = index.get(str(value).casefold())
            return [self.tables[sobject][rid]] if rid else []
        return [r for r in self.tables[sobject].values() if not r["IsDeleted"] and r.get(field_name) == value]

    # ------------------------------------------------------------------------------ transactions

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """Hold the lock; on leaving the outermost block, publish committed changes."""
        with self.lock:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0:
                    changes, self._pending, self._journal = self._pending, [], []
                    if changes:
                        for listener in self.listeners:
                            listener(changes)

    def savepoint(self) -> tuple[int, int]:
        """A point to roll back to (only inside :meth:`atomic`)."""
        return len(self._journal), len(self._pending)

    def rollback(self, point: tuple[int, int]) -> None:
        """Undo every write made since ``point``."""
        journal_len, pending_len = point
        while len(self._journal) > journal_len:
            sobject, rid, old = self._journal.pop()
            current = self.tables[sobject].get(rid)
            self.lookups.changed(sobject)
            self._index(sobject, current, remove=True)
            if old is None:
                self.tables[sobject].pop(rid, None)
            else:
                self.tables[sobject][rid] = old
                self._index(sobject, old, remove=False)
        del self._pending[pending_len:]

    def _put(self, sobject: str, record: dict[str, Any]) -> None:
        rid = record["Id"]
        old = self.tables[sobject].get(rid)
        self._journal.append((sobject, rid, old))
        self.lookups.changed(sobject)
        self._index(sobject, old, remove=True)
        self.tables[sobject][rid] = record
        self._index(sobject, record, remove=False)

    def _index(self, sobject: str, record: dict[str, Any] | None, remove: bool) -> None:
        if record is None or record["IsDeleted"]:
            return
        for (obj, fname), values in self._match_index.items():
            value = record.get(fname) if obj == sobject else None
            if value is None or str(value).strip() == "":
                continue
            key = str(value).strip().casefold()
            if remove:
                values.get(key, set()).discard(record["Id"])
            else:
                values.setdefault(key, set()).add(record["Id"])
        for (obj, fname), index in self._unique.items():
            value = record.get(fname) if obj == sobject else None
            if value is None:
                continue
            key = str(value).casefold()
            if remove:
                if index.get(key) == record["Id"]:
                    del index[key]
            else:
                index[key] = record["Id"]

    def _new_id(self, obj: ObjectDef) -> str:
        self._seq += 1
        return ids.make_id(obj.key_prefix, self._seq)

    # ------------------------------------------------------------------------------ validation

    def _coerce(self, obj: ObjectDef, fdef: FieldDef, value: Any) -> Any:
        if value is None:
            return None
        label = fdef.label or fdef.name
        try:
            if fdef.type == "boolean":
                if not isinstance(value, bool):
                    raise ValueError
                return value
            if fdef.type in ("currency", "percent", "double", "int"):
                if isinstance(value, bool):
                    raise ValueError
                return float(value)
            if fdef.type == "date":
                if isinstance(value, datetime):
                    return value.date()
                if isinstance(value, date):
                    return value
                return date.fromisoformat(str(value))
            if fdef.type == "datetime":
                return value if isinstance(value, datetime) else _parse_iso_datetime(str(value))
        except ValueError:
            raise SfError(
                400,
                "JSON_PARSER_ERROR",
                f"Cannot deserialize instance of {fdef.type} from VALUE_STRING value {value} or request may "
                "be missing a required field",
                [fdef.name],
            ) from None
        if isinstance(value, dict | list):
            raise SfError(
                400,
                "JSON_PARSER_ERROR",
                f"Cannot deserialize instance of {fdef.type} from START_OBJECT value for field {fdef.name}",
                [fdef.name],
            )
        text = (
            value if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else str(value)
        )
        if fdef.type == "reference":
            return self._check_reference(fdef, text)
        if fdef.length and len(text) > fdef.length:
            raise SfError(
                400,
                "STRING_TOO_LONG",
                f"{label}: data value too large: {text[:40]} (max length={fdef.length})",
                [fdef.name],
            )
        if fdef.type == "picklist" and fdef.restricted and text not in fdef.picklist:
            raise SfError(
                400,
                "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                f"{label}: bad value for restricted picklist field: {text}",
                [fdef.name],
            )
        if fdef.type == "email" and text and not _EMAIL_RE.match(text):
            raise SfError(
                400, "INVALID_EMAIL_ADDRESS", f"{label}: invalid email address: {text}", [fdef.name]
            )
        return text

    def _check_reference(self, fdef: FieldDef, text: str) -> str | None:
        if text == "":
            return None
        full = ids.normalize(text)
        target = self.type_of(full) if full else None
        allowed = fdef.reference_to
        known = [t for t in allowed if t in self.schema]
        if full is None or (known and target not in allowed) or (not known and target is not None):
            label = fdef.label or fdef.name
            raise SfError(400, "MALFORMED_ID", f"{label}: id value of incorrect type: {text}", [fdef.name])
        if target is not None:
            record = self.tables[target].get(full)
            if record is None or record["IsDeleted"]:
                raise SfError(400, "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [fdef.name])
        return full

    def _apply(
        self, obj: ObjectDef, record: dict[str, Any], values: dict[str, Any], creating: bool, trusted: bool
    ) -> set[str]:
        """Validate and write ``values`` into ``record``; return the canonical names written."""
        written: set[str] = set()
        unknown = [k for k in values if obj.field_ci(k) is None and k != "attributes"]
        if unknown:
            raise SfError(
                400, "INVALID_FIELD", f"No such column '{unknown[0]}' on sobject of type {obj.name}"
            )
        for key, raw in values.items():
            if key == "attributes":
                continue
            fdef = obj.fields[obj.field_ci(key).name]  # type: ignore[union-attr]
            if fdef.name == "Id":
                continue
            if not trusted and not (fdef.createable if creating else fdef.updateable):
                raise SfError(
                    400,
                    "INVALID_FIELD_FOR_INSERT_UPDATE",
                    f"Unable to create/update fields: {fdef.name}. Please check the security settings of "
                    "this field and verify that it is read/write for your profile or permission set.",
                    [fdef.name],
                )
            record[fdef.name] = self._coerce(obj, fdef, raw)
            written.add(fdef.name)
        return written

    def _finish(self, obj: ObjectDef, record: dict[str, Any], written: set[str], creating: bool) -> None:
        """Defaults, derived fields, required and unique checks."""
        if creating:
            for fdef in obj.fields.values():
                if record.get(fdef.name) is None and fdef.default is not None:
                    record[fdef.name] = fdef.default
        if "LastName" in obj.fields:
            record["Name"] = " ".join(p for p in (record.get("FirstName"), record.get("LastName")) if p)
        if obj.name == "Event":
            _finish_event(record, written)
        if obj.name == "Opportunity":
            stage = STAGES_BY_NAME.get(record.get("StageName") or "")
            if stage is not None:
                record["IsClosed"], record["IsWon"] = stage.is_closed, stage.is_won
                if "StageName" in written and "Probability" not in written:
                    record["Probability"] = float(stage.probability)
        missing = [f.name for f in obj.fields.values() if f.required and record.get(f.name) in (None, "")]
        if missing:
            raise SfError(
                400, "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]", missing
            )
        for (sobject, fname), index in self._unique.items():
            value = record.get(fname) if sobject == obj.name else None
            if value is None:
                continue
            holder = index.get(str(value).casefold())
            if holder is not None and holder != record["Id"]:
                raise SfError(
                    400,
                    "DUPLICATE_VALUE",
                    f"duplicate value found: {fname} duplicates value on record with id: {holder}",
                    [],
                )

    def _check_duplicates(
        self, obj: ObjectDef, record: dict[str, Any], creating: bool, header: DuplicateHeader | None
    ) -> None:
        """Run the active duplicate rules (API saves only); raise DUPLICATES_DETECTED on a refusal."""
        if header is None:
            return
        result = self.duplicates.check(
            obj.name,
            record,
            creating,
            header,
            lambda sobject, fname, key: sorted(self._match_index.get((sobject, fname), {}).get(key, ())),
            self._live_or_none,
            lambda sobject, found, details: self._match_record(sobject, found, details, header.version),
        )
        if result is not None:
            raise SfError(
                400, "DUPLICATES_DETECTED", result["errorMessage"], [], extra={"duplicateResult": result}
            )

    def _live_or_none(self, sobject: str, record_id: str) -> dict[str, Any] | None:
        record = self.tables[sobject].get(record_id)
        return None if record is None or record["IsDeleted"] else record

    def _match_record(
        self, sobject: str, record: dict[str, Any], details: bool, version: str
    ) -> dict[str, Any]:
        if details:
            return self.serialize(self.schema[sobject], record, version)
        return {"attributes": self.attributes(sobject, record["Id"], version), "Id": record["Id"]}

    # ------------------------------------------------------------------------------ writes

    def create(
        self,
        sobject: str,
        values: dict[str, Any],
        user_id: str = API_USER_ID,
        trusted: bool = False,
        duplicates: DuplicateHeader | None = None,
        at: datetime | None = None,
    ) -> str:
        """Insert a record; return its ID. ``duplicates`` (API saves) runs the duplicate rules; ``at``:
        the save it belongs to (history rows carry their parent's save time, not a later tick)."""
        obj = self.object(sobject)
        if not obj.createable and not trusted:
            raise SfError(400, "INVALID_TYPE_FOR_OPERATION", f"entity type cannot be inserted: {obj.name}")
        with self.atomic():
            now = at or self.clock.now()
            record: dict[str, Any] = {name: None for name in obj.fields}
            record.update(
                Id=self._new_id(obj),
                IsDeleted=False,
                CreatedDate=now,
                CreatedById=user_id,
                LastModifiedDate=now,
                LastModifiedById=user_id,
                SystemModstamp=now,
            )
            for flag in ("IsConverted", "IsClosed", "IsWon", "IsPrimary"):
                if flag in obj.fields:
                    record[flag] = False
            if "OwnerId" in obj.fields:
                record["OwnerId"] = user_id
            written = self._apply(obj, record, values, creating=True, trusted=trusted)
            self._finish(obj, record, written, creating=True)
            self._check_duplicates(obj, record, True, duplicates)
            self._put(obj.name, record)
            self._track(obj, None, record, user_id)
            self._pending.append(Change(obj.name, record["Id"], True))
            return str(record["Id"])

    def update(
        self,
        sobject: str,
        record_id: str,
        values: dict[str, Any],
        user_id: str = API_USER_ID,
        trusted: bool = False,
        duplicates: DuplicateHeader | None = None,
    ) -> None:
        """Update fields of a live record. ``duplicates`` (API saves) runs the duplicate rules."""
        obj = self.object(sobject)
        with self.atomic():
            current = self.live(obj.name, record_id)
            if obj.read_only:
                raise SfError(400, "INVALID_TYPE_FOR_OPERATION", f"entity type cannot be updated: {obj.name}")
            if obj.name == "Lead" and current["IsConverted"] and not trusted:
                raise SfError(400, "CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead", [])
            record = dict(current)
            written = self._apply(obj, record, values, creating=False, trusted=trusted)
            self._finish(obj, record, written, creating=False)
            self._check_duplicates(obj, record, False, duplicates)
            now = self.clock.now()
            record.update(LastModifiedDate=now, LastModifiedById=user_id, SystemModstamp=now)
            self._put(obj.name, record)
            self._track(obj, current, record, user_id)
            self._pending.append(Change(obj.name, record["Id"], False))

    def delete(self, sobject: str, record_id: str, user_id: str = API_USER_ID) -> None:
        """Move a record to the recycle bin (IsDeleted = true)."""
        obj = self.object(sobject)
        with self.atomic():
            current = self.live(obj.name, record_id)
            if obj.read_only:
                raise SfError(400, "INVALID_TYPE_FOR_OPERATION", f"entity type cannot be deleted: {obj.name}")
            now = self.clock.now()
            record = dict(
                current, IsDeleted=True, LastModifiedDate=now, LastModifiedById=user_id, SystemModstamp=now
            )
            self._put(obj.name, record)

    def upsert(
        self,
        sobject: str,
        field_name: str,
        value: str,
        values: dict[str, Any],
        user_id: str = API_USER_ID,
        duplicates: DuplicateHeader | None = None,
    ) -> tuple[str, bool]:
        """Create or update by an External ID field; return (id, created)."""
        obj = self.object(sobject)
        fdef = obj.field_ci(field_name)
        if fdef is None or not (fdef.external_id or fdef.name == "Id"):
            raise SfError(404, "NOT_FOUND", "The requested resource does not exist")
        body = {k: v for k, v in values.items() if k != "attributes"}
        given = next((v for k, v in body.items() if k.lower() == fdef.name.lower()), None)
        if given is not None and str(given).casefold() != str(value).casefold():
            raise SfError(
                400,
                "INVALID_FIELD",
                f"{fdef.name} specified in both the URL and the request body with different values",
                [fdef.name],
            )
        with self.atomic():
            matches = self.by_external_id(obj.name, fdef.name, value)
            if len(matches) > 1:
                raise SfError(
                    300,
                    "MULTIPLE_CHOICES",
                    "more than one record found for external id field",
                    [m["Id"] for m in matches],
                )
            if matches:
                body.pop(fdef.name, None)
                self.update(obj.name, matches[0]["Id"], body, user_id, duplicates=duplicates)
                return str(matches[0]["Id"]), False
            body[fdef.name] = value
            return self.create(obj.name, body, user_id, duplicates=duplicates), True

    def convert_lead(
        self,
        lead_id: str,
        converted_status: str,
        opportunity_name: str | None,
        create_opportunity: bool,
        user_id: str,
    ) -> dict[str, str | None]:
        """Salesforce's convertLead: Account, Contact, optional Opportunity + primary contact role."""
        with self.atomic():
            point = self.savepoint()
            try:
                lead = self.live("Lead", lead_id)
                if lead["IsConverted"]:
                    raise SfError(400, "CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead", [])
                account_id = self.create("Account", {"Name": lead["Company"]}, user_id)
                contact_id = self.create(
                    "Contact",
                    {
                        "FirstName": lead["FirstName"],
                        "LastName": lead["LastName"],
                        "Email": lead["Email"],
                        "Phone": lead["Phone"],
                        "Title": lead["Title"],
                        "LeadSource": lead["LeadSource"],
                        "AccountId": account_id,
                        "Closedloop_Id__c": lead["Closedloop_Id__c"],
                    },
                    user_id,
                )
                opportunity_id: str | None = None
                if create_opportunity:
                    first_open = next(s for s in STAGES_BY_NAME.values() if not s.is_closed)
                    opportunity_id = self.create(
                        "Opportunity",
                        {
                            "Name": opportunity_name or f"{lead['Company']}-",
                            "AccountId": account_id,
                            "StageName": first_open.name,
                            "LeadSource": lead["LeadSource"],
                            "CloseDate": self.clock.now().date(),
                        },
                        user_id,
                    )
                    self.create(
                        "OpportunityContactRole",
                        {
                            "OpportunityId": opportunity_id,
                            "ContactId": contact_id,
                            "IsPrimary": True,
                        },
                        user_id,
                    )
                self.update(
                    "Lead",
                    lead["Id"],
                    {
                        "Status": converted_status,
                        "IsConverted": True,
                        "ConvertedDate": self.clock.now().date(),
                        "ConvertedAccountId": account_id,
                        "ConvertedContactId": contact_id,
                        "ConvertedOpportunityId": opportunity_id,
                    },
                    user_id,
                    trusted=True,
                )
            except Exception:
                self.rollback(point)
                raise
            return {
                "accountId": account_id,
                "contactId": contact_id,
                "opportunityId": opportunity_id,
                "leadId": str(lead["Id"]),
            }

    def _track(self, obj: ObjectDef, old: dict[str, Any] | None, new: dict[str, Any], user_id: str) -> None:
        """Write field history rows for tracked fields, and OpportunityHistory stage snapshots."""
        if obj.name in HISTORY_OBJECTS:
            history, parent = HISTORY_OBJECTS[obj.name]
            rows: list[tuple[str, Any, Any]] = []
            if old is None:
                rows.append(("created", None, None))
            else:
                tracked = [f for f in obj.fields if f in self.history_tracking[obj.name]]
                rows.extend((f, old.get(f), new.get(f)) for f in tracked if old.get(f) != new.get(f))
                if obj.name == "Lead" and new["IsConverted"] and not old["IsConverted"]:
                    rows.append(("leadConverted", None, None))
            for fname, before, after in rows:
                self.create(
                    history,
                    {parent: new["Id"], "Field": fname, "OldValue": before, "NewValue": after},
                    user_id,
                    trusted=True,
                    at=new["SystemModstamp"],
                )
        if obj.name == "Opportunity" and (
            old is None or any(old.get(f) != new.get(f) for f in OPPORTUNITY_TRACKED)
        ):
            self.create(
                "OpportunityHistory",
                {f: new.get(f) for f in OPPORTUNITY_TRACKED} | {"OpportunityId": new["Id"]},
                user_id,
                trusted=True,
                at=new["SystemModstamp"],
            )

    # ------------------------------------------------------------------------------ setup

    def set_history_tracking(self, sobject: str, field_name: str, tracked: bool) -> None:
        """Switch field history tracking of one field on or off, as Setup > Set History Tracking does."""
        obj = self.object(sobject)
        if obj.name not in self.history_tracking:
            raise ValueError(f"field history tracking is not available for {obj.name}")
        fdef = obj.field_ci(field_name)
        if fdef is None or not fdef.updateable:
            raise ValueError(f"{obj.name}.{field_name} cannot be history-tracked")
        with self.lock:
            fields = self.history_tracking[obj.name]
            if tracked and fdef.name not in fields and len(fields) >= MAX_TRACKED_FIELDS:
                raise ValueError(f"{obj.name} already tracks the maximum of {MAX_TRACKED_FIELDS} fields")
            (fields.add if tracked else fields.discard)(fdef.name)
            row = self.tables["FieldDefinition"][self._field_definitions[(obj.name, fdef.name)]]
            row["IsFieldHistoryTracked"] = tracked
            self.lookups.changed("FieldDefinition")

    def _seed_user(self, user_id: str, first: str, last: str, alias: str) -> None:
        """The users every sandbox org has: the API integration user and the sales team's user."""
        now = self.clock.now()
        record: dict[str, Any] = {name: None for name in self.schema["User"].fields}
        record.update(
            Id=user_id,
            IsDeleted=False,
            CreatedDate=now,
            CreatedById=API_USER_ID,
            LastModifiedDate=now,
            LastModifiedById=API_USER_ID,
            SystemModstamp=now,
            Username=f"{alias}@sandbox.example.com",
            FirstName=first,
            LastName=last,
            Name=f"{first} {last}",
            Email=f"{alias}@sandbox.example.com",
            Alias=alias[:8],
            IsActive=True,
        )
        self.tables["User"][user_id] = record
        self._index("User", record, remove=False)

    def _build_setup_rows(self) -> None:
        """EntityDefinition and FieldDefinition rows describing the org's objects and fields."""
        entity_ids: dict[str, str] = {}
        for seq, obj in enumerate((o for o in self.schema.values() if not o.setup), start=1):
            rid = ids.make_id(self.schema["EntityDefinition"].key_prefix, seq)
            entity_ids[obj.name] = rid
            self.tables["EntityDefinition"][rid] = {
                "Id": rid,
                "IsDeleted": False,
                "DurableId": obj.name,
                "QualifiedApiName": obj.name,
                "DeveloperName": obj.name.removesuffix("__c"),
                "Label": obj.name,
            }
        seq = 0
        for obj in self.schema.values():
            if obj.setup:
                continue
            for fdef in obj.fields.values():
                seq += 1
                rid = ids.make_id(self.schema["FieldDefinition"].key_prefix, seq)
                self._field_definitions[(obj.name, fdef.name)] = rid
                self.tables["FieldDefinition"][rid] = {
                    "Id": rid,
                    "IsDeleted": False,
                    "DurableId": f"{obj.name}.{fdef.name}",
                    "QualifiedApiName": fdef.name,
                    "DeveloperName": fdef.name.removesuffix("__c"),
                    "Label": fdef.label or fdef.name,
                    "DataType": fdef.type,
                    "EntityDefinitionId": entity_ids[obj.name],
                    "IsFieldHistoryTracked": fdef.name in self.history_tracking.get(obj.name, ()),
                }

    # ------------------------------------------------------------------------------ reads

    def serialize(
        self, obj: ObjectDef, record: dict[str, Any], version: str, refs: list[FieldRef] | None = None
    ) -> dict[str, Any]:
        """A record as the REST API returns it, with ``attributes``; ``refs`` selects (related) fields."""
        out: dict[str, Any] = {"attributes": self.attributes(obj.name, record["Id"], version)}
        if refs is None:
            for fdef in obj.fields.values():
                out[fdef.name] = value_out(fdef, record.get(fdef.name))
            return out
        for ref in refs:
            assert ref.target is not None
            node, current, rendered = out, record, True
            for hop in ref.hops:
                rel = hop.relationship_name or hop.name
                target_id = current.get(hop.name) if current is not None else None
                related = self._related(target_id)
                if related is None or target_id is None:
                    node.setdefault(rel, None)
                    rendered = False
                    break
                child = node.get(rel)
                if child is None:
                    child = {"attributes": self.attributes(self.type_of(target_id) or "", target_id, version)}
                    node[rel] = child
                node, current = child, related
            if rendered:
                node[ref.target.name] = value_out(ref.target, current.get(ref.target.name))
        return out

    @staticmethod
    def attributes(sobject: str, record_id: str, version: str) -> dict[str, str]:
        return {"type": sobject, "url": f"/services/data/v{version}/sobjects/{sobject}/{record_id}"}

    def _related(self, record_id: str | None) -> dict[str, Any] | None:
        if not record_id:
            return None
        sobject = self.type_of(record_id)
        if sobject is None:
            return None
        record = self.tables[sobject].get(record_id)
        return None if record is None or record["IsDeleted"] else record

    def _resolve(self, record: dict[str, Any], ref: FieldRef) -> Any:
        current: dict[str, Any] | None = record
        for hop in ref.hops:
            current = self._related(current.get(hop.name)) if current is not None else None
        if current is None or ref.target is None:
            return None
        return current.get(ref.target.name)

    def query(
        self, soql: str, include_deleted: bool, version: str, tooling: bool = False
    ) -> tuple[list[dict[str, Any]], int]:
        """Run SOQL; return (serialized records, totalSize). COUNT() returns no records.

        ``tooling`` (the Tooling API's query) sees only setup objects such as FieldDefinition.
        """
        parsed = parse(soql)
        with self.lock:
            schema = {n: o for n, o in self.schema.items() if o.setup} if tooling else self.schema
            obj = bind(parsed, schema)
            evaluator = Evaluator(self._resolve, self.clock.now())
            rows = [
                r
                for r in self.lookups.candidates(obj.name, self.tables[obj.name], parsed.where)
                if (include_deleted or not r["IsDeleted"]) and evaluator.matches(parsed.where, r)
            ]
            if parsed.order:
                rows = evaluator.order(rows, parsed.order)
            start = parsed.offset or 0
            end = start + parsed.limit if parsed.limit is not None else None
            rows = rows[start:end]
            if parsed.count:
                return [], len(rows)
            return [self.serialize(obj, r, version, parsed.fields) for r in rows], len(rows)

    def snapshot(self, sobject: str, record_id: str) -> dict[str, Any] | None:
        """A deep copy of a stored record (typed values), or None."""
        with self.lock:
            record = self.find(sobject, record_id)
            return copy.deepcopy(record) if record is not None else None
