"""Business-day arithmetic on a calendar of weekends and public holidays (``holidays`` package)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo

import holidays

from sync.timeutil import as_utc


@dataclass(frozen=True)
class Calendar:
    """Working days: not a weekend day, not a public holiday of ``country``, not an extra date.

    Days are counted in the local time zone ``tz``; ``day_start`` is when a business day begins
    (a clock started on a weekend or holiday starts at the next business day's ``day_start``).
    """

    country: str | None = "JP"
    subdivision: str | None = None
    extra_holidays: frozenset[date] = field(default_factory=frozenset)
    weekend: frozenset[int] = frozenset({5, 6})  # Monday is 0
    tz: str = "UTC"
    day_start: time = time(9, 0)

    @classmethod
    def of(
        cls, country: str | None = "JP", extra: Iterable[date] = (), tz: str = "UTC", **kwargs: Any
    ) -> Calendar:
        """A calendar for ``country`` with additional closed dates ``extra``."""
        return cls(country=country, extra_holidays=frozenset(extra), tz=tz, **kwargs)

    @cached_property
    def _public(self) -> holidays.HolidayBase | None:
        if not self.country:
            return None
        return holidays.country_holidays(self.country, subdiv=self.subdivision)

    @cached_property
    def zone(self) -> ZoneInfo:
        """The time zone in which days are counted."""
        return ZoneInfo(self.tz)

    def is_business_day(self, day: date) -> bool:
        """True on a working day."""
        if day.weekday() in self.weekend or day in self.extra_holidays:
            return False
        return self._public is None or day not in self._public

    def next_business_day(self, day: date) -> date:
        """The first business day strictly after ``day``."""
        day += timedelta(days=1)
        while not self.is_business_day(day):
            day += timedelta(days=1)
        return day

    def add_business_days(self, start: datetime, days: int) -> datetime:
        """``start`` moved ``days`` business days later at the same local clock time (UTC result).

        A start on a non-business day is first moved to the next business day's ``day_start``.
        """
        if days < 0:
            raise ValueError("days must not be negative")
        local = as_utc(start).astimezone(self.zone)
        day, clock = local.date(), local.time().replace(tzinfo=None)
        if not self.is_business_day(day):
            day, clock = self.next_business_day(day), self.day_start
        for _ in range(days):
            day = self.next_business_day(day)
        return datetime.combine(day, clock, tzinfo=self.zone).astimezone(UTC)


def due_at(start: datetime, calendar: Calendar, hours: float | None, business_days: int | None) -> datetime:
    """When an allowance of ``hours`` (wall clock) or ``business_days`` (on ``calendar``) runs out."""
    if (hours is None) == (business_days is None):
        raise ValueError("give exactly one of hours or business_days")
    if hours is not None:
        return as_utc(start) + timedelta(hours=hours)
    assert business_days is not None
    return calendar.add_business_days(start, business_days)
