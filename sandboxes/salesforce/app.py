"""The HTTP face of the sandbox: FastAPI routes, session check, API allocation, faults and counting.

Every counted response carries ``Sforce-Limit-Info: api-usage=N/M`` (REST API Developer Guide,
"Limit Info Header"); past the 24-hour allocation requests get 403 REQUEST_LIMIT_EXCEEDED.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from sandboxes.common import CallCounter, FaultPlan, SimClock, install_faults_and_counter
from sandboxes.salesforce.rest import ApiResponse, RestApi
from sandboxes.salesforce.rest import Request as RestRequest

MIN_VERSION, MAX_VERSION = 50, 66
_VERSION_RE = re.compile(r"^(\d+)\.0$")
_SEASONS = ("Winter", "Spring", "Summer")


@dataclass
class ApiUsage:
    """The org's rolling 24-hour API request allocation (simplified to fixed windows of SimClock time)."""

    clock: SimClock
    maximum: int
    used: int = 0
    window_start: datetime | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def consume(self) -> bool:
        """Count one request; False if the allocation is exhausted."""
        with self._lock:
            self._roll()
            if self.used >= self.maximum:
                return False
            self.used += 1
            return True

    def header(self) -> str:
        with self._lock:
            return f"api-usage={self.used}/{self.maximum}"

    def remaining(self) -> int:
        with self._lock:
            self._roll()
            return max(0, self.maximum - self.used)

    def _roll(self) -> None:
        now = self.clock.now()
        if self.window_start is None or now - self.window_start >= timedelta(hours=24):
            self.window_start, self.used = now, 0


def versions() -> list[dict[str, str]]:
    """``GET /services/data``: every version the sandbox serves, with its release label."""
    out = []
    for v in range(MIN_VERSION, MAX_VERSION + 1):
        season = _SEASONS[(v - MIN_VERSION) % 3]
        year = 21 + (v - MIN_VERSION) // 3
        out.append({"label": f"{season} '{year}", "url": f"/services/data/v{v}.0", "version": f"{v}.0"})
    return out


def sf_error(status: int, code: str, message: str) -> list[dict[str, str]]:
    return [{"message": message, "errorCode": code}]


# Error responses close the connection: a client that keeps the raised exception (and so the response)
# alive would otherwise pin an idle keep-alive connection and stall the server's graceful shutdown.
_CLOSE = {"Connection": "close"}


def _fault_body(status: int, message: str) -> Response:
    code = {429: "REQUEST_LIMIT_EXCEEDED", 500: "UNKNOWN_EXCEPTION"}.get(status, "SERVER_UNAVAILABLE")
    return JSONResponse(sf_error(status, code, message), status_code=status, headers=_CLOSE)


def build_app(
    rest: RestApi, usage: ApiUsage, session_id: str, counter: CallCounter, faults: FaultPlan
) -> FastAPI:
    """The ASGI app serving ``/services/data`` over ``rest``."""
    app = FastAPI(title="Salesforce sandbox", docs_url=None, redoc_url=None, openapi_url=None)
    expected_auth = f"Bearer {session_id}"

    @app.get("/services/data")
    @app.get("/services/data/")
    def _versions() -> JSONResponse:
        return JSONResponse(versions())

    async def _api(request: Request, version: str, rest_path: str = "") -> Response:
        m = _VERSION_RE.match(version)
        if m is None or not MIN_VERSION <= int(m.group(1)) <= MAX_VERSION:
            missing = sf_error(404, "NOT_FOUND", "The requested resource does not exist")
            return JSONResponse(missing, status_code=404, headers=_CLOSE)
        if request.headers.get("authorization") != expected_auth:
            invalid = sf_error(401, "INVALID_SESSION_ID", "Session expired or invalid")
            return JSONResponse(invalid, status_code=401, headers=_CLOSE)
        if not usage.consume():
            return _render(
                ApiResponse(403, sf_error(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")),
                usage,
            )
        raw = await request.body()
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                return _render(
                    ApiResponse(
                        400, sf_error(400, "JSON_PARSER_ERROR", "Unexpected character in the request body")
                    ),
                    usage,
                )
        api_request = RestRequest(
            request.method,
            rest_path.strip("/"),
            version,
            dict(request.query_params),
            body,
            {k.lower(): v for k, v in request.headers.items()},
        )
        response = await _in_thread(rest.handle, api_request)
        return _render(response, usage)

    methods = ["GET", "POST", "PATCH", "PUT", "DELETE", "HEAD"]
    app.add_api_route("/services/data/v{version}", _api, methods=methods, include_in_schema=False)
    app.add_api_route(
        "/services/data/v{version}/{rest_path:path}", _api, methods=methods, include_in_schema=False
    )
    install_faults_and_counter(app, faults, counter, _fault_body)
    return app


async def _in_thread(fn: Any, arg: Any) -> ApiResponse:
    # The store blocks on a lock; keep the event loop free for other connections.
    from starlette.concurrency import run_in_threadpool

    result: ApiResponse = await run_in_threadpool(fn, arg)
    return result


def _render(response: ApiResponse, usage: ApiUsage) -> Response:
    headers = dict(response.headers)
    headers["Sforce-Limit-Info"] = usage.header()
    if response.status >= 300:
        headers.update(_CLOSE)
    if response.body is None:
        return Response(status_code=response.status, headers=headers)
    return JSONResponse(response.body, status_code=response.status, headers=headers)
