"""Counts finished tasks so a driver (demo, tests, benchmarks) can wait for the queue to drain."""

from __future__ import annotations

import threading

import redis

_local: dict[str, int] = {}
_lock = threading.Lock()
_PREFIX = "closedloop:progress:"


def mark_done(kind: str, redis_url: str | None) -> None:
    """One more task of ``kind`` finished (successfully or with recorded errors)."""
    if redis_url:
        redis.Redis.from_url(redis_url).incr(_PREFIX + kind)
        return
    with _lock:
        _local[kind] = _local.get(kind, 0) + 1


def done_count(kind: str, redis_url: str | None) -> int:
    """How many tasks of ``kind`` have finished."""
    if redis_url:
        value = redis.Redis.from_url(redis_url).get(_PREFIX + kind)
        return int(value or 0)
    with _lock:
        return _local.get(kind, 0)
