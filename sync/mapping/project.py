"""Field projection (values flowing from one system to the other) and closed-loop values."""

from __future__ import annotations

from collections.abc import Mapping as AbcMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from sync.mapping.coerce import to_text
from sync.mapping.model import FieldMap, Mapping, SfaRef
from sync.mapping.transforms import Fn, chain

if TYPE_CHECKING:
    from sync.stages import PersonView

Source = Literal["ma", "sfa"]
_MISSING = object()
TO_SFA = frozenset({"ma_to_sfa", "two_way", "prefer_sfa_unless_blank", "prefer_ma_unless_blank"})
TO_MA = frozenset({"sfa_to_ma", "two_way", "prefer_sfa_unless_blank", "prefer_ma_unless_blank"})


@dataclass(frozen=True, slots=True)
class _Rule:
    src: str
    dst: str
    fn: Fn | None
    values: dict[str, Any] | None
    default: Any  # written for a blank value (forward flow only)
    undefault: Any  # a value equal to this reads as blank (backward flow of a defaulted field)


def reverse_values(field: FieldMap) -> dict[str, Any] | None:
    """The backward value map: explicit ``reverse_values``, or the inverse of ``values`` (first key wins)."""
    if field.reverse_values is not None:
        return field.reverse_values
    if field.values is None:
        return None
    inverse: dict[str, Any] = {}
    for key, val in field.values.items():
        if key != "_other" and val is not None:
            inverse.setdefault(str(to_text(val)), key)
    return inverse


def _rule(f: FieldMap, source: Source) -> _Rule:
    fn = chain([t.fn for t in f.transform])
    forward = (source == "ma") == (f.sync != "sfa_to_ma")
    if forward:
        return _Rule(
            f.ma if source == "ma" else f.sfa,
            f.sfa if source == "ma" else f.ma,
            fn,
            f.values,
            f.default,
            None,
        )
    return _Rule(f.sfa, f.ma, fn, reverse_values(f), None, f.default)


def _rules(mapping: Mapping, source: Source, sfa_object: str) -> tuple[_Rule, ...]:
    cache: dict[tuple[str, str], tuple[_Rule, ...]] = mapping.cached("project.rules", lambda m: {})
    try:
        return cache[source, sfa_object]
    except KeyError:
        allowed = TO_SFA if source == "ma" else TO_MA
        rules = cache[source, sfa_object] = tuple(
            _rule(f, source) for f in mapping.fields if f.sync in allowed and sfa_object in f.sfa_objects
        )
        return rules


def apply_rule(rule: _Rule, value: Any) -> Any:
    """One field's value as it should be written: transforms, blank default, value map."""
    if rule.fn is not None:
        value = rule.fn(value)
    if value is None or (value.__class__ is str and not value.strip()):
        return rule.default
    if rule.values is not None:
        key = value if value.__class__ is str else to_text(value)
        return rule.values.get(key, rule.values.get("_other", value))  # type: ignore[arg-type]
    if rule.undefault is not None and value == rule.undefault:
        return None
    return value


def project(
    mapping: Mapping, source: Source, record: AbcMapping[str, Any], sfa_object: str = "Lead"
) -> dict[str, Any]:
    """Values flowing from ``source`` to the other system, transformed, keyed by target field.

    Only fields whose direction lets the value flow that way (two_way and prefer_* flow both ways)
    and that apply to ``sfa_object``; fields absent from ``record`` are left out; blank becomes the
    field's default (flowing forward) or None. No conflict resolution here.
    """
    out: dict[str, Any] = {}
    for rule in _rules(mapping, source, sfa_object):
        value = record.get(rule.src, _MISSING)
        if value is not _MISSING:
            out[rule.dst] = apply_rule(rule, value)
    return out


def outcome(mapping: Mapping, stage: str) -> str:
    """The sales outcome: open | won | <terminal detour id> (lost, disqualified).

    Stages after the won one (kickoff, customer, expansion) and a detour leaving from them (churned)
    keep the outcome won: the deal was won; the stage itself says what happened since.
    """
    outcomes: dict[str, str] = mapping.cached("project.outcomes", _outcomes)
    return outcomes[stage]


def _outcomes(mapping: Mapping) -> dict[str, str]:
    from sync.stages import detour_anchor  # the stage engine imports the mapping package

    path, won = mapping.success_path(), mapping.won_stage()
    out = {stage: (won if i >= path.index(won) else "open") for i, stage in enumerate(path)}
    for st in mapping.stages:
        if st.detour:
            anchor = None if st.recycle else detour_anchor(mapping, st.id)
            leaves_after_win = anchor is not None and path.index(anchor) > path.index(won)
            out[st.id] = "open" if st.recycle else won if leaves_after_win else st.id
    return out


def closed_loop_values(mapping: Mapping, view: PersonView, stage: str | None) -> dict[str, Any]:
    """HubSpot contact property -> value for the closed loop (Salesforce outcomes, standard stage).

    ``stage``/``outcome`` entries are left out when ``stage`` is None; ``Object.Field`` entries are
    left out when the person has no such Salesforce record (a None value means "clear it").
    """
    out: dict[str, Any] = {}
    for entry in mapping.closed_loop:
        src = entry.from_
        if isinstance(src, SfaRef):
            rec = view.record(src.object)
            if rec is None:
                continue
            value = rec.get(src.field)
        elif stage is None:
            continue
        else:
            value = stage if src == "stage" else outcome(mapping, stage)
        for t in entry.transform:
            value = t.fn(value)
        out[entry.ma] = value
    return out
