"""The web process as ``closedloop web`` serves it: X-Forwarded-* count only when the settings trust them.

The HubSpot v3 signature covers the URL HubSpot called, scheme included, so the scheme the app sees
decides whether a request is accepted: a forwarded scheme that is honoured although the settings say
not to trust it changes the outcome of the signature check.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import pytest
import requests
import uvicorn
from pydantic import SecretStr

from sandboxes.common import free_port
from sandboxes.hubspot_webhooks import sign_v3
from sync.config import Settings
from sync.store.db import Store
from sync.web.app import create_app
from sync.web.serving import uvicorn_config

pytestmark = pytest.mark.integration
SECRET = "serving-secret"


def _serve(settings: Settings, store: Store) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn_config(create_app(settings, store, lambda ids: None), settings, "127.0.0.1", port)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the web process did not start"
        time.sleep(0.01)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(params=[False, True], ids=["untrusted", "trusted"])
def web(request: pytest.FixtureRequest, sqlite_url: str) -> Iterator[tuple[str, bool]]:
    trusted = bool(request.param)
    settings = Settings(
        hubspot_webhook_secret=SecretStr(SECRET),
        trust_forwarded_headers=trusted,
        public_base_url=None,
        database_url=sqlite_url,
    )
    store = Store(sqlite_url)
    try:
        for host in _serve(settings, store):
            yield host, trusted
    finally:
        store.dispose()


def _post(host: str, signed_scheme: str, headers: dict[str, str]) -> int:
    body = json.dumps(
        [
            {
                "eventId": 7,
                "subscriptionType": "contact.creation",
                "objectId": 42,
                "occurredAt": 1,
                "portalId": 1,
            }
        ]
    )
    ts = str(int(time.time() * 1000))
    uri = f"{signed_scheme}://{host}/webhooks/hubspot"
    signature = sign_v3(SECRET, "POST", uri, body, ts)
    return requests.post(
        f"http://{host}/webhooks/hubspot",
        data=body,
        headers={
            "Content-Type": "application/json",
            "X-HubSpot-Signature-v3": signature,
            "X-HubSpot-Request-Timestamp": ts,
            **headers,
        },
        timeout=10,
    ).status_code


def test_forwarded_scheme_follows_the_setting_only(web: tuple[str, bool]) -> None:
    host, trusted = web
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
    # From 127.0.0.1, which uvicorn's own default would trust: the scheme counts only if the setting says so.
    assert _post(host, "https", forwarded) == (200 if trusted else 401)
    assert _post(host, "http", forwarded) == (401 if trusted else 200)
    assert _post(host, "http", {}) == 200  # no proxy headers: the request as it came
