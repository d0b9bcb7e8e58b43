"""Per-field write decisions: direction, conflict rule, and echo suppression by remembered values.

Pure functions: given both sides' current values, the mapping's projections and what Closedloop last
saw/wrote per field, decide what to write where. Nothing here talks to an API or the store.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping as MappingABC
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sync.mapping import FieldMap
from sync.mapping.coerce import is_blank
from sync.roles import MA, SFA

__all__ = ["MA", "SFA", "FieldDecision", "canonical", "decide_fields", "same", "value_hash"]


def canonical(value: Any) -> str:
    """A comparable text form: blanks are '', numbers lose trailing zeros, booleans are lower-case."""
    if is_blank(value):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        number = float(value)
        return str(int(number)) if number.is_integer() else repr(number)
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        return text
    if text.lower() in ("nan", "inf", "-inf", "infinity"):
        return text
    return str(int(number)) if number.is_integer() else repr(number)


def value_hash(value: Any) -> str:
    """Short stable hash of a value's canonical form, stored in field_state."""
    return hashlib.blake2b(canonical(value).encode(), digest_size=16).hexdigest()


def same(a: Any, b: Any) -> bool:
    """Equal after canonicalisation (so "55" == 55.0 and None == "")."""
    return canonical(a) == canonical(b)


@dataclass
class FieldDecision:
    """Writes decided for one person, and the values each side will hold afterwards."""

    ma_writes: dict[str, Any] = field(default_factory=dict)
    sfa_writes: dict[str, Any] = field(default_factory=dict)
    settled: dict[tuple[str, str], Any] = field(default_factory=dict)  # (system, field) -> value


def decide_fields(
    fields: list[FieldMap],
    sfa_object: str,
    ma: MappingABC[str, Any],
    sfa: MappingABC[str, Any],
    forward: MappingABC[str, Any],
    backward: MappingABC[str, Any],
    remembered: MappingABC[tuple[str, str], str],
    ma_updated_at: datetime | None,
    sfa_updated_at: datetime | None,
) -> FieldDecision:
    """Decide every mapped field for one person.

    ``forward``/``backward`` are the mapping's projections (MA→SFA keyed by sales-side field, SFA→MA
    keyed by marketing-side field). ``remembered`` holds value hashes per (role, field) from the last sync.
    """
    out = FieldDecision()
    for fm in fields:
        if fm.sync == "none" or sfa_object not in fm.sfa_objects:
            continue
        mv, sv = ma.get(fm.ma), sfa.get(fm.sfa)
        want_sfa, want_ma = forward.get(fm.sfa), backward.get(fm.ma)
        winner = _winner(fm, mv, sv, want_sfa, want_ma, remembered, ma_updated_at, sfa_updated_at)
        if winner == "ma" and fm.sfa in forward and not same(want_sfa, sv):
            out.sfa_writes[fm.sfa] = want_sfa
            sv = want_sfa
        elif winner == "sfa" and fm.ma in backward and not same(want_ma, mv):
            out.ma_writes[fm.ma] = want_ma
            mv = want_ma
        out.settled[(MA, fm.ma)] = mv
        out.settled[(SFA, fm.sfa)] = sv
    return out


def _winner(
    fm: FieldMap,
    mv: Any,
    sv: Any,
    want_sfa: Any,
    want_ma: Any,
    remembered: MappingABC[tuple[str, str], str],
    ma_updated_at: datetime | None,
    sfa_updated_at: datetime | None,
) -> str | None:
    """Which side's value should both sides hold: "ma", "sfa" or None (leave both alone)."""
    rule = fm.sync
    if rule == "ma_to_sfa":
        return "ma"
    if rule == "sfa_to_ma":
        return "sfa"
    if rule == "prefer_sfa_unless_blank":
        return "sfa" if not is_blank(sv) else ("ma" if not is_blank(mv) else None)
    if rule == "prefer_ma_unless_blank":
        return "ma" if not is_blank(mv) else ("sfa" if not is_blank(sv) else None)
    # two_way: the side that changed since we last synced wins; if both or neither did, the newer record.
    if same(want_sfa, sv) or same(want_ma, mv):
        return None
    if is_blank(mv) != is_blank(sv) and (MA, fm.ma) not in remembered:
        return "ma" if not is_blank(mv) else "sfa"
    ma_changed = remembered.get((MA, fm.ma)) != value_hash(mv)
    sfa_changed = remembered.get((SFA, fm.sfa)) != value_hash(sv)
    if ma_changed and not sfa_changed:
        return "ma"
    if sfa_changed and not ma_changed:
        return "sfa"
    if ma_updated_at is None or sfa_updated_at is None:
        return "ma" if sfa_updated_at is None else "sfa"
    return "ma" if ma_updated_at >= sfa_updated_at else "sfa"
