"""In-memory contact store for the HubSpot sandbox: records, property history, unique values.

Not thread-safe by itself; :class:`~sandboxes.hubspot.HubSpotSandbox` holds one lock around
every call. Each write returns the :class:`ChangeEvent` list the webhook queue consumes.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from typing import Any

from sandboxes.common import SimClock
from sandboxes.hubspot_errors import HubSpotError, not_found, property_validation_error
from sandboxes.hubspot_props import (
    SYSTEM_PROPERTIES,
    PropertyDef,
    default_groups,
    default_properties,
    iso_ms,
    normalize_value,
)

DEFAULT_PROPERTIES = ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname")
"""What GET/list/search return when no ``properties`` are asked for."""
ALWAYS_PROPERTIES = ("createdate", "hs_object_id", "lastmodifieddate")


@dataclass(frozen=True)
class Source:
    """Who made a change: ``change_source`` as webhooks report it, plus history sourceType/sourceId."""

    change_source: str
    source_id: str
    via_api: bool

    @property
    def history_type(self) -> str:
        return self.change_source


@dataclass
class HistoryEntry:
    value: str
    timestamp: datetime
    source_type: str
    source_id: str

    def to_json(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "timestamp": iso_ms(self.timestamp),
            "sourceType": self.source_type,
            "sourceId": self.source_id,
        }


@dataclass
class Contact:
    id: str
    created_at: datetime
    updated_at: datetime
    values: dict[str, str] = field(default_factory=dict)
    history: dict[str, list[HistoryEntry]] = field(default_factory=dict)  # oldest first
    archived: bool = False
    archived_at: datetime | None = None


@dataclass
class ChangeEvent:
    """Something webhooks may report: creation, propertyChange, deletion or merge."""

    kind: str
    object_id: str
    occurred_at: datetime
    source: Source
    property_name: str | None = None
    property_value: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class ContactStore:
    """Contacts plus their property definitions."""

    def __init__(self, clock: SimClock, portal_id: int) -> None:
        self.clock = clock
        self.portal_id = portal_id
        created = iso_ms(clock.now())
        self.properties: dict[str, PropertyDef] = default_properties(created)
        self.groups: dict[str, dict[str, Any]] = {g["name"]: g for g in default_groups()}
        self.contacts: dict[str, Contact] = {}
        self.redirects: dict[str, str] = {}  # merged-away id -> surviving id
        self._unique: dict[str, dict[str, str]] = {"email": {}}
        self._next_id = 1001
        self._ids: list[int] = []  # every id ever created, ascending (ids are issued in order)

    # ----- properties -------------------------------------------------------------------------

    def unique_properties(self) -> set[str]:
        """Properties usable as ``idProperty``: email and every ``hasUniqueValue`` property."""
        return {"email"} | {p.name for p in self.properties.values() if p.has_unique_value}

    def add_property(self, prop: PropertyDef) -> None:
        self.properties[prop.name] = prop
        if prop.has_unique_value:
            self._unique.setdefault(prop.name, {})

    # ----- lookups ----------------------------------------------------------------------------

    def resolve(self, key: str, id_property: str | None = None, archived: bool = False) -> Contact | None:
        """Find a contact by id (following merges) or by a unique property value."""
        if id_property and id_property != "hs_object_id":
            if id_property not in self.unique_properties():
                raise HubSpotError(
                    400, f"{id_property} is not a unique property and can't be used as idProperty"
                )
            prop = self.properties[id_property]
            value, _ = normalize_value(prop, key)
            cid = self._unique.get(id_property, {}).get(value or "")
            return self.contacts.get(cid) if cid else None
        cid = self.redirects.get(key, key)
        contact = self.contacts.get(cid)
        if contact is None or contact.archived != archived:
            return None
        return contact

    def require(self, key: str, id_property: str | None = None) -> Contact:
        contact = self.resolve(key, id_property)
        if contact is None:
            raise not_found()
        return contact

    def page(self, after: int, limit: int, archived: bool) -> tuple[list[Contact], bool]:
        """Up to ``limit`` contacts with an id above ``after``, in id order, and whether more follow.

        A bisect over the ordered ids keeps each page's cost independent of the portal's size, so a
        backfill of a million contacts is limited by the client, not by this sandbox.
        """
        found: list[Contact] = []
        for cid in islice(self._ids, bisect_right(self._ids, after), None):
            contact = self.contacts[str(cid)]
            if contact.archived != archived:
                continue
            if len(found) == limit:
                return found, True
            found.append(contact)
        return found, False

    def live(self) -> list[Contact]:
        """Non-archived contacts in id order."""
        return sorted((c for c in self.contacts.values() if not c.archived), key=lambda c: int(c.id))

    # ----- validation -------------------------------------------------------------------------

    def validate(self, properties: dict[str, Any], source: Source) -> dict[str, str | None]:
        """Check names, read-only flags and values; return normalised values (``None`` = clear)."""
        if not isinstance(properties, dict):
            raise HubSpotError(400, "Invalid input JSON: properties must be an object")
        problems: list[tuple[str, str, str]] = []
        clean: dict[str, str | None] = {}
        for name, raw in properties.items():
            prop = self.properties.get(name)
            if prop is None or prop.archived:
                problems.append((name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist'))
                continue
            if source.via_api and (name in SYSTEM_PROPERTIES or prop.read_only_value):
                problems.append(
                    (name, "READ_ONLY_VALUE", f'"{name}" is a read only property; its value cannot be set.')
                )
                continue
            value, code = normalize_value(prop, raw)
            if code is not None:
                problems.append((name, code, f"{raw} was not a valid value for {name} ({prop.type})"))
                continue
            clean[name] = value
        if problems:
            raise property_validation_error(problems, self.portal_id)
        return clean

    def check_unique(self, values: dict[str, str | None], exclude_id: str | None = None) -> None:
        """Raise 409 if a unique value already belongs to another live contact."""
        for name, value in values.items():
            owner = self._unique.get(name, {}).get(value or "") if value else None
            if owner is not None and owner != exclude_id:
                if name == "email":
                    # https://developers.hubspot.com/docs/api/crm/contacts: duplicate emails are rejected.
                    raise HubSpotError(409, f"Contact already exists. Existing ID: {owner}", "CONFLICT")
                raise HubSpotError(
                    409,
                    f"A contact with the value '{value}' for unique property '{name}' already exists. "
                    f"Existing ID: {owner}",
                    "CONFLICT",
                )

    # ----- writes -----------------------------------------------------------------------------

    def create(self, values: dict[str, str | None], source: Source) -> tuple[Contact, list[ChangeEvent]]:
        """Create a contact from validated values."""
        self.check_unique(values)
        now = self.clock.now()
        cid = str(self._next_id)
        self._next_id += 1
        self._ids.append(int(cid))
        contact = Contact(id=cid, created_at=now, updated_at=now)
        self.contacts[cid] = contact
        events = [ChangeEvent("creation", cid, now, source)]
        initial: dict[str, str | None] = {"hs_object_id": cid, "createdate": iso_ms(now)}
        initial.update({k: v for k, v in values.items() if v is not None})
        events += self._apply(contact, initial, source, now, lifecycle_guard=False)
        return contact, events

    def update(self, contact: Contact, values: dict[str, str | None], source: Source) -> list[ChangeEvent]:
        """Apply validated values to an existing contact."""
        self.check_unique(values, exclude_id=contact.id)
        return self._apply(contact, values, source, self.clock.now(), lifecycle_guard=source.via_api)

    def archive(self, contact: Contact, source: Source) -> list[ChangeEvent]:
        """Archive (the API's DELETE) a contact and release its unique values."""
        now = self.clock.now()
        contact.archived = True
        contact.archived_at = now
        contact.updated_at = now
        self._unindex(contact)
        return [ChangeEvent("deletion", contact.id, now, source)]

    def merge(self, primary: Contact, secondary: Contact, source: Source) -> list[ChangeEvent]:
        """Fold ``secondary`` into ``primary``: primary's values win, blanks are filled from secondary."""
        now = self.clock.now()
        moved = {
            k: v
            for k, v in secondary.values.items()
            if k not in primary.values and k not in SYSTEM_PROPERTIES and k not in ALWAYS_PROPERTIES
        }
        self._unindex(secondary)
        secondary.archived = True
        secondary.archived_at = now
        self.redirects[secondary.id] = primary.id
        for old, new in list(self.redirects.items()):
            if new == secondary.id:
                self.redirects[old] = primary.id
        merged_ids = [i for i in primary.values.get("hs_merged_object_ids", "").split(";") if i]
        merged_ids.append(secondary.id)
        moved["hs_merged_object_ids"] = ";".join(merged_ids)
        events = self._apply(primary, dict(moved), source, now, lifecycle_guard=False)
        events.append(
            ChangeEvent(
                "merge",
                primary.id,
                now,
                source,
                extra={
                    "mergedObjectIds": [int(primary.id), int(secondary.id)],
                    "newObjectId": int(primary.id),
                    "primaryObjectId": int(primary.id),
                    "numberOfPropertiesMoved": len(moved) - 1,
                },
            )
        )
        return events

    def _apply(
        self,
        contact: Contact,
        values: dict[str, str | None],
        source: Source,
        now: datetime,
        lifecycle_guard: bool,
    ) -> list[ChangeEvent]:
        values = dict(values)
        if lifecycle_guard and not self._lifecycle_allowed(contact, values.get("lifecyclestage")):
            # Through the API lifecyclestage only moves forward; an earlier stage is ignored
            # unless the value is cleared first (https://integrate.hubspot.com/t/update-lifecycle-stage-using-api/1333).
            values.pop("lifecyclestage")
        stage = values.get("lifecyclestage")
        if stage and stage != contact.values.get("lifecyclestage"):
            values[f"hs_lifecyclestage_{stage}_date"] = iso_ms(now)
        events: list[ChangeEvent] = []
        for name, value in values.items():
            old = contact.values.get(name)
            if value == old:
                continue
            if value is None:
                contact.values.pop(name, None)
            else:
                contact.values[name] = value
            self._reindex(contact.id, name, old, value)
            history_source = "CALCULATED" if name.startswith("hs_lifecyclestage_") else source.history_type
            contact.history.setdefault(name, []).append(
                HistoryEntry(value or "", now, history_source, source.source_id)
            )
            events.append(ChangeEvent("propertyChange", contact.id, now, source, name, value or ""))
        if events:
            contact.updated_at = now
            stamp = iso_ms(now)
            contact.values["lastmodifieddate"] = stamp
            contact.history.setdefault("lastmodifieddate", []).append(
                HistoryEntry(stamp, now, "CALCULATED", source.source_id)
            )
        return events

    def _lifecycle_allowed(self, contact: Contact, new: str | None) -> bool:
        current = contact.values.get("lifecyclestage")
        if not new or not current or new == current:
            return True
        order = [o["value"] for o in self.properties["lifecyclestage"].options]
        if new not in order or current not in order:
            return True
        return order.index(new) >= order.index(current)

    def _reindex(self, cid: str, name: str, old: str | None, new: str | None) -> None:
        index = self._unique.get(name)
        if index is None:
            return
        if old is not None and index.get(old) == cid:
            del index[old]
        if new is not None:
            index[new] = cid

    def _unindex(self, contact: Contact) -> None:
        for name, index in self._unique.items():
            value = contact.values.get(name)
            if value is not None and index.get(value) == contact.id:
                del index[value]

    # ----- rendering --------------------------------------------------------------------------

    def render(
        self,
        contact: Contact,
        properties: list[str] | None = None,
        with_history: list[str] | None = None,
    ) -> dict[str, Any]:
        """A contact as the v3 objects API returns it (``SimplePublicObject``)."""
        if properties:
            names = [p for p in properties if p in self.properties]
            names += [p for p in ALWAYS_PROPERTIES if p not in names]
        else:
            names = list(DEFAULT_PROPERTIES)
        body: dict[str, Any] = {
            "id": contact.id,
            "properties": {n: contact.values.get(n) for n in names},
            "createdAt": iso_ms(contact.created_at),
            "updatedAt": iso_ms(contact.updated_at),
            "archived": contact.archived,
        }
        if contact.archived and contact.archived_at is not None:
            body["archivedAt"] = iso_ms(contact.archived_at)
        if with_history:
            body["propertiesWithHistory"] = {
                n: [h.to_json() for h in reversed(contact.history.get(n, []))]
                for n in with_history
                if n in self.properties
            }
        return body
