"""HubSpot request signatures (v1, v2, v3), verified as HubSpot's "Validating requests" page describes.

- v1: hex SHA-256 of ``secret + body`` in ``X-HubSpot-Signature``.
- v2: hex SHA-256 of ``secret + method + uri + body`` in ``X-HubSpot-Signature``.
- v3: base64 HMAC-SHA256 keyed with the secret over ``method + uri + body + timestamp`` in
  ``X-HubSpot-Signature-v3``, with ``X-HubSpot-Request-Timestamp`` (epoch ms). Before hashing, the
  URI has a fixed list of percent-escapes decoded; requests older than five minutes are refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from typing import Literal

SignatureVersion = Literal["v1", "v2", "v3"]

MAX_AGE_SECONDS = 300  # HubSpot: reject requests whose timestamp is older than 5 minutes
MAX_FUTURE_SKEW_SECONDS = 60  # tolerate small clock differences, nothing more

# The escapes HubSpot's documentation lists for v3; every other escape stays as sent.
V3_DECODED_ESCAPES: dict[str, str] = {
    "%3A": ":",
    "%2F": "/",
    "%3F": "?",
    "%40": "@",
    "%21": "!",
    "%24": "$",
    "%27": "'",
    "%28": "(",
    "%29": ")",
    "%2A": "*",
    "%2C": ",",
    "%3B": ";",
}
_V3_ESCAPE = re.compile("|".join(re.escape(k) for k in V3_DECODED_ESCAPES), re.IGNORECASE)


class SignatureError(Exception):
    """The request is not provably from HubSpot; ``reason`` is a short, fixed metric label."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def decode_v3_uri(uri: str) -> str:
    """Decode the percent-escapes HubSpot lists for v3 (single pass, hex digits in either case)."""
    return _V3_ESCAPE.sub(lambda m: V3_DECODED_ESCAPES[m.group(0).upper()], uri)


def compute_signature(
    version: SignatureVersion, secret: str, method: str, uri: str, body: bytes, timestamp: str = ""
) -> str:
    """The signature HubSpot would send for this request (``uri`` as HubSpot called it)."""
    if version == "v1":
        return hashlib.sha256(secret.encode() + body).hexdigest()
    if version == "v2":
        return hashlib.sha256(f"{secret}{method}{uri}".encode() + body).hexdigest()
    if version == "v3":
        message = f"{method}{decode_v3_uri(uri)}".encode() + body + timestamp.encode()
        return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()
    raise ValueError(f"unknown HubSpot signature version: {version!r}")


def check_timestamp(timestamp: str | None, now: float | None = None) -> None:
    """Refuse a missing, malformed, stale (> 5 min) or future (> 60 s) ``X-HubSpot-Request-Timestamp``."""
    if not timestamp:
        raise SignatureError("missing_timestamp", "X-HubSpot-Request-Timestamp is missing")
    text = timestamp.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 16:
        raise SignatureError("bad_timestamp", "X-HubSpot-Request-Timestamp is not epoch milliseconds")
    age = (time.time() if now is None else now) - int(text) / 1000
    if age > MAX_AGE_SECONDS:
        raise SignatureError("stale_timestamp", "request timestamp is older than 5 minutes")
    if age < -MAX_FUTURE_SKEW_SECONDS:
        raise SignatureError("future_timestamp", "request timestamp is too far in the future")


def verify_signature(
    *,
    version: SignatureVersion,
    secret: str,
    method: str,
    uri: str,
    body: bytes,
    signature: str | None,
    timestamp: str | None = None,
    now: float | None = None,
) -> None:
    """Raise :class:`SignatureError` unless ``signature`` is HubSpot's for this request.

    ``signature`` is ``X-HubSpot-Signature-v3`` for v3 and ``X-HubSpot-Signature`` for v1/v2.
    """
    if not signature:
        raise SignatureError("missing_signature", "the HubSpot signature header is missing")
    if version == "v3":
        check_timestamp(timestamp, now)
    expected = compute_signature(version, secret, method, uri, body, (timestamp or "").strip())
    # compare_digest needs ASCII for str; compare bytes so odd header values can never raise
    if not hmac.compare_digest(expected.encode(), signature.strip().encode("utf-8", "replace")):
        raise SignatureError("bad_signature", "the HubSpot signature does not match")
