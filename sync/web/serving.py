"""How uvicorn serves the web process: X-Forwarded-* headers count only when the settings trust them."""

from __future__ import annotations

from typing import Any

import uvicorn

from sync.config import Settings


def uvicorn_config(app: Any, settings: Settings, host: str, port: int) -> uvicorn.Config:
    """The uvicorn config for ``closedloop web`` and ``run``.

    uvicorn's own default trusts ``X-Forwarded-Proto``/``-For`` from 127.0.0.1, so anything on the
    same host could change the scheme HubSpot's signature is checked against. Both options follow
    ``CLOSEDLOOP_TRUST_FORWARDED_HEADERS`` alone: off, the headers are ignored; on (behind a proxy that
    overwrites them), they are taken from whoever connects, as the signature check does.
    """
    trusted = settings.trust_forwarded_headers
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        proxy_headers=trusted,
        forwarded_allow_ips="*" if trusted else "",
    )
