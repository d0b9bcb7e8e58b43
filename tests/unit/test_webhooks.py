"""The web process end to end: real app, real SQLite store (migrated), HubSpot signed with its own client."""

from __future__ import annotations

import json
import shutil
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hubspot.utils.signature import Signature
from prometheus_client import REGISTRY
from sqlalchemy import select, text
from structlog.testing import capture_logs

from sync.config import Settings
from sync.store.db import Store, upgrade
from sync.store.models import InboxEvent, SyncError
from sync.web import create_app

SECRET = "hs-app-secret-0b7e3c"
SF_TOKEN = "sf-shared-token-77d1"
ORG_ID = "00D5e000000AbCdEAF"
BASE = "http://testserver"
HS_URL = f"{BASE}/webhooks/hubspot"
SF_NS = "http://soap.sforce.com/2005/09/outbound"


class Enqueued:
    """Records the inbox IDs handed to ``enqueue``; can be told to fail."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []
        self.fail = False

    def __call__(self, ids: list[int]) -> None:
        self.calls.append(list(ids))
        if self.fail:
            raise ConnectionError("broker down: redis://:hunter2@broker:6379/0")


@pytest.fixture(scope="module")
def migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated database per module; each test gets its own copy (migrating is the slow part)."""
    path = tmp_path_factory.mktemp("template") / "closedloop.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def store(tmp_path: Path, migrated_db: Path) -> Iterator[Store]:
    path = tmp_path / "closedloop.db"
    shutil.copyfile(migrated_db, path)
    store = Store(f"sqlite:///{path}")
    yield store
    store.dispose()


@pytest.fixture
def enqueued() -> Enqueued:
    return Enqueued()


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "hubspot_webhook_secret": SECRET,
        "hubspot_signature_version": "v3",
        "salesforce_org_id": ORG_ID,
        "salesforce_outbound_secret": None,
        "public_base_url": None,
        "trust_forwarded_headers": False,
        "max_request_bytes": 64 * 1024,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def make_client(store: Store, enqueued: Enqueued) -> Callable[..., TestClient]:
    def _make(ready_checks: dict[str, Callable[[], bool]] | None = None, **overrides: Any) -> TestClient:
        app = create_app(make_settings(**overrides), store, enqueued, ready_checks)
        return TestClient(app, raise_server_exceptions=False)

    return _make


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


def event(event_id: int, object_id: int = 501, **extra: Any) -> dict[str, Any]:
    return {
        "eventId": event_id,
        "subscriptionId": 12345,
        "portalId": 62515,
        "appId": 54321,
        "occurredAt": 1_700_000_000_000 + event_id,
        "subscriptionType": "contact.propertyChange",
        "attemptNumber": 0,
        "objectId": object_id,
        "propertyName": "lifecyclestage",
        "propertyValue": "marketingqualifiedlead",
        **extra,
    }


def signed_headers(
    body: str, url: str = HS_URL, timestamp: str | None = None, version: str = "v3"
) -> dict[str, str]:
    """Headers as HubSpot sends them, signed by hubspot-api-client (an independent implementation)."""
    timestamp = timestamp or str(int(time.time() * 1000))
    signature = Signature.get_signature(SECRET, body, version, url, "POST", timestamp)
    header = "X-HubSpot-Signature-v3" if version == "v3" else "X-HubSpot-Signature"
    return {
        "Content-Type": "application/json",
        header: signature,
        "X-HubSpot-Signature-Version": version,
        "X-HubSpot-Request-Timestamp": timestamp,
    }


def post_hubspot(client: TestClient, items: Any, url: str = HS_URL, **kw: Any) -> Any:
    body = items if isinstance(items, str) else json.dumps(items)
    path = url[len(BASE) :] if url.startswith(BASE) else url
    return client.post(path, content=body, headers=signed_headers(body, url, **kw))


def inbox_rows(store: Store) -> list[InboxEvent]:
    with store.session() as session:
        return list(session.scalars(select(InboxEvent).order_by(InboxEvent.id)))


def error_rows(store: Store) -> list[SyncError]:
    with store.session() as session:
        return list(session.scalars(select(SyncError).order_by(SyncError.id)))


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# --- HubSpot -------------------------------------------------------------------------------------


def test_signed_events_are_stored_and_enqueued(client: TestClient, store: Store, enqueued: Enqueued) -> None:
    before = sample("closedloop_events_received_total", source="hubspot")
    items = [event(11, object_id=901), event(12, object_id=902)]
    response = post_hubspot(client, items)
    assert response.status_code == 200
    assert response.json() == {"accepted": 2, "duplicates": 0, "rejected": 0}
    rows = inbox_rows(store)
    assert [(r.source, r.event_key, r.object_type, r.record_id, r.status) for r in rows] == [
        ("hubspot", "11", "contact", "901", "pending"),
        ("hubspot", "12", "contact", "902", "pending"),
    ]
    assert rows[0].occurred_at is not None
    assert int(rows[0].occurred_at.timestamp() * 1000) == items[0]["occurredAt"]
    assert rows[1].payload == items[1]
    assert enqueued.calls == [[r.id for r in rows]]
    assert sample("closedloop_events_received_total", source="hubspot") == before + 2


def test_replayed_event_ids_are_stored_once(client: TestClient, store: Store, enqueued: Enqueued) -> None:
    first = post_hubspot(client, [event(21), event(22)])
    assert first.json()["accepted"] == 2
    again = post_hubspot(client, [event(22), event(21), event(23)])
    assert again.json() == {"accepted": 1, "duplicates": 2, "rejected": 0}
    within = post_hubspot(client, [event(24), event(24)])
    assert within.json() == {"accepted": 1, "duplicates": 1, "rejected": 0}
    keys = [r.event_key for r in inbox_rows(store)]
    assert sorted(keys) == ["21", "22", "23", "24"]
    assert len(enqueued.calls) == 3 and all(len(call) in (1, 2) for call in enqueued.calls)


def test_bad_items_are_recorded_while_good_ones_are_kept(client: TestClient, store: Store) -> None:
    missing_id = event(31)
    del missing_id["eventId"]
    string_object = event(32, objectId="abc")
    items = [event(30), missing_id, string_object, 7, event(33)]
    response = post_hubspot(client, items)
    assert response.status_code == 200
    assert response.json() == {"accepted": 2, "duplicates": 0, "rejected": 3}
    assert [r.event_key for r in inbox_rows(store)] == ["30", "33"]
    errors = error_rows(store)
    assert [(e.connector, e.role, e.category, e.status) for e in errors] == [
        ("hubspot", "ma", "bad_event", "open")
    ] * 3
    assert errors[0].payload == missing_id and "eventId" in errors[0].message
    assert errors[0].record_id == str(missing_id["objectId"])
    assert errors[1].payload == string_object and "objectId" in errors[1].message
    assert errors[2].payload == {"item": 7}


def test_odd_unicode_is_a_bad_item_not_a_crash(client: TestClient, store: Store) -> None:
    # a lone surrogate cannot be encoded for the database: it must be refused as an item, not crash
    good = json.dumps(event(35))
    body = (
        '[{"eventId": 34, "objectId": 1, "occurredAt": 1, "subscriptionType": "\\ud800.creation"}, '
        + good
        + "]"
    )
    response = post_hubspot(client, body)
    assert response.status_code == 200 and response.json() == {"accepted": 1, "duplicates": 0, "rejected": 1}
    assert [r.event_key for r in inbox_rows(store)] == ["35"]


@pytest.mark.parametrize("body", ['{"eventId": 1}', "not json", "[1, NaN]", '"x"'])
def test_a_body_that_is_not_an_array_is_400_and_recorded(client: TestClient, store: Store, body: str) -> None:
    response = post_hubspot(client, body)
    assert response.status_code == 400
    assert inbox_rows(store) == []
    [error] = error_rows(store)
    assert error.category == "bad_event" and error.payload == {"body": body}


def test_bad_signature_is_401_and_stores_nothing(
    client: TestClient, store: Store, enqueued: Enqueued
) -> None:
    before = sample("closedloop_events_rejected_total", source="hubspot", reason="bad_signature")
    body = json.dumps([event(41)])
    headers = signed_headers(body)
    response = client.post("/webhooks/hubspot", content=body.replace("41", "42"), headers=headers)
    assert response.status_code == 401
    assert inbox_rows(store) == [] and error_rows(store) == [] and enqueued.calls == []
    assert sample("closedloop_events_rejected_total", source="hubspot", reason="bad_signature") == before + 1


def test_missing_signature_is_401(client: TestClient, store: Store) -> None:
    response = client.post("/webhooks/hubspot", content="[]", headers={"Content-Type": "application/json"})
    assert response.status_code == 401
    assert inbox_rows(store) == [] and error_rows(store) == []


@pytest.mark.parametrize("offset_s", [-400, 120])
def test_stale_or_future_timestamps_are_401(client: TestClient, store: Store, offset_s: int) -> None:
    timestamp = str(int((time.time() + offset_s) * 1000))
    response = post_hubspot(client, [event(51)], timestamp=timestamp)
    assert response.status_code == 401
    assert inbox_rows(store) == []


def test_no_secret_configured_is_503(make_client: Callable[..., TestClient], store: Store) -> None:
    client = make_client(hubspot_webhook_secret=None)
    response = post_hubspot(client, [event(52)])
    assert response.status_code == 503 and "secret" in response.json()["error"]
    assert inbox_rows(store) == []


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_older_signature_versions(make_client: Callable[..., TestClient], store: Store, version: str) -> None:
    client = make_client(hubspot_signature_version=version)
    assert post_hubspot(client, [event(61)], version=version).status_code == 200
    v3_headers = signed_headers(json.dumps([event(62)]))
    assert (
        client.post("/webhooks/hubspot", content=json.dumps([event(62)]), headers=v3_headers).status_code
        == 401
    )
    assert [r.event_key for r in inbox_rows(store)] == ["61"]


def test_v3_uri_escapes_are_decoded(client: TestClient, store: Store) -> None:
    path = "/webhooks/hubspot?next=a%3Ab%2Fc%40d&keep=x%20y"
    body = json.dumps([event(71)])
    # HubSpot signs the URI with the listed escapes decoded; %20 is not in the list
    headers = signed_headers(body, f"{BASE}/webhooks/hubspot?next=a:b/c@d&keep=x%20y")
    assert client.post(path, content=body, headers=headers).status_code == 200
    undecoded = signed_headers(body, BASE + path)
    assert client.post(path, content=body, headers=undecoded).status_code == 401
    assert len(inbox_rows(store)) == 1


def test_public_base_url_is_what_is_signed(make_client: Callable[..., TestClient], store: Store) -> None:
    public = "https://hooks.example.com/closedloop"
    client = make_client(public_base_url=public)
    body = json.dumps([event(81)])
    path = "/webhooks/hubspot?portal=62515"
    response = client.post(path, content=body, headers=signed_headers(body, public + path))
    assert response.status_code == 200
    local = client.post(path, content=body, headers=signed_headers(body, BASE + path))
    assert local.status_code == 401


@pytest.mark.parametrize(("trust", "status"), [(True, 200), (False, 401)])
def test_forwarded_headers_only_when_trusted(
    make_client: Callable[..., TestClient], trust: bool, status: int
) -> None:
    client = make_client(trust_forwarded_headers=trust)
    body = json.dumps([event(91)])
    headers = signed_headers(body, "https://public.example.com/webhooks/hubspot")
    headers |= {"X-Forwarded-Proto": "https, http", "X-Forwarded-Host": "public.example.com"}
    assert client.post("/webhooks/hubspot", content=body, headers=headers).status_code == status


def test_oversize_bodies_are_413(make_client: Callable[..., TestClient], store: Store) -> None:
    client = make_client(max_request_bytes=200)
    body = json.dumps([event(i) for i in range(100, 105)])
    assert len(body) > 200
    assert client.post("/webhooks/hubspot", content=body, headers=signed_headers(body)).status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit must hold while streaming
        for i in range(0, len(body), 50):
            yield body[i : i + 50].encode()

    streamed = client.post("/webhooks/hubspot", content=chunks(), headers=signed_headers(body))
    assert streamed.status_code == 413
    assert inbox_rows(store) == [] and error_rows(store) == []


def test_wrong_content_type_is_415(client: TestClient, store: Store) -> None:
    body = json.dumps([event(111)])
    headers = signed_headers(body) | {"Content-Type": "text/plain"}
    assert client.post("/webhooks/hubspot", content=body, headers=headers).status_code == 415
    charset = signed_headers(body) | {"Content-Type": "application/json; charset=utf-8"}
    assert client.post("/webhooks/hubspot", content=body, headers=charset).status_code == 200
    assert len(inbox_rows(store)) == 1


def test_a_failing_enqueue_still_answers_200(client: TestClient, store: Store, enqueued: Enqueued) -> None:
    enqueued.fail = True
    with capture_logs() as logs:
        response = post_hubspot(client, [event(121)])
    assert response.status_code == 200 and response.json()["accepted"] == 1
    assert [r.status for r in inbox_rows(store)] == ["pending"]
    failures = [entry for entry in logs if entry["event"] == "enqueue_failed"]
    assert len(failures) == 1 and "hunter2" not in json.dumps(failures, default=str)


def test_store_failure_is_a_generic_500_with_correlation_id(client: TestClient, store: Store) -> None:
    with store.session() as session:
        session.execute(text("DROP TABLE inbox"))
    with capture_logs() as logs:
        response = post_hubspot(client, [event(131)])
    assert response.status_code == 500
    payload = response.json()
    assert set(payload) == {"error", "correlation_id"}
    assert payload["correlation_id"] and "inbox" not in response.text and "Traceback" not in response.text
    logged = [e for e in logs if e["event"] == "unhandled_error"]
    assert logged and logged[0]["correlation_id"] == payload["correlation_id"]


def test_incoming_request_id_is_echoed(client: TestClient) -> None:
    assert client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"] == "abc-123"
    generated = client.get("/healthz", headers={"X-Request-ID": "bad id\t<script>"}).headers["X-Request-ID"]
    assert generated != "bad id\t<script>" and len(generated) == 32


def test_secrets_never_reach_logs(make_client: Callable[..., TestClient]) -> None:
    client = make_client(salesforce_outbound_secret=SF_TOKEN)
    with capture_logs() as logs:
        body = json.dumps([event(141)])
        client.post(
            "/webhooks/hubspot", content=body, headers=signed_headers(body) | {"X-HubSpot-Signature-v3": "x"}
        )
        client.post("/webhooks/salesforce?token=wrong", content=outbound([("n1", "00Q1")]), headers=XML)
    dumped = json.dumps(logs, default=str)
    assert logs and SECRET not in dumped and SF_TOKEN not in dumped


# --- Salesforce ----------------------------------------------------------------------------------

XML = {"Content-Type": "text/xml; charset=utf-8"}


def outbound(
    notifications: list[tuple[str, str]], org_id: str = ORG_ID, sobject_type: str = "sf:Lead"
) -> str:
    parts = "".join(
        f"<Notification><Id>{nid}</Id>"
        f'<sObject xsi:type="{sobject_type}" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">'
        f"<sf:Id>{rid}</sf:Id><sf:Email>p{rid}@example.com</sf:Email>"
        f'<sf:LastModifiedDate>2024-05-01T10:00:00.000Z</sf:LastModifiedDate><sf:Phone xsi:nil="true"/>'
        f"</sObject></Notification>"
        for nid, rid in notifications
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"'
        ' xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        f'<soapenv:Body><notifications xmlns="{SF_NS}">'
        f"<OrganizationId>{org_id}</OrganizationId><ActionId>04k5e000000AAAAAA2</ActionId>"
        "<SessionId>00D5e!AQ0AQLiveSessionSecret</SessionId>"
        "<EnterpriseUrl>https://example.my.salesforce.com/services/Soap/c/59.0/00D5e</EnterpriseUrl>"
        f"{parts}</notifications></soapenv:Body></soapenv:Envelope>"
    )


def is_ack(response: Any) -> bool:
    root = ET.fromstring(response.content)
    ack = root.find(f".//{{{SF_NS}}}notificationsResponse/{{{SF_NS}}}Ack")
    return ack is not None and ack.text == "true"


def fault_code(response: Any) -> str | None:
    return ET.fromstring(response.content).findtext(".//faultcode")


def test_outbound_message_is_stored_then_acknowledged(
    client: TestClient, store: Store, enqueued: Enqueued
) -> None:
    response = client.post(
        "/webhooks/salesforce", content=outbound([("04l1", "00Q001"), ("04l2", "00Q002")]), headers=XML
    )
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/xml")
    assert is_ack(response)
    rows = inbox_rows(store)
    assert [(r.source, r.event_key, r.object_type, r.record_id) for r in rows] == [
        ("salesforce", "04l1", "Lead", "00Q001"),
        ("salesforce", "04l2", "Lead", "00Q002"),
    ]
    assert rows[0].payload == {
        "Id": "00Q001",
        "Email": "p00Q001@example.com",
        "LastModifiedDate": "2024-05-01T10:00:00.000Z",
        "Phone": None,
    }
    assert rows[0].occurred_at is not None and rows[0].occurred_at.isoformat() == "2024-05-01T10:00:00+00:00"
    assert "LiveSessionSecret" not in json.dumps([r.payload for r in rows])
    assert enqueued.calls == [[r.id for r in rows]]


def test_redelivered_notifications_are_acked_and_stored_once(client: TestClient, store: Store) -> None:
    message = outbound([("04l9", "00Q009")])
    assert is_ack(client.post("/webhooks/salesforce", content=message, headers=XML))
    assert is_ack(client.post("/webhooks/salesforce", content=message, headers=XML))
    assert len(inbox_rows(store)) == 1


def test_wrong_org_is_403_fault(client: TestClient, store: Store) -> None:
    before = sample("closedloop_events_rejected_total", source="salesforce", reason="wrong_org")
    message = outbound([("04l3", "00Q003")], org_id="00D000000000001AAA")
    response = client.post("/webhooks/salesforce", content=message, headers=XML)
    assert response.status_code == 403 and fault_code(response) == "soapenv:Client"
    assert inbox_rows(store) == []
    assert sample("closedloop_events_rejected_total", source="salesforce", reason="wrong_org") == before + 1


def test_fifteen_character_org_id_setting_matches(
    make_client: Callable[..., TestClient], store: Store
) -> None:
    client = make_client(salesforce_org_id=ORG_ID[:15])
    assert is_ack(client.post("/webhooks/salesforce", content=outbound([("04l4", "00Q004")]), headers=XML))


def test_store_failure_is_a_500_fault_not_an_ack(client: TestClient, store: Store) -> None:
    with store.session() as session:
        session.execute(text("DROP TABLE inbox"))
    with capture_logs() as logs:
        response = client.post("/webhooks/salesforce", content=outbound([("04l5", "00Q005")]), headers=XML)
    assert response.status_code == 500
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["salesforce_outbound_store_failed"]
    assert fault_code(response) == "soapenv:Server" and not is_ack(response)


def test_token_when_configured(make_client: Callable[..., TestClient], store: Store) -> None:
    client = make_client(salesforce_outbound_secret=SF_TOKEN)
    message = outbound([("04l6", "00Q006")])
    assert client.post("/webhooks/salesforce", content=message, headers=XML).status_code == 401
    assert client.post("/webhooks/salesforce?token=nope", content=message, headers=XML).status_code == 401
    assert inbox_rows(store) == []
    assert is_ack(client.post(f"/webhooks/salesforce?token={SF_TOKEN}", content=message, headers=XML))
    header = XML | {"X-Closedloop-Token": SF_TOKEN}
    assert is_ack(client.post("/webhooks/salesforce", content=outbound([("04l7", "00Q007")]), headers=header))
    assert len(inbox_rows(store)) == 2


def test_no_org_configured_is_503(make_client: Callable[..., TestClient], store: Store) -> None:
    client = make_client(salesforce_org_id=None)
    response = client.post("/webhooks/salesforce", content=outbound([("04l8", "00Q008")]), headers=XML)
    assert response.status_code == 503 and fault_code(response) == "soapenv:Server"


@pytest.mark.parametrize(
    "body",
    [
        '<?xml version="1.0"?><!DOCTYPE lol [<!ENTITY lol "lol">]><soapenv:Envelope '
        'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">&lol;</soapenv:Envelope>',
        '<?xml version="1.0"?><!DOCTYPE x SYSTEM "file:///etc/passwd"><x/>',
        "<not-closed>",
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"/>',
    ],
)
def test_unsafe_or_broken_xml_is_a_400_fault(client: TestClient, store: Store, body: str) -> None:
    response = client.post("/webhooks/salesforce", content=body, headers=XML)
    assert response.status_code == 400 and fault_code(response) == "soapenv:Client"
    assert inbox_rows(store) == []


def test_bad_notifications_are_recorded_good_ones_acked(client: TestClient, store: Store) -> None:
    message = outbound([("04lA", "00Q00A"), ("04lB", "")])
    response = client.post("/webhooks/salesforce", content=message, headers=XML)
    assert is_ack(response)
    assert [r.event_key for r in inbox_rows(store)] == ["04lA"]
    [error] = error_rows(store)
    assert (
        error.connector == "salesforce"
        and error.role == "sfa"
        and error.category == "bad_event"
        and "04lB" in error.payload["xml"]
    )


def test_salesforce_content_type_and_size(make_client: Callable[..., TestClient], store: Store) -> None:
    client = make_client(max_request_bytes=300)
    message = outbound([("04lC", "00Q00C")])
    assert (
        client.post(
            "/webhooks/salesforce", content=message, headers={"Content-Type": "application/json"}
        ).status_code
        == 415
    )
    assert client.post("/webhooks/salesforce", content=message, headers=XML).status_code == 413
    assert inbox_rows(store) == []


def test_too_many_notifications_is_a_fault(client: TestClient, store: Store) -> None:
    message = outbound([(f"04m{i}", f"00R{i}") for i in range(101)])
    assert client.post("/webhooks/salesforce", content=message, headers=XML).status_code == 400
    assert inbox_rows(store) == []


# --- health, readiness, metrics ------------------------------------------------------------------


def test_healthz(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_passes_with_migrated_store_and_checks(make_client: Callable[..., TestClient]) -> None:
    client = make_client(ready_checks={"broker": lambda: True, "mappings": lambda: True})
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"store": True, "broker": True, "mappings": True}


def test_readyz_names_what_failed(make_client: Callable[..., TestClient]) -> None:
    def broken() -> bool:
        raise ConnectionError("redis://:hunter2@localhost:1/0 unreachable")

    client = make_client(ready_checks={"broker": broken, "mappings": lambda: False, "ok": lambda: True})
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failed"] == ["broker", "mappings"]
    assert "hunter2" not in response.text


def test_readyz_fails_on_an_unmigrated_store(tmp_path: Path, enqueued: Enqueued) -> None:
    bare = Store(f"sqlite:///{tmp_path / 'empty.db'}")
    client = TestClient(create_app(make_settings(), bare, enqueued), raise_server_exceptions=False)
    response = client.get("/readyz")
    assert response.status_code == 503 and response.json()["failed"] == ["store"]
    bare.dispose()


def test_metrics_exposes_closedloop_series(client: TestClient, store: Store) -> None:
    post_hubspot(client, [event(151), event(152)])
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    assert "closedloop_events_received_total" in response.text
    assert sample("closedloop_inbox_pending") == 2
    assert sample("closedloop_inbox_lag_seconds") >= 0


def test_one_portal_stores_contact_events_for_marketing_and_deal_events_for_sales(
    make_client: Callable[..., TestClient], store: Store
) -> None:
    """CLOSEDLOOP_MA=hubspot and CLOSEDLOOP_SFA=hubspot: one receiver, each event in its object's role.
    Association changes name both ends and no objectId (HubSpot webhooks guide, associationChange)."""
    client = make_client(ma="hubspot", sfa="hubspot")
    link = event(3, associationType="DEAL_TO_CONTACT", fromObjectId=9001, toObjectId=501)
    del link["objectId"]
    link["subscriptionType"] = "deal.associationChange"
    items = [event(1), event(2, object_id=9001, subscriptionType="deal.propertyChange"), link]
    response = post_hubspot(client, items)
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 3
    rows = [(r.object_type, r.record_id, r.role) for r in inbox_rows(store)]
    assert rows == [("contact", "501", "ma"), ("deal", "9001", "sfa"), ("deal", "9001", "sfa")]


def test_hubspot_events_for_a_single_role_keep_that_role(
    make_client: Callable[..., TestClient], store: Store
) -> None:
    client = make_client()  # HubSpot is only the marketing side
    post_hubspot(client, [event(1), event(2, object_id=9001, subscriptionType="deal.propertyChange")])
    assert [r.role for r in inbox_rows(store)] == ["ma", "ma"]


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"subscriptionType": "contact.propertyChange", "objectId": None}, "objectId is required"),
        ({"subscriptionType": "deal.associationChange", "objectId": None, "fromObjectId": 1}, "toObjectId"),
        ({"subscriptionType": "deal.associationChange", "objectId": None}, "fromObjectId and toObjectId"),
    ],
)
def test_events_must_name_their_record(
    client: TestClient, store: Store, change: dict[str, Any], fragment: str
) -> None:
    item = {k: v for k, v in (event(7) | change).items() if v is not None}
    response = post_hubspot(client, [item, event(8)])
    assert response.json() == {"accepted": 1, "duplicates": 0, "rejected": 1}
    [error] = error_rows(store)
    assert error.category == "bad_event" and fragment in error.message
