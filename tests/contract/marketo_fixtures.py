"""Start the Marketo sandbox on a real socket and point the real marketorestpython client at it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from marketorestpython.client import MarketoClient

from sandboxes.common import ServerThread
from sandboxes.marketo import MarketoSandbox


@dataclass
class MarketoEnv:
    sandbox: MarketoSandbox
    server: ServerThread

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, max_retry_time: int = 0, secret: str | None = None) -> MarketoClient:
        """A real client for this sandbox; ``max_retry_time=0`` turns the library's own backoff off."""
        client = MarketoClient(
            self.sandbox.munchkin_id,
            self.sandbox.client_id,
            secret if secret is not None else self.sandbox.client_secret,
            max_retry_time=max_retry_time,
            requests_timeout=10,
        )
        # The client derives https://<munchkin>.mktorest.com; its host attribute is the base URL.
        client.host = self.url
        return client

    def stop(self) -> None:
        self.sandbox.stop_webhooks()
        self.server.stop()


def start_marketo(**kwargs: Any) -> MarketoEnv:
    sandbox = MarketoSandbox(**kwargs)
    return MarketoEnv(sandbox, ServerThread(sandbox.app).start())
