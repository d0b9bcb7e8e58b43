"""FastAPI routes of the Marketo sandbox: identity, leads, activities and programs.

Shapes follow Adobe's Marketo REST documentation (Experience League, "Marketo Developer"): the
identity endpoint ("Authentication"), "Leads" (describe, describe2, get by id, get by filter type,
sync leads, merge, delete), "Activities" (types, paging token, lead activities, deleted leads),
"Programs" (browse, by id) and "Error Codes". Every REST failure is an HTTP 200 with
``success: false``; bad client credentials are the identity endpoint's HTTP 401.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from sandboxes.marketo.errors import MarketoError, reason, request_id
from sandboxes.marketo.schema import ACTIVITY_TYPE_IDS, ACTIVITY_TYPES, CHANGE_DATA_VALUE, NEW_LEAD
from sandboxes.marketo.store import API_SOURCE, DEFAULT_FIELDS, MAX_BATCH, Lead, Source

if TYPE_CHECKING:
    from sandboxes.marketo import MarketoSandbox

MAX_ACTIVITY_TYPES = 10
MAX_LEAD_IDS = 30
MAX_MATCHES = 1000
MAX_MERGE_IDS = 25
MAX_PROGRAMS = 200
MAX_CREATE_FIELDS = 100
MAX_PAYLOAD_BYTES = 1024 * 1024
MAX_URI_BYTES = 8 * 1024
ACTIONS = {"createOrUpdate", "createOnly", "updateOnly", "createDuplicate"}


def ok(**extra: Any) -> JSONResponse:
    """A successful Marketo body."""
    return JSONResponse({"requestId": request_id(), "success": True, **extra})


def _int(value: str | None, name: str, default: int, maximum: int) -> int:
    if value in (None, ""):
        return default
    try:
        number = int(str(value))
    except ValueError as exc:
        raise MarketoError("1001", f"Invalid value '{value}'. Required of type 'integer'") from exc
    if number < 1 or number > maximum:
        raise MarketoError("1003", f"{name} must be between 1 and {maximum}")
    return number


def _csv(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def _params(multi: Any) -> dict[str, str]:
    """Parameters with repeated keys joined by commas (``fields=a&fields=b`` is ``fields=a,b``)."""
    return {key: ",".join(str(v) for v in multi.getlist(key)) for key in multi}


def _offset_token(offset: int) -> str:
    return base64.b32encode(f"leads|{offset}".encode()).decode().rstrip("=")


def _offset_from(token: str | None) -> int:
    if not token:
        return 0
    try:
        padded = token + "=" * (-len(token) % 8)
        kind, offset = base64.b32decode(padded.encode()).decode().split("|")
        if kind != "leads":
            raise ValueError(kind)
        return int(offset)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MarketoError("1003", "Invalid next page token") from exc


def _parse_since(value: str | None) -> datetime:
    if not value:
        raise MarketoError("701", "'sinceDatetime' cannot be blank")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise MarketoError("704", "Invalid date format") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def build_app(sandbox: MarketoSandbox) -> FastAPI:
    """The sandbox's routes; ``sandbox`` supplies store, tokens and limits."""
    app = FastAPI(title="Marketo sandbox", openapi_url=None, docs_url=None, redoc_url=None)
    store = sandbox.store

    @app.exception_handler(MarketoError)
    async def _marketo_error(_: Request, exc: MarketoError) -> Response:
        return exc.response()

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return MarketoError("610").response()
        if exc.status_code == 405:
            return MarketoError("605", "Request method not supported").response()
        return MarketoError("611").response()

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> Response:
        return MarketoError("1003", "Invalid data").response()

    @app.middleware("http")
    async def _concurrency(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if not request.url.path.startswith("/rest/"):
            return await call_next(request)
        # The only HTTP-level errors in normal operation ("Error Codes"): bodies over 1 MB, URIs over 8 KB.
        if int(request.headers.get("content-length") or 0) > MAX_PAYLOAD_BYTES:
            return Response("Request Entity Too Large", status_code=413)
        if len(request.url.path) + len(request.url.query) + 1 > MAX_URI_BYTES:
            return Response("Request-URI Too Long", status_code=414)
        try:
            sandbox.limits.enter()
        except MarketoError as exc:
            return exc.response()
        try:
            if sandbox.processing_seconds:
                await asyncio.sleep(sandbox.processing_seconds)  # server time inside the gate
            return await call_next(request)
        finally:
            sandbox.limits.leave()

    def begin(request: Request) -> None:
        """Check the bearer token, then count the call against the window and the day."""
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else None
        # The access_token query parameter is no longer accepted ("Authentication": support
        # ended in 2026); the header is the only way.
        sandbox.tokens.check(token)
        sandbox.limits.admit()

    async def json_body(request: Request) -> dict[str, Any]:
        raw = await request.body()
        if not raw:
            return {}
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise MarketoError("609") from exc
        if not isinstance(body, dict):
            raise MarketoError("609")
        return body

    # ----- identity ---------------------------------------------------------------------------

    @app.api_route("/identity/oauth/token", methods=["GET", "POST"])
    async def _token(request: Request) -> Response:
        params = dict(request.query_params)
        if request.method == "POST" and "form" in request.headers.get("content-type", ""):
            params.update({k: str(v) for k, v in (await request.form()).items()})
        if params.get("grant_type") != "client_credentials":
            return JSONResponse(
                {"error": "invalid_request", "error_description": "Missing or invalid grant_type"},
                status_code=400,
            )
        issued = sandbox.tokens.issue(params.get("client_id", ""), params.get("client_secret", ""))
        if issued is None:
            return JSONResponse(
                {"error": "invalid_client", "error_description": "Bad client credentials"}, status_code=401
            )
        token, expires_in = issued
        return JSONResponse(
            {"access_token": token, "token_type": "bearer", "expires_in": expires_in, "scope": sandbox.scope}
        )

    # ----- leads ------------------------------------------------------------------------------

    @app.get("/rest/v1/leads/describe.json")
    def _describe(request: Request) -> Response:
        begin(request)
        with store.lock:
            return ok(result=[f.describe() for f in store.fields.values()])

    @app.get("/rest/v1/leads/describe2.json")
    def _describe2(request: Request) -> Response:
        begin(request)
        with store.lock:
            searchable = [[f.name] for f in store.fields.values() if f.searchable]
            fields = [f.describe2() for f in store.fields.values()]
        return ok(result=[{"name": "API Lead", "searchableFields": searchable, "fields": fields}])

    @app.get("/rest/v1/leads/schema/fields.json")
    def _schema_fields(request: Request) -> Response:
        begin(request)
        batch_size = _int(request.query_params.get("batchSize"), "batchSize", MAX_BATCH, MAX_BATCH)
        offset = _offset_from(request.query_params.get("nextPageToken"))
        with store.lock:
            everything = [f.schema() for f in store.fields.values()]
        page = everything[offset : offset + batch_size]
        more = offset + batch_size < len(everything)
        extra: dict[str, Any] = {"result": page, "moreResult": more}
        if more:
            extra["nextPageToken"] = _offset_token(offset + batch_size)
        return ok(**extra)

    @app.post("/rest/v1/leads/schema/fields.json")
    async def _create_fields(request: Request) -> Response:
        begin(request)
        body = await json_body(request)
        specs = body.get("input")
        if not isinstance(specs, list) or not specs:
            raise MarketoError("701", "'input' cannot be blank")
        if len(specs) > MAX_CREATE_FIELDS:
            raise MarketoError("1003", f"Too many fields in input: at most {MAX_CREATE_FIELDS}")
        with store.lock:
            return ok(result=[store.create_field(spec) for spec in specs])

    @app.get("/rest/v1/leads/schema/fields/{field_name}.json")
    def _schema_field(field_name: str, request: Request) -> Response:
        begin(request)
        with store.lock:
            definition = store.fields.get(field_name)
            if definition is None:
                raise MarketoError("1013", f"Field '{field_name}' not found")
            return ok(result=[definition.schema()])

    def _fields_param(value: str | None) -> list[str]:
        names = _csv(value) or DEFAULT_FIELDS
        for name in names:
            if name not in store.fields:
                raise MarketoError("1006", f"Field '{name}' not found")
        return names

    @app.get("/rest/v1/lead/{lead_id}.json")
    def _lead_by_id(lead_id: str, request: Request) -> Response:
        begin(request)
        with store.lock:
            names = _fields_param(request.query_params.get("fields"))
            try:
                lead = store.get(int(lead_id))
            except ValueError:
                lead = None
            return ok(result=[store.render(lead, names)] if lead else [])

    def _query(params: dict[str, str]) -> Response:
        filter_type = params.get("filterType")
        values = _csv(params.get("filterValues"))
        if not filter_type:
            raise MarketoError("701", "'filterType' cannot be blank")
        if not values:
            raise MarketoError("701", "'filterValues' cannot be blank")
        if len(values) > MAX_BATCH:
            raise MarketoError("1003", f"Too many filter values: at most {MAX_BATCH}")
        batch_size = _int(params.get("batchSize"), "batchSize", MAX_BATCH, MAX_BATCH)
        with store.lock:
            if not store.searchable(filter_type):
                raise MarketoError("1003", f"Invalid filterType '{filter_type}'")
            names = _fields_param(params.get("fields"))
            seen: dict[int, Lead] = {}
            for value in values:
                for lead in store.find(filter_type, value):
                    seen[lead.id] = lead
            if len(seen) > MAX_MATCHES:
                raise MarketoError("1003", "Too many results match the filter")
            matches = sorted(seen.values(), key=lambda lead: lead.id)
            offset = _offset_from(params.get("nextPageToken"))
            page = matches[offset : offset + batch_size]
            extra: dict[str, Any] = {"result": [store.render(lead, names) for lead in page]}
            if offset + batch_size < len(matches):
                extra["nextPageToken"] = _offset_token(offset + batch_size)
        return ok(**extra)

    @app.get("/rest/v1/leads.json")
    def _get_leads(request: Request) -> Response:
        begin(request)
        return _query(_params(request.query_params))

    @app.post("/rest/v1/leads.json")
    async def _post_leads(request: Request) -> Response:
        params = _params(request.query_params)
        if "form" in request.headers.get("content-type", ""):
            params.update(_params(await request.form()))
        if params.get("_method") == "GET":
            # Long queries go as POST with _method=GET and the query string in the body
            # ("Error Codes", 414).
            begin(request)
            return _query(params)
        begin(request)
        body = await json_body(request)
        records = body.get("input")
        if not isinstance(records, list) or not records:
            raise MarketoError("701", "'input' cannot be blank")
        if len(records) > MAX_BATCH:
            raise MarketoError("1003", f"Too many records in input: at most {MAX_BATCH}")
        action = body.get("action", "createOrUpdate")
        if action not in ACTIONS:
            raise MarketoError("1003", f"Invalid action '{action}'")
        lookup = body.get("lookupField", "email")
        with store.lock:
            if lookup != "id" and not store.searchable(lookup):
                raise MarketoError("1003", f"Invalid lookupField '{lookup}'")
            rid = request_id()
            source = Source(API_SOURCE.label, API_SOURCE.api_method, rid, API_SOURCE.user)
            if action == "createDuplicate":
                action = "createOnly"
                lookup = "id"
            results = store.sync(records, action, lookup, source)
        return JSONResponse({"requestId": rid, "success": True, "result": results})

    @app.post("/rest/v1/leads/{lead_id}/merge.json")
    def _merge(lead_id: str, request: Request) -> Response:
        begin(request)
        loser_ids = _csv(request.query_params.get("leadIds")) or _csv(request.query_params.get("leadId"))
        if not loser_ids:
            raise MarketoError("701", "'leadIds' cannot be blank")
        if len(loser_ids) > MAX_MERGE_IDS:
            raise MarketoError("1080", f"Too many leadIds: at most {MAX_MERGE_IDS}")
        with store.lock:
            try:
                winner = store.get(int(lead_id))
                losers = [store.get(int(i)) for i in loser_ids]
            except ValueError as exc:
                raise MarketoError("1003", "Invalid lead id") from exc
            if winner is None or any(loser is None for loser in losers):
                raise MarketoError("1004")
            if any(loser is winner for loser in losers):
                raise MarketoError("1003", "A lead cannot be merged into itself")
            store.merge(winner, [loser for loser in losers if loser is not None], "Web service API")
        return ok()

    async def _delete(request: Request) -> Response:
        begin(request)
        body = await json_body(request)
        records = body.get("input")
        if not isinstance(records, list) or not records:
            raise MarketoError("701", "'input' cannot be blank")
        if len(records) > MAX_BATCH:
            raise MarketoError("1003", f"Too many records in input: at most {MAX_BATCH}")
        results: list[dict[str, Any]] = []
        with store.lock:
            for record in records:
                lead_id = record.get("id") if isinstance(record, dict) else None
                lead = store.get(lead_id) if isinstance(lead_id, int) else None
                if lead is None:
                    results.append({"id": lead_id, "status": "skipped", "reasons": [reason("1004")]})
                    continue
                store.delete(lead)
                results.append({"id": lead.id, "status": "deleted"})
        return ok(result=results)

    app.add_api_route("/rest/v1/leads.json", _delete, methods=["DELETE"])
    app.add_api_route("/rest/v1/leads/delete.json", _delete, methods=["POST"])

    # ----- activities -------------------------------------------------------------------------

    @app.get("/rest/v1/activities/types.json")
    def _types(request: Request) -> Response:
        begin(request)
        return ok(result=[t.render() for t in ACTIVITY_TYPES])

    @app.get("/rest/v1/activities/pagingtoken.json")
    def _paging_token(request: Request) -> Response:
        begin(request)
        since = _parse_since(request.query_params.get("sinceDatetime"))
        return ok(nextPageToken=store.since_token(since))

    def _page(request: Request, type_ids: set[int] | None) -> Response:
        token = request.query_params.get("nextPageToken")
        if not token:
            raise MarketoError("701", "'nextPageToken' cannot be blank")
        batch_size = _int(request.query_params.get("batchSize"), "batchSize", MAX_BATCH, MAX_BATCH)
        lead_ids: set[int] | None = None
        raw_leads = _csv(request.query_params.get("leadIds"))
        if raw_leads:
            if len(raw_leads) > MAX_LEAD_IDS:
                raise MarketoError("1003", f"Too many leadIds: at most {MAX_LEAD_IDS}")
            try:
                lead_ids = {int(v) for v in raw_leads}
            except ValueError as exc:
                raise MarketoError("1001", "Invalid value for leadIds. Required of type 'integer'") from exc
        with store.lock:
            records, next_token, more = store.page(token, type_ids, batch_size, lead_ids)
        extra: dict[str, Any] = {"nextPageToken": next_token, "moreResult": more}
        if records:
            extra["result"] = records
        return ok(**extra)

    @app.get("/rest/v1/activities.json")
    def _activities(request: Request) -> Response:
        begin(request)
        raw = _csv(request.query_params.get("activityTypeIds"))
        if not raw:
            raise MarketoError("701", "'activityTypeIds' cannot be blank")
        if len(raw) > MAX_ACTIVITY_TYPES:
            raise MarketoError("1003", f"Too many activityTypeIds: at most {MAX_ACTIVITY_TYPES}")
        try:
            type_ids = {int(v) for v in raw}
        except ValueError as exc:
            raise MarketoError(
                "1001", "Invalid value for activityTypeIds. Required of type 'integer'"
            ) from exc
        known = {t.id for t in ACTIVITY_TYPES}
        unknown = sorted(type_ids - known)
        if unknown:
            raise MarketoError("1003", f"Invalid activity type id {unknown[0]}")
        return _page(request, type_ids)

    @app.get("/rest/v1/activities/deletedleads.json")
    def _deleted(request: Request) -> Response:
        begin(request)
        return _page(request, {t.id for t in ACTIVITY_TYPES if t.name == "Delete Lead"})

    @app.get("/rest/v1/activities/leadchanges.json")
    def _lead_changes(request: Request) -> Response:
        begin(request)
        names = _csv(request.query_params.get("fields"))
        if not names:
            raise MarketoError("701", "'fields' cannot be blank")
        with store.lock:
            wanted = {store.fields[n].id: n for n in names if n in store.fields}
            response = _page(request, {ACTIVITY_TYPE_IDS[NEW_LEAD], ACTIVITY_TYPE_IDS[CHANGE_DATA_VALUE]})
        body = json.loads(bytes(response.body))
        # Get Lead Changes reports New Lead and Change Data Value activities of the named fields,
        # each with fields[{id, name, newValue, oldValue}] ("Activities", Lead Changes).
        changes = []
        for activity in body.get("result", []):
            if activity["activityTypeId"] == ACTIVITY_TYPE_IDS[CHANGE_DATA_VALUE]:
                field_id = activity.get("primaryAttributeValueId")
                if field_id not in wanted:
                    continue
                attrs = {a["name"]: a["value"] for a in activity["attributes"]}
                activity["fields"] = [
                    {
                        "id": field_id,
                        "name": wanted[field_id],
                        "newValue": attrs.get("New Value"),
                        "oldValue": attrs.get("Old Value"),
                    }
                ]
            else:
                activity["fields"] = []
            changes.append(activity)
        if changes:
            body["result"] = changes
        else:
            body.pop("result", None)
        return JSONResponse(body)

    # ----- usage ------------------------------------------------------------------------------

    @app.get("/rest/v1/stats/usage.json")
    def _usage(request: Request) -> Response:
        begin(request)
        day, total = sandbox.limits.usage()
        users = [{"userId": sandbox.scope, "count": total}] if total else []
        return ok(result=[{"date": day.isoformat(), "total": total, "users": users}])

    # ----- programs ---------------------------------------------------------------------------

    def _programs_body(programs: list[dict[str, Any]]) -> Response:
        if not programs:
            return ok(warnings=["No assets found for the given search criteria."])
        return ok(result=programs, warnings=[])

    @app.get("/rest/asset/v1/programs.json")
    def _programs(request: Request) -> Response:
        begin(request)
        max_return = _int(request.query_params.get("maxReturn"), "maxReturn", 20, MAX_PROGRAMS)
        try:
            offset = int(request.query_params.get("offset") or 0)
        except ValueError as exc:
            raise MarketoError("1001", "Invalid value for offset. Required of type 'integer'") from exc
        with store.lock:
            programs = sorted(store.programs.values(), key=lambda p: p.id)[offset : offset + max_return]
            return _programs_body([p.render() for p in programs])

    @app.get("/rest/asset/v1/program/byName.json")
    def _program_by_name(request: Request) -> Response:
        begin(request)
        name = request.query_params.get("name")
        if not name:
            raise MarketoError("701", "'name' cannot be blank")
        with store.lock:
            return _programs_body([p.render() for p in store.programs.values() if p.name == name])

    @app.get("/rest/asset/v1/program/{program_id}.json")
    def _program(program_id: str, request: Request) -> Response:
        begin(request)
        with store.lock:
            try:
                program = store.programs.get(int(program_id))
            except ValueError:
                program = None
            return _programs_body([program.render()] if program else [])

    return app
