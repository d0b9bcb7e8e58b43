"""Field value transforms: parsed once into functions, applied in the order written.

Named: ``trim``, ``lower``, ``upper``, ``nfkc``. Parameterised: ``{truncate: N}``,
``{date: FORMAT}`` (strftime; input ISO 8601, a date, or epoch milliseconds as HubSpot sends),
``{number: {decimals: N}}``. Values a transform cannot handle pass through unchanged.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from typing import Any

from sync.mapping.coerce import to_number
from sync.mapping.suggest import did_you_mean

Fn = Callable[[Any], Any]
NAMED = ("trim", "lower", "upper", "nfkc")
PARAMETERISED = ("truncate", "date", "number")


class TransformError(ValueError):
    """A transform spec is invalid."""


# Transforms that only touch strings, keyed by their wrapper, so chain() can fuse runs of them
# behind one type check (the hot path of projection).
_STR_ONLY: dict[Fn, Callable[[str], str]] = {}


def _str_only(fn: Callable[[str], str]) -> Fn:
    def wrapper(v: Any) -> Any:
        return fn(v) if isinstance(v, str) else v

    _STR_ONLY[wrapper] = fn
    return wrapper


_NAMED_FNS: dict[str, Fn] = {
    "trim": _str_only(str.strip),
    "lower": _str_only(str.lower),
    "upper": _str_only(str.upper),
    "nfkc": _str_only(lambda s: unicodedata.normalize("NFKC", s)),
}


def normalise_key(value: Any) -> str | None:
    """Normalise a match key (e.g. email): NFKC, trim, lower-case; None when blank."""
    if value is None:
        return None
    text = unicodedata.normalize("NFKC", str(value)).strip().lower()
    return text or None


def parse_datetime(value: Any) -> datetime | None:
    """An aware UTC datetime from a datetime, date, ISO 8601 string or epoch milliseconds."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return datetime.fromtimestamp(int(text) / 1000, tz=UTC)
    # Salesforce writes offsets as +0000; fromisoformat in 3.11 accepts that and a trailing Z.
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _truncate(arg: Any) -> Fn:
    if isinstance(arg, bool) or not isinstance(arg, int) or arg < 1:
        raise TransformError("'truncate' takes a positive whole number of characters")
    return _str_only(lambda v: v[:arg])


def _date(arg: Any) -> Fn:
    if not isinstance(arg, str) or not arg:
        raise TransformError("'date' takes a strftime format such as '%Y-%m-%d'")
    try:
        datetime(2000, 1, 2).strftime(arg)
    except ValueError as exc:
        raise TransformError(f"bad date format {arg!r}: {exc}") from None

    def fmt(v: Any) -> Any:
        parsed = parse_datetime(v)
        return v if parsed is None else parsed.strftime(arg)

    return fmt


def _number(arg: Any) -> Fn:
    if arg is None:
        arg = {}
    if not isinstance(arg, dict) or set(arg) - {"decimals"}:
        raise TransformError("'number' takes {decimals: N}")
    decimals = arg.get("decimals")
    if decimals is not None and (isinstance(decimals, bool) or not isinstance(decimals, int) or decimals < 0):
        raise TransformError("'decimals' must be a whole number >= 0")

    def num(v: Any) -> Any:
        n = to_number(v)
        if n is None:
            return v
        if decimals is None:
            return int(n) if float(n).is_integer() else n
        return int(round(n)) if decimals == 0 else round(float(n), decimals)

    return num


_PARAM_FNS: dict[str, Callable[[Any], Fn]] = {"truncate": _truncate, "date": _date, "number": _number}


def compile_transform(spec: Any) -> Fn:
    """One transform spec (a name or a one-key mapping) to a function; TransformError if invalid."""
    if isinstance(spec, str):
        if spec in _NAMED_FNS:
            return _NAMED_FNS[spec]
        if spec in _PARAM_FNS:
            raise TransformError(f"'{spec}' needs a parameter, e.g. {{{spec}: ...}}")
        raise TransformError(f"unknown transform {spec!r}{did_you_mean(spec, NAMED + PARAMETERISED)}")
    if isinstance(spec, dict) and len(spec) == 1:
        ((name, arg),) = spec.items()
        if name in _PARAM_FNS:
            return _PARAM_FNS[name](arg)
        if name in _NAMED_FNS:
            raise TransformError(f"'{name}' takes no parameter; write it as a plain name")
        raise TransformError(f"unknown transform {name!r}{did_you_mean(name, NAMED + PARAMETERISED)}")
    raise TransformError(
        "a transform is a name (trim, lower, upper, nfkc) or a one-key mapping "
        "({truncate: N}, {date: FORMAT}, {number: {decimals: N}})"
    )


def chain(fns: Sequence[Fn]) -> Fn | None:
    """Compose functions left to right; None when there are none (callers skip the call)."""
    if not fns:
        return None
    if len(fns) > 1 and all(f in _STR_ONLY for f in fns):
        inner = tuple(_STR_ONLY[f] for f in fns)

        def run_str(v: Any) -> Any:
            if v.__class__ is not str and not isinstance(v, str):
                return v
            for f in inner:
                v = f(v)
            return v

        return run_str
    if len(fns) == 1:
        return fns[0]
    seq = tuple(fns)

    def run(v: Any) -> Any:
        for f in seq:
            v = f(v)
        return v

    return run
