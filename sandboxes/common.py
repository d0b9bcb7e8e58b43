"""Pieces shared by the HubSpot and Salesforce sandboxes.

- :class:`SimClock`: the sandboxes' notion of "now", optionally accelerated so a scripted
  sales team can live weeks in seconds.
- :class:`FaultPlan` and :func:`install_faults`: per-endpoint injection of 429s, 5xx,
  slow responses and dropped connections, changeable at run time through ``/__admin``.
- :class:`CallCounter`: every API call counted by endpoint and status, for benchmarks.
- :class:`ServerThread`: serve an ASGI app on a real socket (optionally TLS) in a thread.
"""

from __future__ import annotations

import asyncio
import random
import re
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel


class SimClock:
    """A clock that starts at ``start`` and runs ``speed`` times faster than real time.

    ``advance`` moves it forward by hand (tests); ``speed=1`` is an ordinary clock.
    """

    def __init__(self, start: datetime | None = None, speed: float = 1.0) -> None:
        self._start = start or datetime.now(UTC)
        self._real0 = time.monotonic()
        self._offset = timedelta(0)
        self.speed = speed
        self._lock = threading.Lock()
        self._last = self._start

    def now(self) -> datetime:
        """Current simulated time (UTC, strictly increasing between calls)."""
        with self._lock:
            elapsed = (time.monotonic() - self._real0) * self.speed
            current = self._start + self._offset + timedelta(seconds=elapsed)
            if current <= self._last:
                current = self._last + timedelta(microseconds=1000)
            self._last = current
            return current

    def advance(self, delta: timedelta) -> None:
        """Jump forward by ``delta`` of simulated time."""
        with self._lock:
            self._offset += delta


class FaultRule(BaseModel):
    """Injected failures for requests whose path matches ``path_regex``.

    Rates are probabilities per request, checked in the order drop, 429, 5xx, slow; with ``limit``
    set, the rule stops injecting after that many faults (e.g. exactly one 429). A drop aborts
    the TCP connection without a response when served by :class:`ServerThread` (the client sees a
    connection error); elsewhere it falls back to raising :class:`DroppedConnection`.
    """

    path_regex: str = ".*"
    rate_429: float = 0.0
    rate_5xx: float = 0.0
    rate_slow: float = 0.0
    slow_seconds: float = 2.0
    rate_drop: float = 0.0
    limit: int | None = None  # inject at most this many faults (drop, 429, 5xx), then pass requests on
    injected: int = 0  # faults injected so far under this rule


class FaultPlan(BaseModel):
    """The fault rules in force; the first rule whose regex matches applies."""

    rules: list[FaultRule] = []
    seed: int | None = None


@dataclass
class CallCounter:
    """Counts API calls by (method, endpoint template, status)."""

    counts: Counter[tuple[str, str, int]] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, method: str, endpoint: str, status: int) -> None:
        with self._lock:
            self.counts[(method, endpoint, status)] += 1

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {"method": m, "endpoint": e, "status": s, "count": c}
                for (m, e, s), c in sorted(self.counts.items())
            ]

    def total(self, endpoint_prefix: str = "", method: str | None = None) -> int:
        """Calls whose endpoint starts with ``endpoint_prefix`` (and method, if given)."""
        with self._lock:
            return sum(
                c
                for (m, e, _s), c in self.counts.items()
                if e.startswith(endpoint_prefix) and (method is None or m == method)
            )

    def reset(self) -> None:
        with self._lock:
            self.counts.clear()


_ID_SEGMENT = re.compile(r"/(?:[0-9]{3,}|[0-9a-zA-Z]{15}|[0-9a-zA-Z]{18})(?=/|$)")


def endpoint_template(path: str) -> str:
    """Collapse record IDs in a path so counters group by endpoint, not by record."""
    return _ID_SEGMENT.sub("/{id}", path)


class DroppedConnection(Exception):
    """Raised inside the app to make the server close the socket without answering."""


DROP_EXTENSION = "closedloop.drop_connection"
"""ASGI scope extension holding an ``async () -> None`` that aborts the client's TCP connection."""


class ConnectionDropper:
    """ASGI wrapper that lets the app abort the underlying TCP connection.

    Starlette answers any exception escaping the app with a 500, so an app that wants the
    client to see a dead socket calls ``scope["extensions"][DROP_EXTENSION]()`` instead.
    The transport is reached through uvicorn's per-request cycle, which owns ``send``.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") == "http":
            cycle = getattr(send, "__self__", None)
            transport = getattr(cycle, "transport", None)
            if transport is not None:

                async def drop() -> None:
                    transport.abort()
                    # Let connection_lost run so uvicorn marks the cycle disconnected and
                    # silently discards whatever the app sends afterwards.
                    for _ in range(3):
                        await asyncio.sleep(0)

                scope = {**scope, "extensions": {**(scope.get("extensions") or {}), DROP_EXTENSION: drop}}
        await self.app(scope, receive, send)


ErrorResponder = Callable[[int, str], Response]


def install_faults_and_counter(
    app: FastAPI,
    plan: FaultPlan,
    counter: CallCounter,
    error_response: ErrorResponder,
    admin_prefix: str = "/__admin",
) -> None:
    """Wrap ``app`` with fault injection and call counting, and add admin routes.

    ``error_response(status, message)`` renders an injected error in the vendor's body shape.
    Admin routes are neither counted nor faulted.
    """
    rng = random.Random(plan.seed)

    @app.middleware("http")
    async def _faults(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        path = request.url.path
        if path.startswith(admin_prefix):
            return await call_next(request)
        endpoint = endpoint_template(path)
        rule = next((r for r in plan.rules if re.search(r.path_regex, path)), None)
        if rule is not None and (rule.limit is None or rule.injected < rule.limit):
            roll = rng.random()
            if roll < rule.rate_drop + rule.rate_429 + rule.rate_5xx:
                rule.injected += 1
            if roll < rule.rate_drop:
                counter.add(request.method, endpoint, 0)
                drop = (request.scope.get("extensions") or {}).get(DROP_EXTENSION)
                if drop is None:  # not served by ServerThread (e.g. an in-process test client)
                    raise DroppedConnection(path)
                await drop()
                return Response(status_code=500)  # never reaches the client: the socket is gone
            roll -= rule.rate_drop
            if roll < rule.rate_429:
                counter.add(request.method, endpoint, 429)
                return error_response(429, "injected rate limit")
            roll -= rule.rate_429
            if roll < rule.rate_5xx:
                status = rng.choice([500, 502, 503])
                counter.add(request.method, endpoint, status)
                return error_response(status, "injected server error")
            roll -= rule.rate_5xx
            if roll < rule.rate_slow:
                await asyncio.sleep(rule.slow_seconds)
        response = await call_next(request)
        counter.add(request.method, endpoint, response.status_code)
        return response

    @app.get(f"{admin_prefix}/faults")
    def _get_faults() -> FaultPlan:
        return plan

    @app.put(f"{admin_prefix}/faults")
    def _put_faults(new: FaultPlan) -> FaultPlan:
        plan.rules = new.rules
        if new.seed is not None:
            rng.seed(new.seed)
        return plan

    @app.get(f"{admin_prefix}/calls")
    def _get_calls() -> JSONResponse:
        return JSONResponse(counter.snapshot())

    @app.delete(f"{admin_prefix}/calls")
    def _reset_calls() -> dict[str, bool]:
        counter.reset()
        return {"ok": True}


def free_port(host: str = "127.0.0.1") -> int:
    """Ask the OS for a free TCP port on ``host``."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class ServerThread:
    """Run an ASGI app with uvicorn in a daemon thread on a real socket.

    Pass ``ssl_certfile``/``ssl_keyfile`` to serve TLS. ``url`` is ready once ``start`` returns.
    The app is wrapped in :class:`ConnectionDropper`, so injected drops really cut the socket.
    """

    def __init__(
        self,
        app: Any,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_certfile: str | None = None,
        ssl_keyfile: str | None = None,
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.tls = ssl_certfile is not None
        config = uvicorn.Config(
            ConnectionDropper(app),
            host=host,
            port=self.port,
            log_level="critical",  # shutdown notices of idle keep-alive clients are noise here
            access_log=False,
            ssl_certfile=ssl_certfile,
            ssl_keyfile=ssl_keyfile,
            lifespan="off",
            timeout_keep_alive=30,
            timeout_graceful_shutdown=1,  # idle keep-alive clients must not hold a test for seconds
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=f"sandbox:{self.port}", daemon=True)

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"sandbox server on {self.host}:{self.port} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


def client_ssl_context(ca_file: str) -> ssl.SSLContext:
    """An SSL context trusting only the sandbox CA."""
    return ssl.create_default_context(cafile=ca_file)
