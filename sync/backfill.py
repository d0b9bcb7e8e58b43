"""First load with history: link every existing record, reconstruct the funnel, then converge.

Phases, each a resumable stream whose position lives in the ``cursors`` table:

1. ``backfill:<role>:<stream>`` — each connector's full scans (every marketing contact, every sales
   lead, contact and contact role: see each connector's ``scan``), page by page. Records are
   linked by common ID, then by normalised email (:class:`sync.identity.IdentityMap`); a page may
   also attach a record to the person of one already linked (e.g. an opportunity to its contact's
   person).
2. ``backfill:people`` — the people in common-ID order, in batches: their fresh state and both
   systems' history are read through the connectors, replayed through the mapping's stage rules
   (:mod:`sync.replay`) and stored as transitions with the source timestamps and
   ``cause="backfill"``; then, unless ``sync=False``, the normal engine syncs the batch so both
   systems converge (handover of existing MQLs, common IDs and closed-loop properties written back).

Every page or batch commits on its own, cursor included, so memory stays flat and a re-run
continues where the last one stopped. History is replayed only for people who have no stage yet,
so redoing a batch (or a finished backfill with ``restart=True``) adds nothing twice; transitions
are also unique on (common ID, stage, time).

Sync defaults to on: a first load is only useful once both systems carry the common ID and
outcomes; ``--no-sync`` loads identity and history only (e.g. to inspect the funnel before writing
anything). The engine re-reads each batch's state (one more batch read per 100 contacts) because
it must decide on fresh data; that is the price of reusing it unchanged.

Before the first page, the newest modification time of each polling stream is noted; when the
backfill finishes, polling streams that have no watermark yet start from it, so the poller neither
re-reads the whole system nor misses a change made while the backfill ran.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sync.connectors.contract import MA, SFA, Connector, MarketingConnector, SalesConnector
from sync.engine import Engine
from sync.facts import Profiles, refresh_attributes, transition_row
from sync.identity import IdentityMap, RecordRef
from sync.logs import get_logger
from sync.mapping import Mapping
from sync.people import StateReader
from sync.replay import replay
from sync.store.db import Store
from sync.store.errors import record_error
from sync.store.models import Cursor, FieldState, MatchKey, Person, RecordLink, Transition
from sync.timeutil import parse_timestamp, utcnow

log = get_logger(__name__)

PEOPLE_STREAM = "backfill:people"
MARKS_STREAM = "backfill:marks"
# Tables a backfill fills in bulk, and the record count at which their statistics are first refreshed.
FILLED_TABLES = tuple(model.__tablename__ for model in (Person, RecordLink, MatchKey, Transition, FieldState))
FIRST_STATISTICS_REFRESH = 1_000

Progress = Callable[[str, dict[str, Any]], None]
Checkpoint = Callable[[str, int], None]


@dataclass(frozen=True)
class BackfillOptions:
    """How to run: people per batch, an optional modification floor, whether to sync, restart."""

    batch_size: int = 200
    since: datetime | None = None
    sync: bool = True
    restart: bool = False


@dataclass
class BackfillStats:
    """What one run did."""

    records: dict[str, int] = field(default_factory=dict)  # stream -> records read this run
    people: int = 0
    replayed: int = 0
    transitions: int = 0
    synced: int = 0
    sync_errors: int = 0
    already_complete: bool = False


def scan_stream_name(role: str, stream: str) -> str:
    """The cursor of one connector's full scan."""
    return f"backfill:{role}:{stream}"


def backfill_streams(ma: Connector, sfa: Connector) -> list[str]:
    """Every stream of a backfill with these connectors, in the order they run."""
    scans = [scan_stream_name(role, s.name) for role, c in ((MA, ma), (SFA, sfa)) for s in c.scan_streams]
    return [*scans, PEOPLE_STREAM]


def stream_labels(ma: Connector, sfa: Connector) -> dict[str, str]:
    """A readable label per stream, for progress bars."""
    labels = {
        scan_stream_name(role, s.name): s.label for role, c in ((MA, ma), (SFA, sfa)) for s in c.scan_streams
    }
    return labels | {PEOPLE_STREAM: "People: history + sync"}


class Backfill:
    """Runs (or resumes) the backfill against one store."""

    def __init__(
        self,
        store: Store,
        mapping: Mapping,
        ma: MarketingConnector,
        sfa: SalesConnector,
        engine: Engine | None = None,
        options: BackfillOptions | None = None,
        progress: Progress | None = None,
        checkpoint: Checkpoint | None = None,
    ) -> None:
        self.store = store
        self.mapping = mapping
        self.connectors: dict[str, Connector] = {MA: ma, SFA: sfa}
        self.names: dict[str, str] = {MA: ma.profile.connector, SFA: sfa.profile.connector}
        self.engine = engine
        self.options = options or BackfillOptions()
        self.progress = progress or (lambda _event, _data: None)
        # Called after every commit with (stream, commits so far in this run); tests interrupt here.
        self.checkpoint = checkpoint or (lambda _stream, _n: None)
        self.reader = StateReader(ma, sfa)
        self.profiles = Profiles(ma.profile, sfa.profile)
        self.streams = backfill_streams(ma, sfa)
        self.stats = BackfillStats()
        self._commits = 0
        # Records written per stream in this run, and the count at which each stream next refreshes
        # statistics: each phase fills other tables (links and keys, then transitions).
        self._written: dict[str, int] = {}
        self._next_statistics: dict[str, int] = {}

    # -- entry point -------------------------------------------------------------------------------

    def run(self) -> BackfillStats:
        """Run every phase that has not finished yet."""
        if self.options.restart:
            self._reset()
        states = self._states()
        if all(states.get(s, {}).get("done") for s in self.streams):
            self.stats.already_complete = True
            return self.stats
        marks = self._marks()
        for role, connector in self.connectors.items():
            for scan in connector.scan_streams:
                stream = scan_stream_name(role, scan.name)
                self._scan(connector, scan.name, stream, states.get(stream, {}))
        self._people(states.get(PEOPLE_STREAM, {}))
        self._start_pollers(marks)
        return self.stats

    # -- cursors -----------------------------------------------------------------------------------

    def _states(self) -> dict[str, dict[str, Any]]:
        with self.store.session() as session:
            rows = session.execute(select(Cursor.stream, Cursor.state).where(Cursor.stream.in_(self.streams)))
            return {stream: dict(state or {}) for stream, state in rows}

    def _reset(self) -> None:
        with self.store.session() as session:
            for stream in (*self.streams, MARKS_STREAM):
                cursor = session.get(Cursor, stream)
                if cursor is not None:
                    session.delete(cursor)

    def _save(self, session: Session, stream: str, state: dict[str, Any]) -> None:
        now = utcnow()
        cursor = session.get(Cursor, stream)
        if cursor is None:
            session.add(
                Cursor(stream=stream, watermark=None, state=state, last_success_at=now, updated_at=now)
            )
        else:
            cursor.state = state
            cursor.last_success_at = now
            cursor.updated_at = now

    def _committed(self, stream: str, records: int) -> None:
        self._commits += 1
        written = self._written[stream] = self._written.get(stream, 0) + records
        if written >= self._next_statistics.get(stream, FIRST_STATISTICS_REFRESH):
            # Doubling keeps the statistics within a factor of two of the tables' size for a
            # logarithmic number of ANALYZE runs (ten per phase for a million records).
            self._next_statistics[stream] = 2 * written
            if self.store.refresh_statistics(FILLED_TABLES):
                log.info("statistics_refreshed", stream=stream, records=written)
        self.stats.records[stream] = self.stats.records.get(stream, 0) + records
        self.progress("advance", {"stream": stream, "n": records})
        self.checkpoint(stream, self._commits)

    def _marks(self) -> dict[str, str | None]:
        """Each polling stream's newest modification time when the backfill first started (kept across resumes)."""
        with self.store.session() as session:
            cursor = session.get(Cursor, MARKS_STREAM)
            if cursor is not None:
                return dict(cursor.state)
        marks: dict[str, str | None] = {}
        for role, connector in self.connectors.items():
            for stream, newest in connector.newest_changes().items():
                marks[f"{role}:{stream}"] = newest.isoformat() if newest else None
        with self.store.session() as session:
            self._save(session, MARKS_STREAM, marks)
        return marks

    def _start_pollers(self, marks: dict[str, str | None]) -> None:
        """Polling streams without a watermark start where the backfill started reading."""
        with self.store.session() as session:
            for stream, mark in marks.items():
                when = parse_timestamp(mark)
                if when is None:
                    continue
                cursor = session.get(Cursor, stream)
                if cursor is None:
                    session.add(Cursor(stream=stream, watermark=when, state={}, updated_at=utcnow()))
                elif cursor.watermark is None:
                    cursor.watermark = when

    # -- phase 1: every record of every system ----------------------------------------------------

    def _scan(self, connector: Connector, scan: str, stream: str, state: dict[str, Any]) -> None:
        if state.get("done"):
            return
        count = int(state.get("count", 0))
        total = connector.scan_total(scan)
        self.progress("start", {"stream": stream, "total": total, "completed": count})
        position = {k: v for k, v in state.items() if k not in ("count", "done")}
        for page in connector.scan(scan, position, self.options.since, self.options.batch_size):
            with self.store.session() as session:
                identity = IdentityMap(session, self.names)
                if page.candidates:
                    identity.resolve_batch(page.candidates)
                if page.attachments:
                    self._attach(session, identity, page.attachments)
                count += page.records
                position = dict(page.state)
                self._save(session, stream, {**position, "count": count, "done": False})
            self._committed(stream, page.records)
        with self.store.session() as session:
            self._save(session, stream, {**position, "count": count, "done": True})
        self.progress("done", {"stream": stream})

    @staticmethod
    def _attach(session: Session, identity: IdentityMap, pairs: list[tuple[RecordRef, RecordRef]]) -> None:
        """Link each second record to the person of the first, where the first is linked already."""
        owners: dict[RecordRef, str] = {}
        for known, _ in pairs:
            if known in owners:
                continue
            row = session.execute(
                select(RecordLink.common_id).where(
                    RecordLink.role == known.role,
                    RecordLink.object_type == known.object_type,
                    RecordLink.record_id == known.record_id,
                )
            ).first()
            if row is not None:
                owners[known] = row[0]
        for known, extra in pairs:
            if known in owners:
                identity.link(owners[known], extra)

    # -- phase 2: people: history, then sync -------------------------------------------------------

    def _people(self, state: dict[str, Any]) -> None:
        if state.get("done"):
            return
        last: str = state.get("last", "")
        count = int(state.get("count", 0))
        with self.store.session() as session:
            total = session.scalar(select(func.count()).select_from(Person).where(*_live())) or 0
        self.progress("start", {"stream": PEOPLE_STREAM, "total": total, "completed": count})
        while True:
            with self.store.session() as session:
                ids = list(
                    session.scalars(
                        select(Person.common_id)
                        .where(Person.common_id > last, *_live())
                        .order_by(Person.common_id)
                        .limit(self.options.batch_size)
                    )
                )
                links = IdentityMap(session).links(ids) if ids else {}
            if not ids:
                break
            self._history(ids, links)
            if self.options.sync and self.engine is not None:
                result = self.engine.sync_people(ids, cause="backfill")
                self.stats.synced += result.people
                self.stats.sync_errors += result.errors
            last, count = ids[-1], count + len(ids)
            with self.store.session() as session:
                self._save(session, PEOPLE_STREAM, {"last": last, "count": count, "done": False})
            self.stats.people += len(ids)
            self._committed(PEOPLE_STREAM, len(ids))
        with self.store.session() as session:
            self._save(session, PEOPLE_STREAM, {"last": last, "count": count, "done": True})
        self.progress("done", {"stream": PEOPLE_STREAM})

    def _history(self, ids: list[str], links: dict[str, list[RecordRef]]) -> None:
        """Replay and store the history of the people in ``ids`` who have no stage yet (one commit)."""
        with self.store.session() as session:
            fresh = set(
                session.scalars(
                    select(Person.common_id).where(Person.common_id.in_(ids), Person.stage.is_(None))
                )
            )
        if not fresh:
            return
        todo = [cid for cid in ids if cid in fresh]
        states = self.reader.read(todo, {cid: links.get(cid, []) for cid in todo})
        events = self.reader.history(states)
        with self.store.session() as session:
            people = {
                p.common_id: p
                for p in session.execute(
                    select(Person)
                    .where(Person.common_id.in_(todo), Person.stage.is_(None))
                    .order_by(Person.common_id)
                ).scalars()
            }
            existing = {
                (cid, stage, at)
                for cid, stage, at in session.execute(
                    select(Transition.common_id, Transition.to_stage, Transition.occurred_at).where(
                        Transition.common_id.in_(list(people))
                    )
                )
            }
            for cid, person in people.items():
                view = states[cid].view()
                refresh_attributes(person, view, self.profiles, self.mapping)
                try:
                    steps = replay(self.mapping, self.profiles, events[cid])
                except (
                    ValueError,
                    TypeError,
                    KeyError,
                ) as exc:  # one malformed record must not stop the load
                    self._bad_history(session, cid, exc)
                    continue
                score = self.profiles.score(view)
                for step in steps:
                    if (cid, step.to_stage, step.at) in existing:
                        continue
                    existing.add((cid, step.to_stage, step.at))
                    row = transition_row(
                        self.mapping,
                        self.profiles,
                        person,
                        step.to_stage,
                        step.from_stage,
                        step.at,
                        view,
                        (step.role, self.names[step.role], step.record_id),
                        "backfill",
                    )
                    row.reason, row.amount, row.score = step.reason, step.amount, score
                    session.add(row)
                    self.stats.transitions += 1
                    if step.to_stage == self.mapping.handover.at and person.score_at_mql is None:
                        person.score_at_mql = score
                if steps:
                    person.stage, person.stage_entered_at = steps[-1].to_stage, steps[-1].at
                    person.updated_at = utcnow()
                self.stats.replayed += 1

    def _bad_history(self, session: Session, common_id: str, exc: Exception) -> None:
        """Record a history that could not be replayed; the engine still gives the person a stage."""
        log.warning("backfill_history_skipped", common_id=common_id, error=type(exc).__name__)
        record_error(
            session,
            role="closedloop",
            operation="backfill",
            category="bad_history",
            message=f"history not replayed: {type(exc).__name__}: {str(exc)[:200]}",
            common_id=common_id,
        )


def _live() -> tuple[Any, ...]:
    return (Person.merged_into.is_(None), Person.deleted_at.is_(None))
