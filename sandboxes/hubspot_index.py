"""The search index of the HubSpot sandbox: what ``/search`` sees, possibly behind the records.

HubSpot serves CRM search from a separate index that is updated asynchronously: a record created
or changed through any API is found by search only some seconds later, and until then search
returns its previous version (or nothing, for a new record), while reads by ID are current. HubSpot's
search guide gives no figure (https://developers.hubspot.com/docs/api/crm/search); integrators
report "several seconds" ("Propagation Time", https://docs.locoia.com/connectors/connectors/hubspot)
and call the search API eventually consistent
(https://blog.sequin.io/building-a-sync-on-hubspots-api/).

``delay_seconds`` is real (monotonic) time, like the rate limits: the lag is HubSpot's, not the
simulated business clock's. A delay of 0 makes search read the records directly. ``jitter_seconds``
adds a random extra lag (seeded) to each change, so changes can become searchable out of order,
as with a real index fed by several workers.
"""

from __future__ import annotations

import heapq
import itertools
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any, Protocol


class Indexable(Protocol):
    id: str
    values: dict[str, str]
    archived: bool


@dataclass
class _Snapshot:
    due: float
    seq: int
    record: Any


class SearchIndex:
    """Per-record snapshots that become visible to search ``delay_seconds`` after each change."""

    def __init__(
        self,
        delay_seconds: float = 0.0,
        jitter_seconds: float = 0.0,
        seed: int = 0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if delay_seconds < 0 or jitter_seconds < 0:
            raise ValueError("the search indexing delay can't be negative")
        self.delay_seconds = delay_seconds
        self.jitter_seconds = jitter_seconds
        self._rng = random.Random(seed)
        self._monotonic = monotonic
        self._visible: dict[str, Any] = {}
        self._pending: list[tuple[float, int, _Snapshot]] = []
        self._seq = itertools.count()

    def changed(self, record: Indexable) -> None:
        """Queue the record's current state for indexing (a copy: later edits don't leak into it)."""
        if self.delay_seconds <= 0 and self.jitter_seconds <= 0:
            return
        snap = replace(record, values=dict(record.values), history={})  # type: ignore[type-var]
        lag = self.delay_seconds + self._rng.uniform(0.0, self.jitter_seconds)
        item = _Snapshot(self._monotonic() + lag, next(self._seq), snap)
        heapq.heappush(self._pending, (item.due, item.seq, item))

    def searchable(self, live: Callable[[], Iterable[Any]]) -> list[Any]:
        """The records search sees now, in id order (``live`` gives the current ones when there is no delay)."""
        if self.delay_seconds <= 0 and self.jitter_seconds <= 0:
            return list(live())
        now = self._monotonic()
        while self._pending and self._pending[0][0] <= now:
            snap = heapq.heappop(self._pending)[2].record
            self._visible[snap.id] = snap
        return sorted((r for r in self._visible.values() if not r.archived), key=lambda r: int(r.id))

    def rebuild(
        self, records: Iterable[Indexable], delay_seconds: float, jitter_seconds: float = 0.0
    ) -> None:
        """Change the delay; the index starts caught up with ``records``."""
        if delay_seconds < 0 or jitter_seconds < 0:
            raise ValueError("the search indexing delay can't be negative")
        self.delay_seconds = delay_seconds
        self.jitter_seconds = jitter_seconds
        self._pending.clear()
        self._visible = {
            r.id: replace(r, values=dict(r.values), history={})  # type: ignore[type-var]
            for r in records
        }

    def settle(self) -> None:
        """Make every queued change visible now (tests and seeding: an index that has caught up)."""
        while self._pending:
            snap = heapq.heappop(self._pending)[2].record
            self._visible[snap.id] = snap

    def lagging(self) -> int:
        """Changes not yet visible to search."""
        now = self._monotonic()
        return sum(1 for due, _, _ in self._pending if due > now)
