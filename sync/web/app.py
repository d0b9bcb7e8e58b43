"""The real-time web process: signed webhooks into the durable inbox, plus health, readiness and metrics.

Every accepted event is committed before the sender gets its 2xx; only then is ``enqueue`` asked to
schedule processing. A failing ``enqueue`` is logged and ignored: polling and the inbox sweep pick
pending rows up anyway.
"""

from __future__ import annotations

import functools
import hmac
import re
import uuid
from collections.abc import Callable, Mapping

import structlog
from fastapi import BackgroundTasks, FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sync import metrics
from sync.config import Settings
from sync.connectors.registry import role_of
from sync.logs import get_logger
from sync.mapping import Mapping as FunnelMapping
from sync.mapping import load_mapping
from sync.store.db import Store
from sync.web.body import RequestRejected, read_limited_body, require_media_type
from sync.web.dashboard import dashboard_router, publish_dashboard_stages
from sync.web.health import ReadyCheck, health_router
from sync.web.hubspot_events import BadPayload, parse_body, split_events
from sync.web.hubspot_signature import SignatureError, verify_signature
from sync.web.inbox import BadEvent, InboxResult, store_events
from sync.web.marketo_events import parse_body as parse_marketo_body
from sync.web.marketo_events import split_calls
from sync.web.salesforce_outbound import (
    XML_MEDIA_TYPES,
    OutboundMessageError,
    ack_envelope,
    org_matches,
    parse_outbound_message,
    soap_fault,
)

log = get_logger(__name__)

Enqueue = Callable[[list[int]], None]
HUBSPOT_PATH = "/webhooks/hubspot"
SALESFORCE_PATH = "/webhooks/salesforce"
MARKETO_PATH = "/webhooks/marketo"
MARKETO_TOKEN_HEADER = "x-closedloop-token"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_XML = "text/xml; charset=utf-8"


def create_app(
    settings: Settings,
    store: Store,
    enqueue: Enqueue,
    ready_checks: Mapping[str, ReadyCheck] | None = None,
    mapping: Callable[[], FunnelMapping] | None = None,
) -> FastAPI:
    """The ASGI app: ``POST /webhooks/{hubspot,marketo,salesforce}``, health and metrics.

    ``/dashboard`` is added only when a dashboard credential is configured; ``mapping`` gives the
    mapping in force (default: loaded once from ``settings.mappings``).
    """
    app = FastAPI(title="Closedloop", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(CorrelationIdMiddleware)
    app.add_exception_handler(Exception, _unhandled_error)
    app.include_router(health_router(store, ready_checks))
    if settings.dashboard_enabled:
        source = mapping or functools.cache(lambda: load_mapping(settings.mappings))
        publish_dashboard_stages(store, source)
        app.include_router(dashboard_router(settings, store, source))

    def roles(connector: str, object_type: str | None) -> str:
        return role_of(settings, connector, object_type)

    @app.post(HUBSPOT_PATH)
    async def hubspot_webhook(request: Request, background: BackgroundTasks) -> Response:
        try:
            body = await _authenticated_hubspot_body(request, settings)
        except RequestRejected as exc:
            metrics.events_rejected_total.labels(source="hubspot", reason=exc.reason).inc()
            log.info("hubspot_webhook_rejected", reason=exc.reason, status=exc.status)
            return JSONResponse({"error": exc.message}, status_code=exc.status)
        try:
            items = parse_body(body)
        except BadPayload as exc:
            excerpt = {"body": body[:20_000].decode("utf-8", "replace")}
            await run_in_threadpool(store_events, store, [], [BadEvent("hubspot", str(exc), excerpt)], roles)
            _count_rejects("hubspot", "bad_payload", 1)
            return JSONResponse({"error": str(exc)}, status_code=400)
        good, bad = split_events(items)
        result = await run_in_threadpool(store_events, store, good, bad, roles)
        _count_stored("hubspot", len(good), result)
        _schedule(background, enqueue, result.new_ids)
        return JSONResponse(
            {"accepted": len(result.new_ids), "duplicates": result.duplicates, "rejected": len(bad)}
        )

    @app.post(MARKETO_PATH)
    async def marketo_webhook(request: Request, background: BackgroundTasks) -> Response:
        try:
            body = await _authenticated_marketo_body(request, settings)
        except RequestRejected as exc:
            metrics.events_rejected_total.labels(source="marketo", reason=exc.reason).inc()
            log.info("marketo_webhook_rejected", reason=exc.reason, status=exc.status)
            return JSONResponse({"error": exc.message}, status_code=exc.status)
        try:
            items = parse_marketo_body(body)
        except BadPayload as exc:
            excerpt = {"body": body[:20_000].decode("utf-8", "replace")}
            await run_in_threadpool(store_events, store, [], [BadEvent("marketo", str(exc), excerpt)], roles)
            _count_rejects("marketo", "bad_payload", 1)
            return JSONResponse({"error": str(exc)}, status_code=400)
        good, bad = split_calls(items)
        result = await run_in_threadpool(store_events, store, good, bad, roles)
        _count_stored("marketo", len(good), result)
        _schedule(background, enqueue, result.new_ids)
        if bad and not good:  # nothing usable: tell the admin testing the webhook
            return JSONResponse({"error": "no valid webhook call in the body", "rejected": len(bad)}, 400)
        return JSONResponse(
            {"accepted": len(result.new_ids), "duplicates": result.duplicates, "rejected": len(bad)}
        )

    @app.post(SALESFORCE_PATH)
    async def salesforce_outbound(request: Request, background: BackgroundTasks) -> Response:
        try:
            body = await _authenticated_salesforce_body(request, settings)
            message = parse_outbound_message(body)
        except RequestRejected as exc:
            metrics.events_rejected_total.labels(source="salesforce", reason=exc.reason).inc()
            log.info("salesforce_outbound_rejected", reason=exc.reason, status=exc.status)
            return _fault(exc.message, exc.status)
        except OutboundMessageError as exc:
            # the body is not stored: an outbound message carries a live Salesforce SessionId
            metrics.events_rejected_total.labels(source="salesforce", reason="bad_payload").inc()
            log.info("salesforce_outbound_rejected", reason="bad_payload", detail=str(exc))
            return _fault(str(exc), 400)
        if not org_matches(settings.salesforce_org_id or "", message.organization_id):
            metrics.events_rejected_total.labels(source="salesforce", reason="wrong_org").inc()
            log.warning("salesforce_outbound_rejected", reason="wrong_org")
            return _fault("OrganizationId does not match this Closedloop installation", 403)
        try:
            result = await run_in_threadpool(store_events, store, message.events, message.bad, roles)
        except Exception:
            log.exception("salesforce_outbound_store_failed", notifications=len(message.events))
            return _fault("could not store the notifications; please retry", 500)
        _count_stored("salesforce", len(message.events), result)
        _schedule(background, enqueue, result.new_ids)
        return Response(ack_envelope(), media_type=_XML)

    return app


async def _authenticated_hubspot_body(request: Request, settings: Settings) -> bytes:
    """The raw body of a correctly signed HubSpot request, else :class:`RequestRejected`."""
    secret = settings.hubspot_webhook_secret.get_secret_value() if settings.hubspot_webhook_secret else ""
    if not secret:
        raise RequestRejected(503, "not_configured", "HubSpot webhooks are disabled: no webhook secret set")
    require_media_type(request, {"application/json"})
    body = await read_limited_body(request, settings.max_request_bytes)
    version = settings.hubspot_signature_version
    header = "x-hubspot-signature-v3" if version == "v3" else "x-hubspot-signature"
    try:
        verify_signature(
            version=version,
            secret=secret,
            method=request.method,
            uri=signed_uri(request, settings),
            body=body,
            signature=request.headers.get(header),
            timestamp=request.headers.get("x-hubspot-request-timestamp"),
        )
    except SignatureError as exc:
        raise RequestRejected(401, exc.reason, str(exc)) from exc
    return body


async def _authenticated_marketo_body(request: Request, settings: Settings) -> bytes:
    """The raw body of a webhook call that carries the shared token in ``X-Closedloop-Token``.

    Marketo does not sign webhook calls; the admin adds the token as a custom header of the
    webhook definition. Compared in constant time; the token is never logged or echoed.
    """
    secret = settings.marketo_webhook_token.get_secret_value() if settings.marketo_webhook_token else ""
    if not secret:
        raise RequestRejected(503, "not_configured", "Marketo webhooks are disabled: no webhook token set")
    token = request.headers.get(MARKETO_TOKEN_HEADER) or ""
    if not hmac.compare_digest(token.encode(), secret.encode()):
        raise RequestRejected(401, "bad_token", "missing or wrong X-Closedloop-Token header")
    require_media_type(request, {"application/json"})
    return await read_limited_body(request, settings.max_request_bytes)


async def _authenticated_salesforce_body(request: Request, settings: Settings) -> bytes:
    """The raw body of an outbound message that carries the shared token (when one is set)."""
    if not settings.salesforce_org_id:
        raise RequestRejected(503, "not_configured", "Salesforce outbound messaging is off: no org ID set")
    require_media_type(request, XML_MEDIA_TYPES)
    body = await read_limited_body(request, settings.max_request_bytes)
    secret = settings.salesforce_outbound_secret
    if secret is not None and secret.get_secret_value():
        token = request.query_params.get("token") or request.headers.get("x-closedloop-token") or ""
        if not hmac.compare_digest(token.encode(), secret.get_secret_value().encode()):
            raise RequestRejected(401, "bad_token", "missing or wrong Closedloop token")
    return body


def signed_uri(request: Request, settings: Settings) -> str:
    """The URI HubSpot called: public base URL, else trusted X-Forwarded-* headers, else the request URL."""
    path = (request.scope.get("raw_path") or request.url.path.encode()).decode("latin-1")
    query = request.scope.get("query_string", b"").decode("latin-1")
    target = path + (f"?{query}" if query else "")
    if settings.public_base_url:
        return settings.public_base_url + target
    scheme = request.url.scheme
    host = request.headers.get("host") or request.url.netloc
    if settings.trust_forwarded_headers:
        scheme = _first(request.headers.get("x-forwarded-proto")) or scheme
        host = _first(request.headers.get("x-forwarded-host")) or host
    return f"{scheme}://{host}{target}"


def _first(value: str | None) -> str | None:
    """The first (client-most) entry of a comma-separated forwarded header."""
    if not value:
        return None
    return value.split(",", 1)[0].strip() or None


def _schedule(background: BackgroundTasks, enqueue: Enqueue, ids: list[int]) -> None:
    if ids:
        background.add_task(_enqueue_safely, enqueue, ids)


def _enqueue_safely(enqueue: Enqueue, ids: list[int]) -> None:
    """Call ``enqueue``; a failure is logged only (the rows stay pending for the sweep)."""
    try:
        enqueue(ids)
    except Exception as exc:
        # the message is left out: broker errors tend to quote the broker URL, password included
        log.warning("enqueue_failed", events=len(ids), error_type=type(exc).__name__)


def _count_stored(source: str, received: int, result: InboxResult) -> None:
    metrics.events_received_total.labels(source=source).inc(received)
    _count_rejects(source, "invalid_item", result.errors)
    log.info(
        "webhook_stored",
        source=source,
        new=len(result.new_ids),
        duplicates=result.duplicates,
        invalid=result.errors,
    )


def _count_rejects(source: str, reason: str, count: int) -> None:
    if count:
        metrics.events_rejected_total.labels(source=source, reason=reason).inc(count)
        metrics.errors_total.labels(category="bad_event").inc(count)


def _fault(message: str, status: int) -> Response:
    return Response(soap_fault(message, client=status < 500), status_code=status, media_type=_XML)


async def _unhandled_error(request: Request, exc: Exception) -> Response:
    """Generic 500 with a correlation ID; the detail goes to the log only."""
    correlation_id = getattr(request.state, "correlation_id", None) or uuid.uuid4().hex
    log.error("unhandled_error", path=request.url.path, correlation_id=correlation_id, exc_info=exc)
    if request.url.path == SALESFORCE_PATH:
        return _fault(f"internal error (correlation id {correlation_id}); please retry", 500)
    return JSONResponse({"error": "internal error", "correlation_id": correlation_id}, status_code=500)


class CorrelationIdMiddleware:
    """Gives each request a correlation ID (a sane incoming ``X-Request-ID`` or a new one).

    It is bound into the structlog context and echoed in the ``X-Request-ID`` response header.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        correlation_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["correlation_id"] = correlation_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).append("X-Request-ID", correlation_id)
            await send(message)

        with structlog.contextvars.bound_contextvars(correlation_id=correlation_id):
            await self.app(scope, receive, send_with_id)
