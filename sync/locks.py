"""Cross-process locks: Redis when a broker is configured, in-process otherwise."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import redis

_local_locks: dict[str, threading.Lock] = {}
_guard = threading.Lock()


@contextmanager
def exclusive(name: str, redis_url: str | None, timeout: int = 600) -> Iterator[bool]:
    """Yield True if this caller holds ``name`` (never waits), False if someone else does."""
    if redis_url:
        client = redis.Redis.from_url(redis_url)
        lock = client.lock(f"closedloop:lock:{name}", timeout=timeout, blocking=False)
        acquired = bool(lock.acquire(blocking=False))
        try:
            yield acquired
        finally:
            if acquired:
                # The lock may have expired while we worked: the next holder has it now.
                with contextlib.suppress(redis.exceptions.LockError):
                    lock.release()
        return
    with _guard:
        local = _local_locks.setdefault(name, threading.Lock())
    acquired = local.acquire(blocking=False)
    try:
        yield acquired
    finally:
        if acquired:
            local.release()
