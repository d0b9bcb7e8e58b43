"""Marketo flow-step webhook calls into the inbox: real app, real SQLite store, the sandbox's own caller.

Marketo's "Call Webhook" flow step sends the admin's payload template with tokens filled and the
custom headers of the webhook definition; it neither signs the call nor retries it ("Webhooks",
https://experienceleague.adobe.com/en/docs/marketo-developer/marketo/webhooks/webhooks).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from structlog.testing import capture_logs

from sandboxes.common import ServerThread
from sandboxes.marketo import FLOW_SOURCE, MarketoSandbox, Webhook
from sync.config import Settings
from sync.store.db import Store, upgrade
from sync.store.models import InboxEvent, SyncError
from sync.web import create_app
from sync.web.app import MARKETO_PATH

TOKEN = "mkto-shared-token-5f2a91"
TEMPLATE = (
    '{"leadId": {{lead.Id}}, "email": {{lead.Email Address}}, '
    '"occurredAt": {{system.dateTime}}, "campaignId": {{campaign.id}}}'
)


@pytest.fixture(scope="module")
def migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
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


class Enqueued(list[list[int]]):
    def __call__(self, ids: list[int]) -> None:
        self.append(list(ids))


def _app(store: Store, enqueued: Enqueued, **overrides: Any) -> Any:
    values: dict[str, Any] = {"ma": "marketo", "marketo_webhook_token": TOKEN, "max_request_bytes": 64 * 1024}
    return create_app(Settings(**(values | overrides)), store, enqueued)


def _post(client: TestClient, body: Any, token: str | None = TOKEN, **headers: str) -> Any:
    content = body if isinstance(body, str) else json.dumps(body)
    sent = {"Content-Type": "application/json", **headers}
    if token is not None:
        sent["X-Closedloop-Token"] = token
    return client.post(MARKETO_PATH, content=content, headers=sent)


def _inbox(store: Store) -> list[tuple[str, str, str, str, str]]:
    with store.session() as session:
        rows = session.scalars(select(InboxEvent).order_by(InboxEvent.id))
        return [(r.source, r.role, r.object_type, r.record_id, r.status) for r in rows]


def _errors(store: Store) -> list[SyncError]:
    with store.session() as session:
        return list(session.scalars(select(SyncError).order_by(SyncError.id)))


def test_the_sandboxs_flow_step_calls_land_in_the_inbox(store: Store) -> None:
    enqueued = Enqueued()
    server = ServerThread(_app(store, enqueued)).start()
    sandbox = MarketoSandbox()
    try:
        hook = Webhook("Closedloop", server.url + MARKETO_PATH, TEMPLATE, {"X-Closedloop-Token": TOKEN})
        sandbox.add_trigger_campaign("Sync to Closedloop", "Score is Changed", hook)
        sandbox.add_trigger_campaign("Status to Closedloop", "Data Value Changes", hook, field="leadStatus")
        sandbox.start_webhooks()
        lead = sandbox.create_lead({"email": "taro@example.jp", "leadScore": 10})
        sandbox.change_score(lead, 45, "Demo request")
        sandbox.update_lead(lead, {"leadStatus": "MQL"}, source=FLOW_SOURCE)
        assert sandbox.webhooks.wait_idle()
    finally:
        sandbox.stop_webhooks()
        server.stop()
    assert [d.status for d in sandbox.webhooks.deliveries] == [200, 200]
    assert _inbox(store) == [
        ("marketo", "ma", "lead", str(lead), "pending"),
        ("marketo", "ma", "lead", str(lead), "pending"),
    ]
    assert sum(len(ids) for ids in enqueued) == 2


def test_a_repeated_call_is_stored_once(store: Store) -> None:
    client = TestClient(_app(store, Enqueued()))
    call = {"leadId": 1001, "occurredAt": "2026-09-01T09:00:00Z", "campaignId": 1000}
    assert _post(client, call).json() == {"accepted": 1, "duplicates": 0, "rejected": 0}
    assert _post(client, [call, {**call, "leadId": "1002"}]).json()["duplicates"] == 1
    assert [row[3] for row in _inbox(store)] == ["1001", "1002"]


@pytest.mark.parametrize("token", [None, "", "mkto-shared-token-5f2a90", TOKEN + "x"])
def test_a_missing_or_wrong_token_is_401_and_stores_nothing(store: Store, token: str | None) -> None:
    client = TestClient(_app(store, Enqueued()))
    with capture_logs() as logs:
        response = _post(client, {"leadId": 1001}, token=token)
    assert response.status_code == 401
    assert _inbox(store) == [] and _errors(store) == []
    assert TOKEN not in json.dumps(logs) and TOKEN not in response.text


def test_without_a_configured_token_the_route_is_off(store: Store) -> None:
    client = TestClient(_app(store, Enqueued(), marketo_webhook_token=None))
    assert _post(client, {"leadId": 1001}, token="").status_code == 503


@pytest.mark.parametrize(
    "body",
    ["not json", "42", '"a string"', "[1, 2]", '{"email": "no-lead-id@example.com"}', '{"leadId": true}'],
)
def test_a_malformed_call_is_4xx_and_recorded(store: Store, body: str) -> None:
    client = TestClient(_app(store, Enqueued()))
    response = _post(client, body)
    assert response.status_code == 400
    assert _inbox(store) == []
    errors = _errors(store)
    assert [(e.connector, e.role, e.category) for e in errors] == [("marketo", "ma", "bad_event")] * len(
        errors
    )
    assert len(errors) >= 1


def test_good_calls_are_kept_beside_bad_ones(store: Store) -> None:
    client = TestClient(_app(store, Enqueued()))
    response = _post(client, [{"leadId": 1001}, {"leadId": "x"}, {"leadId": 1002, "occurredAt": "soon"}])
    assert response.status_code == 200
    assert response.json() == {"accepted": 1, "duplicates": 0, "rejected": 2}
    assert [row[3] for row in _inbox(store)] == ["1001"]
    assert len(_errors(store)) == 2


def test_only_json_is_accepted(store: Store) -> None:
    client = TestClient(_app(store, Enqueued()))
    response = _post(client, "leadId=1001", **{"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 415
