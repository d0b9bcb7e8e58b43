"""Start both sandboxes on real sockets (HubSpot over HTTP, Salesforce over TLS) with one shared clock.

The Marketo sandbox (HTTP) starts beside them only when asked for (``marketo=True``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandboxes.common import ServerThread, SimClock
from sandboxes.hubspot import HubSpotSandbox
from sandboxes.marketo import MarketoSandbox
from sandboxes.salesforce import SalesforceSandbox
from sandboxes.salesforce.tls import SandboxTLS


@dataclass
class Sandboxes:
    """Both running sandboxes, their URLs and credentials."""

    clock: SimClock
    hubspot: HubSpotSandbox
    salesforce: SalesforceSandbox
    tls: SandboxTLS
    hubspot_server: ServerThread
    salesforce_server: ServerThread
    marketo: MarketoSandbox | None = None
    marketo_server: ServerThread | None = None
    _stopped: bool = field(default=False, init=False)

    @property
    def hubspot_url(self) -> str:
        return self.hubspot_server.url

    @property
    def salesforce_url(self) -> str:
        return self.salesforce_server.url.replace("127.0.0.1", "localhost")

    @property
    def marketo_url(self) -> str | None:
        return self.marketo_server.url if self.marketo_server is not None else None

    def info(self) -> dict[str, Any]:
        """What a client needs to connect (the first stdout line of ``closedloop sandbox serve``)."""
        info: dict[str, Any] = {
            "hubspot_url": self.hubspot_url,
            "hubspot_token": self.hubspot.token,
            "salesforce_url": self.salesforce_url,
            "salesforce_session_id": self.salesforce.session_id,
            "salesforce_org_id": self.salesforce.org_id,
            "ca_file": str(self.tls.ca_file),
        }
        if self.marketo is not None:
            info.update(
                {
                    "marketo_url": self.marketo_url,
                    "marketo_munchkin_id": self.marketo.munchkin_id,
                    "marketo_client_id": self.marketo.client_id,
                }
            )
        return info

    def env(self) -> dict[str, str]:
        """Closedloop settings (environment variables) pointing at these sandboxes."""
        return {
            "CLOSEDLOOP_HUBSPOT_BASE_URL": self.hubspot_url,
            "CLOSEDLOOP_HUBSPOT_ACCESS_TOKEN": self.hubspot.token,
            "CLOSEDLOOP_SALESFORCE_INSTANCE_URL": self.salesforce_url,
            "CLOSEDLOOP_SALESFORCE_SESSION_ID": self.salesforce.session_id,
            "CLOSEDLOOP_SALESFORCE_CA_BUNDLE": str(self.tls.ca_file),
            "CLOSEDLOOP_SALESFORCE_ORG_ID": self.salesforce.org_id,
        } | self._marketo_env()

    def _marketo_env(self) -> dict[str, str]:
        if self.marketo is None or self.marketo_url is None:
            return {}
        return {
            "CLOSEDLOOP_MARKETO_BASE_URL": self.marketo_url,
            "CLOSEDLOOP_MARKETO_MUNCHKIN_ID": self.marketo.munchkin_id,
            "CLOSEDLOOP_MARKETO_CLIENT_ID": self.marketo.client_id,
            "CLOSEDLOOP_MARKETO_CLIENT_SECRET": self.marketo.client_secret,
        }

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        for stop in (self.hubspot.stop_webhook_delivery, self.salesforce.stop_outbound_delivery):
            stop()
        if self.marketo is not None:
            self.marketo.stop_webhooks()
        self.hubspot_server.stop()
        self.salesforce_server.stop()
        if self.marketo_server is not None:
            self.marketo_server.stop()
        self.tls.remove()


def start_sandboxes(
    workdir: Path,
    host: str = "127.0.0.1",
    hubspot_port: int = 0,
    salesforce_port: int = 0,
    clock: SimClock | None = None,
    hubspot_kwargs: dict[str, Any] | None = None,
    salesforce_kwargs: dict[str, Any] | None = None,
    marketo: bool = False,
    marketo_port: int = 0,
    marketo_kwargs: dict[str, Any] | None = None,
) -> Sandboxes:
    """Start both sandboxes (and Marketo's if ``marketo``); the TLS material is written under ``workdir``."""
    clock = clock or SimClock()
    workdir.mkdir(parents=True, exist_ok=True)
    tls = SandboxTLS.create(workdir)
    hubspot = HubSpotSandbox(clock=clock, **(hubspot_kwargs or {}))
    salesforce = SalesforceSandbox(clock=clock, **(salesforce_kwargs or {}))
    hs_server = ServerThread(hubspot.app, host=host, port=hubspot_port).start()
    sf_server = ServerThread(
        salesforce.app,
        host=host,
        port=salesforce_port,
        ssl_certfile=str(tls.cert_file),
        ssl_keyfile=str(tls.key_file),
    ).start()
    sandboxes = Sandboxes(clock, hubspot, salesforce, tls, hs_server, sf_server)
    if marketo:
        sandboxes.marketo = MarketoSandbox(clock=clock, **(marketo_kwargs or {}))
        sandboxes.marketo_server = ServerThread(sandboxes.marketo.app, host=host, port=marketo_port).start()
    return sandboxes
