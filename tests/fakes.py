"""In-memory MA and SFA connectors implementing the connector contract with plain dicts.

They let the engine, poller and inbox processor run in milliseconds against a real store. Each fake
keeps a call log, can refuse chosen records (a per-record error, as a vendor's batch write would
return it) and can fail its next calls with a transient error, which goes through the project's one
retry policy (:func:`sync.connectors.errors.call_with_retries`) exactly as the real edges do.

Object and field names come from a :class:`Profile` and the mapping, so the same fakes serve the
default mapping (``Lead``/``Contact``/``Opportunity``) or any other.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from sync.connectors.contract import (
    MA,
    SFA,
    ChangeBatch,
    EventMeaning,
    HistoryEvent,
    InboxItem,
    Profile,
    Provisioning,
    Record,
    RoleState,
    ScanPage,
    ScanStream,
    WriteTarget,
)
from sync.connectors.errors import (
    ConnectorError,
    PermanentError,
    RecordError,
    RetryPolicy,
    call_with_retries,
)
from sync.connectors.incremental import CursorState, Incremental
from sync.identity import Candidate, RecordRef
from sync.timeutil import parse_timestamp

T = TypeVar("T")
ID = "Id"  # the key the engine reads a sales-side record's ID from (see the report on the contract)


class FakeClock:
    """The fake systems' "now": starts at a fixed time and moves by one millisecond per reading."""

    def __init__(self, start: datetime = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)) -> None:
        self.current = start

    def now(self) -> datetime:
        self.current += timedelta(milliseconds=1)
        return self.current

    def advance(self, delta: timedelta) -> None:
        self.current += delta


def stamp(when: datetime) -> str:
    """A vendor-style ISO timestamp with milliseconds and ``Z``."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


@dataclass
class Call:
    """One call the core made: its name and what it was about."""

    name: str
    detail: Any = None
    attempt: int = 1


@dataclass
class FakeSystem:
    """What both fakes share: tables, clock, call log, refusals, injected faults, paging."""

    profile: Profile
    clock: FakeClock = field(default_factory=FakeClock)
    page_size: int = 3
    policy: RetryPolicy = field(default_factory=lambda: RetryPolicy(max_attempts=3, base_seconds=0.0))
    tables: dict[str, dict[str, Record]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    refusals: dict[str, tuple[str, str]] = field(default_factory=dict)  # key -> (code, message)
    faults: list[ConnectorError] = field(default_factory=list)  # raised by the next calls, in turn
    after_first_page: Callable[[str, str], None] | None = None  # (object, first record ID), once
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    # -- direct edits, as a user in the vendor's UI would make them -----------------------------------

    def put(self, obj: str, fields: Mapping[str, Any], record_id: str | None = None) -> str:
        """Create (no ``record_id``) or change a record; modification (and creation) times follow."""
        when = stamp(self.clock.now())
        table = self.tables.setdefault(obj, {})
        if record_id is None:
            record_id = self.new_id(obj)
            table[record_id] = {ID: record_id, self.profile.created_field or "created": when}
        record = table[record_id]
        record.update(fields)
        record[self.profile.modified_field] = when
        return record_id

    def get(self, obj: str, record_id: str) -> Record | None:
        record = self.tables.get(obj, {}).get(record_id)
        return dict(record) if record is not None else None

    def delete(self, obj: str, record_id: str) -> None:
        self.tables.get(obj, {}).pop(record_id, None)

    def find(self, obj: str, name: str, value: Any) -> list[Record]:
        return [dict(r) for r in self.tables.get(obj, {}).values() if r.get(name) == value]

    def new_id(self, obj: str) -> str:
        return f"{obj[:3].upper()}{next(self._ids):06d}"

    def refuse(self, key: str, code: str = "FIELD_CUSTOM_VALIDATION_EXCEPTION", message: str = "") -> None:
        """Refuse every write of ``key`` (a common ID for creates, a record ID for updates)."""
        self.refusals[key] = (code, message or f"refused by a validation rule: {key}")

    def writes(self) -> list[Call]:
        """Calls that changed something."""
        return [c for c in self.calls if c.name in ("create", "upsert", "update", "create_follow_up")]

    # -- the one retry policy -------------------------------------------------------------------------

    def _call(self, name: str, detail: Any, fn: Callable[[], T]) -> T:
        attempt = itertools.count(1)

        def once() -> T:
            self.calls.append(Call(name, detail, next(attempt)))
            if self.faults:
                raise self.faults.pop(0)
            return fn()

        def classify(exc: BaseException) -> ConnectorError:
            if isinstance(exc, ConnectorError):
                return exc
            return PermanentError("fake", f"{type(exc).__name__}: {exc}")

        return call_with_retries(once, classify, self.policy, f"fake {name}")

    # -- shared pieces --------------------------------------------------------------------------------

    def _changed(self, obj: str, cursor: Incremental) -> list[Record]:
        """A stream's records modified at or after the cursor's lower bound, read page by page."""
        since = cursor.lower_bound()
        rows = sorted(
            (r for r in self.tables.get(obj, {}).values()),
            key=lambda r: (str(r[self.profile.modified_field]), r[ID]),
        )
        if since is not None:
            rows = [r for r in rows if (parse_timestamp(r[self.profile.modified_field]) or since) >= since]
        fresh: list[Record] = []
        # Like a server-side query cursor: the result set is fixed when the read starts.
        for start in range(0, max(len(rows), 1), self.page_size):
            page = self._call("page", (obj, since, start), partial(self._page, rows, start))
            fresh += [dict(r) for r in page if cursor.is_new(r[ID], str(r[self.profile.modified_field]))]
            if start == 0 and page and self.after_first_page is not None:
                hook, self.after_first_page = self.after_first_page, None
                hook(obj, page[0][ID])
        return fresh

    # -- backfill and provisioning: the same contract, from the tables ----------------------------------

    @property
    def scan_streams(self) -> tuple[ScanStream, ...]:
        return tuple(ScanStream(obj, f"fake {obj}") for obj in self.streams)

    def scan(
        self, stream: str, state: Mapping[str, Any], since: datetime | None, page_size: int
    ) -> Iterator[ScanPage]:
        last = str(state.get("last_id") or "")
        rows = sorted(self.tables.get(stream, {}).items())
        rows = [(rid, rec) for rid, rec in rows if rid > last]
        for start in range(0, len(rows), page_size):
            chunk = rows[start : start + page_size]
            yield ScanPage(
                self.candidates([RecordRef(self.profile.role, stream, rid) for rid, _ in chunk]),
                {"last_id": chunk[-1][0]},
                len(chunk),
            )

    def scan_total(self, stream: str) -> int | None:
        return len(self.tables.get(stream, {}))

    def newest_changes(self) -> dict[str, datetime | None]:
        out: dict[str, datetime | None] = {}
        for obj in self.streams:
            times = [
                parse_timestamp(r.get(self.profile.modified_field)) for r in self.tables.get(obj, {}).values()
            ]
            out[obj] = max((t for t in times if t is not None), default=None)
        return out

    def history(self, states: Mapping[str, RoleState]) -> dict[str, list[HistoryEvent]]:
        return {cid: [] for cid in states}  # these fakes keep no history: the engine uses snapshot times

    def provision(self, mapping: Any, dry_run: bool) -> Provisioning:
        return Provisioning()

    def candidates(self, refs: Sequence[RecordRef]) -> list[Candidate]:
        raise NotImplementedError

    def interpret(self, items: Sequence[InboxItem]) -> EventMeaning:
        """The fakes' webhook payloads: ``{"kind": "change" | "merge" | "deletion", "merged": [ids]}``."""
        role = self.profile.role
        meaning = EventMeaning()
        for item in items:
            ref = RecordRef(role, item.object_type, item.record_id)
            kind = item.payload.get("kind", "change")
            if kind == "deletion":
                meaning.deletions.append(ref)
            elif kind == "merge":
                merged = [RecordRef(role, item.object_type, str(i)) for i in item.payload.get("merged", [])]
                meaning.merges.append((ref, merged))
                meaning.changed.append(ref)
            else:
                meaning.changed.append(ref)
        return meaning

    def _page(self, rows: list[Record], start: int) -> list[Record]:
        return rows[start : start + self.page_size]

    def _validate(self, key: str, row: Mapping[str, Any]) -> RecordError | None:
        if key in self.refusals:
            code, message = self.refusals[key]
            return RecordError(key, code, message, "validation")
        email = row.get(self.profile.email_field)
        if email not in (None, "") and "@" not in str(email):
            return RecordError(key, "INVALID_EMAIL_ADDRESS", f"invalid email address: {email}", "validation")
        return None


class FakeMarketing(FakeSystem):
    """The MA role: people in one object, written back by record ID or upserted by the common ID."""

    def __init__(self, profile: Profile | None = None, id_property: str = "closedloop_id", **kw: Any) -> None:
        super().__init__(profile or MA_PROFILE, **kw)
        self.id_property = id_property
        self.object = self.profile.person_objects[0]
        self.streams: tuple[str, ...] = (self.object,)

    def add_person(self, **fields: Any) -> str:
        return self.put(self.object, fields)

    def _candidate(self, record: Record) -> Candidate:
        ref = RecordRef(MA, self.object, record[ID])
        return Candidate.of([ref], record.get(self.id_property), record.get(self.profile.email_field))

    def poll(self, cursors: Mapping[str, CursorState], overlap: timedelta) -> ChangeBatch:
        cursor = Incremental(cursors.get(self.object, CursorState()), overlap)
        fresh = self._changed(self.object, cursor)
        return ChangeBatch([self._candidate(r) for r in fresh], {self.object: cursor.advance()})

    def read_people(
        self, common_ids: Sequence[str], links: Mapping[str, Sequence[RecordRef]]
    ) -> dict[str, RoleState]:
        def read() -> dict[str, RoleState]:
            table = self.tables.get(self.object, {})
            owner = {r.record_id: cid for cid in common_ids for r in links.get(cid, ()) if r.role == MA}
            carried = {rid: rec.get(self.id_property) for rid, rec in table.items()}
            owner |= {rid: str(cid) for rid, cid in carried.items() if cid in common_ids}
            states: dict[str, RoleState] = {}
            for rid, cid in owner.items():
                record = table.get(rid)
                if record is None:
                    continue
                when = parse_timestamp(record[self.profile.modified_field])
                state = states.setdefault(cid, RoleState())
                if state.updated_at is None or (when is not None and when > state.updated_at):
                    state.records = {self.object: dict(record)}
                    state.primary_id = rid
                    state.updated_at = when
            return states

        return self._call("read_people", list(common_ids), read)

    def update(self, updates: Mapping[str, Record]) -> list[RecordError]:
        def write() -> list[RecordError]:
            errors: list[RecordError] = []
            for rid, fields in updates.items():
                error = self._validate(rid, fields)
                if error is None and rid not in self.tables.get(self.object, {}):
                    error = RecordError(rid, "OBJECT_NOT_FOUND", f"no {self.object} {rid}", "deleted")
                if error is not None:
                    errors.append(error)
                else:
                    self.put(self.object, fields, rid)
            return errors

        return self._call("update", dict(updates), write)

    def create(self, key_field: str, rows: Mapping[str, Record]) -> tuple[dict[str, str], list[RecordError]]:
        def write() -> tuple[dict[str, str], list[RecordError]]:
            ids: dict[str, str] = {}
            errors: list[RecordError] = []
            for cid, fields in rows.items():
                error = self._validate(cid, fields)
                if error is not None:
                    errors.append(error)
                    continue
                existing = self.find(self.object, key_field, cid)
                rid = existing[0][ID] if existing else None
                ids[cid] = self.put(self.object, {**fields, key_field: cid}, rid)
            return ids, errors

        return self._call("create", dict(rows), write)

    def lifecycle_writes(self, stage: str | None, current: Mapping[str, Any]) -> Record:
        return {}  # this fake has no lifecycle field of its own

    def candidates(self, refs: Sequence[RecordRef]) -> list[Candidate]:
        table = self.tables.get(self.object, {})
        return [self._candidate(table[r.record_id]) for r in refs if r.record_id in table]


class FakeSales(FakeSystem):
    """The SFA role: person objects (e.g. a lead, then its converted contact) and outcome records.

    An outcome record names its person-object record in ``link_field``; a converted first person
    record names its successor in ``converted_field``.
    """

    def __init__(
        self,
        profile: Profile | None = None,
        ext_field: str = "Closedloop_Id__c",
        link_field: str = "ContactId",
        converted_flag: str = "IsConverted",
        converted_field: str = "ConvertedContactId",
        **kw: Any,
    ) -> None:
        super().__init__(profile or SFA_PROFILE, **kw)
        self.ext = ext_field
        self.link_field = link_field
        self.converted_flag = converted_flag
        self.converted_field = converted_field
        self.streams: tuple[str, ...] = self.profile.evidence_order
        self.follow_ups: list[dict[str, Any]] = []
        self.users: dict[str, str] = {}  # owner id -> display name

    # -- direct edits -----------------------------------------------------------------------------------

    def convert(self, record_id: str, outcome: Mapping[str, Any] | None = None) -> tuple[str, str | None]:
        """Convert a first person record into the next person object (and an outcome, if given)."""
        first, nxt = self.profile.person_objects[0], self.profile.person_objects[-1]
        lead = self.tables[first][record_id]
        person_id = self.put(
            nxt, {self.ext: lead.get(self.ext), self.profile.email_field: lead.get(self.profile.email_field)}
        )
        self.put(first, {self.converted_flag: True, self.converted_field: person_id}, record_id)
        outcome_id = None
        if outcome is not None and self.profile.outcome_object:
            outcome_id = self.put(self.profile.outcome_object, {**outcome, self.link_field: person_id})
        return person_id, outcome_id

    # -- contract ---------------------------------------------------------------------------------------

    def _person_candidate(self, obj: str, record: Record) -> Candidate:
        ref = RecordRef(SFA, obj, record[ID])
        return Candidate.of([ref], record.get(self.ext), record.get(self.profile.email_field))

    def _candidates_of(self, obj: str, records: Sequence[Record]) -> list[Candidate]:
        if obj in self.profile.person_objects:
            return [self._person_candidate(obj, r) for r in records]
        people = self.profile.person_objects[-1]
        linked = [self.tables.get(people, {}).get(str(r.get(self.link_field))) for r in records]
        return [self._person_candidate(people, p) for p in linked if p is not None]

    def poll(self, cursors: Mapping[str, CursorState], overlap: timedelta) -> ChangeBatch:
        candidates: list[Candidate] = []
        advanced: dict[str, CursorState] = {}
        for obj in self.streams:
            cursor = Incremental(cursors.get(obj, CursorState()), overlap)
            candidates += self._candidates_of(obj, self._changed(obj, cursor))
            advanced[obj] = cursor.advance()
        return ChangeBatch(candidates, advanced)

    def read_people(
        self, common_ids: Sequence[str], links: Mapping[str, Sequence[RecordRef]]
    ) -> dict[str, RoleState]:
        return self._call("read_people", list(common_ids), lambda: self._read(common_ids, links))

    def _read(
        self, common_ids: Sequence[str], links: Mapping[str, Sequence[RecordRef]]
    ) -> dict[str, RoleState]:
        wanted = set(common_ids)
        owner: dict[tuple[str, str], str] = {
            (r.object_type, r.record_id): cid
            for cid in common_ids
            for r in links.get(cid, ())
            if r.role == SFA
        }
        people: dict[str, dict[str, Record]] = {}
        for obj in self.profile.person_objects:
            for rid, record in self.tables.get(obj, {}).items():
                cid = record.get(self.ext) if record.get(self.ext) in wanted else owner.get((obj, rid))
                if cid is None:
                    continue
                people.setdefault(cid, {})[obj] = dict(record)
                successor = record.get(self.converted_field)
                if successor:
                    owner.setdefault((self.profile.person_objects[-1], str(successor)), cid)
        outcomes: dict[str, list[Record]] = {}
        outcome = self.profile.outcome_object
        if outcome is not None:
            last = self.profile.person_objects[-1]
            person_of = {recs[last][ID]: cid for cid, recs in people.items() if last in recs}
            for rid, record in self.tables.get(outcome, {}).items():
                owner_id = person_of.get(str(record.get(self.link_field))) or owner.get((outcome, rid))
                if owner_id is not None:
                    outcomes.setdefault(owner_id, []).append(dict(record))
        states: dict[str, RoleState] = {}
        for cid, records in people.items():
            mine = outcomes.get(cid, [])
            if mine and outcome is not None:
                created = self.profile.created_field or "created"
                records[outcome] = max(mine, key=lambda o: str(o.get(created)))
            times = [parse_timestamp(r.get(self.profile.modified_field)) for r in (*records.values(), *mine)]
            states[cid] = RoleState(
                records=records,
                outcomes=mine,
                updated_at=max((t for t in times if t is not None), default=None),
            )
        return states

    def write_target(self, state: RoleState) -> WriteTarget | None:
        first, last = self.profile.person_objects[0], self.profile.person_objects[-1]
        if last != first and state.record(last) is not None:
            return WriteTarget(last, state.records[last])
        lead = state.record(first)
        if lead is not None and not lead.get(self.converted_flag):
            return WriteTarget(first, lead)
        return None

    def upsert(
        self, obj: str, key_field: str, rows: Mapping[str, Record]
    ) -> tuple[dict[str, str], list[RecordError]]:
        def write() -> tuple[dict[str, str], list[RecordError]]:
            ids: dict[str, str] = {}
            errors: list[RecordError] = []
            for cid, fields in rows.items():
                error = self._validate(cid, fields)
                if error is not None:
                    errors.append(error)
                    continue
                existing = self.find(obj, key_field, cid)
                ids[cid] = self.put(obj, {**fields, key_field: cid}, existing[0][ID] if existing else None)
            return ids, errors

        return self._call("upsert", (obj, dict(rows)), write)

    def update(self, obj: str, updates: Mapping[str, Record]) -> list[RecordError]:
        def write() -> list[RecordError]:
            errors: list[RecordError] = []
            for rid, fields in updates.items():
                error = self._validate(rid, fields)
                if error is None and rid not in self.tables.get(obj, {}):
                    error = RecordError(rid, "ENTITY_IS_DELETED", "entity is deleted", "deleted")
                if error is not None:
                    errors.append(error)
                else:
                    self.put(obj, fields, rid)
            return errors

        return self._call("update", (obj, [{ID: rid, **fields} for rid, fields in updates.items()]), write)

    def as_created(self, obj: str, fields: Mapping[str, Any], record_id: str) -> Record:
        return {**fields, ID: record_id}  # this fake applies no defaults of its own

    def find_people(self, emails: Sequence[str]) -> dict[str, RecordRef]:
        wanted = {e.lower() for e in emails}
        found: dict[str, RecordRef] = {}
        for obj in reversed(self.profile.person_objects):
            for rid, record in self.tables.get(obj, {}).items():
                email = str(record.get(self.profile.email_field) or "").lower()
                if email in wanted and email not in found and not record.get(self.ext):
                    found[email] = RecordRef(SFA, obj, rid)
        return found

    def refs_for(self, record_ids: Sequence[str]) -> list[RecordRef]:
        return [
            RecordRef(SFA, obj, rid)
            for rid in record_ids
            for obj in self.profile.person_objects
            if rid in self.tables.get(obj, {})
        ]

    def create_follow_up(
        self, record_id: str, owner: str | None, subject: str, due: date, description: str
    ) -> None:
        def write() -> None:
            if record_id in self.refusals:
                raise PermanentError("fake", self.refusals[record_id][1])
            self.follow_ups.append({"record": record_id, "owner": owner, "subject": subject, "due": due})

        self._call("create_follow_up", record_id, write)

    def owner_names(self, ids: Sequence[str]) -> dict[str, str]:
        wanted = list(dict.fromkeys(ids))
        return self._call(
            "owner_names", wanted, lambda: {i: self.users[i] for i in wanted if i in self.users}
        )

    def candidates(self, refs: Sequence[RecordRef]) -> list[Candidate]:
        out: list[Candidate] = []
        for ref in refs:
            record = self.tables.get(ref.object_type, {}).get(ref.record_id)
            if record is not None:
                out += self._candidates_of(ref.object_type, [record])
        return out


MA_PROFILE = Profile(
    connector="fake-ma",
    role=MA,
    person_objects=("contact",),
    email_field="email",
    modified_field="lastmodifieddate",
    created_field="createdate",
    score_field="hubspotscore",
    campaign_field="hs_analytics_source_data_1",
    source_field="hs_analytics_source",
    status_field="hs_lead_status",
)
SFA_PROFILE = Profile(
    connector="fake-sfa",
    role=SFA,
    person_objects=("Lead", "Contact"),
    outcome_object="Opportunity",
    id_field=ID,
    email_field="Email",
    modified_field="LastModifiedDate",
    created_field="CreatedDate",
    owner_field="OwnerId",
    amount_field="Amount",
    status_field="Status",
)
