"""Outbound messages: queued notifications delivered as SOAP ``notifications`` calls until ACKed.

Format from the outbound messaging WSDL (SOAP API Developer Guide, "Understanding the Outbound
Messaging WSDL"): ``notifications`` in namespace ``http://soap.sforce.com/2005/09/outbound`` with
OrganizationId, ActionId, SessionId (nillable), EnterpriseUrl, PartnerUrl and up to 100
``Notification`` elements (Id + ``sObject`` typed ``sf:Lead`` etc.). The listener must answer
``notificationsResponse`` with ``<Ack>true</Ack>``; otherwise Salesforce retries with growing intervals
and drops messages after 24 hours. Each message carries one object type and the record's current data.
"""

from __future__ import annotations

import threading
import time
import xml.etree.ElementTree as ET  # parses the ACK from a local receiver we configured
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import requests

from sandboxes.common import SimClock
from sandboxes.salesforce import ids
from sandboxes.salesforce.store import Change, Store

OM_NS = "http://soap.sforce.com/2005/09/outbound"
SOAPENV_NS = "http://schemas.xmlsoap.org/soap/envelope/"
SF_NS = "urn:sobject.enterprise.soap.sforce.com"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
MAX_PER_MESSAGE = 100
MAX_AGE = timedelta(hours=24)
DEFAULT_FIELDS: dict[str, list[str]] = {
    "Lead": [
        "Id",
        "Closedloop_Id__c",
        "Email",
        "Status",
        "IsConverted",
        "ConvertedContactId",
        "ConvertedOpportunityId",
        "LastModifiedDate",
        "SystemModstamp",
    ],
    "Opportunity": [
        "Id",
        "Name",
        "StageName",
        "IsClosed",
        "IsWon",
        "Amount",
        "CloseDate",
        "Loss_Reason__c",
        "AccountId",
        "LastModifiedDate",
        "SystemModstamp",
    ],
}

ET.register_namespace("soapenv", SOAPENV_NS)
ET.register_namespace("sf", SF_NS)
ET.register_namespace("xsi", XSI_NS)


@dataclass
class Notification:
    """One queued notification; ``due`` is a monotonic time."""

    notification_id: str
    sobject: str
    record_id: str
    queued_at: datetime
    attempts: int = 0
    due: float = 0.0


def _soap_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return f"{value:.1f}"
    return str(value)


def build_message(
    org_id: str, action_id: str, instance_url: str, version: str, items: list[tuple[str, str, dict[str, Any]]]
) -> bytes:
    """The SOAP envelope for ``items`` of (notification id, sobject, field values)."""
    envelope = ET.Element(f"{{{SOAPENV_NS}}}Envelope")
    body = ET.SubElement(envelope, f"{{{SOAPENV_NS}}}Body")
    notifications = ET.SubElement(body, f"{{{OM_NS}}}notifications")
    ET.SubElement(notifications, f"{{{OM_NS}}}OrganizationId").text = org_id
    ET.SubElement(notifications, f"{{{OM_NS}}}ActionId").text = action_id
    ET.SubElement(notifications, f"{{{OM_NS}}}SessionId", {f"{{{XSI_NS}}}nil": "true"})
    ET.SubElement(
        notifications, f"{{{OM_NS}}}EnterpriseUrl"
    ).text = f"{instance_url}/services/Soap/c/{version}/{org_id[:15]}"
    ET.SubElement(
        notifications, f"{{{OM_NS}}}PartnerUrl"
    ).text = f"{instance_url}/services/Soap/u/{version}/{org_id[:15]}"
    for notification_id, sobject, values in items:
        node = ET.SubElement(notifications, f"{{{OM_NS}}}Notification")
        ET.SubElement(node, f"{{{OM_NS}}}Id").text = notification_id
        sobj = ET.SubElement(node, f"{{{OM_NS}}}sObject", {f"{{{XSI_NS}}}type": f"sf:{sobject}"})
        for name, value in values.items():
            if value is None:
                ET.SubElement(sobj, f"{{{SF_NS}}}{name}", {f"{{{XSI_NS}}}nil": "true"})
            else:
                ET.SubElement(sobj, f"{{{SF_NS}}}{name}").text = _soap_value(value)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(
        envelope, encoding="utf-8", xml_declaration=False
    )


def is_ack(payload: bytes) -> bool:
    """Whether a listener's response is ``notificationsResponse`` with ``Ack`` true."""
    try:
        root = ET.fromstring(payload)
    except ET.ParseError:
        return False
    ack = root.find(f".//{{{OM_NS}}}notificationsResponse/{{{OM_NS}}}Ack")
    return ack is not None and (ack.text or "").strip().lower() in ("true", "1")


class OutboundMessenger:
    """Queues notifications for configured objects and delivers them from a background thread."""

    def __init__(
        self,
        store: Store,
        clock: SimClock,
        org_id: str,
        instance_url: Callable[[], str],
        version: str = "59.0",
    ) -> None:
        self.store = store
        self.clock = clock
        self.org_id = org_id
        self.instance_url = instance_url
        self.version = version
        self.url: str | None = None
        self.objects: set[str] = set()
        self.fields: dict[str, list[str]] = {}
        self.retry_base = 1.0
        self.retry_cap = 60.0
        self.timeout = 5.0
        self.delivered: list[str] = []  # notification ids ACKed, in order
        self.attempts = 0  # HTTP POSTs made
        self.dropped = 0
        self._queue: list[Notification] = []
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._seq = 0
        self._http = requests.Session()

    def configure(
        self,
        url: str | None,
        objects: list[str],
        fields: dict[str, list[str]] | None,
        retry_base_seconds: float,
    ) -> None:
        """Set the endpoint, objects and fields (``Id`` is always sent)."""
        with self._cond:
            self.url = url
            self.objects = set(objects)
            chosen = {o: list((fields or {}).get(o) or DEFAULT_FIELDS.get(o, ["Id"])) for o in objects}
            self.fields = {o: (["Id"] + [f for f in fs if f != "Id"]) for o, fs in chosen.items()}
            self.retry_base = retry_base_seconds
            self.retry_cap = max(retry_base_seconds * 64, retry_base_seconds)
            self._cond.notify_all()

    def on_changes(self, changes: list[Change]) -> None:
        """Store listener: queue a notification per committed create/update of a configured object."""
        with self._cond:
            if self.url is None:
                return
            now = self.clock.now()
            for change in changes:
                if change.sobject in self.objects:
                    self._seq += 1
                    self._queue.append(
                        Notification(
                            ids.make_id("04l", self._seq),
                            change.sobject,
                            change.record_id,
                            now,
                            due=time.monotonic(),
                        )
                    )
            self._cond.notify_all()

    def pending(self) -> int:
        """Notifications not yet acknowledged."""
        with self._cond:
            return len(self._queue)

    def start(self) -> None:
        """Start the delivery thread (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="sf-outbound", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the delivery thread; queued notifications stay queued."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout + 2)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            batch = self._next_batch()
            if batch:
                self.deliver(batch)

    def _next_batch(self) -> list[Notification]:
        with self._cond:
            now_sim = self.clock.now()
            expired = [n for n in self._queue if now_sim - n.queued_at > MAX_AGE]
            for n in expired:
                self._queue.remove(n)
                self.dropped += 1
            now = time.monotonic()
            due = [n for n in self._queue if n.due <= now]
            if not due or self.url is None:
                wait = min((n.due for n in self._queue), default=now + 0.5) - now
                self._cond.wait(timeout=max(0.01, min(wait, 0.5)))
                return []
            sobject = due[0].sobject
            return [n for n in due if n.sobject == sobject][:MAX_PER_MESSAGE]

    def deliver(self, batch: list[Notification]) -> bool:
        """POST one message for ``batch``; on ACK remove them, otherwise schedule a retry."""
        url = self.url
        if url is None or not batch:
            return False
        sobject = batch[0].sobject
        items: list[tuple[str, str, dict[str, Any]]] = []
        with self.store.lock:
            for n in batch:
                record = self.store.find(sobject, n.record_id) or {}
                items.append(
                    (n.notification_id, sobject, {f: record.get(f) for f in self.fields.get(sobject, ["Id"])})
                )
        payload = build_message(
            self.org_id,
            ids.make_id("04k", 1 + sorted(self.objects).index(sobject)),
            self.instance_url(),
            self.version,
            items,
        )
        acked = False
        try:
            self.attempts += 1
            response = self._http.post(
                url,
                data=payload,
                timeout=self.timeout,
                headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'},
            )
            acked = response.status_code == 200 and is_ack(response.content)
        except requests.RequestException:
            acked = False
        with self._cond:
            if acked:
                done = {n.notification_id for n in batch}
                self._queue = [n for n in self._queue if n.notification_id not in done]
                self.delivered.extend(n.notification_id for n in batch)
            else:
                for n in batch:
                    n.attempts += 1
                    n.due = time.monotonic() + min(self.retry_base * 2 ** (n.attempts - 1), self.retry_cap)
        return acked
