"""Webhook delivery for the HubSpot sandbox (https://developers.hubspot.com/docs/api/webhooks).

Contact events (creation, deletion, merge, propertyChange) and, when subscribed, deal events
(creation, deletion, propertyChange, associationChange).

Events are batched (at most 100 per POST) into a JSON array and signed both ways HubSpot does:
``X-HubSpot-Signature`` (v1: SHA-256 hex of secret + body, announced by
``X-HubSpot-Signature-Version: v1``) and ``X-HubSpot-Signature-v3`` (base64 HMAC-SHA256 with the
client secret over method + URI + body + ``X-HubSpot-Request-Timestamp``;
https://developers.hubspot.com/docs/api/webhooks/validating-requests). Failed deliveries
(non-2xx or connection error) are retried with exponential backoff and a growing
``attemptNumber``, up to ``max_attempts`` deliveries per event.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import itertools
import json
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from sandboxes.hubspot_store import ChangeEvent

MAX_BATCH = 100
_USER_AGENT = "HubSpot Connect 2.0 (http://dev.hubspot.com/) (namespace: webhooks-nio-http-client)"


def sign_v3(client_secret: str, method: str, uri: str, body: str, timestamp_ms: str) -> str:
    """HubSpot's v3 request signature."""
    message = f"{method}{uri}{body}{timestamp_ms}".encode()
    return base64.b64encode(hmac.new(client_secret.encode(), message, hashlib.sha256).digest()).decode()


def sign_v1(client_secret: str, body: str) -> str:
    """HubSpot's v1 webhook signature."""
    return hashlib.sha256(f"{client_secret}{body}".encode()).hexdigest()


@dataclass
class _Pending:
    payload: dict[str, Any]
    due: float  # monotonic time of the next attempt


@dataclass
class Delivery:
    """One POST attempt, kept for tests and benchmarks."""

    at: float
    event_ids: list[int]
    attempt_numbers: list[int]
    status: int | None  # None: connection error
    error: str | None = None


@dataclass
class WebhookSettings:
    target_url: str | None = None
    client_secret: str = ""
    properties: set[str] = field(default_factory=set)
    max_attempts: int = 10
    retry_base_seconds: float = 1.0
    deal_properties: set[str] | None = None  # None: no deal subscriptions at all
    retry_max_seconds: float = 3600.0
    timeout_seconds: float = 5.0
    poll_seconds: float = 0.02


class WebhookQueue:
    """Queue of subscribed events plus a background delivery thread."""

    def __init__(self, portal_id: int, app_id: int) -> None:
        self.portal_id = portal_id
        self.app_id = app_id
        self.settings = WebhookSettings()
        self._lock = threading.Lock()
        self._pending: list[_Pending] = []
        self._ids = itertools.count(1)
        self._subscription_ids: dict[str, int] = {}
        self.deliveries: list[Delivery] = []
        self.dead_letters: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sending = 0

    def configure(self, settings: WebhookSettings) -> None:
        with self._lock:
            self.settings = settings
            for kind in ("contact.creation", "contact.deletion", "contact.merge"):
                self._subscription_ids.setdefault(kind, 100_000 + len(self._subscription_ids))
            for prop in sorted(settings.properties):
                self._subscription_ids.setdefault(
                    f"contact.propertyChange:{prop}", 100_000 + len(self._subscription_ids)
                )
            if settings.deal_properties is not None:
                for kind in ("deal.creation", "deal.deletion", "deal.associationChange"):
                    self._subscription_ids.setdefault(kind, 100_000 + len(self._subscription_ids))
                for prop in sorted(settings.deal_properties):
                    self._subscription_ids.setdefault(
                        f"deal.propertyChange:{prop}", 100_000 + len(self._subscription_ids)
                    )

    def enqueue(self, events: list[ChangeEvent]) -> None:
        """Turn store change events into subscribed webhook payloads."""
        with self._lock:
            if self.settings.target_url is None:
                return
            now = time.monotonic()
            for ev in events:
                payload = self._payload(ev)
                if payload is not None:
                    self._pending.append(_Pending(payload, now))

    def _subscribed(self, ev: ChangeEvent) -> bool:
        if ev.object_type == "deal":
            props = self.settings.deal_properties
            if props is None:
                return False
            return ev.kind != "propertyChange" or ev.property_name in props
        if ev.kind == "associationChange":
            return False  # contact.associationChange is not subscribed
        return ev.kind != "propertyChange" or ev.property_name in self.settings.properties

    def _payload(self, ev: ChangeEvent) -> dict[str, Any] | None:
        if not self._subscribed(ev):
            return None
        sub_type = key = f"{ev.object_type}.{ev.kind}"
        if ev.kind == "propertyChange":
            key = f"{sub_type}:{ev.property_name}"
        payload: dict[str, Any] = {
            "eventId": next(self._ids),
            "subscriptionId": self._subscription_ids.get(key, 0),
            "portalId": self.portal_id,
            "appId": self.app_id,
            "occurredAt": int(ev.occurred_at.timestamp() * 1000),
            "subscriptionType": sub_type,
            "attemptNumber": 0,
            "objectId": int(ev.object_id),
            "changeFlag": {"creation": "NEW", "deletion": "DELETED", "merge": "MERGED"}.get(
                ev.kind, "UPDATED"
            ),
            "changeSource": ev.source.change_source,
            "sourceId": ev.source.source_id,
        }
        if ev.kind == "propertyChange":
            payload["propertyName"] = ev.property_name
            payload["propertyValue"] = ev.property_value
            payload.pop("changeFlag")
        if ev.kind == "associationChange":
            # Association events name both ends instead of one object
            # (https://developers.hubspot.com/docs/api/webhooks, "Association change events").
            for name in ("objectId", "changeFlag"):
                payload.pop(name)
        payload.update(ev.extra)
        return payload

    # ----- delivery ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the background delivery thread (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="hubspot-sandbox-webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the delivery thread; undelivered events stay queued."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._thread = None

    def pending(self) -> int:
        """Events queued or in flight."""
        with self._lock:
            return len(self._pending) + self._sending

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Block until no event is queued or in flight; False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pending() == 0:
                return True
            time.sleep(0.01)
        return self.pending() == 0

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self.deliver_due():
                self._stop.wait(self.settings.poll_seconds)

    def deliver_due(self) -> bool:
        """Send one batch of due events; True if something was sent."""
        with self._lock:
            settings = self.settings
            now = time.monotonic()
            due = [p for p in self._pending if p.due <= now][:MAX_BATCH]
            if not due or settings.target_url is None:
                return False
            ids = {id(p) for p in due}
            self._pending = [p for p in self._pending if id(p) not in ids]
            self._sending += len(due)
        try:
            ok, status, error = self._post(settings, [p.payload for p in due])
            with self._lock:
                self.deliveries.append(
                    Delivery(
                        time.monotonic(),
                        [p.payload["eventId"] for p in due],
                        [p.payload["attemptNumber"] for p in due],
                        status,
                        error,
                    )
                )
                if not ok:
                    self._reschedule(settings, due)
        finally:
            with self._lock:
                self._sending -= len(due)
        return True

    def _reschedule(self, settings: WebhookSettings, batch: list[_Pending]) -> None:
        for item in batch:
            attempt = int(item.payload["attemptNumber"]) + 1
            if attempt >= settings.max_attempts:
                self.dead_letters.append(item.payload)
                continue
            delay = min(settings.retry_base_seconds * (2 ** (attempt - 1)), settings.retry_max_seconds)
            item.payload = {**item.payload, "attemptNumber": attempt}
            item.due = time.monotonic() + delay
            self._pending.append(item)

    def _post(
        self, settings: WebhookSettings, events: list[dict[str, Any]]
    ) -> tuple[bool, int | None, str | None]:
        assert settings.target_url is not None
        body = json.dumps(events, separators=(",", ":"))
        # Signature freshness is checked against real time by receivers, so the request
        # timestamp is wall-clock even when the sandbox clock is accelerated.
        timestamp = str(int(time.time() * 1000))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": _USER_AGENT,
            "X-HubSpot-Signature": sign_v1(settings.client_secret, body),
            "X-HubSpot-Signature-Version": "v1",
            "X-HubSpot-Signature-v3": sign_v3(
                settings.client_secret, "POST", settings.target_url, body, timestamp
            ),
            "X-HubSpot-Request-Timestamp": timestamp,
        }
        # http.client keeps header names as written (urllib.request would re-case them).
        parts = urllib.parse.urlsplit(settings.target_url)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        conn_cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        try:
            conn = conn_cls(parts.hostname or "127.0.0.1", parts.port, timeout=settings.timeout_seconds)
            try:
                conn.request("POST", path, body=body.encode(), headers=headers)
                status = conn.getresponse().status
            finally:
                conn.close()
        except (OSError, http.client.HTTPException) as exc:
            return False, None, type(exc).__name__
        return 200 <= status < 300, status, None
