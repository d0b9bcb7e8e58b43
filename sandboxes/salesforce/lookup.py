"""Equality lookups that spare the SOQL sandbox a full table scan for ``Field IN (...)`` queries.

The sync reads people in batches (``WHERE Closedloop_Id__c IN (...)``, ``WHERE LeadId IN (...)``);
scanning every record for each batch makes a large backfill quadratic in the org's size. An index
of one field, built on first use and dropped whenever its table changes, narrows the scan to the
records that can match. The query evaluator still checks every condition on what is returned, so
the index only has to return a superset, in table order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sandboxes.salesforce.soql import Compare, Cond, Literal, Logical, StringValue, comparable

_Index = dict[Any, list[tuple[int, str]]]  # comparable value -> (position in table, record id)


class EqualityLookups:
    """Per-(object, field) indexes, valid until the object's table next changes."""

    def __init__(self) -> None:
        self._versions: dict[str, int] = {}
        self._indexes: dict[tuple[str, str], tuple[int, _Index]] = {}

    def changed(self, sobject: str) -> None:
        """Record that a record of ``sobject`` was written (its indexes are stale)."""
        self._versions[sobject] = self._versions.get(sobject, 0) + 1

    def candidates(
        self, sobject: str, table: dict[str, dict[str, Any]], where: Cond | None
    ) -> Iterable[dict[str, Any]]:
        """The records of ``table`` that can satisfy ``where``: all of them unless it pins a field."""
        found = _pinned(where)
        if found is None:
            return table.values()
        field, ftype, values = found
        index = self._index(sobject, table, field, ftype)
        hits = sorted(hit for value in {comparable(v, ftype) for v in values} for hit in index.get(value, ()))
        return [table[rid] for _, rid in hits]

    def _index(self, sobject: str, table: dict[str, dict[str, Any]], field: str, ftype: str) -> _Index:
        version = self._versions.get(sobject, 0)
        cached = self._indexes.get((sobject, field))
        if cached is not None and cached[0] == version:
            return cached[1]
        index: _Index = {}
        for position, (rid, record) in enumerate(table.items()):
            value = record.get(field)
            if isinstance(value, str):
                index.setdefault(comparable(value, ftype), []).append((position, rid))
        self._indexes[(sobject, field)] = (version, index)
        return index


def _pinned(where: Cond | None) -> tuple[str, str, Sequence[str]] | None:
    """(field, type, string values) of a top-level ``Field = 'x'`` or ``Field IN (...)`` on the object."""
    items = where.items if isinstance(where, Logical) and where.op == "AND" else [where]
    for cond in items:
        if not isinstance(cond, Compare) or cond.op not in ("=", "IN") or cond.field.hops:
            continue
        target = cond.field.target
        literals = cond.value if isinstance(cond.value, list) else [cond.value]
        if target is None or not all(isinstance(lit, Literal) and lit.kind == "string" for lit in literals):
            continue
        values = [
            lit.value.text if isinstance(lit.value, StringValue) else str(lit.value) for lit in literals
        ]
        return target.name, target.type, values
    return None
