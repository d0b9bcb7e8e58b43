"""sObject Collections (``composite/sobjects``) and the Composite resource (``composite``).

REST API Developer Guide: "sObject Collections" (at most 200 records, ``allOrNone`` rollback,
SaveResult per record in request order) and "Composite" (at most 25 subrequests, of which at most 5
sObject Collections or Query/QueryAll operations; ``@{ref.field}`` references; reference IDs of
letters, digits and underscores; no Accept/Authorization/Content-Type in a subrequest's
``httpHeaders``; ``allOrNone`` turning every other subrequest into PROCESSING_HALTED; the whole
request counts as one API call, which the app's per-HTTP-request allocation already does).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from sandboxes.salesforce import ids
from sandboxes.salesforce.duplicates import DuplicateHeader
from sandboxes.salesforce.rest import ApiResponse, Request, RestApi, field_refs
from sandboxes.salesforce.schema import API_USER_ID
from sandboxes.salesforce.store import SfError, Store

MAX_COLLECTION = 200
MAX_SUBREQUESTS = 25
MAX_QUERY_OR_COLLECTION = 5
_FORBIDDEN_SUBREQUEST_HEADERS = {"accept", "authorization", "content-type"}
_REFERENCE_ID_RE = re.compile(r"[A-Za-z0-9_]+")
_ROLLED_BACK = SfError(
    400,
    "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "Record rolled back because not all records were valid and the request was using AllOrNone header",
)
_HALTED = "The transaction was rolled back since another operation in the same transaction failed."
_REF_RE = re.compile(r"@\{([A-Za-z0-9_]+)\.([^}]+)\}")
Work = tuple[str | None, Callable[[], tuple[str, bool]]]
_VERSION_PATH = re.compile(r"^/services/data/v(\d+\.\d)/?(.*)$")


class CompositeApi:
    """Registers the collection and composite routes on a :class:`RestApi`."""

    def __init__(
        self, rest: RestApi, store: Store, lock_row_rate: Callable[[], float], seed: int | None = None
    ) -> None:
        self.rest = rest
        self.store = store
        self.lock_row_rate = lock_row_rate
        self._rng = random.Random(seed)
        rest.extra_routes[:0] = [
            (re.compile(r"composite/sobjects"), self._collections),
            (re.compile(r"composite/sobjects/[^/]+"), self._retrieve),
            (re.compile(r"composite/sobjects/[^/]+/[^/]+"), self._upsert),
            (re.compile(r"composite"), self._composite),
        ]

    # ------------------------------------------------------------------------------ collections

    def _collections(self, req: Request) -> ApiResponse:
        if req.method == "DELETE":
            id_list = [i for i in req.params.get("ids", "").split(",") if i]
            _check_size(len(id_list))
            all_or_none = req.params.get("allOrNone", "false").lower() == "true"
            return self._run(all_or_none, [(i, partial(self._delete_one, i)) for i in id_list])
        if req.method == "GET":
            raise SfError(
                400, "MALFORMED_QUERY", "GET composite/sobjects requires an sObject type in the URL"
            )
        records, all_or_none = _records_body(req.body)
        header = req.duplicate_header()
        if req.method == "POST":
            work: list[Work] = [(None, partial(self._create_one, r, header)) for r in records]
        elif req.method == "PATCH":
            work = [(r.get("id") or r.get("Id"), partial(self._update_one, r, header)) for r in records]
        else:
            raise SfError(
                405,
                "METHOD_NOT_ALLOWED",
                f"HTTP Method '{req.method}' not allowed. Allowed are GET,POST,PATCH,DELETE",
            )
        return self._run(all_or_none, work)

    def _upsert(self, req: Request) -> ApiResponse:
        if req.method != "PATCH":
            raise SfError(
                405, "METHOD_NOT_ALLOWED", f"HTTP Method '{req.method}' not allowed. Allowed are PATCH"
            )
        _, _, sobject, ext_field = req.path.strip("/").split("/")
        obj = self.store.object(sobject)
        fdef = obj.field_ci(ext_field)
        if fdef is None or not fdef.external_id:
            raise SfError(
                400,
                "INVALID_FIELD",
                f"Field name provided, {ext_field} is not an External ID or indexed field for {obj.name}",
            )
        records, all_or_none = _records_body(req.body)
        header = req.duplicate_header()
        work: list[Work] = [
            (None, partial(self._upsert_one, obj.name, fdef.name, r, header)) for r in records
        ]
        return self._run(all_or_none, work, with_created=True)

    def _retrieve(self, req: Request) -> ApiResponse:
        if req.method != "GET":
            raise SfError(
                405, "METHOD_NOT_ALLOWED", f"HTTP Method '{req.method}' not allowed. Allowed are GET,POST"
            )
        obj = self.store.object(req.path.strip("/").split("/")[2])
        id_list = [i for i in req.params.get("ids", "").split(",") if i]
        _check_size(len(id_list))
        refs = field_refs(obj, req.params.get("fields", ""))
        if not refs:
            raise SfError(400, "MISSING_ARGUMENT", "The fields parameter is required")
        out: list[dict[str, Any] | None] = []
        with self.store.lock:
            for rid in id_list:
                record = self.store.find(obj.name, rid)
                ok = record is not None and not record["IsDeleted"]
                out.append(self.store.serialize(obj, record, req.version, refs) if ok and record else None)
        return ApiResponse(200, out)

    def _run(self, all_or_none: bool, work: Sequence[Work], with_created: bool = False) -> ApiResponse:
        results: list[dict[str, Any]] = []
        failed = False
        with self.store.atomic():
            point = self.store.savepoint()
            for known_id, fn in work:
                try:
                    if known_id and self._rng.random() < self.lock_row_rate():
                        raise SfError(
                            400,
                            "UNABLE_TO_LOCK_ROW",
                            f"unable to obtain exclusive access to this record or 1 records: {known_id}",
                        )
                    rid, created = fn()
                    result: dict[str, Any] = {"id": rid, "success": True, "errors": []}
                    if with_created:
                        result["created"] = created
                except SfError as err:
                    failed = True
                    result = {"success": False, "errors": [err.save_error()]}
                    if known_id:
                        result["id"] = known_id
                results.append(result)
            if failed and all_or_none:
                self.store.rollback(point)
                for result in results:
                    if result["success"]:
                        result.update(success=False, errors=[_ROLLED_BACK.save_error()])
                        result.pop("created", None)
                        result.pop("id", None)
        return ApiResponse(200, results)

    def _create_one(self, record: dict[str, Any], header: DuplicateHeader) -> tuple[str, bool]:
        sobject = _type_of(record)
        if any(k.lower() == "id" for k in record):
            raise SfError(400, "INVALID_FIELD", "cannot specify Id in an insert call", ["Id"])
        return self.store.create(sobject, _fields(record), API_USER_ID, duplicates=header), True

    def _update_one(self, record: dict[str, Any], header: DuplicateHeader) -> tuple[str, bool]:
        sobject = _type_of(record)
        rid = record.get("id") or record.get("Id")
        if not rid:
            raise SfError(400, "MISSING_ARGUMENT", "Id not specified in an update call", ["Id"])
        if ids.normalize(str(rid)) is None or self.store.type_of(str(rid)) != self.store.object(sobject).name:
            raise SfError(400, "MALFORMED_ID", f"invalid record id: {rid}", ["Id"])
        fields = {k: v for k, v in _fields(record).items() if k.lower() != "id"}
        self.store.update(sobject, str(rid), fields, API_USER_ID, duplicates=header)
        return str(ids.normalize(str(rid))), False

    def _upsert_one(
        self, sobject: str, ext_field: str, record: dict[str, Any], header: DuplicateHeader
    ) -> tuple[str, bool]:
        declared = _type_of(record)
        if declared.lower() != sobject.lower():
            raise SfError(400, "INVALID_TYPE", f"Record type {declared} does not match {sobject}")
        fields = _fields(record)
        value = next((v for k, v in fields.items() if k.lower() == ext_field.lower()), None)
        if value in (None, ""):
            raise SfError(400, "MISSING_ARGUMENT", f"{ext_field} not specified", [ext_field])
        return self.store.upsert(sobject, ext_field, str(value), fields, API_USER_ID, header)

    def _delete_one(self, rid: str) -> tuple[str, bool]:
        sobject = self.store.type_of(rid) if ids.normalize(rid) else None
        if sobject is None:
            raise SfError(400, "MALFORMED_ID", f"malformed id {rid}", [])
        self.store.delete(sobject, rid, API_USER_ID)
        return str(ids.normalize(rid)), False

    # ------------------------------------------------------------------------------ composite

    def _composite(self, req: Request) -> ApiResponse:
        if req.method != "POST":
            raise SfError(
                405, "METHOD_NOT_ALLOWED", f"HTTP Method '{req.method}' not allowed. Allowed are POST"
            )
        body = req.body if isinstance(req.body, dict) else {}
        subrequests = body.get("compositeRequest")
        if not isinstance(subrequests, list) or not subrequests:
            raise SfError(400, "JSON_PARSER_ERROR", "compositeRequest is required")
        if len(subrequests) > MAX_SUBREQUESTS:
            raise SfError(
                400, "LIMIT_EXCEEDED", f"Composite request can't have more than {MAX_SUBREQUESTS} subrequests"
            )
        for sub in subrequests:
            if (
                not isinstance(sub, dict)
                or not sub.get("referenceId")
                or not sub.get("url")
                or not sub.get("method")
            ):
                raise SfError(400, "INVALID_INPUT", "Each subrequest needs method, url and referenceId")
        _check_subrequests(subrequests)
        all_or_none = bool(body.get("allOrNone", False))
        outputs: list[dict[str, Any]] = []
        results: dict[str, tuple[int, Any]] = {}
        with self.store.atomic():
            point = self.store.savepoint()
            failed_at: int | None = None
            for index, sub in enumerate(subrequests):
                response = self._subrequest(sub, results)
                results[sub["referenceId"]] = (response.status, response.body)
                outputs.append(
                    {
                        "body": response.body,
                        "httpHeaders": response.headers,
                        "httpStatusCode": response.status,
                        "referenceId": sub["referenceId"],
                    }
                )
                if response.status >= 400 and all_or_none:
                    failed_at = index
                    break
            if failed_at is not None:
                self.store.rollback(point)
                halted = [{"errorCode": "PROCESSING_HALTED", "message": _HALTED}]
                for index, sub in enumerate(subrequests):
                    if index == failed_at:
                        continue
                    entry = {
                        "body": halted,
                        "httpHeaders": {},
                        "httpStatusCode": 400,
                        "referenceId": sub["referenceId"],
                    }
                    if index < len(outputs):
                        outputs[index] = entry
                    else:
                        outputs.append(entry)
        return ApiResponse(200, {"compositeResponse": outputs})

    def _subrequest(self, sub: dict[str, Any], results: dict[str, tuple[int, Any]]) -> ApiResponse:
        try:
            url = _substitute(str(sub["url"]), results, url=True)
            body = _substitute_json(sub.get("body"), results)
        except _UnresolvedReference as exc:
            return ApiResponse(400, [{"errorCode": "PROCESSING_HALTED", "message": str(exc)}])
        parts = urlsplit(url)
        m = _VERSION_PATH.match(parts.path)
        if m is None:
            return ApiResponse(
                404, [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}]
            )
        headers = {str(k).lower(): str(v) for k, v in (sub.get("httpHeaders") or {}).items()}
        request = Request(
            str(sub["method"]).upper(),
            m.group(2).strip("/"),
            m.group(1),
            dict(parse_qsl(parts.query)),
            body,
            headers,
        )
        return self.rest.handle(request)


def _check_subrequests(subrequests: list[dict[str, Any]]) -> None:
    """Refuse the whole request for the documented per-request rules (before anything runs)."""
    heavy = 0
    for sub in subrequests:
        if not _REFERENCE_ID_RE.fullmatch(str(sub["referenceId"])):
            raise SfError(
                400,
                "INVALID_INPUT",
                f"Invalid referenceId '{sub['referenceId']}': use only letters, numbers and underscores",
            )
        headers = sub.get("httpHeaders") or {}
        if not isinstance(headers, dict):
            raise SfError(400, "JSON_PARSER_ERROR", "httpHeaders must be a JSON object")
        bad = sorted(h for h in headers if str(h).lower() in _FORBIDDEN_SUBREQUEST_HEADERS)
        if bad:
            raise SfError(
                400, "INVALID_INPUT", f"Subrequests inherit {', '.join(bad)} from the top-level request"
            )
        m = _VERSION_PATH.match(urlsplit(str(sub["url"])).path)
        resource = m.group(2).strip("/") if m else ""
        if resource.split("/")[0] in ("query", "queryAll") or resource.startswith("composite/sobjects"):
            heavy += 1
    if heavy > MAX_QUERY_OR_COLLECTION:
        raise SfError(
            400,
            "LIMIT_EXCEEDED",
            f"A composite request can have at most {MAX_QUERY_OR_COLLECTION} sObject Collections or query "
            f"subrequests; this one has {heavy}",
        )


class _UnresolvedReference(Exception):
    pass


def _lookup(ref: str, path: str, results: dict[str, tuple[int, Any]]) -> Any:
    if ref not in results or results[ref][0] >= 400:
        raise _UnresolvedReference(
            f"Invalid reference specified. No value for {ref}.{path} found in {ref}. "
            f"Provided referenceId ('{ref}') must reference a successful earlier subrequest."
        )
    value: Any = results[ref][1]
    for token in re.findall(r"[^.\[\]]+", path):
        try:
            value = value[int(token)] if isinstance(value, list) else value[token]
        except (KeyError, IndexError, ValueError, TypeError):
            raise _UnresolvedReference(
                f"Invalid reference specified. No value for {ref}.{path} found in {ref}."
            ) from None
    return value


def _substitute(text: str, results: dict[str, tuple[int, Any]], url: bool = False) -> str:
    return _REF_RE.sub(lambda m: str(_lookup(m.group(1), m.group(2), results)), text)


def _substitute_json(value: Any, results: dict[str, tuple[int, Any]]) -> Any:
    if isinstance(value, str):
        whole = _REF_RE.fullmatch(value)
        if whole:  # keep the referenced value's JSON type
            return _lookup(whole.group(1), whole.group(2), results)
        return _substitute(value, results)
    if isinstance(value, dict):
        return {k: _substitute_json(v, results) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute_json(v, results) for v in value]
    return value


def _check_size(count: int) -> None:
    if count > MAX_COLLECTION:
        raise SfError(
            400,
            "EXCEEDED_ID_LIMIT",
            f"record limit reached. cannot submit more than {MAX_COLLECTION} records into this call",
        )


def _records_body(body: Any) -> tuple[list[dict[str, Any]], bool]:
    if not isinstance(body, dict) or not isinstance(body.get("records"), list):
        raise SfError(400, "JSON_PARSER_ERROR", "The request body must be an object with a records array")
    records = body["records"]
    _check_size(len(records))
    if not all(isinstance(r, dict) for r in records):
        raise SfError(400, "JSON_PARSER_ERROR", "Each record must be a JSON object")
    return records, bool(body.get("allOrNone", False))


def _type_of(record: dict[str, Any]) -> str:
    attributes = record.get("attributes")
    sobject = attributes.get("type") if isinstance(attributes, dict) else None
    if not sobject:
        raise SfError(400, "INVALID_TYPE", "Must specify a type in attributes")
    return str(sobject)


def _fields(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != "attributes"}
