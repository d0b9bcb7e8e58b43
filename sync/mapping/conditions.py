"""Stage conditions: parsed once from YAML data into predicates, never eval'd.

Grammar: a leaf ``{field: NAME, <op>: value, ...}`` (several ops are ANDed), or one combinator
``{all: [...]}``, ``{any: [...]}``, ``{not: {...}}``. A Salesforce (``sfa``) condition names its
object at its top: ``{object: Lead|Contact|Opportunity, ...}``, or a related object
(``Account|Event|Task`` by default). Values compare type-aware: the
literal's type decides (a number literal compares numerically even against "55"). A missing or
blank value fails every op except ``ne``, ``not_in`` and ``present: false``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal

from sync.mapping.coerce import is_blank, to_bool, to_number, to_text
from sync.mapping.errors import Issue
from sync.mapping.suggest import did_you_mean

Side = Literal["ma", "sfa"]
Record = Mapping[str, Any]
Predicate = Callable[[Record], bool]

SFA_OBJECTS = ("Lead", "Contact", "Opportunity")  # the default sales-side objects (Salesforce)
SFA_RELATED = ("Account", "Event", "Task")  # the default related objects (Salesforce)
# The sales-side objects of the mapping being validated: a mapping may declare its own
# (``sfa_objects: [contact, deal]``); conditions and references are checked against them.
_SCOPE: ContextVar[tuple[str, ...]] = ContextVar("sfa_objects", default=SFA_OBJECTS)
# Its related objects (``sfa_related``): stage conditions and some references may also name them.
_RELATED: ContextVar[tuple[str, ...]] = ContextVar("sfa_related", default=SFA_RELATED)


def sfa_objects_in_scope() -> tuple[str, ...]:
    """The sales-side objects (person and outcome objects) of the mapping being validated."""
    return _SCOPE.get()


def sfa_related_in_scope() -> tuple[str, ...]:
    """The related objects of the mapping being validated."""
    return _RELATED.get()


def sfa_nameable_objects() -> tuple[str, ...]:
    """Every object a stage condition may name: the sales-side objects, then the related ones."""
    return _SCOPE.get() + _RELATED.get()


@contextmanager
def sfa_object_scope(objects: tuple[str, ...], related: tuple[str, ...] = ()) -> Iterator[None]:
    """Validate conditions and ``Object.Field`` references against these objects inside the block."""
    token, related_token = _SCOPE.set(objects), _RELATED.set(related)
    try:
        yield
    finally:
        _RELATED.reset(related_token)
        _SCOPE.reset(token)


def _one_of(objects: tuple[str, ...]) -> str:
    return ", ".join(objects[:-1]) + f" or {objects[-1]}" if len(objects) > 1 else objects[0]


OPS = ("eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "present", "contains", "matches")
COMBINATORS = ("all", "any", "not")
Path = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Condition:
    """A compiled condition: ``test(record)`` is the predicate; ``object`` is set for sfa conditions."""

    test: Predicate
    fields: frozenset[str]
    object: str | None
    source: dict[str, Any]

    def __call__(self, record: Record | None) -> bool:
        return record is not None and self.test(record)


class ConditionSyntaxError(ValueError):
    """Raised by :func:`compile_condition` with every issue found."""

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = issues
        super().__init__("; ".join(msg for _, msg, _ in issues))


def compile_condition(raw: Any, side: Side) -> Condition:
    """Parse and compile a condition, raising ConditionSyntaxError listing all issues."""
    issues: list[Issue] = []
    obj: str | None = None
    fields: set[str] = set()
    if side == "sfa" and isinstance(raw, Mapping):
        objects = sfa_nameable_objects()
        obj_raw = raw.get("object")
        if "object" not in raw:
            main, related = sfa_objects_in_scope(), sfa_related_in_scope()
            also = f" (or a related object: {'|'.join(related)})" if related else ""
            issues.append(((), f"an sfa condition needs 'object: {'|'.join(main)}'{also}", "value"))
        elif obj_raw not in objects:
            hint = did_you_mean(obj_raw, objects)
            issues.append((("object",), f"unknown object {obj_raw!r}: use {_one_of(objects)}{hint}", "value"))
        else:
            obj = obj_raw
        body = {k: v for k, v in raw.items() if k != "object"}
    else:
        body = raw
    test = _node(body, (), issues, fields, top=True, side=side)
    if issues or test is None:
        raise ConditionSyntaxError(issues)
    return Condition(test=test, fields=frozenset(fields), object=obj, source=_plain(raw))


def _plain(raw: Any) -> Any:
    if isinstance(raw, Mapping):
        return {str(k): _plain(v) for k, v in raw.items()}
    if isinstance(raw, list | tuple):
        return [_plain(v) for v in raw]
    return raw


def _node(
    raw: Any, path: Path, issues: list[Issue], fields: set[str], *, top: bool, side: Side
) -> Predicate | None:
    if not isinstance(raw, Mapping):
        issues.append((path, "a condition must be a mapping like {field: NAME, eq: VALUE}", "value"))
        return None
    if not raw:
        issues.append((path, "empty condition", "value"))
        return None
    allowed = ("field", *OPS, *COMBINATORS) + (("object",) if top and side == "sfa" else ())
    before = len(issues)
    for key in raw:
        if key == "object":
            where = "at the top of an sfa condition" if side == "sfa" else "in sfa conditions"
            issues.append((path + (key,), f"'object' is only allowed {where}", "key"))
        elif key not in allowed:
            issues.append(
                (path + (key,), f"unknown condition key {key!r}{did_you_mean(key, allowed)}", "key")
            )
    combs = [k for k in COMBINATORS if k in raw]
    if combs:
        return _combinator(raw, combs, path, issues, fields, side)
    if "field" not in raw:
        issues.append((path, "a condition needs 'field' (or one of all/any/not)", "value"))
        return None
    name = raw["field"]
    if not isinstance(name, str) or not name:
        issues.append((path + ("field",), "'field' must be a field name", "value"))
        return None
    fields.add(name)
    tests: list[Predicate] = []
    for op in OPS:
        if op in raw:
            t = _leaf(name, op, raw[op], path + (op,), issues)
            if t is not None:
                tests.append(t)
    if not any(op in raw for op in OPS):
        if len(issues) > before:  # a misspelt operator was already reported
            return None
        issues.append((path, f"condition on {name!r} has no operator (one of: {', '.join(OPS)})", "value"))
        return None
    return _and(tests) if tests else None


def _combinator(
    raw: Mapping[str, Any], combs: list[str], path: Path, issues: list[Issue], fields: set[str], side: Side
) -> Predicate | None:
    stray = [k for k in raw if k in ("field", *OPS)]
    if len(combs) > 1 or stray:
        extra = (combs[1:] + stray)[0]
        issues.append(
            (
                path + (extra,),
                f"'{combs[0]}' cannot be mixed with '{extra}' in one condition; nest them",
                "key",
            )
        )
        return None
    comb = combs[0]
    arg = raw[comb]
    if comb == "not":
        inner = _node(arg, path + ("not",), issues, fields, top=False, side=side)
        return None if inner is None else (lambda r: not inner(r))
    if not isinstance(arg, list) or not arg:
        issues.append((path + (comb,), f"'{comb}' needs a non-empty list of conditions", "value"))
        return None
    subs = [_node(item, path + (comb, i), issues, fields, top=False, side=side) for i, item in enumerate(arg)]
    tests = [s for s in subs if s is not None]
    if len(tests) != len(subs):
        return None
    return _and(tests) if comb == "all" else _or(tests)


def _and(tests: list[Predicate]) -> Predicate:
    if len(tests) == 1:
        return tests[0]
    if len(tests) == 2:
        a, b = tests
        return lambda r: a(r) and b(r)
    seq = tuple(tests)

    def every(r: Record) -> bool:
        for t in seq:  # noqa: SIM110 - a plain loop avoids generator overhead on the hot path
            if not t(r):
                return False
        return True

    return every


def _or(tests: list[Predicate]) -> Predicate:
    if len(tests) == 1:
        return tests[0]
    if len(tests) == 2:
        a, b = tests
        return lambda r: a(r) or b(r)
    seq = tuple(tests)

    def some(r: Record) -> bool:
        for t in seq:  # noqa: SIM110 - a plain loop avoids generator overhead on the hot path
            if t(r):
                return True
        return False

    return some


def _is_scalar(v: Any) -> bool:
    return isinstance(v, str | int | float | bool)


def _matcher(lit: Any) -> Callable[[Any], bool]:
    """value -> value equals the literal, compared in the literal's type."""
    if isinstance(lit, bool):
        return lambda v: to_bool(v) is lit
    if isinstance(lit, int | float):
        return lambda v: to_number(v) == lit
    text = str(lit)
    return lambda v: v == text if v.__class__ is str else to_text(v) == text


def _set_matcher(lits: list[Any]) -> Callable[[Any], bool]:
    bools = {x for x in lits if isinstance(x, bool)}
    nums = {x for x in lits if isinstance(x, int | float) and not isinstance(x, bool)}
    texts = frozenset(str(x) for x in lits if isinstance(x, str))

    def member(v: Any) -> bool:
        if v.__class__ is str and v in texts:
            return True
        if v is None:
            return False
        if texts and to_text(v) in texts:
            return True
        if nums and to_number(v) in nums:
            return True
        return bool(bools) and to_bool(v) in bools

    return member


_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
}


def _leaf(name: str, op: str, lit: Any, path: Path, issues: list[Issue]) -> Predicate | None:
    if op == "present":
        if not isinstance(lit, bool):
            issues.append((path, "'present' takes true or false", "value"))
            return None
        return (lambda r: not is_blank(r.get(name))) if lit else (lambda r: is_blank(r.get(name)))
    if op in ("eq", "ne"):
        if lit is None:
            issues.append((path, f"'{op}: null' is not allowed; use 'present: false'", "value"))
            return None
        if not _is_scalar(lit):
            issues.append((path, f"'{op}' takes a single value (use 'in' for a list)", "value"))
            return None
        m = _matcher(lit)
        return (lambda r: m(r.get(name))) if op == "eq" else (lambda r: not m(r.get(name)))
    if op in ("in", "not_in"):
        if not isinstance(lit, list) or not lit or not all(_is_scalar(x) for x in lit):
            issues.append((path, f"'{op}' takes a non-empty list of values", "value"))
            return None
        sm = _set_matcher(list(lit))
        return (lambda r: sm(r.get(name))) if op == "in" else (lambda r: not sm(r.get(name)))
    if op in _ORDER:
        return _ordering(name, op, lit, path, issues)
    if op == "contains":
        if not _is_scalar(lit) or isinstance(lit, bool):
            issues.append((path, "'contains' takes a string", "value"))
            return None
        needle = str(lit)
        return lambda r: _contains(r.get(name), needle)
    # matches
    if not isinstance(lit, str):
        issues.append((path, "'matches' takes a regular expression string", "value"))
        return None
    try:
        rx = re.compile(lit)
    except re.error as exc:
        issues.append((path, f"bad regular expression: {exc}", "value"))
        return None
    return lambda r: _search(rx, r.get(name))


def _ordering(name: str, op: str, lit: Any, path: Path, issues: list[Issue]) -> Predicate | None:
    cmp = _ORDER[op]
    if isinstance(lit, bool) or not _is_scalar(lit):
        issues.append((path, f"'{op}' takes a number or a string (e.g. an ISO date)", "value"))
        return None
    if isinstance(lit, int | float):

        def num_test(r: Record) -> bool:
            n = to_number(r.get(name))
            return n is not None and cmp(n, lit)

        return num_test

    def text_test(r: Record) -> bool:
        t = to_text(r.get(name))
        return t is not None and t != "" and cmp(t, lit)

    return text_test


def _contains(value: Any, needle: str) -> bool:
    if value is None:
        return False
    if isinstance(value, list | tuple | set | frozenset):
        return any(to_text(v) == needle for v in value)
    return needle in (to_text(value) or "")


def _search(rx: re.Pattern[str], value: Any) -> bool:
    text = to_text(value)
    return text is not None and rx.search(text) is not None
