"""API budgets shared by every worker process (through Redis when configured).

HubSpot: a moving window of N calls per 10 seconds plus a daily cap. Marketo: N calls per 20 s, a
daily quota and at most 10 calls in flight (:class:`ConcurrencyGate`). Salesforce: a share of the
24-hour allocation, read from ``Sforce-Limit-Info`` after every call.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from limits import RateLimitItemPerDay, RateLimitItemPerSecond, storage, strategies

from sync.logs import get_logger

log = get_logger(__name__)


def make_storage(redis_url: str | None) -> storage.Storage:
    """Redis storage when a broker URL is configured; process memory for the embedded mode."""
    if redis_url:
        found = storage.storage_from_string(redis_url)
        assert isinstance(found, storage.Storage)
        return found
    return storage.MemoryStorage()


@dataclass
class WindowLimiter:
    """Blocks callers until the shared window has room; counts how long they waited."""

    store: storage.Storage
    per_window: int
    window_seconds: int
    per_day: int
    namespace: str
    waits: int = 0
    waited_seconds: float = 0.0
    _strategy: strategies.MovingWindowRateLimiter | strategies.FixedWindowRateLimiter = field(init=False)

    def __post_init__(self) -> None:
        try:
            self._strategy = strategies.MovingWindowRateLimiter(self.store)
        except NotImplementedError:
            self._strategy = strategies.FixedWindowRateLimiter(self.store)
        self._window = RateLimitItemPerSecond(self.per_window, self.window_seconds, namespace=self.namespace)
        self._day = RateLimitItemPerDay(self.per_day, namespace=self.namespace)

    def acquire(self, timeout: float = 600.0) -> None:
        """Take one call from the window and the day; sleep while either is exhausted."""
        deadline = time.monotonic() + timeout
        while True:
            if not self._strategy.test(self._day, "day"):
                raise BudgetExhausted(f"{self.namespace}: daily call budget of {self.per_day} used up")
            if self._strategy.hit(self._window, "window"):
                self._strategy.hit(self._day, "day")
                return
            reset_at, _remaining = self._strategy.get_window_stats(self._window, "window")
            delay = max(0.05, min(reset_at - time.time(), float(self.window_seconds)))
            if time.monotonic() + delay > deadline:
                raise BudgetExhausted(f"{self.namespace}: no room in the rate window within {timeout}s")
            self.waits += 1
            self.waited_seconds += delay
            _record_wait(self.namespace, delay)
            time.sleep(delay)

    def used_today(self) -> int:
        """Calls counted against the daily budget (by every worker sharing this storage)."""
        _reset, remaining = self._strategy.get_window_stats(self._day, "day")
        return max(0, self.per_day - int(remaining))


@dataclass
class ConcurrencyGate:
    """At most ``limit`` calls in flight across every worker process.

    With Redis, holders are members of a sorted set scored by their lease's end, so a worker that
    dies holding a slot frees it when the lease runs out; without Redis, a process-local semaphore.
    """

    store: storage.Storage
    limit: int
    namespace: str
    lease_seconds: float = 60.0
    _local: threading.BoundedSemaphore = field(init=False)

    def __post_init__(self) -> None:
        self._local = threading.BoundedSemaphore(self.limit)
        client = (
            getattr(self.store, "storage", None) if isinstance(self.store, storage.RedisStorage) else None
        )
        self._redis = client
        self._key = f"closedloop:gate:{self.namespace}"

    @contextmanager
    def held(self, timeout: float = 600.0) -> Iterator[None]:
        """Hold one slot for the duration of the block; BudgetExhausted if none frees within ``timeout``."""
        if self._redis is None:
            if not self._local.acquire(timeout=timeout):
                raise BudgetExhausted(f"{self.namespace}: no free concurrency slot within {timeout}s")
            try:
                yield
            finally:
                self._local.release()
            return
        member = uuid.uuid4().hex
        self._enter(member, timeout)
        try:
            yield
        finally:
            self._redis.zrem(self._key, member)

    def _enter(self, member: str, timeout: float) -> None:
        assert self._redis is not None
        deadline = time.monotonic() + timeout
        delay = 0.01
        while True:
            now = time.time()
            pipe = self._redis.pipeline(transaction=True)
            pipe.zremrangebyscore(self._key, "-inf", now)  # leases of dead holders
            pipe.zadd(self._key, {member: now + self.lease_seconds})
            pipe.zcard(self._key)
            _, _, holders = pipe.execute()
            # Each transaction sees every member added before it, so a newcomer counted within
            # the limit is never one too many (one turned away counts briefly, then leaves).
            if holders <= self.limit:
                return
            self._redis.zrem(self._key, member)
            if time.monotonic() + delay > deadline:
                raise BudgetExhausted(f"{self.namespace}: no free concurrency slot within {timeout}s")
            _record_wait(self.namespace, delay)
            time.sleep(delay)
            delay = min(delay * 2, 0.2)


class BudgetExhausted(Exception):
    """The configured API budget is used up; the caller should try again later."""


@dataclass
class DailyAllocation:
    """Tracks Salesforce's 24-hour API allocation and refuses calls past our configured share."""

    share: float
    used: int = 0
    total: int | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def update(self, used: int, total: int) -> None:
        with self._lock:
            self.used, self.total = used, total

    def check(self) -> None:
        """Raise :class:`BudgetExhausted` once our share of the allocation is spent."""
        with self._lock:
            if self.total and self.used >= self.share * self.total:
                raise BudgetExhausted(
                    f"salesforce: {self.used}/{self.total} API calls used; our share is {self.share:.0%}"
                )

    @property
    def remaining(self) -> int | None:
        with self._lock:
            return None if self.total is None else max(0, int(self.share * self.total) - self.used)


def _record_wait(namespace: str, seconds: float) -> None:
    try:
        from sync import metrics

        metrics.rate_limit_waits_total.labels(system=namespace).inc()
        metrics.rate_limit_wait_seconds_total.labels(system=namespace).inc(seconds)
    except (ImportError, AttributeError):
        pass
