"""HubSpot-shaped errors for the sandbox.

Every HubSpot error body carries ``status: "error"``, ``message``, ``correlationId`` and
``category`` (https://developers.hubspot.com/docs/api/error-handling); some add ``errors``,
``context`` or, for rate limits, ``errorType`` and ``policyName``.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from fastapi.responses import JSONResponse, Response

_STATUS_CATEGORY = {
    400: "VALIDATION_ERROR",
    401: "INVALID_AUTHENTICATION",
    403: "MISSING_SCOPES",
    404: "OBJECT_NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    414: "URI_TOO_LONG",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "RATE_LIMITS",
    500: "INTERNAL_ERROR",
    502: "BAD_GATEWAY",
    503: "SERVICE_UNAVAILABLE",
    504: "GATEWAY_TIMEOUT",
}


def category_for(status: int) -> str:
    """HubSpot's error category for an HTTP status."""
    return _STATUS_CATEGORY.get(status, "INTERNAL_ERROR" if status >= 500 else "VALIDATION_ERROR")


class HubSpotError(Exception):
    """An API error to be rendered as HubSpot renders it."""

    def __init__(self, status: int, message: str, category: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.category = category or category_for(status)
        self.extra = extra
        self.headers: dict[str, str] = {}

    def body(self) -> dict[str, Any]:
        """The JSON error body."""
        return {
            "status": "error",
            "message": self.message,
            "correlationId": str(uuid.uuid4()),
            "category": self.category,
            **self.extra,
        }

    def response(self) -> Response:
        """The error as an HTTP response (with :attr:`headers`)."""
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers or None)


def error_response(status: int, message: str) -> Response:
    """Render an (injected) error in HubSpot's shape; 429s look like the ten-secondly limit."""
    if status == 429:
        return rate_limit_error("TEN_SECONDLY_ROLLING", message).response()
    return HubSpotError(status, message).response()


def rate_limit_error(policy: str, message: str | None = None) -> HubSpotError:
    """A 429 as HubSpot sends it (https://developers.hubspot.com/docs/api/usage-details)."""
    text = message or {
        "TEN_SECONDLY_ROLLING": "You have reached your ten_secondly_rolling limit.",
        "DAILY": "You have reached your daily limit.",
        "SECONDLY": "You have reached your secondly limit.",
    }.get(policy, "You have reached your rate limit.")
    return HubSpotError(429, text, "RATE_LIMITS", errorType="RATE_LIMIT", policyName=policy)


def property_validation_error(problems: list[tuple[str, str, str]], portal_id: int) -> HubSpotError:
    """400 for invalid property writes: ``problems`` are ``(property, error code, message)``.

    HubSpot embeds a JSON list of validation results in ``message`` and also lists them in ``errors``.
    """
    results = [
        {
            "isValid": False,
            "message": msg,
            "error": code,
            "name": name,
            "localizedErrorMessage": msg,
            "portalId": portal_id,
        }
        for name, code, msg in problems
    ]
    return HubSpotError(
        400,
        "Property values were not valid: " + json.dumps(results),
        "VALIDATION_ERROR",
        errors=[
            {"message": msg, "code": code, "context": {"propertyName": [name]}}
            for name, code, msg in problems
        ],
    )


def not_found(message: str = "resource not found") -> HubSpotError:
    """404 in HubSpot's shape."""
    return HubSpotError(404, message, "OBJECT_NOT_FOUND")
