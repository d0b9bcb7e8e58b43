"""Helpers for HubSpot sandbox contract tests: a sandbox on a real socket, and a webhook receiver."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import hubspot

from sandboxes.common import ServerThread
from sandboxes.hubspot import HubSpotSandbox


def hubspot_client(url: str, token: str) -> hubspot.HubSpot:
    """The real client pointed at ``url``: ``host`` lands on every API's Configuration."""
    return hubspot.HubSpot(access_token=token, host=url)


@dataclass
class HubSpotEnv:
    """A running sandbox, its server and a client pointed at it."""

    sandbox: HubSpotSandbox
    server: ServerThread
    client: hubspot.HubSpot

    @property
    def url(self) -> str:
        return self.server.url


def start_hubspot(**kwargs: Any) -> HubSpotEnv:
    """Start a sandbox (constructor ``kwargs``) on 127.0.0.1, random port."""
    sandbox = HubSpotSandbox(**kwargs)
    server = ServerThread(sandbox.app).start()
    return HubSpotEnv(sandbox, server, hubspot_client(server.url, sandbox.token))


@dataclass
class ReceivedPost:
    uri: str
    headers: dict[str, str]
    body: str
    at: float
    status: int

    def events(self) -> list[dict[str, Any]]:
        return list(json.loads(self.body))


@dataclass
class WebhookReceiver:
    """A tiny HTTP server recording webhook POSTs; answers ``statuses`` in turn, then 200."""

    statuses: list[int] = field(default_factory=list)
    posts: list[ReceivedPost] = field(default_factory=list)

    def __post_init__(self) -> None:
        receiver = self
        self._lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length).decode()
                with receiver._lock:
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    receiver.posts.append(
                        ReceivedPost(
                            uri=f"http://{self.headers['Host']}{self.path}",
                            headers={k: v for k, v in self.headers.items()},
                            body=body,
                            at=time.monotonic(),
                            status=status,
                        )
                    )
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hubspot/webhooks?tenant=acme"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def snapshot(self) -> list[ReceivedPost]:
        with self._lock:
            return list(self.posts)

    def events(self, only_ok: bool = False) -> list[dict[str, Any]]:
        return [e for p in self.snapshot() if not only_ok or p.status < 300 for e in p.events()]

    def wait_for(self, predicate: Callable[[WebhookReceiver], bool], timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return True
            time.sleep(0.01)
        return predicate(self)
