"""Reading webhook requests defensively: content type checked first, size limited while streaming."""

from __future__ import annotations

from collections.abc import Collection

from starlette.requests import Request


class RequestRejected(Exception):
    """A request refused before any processing; ``reason`` is a short, fixed metric label."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message


def media_type(request: Request) -> str:
    """The request's media type without parameters, lower case (``""`` when absent)."""
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def require_media_type(request: Request, allowed: Collection[str]) -> None:
    """Raise 415 unless the Content-Type is one of ``allowed``."""
    if media_type(request) not in allowed:
        raise RequestRejected(415, "bad_content_type", f"Content-Type must be {' or '.join(sorted(allowed))}")


async def read_limited_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing (413) as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise RequestRejected(400, "bad_request", "invalid Content-Length")
        if int(declared) > limit:
            raise RequestRejected(413, "too_large", f"request body exceeds {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestRejected(413, "too_large", f"request body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
