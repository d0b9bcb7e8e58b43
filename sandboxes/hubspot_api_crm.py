"""FastAPI routes of the HubSpot sandbox for deal pipelines (v3) and associations (v4).

Shapes follow https://developers.hubspot.com/docs/api/crm/pipelines and
https://developers.hubspot.com/docs/api/crm/associations (association details and schema).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from sandboxes.hubspot_associations import OBJECT_TYPE_IDS, object_type
from sandboxes.hubspot_errors import HubSpotError, not_found
from sandboxes.hubspot_props import iso_ms

if TYPE_CHECKING:
    from sandboxes.hubspot import HubSpotSandbox

PIPELINES = "/crm/v3/pipelines/{object_type}"
ASSOC = "/crm/v4/associations/{from_type}/{to_type}"
# Batch read takes at most 1,000 ids (https://developers.hubspot.com/changelog/bug-fix-batch-read-limit-for-hubspot-associations-api);
# batch create, default and archive take up to 2,000 inputs.
MAX_READ_INPUTS = 1000
MAX_WRITE_INPUTS = 2000
MAX_ASSOCIATION_PAGE = 500


async def _json(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError as exc:
        raise HubSpotError(400, "Invalid input JSON on line 1: request body is not valid JSON") from exc


def _deals_only(raw: str) -> None:
    if raw.lower() != "deals":
        # Only deal pipelines are emulated; other object types have none in this portal.
        raise HubSpotError(400, f"Unable to infer object type from: {raw}")


def pipeline_routes(app: FastAPI, sandbox: HubSpotSandbox) -> None:
    """``/crm/v3/pipelines/deals``: list, read and create deal pipelines."""

    @app.get(PIPELINES)
    async def list_pipelines(object_type: str) -> Response:
        _deals_only(object_type)
        with sandbox.lock:
            return JSONResponse({"results": [p.to_json() for p in sandbox.pipelines.ordered()]})

    @app.post(PIPELINES)
    async def create_pipeline(object_type: str, request: Request) -> Response:
        _deals_only(object_type)
        body = await _json(request)
        if not isinstance(body, dict):
            raise HubSpotError(400, "Invalid input JSON: expected an object")
        with sandbox.lock:
            pipeline = sandbox.pipelines.create(body, sandbox.clock.now())
            sandbox.deals.sync_pipeline_properties()
            return JSONResponse(pipeline.to_json(), status_code=201)

    @app.get(PIPELINES + "/{pipeline_id}")
    async def get_pipeline(object_type: str, pipeline_id: str) -> Response:
        _deals_only(object_type)
        with sandbox.lock:
            pipeline = sandbox.pipelines.get(pipeline_id)
            if pipeline is None:
                raise not_found(f"Unable to find pipeline {pipeline_id}")
            return JSONResponse(pipeline.to_json())

    @app.get(PIPELINES + "/{pipeline_id}/stages")
    async def get_stages(object_type: str, pipeline_id: str) -> Response:
        _deals_only(object_type)
        with sandbox.lock:
            pipeline = sandbox.pipelines.get(pipeline_id)
            if pipeline is None:
                raise not_found(f"Unable to find pipeline {pipeline_id}")
            return JSONResponse({"results": pipeline.to_json()["stages"]})


def _inputs(body: Any, limit: int = MAX_WRITE_INPUTS) -> list[Any]:
    inputs = body.get("inputs") if isinstance(body, dict) else None
    if not isinstance(inputs, list):
        raise HubSpotError(400, "Invalid input JSON: inputs must be a list")
    if len(inputs) > limit:
        raise HubSpotError(
            400, f"Invalid input: batch size {len(inputs)} is too large; at most {limit} inputs are allowed"
        )
    return inputs


def _id(value: Any) -> str:
    raw = value.get("id") if isinstance(value, dict) else None
    if raw is None or not str(raw).isdigit():
        raise HubSpotError(400, f"Invalid input: object id {raw!r} must be a number")
    return str(raw)


def _batch(sandbox: HubSpotSandbox, started: str, results: list[Any], errors: list[Any], ok: int) -> Response:
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


def association_routes(app: FastAPI, sandbox: HubSpotSandbox) -> None:
    """Associations v4: labels, batch read/create/default/archive, and per-record reads and writes."""
    assoc = sandbox.associations
    lock = sandbox.lock

    @app.get(ASSOC + "/labels")
    async def list_labels(from_type: str, to_type: str) -> Response:
        src, dst = object_type(from_type), object_type(to_type)
        with lock:
            return JSONResponse({"results": [t.spec() for t in assoc.labels(src, dst)]})

    @app.post(ASSOC + "/labels")
    async def create_label(from_type: str, to_type: str, request: Request) -> Response:
        src, dst = object_type(from_type), object_type(to_type)
        body = await _json(request)
        if not isinstance(body, dict) or not isinstance(body.get("label"), str):
            raise HubSpotError(400, "Invalid input: label and name are required")
        inverse = body.get("inverseLabel")
        with lock:
            created = assoc.create_label(
                src, dst, body["label"], str(body.get("name") or ""), str(inverse) if inverse else None
            )
            return JSONResponse({"results": [t.spec() for t in created]})

    @app.post(ASSOC + "/batch/read")
    async def batch_read(from_type: str, to_type: str, request: Request) -> Response:
        src, dst = object_type(from_type), object_type(to_type)
        inputs = _inputs(await _json(request), MAX_READ_INPUTS)
        started = iso_ms(sandbox.clock.now())
        with lock:
            results, missing = [], []
            for item in inputs:
                rid = _id(item)
                linked = sandbox.live_associations(src, rid, dst)
                if not linked:
                    missing.append(rid)
                    continue
                results.append(
                    {"from": {"id": rid}, "to": [assoc.render(to, types) for to, types in linked.items()]}
                )
            errors = [_no_associations(src, dst, rid) for rid in missing]
            return _batch(sandbox, started, results, errors, 200)

    @app.post(ASSOC + "/batch/create")
    async def batch_create(from_type: str, to_type: str, request: Request) -> Response:
        src, dst = object_type(from_type), object_type(to_type)
        inputs = _inputs(await _json(request))
        started = iso_ms(sandbox.clock.now())
        with lock:
            planned = []
            for item in inputs:
                if not isinstance(item, dict):
                    raise HubSpotError(400, "Invalid input: each input must be an object")
                from_id, to_id = _id(item.get("from")), _id(item.get("to"))
                types = assoc.resolve_types(src, dst, item.get("types"))
                planned.append((from_id, to_id, types))
            results, errors = [], []
            for from_id, to_id, types in planned:
                if not sandbox.associate(src, from_id, dst, to_id, types):
                    errors.append(_missing_record(src, dst, from_id, to_id))
                    continue
                results.append(_pair(src, from_id, dst, to_id, [assoc.types[t].label for t in types]))
            return _batch(sandbox, started, results, errors, 201)

    @app.post(ASSOC + "/batch/associate/default")
    async def batch_default(from_type: str, to_type: str, request: Request) -> Response:
        src, dst = object_type(from_type), object_type(to_type)
        inputs = _inputs(await _json(request))
        started = iso_ms(sandbox.clock.now())
        with lock:
            default = assoc.default_type(src, dst)
            results, errors = [], []
            for item in inputs:
                if not isinstance(item, dict):
                    raise HubSpotError(400, "Invalid input: each input must be an object")
                from_id, to_id = _id(item.get("from")), _id(item.get("to"))
                if not sandbox.associate(src, from_id, dst, to_id, []):
                    errors.append(_missing_record(src, dst, from_id, to_id))
                    continue
                results.append(_default(default.category, default.type_id, from_id, to_id))
            return _batch(sandbox, started, results, errors, 200)

    @app.post(ASSOC + "/batch/archive")
    async def batch_archive(from_type: str, to_type: str, request: Request) -> Response:
        src, dst = object_type(from_type), object_type(to_type)
        inputs = _inputs(await _json(request))
        with lock:
            for item in inputs:
                if not isinstance(item, dict):
                    raise HubSpotError(400, "Invalid input: each input must be an object")
                from_id = _id(item.get("from"))
                for to in item.get("to") or []:
                    sandbox.unassociate(src, from_id, dst, _id(to))
        return Response(status_code=204)

    @app.get("/crm/v4/objects/{from_type}/{from_id}/associations/{to_type}")
    async def list_for_record(from_type: str, from_id: str, to_type: str, request: Request) -> Response:
        src, dst = object_type(from_type), object_type(to_type)
        try:
            limit = int(request.query_params.get("limit", str(MAX_ASSOCIATION_PAGE)))
            after = int(request.query_params.get("after", "0") or 0)
        except ValueError as exc:
            raise HubSpotError(400, "limit and after must be integers") from exc
        if not 1 <= limit <= MAX_ASSOCIATION_PAGE:
            raise HubSpotError(400, f"limit must be between 1 and {MAX_ASSOCIATION_PAGE}")
        with lock:
            if sandbox.stores[src].resolve(from_id) is None:
                raise not_found(f"{src[:-1].capitalize()} {from_id} does not exist")
            linked = [
                (to, t) for to, t in sandbox.live_associations(src, from_id, dst).items() if int(to) > after
            ]
            body: dict[str, Any] = {"results": [assoc.render(to, t) for to, t in linked[:limit]]}
            if len(linked) > limit:
                body["paging"] = {"next": {"after": linked[limit - 1][0]}}
            return JSONResponse(body)

    @app.put("/crm/v4/objects/{from_type}/{from_id}/associations/default/{to_type}/{to_id}")
    async def create_default(from_type: str, from_id: str, to_type: str, to_id: str) -> Response:
        src, dst = object_type(from_type), object_type(to_type)
        started = iso_ms(sandbox.clock.now())
        with lock:
            if not sandbox.associate(src, from_id, dst, to_id, []):
                raise not_found(f"Could not associate {src} {from_id} with {dst} {to_id}: not found")
            default = assoc.default_type(src, dst)
            result = _default(default.category, default.type_id, from_id, to_id)
            return _batch(sandbox, started, [result], [], 200)

    @app.put("/crm/v4/objects/{from_type}/{from_id}/associations/{to_type}/{to_id}")
    async def create_labeled(
        from_type: str, from_id: str, to_type: str, to_id: str, request: Request
    ) -> Response:
        src, dst = object_type(from_type), object_type(to_type)
        raw = await _json(request)
        with lock:
            types = assoc.resolve_types(src, dst, raw)
            if not sandbox.associate(src, from_id, dst, to_id, types):
                raise not_found(f"Could not associate {src} {from_id} with {dst} {to_id}: not found")
            return JSONResponse(
                _pair(src, from_id, dst, to_id, [assoc.types[t].label for t in types]), status_code=201
            )

    @app.delete("/crm/v4/objects/{from_type}/{from_id}/associations/{to_type}/{to_id}")
    async def remove(from_type: str, from_id: str, to_type: str, to_id: str) -> Response:
        src, dst = object_type(from_type), object_type(to_type)
        with lock:
            sandbox.unassociate(src, from_id, dst, to_id)
        return Response(status_code=204)


def _pair(src: str, from_id: str, dst: str, to_id: str, labels: list[str | None]) -> dict[str, Any]:
    """A ``LabelsBetweenObjectPair``."""
    return {
        "fromObjectTypeId": OBJECT_TYPE_IDS[src],
        "fromObjectId": int(from_id),
        "toObjectTypeId": OBJECT_TYPE_IDS[dst],
        "toObjectId": int(to_id),
        "labels": [label for label in labels if label],
    }


def _default(category: str, type_id: int, from_id: str, to_id: str) -> dict[str, Any]:
    """A ``PublicDefaultAssociation``."""
    return {
        "from": {"id": from_id},
        "to": {"id": to_id},
        "associationSpec": {"associationCategory": category, "associationTypeId": type_id},
    }


def _no_associations(src: str, dst: str, rid: str) -> dict[str, Any]:
    return {
        "status": "error",
        "category": "OBJECT_NOT_FOUND",
        "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
        "message": f"No {dst[:-1]} is associated with {src[:-1]} {rid}.",
        "context": {"fromObjectId": [rid]},
        "errors": [],
        "links": {},
    }


def _missing_record(src: str, dst: str, from_id: str, to_id: str) -> dict[str, Any]:
    return {
        "status": "error",
        "category": "OBJECT_NOT_FOUND",
        "message": f"One or more of the objects {src[:-1]} {from_id} and {dst[:-1]} {to_id} "
        "do not exist or are archived.",
        "context": {"fromObjectId": [from_id], "toObjectId": [to_id]},
        "errors": [],
        "links": {},
    }
