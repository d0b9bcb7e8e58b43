"""The one HTTP edge to HubSpot: every call goes through hubspot-api-client, rate-limited and retried."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from hubspot import HubSpot
from hubspot.crm.associations.v4 import (
    BatchInputPublicFetchAssociationsBatchRequest,
    PublicFetchAssociationsBatchRequest,
)
from hubspot.crm.contacts import (
    BatchInputSimplePublicObjectBatchInput,
    BatchInputSimplePublicObjectBatchInputUpsert,
    BatchReadInputSimplePublicObjectId,
    Filter,
    FilterGroup,
    PublicObjectSearchRequest,
    SimplePublicObjectBatchInput,
    SimplePublicObjectBatchInputUpsert,
    SimplePublicObjectId,
)
from hubspot.crm.objects.tasks import (
    AssociationSpec,
    PublicAssociationsForObject,
    PublicObjectId,
    SimplePublicObjectInputForCreate,
)
from hubspot.crm.properties import PropertyCreate, PropertyGroupCreate

from sync.connectors.errors import (
    PermanentError,
    RecordError,
    RetryPolicy,
    TransientError,
    call_with_retries,
    classify_hubspot,
)
from sync.connectors.ratelimit import WindowLimiter
from sync.timeutil import parse_timestamp, to_epoch_ms

T = TypeVar("T")

BATCH_LIMIT = 100  # HubSpot CRM v3 batch endpoints take at most 100 inputs.
SEARCH_PAGE = 200  # search returns at most 200 per page ...
LIST_PAGE = 100  # the list API (GET /crm/v3/objects/contacts) returns at most 100 per page.
HISTORY_BATCH = 50  # reads with propertiesWithHistory return at most 50 records per call.
ASSOCIATION_BATCH = 1_000  # associations v4 batch read takes at most 1,000 ids.
# The modification-time property each object's change feed searches on.
MODIFIED_PROPERTY = {"contacts": "lastmodifieddate", "deals": "hs_lastmodifieddate"}
REQUEST_TIMEOUT = 30.0
# HubSpot's default lifecycle stages in order; Closedloop only ever moves a contact forward along them.
LIFECYCLE_ORDER = (
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
    "evangelist",
)


OWNERS_PAGE = 500  # the owners list's page size (its default is 100)


@dataclass(frozen=True)
class HubSpotContact:
    """A CRM record (contact or deal) as read from HubSpot: its ID, properties and modification time."""

    id: str
    properties: dict[str, Any]
    updated_at: datetime | None
    # propertiesWithHistory when asked for: name -> [{"value", "timestamp", ...}], newest first
    history: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


@dataclass(frozen=True)
class PropertySpec:
    """A contact property Closedloop needs in HubSpot."""

    name: str
    label: str
    type: str = "string"
    field_type: str = "text"
    unique: bool = False


Row = tuple[str, dict[str, Any]]


def _isolating(
    chunk: Sequence[Row], send: Callable[[Sequence[Row]], dict[str, Any]]
) -> Iterator[tuple[dict[str, Any] | None, list[RecordError]]]:
    """Send a batch; when HubSpot refuses all of it for invalid input, halve it until each bad row stands alone.

    HubSpot validates a batch as a whole (one invalid email fails all 100 inputs with a 400), so a
    bad record would otherwise hold back every other record of its batch. Costs about two calls per
    bad record and halving step, and only when a batch is refused.
    """
    try:
        yield send(chunk), []
    except PermanentError as exc:
        if exc.category != "validation":
            raise
        if len(chunk) == 1:
            key = chunk[0][0]
            yield None, [RecordError(key, exc.code or "VALIDATION_ERROR", exc.message, exc.category)]
            return
        middle = len(chunk) // 2
        yield from _isolating(chunk[:middle], send)
        yield from _isolating(chunk[middle:], send)


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most ``size`` items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


class HubSpotConnector:
    """Reads and writes HubSpot contacts in the largest batches the API allows."""

    def __init__(
        self,
        base_url: str,
        access_token: str,
        limiter: WindowLimiter,
        policy: RetryPolicy,
        on_call: Callable[[str, str], None] | None = None,
        search_limiter: WindowLimiter | None = None,
    ) -> None:
        self._client = HubSpot(access_token=access_token, host=base_url.rstrip("/"))
        self._limiter = limiter
        # Search has its own limit (5 requests/s per account) on top of the general window.
        self._search_limiter = search_limiter
        self._policy = policy
        self._on_call = on_call

    def _call(self, endpoint: str, fn: Callable[[], T]) -> T:
        def attempt() -> T:
            if endpoint == "search" and self._search_limiter is not None:
                self._search_limiter.acquire()
            self._limiter.acquire()
            return fn()

        def record(status: str) -> None:
            if self._on_call is not None:
                self._on_call(endpoint, status)

        return call_with_retries(attempt, classify_hubspot, self._policy, f"hubspot {endpoint}", record)

    def _call_json(self, endpoint: str, fn: Callable[..., Any], **kwargs: Any) -> dict[str, Any]:
        """Call ``fn`` of hubspot-api-client and decode its JSON body ourselves.

        The client's model deserialisation parses every createdAt/updatedAt with dateutil, which
        cost more CPU than the rest of a sync; we need only ids, properties and updatedAt.
        Errors (non-2xx) are still raised by the client as ApiException.
        """

        def raw() -> dict[str, Any]:
            response = fn(**kwargs, _preload_content=False, _request_timeout=REQUEST_TIMEOUT)
            try:
                body = response.data
            finally:
                response.release_conn()
            try:
                decoded = json.loads(body) if body else {}
            except ValueError as exc:  # a 2xx that is not JSON: a proxy cut it short; try again
                raise TransientError("hubspot", "response body is not JSON", category="network") from exc
            return decoded if isinstance(decoded, dict) else {}

        return self._call(endpoint, raw)

    def _api(self, object_type: str) -> Any:
        """hubspot-api-client's API group of a CRM object (``contacts`` or ``deals``)."""
        if object_type not in MODIFIED_PROPERTY:
            raise ValueError(f"unsupported HubSpot object type {object_type!r}")
        return getattr(self._client.crm, object_type)

    def _search(self, request: PublicObjectSearchRequest, object_type: str = "contacts") -> dict[str, Any]:
        return self._call_json(
            "search", self._api(object_type).search_api.do_search, public_object_search_request=request
        )

    # -- reads -------------------------------------------------------------------------------------

    def changed_since(
        self, since: datetime | None, properties: Sequence[str], object_type: str = "contacts"
    ) -> Iterator[list[HubSpotContact]]:
        """Pages of records (contacts or deals) modified at or after ``since``, oldest first (each once).

        Keyset paging: every page asks again for ``lastmodifieddate >= newest time read so far``.
        Search's ``after`` token is an offset into a result set sorted anew on every request, so a
        contact modified while we page would shift the others and push one past both pages, out of
        reach for good; a fresh lower bound per page cannot skip anything, and no query meets the
        10,000-result cap. Only a block of more than a page of contacts sharing one timestamp is
        paged by offset, within that timestamp.
        """
        modified = MODIFIED_PROPERTY[object_type]
        lower = since
        done: set[tuple[str, datetime | None]] = set()
        offset = 0  # into the contacts at exactly ``lower``, when they fill whole pages
        while True:
            filters = []
            if lower is not None:
                filters.append(Filter(property_name=modified, operator="GTE", value=str(to_epoch_ms(lower))))
            request = PublicObjectSearchRequest(
                filter_groups=[FilterGroup(filters=filters)] if filters else [],
                sorts=[{"propertyName": modified, "direction": "ASCENDING"}],
                properties=list(properties),
                limit=SEARCH_PAGE,
                after=str(offset) if offset else None,
            )
            page = self._search(request, object_type)
            contacts = [_contact(obj) for obj in page.get("results") or []]
            fresh = [c for c in contacts if (c.id, c.updated_at) not in done]
            done.update((c.id, c.updated_at) for c in fresh)
            if fresh:
                yield fresh
            if len(contacts) < SEARCH_PAGE or not _next_after(page):
                return
            newest = contacts[-1].updated_at
            if newest is not None and newest != lower:
                lower, offset = newest, 0
            else:  # a whole page at one timestamp: step through that timestamp by offset
                offset += len(contacts)

    def find_by_property(
        self, name: str, values: Sequence[str], properties: Sequence[str]
    ) -> dict[str, HubSpotContact]:
        """Contacts whose property ``name`` holds one of ``values`` (search, 100 values per call)."""
        found: dict[str, HubSpotContact] = {}
        for chunk in chunks(list(dict.fromkeys(values)), BATCH_LIMIT):
            request = PublicObjectSearchRequest(
                filter_groups=[
                    FilterGroup(filters=[Filter(property_name=name, operator="IN", values=list(chunk))])
                ],
                properties=list(properties),
                limit=SEARCH_PAGE,
            )
            for obj in self._search(request).get("results") or []:
                contact = _contact(obj)
                found[contact.id] = contact
        return found

    def list_page(
        self,
        after: str | None,
        properties: Sequence[str],
        limit: int = LIST_PAGE,
        object_type: str = "contacts",
    ) -> tuple[list[HubSpotContact], str | None]:
        """One page of ALL live records in ID order (the list API has no 10,000 cap) and the next token."""
        page = self._call_json(
            "list",
            self._api(object_type).basic_api.get_page,
            limit=min(limit, LIST_PAGE),
            after=after,
            properties=list(properties),
            archived=False,
        )
        return [_contact(obj) for obj in page.get("results") or []], _next_after(page)

    def owners_page(
        self, after: str | None, limit: int = OWNERS_PAGE
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of the portal's active owners (``GET /crm/v3/owners``) and the next token."""
        page = self._call_json(
            "owners", self._client.crm.owners.owners_api.get_page, limit=limit, after=after, archived=False
        )
        return list(page.get("results") or []), _next_after(page)

    def summary(self, object_type: str = "contacts") -> tuple[int, datetime | None]:
        """How many live records the portal holds and the newest modification time (one search call)."""
        modified = MODIFIED_PROPERTY[object_type]
        request = PublicObjectSearchRequest(
            filter_groups=[],
            sorts=[{"propertyName": modified, "direction": "DESCENDING"}],
            properties=[modified],
            limit=1,
        )
        page = self._search(request, object_type)
        results = page.get("results") or []
        newest = _contact(results[0]).updated_at if results else None
        return int(page.get("total") or 0), newest

    def read(
        self,
        ids: Sequence[str],
        properties: Sequence[str],
        object_type: str = "contacts",
        with_history: Sequence[str] = (),
        id_property: str | None = None,
    ) -> dict[str, HubSpotContact]:
        """Records by HubSpot ID, or by a unique ``id_property`` (missing or archived ones are absent).

        ``with_history`` properties come back newest first under ``HubSpotContact.history``.
        """
        found: dict[str, HubSpotContact] = {}
        size = HISTORY_BATCH if with_history else BATCH_LIMIT
        for chunk in chunks(list(dict.fromkeys(ids)), size):
            body = BatchReadInputSimplePublicObjectId(
                inputs=[SimplePublicObjectId(id=i) for i in chunk],
                properties=list(properties),
                properties_with_history=list(with_history),
                id_property=id_property,
            )
            result = self._call_json(
                "batch/read",
                self._api(object_type).batch_api.read,
                batch_read_input_simple_public_object_id=body,
                archived=False,
            )
            for obj in result.get("results") or []:
                contact = _contact(obj)
                found[contact.id] = contact
        return found

    # -- deals: pipelines and associations ---------------------------------------------------------

    def deal_pipelines(self) -> list[dict[str, Any]]:
        """Every deal pipeline with its stages (``id``, ``label``, ``metadata``) as the v3 API returns them."""
        body = self._call_json(
            "pipelines", self._client.crm.pipelines.pipelines_api.get_all, object_type="deals"
        )
        return [p for p in body.get("results") or [] if isinstance(p, dict)]

    def association_types(self, from_type: str, to_type: str) -> list[dict[str, Any]]:
        """The portal's association types (labels) from one object to another: ``typeId``, ``category``, ``label``."""
        body = self._call_json(
            "associations/labels",
            self._client.crm.associations.v4.schema.definitions_api.get_all,
            from_object_type=from_type,
            to_object_type=to_type,
        )
        return [t for t in body.get("results") or [] if isinstance(t, dict)]

    def associations(
        self, from_type: str, to_type: str, ids: Sequence[str]
    ) -> dict[str, dict[str, set[int]]]:
        """Per record of ``from_type``, its associated ``to_type`` records and their type IDs (v4 batch read).

        Records without associations are absent (HubSpot reports them as per-input errors).
        """
        out: dict[str, dict[str, set[int]]] = {}
        for chunk in chunks(list(dict.fromkeys(ids)), ASSOCIATION_BATCH):
            body = BatchInputPublicFetchAssociationsBatchRequest(
                inputs=[PublicFetchAssociationsBatchRequest(id=i) for i in chunk]
            )
            result = self._call_json(
                "associations/batch/read",
                self._client.crm.associations.v4.batch_api.get_page,
                from_object_type=from_type,
                to_object_type=to_type,
                batch_input_public_fetch_associations_batch_request=body,
            )
            for row in result.get("results") or []:
                linked = out.setdefault(str((row.get("from") or {}).get("id")), {})
                for to in row.get("to") or []:
                    types = {int(t["typeId"]) for t in to.get("associationTypes") or [] if "typeId" in t}
                    linked.setdefault(str(to.get("toObjectId")), set()).update(types)
        return out

    # -- writes ------------------------------------------------------------------------------------

    def update(self, updates: dict[str, dict[str, Any]], object_type: str = "contacts") -> list[RecordError]:
        """Update records by HubSpot ID, 100 per call. Returns per-record failures."""
        errors: list[RecordError] = []

        def send(chunk: Sequence[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
            body = BatchInputSimplePublicObjectBatchInput(
                inputs=[
                    SimplePublicObjectBatchInput(id=cid, properties=_strings(props)) for cid, props in chunk
                ]
            )
            return self._call_json(
                "batch/update",
                self._api(object_type).batch_api.update,
                batch_input_simple_public_object_batch_input=body,
            )

        for chunk in chunks(list(updates.items()), BATCH_LIMIT):
            for result, refused in _isolating(chunk, send):
                errors.extend(refused)
                if result is not None:
                    errors.extend(_batch_errors(result))
        return errors

    def upsert(
        self, id_property: str, rows: dict[str, dict[str, Any]]
    ) -> tuple[dict[str, str], list[RecordError]]:
        """Create-or-update contacts keyed by a unique property (the common ID), 100 per call.

        Returns (unique value → HubSpot ID, per-record failures). A retried upsert never duplicates.
        """
        ids: dict[str, str] = {}
        errors: list[RecordError] = []

        def send(chunk: Sequence[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
            body = BatchInputSimplePublicObjectBatchInputUpsert(
                inputs=[
                    SimplePublicObjectBatchInputUpsert(
                        id=key, id_property=id_property, properties=_strings(props)
                    )
                    for key, props in chunk
                ]
            )
            return self._call_json(
                "batch/upsert",
                self._client.crm.contacts.batch_api.upsert,
                batch_input_simple_public_object_batch_input_upsert=body,
            )

        for chunk in chunks(list(rows.items()), BATCH_LIMIT):
            for result, refused in _isolating(chunk, send):
                errors.extend(refused)
                if result is None:
                    continue
                for obj in result.get("results") or []:
                    value = (obj.get("properties") or {}).get(id_property)
                    if value:
                        ids[str(value)] = str(obj["id"])
                errors.extend(_batch_errors(result))
        return ids, errors

    def create_task(self, properties: dict[str, Any], contact_id: str, association_type_id: int) -> str:
        """Create a task associated with a contact (``association_type_id`` from the portal's labels)."""
        body = SimplePublicObjectInputForCreate(
            properties=_strings(properties),
            associations=[
                PublicAssociationsForObject(
                    to=PublicObjectId(id=contact_id),
                    types=[
                        AssociationSpec(
                            association_category="HUBSPOT_DEFINED", association_type_id=association_type_id
                        )
                    ],
                )
            ],
        )
        created = self._call_json(
            "tasks",
            self._client.crm.objects.tasks.basic_api.create,
            simple_public_object_input_for_create=body,
        )
        return str(created.get("id"))

    # -- properties --------------------------------------------------------------------------------

    def existing_properties(self, object_type: str = "contacts") -> dict[str, dict[str, Any]]:
        """Properties of an object (contacts by default) defined in the portal, by name."""
        result = self._call(
            "properties", lambda: self._client.crm.properties.core_api.get_all(object_type=object_type)
        )
        return {p.name: {"type": p.type, "unique": bool(p.has_unique_value)} for p in result.results or []}

    def ensure_group(self, name: str, label: str) -> None:
        """Create the property group if it does not exist."""
        groups = self._call(
            "properties/groups",
            lambda: self._client.crm.properties.groups_api.get_all(object_type="contacts"),
        )
        if any(g.name == name for g in groups.results or []):
            return
        body = PropertyGroupCreate(name=name, label=label, display_order=-1)
        self._call(
            "properties/groups",
            lambda: self._client.crm.properties.groups_api.create(
                object_type="contacts", property_group_create=body
            ),
        )

    def create_property(self, spec: PropertySpec, group: str) -> None:
        """Create one contact property in ``group``."""
        body = PropertyCreate(
            name=spec.name,
            label=spec.label,
            type=spec.type,
            field_type=spec.field_type,
            group_name=group,
            has_unique_value=spec.unique,
        )
        self._call(
            "properties",
            lambda: self._client.crm.properties.core_api.create(object_type="contacts", property_create=body),
        )


def _next_after(page: dict[str, Any]) -> str | None:
    """The paging token of the next page, if any."""
    after = ((page.get("paging") or {}).get("next") or {}).get("after")
    return str(after) if after else None


def _contact(obj: dict[str, Any]) -> HubSpotContact:
    props = dict(obj.get("properties") or {})
    updated = (
        parse_timestamp(obj.get("updatedAt"))
        or parse_timestamp(props.get("lastmodifieddate"))
        or parse_timestamp(props.get("hs_lastmodifieddate"))
    )
    history = obj.get("propertiesWithHistory") or {}
    return HubSpotContact(
        id=str(obj["id"]),
        properties=props,
        updated_at=updated,
        history={str(k): list(v or []) for k, v in history.items()} if isinstance(history, dict) else {},
    )


def _strings(props: dict[str, Any]) -> dict[str, str]:
    """HubSpot takes every property value as a string; None clears a property."""
    out: dict[str, str] = {}
    for key, value in props.items():
        if value is None:
            out[key] = ""
        elif isinstance(value, bool):
            out[key] = "true" if value else "false"
        else:
            out[key] = str(value)
    return out


def _batch_errors(result: dict[str, Any]) -> list[RecordError]:
    """Per-input failures of a 207 multi-status batch response."""
    errors: list[RecordError] = []
    for err in result.get("errors") or []:
        context = err.get("context") or {}
        keys = [v for values in context.values() for v in (values or [])] or ["?"]
        code = str(err.get("category", ""))
        category = "validation" if code == "VALIDATION_ERROR" else "rejected"
        for key in keys:
            errors.append(
                RecordError(key=str(key), code=code, message=str(err.get("message", "")), category=category)
            )
    return errors
