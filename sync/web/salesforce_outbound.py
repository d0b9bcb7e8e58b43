"""Salesforce Outbound Messaging: parse the SOAP ``notifications`` message safely, build the ACK and faults.

Only the sObject fields are kept; the message's ``SessionId`` (a live Salesforce session) is never read.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from xml.sax.saxutils import escape

from sync.timeutil import parse_timestamp
from sync.web.inbox import BadEvent, NewEvent

_DefusedParser: Callable[..., ET.XMLParser] | None
try:  # defusedxml refuses DTDs, entity expansion and external references
    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import DefusedXMLParser as _DefusedParser
except ImportError:  # pragma: no cover - exercised only where defusedxml is absent
    _DefusedParser = None
    DefusedXmlException = ValueError  # type: ignore[assignment,misc]

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
OUTBOUND_NS = "http://soap.sforce.com/2005/09/outbound"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
MAX_NOTIFICATIONS = 100  # Salesforce sends at most 100 notifications per message
# A notification is six elements deep (Envelope/Body/notifications/Notification/sObject/field); deeper
# documents are refused while parsing, before anything walks the tree recursively.
MAX_XML_DEPTH = 16
XML_MEDIA_TYPES = frozenset({"text/xml", "application/xml", "application/soap+xml"})
_SAFE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,39}$")


class OutboundMessageError(Exception):
    """The body is not a usable outbound message."""


@dataclass
class OutboundMessage:
    """The parts of a ``notifications`` message Closedloop uses."""

    organization_id: str
    action_id: str | None
    events: list[NewEvent] = field(default_factory=list)
    bad: list[BadEvent] = field(default_factory=list)


def parse_outbound_message(body: bytes) -> OutboundMessage:
    """Parse the SOAP envelope; invalid notifications become ``bad`` items, the rest ``events``."""
    root = _parse_xml(body)
    if root.tag != f"{{{SOAP_ENV}}}Envelope":
        raise OutboundMessageError("not a SOAP envelope")
    notifications = root.find(f"{{{SOAP_ENV}}}Body/{{{OUTBOUND_NS}}}notifications")
    if notifications is None:
        raise OutboundMessageError("no notifications element in the SOAP body")
    org_id = _text(notifications.find(f"{{{OUTBOUND_NS}}}OrganizationId"))
    if not org_id:
        raise OutboundMessageError("OrganizationId is missing")
    items = notifications.findall(f"{{{OUTBOUND_NS}}}Notification")
    if len(items) > MAX_NOTIFICATIONS:
        raise OutboundMessageError(f"more than {MAX_NOTIFICATIONS} notifications in one message")
    message = OutboundMessage(org_id, _text(notifications.find(f"{{{OUTBOUND_NS}}}ActionId")))
    for item in items:
        try:
            message.events.append(_notification(item))
        except OutboundMessageError as exc:
            message.bad.append(BadEvent("salesforce", f"invalid outbound notification: {exc}", _dump(item)))
    return message


def org_matches(expected: str, received: str) -> bool:
    """Same org, accepting the 15- and 18-character forms of one ID."""
    if len(expected) == len(received):
        return expected == received
    return len(expected) in (15, 18) and len(received) in (15, 18) and expected[:15] == received[:15]


def ack_envelope() -> str:
    """The documented acknowledgement: ``notificationsResponse`` with ``Ack`` true."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}"><soapenv:Body>'
        f'<notificationsResponse xmlns="{OUTBOUND_NS}"><Ack>true</Ack></notificationsResponse>'
        "</soapenv:Body></soapenv:Envelope>"
    )


def soap_fault(message: str, *, client: bool) -> str:
    """A SOAP 1.1 fault; ``client`` selects ``soapenv:Client`` (sender's fault) over ``soapenv:Server``."""
    code = "soapenv:Client" if client else "soapenv:Server"
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}"><soapenv:Body><soapenv:Fault>'
        f"<faultcode>{code}</faultcode><faultstring>{escape(message)}</faultstring>"
        "</soapenv:Fault></soapenv:Body></soapenv:Envelope>"
    )


class _DepthLimitedBuilder(ET.TreeBuilder):
    """Builds the tree like ``TreeBuilder`` but refuses elements nested deeper than ``limit``."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self._limit = limit
        self._depth = 0

    def start(self, tag: Any, attrs: Any) -> ET.Element:
        self._depth += 1
        if self._depth > self._limit:
            raise OutboundMessageError(f"the XML is nested deeper than {self._limit} elements")
        return super().start(tag, attrs)

    def end(self, tag: Any) -> ET.Element:
        self._depth -= 1
        return super().end(tag)


def _parse_xml(body: bytes) -> ET.Element:
    try:
        if _DefusedParser is not None:
            parser = _DefusedParser(target=_DepthLimitedBuilder(MAX_XML_DEPTH), forbid_dtd=True)
            parser.feed(body)
            return parser.close()
        return _parse_without_dtd(body)
    except LookupError as exc:  # an encoding Python does not know, or one that is not text (rot13)
        raise OutboundMessageError("the XML declares an unsupported encoding; send UTF-8") from exc
    except (ET.ParseError, DefusedXmlException, ValueError) as exc:
        raise OutboundMessageError("the body is not well-formed XML without a DTD") from exc


def _parse_without_dtd(body: bytes) -> ET.Element:  # pragma: no cover - fallback without defusedxml
    parser = ET.XMLParser(target=_DepthLimitedBuilder(MAX_XML_DEPTH))

    def _refuse(*_: Any) -> None:
        raise ValueError("DTDs are not allowed")

    parser.parser.StartDoctypeDeclHandler = _refuse
    parser.feed(body)
    return parser.close()


def _notification(item: ET.Element) -> NewEvent:
    notification_id = _text(item.find(f"{{{OUTBOUND_NS}}}Id"))
    if not notification_id or len(notification_id) > 128:
        raise OutboundMessageError("Notification Id is missing or too long")
    sobject = item.find(f"{{{OUTBOUND_NS}}}sObject")
    if sobject is None:
        raise OutboundMessageError("sObject is missing")
    object_type = (sobject.get(f"{{{XSI_NS}}}type") or "").rpartition(":")[2]
    if not _SAFE_NAME.match(object_type):
        raise OutboundMessageError("sObject xsi:type is missing or not an object name")
    fields = _fields(sobject)
    record_id = fields.get("Id")
    if not isinstance(record_id, str) or not record_id or len(record_id) > 64:
        raise OutboundMessageError("sObject Id is missing or too long")
    return NewEvent(
        source="salesforce",
        event_key=notification_id,
        object_type=object_type,
        record_id=record_id,
        occurred_at=_modified_at(fields),
        payload=fields,
    )


def _fields(sobject: ET.Element) -> dict[str, str | None]:
    fields: dict[str, str | None] = {}
    for child in sobject:
        name = child.tag.rpartition("}")[2]
        nil = child.get(f"{{{XSI_NS}}}nil") == "true"
        fields[name] = None if nil else (child.text or "")
    return fields


def _modified_at(fields: dict[str, str | None]) -> datetime | None:
    for name in ("LastModifiedDate", "SystemModstamp"):
        value = fields.get(name)
        if value:
            try:
                return parse_timestamp(value)
            except (ValueError, OverflowError):
                return None
    return None


def _text(element: ET.Element | None) -> str | None:
    if element is None or element.text is None:
        return None
    return element.text.strip() or None


def _dump(item: ET.Element) -> dict[str, Any]:
    return {"xml": ET.tostring(item, encoding="unicode")[:20_000]}
