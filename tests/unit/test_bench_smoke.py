"""Benchmark helpers compute their figures from counters; the poller's re-read margin settles when idle."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from bench.common import WriteTally, format_table, write_calls
from sandboxes.common import CallCounter
from sync.connectors.incremental import Incremental
from sync.poller import load_cursor, save_cursor
from sync.store.db import Store


def test_write_calls_keeps_only_write_endpoints_of_every_status() -> None:
    counter = CallCounter()
    counter.add("POST", "/crm/v3/objects/contacts/batch/update", 200)
    counter.add("POST", "/crm/v3/objects/contacts/batch/update", 429)
    counter.add("POST", "/crm/v3/objects/contacts/batch/read", 200)
    counter.add("POST", "/crm/v3/objects/contacts/search", 200)
    counter.add("PATCH", "/services/data/v59.0/composite/sobjects/Lead/Closedloop_Id__c", 200)
    counter.add("GET", "/services/data/v59.0/composite/sobjects/Lead", 200)
    counter.add("GET", "/services/data/v59.0/query/", 200)

    assert write_calls(counter, "hubspot") == {"/crm/v3/objects/contacts/batch/update": 2}
    assert write_calls(counter, "salesforce") == {
        "PATCH /services/data/v59.0/composite/sobjects/Lead/Closedloop_Id__c": 1
    }


class _FakeConnector:
    def __init__(self) -> None:
        self.calls: list[Any] = []

    def update(self, *args: Any) -> list[str]:
        self.calls.append(args)
        return []

    def upsert(self, *args: Any) -> tuple[dict[str, str], list[str]]:
        self.calls.append(args)
        return {}, []

    def create(self, *args: Any) -> tuple[list[str], list[str]]:
        self.calls.append(args)
        return [], []


class _Edges:
    def __init__(self) -> None:
        self.ma = _FakeConnector()
        self.sfa = _FakeConnector()


class _Runtime:
    def __init__(self) -> None:
        self.edges = _Edges()
        self.hubspot, self.salesforce = self.edges.ma, self.edges.sfa


def test_write_tally_counts_records_and_still_calls_the_connector() -> None:
    runtime = _Runtime()
    tally = WriteTally()
    tally.install(runtime)  # type: ignore[arg-type]

    runtime.hubspot.update({str(i): {"a": 1} for i in range(150)})
    runtime.salesforce.upsert("Lead", "Closedloop_Id__c", [{"x": i} for i in range(230)])
    runtime.salesforce.update("Contact", [{"Id": "1"}])

    assert tally.records[("hubspot", "contact", "update")] == 150
    assert tally.records[("salesforce", "Lead", "upsert")] == 230
    assert tally.total("salesforce") == 231
    assert len(runtime.hubspot.calls) == 1 and len(runtime.salesforce.calls) == 2


def test_format_table_aligns_numbers_right() -> None:
    text = format_table(["name", "n"], [["a", 5], ["bb", 1234]])
    lines = text.splitlines()
    assert lines[2].endswith("    5") and lines[3].endswith("1,234")


def _advance(
    store: Store, stream: str, newest: datetime | None, seen: dict[str, str], overlap: timedelta, started: Any
) -> None:
    """One poll of a stream that saw ``seen`` (newest change ``newest``) and started at ``started``."""
    with store.session() as session:
        read = Incremental(load_cursor(session, stream), overlap)
    if started is not None:
        read.started = started
    for record_id, stamp in seen.items():
        read.seen.pop(record_id, None)
        read.is_new(record_id, stamp)
    if newest is None:
        read.newest = None
    with store.session() as session:
        save_cursor(session, stream, read.advance())


def _lower_bound(store: Store, stream: str, overlap: timedelta) -> datetime | None:
    with store.session() as session:
        return Incremental(load_cursor(session, stream), overlap).lower_bound()


def test_idle_poll_margin_settles_after_overlap_of_elapsed_time(sqlite_url: str) -> None:
    store = Store(sqlite_url)
    overlap = timedelta(seconds=120)
    mark = datetime(2026, 9, 1, 9, 0, tzinfo=UTC)
    stream = "ma:contacts"
    try:
        _advance(store, stream, mark, {"1": mark.isoformat()}, overlap, started=None)
        assert _lower_bound(store, stream, overlap) == mark - overlap  # the margin is re-read at first
        with store.session() as session:
            moved_at = datetime.fromisoformat(load_cursor(session, stream).state["moved_at"])
        # An idle read that started before the margin elapsed keeps re-reading it.
        _advance(store, stream, None, {"1": mark.isoformat()}, overlap, moved_at + overlap / 2)
        assert _lower_bound(store, stream, overlap) == mark - overlap
        # One started a whole margin later saw every late record: reads now start at the watermark.
        _advance(store, stream, None, {"1": mark.isoformat()}, overlap, moved_at + overlap)
        assert _lower_bound(store, stream, overlap) == mark
        # A newer change moves the watermark and brings the margin back.
        newer = mark + timedelta(minutes=5)
        _advance(store, stream, newer, {"2": newer.isoformat()}, overlap, moved_at + overlap * 2)
        assert _lower_bound(store, stream, overlap) == newer - overlap
    finally:
        store.dispose()
