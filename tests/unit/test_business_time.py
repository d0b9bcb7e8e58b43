"""Business-day arithmetic: weekends, Japanese public holidays, company closures, time zones."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from sync.funnel.business_time import Calendar, due_at

JP = Calendar.of("JP")
NO_HOLIDAYS = Calendar.of(None)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_three_business_days_from_friday_is_wednesday() -> None:
    # Fri 6 Nov 2026 10:00 → Mon 9, Tue 10, Wed 11 (no holiday that week in Japan)
    assert JP.add_business_days(utc(2026, 11, 6, 10), 3) == utc(2026, 11, 11, 10)


def test_japanese_holiday_is_skipped() -> None:
    # Mon 23 Nov 2026 is Labour Thanksgiving Day: Fri 20 → Tue 24, Wed 25, Thu 26
    assert JP.add_business_days(utc(2026, 11, 20, 10), 3) == utc(2026, 11, 26, 10)
    assert NO_HOLIDAYS.add_business_days(utc(2026, 11, 20, 10), 3) == utc(2026, 11, 25, 10)
    assert not JP.is_business_day(date(2026, 11, 23))
    assert JP.is_business_day(date(2026, 11, 24))


def test_golden_week_is_skipped() -> None:
    # Thu 30 Apr 2026; 1 May Fri is a workday, 2-3 weekend, 4-6 May holidays (incl. substitute holiday)
    assert JP.add_business_days(utc(2026, 4, 30, 15), 2) == utc(2026, 5, 7, 15)


def test_start_on_a_weekend_counts_from_next_business_morning() -> None:
    # Sat 7 Nov 2026 15:00 → starts Mon 9 Nov 09:00 → Thu 12 Nov 09:00
    assert JP.add_business_days(utc(2026, 11, 7, 15), 3) == utc(2026, 11, 12, 9)
    assert JP.add_business_days(utc(2026, 11, 7, 15), 0) == utc(2026, 11, 9, 9)


def test_start_on_a_holiday_counts_from_next_business_morning() -> None:
    assert JP.add_business_days(utc(2026, 11, 23, 11), 1) == utc(2026, 11, 25, 9)


def test_extra_company_closures() -> None:
    closed = Calendar.of("JP", extra=[date(2026, 11, 25)])
    assert closed.add_business_days(utc(2026, 11, 24, 10), 1) == utc(2026, 11, 26, 10)
    assert JP.add_business_days(utc(2026, 11, 24, 10), 1) == utc(2026, 11, 25, 10)


def test_days_are_counted_in_the_local_time_zone() -> None:
    tokyo = Calendar.of("JP", tz="Asia/Tokyo", day_start=time(9, 30))
    # Fri 20 Nov 10:00 JST (01:00 UTC) → Thu 26 Nov 10:00 JST
    assert tokyo.add_business_days(utc(2026, 11, 20, 1), 3) == utc(2026, 11, 26, 1)
    # Fri 20 Nov 23:30 UTC is already Saturday in Tokyo: start Tue 24 09:30 JST (Mon is a holiday)
    assert tokyo.add_business_days(utc(2026, 11, 20, 23, 30), 1) == utc(2026, 11, 25, 0, 30)


def test_custom_weekend() -> None:
    six_day_week = Calendar(country=None, weekend=frozenset({6}))
    assert six_day_week.add_business_days(utc(2026, 11, 6, 10), 1) == utc(2026, 11, 7, 10)


def test_hours_are_wall_clock() -> None:
    start = utc(2026, 11, 20, 18)
    assert due_at(start, JP, hours=24, business_days=None) == start + timedelta(hours=24)
    assert due_at(start, JP, hours=None, business_days=3) == utc(2026, 11, 26, 18)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        due_at(utc(2026, 1, 5), JP, hours=1, business_days=1)
    with pytest.raises(ValueError):
        due_at(utc(2026, 1, 5), JP, hours=None, business_days=None)
    with pytest.raises(ValueError):
        JP.add_business_days(utc(2026, 1, 5), -1)
