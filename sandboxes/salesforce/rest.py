"""REST API resources below ``/services/data/vXX.X/``, as plain functions of (method, path, params, body).

Kept free of HTTP plumbing so the Composite resource can run subrequests through the same code.
Shapes follow the REST API Developer Guide: "Status Codes and Error Responses", "sObject Basic
Information", "sObject Describe", "sObject Rows", "sObject Rows by External ID", "Query", "Limits".
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sandboxes.salesforce import ids
from sandboxes.salesforce.duplicates import DuplicateHeader
from sandboxes.salesforce.schema import API_USER_ID, ObjectDef
from sandboxes.salesforce.soql import FieldRef, SoqlError
from sandboxes.salesforce.store import SfError, Store, not_found

DEFAULT_BATCH = 2000
MIN_BATCH, MAX_BATCH = 200, 2000  # Query Options header: "The default is 2,000; the minimum is 200".
MAX_CURSORS = 500


@dataclass
class ApiResponse:
    """A response before HTTP rendering: status, JSON body (None = empty) and extra headers."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def error_response(err: SfError) -> ApiResponse:
    """The documented REST error body for ``err``."""
    return ApiResponse(err.status, err.rest_body())


@dataclass
class Request:
    """One REST call: method, the path after ``vXX.X/`` (no surrounding slashes), query, JSON body."""

    method: str
    path: str
    version: str
    params: dict[str, str] = field(default_factory=dict)
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def duplicate_header(self) -> DuplicateHeader:
        """The request's ``Sforce-Duplicate-Rule-Header`` (defaults when absent)."""
        return DuplicateHeader.parse(self.headers.get("sforce-duplicate-rule-header"), self.version)


Handler = Callable[[Request], ApiResponse]


@dataclass
class _Cursor:
    records: list[dict[str, Any]]
    batch: int
    resource: str


class RestApi:
    """Routes REST requests to the store; limits usage is reported by ``limits_fn``."""

    def __init__(self, store: Store, limits_fn: Callable[[], dict[str, Any]]) -> None:
        self.store = store
        self.limits_fn = limits_fn
        self._cursors: OrderedDict[str, _Cursor] = OrderedDict()
        self._cursor_seq = 0
        self.extra_routes: list[tuple[re.Pattern[str], Handler]] = []

    def handle(self, req: Request) -> ApiResponse:
        """Dispatch ``req``; API errors become their documented bodies."""
        try:
            return self._route(req)
        except SfError as err:
            return error_response(err)
        except SoqlError as err:
            return ApiResponse(400, [{"message": err.message, "errorCode": err.code}])

    def _route(self, req: Request) -> ApiResponse:
        parts = [p for p in req.path.split("/") if p]
        for pattern, handler in self.extra_routes:
            if pattern.fullmatch("/".join(parts)):
                return handler(req)
        if not parts:
            return self._only(req, "GET", lambda: ApiResponse(200, self._resources(req.version)))
        head = parts[0]
        if head == "limits" and len(parts) == 1:
            return self._only(req, "GET", lambda: ApiResponse(200, self.limits_fn()))
        if head in ("query", "queryAll") and len(parts) <= 2:
            if len(parts) == 1:
                return self._only(req, "GET", lambda: self._query(req, head))
            return self._only(req, "GET", lambda: self._query_more(req, head, parts[1]))
        if head == "sobjects":
            return self._sobjects(req, parts[1:])
        if head == "tooling" and parts[1:2] == ["query"] and len(parts) <= 3:
            if len(parts) == 2:
                return self._only(req, "GET", lambda: self._query(req, "tooling/query"))
            return self._only(req, "GET", lambda: self._query_more(req, "tooling/query", parts[2]))
        raise not_found()

    @staticmethod
    def _only(req: Request, method: str, fn: Callable[[], ApiResponse]) -> ApiResponse:
        if req.method != method:
            raise SfError(
                405, "METHOD_NOT_ALLOWED", f"HTTP Method '{req.method}' not allowed. Allowed are {method}"
            )
        return fn()

    @staticmethod
    def _resources(version: str) -> dict[str, str]:
        base = f"/services/data/v{version}"
        names = ("sobjects", "query", "queryAll", "limits", "composite")
        return {name: f"{base}/{name}" for name in names}

    # ------------------------------------------------------------------------------ query

    def _query(self, req: Request, resource: str) -> ApiResponse:
        soql = req.params.get("q")
        if not soql:
            raise SfError(400, "MALFORMED_QUERY", "SOQL statements cannot be empty or null")
        records, total = self.store.query(
            soql, resource == "queryAll", req.version, tooling=resource.startswith("tooling")
        )
        batch = _batch_size(req.headers.get("sforce-query-options", ""))
        if len(records) <= batch:
            return ApiResponse(200, {"totalSize": total, "done": True, "records": records})
        with self.store.lock:
            self._cursor_seq += 1
            locator = ids.make_id("01g", self._cursor_seq)
            self._cursors[locator] = _Cursor(records, batch, resource)
            while len(self._cursors) > MAX_CURSORS:
                self._cursors.popitem(last=False)
        return ApiResponse(200, self._page(req.version, locator, self._cursors[locator], 0, total))

    def _query_more(self, req: Request, resource: str, token: str) -> ApiResponse:
        locator, _, offset_text = token.partition("-")
        cursor = self._cursors.get(locator)
        if cursor is None or not offset_text.isdigit() or int(offset_text) > len(cursor.records):
            raise SfError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return ApiResponse(
            200, self._page(req.version, locator, cursor, int(offset_text), len(cursor.records))
        )

    @staticmethod
    def _page(version: str, locator: str, cursor: _Cursor, offset: int, total: int) -> dict[str, Any]:
        end = offset + cursor.batch
        page: dict[str, Any] = {
            "totalSize": total,
            "done": end >= total,
            "records": cursor.records[offset:end],
        }
        if end < total:
            page["nextRecordsUrl"] = f"/services/data/v{version}/{cursor.resource}/{locator}-{end}"
        return page

    # ------------------------------------------------------------------------------ sobjects

    def _sobjects(self, req: Request, parts: list[str]) -> ApiResponse:
        if not parts:
            return self._only(req, "GET", lambda: ApiResponse(200, self._describe_global()))
        obj = self.store.object(parts[0])
        if len(parts) == 1:
            if req.method == "POST":
                return self._create(req, obj)
            return self._only(
                req,
                "GET",
                lambda: ApiResponse(
                    200, {"objectDescribe": self._object_summary(obj, req.version), "recentItems": []}
                ),
            )
        if len(parts) == 2 and parts[1] == "describe":
            return self._only(req, "GET", lambda: ApiResponse(200, self.describe(obj, req.version)))
        if len(parts) == 2:
            return self._row(req, obj, parts[1])
        if len(parts) == 3:
            return self._row_by_external_id(req, obj, parts[1], parts[2])
        raise not_found()

    def _create(self, req: Request, obj: ObjectDef) -> ApiResponse:
        body = _json_object(req.body)
        if any(k.lower() == "id" for k in body):
            raise SfError(
                400,
                "INVALID_FIELD",
                "Unable to create/update fields: Id. Please check the security settings"
                " of this field and verify that it is read/write for your profile or "
                "permission set.",
                ["Id"],
            )
        rid = self.store.create(obj.name, body, API_USER_ID, duplicates=req.duplicate_header())
        return ApiResponse(
            201,
            {"id": rid, "success": True, "errors": []},
            {"Location": f"/services/data/v{req.version}/sobjects/{obj.name}/{rid}"},
        )

    def _row(self, req: Request, obj: ObjectDef, record_id: str) -> ApiResponse:
        if ids.normalize(record_id) is None or self.store.type_of(record_id) != obj.name:
            raise not_found()
        if req.method == "GET":
            with self.store.lock:
                record = self.store.live(obj.name, record_id)
                return ApiResponse(200, self._render(req, obj, record))
        if req.method == "PATCH":
            self.store.update(
                obj.name, record_id, _json_object(req.body), API_USER_ID, duplicates=req.duplicate_header()
            )
            return ApiResponse(204)
        if req.method == "DELETE":
            self.store.delete(obj.name, record_id, API_USER_ID)
            return ApiResponse(204)
        raise SfError(
            405,
            "METHOD_NOT_ALLOWED",
            f"HTTP Method '{req.method}' not allowed. Allowed are HEAD,GET,PATCH,DELETE",
        )

    def _row_by_external_id(self, req: Request, obj: ObjectDef, field_name: str, value: str) -> ApiResponse:
        fdef = obj.field_ci(field_name)
        if fdef is None or not (fdef.external_id or fdef.name == "Id"):
            raise not_found()
        if req.method == "PATCH":
            rid, created = self.store.upsert(
                obj.name, fdef.name, value, _json_object(req.body), API_USER_ID, req.duplicate_header()
            )
            # Since API 46.0 an update answers 200 with a body (created=false); a create answers 201.
            return ApiResponse(
                201 if created else 200, {"id": rid, "success": True, "errors": [], "created": created}
            )
        with self.store.lock:
            matches = self.store.by_external_id(obj.name, fdef.name, value)
            if len(matches) > 1:
                return ApiResponse(
                    300, [self.store.attributes(obj.name, m["Id"], req.version)["url"] for m in matches]
                )
            if not matches:
                raise not_found()
            if req.method == "GET":
                return ApiResponse(200, self._render(req, obj, matches[0]))
            if req.method == "DELETE":
                self.store.delete(obj.name, matches[0]["Id"], API_USER_ID)
                return ApiResponse(204)
        raise SfError(
            405,
            "METHOD_NOT_ALLOWED",
            f"HTTP Method '{req.method}' not allowed. Allowed are HEAD,GET,PATCH,DELETE",
        )

    def _render(self, req: Request, obj: ObjectDef, record: dict[str, Any]) -> dict[str, Any]:
        names = req.params.get("fields")
        if not names:
            return self.store.serialize(obj, record, req.version)
        return self.store.serialize(obj, record, req.version, field_refs(obj, names))

    # ------------------------------------------------------------------------------ describe

    def _object_summary(self, obj: ObjectDef, version: str) -> dict[str, Any]:
        base = f"/services/data/v{version}/sobjects/{obj.name}"
        return {
            "name": obj.name,
            "label": obj.name,
            "keyPrefix": obj.key_prefix,
            "custom": False,
            "createable": obj.createable,
            "updateable": not obj.read_only,
            "deletable": not obj.read_only,
            "queryable": True,
            "retrieveable": True,
            "searchable": not obj.read_only,
            "urls": {"sobject": base, "describe": f"{base}/describe", "rowTemplate": f"{base}/{{ID}}"},
        }

    def _describe_global(self) -> dict[str, Any]:
        return {
            "encoding": "UTF-8",
            "maxBatchSize": 200,
            "sobjects": [self._object_summary(o, "59.0") for o in self.store.schema.values()],
        }

    def describe(self, obj: ObjectDef, version: str) -> dict[str, Any]:
        """``sobjects/{T}/describe``."""
        return self._object_summary(obj, version) | {"fields": [f.describe() for f in obj.fields.values()]}


def field_refs(obj: ObjectDef, names: str) -> list[FieldRef]:
    """FieldRefs for a comma-separated ``fields=`` parameter (plain fields only)."""
    refs = []
    for name in (n.strip() for n in names.split(",") if n.strip()):
        fdef = obj.field_ci(name)
        if fdef is None:
            raise SfError(
                400,
                "INVALID_FIELD",
                f"No such column '{name}' on entity '{obj.name}'. If you are attempting"
                " to use a custom field, be sure to append the '__c' after the custom "
                "field name. Please reference your WSDL or the describe call for the "
                "appropriate names.",
            )
        refs.append(FieldRef([fdef.name], 0, [], fdef))
    return refs


def _batch_size(options: str) -> int:
    m = re.search(r"batchSize\s*=\s*(\d+)", options)
    if not m:
        return DEFAULT_BATCH
    return max(MIN_BATCH, min(MAX_BATCH, int(m.group(1))))


def _json_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise SfError(400, "JSON_PARSER_ERROR", "The request body must be a JSON object")
    return body
