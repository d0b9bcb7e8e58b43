"""CRM v3 search for the HubSpot sandbox (https://developers.hubspot.com/docs/api/crm/search).

The same for every object type; what it sees is the store's search index (see :mod:`hubspot_index`).

Filter groups are ORed, filters inside a group ANDed; at most 5 groups, 6 filters per group and
18 filters in all; ``limit`` at most 200; paging stops at 10,000 results (``after`` beyond → 400).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from typing import Any

from sandboxes.hubspot_errors import HubSpotError
from sandboxes.hubspot_props import PropertyDef
from sandboxes.hubspot_store import ObjectStore, Record
from sync.timeutil import parse_timestamp, to_epoch_ms

MAX_LIMIT = 200
MAX_RESULTS = 10_000
MAX_GROUPS = 5
MAX_FILTERS_PER_GROUP = 6
MAX_FILTERS = 18
_TOKEN_SPLIT = re.compile(r"[^0-9a-z*]+")


def _key(prop: PropertyDef, value: str) -> Any:
    """Comparable form of a stored or filter value for this property's type."""
    if prop.type == "number":
        try:
            return float(value)
        except ValueError as exc:
            raise HubSpotError(400, f"{value} is not a valid number for {prop.name}") from exc
    if prop.type in {"datetime", "date"}:
        try:
            parsed = parse_timestamp(value)
        except ValueError as exc:
            raise HubSpotError(400, f"{value} is not a valid date for {prop.name}") from exc
        if parsed is None:
            raise HubSpotError(400, f"{value} is not a valid date for {prop.name}")
        return to_epoch_ms(parsed)
    return value.lower()


def _tokens_match(stored: str, token: str) -> bool:
    token = token.lower()
    text = stored.lower()
    if "*" in token:
        return fnmatch.fnmatchcase(text, token) or any(
            fnmatch.fnmatchcase(t, token) for t in _TOKEN_SPLIT.split(text)
        )
    return token in _TOKEN_SPLIT.split(text) or token == text


Predicate = Callable[[Record], bool]


def _compile_filter(store: ObjectStore, spec: Any) -> Predicate:
    if not isinstance(spec, dict):
        raise HubSpotError(400, "Invalid input JSON: each filter must be an object")
    name = spec.get("propertyName")
    operator = str(spec.get("operator", "EQ")).upper()
    prop = store.properties.get(str(name))
    if prop is None:
        raise HubSpotError(400, f"There was a problem with the request: property {name} does not exist")

    def stored(c: Record) -> str | None:
        return c.values.get(prop.name)

    if operator == "HAS_PROPERTY":
        return lambda c: stored(c) is not None
    if operator == "NOT_HAS_PROPERTY":
        return lambda c: stored(c) is None
    if operator in {"IN", "NOT_IN"}:
        keys = {_key(prop, str(v)) for v in spec.get("values") or []}
        if operator == "IN":
            return lambda c: (v := stored(c)) is not None and _key(prop, v) in keys
        return lambda c: (v := stored(c)) is None or _key(prop, v) not in keys
    if "value" not in spec or spec["value"] is None:
        raise HubSpotError(400, f"Filter on {name} with operator {operator} requires a value")
    raw = str(spec["value"])
    if operator in {"CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"}:
        want = operator == "CONTAINS_TOKEN"
        return lambda c: ((v := stored(c)) is not None and _tokens_match(v, raw)) == want
    target = _key(prop, raw)
    if operator == "EQ":
        return lambda c: (v := stored(c)) is not None and _key(prop, v) == target
    if operator == "NEQ":
        return lambda c: (v := stored(c)) is None or _key(prop, v) != target
    if operator == "BETWEEN":
        if spec.get("highValue") is None:
            raise HubSpotError(400, f"BETWEEN filter on {name} requires highValue")
        high = _key(prop, str(spec["highValue"]))
        return lambda c: (v := stored(c)) is not None and target <= _key(prop, v) <= high
    compare: dict[str, Callable[[Any, Any], bool]] = {
        "LT": lambda a, b: a < b,
        "LTE": lambda a, b: a <= b,
        "GT": lambda a, b: a > b,
        "GTE": lambda a, b: a >= b,
    }
    if operator not in compare:
        raise HubSpotError(400, f"Unknown operator {operator}")
    op = compare[operator]
    return lambda c: (v := stored(c)) is not None and op(_key(prop, v), target)


def _compile(store: ObjectStore, groups: Any) -> Predicate:
    if not isinstance(groups, list):
        raise HubSpotError(400, "Invalid input JSON: filterGroups must be a list")
    if len(groups) > MAX_GROUPS:
        raise HubSpotError(400, f"Too many filter groups: at most {MAX_GROUPS} are allowed")
    compiled: list[list[Predicate]] = []
    total = 0
    for group in groups:
        filters = (group or {}).get("filters") or []
        if len(filters) > MAX_FILTERS_PER_GROUP:
            raise HubSpotError(
                400, f"Too many filters in a group: at most {MAX_FILTERS_PER_GROUP} are allowed"
            )
        total += len(filters)
        compiled.append([_compile_filter(store, f) for f in filters])
    if total > MAX_FILTERS:
        raise HubSpotError(400, f"Too many filters: at most {MAX_FILTERS} are allowed in total")
    if not compiled:
        return lambda c: True
    return lambda c: any(all(f(c) for f in group) for group in compiled)


def _sort_key(store: ObjectStore, sorts: Any) -> tuple[Callable[[Record], Any], bool]:
    if not sorts:
        return (lambda c: int(c.id)), False
    first = sorts[0]
    if isinstance(first, str):
        name, descending = first.lstrip("-"), first.startswith("-")
    elif isinstance(first, dict):
        name = str(first.get("propertyName"))
        descending = str(first.get("direction", "ASCENDING")).upper() == "DESCENDING"
    else:
        raise HubSpotError(400, "Invalid sort")
    prop = store.properties.get(name)
    if prop is None:
        raise HubSpotError(400, f"There was a problem with the request: property {name} does not exist")

    def key(c: Record) -> Any:
        v = c.values.get(name)
        # Records without the property sort after those with it, whatever the direction.
        missing = v is None
        return (missing != descending, _key(prop, v) if v is not None else 0, int(c.id))

    return key, descending


def search(store: ObjectStore, body: dict[str, Any]) -> dict[str, Any]:
    """Run a search request body against the store and build the response."""
    try:
        limit = int(body.get("limit") or 10)
        offset = int(body.get("after") or 0)
    except (TypeError, ValueError) as exc:
        raise HubSpotError(400, "Invalid input JSON: limit and after must be integers") from exc
    if limit < 1 or limit > MAX_LIMIT:
        raise HubSpotError(400, f"limit must be between 1 and {MAX_LIMIT}")
    if offset < 0 or offset >= MAX_RESULTS:
        # Paging through more than 10,000 results is rejected with a 400.
        raise HubSpotError(
            400,
            f"The after parameter can't be {MAX_RESULTS} or more: search results are "
            f"limited to {MAX_RESULTS} records",
        )
    matches = _compile(store, body.get("filterGroups") or [])
    query = str(body.get("query") or "").strip().lower()
    found = [c for c in store.searchable() if matches(c)]
    if query:
        found = [
            c for c in found if any(query in (c.values.get(p) or "").lower() for p in store.query_properties)
        ]
    key, descending = _sort_key(store, body.get("sorts"))
    found.sort(key=key, reverse=descending)
    page = found[offset : offset + limit]
    properties = body.get("properties") or None
    result: dict[str, Any] = {
        "total": len(found),
        "results": [store.render(c, properties) for c in page],
    }
    if offset + limit < len(found):
        result["paging"] = {"next": {"after": str(offset + limit)}}
    return result
