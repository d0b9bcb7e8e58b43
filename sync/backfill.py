"""First load with history: link every existing record, reconstruct the funnel, then converge.

Phases, each a resumable stream whose position lives in the ``cursors`` table:

1. ``backfill:hubspot`` — ALL HubSpot contacts through the list API (``after`` token; search
   would stop at 10,000), 100 per page.
2. ``backfill:salesforce:Lead``, ``…:Contact``, ``…:OpportunityContactRole`` — SOQL ordered by
   Id, resumed with ``WHERE Id > last``. Records are linked by common ID, then by normalised email
   (:class:`sync.identity.IdentityMap`); a converted Lead also links its Contact and Opportunity,
   and a contact role links its Opportunity to the Contact's person. Opportunities are reached only
   through those links: one without a contact role or converting Lead belongs to nobody.
3. ``backfill:people`` — the people in common-ID order, in batches: their fresh state and
   LeadHistory/OpportunityHistory are read, the history is replayed
   (:mod:`sync.backfill_history`) and stored as transitions with the source timestamps and
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

Before the first page, the newest modification time of each system is noted; when the backfill
finishes, polling streams that have no watermark yet start from it, so the poller neither
re-reads the whole portal nor misses a change made while the backfill ran.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sync.backfill_history import (
    HISTORY_MA_PROPERTIES,
    LEAD_HISTORY_FIELDS,
    OPPORTUNITY_HISTORY_FIELDS,
    HistoryEvent,
    StageFlags,
    contact_events,
    hubspot_events,
    lead_events,
    opportunity_events,
    replay,
)
from sync.connectors.contract import MA, SFA
from sync.connectors.hubspot import HubSpotConnector
from sync.connectors.hubspot_ma import HubSpotMarketing, contact_candidate
from sync.connectors.salesforce import SalesforceConnector, soql_quote
from sync.connectors.salesforce_sfa import STREAMS as SALESFORCE_STREAMS
from sync.connectors.salesforce_sfa import SalesforceSales
from sync.engine import Engine
from sync.facts import Profiles, refresh_attributes
from sync.identity import Candidate, IdentityMap, RecordRef
from sync.logs import get_logger
from sync.mapping import Mapping
from sync.people import PersonState, StateReader
from sync.store.db import Store
from sync.store.errors import record_error
from sync.store.models import Cursor, FieldState, MatchKey, Person, RecordLink, Transition
from sync.timeutil import parse_timestamp, to_sf_datetime, utcnow

log = get_logger(__name__)

HUBSPOT_STREAM = "backfill:hubspot"
SALESFORCE_OBJECTS = ("Lead", "Contact", "OpportunityContactRole")
PEOPLE_STREAM = "backfill:people"
MARKS_STREAM = "backfill:marks"
STREAMS = (
    HUBSPOT_STREAM,
    *(f"backfill:salesforce:{o}" for o in SALESFORCE_OBJECTS),
    PEOPLE_STREAM,
)
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


class Backfill:
    """Runs (or resumes) the backfill against one store."""

    def __init__(
        self,
        store: Store,
        mapping: Mapping,
        hubspot: HubSpotConnector,
        salesforce: SalesforceConnector,
        engine: Engine | None = None,
        options: BackfillOptions | None = None,
        progress: Progress | None = None,
        checkpoint: Checkpoint | None = None,
    ) -> None:
        self.store = store
        self.mapping = mapping
        self.hubspot = hubspot
        self.salesforce = salesforce
        self.engine = engine
        self.options = options or BackfillOptions()
        self.progress = progress or (lambda _event, _data: None)
        # Called after every commit with (stream, commits so far in this run); tests interrupt here.
        self.checkpoint = checkpoint or (lambda _stream, _n: None)
        self.ext = mapping.identity.sfa_field
        self.ma_prop = mapping.identity.ma_property
        self.email_field = next((f.sfa for f in mapping.fields if f.ma == "email"), "Email")
        self.ma = HubSpotMarketing(hubspot, mapping)
        self.sfa = SalesforceSales(salesforce, mapping)
        self.reader = StateReader(self.ma, self.sfa)
        self.profiles = Profiles(self.ma.profile, self.sfa.profile)
        self.connectors: dict[str, str] = {MA: self.ma.profile.connector, SFA: self.sfa.profile.connector}
        self.ma.properties = sorted(set(self.ma.properties) | set(HISTORY_MA_PROPERTIES))
        self.flags = StageFlags()
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
        if all(states.get(s, {}).get("done") for s in STREAMS):
            self.stats.already_complete = True
            return self.stats
        marks = self._marks()
        self._hubspot(states.get(HUBSPOT_STREAM, {}))
        for obj in SALESFORCE_OBJECTS:
            stream = f"backfill:salesforce:{obj}"
            self._salesforce(obj, stream, states.get(stream, {}))
        self._people(states.get(PEOPLE_STREAM, {}))
        self._start_pollers(marks)
        return self.stats

    # -- cursors -----------------------------------------------------------------------------------

    def _states(self) -> dict[str, dict[str, Any]]:
        with self.store.session() as session:
            rows = session.execute(select(Cursor.stream, Cursor.state).where(Cursor.stream.in_(STREAMS)))
            return {stream: dict(state or {}) for stream, state in rows}

    def _reset(self) -> None:
        with self.store.session() as session:
            for stream in (*STREAMS, MARKS_STREAM):
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
        """Each system's newest modification time when the backfill first started (kept across resumes)."""
        with self.store.session() as session:
            cursor = session.get(Cursor, MARKS_STREAM)
            if cursor is not None:
                return dict(cursor.state)
        _total, newest = self.hubspot.summary()
        marks: dict[str, str | None] = {"ma:contacts": newest.isoformat() if newest else None}
        for sobject in SALESFORCE_STREAMS:
            rows = list(
                self.salesforce.query(
                    f"SELECT Id, SystemModstamp FROM {sobject} ORDER BY SystemModstamp DESC LIMIT 1"
                )
            )
            stamp = parse_timestamp(rows[0].get("SystemModstamp")) if rows else None
            marks[f"sfa:{sobject}"] = stamp.isoformat() if stamp else None
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

    # -- phase 1: HubSpot --------------------------------------------------------------------------

    def _hubspot(self, state: dict[str, Any]) -> None:
        if state.get("done"):
            return
        total, _newest = self.hubspot.summary()
        self.progress("start", {"stream": HUBSPOT_STREAM, "total": total, "completed": state.get("count", 0)})
        after: str | None = state.get("after")
        count = int(state.get("count", 0))
        props = ["email", self.ma_prop, "lastmodifieddate"]
        since = self.options.since
        while True:
            contacts, nxt = self.hubspot.list_page(after, props, limit=self.options.batch_size)
            chosen = [c for c in contacts if since is None or c.updated_at is None or c.updated_at >= since]
            with self.store.session() as session:
                candidates = [contact_candidate(c, self.ma_prop) for c in chosen]
                IdentityMap(session, self.connectors).resolve_batch(candidates)
                count += len(contacts)
                self._save(session, HUBSPOT_STREAM, {"after": nxt, "count": count, "done": nxt is None})
            self._committed(HUBSPOT_STREAM, len(contacts))
            if nxt is None:
                break
            after = nxt
        self.progress("done", {"stream": HUBSPOT_STREAM})

    # -- phase 2: Salesforce -----------------------------------------------------------------------

    def _soql(self, sobject: str, last_id: str | None) -> str:
        fields = {
            "Lead": ["Id", self.ext, self.email_field, "ConvertedContactId", "ConvertedOpportunityId"],
            "Contact": ["Id", self.ext, self.email_field],
            "OpportunityContactRole": ["Id", "OpportunityId", "ContactId"],
        }[sobject]
        where = []
        if last_id:
            where.append(f"Id > {soql_quote(last_id)}")
        if self.options.since is not None and sobject != "OpportunityContactRole":
            where.append(f"SystemModstamp >= {to_sf_datetime(self.options.since)}")
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        return f"SELECT {', '.join(dict.fromkeys(fields))} FROM {sobject}{clause} ORDER BY Id ASC"

    def _salesforce(self, sobject: str, stream: str, state: dict[str, Any]) -> None:
        if state.get("done"):
            return
        count = int(state.get("count", 0))
        last_id: str | None = state.get("last_id")
        self.progress(
            "start", {"stream": stream, "total": self.salesforce.count(sobject), "completed": count}
        )
        records = self.salesforce.query(self._soql(sobject, last_id))
        for chunk in _chunked(records, self.options.batch_size):
            with self.store.session() as session:
                if sobject == "OpportunityContactRole":
                    self._link_roles(session, chunk)
                else:
                    IdentityMap(session, self.connectors).resolve_batch(
                        [self._sf_candidate(sobject, r) for r in chunk]
                    )
                count += len(chunk)
                last_id = str(chunk[-1]["Id"])
                self._save(session, stream, {"last_id": last_id, "count": count, "done": False})
            self._committed(stream, len(chunk))
        with self.store.session() as session:
            self._save(session, stream, {"last_id": last_id, "count": count, "done": True})
        self.progress("done", {"stream": stream})

    def _sf_candidate(self, sobject: str, rec: dict[str, Any]) -> Candidate:
        refs = [RecordRef(SFA, sobject, str(rec["Id"]))]
        if sobject == "Lead":
            if rec.get("ConvertedContactId"):
                refs.append(RecordRef(SFA, "Contact", str(rec["ConvertedContactId"])))
            if rec.get("ConvertedOpportunityId"):
                refs.append(RecordRef(SFA, "Opportunity", str(rec["ConvertedOpportunityId"])))
        return Candidate.of(refs, rec.get(self.ext), rec.get(self.email_field))

    def _link_roles(self, session: Session, roles: Sequence[dict[str, Any]]) -> None:
        """An Opportunity belongs to the person of its (first) contact role's Contact."""
        contact_ids = {str(r["ContactId"]) for r in roles if r.get("ContactId")}
        linked = set(
            session.scalars(
                select(RecordLink.record_id).where(
                    RecordLink.role == SFA,
                    RecordLink.object_type == "Contact",
                    RecordLink.record_id.in_(contact_ids),
                )
            )
        )
        candidates = [
            Candidate(
                records=[
                    RecordRef(SFA, "Contact", str(r["ContactId"])),
                    RecordRef(SFA, "Opportunity", str(r["OpportunityId"])),
                ]
            )
            for r in roles
            if r.get("OpportunityId") and str(r.get("ContactId")) in linked
        ]
        IdentityMap(session, self.connectors).resolve_batch(candidates)

    # -- phase 3: people: history, then sync -------------------------------------------------------

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
                links = IdentityMap(session, self.connectors).links(ids) if ids else {}
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
        lead_rows = self._rows(
            "LeadHistory",
            LEAD_HISTORY_FIELDS,
            "LeadId",
            [lead["Id"] for s in states.values() if (lead := s.record("Lead")) is not None],
        )
        opp_ids = [o["Id"] for s in states.values() for o in s.sfa_state.outcomes]
        opp_rows = self._rows("OpportunityHistory", OPPORTUNITY_HISTORY_FIELDS, "OpportunityId", opp_ids)
        for s in states.values():
            for opp in s.sfa_state.outcomes:
                self.flags.learn(opp)
        with self.store.session() as session:
            query = (
                select(Person)
                .where(Person.common_id.in_(todo), Person.stage.is_(None))
                .order_by(Person.common_id)
            )
            if session.get_bind().dialect.name == "postgresql":
                query = query.with_for_update()
            people = {p.common_id: p for p in session.execute(query).scalars()}
            existing = {
                (cid, stage, at)
                for cid, stage, at in session.execute(
                    select(Transition.common_id, Transition.to_stage, Transition.occurred_at).where(
                        Transition.common_id.in_(list(people))
                    )
                )
            }
            for cid, person in people.items():
                state = states[cid]
                refresh_attributes(person, state.view(), self.profiles)
                try:
                    steps = replay(self.mapping, self._events(state, lead_rows, opp_rows))
                except (
                    ValueError,
                    TypeError,
                    KeyError,
                ) as exc:  # one malformed record must not stop the load
                    self._bad_history(session, cid, exc)
                    continue
                score = self.profiles.score(state.view())
                for step in steps:
                    if (cid, step.to_stage, step.at) in existing:
                        continue
                    existing.add((cid, step.to_stage, step.at))
                    session.add(
                        Transition(
                            common_id=cid,
                            from_stage=step.from_stage,
                            to_stage=step.to_stage,
                            occurred_at=step.at,
                            recorded_at=utcnow(),
                            source_role=step.system,
                            source_connector=self.connectors.get(step.system),
                            source_record=step.record_id,
                            cause="backfill",
                            campaign=person.campaign,
                            source=person.source,
                            owner=person.owner,
                            reason=step.reason,
                            amount=step.amount,
                            score=score,
                        )
                    )
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

    def _rows(
        self, sobject: str, fields: Sequence[str], key: str, ids: list[str]
    ) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for row in self.salesforce.select_in(sobject, list(fields), key, ids) if ids else []:
            out.setdefault(str(row[key]), []).append(row)
        return out

    def _events(
        self,
        state: PersonState,
        lead_rows: dict[str, list[dict[str, Any]]],
        opp_rows: dict[str, list[dict[str, Any]]],
    ) -> list[HistoryEvent]:
        events: list[HistoryEvent] = []
        lead, contact = state.record("Lead"), state.record("Contact")
        if state.ma is not None and state.ma_id:
            events += hubspot_events(state.ma_id, state.ma)
        if lead is not None:
            events += lead_events(lead, lead_rows.get(str(lead["Id"]), []))
        if contact is not None:
            events += contact_events(contact)
        for opp in state.sfa_state.outcomes:
            events += opportunity_events(opp, opp_rows.get(str(opp["Id"]), []), self.flags)
        return events


def _live() -> tuple[Any, ...]:
    return (Person.merged_into.is_(None), Person.deleted_at.is_(None))


def _chunked(records: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for rec in records:
        chunk.append(rec)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
