"""Fuzzing the web process: whatever the body and headers, the answer is never a 5xx."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hubspot.utils.signature import Signature
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from sqlalchemy import func, select

from sync.config import Settings
from sync.store.db import Store, upgrade
from sync.store.models import InboxEvent
from sync.web import create_app

SECRET = "fuzz-secret"
TOKEN = "fuzz-token"
ORG_ID = "00D5e000000FuZzEAF"
URL = "http://testserver/webhooks/hubspot"
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    url = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'closedloop.db'}"
    upgrade(url)
    store = Store(url)
    yield store
    store.dispose()


@pytest.fixture(scope="module")
def client(store: Store) -> TestClient:
    config = Settings(
        hubspot_webhook_secret=SecretStr(SECRET),
        hubspot_signature_version="v3",
        salesforce_org_id=ORG_ID,
        salesforce_outbound_secret=SecretStr(TOKEN),
        public_base_url=None,
        trust_forwarded_headers=False,
        max_request_bytes=8192,
    )
    return TestClient(create_app(config, store, lambda ids: None), raise_server_exceptions=False)


def signed(body: str) -> dict[str, str]:
    timestamp = str(int(time.time() * 1000))
    return {
        "Content-Type": "application/json",
        "X-HubSpot-Signature-v3": Signature.get_signature(SECRET, body, "v3", URL, "POST", timestamp),
        "X-HubSpot-Request-Timestamp": timestamp,
    }


header_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
event_like = st.fixed_dictionaries(
    {},
    optional={
        "eventId": st.integers(min_value=-(2**70), max_value=2**70) | st.text(max_size=5) | st.booleans(),
        "objectId": st.integers(min_value=-5, max_value=2**65)
        | st.none()
        | st.floats(allow_nan=False, allow_infinity=False),
        "occurredAt": st.integers(min_value=-(2**64), max_value=2**64) | st.text(max_size=5),
        "subscriptionType": st.text(max_size=30)
        | st.sampled_from(["contact.creation", "object.merge", ".x"]),
        "objectTypeId": st.text(max_size=8) | st.sampled_from(["0-1", "0-3", "2-123"]),
        "propertyValue": json_values,
    },
)


@FUZZ
@given(
    body=st.binary(max_size=300) | st.text(max_size=300).map(str.encode),
    headers=st.dictionaries(
        st.sampled_from(
            [
                "Content-Type",
                "X-HubSpot-Signature-v3",
                "X-HubSpot-Request-Timestamp",
                "X-Forwarded-Host",
                "Host",
            ]
        ),
        header_text,
    ),
)
def test_unsigned_garbage_is_refused_without_5xx(
    client: TestClient, body: bytes, headers: dict[str, str]
) -> None:
    response = client.post("/webhooks/hubspot", content=body, headers=headers)
    assert response.status_code in (400, 401, 413, 415)


@FUZZ
@given(payload=json_values)
def test_signed_arbitrary_json_never_5xx(client: TestClient, payload: Any) -> None:
    body = json.dumps(payload)
    response = client.post("/webhooks/hubspot", content=body, headers=signed(body))
    assert response.status_code in (200, 400, 413)
    assert (response.status_code == 200) == (isinstance(payload, list) and len(body) <= 8192)


valid_event = st.fixed_dictionaries(
    {
        "eventId": st.integers(min_value=0, max_value=50),  # small range: replays happen
        "objectId": st.integers(min_value=0, max_value=2**63 - 1),
        "occurredAt": st.integers(min_value=0, max_value=253_402_300_799_999),
        "subscriptionType": st.sampled_from(["contact.creation", "contact.propertyChange", "object.merge"]),
    },
    optional={"propertyValue": json_values, "objectTypeId": st.sampled_from(["0-1", "0-2", "2-99"])},
)


@FUZZ
@given(items=st.lists(event_like | valid_event, max_size=8))
def test_signed_event_lists_are_fully_accounted_for(
    client: TestClient, store: Store, items: list[Any]
) -> None:
    body = json.dumps(items)
    with store.session() as session:
        before = session.scalar(select(func.count(InboxEvent.id))) or 0
    response = client.post("/webhooks/hubspot", content=body, headers=signed(body))
    assert response.status_code == 200
    counts = response.json()
    assert counts["accepted"] + counts["duplicates"] + counts["rejected"] == len(items)
    with store.session() as session:
        after = session.scalar(select(func.count(InboxEvent.id))) or 0
    assert after - before == counts["accepted"]


soap_text = st.text(alphabet=st.characters(blacklist_categories=["Cs", "Cc"]), max_size=20)


def envelope(org_id: str, notifications: list[tuple[str, str, str]]) -> str:
    def esc(value: str) -> str:
        return value.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")

    parts = "".join(
        f'<Notification><Id>{esc(nid)}</Id><sObject xsi:type="{esc(kind)}" xmlns:sf="urn:sobject">'
        f"<sf:Id>{esc(rid)}</sf:Id></sObject></Notification>"
        for nid, kind, rid in notifications
    )
    return (
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>'
        f'<notifications xmlns="http://soap.sforce.com/2005/09/outbound"><OrganizationId>{esc(org_id)}'
        f"</OrganizationId>{parts}</notifications></soapenv:Body></soapenv:Envelope>"
    )


@FUZZ
@given(
    org_id=st.sampled_from([ORG_ID, ORG_ID[:15], ""]) | soap_text,
    notifications=st.lists(
        st.tuples(soap_text, st.sampled_from(["sf:Lead", "sf:Contact", "Lead", ""]) | soap_text, soap_text),
        max_size=5,
    ),
)
def test_structured_outbound_messages_never_5xx(
    client: TestClient, org_id: str, notifications: list[tuple[str, str, str]]
) -> None:
    body = envelope(org_id, notifications)
    headers = {"Content-Type": "text/xml", "X-Closedloop-Token": TOKEN}
    response = client.post("/webhooks/salesforce", content=body.encode(), headers=headers)
    assert response.status_code in (200, 400, 403, 413)


@FUZZ
@given(
    body=st.binary(max_size=300) | st.text(max_size=300).map(str.encode),
    content_type=st.sampled_from(["text/xml", "application/xml", "text/plain", ""]) | header_text,
    token=st.sampled_from([TOKEN, ""]) | header_text,
)
def test_raw_outbound_bodies_never_5xx(
    client: TestClient, body: bytes, content_type: str, token: str
) -> None:
    headers = {"Content-Type": content_type, "X-Closedloop-Token": token}
    response = client.post("/webhooks/salesforce", content=body, headers=headers)
    assert response.status_code in (400, 401, 403, 413, 415)


def test_fuzz_store_is_still_healthy(client: TestClient) -> None:
    assert client.get("/readyz").status_code == 200


def nested(depth: int, where: str) -> str:
    """An outbound message with ``depth`` nested elements at ``where`` (Python recursion is ~1000 deep)."""
    deep = "<a>" * depth + "</a>" * depth
    sobject = '<sObject xsi:type="sf:Lead" xmlns:sf="urn:sobject">{}<sf:Id>00Q1</sf:Id></sObject>'
    inside = {
        "notification": f"<Notification><Id>n1</Id>{deep}</Notification>",
        "sobject": f"<Notification><Id>n1</Id>{sobject.format(deep)}</Notification>",
        "envelope": "",
    }[where]
    body = envelope(ORG_ID, []).replace("</notifications>", f"{inside}</notifications>")
    return body.replace("</soapenv:Envelope>", f"{deep}</soapenv:Envelope>") if where == "envelope" else body


def xml_declaring(encoding: str) -> bytes:
    return f'<?xml version="1.0" encoding="{encoding}"?>{envelope(ORG_ID, [])}'.encode()


def post_outbound(client: TestClient, body: bytes) -> Any:
    headers = {"Content-Type": "text/xml", "X-Closedloop-Token": TOKEN}
    return client.post("/webhooks/salesforce", content=body, headers=headers)


@pytest.mark.parametrize("where", ["notification", "sobject", "envelope"])
def test_thousands_of_nested_elements_get_a_client_fault(client: TestClient, where: str) -> None:
    body = nested(1100, where).encode()
    assert len(body) <= 8192  # under the size limit: the parser, not the limit, must refuse it
    response = post_outbound(client, body)
    assert response.status_code == 400, response.text
    assert "<faultcode>soapenv:Client</faultcode>" in response.text
    assert "nested deeper than" in response.text


@pytest.mark.parametrize("encoding", ["x-bogus", "rot13", "base64", "zlib", "mbcs", "utf-7", "undefined"])
def test_unknown_or_non_text_encodings_get_a_client_fault(client: TestClient, encoding: str) -> None:
    response = post_outbound(client, xml_declaring(encoding))
    assert response.status_code == 400, response.text
    assert "<faultcode>soapenv:Client</faultcode>" in response.text


@FUZZ
@given(
    depth=st.integers(min_value=17, max_value=1100),
    where=st.sampled_from(["notification", "sobject", "envelope"]),
)
def test_any_depth_beyond_the_limit_is_refused_without_5xx(
    client: TestClient, depth: int, where: str
) -> None:
    assert post_outbound(client, nested(depth, where).encode()).status_code == 400


@FUZZ
@given(encoding=st.from_regex(r"[A-Za-z][A-Za-z0-9._-]{0,15}", fullmatch=True))
def test_any_declared_encoding_never_5xx(client: TestClient, encoding: str) -> None:
    # Encodings Python knows and that fit the bytes are parsed (the org then matches: 200).
    assert post_outbound(client, xml_declaring(encoding)).status_code in (200, 400)


def test_a_real_notification_nests_within_the_limit(client: TestClient) -> None:
    body = envelope(ORG_ID, [("n-depth", "sf:Lead", "00Q000000000001")]).encode()
    assert post_outbound(client, body).status_code == 200
