"""FastAPI routes of the HubSpot sandbox: CRM v3 objects (contacts and deals: basic, batch, search,
contact merge) and properties; pipelines and associations come from :mod:`hubspot_api_crm`.

Response shapes follow https://developers.hubspot.com/docs/api/crm/contacts,
https://developers.hubspot.com/docs/api/crm/deals and
https://developers.hubspot.com/docs/api/crm/properties; every error is a HubSpot error body.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from sandboxes.hubspot_api_crm import association_routes, pipeline_routes
from sandboxes.hubspot_errors import HubSpotError, not_found
from sandboxes.hubspot_owners import owner_routes
from sandboxes.hubspot_props import FIELD_TYPES, PropertyDef, iso_ms, validate_name
from sandboxes.hubspot_search import search
from sandboxes.hubspot_store import ObjectStore, Record, Source

if TYPE_CHECKING:
    from sandboxes.hubspot import HubSpotSandbox

MAX_BATCH_INPUTS = 100
MAX_LIST_LIMIT = 100


async def _json(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError as exc:
        raise HubSpotError(400, "Invalid input JSON on line 1: request body is not valid JSON") from exc
    if not isinstance(body, dict):
        raise HubSpotError(400, "Invalid input JSON: expected an object")
    return body


def _list_param(request: Request, name: str) -> list[str] | None:
    """A list query parameter, repeated (``a=1&a=2``) or comma-separated (``a=1,2``)."""
    values = [v for raw in request.query_params.getlist(name) for v in raw.split(",") if v]
    return values or None


def _bool_param(request: Request, name: str) -> bool:
    return request.query_params.get(name, "false").lower() == "true"


def _inputs(body: dict[str, Any]) -> list[Any]:
    inputs = body.get("inputs")
    if not isinstance(inputs, list):
        raise HubSpotError(400, "Invalid input JSON: inputs must be a list")
    if len(inputs) > MAX_BATCH_INPUTS:
        # Batch endpoints take at most 100 inputs
        # (https://developers.hubspot.com/docs/api/crm/contacts, "Limits").
        raise HubSpotError(
            400,
            f"Invalid input: batch size {len(inputs)} is too large; "
            f"at most {MAX_BATCH_INPUTS} inputs are allowed",
            "VALIDATION_ERROR",
            errors=[{"message": f"size must be between 0 and {MAX_BATCH_INPUTS}", "in": "inputs"}],
        )
    return inputs


def _batch_response(
    sandbox: HubSpotSandbox,
    results: list[dict[str, Any]],
    errors: list[dict[str, Any]],
    started: str,
    ok: int,
) -> JSONResponse:
    body: dict[str, Any] = {
        "status": "COMPLETE",
        "results": results,
        "startedAt": started,
        "completedAt": iso_ms(sandbox.clock.now()),
    }
    if errors:
        body["numErrors"] = len(errors)
        body["errors"] = errors
        return JSONResponse(body, status_code=207)
    return JSONResponse(body, status_code=ok)


def _missing_error(store: ObjectStore, ids: list[str], verb: str) -> dict[str, Any]:
    return {
        "status": "error",
        "category": "OBJECT_NOT_FOUND",
        "message": f"Could not {verb} some {store.singular.upper()} objects, they may be deleted or not "
        "exist. Check that ids are valid.",
        "context": {"ids": ids},
    }


def build_app(sandbox: HubSpotSandbox) -> FastAPI:
    """The sandbox's HTTP API."""
    app = FastAPI(title="HubSpot sandbox", openapi_url=None, docs_url=None, redoc_url=None)

    @app.exception_handler(HubSpotError)
    async def _hubspot_error(_request: Request, exc: HubSpotError) -> Response:
        return exc.response()

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> Response:
        return HubSpotError(exc.status_code, str(exc.detail)).response()

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> Response:
        return HubSpotError(400, f"Invalid input: {exc.errors()[0].get('msg', 'bad request')}").response()

    @app.middleware("http")
    async def _auth_and_limits(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if request.url.path.startswith("/__admin"):
            return await call_next(request)
        auth = request.headers.get("authorization", "")
        if not auth.lower().startswith("bearer "):
            return HubSpotError(
                401,
                "Authentication credentials not found. This API supports OAuth 2.0 authentication and you "
                "can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
                "INVALID_AUTHENTICATION",
            ).response()
        if auth[7:].strip() != sandbox.token:
            return HubSpotError(
                401, "The access token provided is invalid or expired.", "INVALID_AUTHENTICATION"
            ).response()
        try:
            headers = sandbox.limiter.admit(search=request.url.path.endswith("/search"))
        except HubSpotError as exc:
            return exc.response()
        response = await call_next(request)
        response.headers.update(headers)
        return response

    _object_routes(app, sandbox, sandbox.store)
    _merge_route(app, sandbox, sandbox.store)
    _object_routes(app, sandbox, sandbox.deals)
    _object_routes(app, sandbox, sandbox.tasks)
    _property_routes(app, sandbox)
    pipeline_routes(app, sandbox)
    association_routes(app, sandbox)
    owner_routes(app, sandbox)
    return app


def _merge_route(app: FastAPI, sandbox: HubSpotSandbox, store: ObjectStore) -> None:
    base = f"/crm/v3/objects/{store.object_type}"

    @app.post(f"{base}/merge")
    async def merge_records(request: Request) -> Response:
        body = await _json(request)
        with sandbox.lock:
            primary = store.require(str(body.get("primaryObjectId")))
            secondary = store.require(str(body.get("objectIdToMerge")))
            if primary is secondary:
                raise HubSpotError(400, f"Cannot merge a {store.singular} with itself")
            sandbox.emit(store.merge(primary, secondary, sandbox.api_source))
            return JSONResponse(store.render(primary))


def _object_routes(app: FastAPI, sandbox: HubSpotSandbox, store: ObjectStore) -> None:
    """Basic, batch and search endpoints of one object type (``/crm/v3/objects/<type>``)."""
    base = f"/crm/v3/objects/{store.object_type}"
    lock = sandbox.lock
    api: Source = sandbox.api_source

    # ----- basic -------------------------------------------------------------------------------

    @app.get(base)
    async def list_records(request: Request) -> Response:
        try:
            limit = int(request.query_params.get("limit", "10"))
            after = int(request.query_params.get("after", "0") or 0)
        except ValueError as exc:
            raise HubSpotError(400, "limit and after must be integers") from exc
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise HubSpotError(400, f"limit must be between 1 and {MAX_LIST_LIMIT}")
        archived = _bool_param(request, "archived")
        props, hist = _list_param(request, "properties"), _list_param(request, "propertiesWithHistory")
        with lock:
            page, more = store.page(after, limit, archived)
            body: dict[str, Any] = {"results": [store.render(c, props, hist) for c in page]}
            if more:
                nxt = page[-1].id
                body["paging"] = {"next": {"after": nxt, "link": f"{request.base_url}{base[1:]}?after={nxt}"}}
        return JSONResponse(body)

    @app.post(base)
    async def create_record(request: Request) -> Response:
        body = await _json(request)
        with lock:
            values = store.validate(body.get("properties") or {}, api)
            links = sandbox.check_associations(store.object_type, body.get("associations"))
            record = sandbox.create_record(store, values, api, links)
            return JSONResponse(store.render(record, list(values) or None), status_code=201)

    @app.post(f"{base}/search")
    async def search_records(request: Request) -> Response:
        body = await _json(request)
        with lock:
            return JSONResponse(search(store, body))

    @app.get(base + "/{record_id}")
    async def get_record(record_id: str, request: Request) -> Response:
        with lock:
            record = store.resolve(
                record_id, request.query_params.get("idProperty"), archived=_bool_param(request, "archived")
            )
            if record is None:
                raise not_found()
            return JSONResponse(
                store.render(
                    record, _list_param(request, "properties"), _list_param(request, "propertiesWithHistory")
                )
            )

    @app.patch(base + "/{record_id}")
    async def update_record(record_id: str, request: Request) -> Response:
        body = await _json(request)
        with lock:
            record = store.require(record_id, request.query_params.get("idProperty"))
            values = store.validate(body.get("properties") or {}, api)
            sandbox.emit(store.update(record, values, api))
            return JSONResponse(store.render(record, list(values) or None))

    @app.delete(base + "/{record_id}")
    async def archive_record(record_id: str) -> Response:
        with lock:
            record = store.resolve(record_id)
            if record is not None:  # HubSpot answers 204 for unknown ids too
                sandbox.emit(store.archive(record, api))
        return Response(status_code=204)

    # ----- batch -------------------------------------------------------------------------------

    @app.post(f"{base}/batch/read")
    async def batch_read(request: Request) -> Response:
        body = await _json(request)
        inputs = _inputs(body)
        started = iso_ms(sandbox.clock.now())
        id_property = body.get("idProperty")
        props, hist = body.get("properties") or None, body.get("propertiesWithHistory") or None
        with lock:
            results, missing, seen = [], [], set()
            for item in inputs:
                key = str((item or {}).get("id"))
                record = store.resolve(key, id_property)
                if record is None:
                    missing.append(key)
                elif record.id not in seen:
                    seen.add(record.id)
                    results.append(store.render(record, props, hist))
            errors = [_missing_error(store, missing, "get")] if missing else []
            return _batch_response(sandbox, results, errors, started, 200)

    @app.post(f"{base}/batch/create")
    async def batch_create(request: Request) -> Response:
        body = await _json(request)
        inputs = _inputs(body)
        started = iso_ms(sandbox.clock.now())
        with lock:
            # The whole batch is validated first: one bad input fails the request (400/409).
            all_values = [store.validate((item or {}).get("properties") or {}, api) for item in inputs]
            all_links = [
                sandbox.check_associations(store.object_type, (item or {}).get("associations"))
                for item in inputs
            ]
            _check_batch_unique(store, all_values)
            results = []
            for values, links in zip(all_values, all_links, strict=True):
                record = sandbox.create_record(store, values, api, links)
                results.append(store.render(record, list(values) or None))
            return _batch_response(sandbox, results, [], started, 201)

    @app.post(f"{base}/batch/update")
    async def batch_update(request: Request) -> Response:
        body = await _json(request)
        inputs = _inputs(body)
        started = iso_ms(sandbox.clock.now())
        with lock:
            keys = [str((item or {}).get("id")) for item in inputs]
            if len(set(keys)) != len(keys):
                raise HubSpotError(400, "Duplicate IDs found in batch input: each id may appear once")
            planned: list[tuple[Record, dict[str, str | None]]] = []
            missing: list[str] = []
            for item, key in zip(inputs, keys, strict=True):
                values = store.validate(item.get("properties") or {}, api)
                record = store.resolve(key, item.get("idProperty") or body.get("idProperty"))
                if record is None:
                    missing.append(key)
                else:
                    store.check_unique(values, exclude_id=record.id)
                    planned.append((record, values))
            results = []
            for record, values in planned:
                sandbox.emit(store.update(record, values, api))
                results.append(store.render(record, list(values) or None))
            errors = [_missing_error(store, missing, "update")] if missing else []
            return _batch_response(sandbox, results, errors, started, 200)

    @app.post(f"{base}/batch/upsert")
    async def batch_upsert(request: Request) -> Response:
        body = await _json(request)
        inputs = _inputs(body)
        started = iso_ms(sandbox.clock.now())
        with lock:
            planned = []
            for item in inputs:
                id_property = (item or {}).get("idProperty")
                if not id_property or id_property not in store.unique_properties():
                    # Upsert matches on a unique-value property
                    # (https://developers.hubspot.com/docs/api/crm/contacts, "Upsert").
                    raise HubSpotError(
                        400,
                        f"Upsert requires idProperty to be a property with unique values; "
                        f"'{id_property}' is not one",
                        "VALIDATION_ERROR",
                    )
                values = store.validate(item.get("properties") or {}, api)
                id_value = store.validate({id_property: item.get("id")}, Source("", "", via_api=False))
                values = {**values, **id_value}
                record = store.resolve(str(item.get("id")), id_property)
                store.check_unique(values, exclude_id=record.id if record else None)
                planned.append((record, values))
            pairs = [(str((i or {}).get("idProperty")), str((i or {}).get("id"))) for i in inputs]
            if len(set(pairs)) != len(pairs):
                raise HubSpotError(400, "Duplicate IDs found in batch input: each id may appear once")
            results = []
            for record, values in planned:
                if record is None:
                    record, events = store.create(values, api)
                    new = True
                else:
                    events = store.update(record, values, api)
                    new = False
                sandbox.emit(events)
                rendered = store.render(record, list(values) or None)
                rendered["new"] = new
                results.append(rendered)
            return _batch_response(sandbox, results, [], started, 200)

    @app.post(f"{base}/batch/archive")
    async def batch_archive(request: Request) -> Response:
        body = await _json(request)
        inputs = _inputs(body)
        with lock:
            for item in inputs:
                record = store.resolve(str((item or {}).get("id")))
                if record is not None:
                    sandbox.emit(store.archive(record, api))
        return Response(status_code=204)


def _property_routes(app: FastAPI, sandbox: HubSpotSandbox) -> None:
    """``/crm/v3/properties/{objectType}``: definitions and groups of contacts and deals."""
    lock = sandbox.lock
    base = "/crm/v3/properties/{object_type}"

    def store_for(object_type: str) -> ObjectStore:
        found = sandbox.stores.get(object_type.lower())
        if found is None:
            raise HubSpotError(400, f"Unable to infer object type from: {object_type}")
        return found

    @app.get(f"{base}/groups")
    async def list_groups(object_type: str) -> Response:
        with lock:
            return JSONResponse({"results": list(store_for(object_type).groups.values())})

    @app.post(f"{base}/groups")
    async def create_group(object_type: str, request: Request) -> Response:
        body = await _json(request)
        name, label = body.get("name"), body.get("label")
        if not name or not label or not validate_name(str(name)):
            raise HubSpotError(400, "A property group needs a lowercase name and a label")
        with lock:
            store = store_for(object_type)
            if name in store.groups:
                raise HubSpotError(
                    409, f"A property group named '{name}' already exists.", "OBJECT_ALREADY_EXISTS"
                )
            group = {
                "name": name,
                "label": label,
                "displayOrder": int(body.get("displayOrder", -1)),
                "archived": False,
            }
            store.groups[str(name)] = group
            return JSONResponse(group, status_code=201)

    @app.get(base + "/groups/{name}")
    async def get_group(object_type: str, name: str) -> Response:
        with lock:
            group = store_for(object_type).groups.get(name)
            if group is None:
                raise not_found(f"Unable to find property group {name}")
            return JSONResponse(group)

    @app.get(base)
    async def list_properties(object_type: str, request: Request) -> Response:
        archived = _bool_param(request, "archived")
        with lock:
            props = store_for(object_type).properties.values()
            return JSONResponse({"results": [p.to_json() for p in props if p.archived == archived]})

    @app.post(base)
    async def create_property(object_type: str, request: Request) -> Response:
        body = await _json(request)
        with lock:
            store = store_for(object_type)
            prop = _new_property(sandbox, store, body)
            store.add_property(prop)
            return JSONResponse(prop.to_json(), status_code=201)

    @app.get(base + "/{name}")
    async def get_property(object_type: str, name: str) -> Response:
        with lock:
            prop = store_for(object_type).properties.get(name)
            if prop is None or prop.archived:
                raise not_found(f"Unable to find property {name}")
            return JSONResponse(prop.to_json())

    @app.patch(base + "/{name}")
    async def update_property(object_type: str, name: str, request: Request) -> Response:
        body = await _json(request)
        with lock:
            store = store_for(object_type)
            prop = store.properties.get(name)
            if prop is None or prop.archived:
                raise not_found(f"Unable to find property {name}")
            _patch_property(sandbox, store, prop, body)
            return JSONResponse(prop.to_json())

    @app.delete(base + "/{name}")
    async def archive_property(object_type: str, name: str) -> Response:
        with lock:
            prop = store_for(object_type).properties.get(name)
            if prop is None or prop.archived:
                raise not_found(f"Unable to find property {name}")
            if prop.hubspot_defined:
                raise HubSpotError(
                    400, f"Property {name} is a HubSpot default property and can't be archived"
                )
            prop.archived = True
        return Response(status_code=204)


def _check_batch_unique(store: ObjectStore, all_values: list[dict[str, str | None]]) -> None:
    """Unique values must be unique within the batch and against existing records."""
    seen: dict[tuple[str, str], int] = {}
    unique = store.unique_properties()
    for i, values in enumerate(all_values):
        store.check_unique(values)
        for name, value in values.items():
            if name in unique and value:
                if (name, value) in seen:
                    raise HubSpotError(
                        400, f"Duplicate value '{value}' for unique property '{name}' in batch input"
                    )
                seen[(name, value)] = i


def _options(raw: Any) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise HubSpotError(400, "options must be a list")
    out = []
    for i, opt in enumerate(raw):
        if not isinstance(opt, dict) or "label" not in opt or "value" not in opt:
            raise HubSpotError(400, "each option needs a label and a value")
        out.append(
            {
                "label": str(opt["label"]),
                "value": str(opt["value"]),
                "description": str(opt.get("description", "")),
                "displayOrder": int(opt.get("displayOrder", i)),
                "hidden": bool(opt.get("hidden", False)),
            }
        )
    return out


def _check_types(store: ObjectStore, type_: Any, field_type: Any, group: Any) -> None:
    if type_ not in FIELD_TYPES:
        raise HubSpotError(400, f"Unknown property type '{type_}'")
    if field_type not in FIELD_TYPES[str(type_)]:
        raise HubSpotError(400, f"fieldType '{field_type}' is not valid for a property of type '{type_}'")
    if group not in store.groups:
        raise HubSpotError(400, f"Property group '{group}' does not exist")


def _new_property(sandbox: HubSpotSandbox, store: ObjectStore, body: dict[str, Any]) -> PropertyDef:
    missing = [k for k in ("name", "label", "type", "fieldType", "groupName") if not body.get(k)]
    if missing:
        raise HubSpotError(
            400,
            f"Invalid input: missing required field(s) {', '.join(missing)}",
            errors=[{"message": "must not be null", "in": k} for k in missing],
        )
    name = str(body["name"])
    if not validate_name(name):
        raise HubSpotError(
            400, f"Property name '{name}' is invalid: use lowercase letters, digits and underscores"
        )
    existing = store.properties.get(name)
    if existing is not None:
        raise HubSpotError(409, f"Property named '{name}' already exists.", "OBJECT_ALREADY_EXISTS")
    _check_types(store, body["type"], body["fieldType"], body["groupName"])
    unique = bool(body.get("hasUniqueValue", False))
    if unique and body["type"] not in {"string", "number"}:
        raise HubSpotError(400, "Only string and number properties can require unique values")
    now = iso_ms(sandbox.clock.now())
    return PropertyDef(
        name=name,
        label=str(body["label"]),
        type=str(body["type"]),
        field_type=str(body["fieldType"]),
        group_name=str(body["groupName"]),
        description=str(body.get("description", "")),
        options=_options(body.get("options")),
        has_unique_value=unique,
        hidden=bool(body.get("hidden", False)),
        form_field=bool(body.get("formField", False)),
        display_order=int(body.get("displayOrder", -1)),
        created_at=now,
        updated_at=now,
    )


def _patch_property(
    sandbox: HubSpotSandbox, store: ObjectStore, prop: PropertyDef, body: dict[str, Any]
) -> None:
    if "hasUniqueValue" in body and bool(body["hasUniqueValue"]) != prop.has_unique_value:
        raise HubSpotError(400, "hasUniqueValue can't be changed after a property is created")
    if prop.read_only_definition and set(body) - {"options"}:
        raise HubSpotError(400, f"Property {prop.name} has a read-only definition")
    type_, field_type = body.get("type", prop.type), body.get("fieldType", prop.field_type)
    _check_types(store, type_, field_type, body.get("groupName", prop.group_name))
    prop.type, prop.field_type = str(type_), str(field_type)
    prop.group_name = str(body.get("groupName", prop.group_name))
    prop.label = str(body.get("label", prop.label))
    prop.description = str(body.get("description", prop.description))
    if "options" in body:
        prop.options = _options(body["options"])
    prop.hidden = bool(body.get("hidden", prop.hidden))
    prop.form_field = bool(body.get("formField", prop.form_field))
    prop.display_order = int(body.get("displayOrder", prop.display_order))
    prop.updated_at = iso_ms(sandbox.clock.now())
