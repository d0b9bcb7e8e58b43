"""The real-time path on loopback: Closedloop's web app served in a thread, both sandboxes delivering to it.

Used by the webhook integration test, ``bench/latency.py`` and anyone who wants the sandboxes to push
changes instead of being polled. Optionally records every webhook request as received, so a test can
deliver them again (HubSpot requests re-signed with a fresh timestamp, as HubSpot does on a retry).
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from sandboxes.common import ServerThread
from sandboxes.hubspot_webhooks import sign_v1, sign_v3
from sandboxes.server import Sandboxes
from sync.config import Settings
from sync.mapping import Mapping
from sync.store.db import Store
from sync.store.models import InboxEvent
from sync.web.app import HUBSPOT_PATH, SALESFORCE_PATH, Enqueue, create_app
from sync.web.health import ReadyCheck

_WEBHOOK_PATHS = (HUBSPOT_PATH, SALESFORCE_PATH)


def webhook_properties(mapping: Mapping) -> list[str]:
    """The HubSpot contact properties whose changes Closedloop subscribes to: the ones the mapping reads."""
    return sorted(mapping.ma_properties())


@dataclass(frozen=True)
class CapturedRequest:
    """One webhook request exactly as the web app received it."""

    path: str
    headers: dict[str, str]
    body: bytes
    status: int


class RequestRecorder:
    """ASGI wrapper that keeps a copy of every webhook POST and the status it was answered with."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.requests: list[CapturedRequest] = []
        self.enabled = True
        self._lock = threading.Lock()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") != "http" or scope.get("path") not in _WEBHOOK_PATHS or not self.enabled:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        status: list[int] = []

        async def recording_receive() -> Any:
            message = await receive()
            if message.get("type") == "http.request":
                chunks.append(message.get("body", b""))
            return message

        async def recording_send(message: Any) -> None:
            if message.get("type") == "http.response.start":
                status.append(int(message["status"]))
            await send(message)

        await self.app(scope, recording_receive, recording_send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
        captured = CapturedRequest(str(scope["path"]), headers, b"".join(chunks), status[0] if status else 0)
        with self._lock:
            self.requests.append(captured)

    def snapshot(self) -> list[CapturedRequest]:
        with self._lock:
            return list(self.requests)


@dataclass
class RealtimeLink:
    """Closedloop's web app on a loopback port, subscribed to both sandboxes' change notifications."""

    settings: Settings
    store: Store
    enqueue: Enqueue
    boxes: Sandboxes
    properties: list[str]
    ready_checks: dict[str, ReadyCheck] | None = None
    record: bool = False
    retry_base_seconds: float = 0.2
    deal_properties: list[str] | None = None  # also subscribe deal events (HubSpot as the sales side)
    recorder: RequestRecorder | None = field(default=None, init=False)
    server: ServerThread | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        assert self.server is not None, "start() first"
        return self.server.url

    def start(self) -> RealtimeLink:
        """Serve the web app, point HubSpot webhooks and Salesforce outbound messages at it, start delivery."""
        secret = self.settings.hubspot_webhook_secret
        if secret is None or not self.settings.salesforce_org_id:
            raise ValueError("set CLOSEDLOOP_HUBSPOT_WEBHOOK_SECRET and CLOSEDLOOP_SALESFORCE_ORG_ID first")
        app: Any = create_app(self.settings, self.store, self.enqueue, self.ready_checks)
        if self.record:
            app = self.recorder = RequestRecorder(app)
        self.server = ServerThread(app).start()
        hubspot, salesforce = self.boxes.hubspot, self.boxes.salesforce
        hubspot.configure_webhooks(
            self.url + HUBSPOT_PATH,
            secret.get_secret_value(),
            self.properties,
            retry_base_seconds=self.retry_base_seconds,
            deal_properties=self.deal_properties,
        )
        salesforce.instance_url = self.boxes.salesforce_url
        salesforce.configure_outbound(self.url + SALESFORCE_PATH, retry_base_seconds=self.retry_base_seconds)
        hubspot.start_webhook_delivery()
        salesforce.start_outbound_delivery()
        return self

    def stop(self) -> None:
        """Stop delivery and unsubscribe, then stop the web server."""
        self.boxes.hubspot.stop_webhook_delivery()
        self.boxes.salesforce.stop_outbound_delivery()
        self.boxes.hubspot.configure_webhooks(None, "", [])
        self.boxes.salesforce.configure_outbound(None)
        if self.server is not None:
            self.server.stop()
            self.server = None

    def sandbox_backlog(self) -> int:
        """Notifications the sandboxes have not had acknowledged yet (queued or in flight)."""
        return self.boxes.hubspot.webhooks.pending() + self.boxes.salesforce.outbound.pending()

    def wait_until_quiet(self, timeout: float = 30.0, settle: float = 0.3) -> None:
        """Block until nothing is queued in the sandboxes and every inbox event is processed.

        Closedloop's own writes come back as notifications (echoes), so quiet must hold for
        ``settle`` seconds with no new inbox row before it counts.
        """
        deadline = time.monotonic() + timeout
        quiet_since: float | None = None
        last_total = -1
        while True:
            pending, total = inbox_counts(self.store)
            busy = pending > 0 or self.sandbox_backlog() > 0
            if busy or total != last_total:
                quiet_since = None
                last_total = total
            elif quiet_since is None:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= settle:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"not quiet after {timeout}s: {pending} inbox events pending, "
                    f"{self.sandbox_backlog()} sandbox notifications unacknowledged"
                )
            time.sleep(0.02)


def inbox_counts(store: Store) -> tuple[int, int]:
    """(pending, total) inbox events."""
    with store.session() as session:
        pending = session.execute(
            select(func.count()).select_from(InboxEvent).where(InboxEvent.status == "pending")
        ).scalar_one()
        total = session.execute(select(func.count()).select_from(InboxEvent)).scalar_one()
    return int(pending), int(total)


def rekey(request: CapturedRequest, suffix: str) -> CapturedRequest:
    """The same notifications under new event IDs (a sender that lost its own delivery record)."""
    if request.path == HUBSPOT_PATH:
        events = json.loads(request.body)
        for event in events:
            event["eventId"] = int(f"{event['eventId']}{suffix}")
        body = json.dumps(events, separators=(",", ":")).encode()
    else:
        body = request.body.replace(b"<Id>04l", f"<Id>{suffix}04l".encode())
    return CapturedRequest(request.path, request.headers, body, request.status)


def redeliver(
    requests: Sequence[CapturedRequest],
    base_url: str,
    hubspot_secret: str,
    on_response: Callable[[CapturedRequest, int, bytes], None] | None = None,
) -> list[tuple[int, bytes]]:
    """POST each request again to ``base_url``; HubSpot ones signed afresh (v1 and v3, new timestamp)."""
    out: list[tuple[int, bytes]] = []
    parts = urllib.parse.urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    try:
        for request in requests:
            headers = {
                k: v for k, v in request.headers.items() if k not in ("host", "content-length", "connection")
            }
            if request.path == HUBSPOT_PATH:
                timestamp = str(int(time.time() * 1000))
                body_text = request.body.decode()
                headers["x-hubspot-request-timestamp"] = timestamp
                headers["x-hubspot-signature-v3"] = sign_v3(
                    hubspot_secret, "POST", base_url + request.path, body_text, timestamp
                )
                headers["x-hubspot-signature"] = sign_v1(hubspot_secret, body_text)
            conn.request("POST", request.path, body=request.body, headers=headers)
            response = conn.getresponse()
            payload = response.read()
            out.append((response.status, payload))
            if on_response is not None:
                on_response(request, response.status, payload)
    finally:
        conn.close()
    return out
