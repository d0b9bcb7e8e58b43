"""Access tokens and API limits of the Marketo sandbox.

- Tokens: client-credentials tokens live ``token_ttl`` seconds (3600 by default); asking again
  while one is valid returns the same token with its remaining ``expires_in`` ("Authentication",
  https://experienceleague.adobe.com/en/docs/marketo-developer/marketo/rest/authentication).
- Limits: 100 calls per rolling 20 s (606), 10 concurrent calls (615) and a daily quota of 50,000
  that resets at midnight US Central time (607) ("Marketo Integration Best Practices",
  .../rest/marketo-integration-best-practices).

Windows and token lifetimes run on real (monotonic) time because the clients live in real time;
the daily quota follows the sandbox clock's day.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

from sandboxes.common import SimClock
from sandboxes.marketo.errors import MarketoError

CENTRAL_OFFSET = timedelta(hours=-6)  # the quota resets at 12:00AM CST


@dataclass
class _Token:
    value: str
    expires_at: float


class TokenIssuer:
    """Issues and checks access tokens for one custom service (client id/secret pair)."""

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        ttl: float = 3600.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.ttl = ttl
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._current: _Token | None = None
        self._expired: set[str] = set()
        self.issued = 0

    def issue(self, client_id: str, client_secret: str) -> tuple[str, int] | None:
        """(token, expires_in) for good credentials, None otherwise."""
        if not (
            secrets.compare_digest(client_id, self.client_id)
            and secrets.compare_digest(client_secret, self.client_secret)
        ):
            return None
        with self._lock:
            now = self._monotonic()
            current = self._current
            if current is None or current.expires_at <= now:
                if current is not None:
                    self._expired.add(current.value)
                current = _Token(f"{secrets.token_hex(16)}:sandbox", now + self.ttl)
                self._current = current
                self.issued += 1
            return current.value, max(0, int(current.expires_at - now))

    def check(self, token: str | None) -> None:
        """Raise 600/601/602 unless ``token`` is the valid current token."""
        if not token:
            raise MarketoError("600")
        with self._lock:
            current = self._current
            if current is not None and secrets.compare_digest(token, current.value):
                if current.expires_at > self._monotonic():
                    return
                raise MarketoError("602")
            if token in self._expired:
                raise MarketoError("602")
        raise MarketoError("601")

    def expire_now(self) -> None:
        """End the current token's life early (tests: the server-side expiry a client cannot see)."""
        with self._lock:
            if self._current is not None:
                self._current.expires_at = self._monotonic()


class Limits:
    """The rolling rate window, the daily quota and the concurrency gate."""

    def __init__(
        self,
        clock: SimClock,
        window_limit: int = 100,
        window_seconds: float = 20.0,
        daily_limit: int = 50_000,
        concurrency_limit: int = 10,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clock = clock
        self.window_limit = window_limit
        self.window_seconds = window_seconds
        self.daily_limit = daily_limit
        self.concurrency_limit = concurrency_limit
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._window: deque[float] = deque()
        self._day: date | None = None
        self.daily_used = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.rejected: Counter[str] = Counter()  # error code -> calls refused (606, 607, 615)

    def enter(self) -> None:
        """Admit one concurrent call or raise 615; pair with :meth:`leave`."""
        with self._lock:
            if self.in_flight >= self.concurrency_limit:
                self.rejected["615"] += 1
                raise MarketoError("615")
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def usage(self) -> tuple[date, int]:
        """(today in US Central time, calls counted today)."""
        with self._lock:
            today = (self.clock.now() + CENTRAL_OFFSET).date()
            return today, self.daily_used if today == self._day else 0

    def admit(self) -> None:
        """Count one call against the window and the day, or raise 606/607."""
        with self._lock:
            now = self._monotonic()
            today = (self.clock.now() + CENTRAL_OFFSET).date()
            if today != self._day:
                self._day, self.daily_used = today, 0
            while self._window and self._window[0] <= now - self.window_seconds:
                self._window.popleft()
            if self.daily_used >= self.daily_limit:
                self.rejected["607"] += 1
                raise MarketoError("607")
            if len(self._window) >= self.window_limit:
                self.rejected["606"] += 1
                raise MarketoError(
                    "606",
                    f"Max rate limit '{self.window_limit}' exceeded with in '{self.window_seconds:g}' secs",
                )
            self._window.append(now)
            self.daily_used += 1
