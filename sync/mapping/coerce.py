"""Type-aware value coercion shared by conditions and transforms (hot path: keep it cheap)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

_TRUE = frozenset({"true", "1", "yes", "y", "on"})
_FALSE = frozenset({"false", "0", "no", "n", "off"})


def is_blank(value: Any) -> bool:
    """True for None and for strings that are empty after trimming."""
    return value is None or (isinstance(value, str) and not value.strip())


def to_number(value: Any) -> float | int | None:
    """A number from a number or a numeric string (HubSpot sends "55"); None if not numeric."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    if isinstance(value, Decimal):
        return float(value)
    return None


def to_bool(value: Any) -> bool | None:
    """A boolean from a bool, 0/1 or "true"/"false"-like strings; None otherwise."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        low = value.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        return None
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    return None


def to_text(value: Any) -> str | None:
    """A canonical string for comparison: booleans as true/false, integral floats without .0."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
