"""In-memory object stores for the HubSpot sandbox: records, property history, unique values.

:class:`ObjectStore` holds one CRM object type; :class:`ContactStore` and :class:`DealStore` add
what is particular to contacts (unique emails, lifecycle stage rules) and deals (pipelines and
stage-derived properties). Not thread-safe by themselves; :class:`~sandboxes.hubspot.HubSpotSandbox`
holds one lock around every call. Each write returns the :class:`ChangeEvent` list the webhook
queue consumes.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from typing import TYPE_CHECKING, Any, ClassVar

from sandboxes.common import SimClock
from sandboxes.hubspot_errors import HubSpotError, not_found, property_validation_error
from sandboxes.hubspot_index import SearchIndex
from sandboxes.hubspot_props import (
    PropertyDef,
    default_deal_groups,
    default_deal_properties,
    default_groups,
    default_properties,
    iso_ms,
    normalize_value,
    stage_properties,
)

if TYPE_CHECKING:
    from sandboxes.hubspot_pipelines import Pipelines

DEFAULT_PROPERTIES = ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname")
"""What GET/list/search return for contacts when no ``properties`` are asked for."""
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


CALCULATED = Source("CALCULATED", "", via_api=False)
"""HubSpot's own calculations (scores, stage dates): history sourceType ``CALCULATED``."""


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
class Record:
    id: str
    created_at: datetime
    updated_at: datetime
    values: dict[str, str] = field(default_factory=dict)
    history: dict[str, list[HistoryEntry]] = field(default_factory=dict)  # oldest first
    archived: bool = False
    archived_at: datetime | None = None


Contact = Record
Deal = Record


@dataclass
class ChangeEvent:
    """Something webhooks may report: creation, propertyChange, deletion, merge or associationChange."""

    kind: str
    object_id: str
    occurred_at: datetime
    source: Source
    property_name: str | None = None
    property_value: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    object_type: str = "contact"


class ObjectStore:
    """Records of one object type plus their property definitions."""

    object_type: ClassVar[str] = "objects"  # the API path segment
    singular: ClassVar[str] = "object"  # webhook subscription prefix
    type_id: ClassVar[str] = "0-0"
    default_render: ClassVar[tuple[str, ...]] = ("createdate", "hs_object_id")
    always: ClassVar[tuple[str, ...]] = ("createdate", "hs_object_id")
    modified_property: ClassVar[str] = "hs_lastmodifieddate"
    query_properties: ClassVar[tuple[str, ...]] = ("hs_object_id",)
    first_id: ClassVar[int] = 1001

    def __init__(
        self,
        clock: SimClock,
        portal_id: int,
        properties: dict[str, PropertyDef],
        groups: list[dict[str, Any]],
        index: SearchIndex | None = None,
    ) -> None:
        self.clock = clock
        self.portal_id = portal_id
        self.properties = properties
        self.groups: dict[str, dict[str, Any]] = {g["name"]: g for g in groups}
        self.records: dict[str, Record] = {}
        self.redirects: dict[str, str] = {}  # merged-away id -> surviving id
        self._unique: dict[str, dict[str, str]] = {}
        self._next_id = self.first_id
        self._ids: list[int] = []  # every id ever created, ascending (ids are issued in order)
        self.index = index or SearchIndex()

    # ----- properties -------------------------------------------------------------------------

    def unique_properties(self) -> set[str]:
        """Properties usable as ``idProperty``: every ``hasUniqueValue`` property."""
        return set(self._unique) | {p.name for p in self.properties.values() if p.has_unique_value}

    def add_property(self, prop: PropertyDef) -> None:
        self.properties[prop.name] = prop
        if prop.has_unique_value:
            self._unique.setdefault(prop.name, {})

    # ----- lookups ----------------------------------------------------------------------------

    def resolve(self, key: str, id_property: str | None = None, archived: bool = False) -> Record | None:
        """Find a record by id (following merges) or by a unique property value."""
        if id_property and id_property != "hs_object_id":
            if id_property not in self.unique_properties():
                raise HubSpotError(
                    400, f"{id_property} is not a unique property and can't be used as idProperty"
                )
            prop = self.properties[id_property]
            value, _ = normalize_value(prop, key)
            rid = self._unique.get(id_property, {}).get(value or "")
            return self.records.get(rid) if rid else None
        rid = self.redirects.get(key, key)
        record = self.records.get(rid)
        if record is None or record.archived != archived:
            return None
        return record

    def require(self, key: str, id_property: str | None = None) -> Record:
        record = self.resolve(key, id_property)
        if record is None:
            raise not_found()
        return record

    def page(self, after: int, limit: int, archived: bool) -> tuple[list[Record], bool]:
        """Up to ``limit`` records with an id above ``after``, in id order, and whether more follow.

        A bisect over the ordered ids keeps each page's cost independent of the portal's size, so a
        backfill of a million contacts is limited by the client, not by this sandbox.
        """
        found: list[Record] = []
        for rid in islice(self._ids, bisect_right(self._ids, after), None):
            record = self.records[str(rid)]
            if record.archived != archived:
                continue
            if len(found) == limit:
                return found, True
            found.append(record)
        return found, False

    def live(self) -> list[Record]:
        """Non-archived records in id order."""
        return sorted((r for r in self.records.values() if not r.archived), key=lambda r: int(r.id))

    def searchable(self) -> list[Record]:
        """What search sees now: live records, or the index's (possibly older) copies of them."""
        return list(self.index.searchable(self.live))

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
            if source.via_api and prop.read_only_value:
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
        """Raise 409 if a unique value already belongs to another live record."""
        for name, value in values.items():
            owner = self._unique.get(name, {}).get(value or "") if value else None
            if owner is not None and owner != exclude_id:
                raise self._conflict(name, value or "", owner)

    def _conflict(self, name: str, value: str, owner: str) -> HubSpotError:
        return HubSpotError(
            409,
            f"A {self.singular} with the value '{value}' for unique property '{name}' already exists. "
            f"Existing ID: {owner}",
            "CONFLICT",
        )

    # ----- writes -----------------------------------------------------------------------------

    def create(self, values: dict[str, str | None], source: Source) -> tuple[Record, list[ChangeEvent]]:
        """Create a record from validated values."""
        self.check_unique(values)
        values = self._prepare_create(values)
        now = self.clock.now()
        rid = str(self._next_id)
        self._next_id += 1
        self._ids.append(int(rid))
        record = Record(id=rid, created_at=now, updated_at=now)
        self.records[rid] = record
        events = [self._event("creation", rid, now, source)]
        initial: dict[str, str | None] = {"hs_object_id": rid, "createdate": iso_ms(now)}
        initial.update({k: v for k, v in values.items() if v is not None})
        events += self._apply(record, initial, source, now, guard=False)
        return record, events

    def update(self, record: Record, values: dict[str, str | None], source: Source) -> list[ChangeEvent]:
        """Apply validated values to an existing record."""
        self.check_unique(values, exclude_id=record.id)
        return self._apply(record, values, source, self.clock.now(), guard=source.via_api)

    def archive(self, record: Record, source: Source) -> list[ChangeEvent]:
        """Archive (the API's DELETE) a record and release its unique values."""
        now = self.clock.now()
        record.archived = True
        record.archived_at = now
        record.updated_at = now
        self._unindex(record)
        self.index.changed(record)
        return [self._event("deletion", record.id, now, source)]

    def merge(self, primary: Record, secondary: Record, source: Source) -> list[ChangeEvent]:
        """Fold ``secondary`` into ``primary``: primary's values win, blanks are filled from secondary."""
        now = self.clock.now()
        moved = {
            k: v
            for k, v in secondary.values.items()
            if k not in primary.values
            and k not in self.always
            and not (k in self.properties and self.properties[k].read_only_value)
        }
        self._unindex(secondary)
        secondary.archived = True
        secondary.archived_at = now
        self.index.changed(secondary)
        self.redirects[secondary.id] = primary.id
        for old, new in list(self.redirects.items()):
            if new == secondary.id:
                self.redirects[old] = primary.id
        merged_ids = [i for i in primary.values.get("hs_merged_object_ids", "").split(";") if i]
        merged_ids.append(secondary.id)
        moved["hs_merged_object_ids"] = ";".join(merged_ids)
        events = self._apply(primary, dict(moved), source, now, guard=False)
        event = self._event("merge", primary.id, now, source)
        event.extra = {
            "mergedObjectIds": [int(primary.id), int(secondary.id)],
            "newObjectId": int(primary.id),
            "primaryObjectId": int(primary.id),
            "numberOfPropertiesMoved": len(moved) - 1,
        }
        events.append(event)
        return events

    def set_calculated(self, record: Record, values: dict[str, str | None]) -> list[ChangeEvent]:
        """HubSpot's own calculation writes ``values`` (e.g. a score): sourceType ``CALCULATED``."""
        return self._apply(record, values, CALCULATED, self.clock.now(), guard=False)

    # ----- type-specific hooks ----------------------------------------------------------------

    def _prepare_create(self, values: dict[str, str | None]) -> dict[str, str | None]:
        """Defaults and checks a new record needs before it exists."""
        return values

    def _derive(
        self, record: Record, values: dict[str, str | None], now: datetime, guard: bool
    ) -> dict[str, str | None]:
        """Adjust a write and add the properties HubSpot calculates from it."""
        return values

    # ----- internals --------------------------------------------------------------------------

    def _event(self, kind: str, rid: str, now: datetime, source: Source) -> ChangeEvent:
        return ChangeEvent(kind, rid, now, source, object_type=self.singular)

    def _apply(
        self,
        record: Record,
        values: dict[str, str | None],
        source: Source,
        now: datetime,
        guard: bool,
    ) -> list[ChangeEvent]:
        values = self._derive(record, dict(values), now, guard)
        events: list[ChangeEvent] = []
        for name, value in values.items():
            old = record.values.get(name)
            if value == old:
                continue
            if value is None:
                record.values.pop(name, None)
            else:
                record.values[name] = value
            self._reindex(record.id, name, old, value)
            prop = self.properties.get(name)
            # Read-only calculated properties are HubSpot's: a score or stage date is never the user's.
            by = source
            if prop is not None and prop.calculated and prop.read_only_value:
                by = Source(CALCULATED.change_source, source.source_id, via_api=False)
            record.history.setdefault(name, []).append(
                HistoryEntry(value or "", now, by.history_type, by.source_id)
            )
            events.append(
                ChangeEvent(
                    "propertyChange", record.id, now, by, name, value or "", object_type=self.singular
                )
            )
        if events:
            record.updated_at = now
            stamp = iso_ms(now)
            record.values[self.modified_property] = stamp
            record.history.setdefault(self.modified_property, []).append(
                HistoryEntry(stamp, now, "CALCULATED", source.source_id)
            )
            self.index.changed(record)
        return events

    def _reindex(self, rid: str, name: str, old: str | None, new: str | None) -> None:
        index = self._unique.get(name)
        if index is None:
            return
        if old is not None and index.get(old) == rid:
            del index[old]
        if new is not None:
            index[new] = rid

    def _unindex(self, record: Record) -> None:
        for name, index in self._unique.items():
            value = record.values.get(name)
            if value is not None and index.get(value) == record.id:
                del index[value]

    # ----- rendering --------------------------------------------------------------------------

    def render(
        self,
        record: Record,
        properties: list[str] | None = None,
        with_history: list[str] | None = None,
    ) -> dict[str, Any]:
        """A record as the v3 objects API returns it (``SimplePublicObject``)."""
        if properties:
            names = [p for p in properties if p in self.properties]
            names += [p for p in self.always if p not in names]
        else:
            names = list(self.default_render)
        body: dict[str, Any] = {
            "id": record.id,
            "properties": {n: record.values.get(n) for n in names},
            "createdAt": iso_ms(record.created_at),
            "updatedAt": iso_ms(record.updated_at),
            "archived": record.archived,
        }
        if record.archived and record.archived_at is not None:
            body["archivedAt"] = iso_ms(record.archived_at)
        if with_history:
            body["propertiesWithHistory"] = {
                n: [h.to_json() for h in reversed(record.history.get(n, []))]
                for n in with_history
                if n in self.properties
            }
        return body


class ContactStore(ObjectStore):
    """Contacts: unique emails, lifecycle stage moves forward only through the API, stage dates."""

    object_type = "contacts"
    singular = "contact"
    type_id = "0-1"
    default_render = DEFAULT_PROPERTIES
    always = ALWAYS_PROPERTIES
    modified_property = "lastmodifieddate"
    query_properties = ("email", "firstname", "lastname", "phone", "company", "hs_object_id")

    def __init__(self, clock: SimClock, portal_id: int, index: SearchIndex | None = None) -> None:
        super().__init__(clock, portal_id, default_properties(iso_ms(clock.now())), default_groups(), index)
        self._unique["email"] = {}
        self.legacy_stage_dates = True
        """Fill ``hs_lifecyclestage_<stage>_date`` besides ``hs_v2_date_entered_<stage>``."""

    @property
    def contacts(self) -> dict[str, Record]:
        return self.records

    def unique_properties(self) -> set[str]:
        return {"email"} | super().unique_properties()

    def _conflict(self, name: str, value: str, owner: str) -> HubSpotError:
        if name == "email":
            # https://developers.hubspot.com/docs/api/crm/contacts: duplicate emails are rejected.
            return HubSpotError(409, f"Contact already exists. Existing ID: {owner}", "CONFLICT")
        return HubSpotError(
            409,
            f"A contact with the value '{value}' for unique property '{name}' already exists. "
            f"Existing ID: {owner}",
            "CONFLICT",
        )

    def _derive(
        self, record: Record, values: dict[str, str | None], now: datetime, guard: bool
    ) -> dict[str, str | None]:
        if guard and not self._lifecycle_allowed(record, values.get("lifecyclestage")):
            # Through the API lifecyclestage only moves forward; an earlier stage is ignored
            # unless the value is cleared first (https://integrate.hubspot.com/t/update-lifecycle-stage-using-api/1333).
            values.pop("lifecyclestage")
        stage = values.get("lifecyclestage")
        previous = record.values.get("lifecyclestage")
        if stage and stage != previous:
            stamp = iso_ms(now)
            if self.legacy_stage_dates:
                values[f"hs_lifecyclestage_{stage}_date"] = stamp
            values[f"hs_v2_date_entered_{stage}"] = stamp
            if previous:
                values[f"hs_v2_date_exited_{previous}"] = stamp
        return values

    def _lifecycle_allowed(self, record: Record, new: str | None) -> bool:
        current = record.values.get("lifecyclestage")
        if not new or not current or new == current:
            return True
        order = [o["value"] for o in self.properties["lifecyclestage"].options]
        if new not in order or current not in order:
            return True
        return order.index(new) >= order.index(current)


class DealStore(ObjectStore):
    """Deals: a stage of one pipeline, with the closed/won flags and stage dates HubSpot derives."""

    object_type = "deals"
    singular = "deal"
    type_id = "0-3"
    default_render = (
        "amount",
        "closedate",
        "createdate",
        "dealname",
        "dealstage",
        "hs_lastmodifieddate",
        "hs_object_id",
        "pipeline",
    )
    always = ("createdate", "hs_lastmodifieddate", "hs_object_id")
    modified_property = "hs_lastmodifieddate"
    first_id = 5_000_001  # deal ids come from their own range, so a deal id never names a contact
    query_properties = ("dealname", "pipeline", "dealstage", "description", "dealtype", "hs_object_id")

    def __init__(
        self, clock: SimClock, portal_id: int, pipelines: Pipelines, index: SearchIndex | None = None
    ) -> None:
        super().__init__(
            clock, portal_id, default_deal_properties(iso_ms(clock.now())), default_deal_groups(), index
        )
        self.pipelines = pipelines
        self.sync_pipeline_properties()

    @property
    def deals(self) -> dict[str, Record]:
        return self.records

    def sync_pipeline_properties(self) -> None:
        """Options of ``pipeline`` and ``dealstage``, and the date properties of every stage."""
        created = iso_ms(self.clock.now())
        self.properties["pipeline"].options = [
            _option(p.id, p.label, i) for i, p in enumerate(self.pipelines.ordered())
        ]
        stages = self.pipelines.all_stages()
        self.properties["dealstage"].options = [_option(s.id, s.label, i) for i, (_, s) in enumerate(stages)]
        for i, (_, stage) in enumerate(stages):
            for prop in stage_properties(stage.id, stage.label, created, 1000 + i):
                self.properties.setdefault(prop.name, prop)

    def _prepare_create(self, values: dict[str, str | None]) -> dict[str, str | None]:
        values = dict(values)
        if not values.get("pipeline"):
            # One pipeline only: HubSpot fills in "default"
            # (https://developers.hubspot.com/docs/api/crm/pipelines, "Pipelines").
            values["pipeline"] = self.pipelines.default_id()
        if not values.get("dealstage"):
            raise property_validation_error(
                [("dealstage", "REQUIRED_PROPERTY", "dealstage is required to create a deal")], self.portal_id
            )
        return values

    def _derive(
        self, record: Record, values: dict[str, str | None], now: datetime, guard: bool
    ) -> dict[str, str | None]:
        pipeline_id = values.get("pipeline") or record.values.get("pipeline") or self.pipelines.default_id()
        stage_id = values.get("dealstage", record.values.get("dealstage"))
        if ("pipeline" in values or "dealstage" in values) and stage_id is not None:
            stage = self.pipelines.stage_of(pipeline_id, stage_id)
            if stage is None:
                raise property_validation_error(
                    [
                        (
                            "dealstage",
                            "INVALID_OPTION",
                            f"{stage_id} is not a valid deal stage of pipeline {pipeline_id}",
                        )
                    ],
                    self.portal_id,
                )
        previous = record.values.get("dealstage")
        if "dealstage" in values and stage_id and stage_id != previous:
            stamp = iso_ms(now)
            meta = self.pipelines.stage_of(pipeline_id, stage_id)
            assert meta is not None
            closed = meta.is_closed
            won = closed and meta.probability >= 1.0
            values.update(
                {
                    "hs_is_closed": str(closed).lower(),
                    "hs_is_closed_won": str(won).lower(),
                    "hs_is_closed_lost": str(closed and not won).lower(),
                    "hs_deal_stage_probability": _number(meta.probability),
                    f"hs_date_entered_{stage_id}": stamp,
                    f"hs_v2_date_entered_{stage_id}": stamp,
                }
            )
            if previous:
                values[f"hs_date_exited_{previous}"] = stamp
                values[f"hs_v2_date_exited_{previous}"] = stamp
            if closed and not (values.get("closedate") or record.values.get("closedate")):
                # Moving a deal to a closed stage sets an empty close date to that moment.
                values["closedate"] = stamp
        amount = values.get("amount", record.values.get("amount"))
        won_now = values.get("hs_is_closed_won", record.values.get("hs_is_closed_won")) == "true"
        closed_amount = amount if won_now and amount is not None else None
        if closed_amount != record.values.get("hs_closed_amount"):
            values["hs_closed_amount"] = closed_amount
        return values

    def set_associated_contacts(self, record: Record, count: int) -> list[ChangeEvent]:
        """Keep ``num_associated_contacts`` in step with the deal's associations."""
        return self.set_calculated(record, {"num_associated_contacts": str(count)})


def _option(value: str, label: str, order: int) -> dict[str, Any]:
    return {"label": label, "value": value, "description": "", "displayOrder": order, "hidden": False}


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
