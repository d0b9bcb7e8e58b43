"""What happens to a person after inside sales qualifies them: the information sheet and customer success.

Planning only (times and values drawn from a person's random stream); the Salesforce team carries
the steps out. The Japanese business calendar here is the sandboxes' own, written independently of
Closedloop's, so the ground truth can check Closedloop's kickoff SLA against it.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import holidays

TOKYO = ZoneInfo("Asia/Tokyo")
DAY_START = time(9, 0)  # a clock started on a closed day starts at 09:00 of the next business day
KICKOFF_BUSINESS_DAYS = 3
# The inside sales "customer information sheet" on the Lead (BANT + the first field sales meeting).
SHEET_FIELDS: tuple[str, ...] = ("Budget__c", "Authority__c", "Need__c", "Timeline__c", "Meeting_Date__c")
AUTHORITIES = ("CEO", "CFO", "CIO", "情報システム部長", "Head of Marketing", "Procurement Manager")
NEEDS = (
    "Connect marketing automation with the sales CRM",
    "Measure campaign ROI up to revenue",
    "営業への引き渡しを自動化したい",
    "Replace manual lead list exports",
)
TIMELINES = ("This quarter", "Next quarter", "Within 6 months", "Next fiscal year")
# Likelihood-to-recommend scores 0..10: mostly passives and promoters, a tail of detractors.
NPS_WEIGHTS = (1, 1, 1, 2, 2, 4, 6, 12, 18, 16, 12)
EXPANSION_TYPE = "Existing Customer - Upgrade"

Step = tuple[datetime, str, dict[str, Any]]


class CsRates(Protocol):
    """The shares customer success planning reads (``TeamRates`` has them)."""

    @property
    def incomplete_sheet_share(self) -> float: ...

    @property
    def kickoff_late_share(self) -> float: ...

    @property
    def no_kickoff_share(self) -> float: ...

    @property
    def churn_share(self) -> float: ...

    @property
    def expansion_share(self) -> float: ...

    @property
    def nps_share(self) -> float: ...


@lru_cache(maxsize=1)
def _jp_holidays() -> holidays.HolidayBase:
    return holidays.country_holidays("JP")


def is_jp_business_day(day: date) -> bool:
    """Monday to Friday and not a Japanese public holiday."""
    return day.weekday() < 5 and day not in _jp_holidays()


def add_jp_business_days(start: datetime, days: int) -> datetime:
    """``start`` plus ``days`` Japanese business days at the same Tokyo clock time (UTC).

    A start on a weekend or holiday counts from 09:00 of the next business day.
    """
    local = start.astimezone(TOKYO)
    day, clock = local.date(), local.time().replace(tzinfo=None)
    if not is_jp_business_day(day):
        day, clock = _next_business_day(day), DAY_START
    for _ in range(days):
        day = _next_business_day(day)
    return datetime.combine(day, clock, tzinfo=TOKYO).astimezone(UTC)


def _next_business_day(day: date) -> date:
    day += timedelta(days=1)
    while not is_jp_business_day(day):
        day += timedelta(days=1)
    return day


def kickoff_due(won_at: datetime) -> datetime:
    """When the kickoff SLA (won -> kickoff within 3 business days, JP calendar, Tokyo) runs out."""
    return add_jp_business_days(won_at, KICKOFF_BUSINESS_DAYS)


def info_sheet(
    rng: random.Random, converted_at: datetime, rates: CsRates
) -> tuple[dict[str, Any], list[str]]:
    """The sheet's values as the rep types them, and the fields left blank (none for most people)."""
    values: dict[str, Any] = {
        "Budget__c": max(100_000, round(rng.uniform(0.3, 5.0) * 10) * 100_000),
        "Authority__c": rng.choice(AUTHORITIES),
        "Need__c": rng.choice(NEEDS),
        "Timeline__c": rng.choice(TIMELINES),
        "Meeting_Date__c": (converted_at + timedelta(days=rng.uniform(1.0, 7.0))).replace(microsecond=0),
    }
    blank: list[str] = []
    if rng.random() < rates.incomplete_sheet_share:
        blank = sorted(rng.sample(SHEET_FIELDS, rng.choice((1, 1, 1, 2, 3))), key=SHEET_FIELDS.index)
    return {k: v for k, v in values.items() if k not in blank}, blank


def after_win(rng: random.Random, won_at: datetime, rates: CsRates) -> list[Step]:
    """Customer success steps after a win planned at ``won_at``, in time order.

    Kickoff within 3 business days for most, late for ``kickoff_late_share``, never for
    ``no_kickoff_share`` (then nothing follows). After the kickoff the account becomes Active; then
    a share churns and another share buys an upgrade (never both); a share answers the NPS survey.
    """
    due = kickoff_due(won_at)
    roll = rng.random()
    if roll < rates.no_kickoff_share:
        return []
    if roll < rates.no_kickoff_share + rates.kickoff_late_share:
        kickoff = due + timedelta(days=rng.uniform(0.5, 5.0))
    else:  # on time, with a margin for a clock that is driven in steps
        kickoff = won_at + (due - won_at) * rng.uniform(0.07, 0.95)
    active = kickoff + timedelta(days=rng.uniform(1.0, 5.0))
    steps: list[Step] = [(kickoff, "kickoff", {}), (active, "activate", {})]
    roll = rng.random()
    if roll < rates.churn_share:
        steps.append((active + timedelta(days=rng.uniform(5.0, 30.0)), "churn", {}))
    elif roll < rates.churn_share + rates.expansion_share:
        opened = active + timedelta(days=rng.uniform(3.0, 20.0))
        won = opened + timedelta(days=rng.uniform(1.0, 10.0))
        amount = max(100_000, round(rng.uniform(1.0, 12.0)) * 100_000)
        steps.append((opened, "expand", {"amount": amount, "expected_close": won.date()}))
        steps.append((won, "expand_win", {"amount": amount}))
    if rng.random() < rates.nps_share:
        score = rng.choices(range(11), NPS_WEIGHTS)[0]
        steps.append((active + timedelta(days=rng.uniform(1.0, 20.0)), "nps", {"score": score}))
    return sorted(steps, key=lambda s: s[0])
