"""The one place that classifies API failures and decides retries.

Transient failures (429, 5xx, timeouts, dropped connections, UNABLE_TO_LOCK_ROW) are retried with
exponential backoff that honours ``Retry-After``; permanent ones (validation, missing fields, auth)
are raised at once so the engine records them per record instead of retrying in a storm.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
import urllib3
from simple_salesforce import exceptions as sf_exc

from sync.logs import get_logger, redact_text

T = TypeVar("T")
log = get_logger(__name__)

RETRIABLE_SF_CODES = {"UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE", "REQUEST_RUNNING_TOO_LONG"}
# Error categories used in the errors table and metrics.
CATEGORY_BY_SF_CODE = {
    "REQUIRED_FIELD_MISSING": "validation",
    "FIELD_CUSTOM_VALIDATION_EXCEPTION": "validation",
    "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST": "validation",
    "STRING_TOO_LONG": "validation",
    "INVALID_EMAIL_ADDRESS": "validation",
    "DUPLICATE_VALUE": "duplicate",
    # An active duplicate rule refused the save; the error names the matched records.
    "DUPLICATES_DETECTED": "duplicate_rule",
    "INVALID_FIELD": "missing_field",
    "INVALID_FIELD_FOR_INSERT_UPDATE": "missing_field",
    "INVALID_TYPE": "missing_field",
    "CANNOT_UPDATE_CONVERTED_LEAD": "conflict",
    "ENTITY_IS_DELETED": "deleted",
    "INVALID_SESSION_ID": "auth",
    "REQUEST_LIMIT_EXCEEDED": "budget",
}


class ConnectorError(Exception):
    """A failed call to HubSpot or Salesforce, already classified."""

    transient = False

    def __init__(
        self,
        system: str,
        message: str,
        status: int | None = None,
        code: str | None = None,
        category: str = "unknown",
        retry_after: float | None = None,
        matched_ids: tuple[str, ...] = (),
    ) -> None:
        super().__init__(redact_text(message))
        self.system = system
        self.status = status
        self.code = code
        self.category = category
        self.retry_after = retry_after
        self.matched_ids = matched_ids  # DUPLICATES_DETECTED: the existing records the rule matched

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class TransientError(ConnectorError):
    """Worth retrying later: rate limits, outages, timeouts, lock contention."""

    transient = True


class PermanentError(ConnectorError):
    """Retrying the same request cannot succeed until someone fixes data or configuration."""


@dataclass(frozen=True)
class RecordError:
    """One record's failure inside a batch call that otherwise went through."""

    key: str
    code: str
    message: str
    category: str
    transient: bool = False
    matched_ids: tuple[str, ...] = ()  # DUPLICATES_DETECTED: see :func:`duplicate_match_ids`


def _json_or_text(content: bytes | str | None) -> Any:
    if content is None:
        return None
    try:
        return json.loads(content)
    except (ValueError, TypeError):
        return content.decode(errors="replace") if isinstance(content, bytes) else content


def sf_error_code(body: Any) -> tuple[str | None, str]:
    """(errorCode, message) from a Salesforce error body ``[{"message","errorCode"}]``."""
    if isinstance(body, list) and body and isinstance(body[0], dict):
        return body[0].get("errorCode"), str(body[0].get("message", ""))
    if isinstance(body, dict):
        return body.get("errorCode"), str(body.get("message", ""))
    return None, str(body)[:500]


def duplicate_match_ids(error: Any) -> tuple[str, ...]:
    """IDs of the records a duplicate rule matched, from a DUPLICATES_DETECTED error.

    ``error`` is a REST error body (a list), one of its items, or a SaveResult error item; the IDs
    come from ``duplicateResult.matchResults[].matchRecords[].record.Id`` (API guide, DuplicateResult,
    MatchResult, MatchRecord), in the order Salesforce listed them. Anything else gives ``()``.
    """
    items = error if isinstance(error, list) else [error]
    found: list[str] = []
    for item in items:
        result = item.get("duplicateResult") if isinstance(item, dict) else None
        for match in (result.get("matchResults") or []) if isinstance(result, dict) else []:
            for matched in (match.get("matchRecords") or []) if isinstance(match, dict) else []:
                record = matched.get("record") if isinstance(matched, dict) else None
                rid = record.get("Id") if isinstance(record, dict) else None
                if isinstance(rid, str) and rid not in found:
                    found.append(rid)
    return tuple(found)


def category_for_sf_code(code: str | None) -> str:
    """Error category for a Salesforce ``statusCode``/``errorCode``."""
    if code is None:
        return "unknown"
    return CATEGORY_BY_SF_CODE.get(code, "transient" if code in RETRIABLE_SF_CODES else "rejected")


def _budget(system: str, exc: BaseException) -> ConnectorError | None:
    from sync.connectors.ratelimit import BudgetExhausted

    if isinstance(exc, BudgetExhausted):
        return TransientError(system, str(exc), category="budget")
    return None


def classify_salesforce(exc: BaseException) -> ConnectorError:
    """Turn a simple-salesforce / requests exception into a classified error."""
    if isinstance(exc, ConnectorError):
        return exc
    budget = _budget("salesforce", exc)
    if budget is not None:
        return budget
    if isinstance(exc, requests.exceptions.Timeout | requests.exceptions.ConnectionError):
        return TransientError("salesforce", f"network error: {type(exc).__name__}", category="network")
    if isinstance(exc, sf_exc.SalesforceError):
        body = _json_or_text(exc.content)
        code, message = sf_error_code(body)
        status = exc.status
        text = f"HTTP {status} {code or ''}: {message}".strip()
        if status == 429 or status >= 500 or code in RETRIABLE_SF_CODES:
            return TransientError("salesforce", text, status, code, category="transient")
        if code == "REQUEST_LIMIT_EXCEEDED":
            return TransientError("salesforce", text, status, code, category="budget", retry_after=60.0)
        return PermanentError(
            "salesforce",
            text,
            status,
            code,
            category=category_for_sf_code(code),
            matched_ids=duplicate_match_ids(body) if code == "DUPLICATES_DETECTED" else (),
        )
    return PermanentError("salesforce", f"{type(exc).__name__}: {exc}", category="unknown")


def _hubspot_category(status: int, body: Any) -> str:
    if status in (401, 403):
        return "auth"
    category = body.get("category") if isinstance(body, dict) else None
    if category == "VALIDATION_ERROR":
        message = str(body.get("message", "")) if isinstance(body, dict) else ""
        return (
            "missing_field"
            if "does not exist" in message or "PROPERTY_DOESNT_EXIST" in message
            else "validation"
        )
    if category == "CONFLICT" or status == 409:
        return "duplicate"
    return "rejected"


def classify_hubspot(exc: BaseException) -> ConnectorError:
    """Turn a hubspot-api-client / urllib3 exception into a classified error."""
    if isinstance(exc, ConnectorError):
        return exc
    budget = _budget("hubspot", exc)
    if budget is not None:
        return budget
    if isinstance(exc, urllib3.exceptions.HTTPError | TimeoutError | ConnectionError | OSError):
        return TransientError("hubspot", f"network error: {type(exc).__name__}", category="network")
    status = getattr(exc, "status", None)
    if isinstance(status, int):
        body = _json_or_text(getattr(exc, "body", None))
        message = body.get("message", "") if isinstance(body, dict) else str(body)[:500]
        headers = getattr(exc, "headers", None) or {}
        retry_after = _retry_after(headers.get("Retry-After") if hasattr(headers, "get") else None)
        text = f"HTTP {status}: {message}"
        if status == 429 or status >= 500:
            return TransientError("hubspot", text, status, category="transient", retry_after=retry_after)
        return PermanentError("hubspot", text, status, category=_hubspot_category(status, body))
    return PermanentError("hubspot", f"{type(exc).__name__}: {exc}", category="unknown")


def _retry_after(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


@dataclass
class RetryPolicy:
    """How often and how patiently transient failures are retried."""

    max_attempts: int = 6
    base_seconds: float = 0.5
    max_seconds: float = 30.0

    def wait_for(self, attempt: int, error: ConnectorError) -> float:
        """Seconds to wait before ``attempt`` + 1: Retry-After if given, else full-jitter backoff."""
        backoff = min(self.max_seconds, self.base_seconds * (2 ** (attempt - 1)))
        jittered = random.uniform(backoff / 2, backoff)
        if error.retry_after is not None:
            return min(self.max_seconds, max(error.retry_after, jittered))
        return jittered


def call_with_retries(
    fn: Callable[[], T],
    classify: Callable[[BaseException], ConnectorError],
    policy: RetryPolicy,
    describe: str,
    on_result: Callable[[str], None] | None = None,
) -> T:
    """Call ``fn``; retry transient failures per ``policy``; raise the classified error otherwise.

    ``on_result`` receives "ok" or the error's status/category for metrics.
    """
    attempt = 0
    while True:
        attempt += 1
        try:
            result = fn()
        except Exception as exc:  # noqa: BLE001 - classified right here, the one place that does
            error = classify(exc)
            if on_result is not None:
                on_result(str(error.status or error.category))
            # An exhausted budget will not recover within seconds: record it and replay later.
            if not error.transient or error.category == "budget" or attempt >= policy.max_attempts:
                raise error from exc
            delay = policy.wait_for(attempt, error)
            log.warning(
                "api_retry",
                system=error.system,
                call=describe,
                attempt=attempt,
                wait_s=round(delay, 3),
                error=error.message[:200],
            )
            time.sleep(delay)
            continue
        if on_result is not None:
            on_result("ok")
        return result
