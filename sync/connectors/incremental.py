"""A modification-time cursor for change feeds that can only say "changed since T" (dlt's ``Incremental``).

Each stream keeps a watermark (newest modification time seen) and re-reads a margin behind it so
clock skew and late commits cannot hide a change; records already seen at the same modification
time are skipped, so an idle cycle costs one read per stream and yields nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sync.timeutil import parse_timestamp, utcnow


@dataclass
class CursorState:
    """A stream's saved position: the newest change time (for lag and hand-offs) and opaque state."""

    watermark: datetime | None = None
    state: dict[str, Any] = field(default_factory=dict)


class Incremental:
    """One read of one stream: where to start, which records are new, and the state to save after."""

    def __init__(self, saved: CursorState, overlap: timedelta) -> None:
        self.watermark = saved.watermark
        self.previous = dict(saved.state or {})
        self.seen: dict[str, str] = dict(self.previous.get("seen", {}))
        self.overlap = overlap
        self.newest: datetime | None = None
        self.started = utcnow()

    def lower_bound(self) -> datetime | None:
        """Where the read starts: a margin behind the watermark until that margin has settled."""
        if self.watermark is None:
            return None
        return self.watermark if self.previous.get("settled") else self.watermark - self.overlap

    def is_new(self, record_id: str, stamp: str) -> bool:
        """True the first time a record is seen at this modification stamp (and remember it)."""
        if self.seen.get(record_id) == stamp:
            return False
        self.seen[record_id] = stamp
        when = parse_timestamp(stamp)
        if when is not None and (self.newest is None or when > self.newest):
            self.newest = when
        return True

    def advance(self) -> CursorState:
        """Move the watermark forward and forget seen records that fell out of the overlap window.

        The margin re-read behind the watermark guards against skew and late commits, which last at
        most ``overlap``. Once a read has started ``overlap`` after the watermark last moved (elapsed
        time on our clock: no skew against the source's), every record at or before the watermark was
        visible to it, so later reads start at the watermark: an idle cycle is then one read per
        stream instead of re-reading every record of the last burst.
        """
        watermark = self.watermark
        moved_at = parse_timestamp(self.previous.get("moved_at"))
        settled = bool(self.previous.get("settled"))
        if self.newest is not None and (watermark is None or self.newest > watermark):
            watermark = self.newest
            moved_at, settled = utcnow(), False
        elif moved_at is None:  # a watermark set elsewhere (backfill, older state): start its margin now
            moved_at = self.started
        elif self.started - moved_at >= self.overlap:
            settled = True
        seen = self.seen
        if watermark is not None:
            floor = watermark - self.overlap
            seen = {rid: stamp for rid, stamp in seen.items() if (parse_timestamp(stamp) or floor) >= floor}
        state = {"seen": seen, "moved_at": moved_at.isoformat() if moved_at else None, "settled": settled}
        return CursorState(watermark, state)
