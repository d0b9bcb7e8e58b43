"""Planner statistics after bulk loads: refreshed on PostgreSQL, a no-op on SQLite."""

from __future__ import annotations

from sqlalchemy import text

from sync.identity import mint_common_id
from sync.store.db import Store
from sync.store.models import Person
from sync.timeutil import utcnow


def _reltuples(store: Store, table: str) -> float:
    with store.engine.connect() as conn:
        return float(
            conn.execute(
                text("SELECT reltuples FROM pg_class WHERE relname = :t AND relkind = 'r'"), {"t": table}
            ).scalar_one()
        )


def test_refresh_statistics_samples_the_tables_on_postgresql_only(store: Store) -> None:
    now = utcnow()
    with store.session() as session:
        session.add_all(
            Person(common_id=mint_common_id(), attributes={}, created_at=now, updated_at=now)
            for _ in range(57)
        )
    postgres = store.engine.dialect.name == "postgresql"
    if postgres:
        assert _reltuples(store, "people") == -1  # never analysed: the planner guesses
    assert store.refresh_statistics(("people", "match_keys")) is postgres
    if postgres:
        assert _reltuples(store, "people") == 57
        assert _reltuples(store, "match_keys") == 0
