"""SLA durations: ``90m``, ``24h``, ``2d``, ``3bd``, ``3 business days``, ``30 minutes``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

Unit = Literal["minutes", "hours", "days", "business_days"]

_RX = re.compile(
    r"^\s*(\d+)\s*(m|min|mins|minutes?|h|hrs?|hours?|d|days?|bd|business\s+days?)\s*$", re.IGNORECASE
)


@dataclass(frozen=True)
class Duration:
    """An SLA allowance; business days are counted on the SLA calendar (not here)."""

    amount: int
    unit: Unit

    @property
    def business(self) -> bool:
        """True when counted in business days."""
        return self.unit == "business_days"

    def as_timedelta(self) -> timedelta:
        """The wall-clock span; raises ValueError for business days (they need a calendar)."""
        if self.business:
            raise ValueError("business days need a calendar")
        return timedelta(**{self.unit: self.amount})

    def __str__(self) -> str:
        short = {"minutes": "m", "hours": "h", "days": "d", "business_days": "bd"}[self.unit]
        return f"{self.amount}{short}"


def parse_duration(text: object) -> Duration:
    """Parse a duration string; ValueError with a readable message if it is not one."""
    if isinstance(text, bool) or not isinstance(text, str | int):
        raise ValueError("a duration is a string like 24h, 90m, 2d or '3 business days'")
    m = _RX.match(str(text))
    if not m:
        raise ValueError(f"bad duration {text!r}: use e.g. 24h, 90m, 2d, 3bd or '3 business days'")
    amount, word = int(m.group(1)), m.group(2).lower()
    if amount <= 0:
        raise ValueError(f"bad duration {text!r}: must be greater than zero")
    if word.startswith("b"):
        unit: Unit = "business_days"
    elif word.startswith("h"):
        unit = "hours"
    elif word.startswith("d"):
        unit = "days"
    else:
        unit = "minutes"
    return Duration(amount, unit)
