"""Marketo-shaped errors for the sandbox.

Marketo answers almost every failure with HTTP 200 and a body ``{"requestId", "success": false,
"errors": [{"code", "message"}]}``; codes 6xx mean the whole request failed and was not executed,
7xx a bad request, 1xxx record-level reasons ("Error Codes",
https://experienceleague.adobe.com/en/docs/marketo-developer/marketo/rest/error-codes). Only the
identity endpoint (401) and size limits (413/414) use HTTP error statuses.
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

from fastapi.responses import JSONResponse, Response

MESSAGES = {
    "600": "Access token not specified",
    "601": "Access token invalid",
    "602": "Access token expired",
    "603": "Access denied",
    "604": "Request timed out",
    "606": "Max rate limit '100' exceeded with in '20' secs",
    "607": "Daily quota reached",
    "608": "API Temporarily Unavailable",
    "609": "Invalid JSON",
    "610": "Requested resource not found",
    "611": "System error",
    "612": "Invalid Content Type",
    "615": "Concurrent access limit reached",
    "701": "cannot be blank",
    "702": "No data found for given search scenario",
    "1001": "Invalid value",
    "1003": "Invalid data",
    "1004": "Lead not found",
    "1005": "Lead already exists",
    "1006": "Field not found",
    "1007": "Multiple leads match the lookup criteria",
    "1013": "Object not found",
    "1017": "Object already exists",
}

# Calls answered with these codes do not count against the daily quota or the rate window
# (the starred rows of the "Error Codes" page).
NOT_COUNTED = {"600", "601", "602", "604", "606", "607", "608", "615"}

_seq = itertools.count(1)
_seq_lock = threading.Lock()


def request_id() -> str:
    """An id shaped like Marketo's ``e42b#14272d07d78`` (hex sequence # hex epoch millis)."""
    with _seq_lock:
        n = next(_seq)
    return f"{n:x}#{int(time.time() * 1000):x}"


class MarketoError(Exception):
    """A response-level error (``success: false``)."""

    def __init__(self, code: str, message: str | None = None) -> None:
        self.code = code
        self.message = message or MESSAGES.get(code, "Error")
        super().__init__(f"{code}: {self.message}")

    def body(self) -> dict[str, Any]:
        return {
            "requestId": request_id(),
            "success": False,
            "errors": [{"code": self.code, "message": self.message}],
        }

    def response(self) -> Response:
        return JSONResponse(self.body(), status_code=200)


def reason(code: str, message: str | None = None) -> dict[str, str]:
    """A record-level reason: ``{"code", "message"}``."""
    return {"code": code, "message": message or MESSAGES.get(code, "Error")}


def error_response(status: int, message: str) -> Response:
    """Render an injected fault: a 429 becomes Marketo's 606 in a 200 body; 5xx stay HTTP errors
    with an HTML body, like the gateway in front of the REST API sends them."""
    if status == 429:
        return MarketoError("606").response()
    html = f"<html><head><title>{status}</title></head><body>{message}</body></html>"
    return Response(html, status_code=status, media_type="text/html")
