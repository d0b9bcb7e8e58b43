"""One person is synced by one worker at a time, without holding a transaction across network calls.

PostgreSQL: session-level advisory locks on a dedicated autocommit connection (no transaction stays
open while the engine talks to the vendors), taken in one statement in key order so two workers
never deadlock; they vanish with the connection, so a killed worker frees its people at once.
SQLite (embedded, one process): an in-process lock serialises batches.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, BIGINT

from sync.store.db import Store

_EMBEDDED = threading.Lock()
_LOCK_ALL = text(
    "SELECT count(pg_advisory_lock(k)) FROM (SELECT k FROM unnest(:keys) AS k ORDER BY k) AS ordered"
).bindparams(bindparam("keys", type_=ARRAY(BIGINT)))


def lock_key(common_id: str) -> int:
    """A stable signed 64-bit advisory-lock key for a common ID."""
    digest = hashlib.blake2b(f"closedloop:person:{common_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@contextmanager
def people_locked(store: Store, common_ids: Sequence[str]) -> Iterator[None]:
    """Hold every person of ``common_ids`` exclusively for the duration of the block (waits for them)."""
    if store.engine.dialect.name != "postgresql":
        with _EMBEDDED:
            yield
        return
    keys = sorted({lock_key(cid) for cid in common_ids})
    with store.engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.execute(_LOCK_ALL, {"keys": keys})
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock_all()"))
