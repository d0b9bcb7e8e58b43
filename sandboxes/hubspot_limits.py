"""Rate limits of the HubSpot sandbox (https://developers.hubspot.com/docs/api/usage-details).

A rolling per-window limit (default 190 per 10 s, like a Professional private app), a daily cap
that resets when the sandbox clock's UTC day changes, and the search API's own per-second limit.
Windows run on real (monotonic) time, because the clients being limited live in real time.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import date

from sandboxes.common import SimClock
from sandboxes.hubspot_errors import rate_limit_error


class RateLimiter:
    """Admission control for API calls, plus the ``X-HubSpot-RateLimit-*`` headers."""

    def __init__(
        self,
        clock: SimClock,
        window_limit: int,
        window_seconds: float,
        daily_limit: int,
        search_per_second: int,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clock = clock
        self.window_limit = window_limit
        self.window_seconds = window_seconds
        self.daily_limit = daily_limit
        self.search_per_second = search_per_second
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._window: deque[float] = deque()
        self._search: deque[float] = deque()
        self._day: date | None = None
        self._daily_used = 0

    def admit(self, search: bool) -> dict[str, str]:
        """Count one call or raise a 429 :class:`HubSpotError`; return the headers to send."""
        with self._lock:
            now = self._monotonic()
            today = self.clock.now().date()
            if today != self._day:
                self._day, self._daily_used = today, 0
            while self._window and self._window[0] <= now - self.window_seconds:
                self._window.popleft()
            while self._search and self._search[0] <= now - 1.0:
                self._search.popleft()
            if self._daily_used >= self.daily_limit:
                error = rate_limit_error("DAILY")
                error.headers = {} if search else self._headers()
                raise error
            if search:
                if len(self._search) >= self.search_per_second:
                    raise rate_limit_error("SECONDLY")
                self._search.append(now)
                self._daily_used += 1
                # Search responses carry no rate-limit headers ("Limits" in the search guide).
                return {}
            if len(self._window) >= self.window_limit:
                error = rate_limit_error("TEN_SECONDLY_ROLLING")
                error.headers = self._headers()
                raise error
            self._window.append(now)
            self._daily_used += 1
            return self._headers()

    def _headers(self) -> dict[str, str]:
        secondly = max(1, int(self.window_limit / max(self.window_seconds, 1e-9)))
        used_last_second = sum(1 for t in self._window if t > self._monotonic() - 1.0)
        return {
            "X-HubSpot-RateLimit-Daily": str(self.daily_limit),
            "X-HubSpot-RateLimit-Daily-Remaining": str(max(0, self.daily_limit - self._daily_used)),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(self.window_seconds * 1000)),
            "X-HubSpot-RateLimit-Max": str(self.window_limit),
            "X-HubSpot-RateLimit-Remaining": str(max(0, self.window_limit - len(self._window))),
            "X-HubSpot-RateLimit-Secondly": str(secondly),
            "X-HubSpot-RateLimit-Secondly-Remaining": str(max(0, secondly - used_last_second)),
        }
