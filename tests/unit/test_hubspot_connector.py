"""HubSpotConnector decodes the client's raw responses itself; a cut-short 200 body is retried."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from limits import storage

from sync.connectors.errors import RetryPolicy
from sync.connectors.hubspot import HubSpotConnector
from sync.connectors.ratelimit import WindowLimiter

PAGE = {
    "results": [
        {
            "id": "1001",
            "properties": {"email": "ada@example.com", "hs_object_id": "1001"},
            "createdAt": "2026-11-02T09:00:00.000Z",
            "updatedAt": "2026-11-03T10:30:00.125Z",
            "archived": False,
        }
    ],
    "paging": {"next": {"after": "1002", "link": "ignored"}},
}


class _Portal(BaseHTTPRequestHandler):
    """Answers the list endpoint: first with a 200 whose JSON is cut short, then properly."""

    bodies: list[bytes] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        body = self.bodies.pop(0)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def portal() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Portal)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_list_page_retries_a_truncated_body_and_reads_ids_properties_and_updated_at(portal: str) -> None:
    whole = json.dumps(PAGE).encode()
    _Portal.bodies = [whole[: len(whole) // 2], whole]
    limiter = WindowLimiter(storage.MemoryStorage(), 100, 10, 10_000, "test-hubspot")
    calls: list[tuple[str, str]] = []
    connector = HubSpotConnector(
        portal, "token", limiter, RetryPolicy(base_seconds=0.01), on_call=lambda e, s: calls.append((e, s))
    )
    contacts, after = connector.list_page(None, ["email"])
    assert after == "1002"
    assert [(c.id, c.properties["email"]) for c in contacts] == [("1001", "ada@example.com")]
    assert contacts[0].updated_at is not None
    assert contacts[0].updated_at.isoformat() == "2026-11-03T10:30:00.125000+00:00"
    assert [status for _, status in calls][-1] == "ok" and len(calls) == 2
    assert _Portal.bodies == []
