"""The sandbox's equality lookups return exactly what a full scan would, in the same order."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from sandboxes.common import SimClock
from sandboxes.salesforce import SalesforceSandbox
from sandboxes.salesforce.lookup import EqualityLookups
from sandboxes.salesforce.soql import parse

NAMES = ["Sato", "sato", "SATO", "Suzuki", "O'Brien", "Ng"]
insert = st.tuples(st.just("insert"), st.sampled_from(NAMES), st.integers(0, 3))
update = st.tuples(st.just("update"), st.sampled_from(NAMES), st.integers(0, 30))
delete = st.tuples(st.just("delete"), st.just(""), st.integers(0, 30))
query = st.tuples(
    st.just("query"), st.lists(st.sampled_from(NAMES), min_size=1, max_size=3), st.integers(0, 30)
)


def _quote(value: str) -> str:
    return "'" + value.replace("'", "\\'") + "'"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(insert, update, delete, query), min_size=1, max_size=40))
def test_lookup_queries_equal_a_full_scan(steps: list[tuple[str, object, int]]) -> None:
    sb = SalesforceSandbox(clock=SimClock(start=datetime(2026, 1, 5, tzinfo=UTC), speed=0))
    ids: list[str] = []
    for action, arg, n in steps:
        live = [i for i in ids if sb.get("Lead", i) is not None]
        if action == "insert":
            ids.append(sb.insert("Lead", {"LastName": arg, "Company": "Acme", "Email": f"p{n}@x.io"}))
        elif action == "update" and live:
            sb.update("Lead", live[n % len(live)], {"LastName": arg})
        elif action == "delete" and live:
            sb.delete("Lead", live[n % len(live)])
        elif action == "query":
            wanted = list(arg)  # type: ignore[call-overload]
            everyone = sb.query("SELECT Id, LastName FROM Lead")  # no pinned field: a full scan
            folded = {w.casefold() for w in wanted}
            expected = [r["Id"] for r in everyone if str(r["LastName"]).casefold() in folded]
            soql = f"SELECT Id FROM Lead WHERE LastName IN ({', '.join(_quote(w) for w in wanted)})"
            assert [r["Id"] for r in sb.query(soql)] == expected
            if live:  # an Id given in its 15-character form finds the 18-character record
                target = live[n % len(live)]
                got = sb.query(f"SELECT Id FROM Lead WHERE Id = '{target[:15]}' AND IsDeleted = false")
                assert [r["Id"] for r in got] == [target]


def test_conditions_that_pin_no_field_scan_everything() -> None:
    table = {"a": {"Id": "a", "LastName": "x"}, "b": {"Id": "b", "LastName": "y"}}
    lookups = EqualityLookups()
    either = parse("SELECT Id FROM Lead WHERE LastName = 'x' OR LastName = 'y'").where
    assert list(lookups.candidates("Lead", table, either)) == list(table.values())
    assert list(lookups.candidates("Lead", table, None)) == list(table.values())
