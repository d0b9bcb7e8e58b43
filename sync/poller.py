"""Polling: ask each role's connector what changed since its saved cursors, resolve it to common IDs.

The cursor state is the connector's business (a modification-time watermark, a paging token); the
poller only loads it, hands it over, and saves what comes back once the changes are resolved, in
the same transaction, so a crash in between re-reads rather than loses.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import timedelta

from sqlalchemy.orm import Session

from sync import metrics
from sync.connectors.contract import MA, SFA, Connector, MarketingConnector, SalesConnector
from sync.connectors.incremental import CursorState
from sync.identity import Candidate, IdentityMap
from sync.store.db import Store
from sync.store.models import Cursor
from sync.timeutil import utcnow


class Poller:
    """Turns "what changed since the saved cursors" into the common IDs to sync."""

    def __init__(
        self,
        store: Store,
        ma: MarketingConnector,
        sfa: SalesConnector,
        overlap: timedelta = timedelta(minutes=2),
    ) -> None:
        self.store = store
        self.connectors: dict[str, Connector] = {MA: ma, SFA: sfa}
        self.connector_names = {role: c.profile.connector for role, c in self.connectors.items()}
        self.overlap = overlap

    def poll(self, role: str) -> list[str]:
        """Common IDs of the people whose records changed in ``role``'s system since the last cycle."""
        connector = self.connectors[role]
        names = {stream: f"{role}:{stream}" for stream in connector.streams}
        with self.store.session() as session:
            saved = {stream: load_cursor(session, key) for stream, key in names.items()}
        batch = connector.poll(saved, self.overlap)
        with self.store.session() as session:
            ids = self.resolve(session, batch.candidates)
            for stream, position in batch.cursors.items():
                save_cursor(session, names[stream], position)
        return ids

    def resolve(self, session: Session, candidates: Sequence[Candidate]) -> list[str]:
        """Common IDs for candidates (minting new ones for new people)."""
        return unique(IdentityMap(session, self.connector_names).resolve_batch(candidates))


def unique(ids: Iterable[str]) -> list[str]:
    """``ids`` without repeats, in first-seen order."""
    return list(dict.fromkeys(ids))


def load_cursor(session: Session, stream: str) -> CursorState:
    """A stream's saved position (empty for a stream never read)."""
    cursor = session.get(Cursor, stream)
    if cursor is None:
        return CursorState()
    return CursorState(cursor.watermark, dict(cursor.state or {}))


def save_cursor(session: Session, stream: str, position: CursorState) -> None:
    """Store a stream's position and report its lag."""
    now = utcnow()
    cursor = session.get(Cursor, stream)
    if cursor is None:
        cursor = Cursor(stream=stream, watermark=None, state={}, updated_at=now)
        session.add(cursor)
    cursor.watermark = position.watermark
    cursor.state = position.state
    cursor.last_success_at = now
    cursor.updated_at = now
    if position.watermark is not None:
        lag = max(0.0, (now - position.watermark).total_seconds())
        metrics.sync_lag_seconds.labels(stream=stream).set(lag)
