"""The sync engine: for a batch of people, read both systems, decide, write in full batches, record.

Each call is idempotent: it reads the fresh state of both systems and derives every write from it,
so retries, duplicated events and out-of-order deliveries change nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from sync import metrics
from sync.connectors.contract import HistoryEvent, MarketingConnector, SalesConnector
from sync.connectors.errors import ConnectorError, RecordError
from sync.facts import Profiles, refresh_attributes, transition_row
from sync.fieldsync import MA, SFA, FieldDecision, decide_fields, same, value_hash
from sync.identity import IdentityMap, RecordRef, normalise_email
from sync.logs import get_logger
from sync.mapping import Mapping
from sync.mapping.project import closed_loop_values, project
from sync.people import PersonState, StateReader
from sync.replay import Step, replay
from sync.stages import PersonView, compute_stage, decide_transition, entered_at, evidence
from sync.store.db import Store
from sync.store.errors import record_error
from sync.store.models import FieldState, Person, Transition
from sync.store.person_locks import people_locked
from sync.timeutil import parse_timestamp, utcnow

log = get_logger(__name__)


# (session, common ID, stage, when, the records now — None for a stage replayed from history)
TransitionHook = Callable[[Session, str, str, datetime, PersonView | None], None]


@dataclass
class SyncResult:
    """What one engine call did, for logs, metrics and tests."""

    people: int = 0
    transitions: int = 0
    ma_writes: int = 0
    sfa_writes: int = 0
    leads_created: int = 0
    ma_created: int = 0
    errors: int = 0
    error_keys: list[str] = field(default_factory=list)


@dataclass
class _Plan:
    """Writes collected for the whole batch, sent afterwards in full batches."""

    ma_updates: dict[str, dict[str, Any]] = field(default_factory=dict)  # MA record id -> fields
    ma_creates: dict[str, dict[str, Any]] = field(default_factory=dict)  # common id -> props
    sfa_upserts: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # object -> cid -> fields
    sfa_updates: dict[str, dict[str, dict[str, Any]]] = field(
        default_factory=dict
    )  # object -> record id -> fields
    owners: dict[tuple[str, str], str] = field(default_factory=dict)  # (kind, key) -> common id
    settled: dict[str, dict[tuple[str, str], Any]] = field(default_factory=dict)  # cid -> values after writes
    handovers: dict[str, _Handover] = field(default_factory=dict)  # cid -> the sales record being created


@dataclass(frozen=True)
class _Handover:
    """A person handed to sales in this sync: what was created, and their marketing record then."""

    object: str
    fields: dict[str, Any]
    ma_id: str
    ma: dict[str, Any]
    stage: str | None


@dataclass
class _Sent:
    """What the write phase learned: records created, records refused, batch calls that failed."""

    links: list[tuple[str, RecordRef]] = field(default_factory=list)
    rejected: list[tuple[str, str, RecordError, str]] = field(
        default_factory=list
    )  # role, object, error, cid
    failed_calls: list[tuple[str, str, str, ConnectorError, list[str]]] = field(default_factory=list)


class Engine:
    """Decides and performs the sync of batches of people."""

    def __init__(
        self,
        store: Store,
        mapping: Mapping,
        ma: MarketingConnector,
        sfa: SalesConnector,
        on_transition: TransitionHook | None = None,
        create_missing_in_ma: bool = True,
    ) -> None:
        self.store = store
        self.mapping = mapping
        self.ma = ma
        self.sfa = sfa
        self.profiles = Profiles(ma.profile, sfa.profile)
        self.connectors: dict[str, str] = {MA: ma.profile.connector, SFA: sfa.profile.connector}
        self.reader = StateReader(ma, sfa)
        self.on_transition = on_transition
        self.create_missing_in_ma = create_missing_in_ma
        path = mapping.success_path()
        self._handover_index = path.index(mapping.handover.at) if mapping.handover.at in path else 0
        self._path = path

    # -- entry point -------------------------------------------------------------------------------

    def sync_people(self, common_ids: Sequence[str], cause: str = "poll") -> SyncResult:
        """Sync these people end to end. Permanent per-record failures are recorded, not raised.

        Three short transactions around the two network phases (read, then write): no transaction
        stays open while the vendors are called or a retry waits.
        """
        result = SyncResult()
        ids = sorted(set(common_ids))
        if not ids:
            return result
        with people_locked(self.store, ids):
            with self.store.session() as session:
                stages = dict(
                    session.execute(
                        select(Person.common_id, Person.stage).where(Person.common_id.in_(ids))
                    ).all()
                )
                ids = sorted(stages)
                links = IdentityMap(session, self.connectors).links(ids)
                remembered = self._remembered(session, ids)
            states = self.reader.read(ids, links)
            found = self._existing_sales_records(states, stages, links)
            history = self.reader.history(states)
            plan = _Plan()
            with self.store.session() as session:
                identity = IdentityMap(session, self.connectors)
                for cid, ref in found:
                    identity.link(cid, ref)
                people = {
                    p.common_id: p for p in session.scalars(select(Person).where(Person.common_id.in_(ids)))
                }
                for cid in ids:
                    result.transitions += self._apply_stage(
                        session, people[cid], states[cid], history.get(cid, []), cause
                    )
                    self._plan_person(people[cid], states[cid], remembered.get(cid, {}), plan)
            sent = self._send(plan, result)
            with self.store.session() as session:
                self._record_sent(session, sent, plan, result)
                self._remember(session, plan, remembered)
            result.people = len(ids)
        metrics.sync_records_total.labels(direction="sfa_to_ma").inc(result.ma_writes)
        metrics.sync_records_total.labels(direction="ma_to_sfa").inc(result.sfa_writes)
        log.info("synced", cause=cause, **{k: v for k, v in result.__dict__.items() if k != "error_keys"})
        return result

    def _existing_sales_records(
        self, states: dict[str, PersonState], stages: dict[str, str | None], links: dict[str, list[RecordRef]]
    ) -> list[tuple[str, RecordRef]]:
        """Before a handover, the sales-side records that are already this person (same email), not linked yet.

        Without this, a person whose lead already exists in sales (entered by hand, or before
        Closedloop ran) would be handed over as a second lead, and real orgs' duplicate rules refuse it.
        Found records are linked and read, so the sync updates them instead of creating one.
        """
        due: dict[str, str] = {}
        for cid, state in states.items():
            if state.ma is None or state.has_sfa:
                continue
            stage = compute_stage(self.mapping, state.view()) or stages.get(cid)
            if not (self._past_handover(stage) or self._past_handover(stages.get(cid))):
                continue
            email = normalise_email(state.ma.get(self.ma.profile.email_field))
            if email:
                due[email] = cid
        if not due:
            return []
        found = [(due[email], ref) for email, ref in self.sfa.find_people(list(due)).items() if email in due]
        if found:
            for cid, ref in found:
                links.setdefault(cid, []).append(ref)
            fresh = self.sfa.read_people([cid for cid, _ in found], links)
            for cid, _ref in found:
                if cid in fresh:
                    states[cid].sfa_state = fresh[cid]
            log.info("handover_found_existing_records", people=len(found))
        return found

    # -- stages ------------------------------------------------------------------------------------

    def _apply_stage(
        self, session: Session, person: Person, state: PersonState, history: list[HistoryEvent], cause: str
    ) -> int:
        """Log every stage the person went through since the last sync, with the source's times.

        The systems' history is replayed first (so a lead worked and disqualified between two polls
        still shows both stages, each at its own time); then the fresh state decides, for changes
        the history does not keep, at the time the record says it changed.
        """
        view = state.view()
        refresh_attributes(person, view, self.profiles, self.mapping)
        added = 0
        replayed = replay(
            self.mapping, self.profiles, history, start=person.stage, after=person.stage_entered_at
        )
        for step in replayed:
            source = (step.role, self.connectors[step.role], step.record_id)
            added += self._enter(session, person, step.to_stage, step.at, view, source, cause, step)
        computed = compute_stage(self.mapping, view)
        for stage_id in decide_transition(self.mapping, person.stage, computed):
            when = self._entry_time(stage_id, state) or utcnow()
            if person.stage_entered_at is not None and when < person.stage_entered_at:
                when = (
                    person.stage_entered_at
                )  # a date-only source field must not put a stage before its predecessor
            added += self._enter(session, person, stage_id, when, view, self._source(stage_id, state), cause)
        if added or replayed:
            person.updated_at = utcnow()
        return added

    def _enter(
        self,
        session: Session,
        person: Person,
        stage_id: str,
        when: datetime,
        view: PersonView,
        source: tuple[str, str, str | None],
        cause: str,
        step: Step | None = None,
    ) -> int:
        """Move the person into ``stage_id`` at ``when``; 1 if that appended a transition row."""
        added = 0
        if not self._logged(session, person.common_id, stage_id, when):
            row = transition_row(
                self.mapping, self.profiles, person, stage_id, person.stage, when, view, source, cause
            )
            if step is not None:  # the snapshot of that moment knows the reason and amount of then
                row.reason, row.amount = step.reason, step.amount
            session.add(row)
            added = 1
            metrics.transitions_total.labels(to_stage=stage_id).inc()
            if self.on_transition is not None:
                # A stage entered earlier is judged on the records of that moment (completeness
                # SLAs): the replayed snapshot, whose untracked fields are today's values.
                self.on_transition(
                    session, person.common_id, stage_id, when, view if step is None else step.view
                )
        if stage_id == self.mapping.handover.at and person.score_at_mql is None:
            person.score_at_mql = self.profiles.score(view)
        person.stage = stage_id
        person.stage_entered_at = when
        return added

    def _entry_time(self, stage_id: str, state: PersonState) -> datetime | None:
        view = state.view()
        explicit = entered_at(self.mapping, stage_id, view)
        if explicit is not None:
            return min(explicit, utcnow())  # a meeting booked ahead is entered when we see it
        stage = self.mapping.stage(stage_id)
        if stage.sfa is not None:
            record = evidence(self.mapping, stage_id, view)
            if record is not None:
                return parse_timestamp(record.get(self.sfa.profile.modified_field))
        if stage.ma is not None:
            return state.ma_updated_at
        return None

    @staticmethod
    def _logged(session: Session, common_id: str, stage_id: str, when: datetime) -> bool:
        found = session.execute(
            select(Transition.id).where(
                Transition.common_id == common_id,
                Transition.to_stage == stage_id,
                Transition.occurred_at == when,
            )
        ).first()
        return found is not None

    def _source(self, stage_id: str, state: PersonState) -> tuple[str, str, str | None]:
        """The record whose state proves the stage: the sales-side record its condition names, else marketing's."""
        stage = self.mapping.stage(stage_id)
        if stage.sfa is not None:
            record = evidence(self.mapping, stage_id, state.view()) or {}
            return (SFA, self.connectors[SFA], record.get(self.sfa.profile.id_field))
        return (MA, self.connectors[MA], state.ma_id)

    # -- field writes ------------------------------------------------------------------------------

    def _plan_person(
        self, person: Person, state: PersonState, remembered: dict[tuple[str, str], str], plan: _Plan
    ) -> None:
        cid = person.common_id
        ext = self.mapping.identity.sfa_field
        ma_prop = self.mapping.identity.ma_property
        target = self.reader.write_target(state)
        ma_writes: dict[str, Any] = {}
        settled: dict[tuple[str, str], Any] = {}

        if target is None and state.ma is not None and self._past_handover(person.stage):
            if not state.has_sfa:  # handover: create the person, keyed by the common ID (never duplicated)
                create_as = self.mapping.handover.create_as
                # Every mapped property counts, so defaults fill required fields the marketing side left out.
                source = {fm.ma: None for fm in self.mapping.fields} | dict(state.ma)
                fields = project(self.mapping, "ma", source, sfa_object=create_as)
                fields[ext] = cid
                plan.sfa_upserts.setdefault(create_as, {})[cid] = fields
                plan.owners[("sfa_create", cid)] = cid
                if state.ma_id:
                    plan.handovers[cid] = _Handover(
                        create_as, fields, state.ma_id, dict(state.ma), person.stage
                    )
                for fm in self.mapping.fields:
                    if fm.sfa in fields:
                        settled[(SFA, fm.sfa)] = fields[fm.sfa]
                        settled[(MA, fm.ma)] = state.ma.get(fm.ma)
        elif target is not None:
            obj, record = target.object, target.record
            if state.ma is not None:
                decision = self._decide(obj, state, record, remembered)
                settled.update(decision.settled)
                ma_writes.update(decision.ma_writes)
                sfa_writes = dict(decision.sfa_writes)
            else:
                sfa_writes = {}
            if record.get(ext) != cid:
                sfa_writes[ext] = cid
            if sfa_writes:
                record_id = str(record[self.sfa.profile.id_field])
                plan.sfa_updates.setdefault(obj, {})[record_id] = sfa_writes
                plan.owners[("sfa", record_id)] = cid

        if state.ma is not None:
            ma_writes.update(self._closed_loop_writes(person.stage, state.ma, state.sfa_state.records))
            if state.ma.get(ma_prop) != cid:
                ma_writes[ma_prop] = cid
            if ma_writes and state.ma_id:
                plan.ma_updates[state.ma_id] = ma_writes
                plan.owners[("ma", state.ma_id)] = cid
        elif self.create_missing_in_ma and target is not None:
            obj, record = target.object, target.record
            email = normalise_email(record.get(self.sfa.profile.email_field))
            if email:
                props = project(self.mapping, "sfa", record, sfa_object=obj)
                props[ma_prop] = cid
                props[self.ma.profile.email_field] = email
                props.update(self._closed_loop_writes(person.stage, {}, state.sfa_state.records))
                plan.ma_creates[cid] = props
                plan.owners[("ma_create", cid)] = cid
        plan.settled[cid] = settled

    def _decide(
        self, obj: str, state: PersonState, record: dict[str, Any], remembered: dict[tuple[str, str], str]
    ) -> FieldDecision:
        assert state.ma is not None
        forward = project(self.mapping, "ma", state.ma, sfa_object=obj)
        backward = project(self.mapping, "sfa", record, sfa_object=obj)
        return decide_fields(
            self.mapping.fields,
            obj,
            state.ma,
            record,
            forward,
            backward,
            remembered,
            state.ma_updated_at,
            parse_timestamp(record.get(self.sfa.profile.modified_field)),
        )

    def _closed_loop_writes(
        self, stage: str | None, ma: dict[str, Any], sfa_records: dict[str, dict[str, Any]]
    ) -> dict[str, Any]:
        """The sales outcome and standard stage on the marketing record, where they differ from it now."""
        writes: dict[str, Any] = {}
        has_person = any(obj in sfa_records for obj in self.sfa.profile.person_objects)
        view = PersonView(ma=ma, sfa=sfa_records)
        values = closed_loop_values(self.mapping, view, stage) if has_person else {}
        for prop, value in values.items():
            if not same(value, ma.get(prop)):
                writes[prop] = value
        if ma:
            writes.update(self.ma.lifecycle_writes(stage, ma))
        return writes

    def _past_handover(self, stage: str | None) -> bool:
        if stage is None:
            return False
        if stage in self._path:
            return self._path.index(stage) >= self._handover_index
        return False

    # -- sending -----------------------------------------------------------------------------------

    def _send(self, plan: _Plan, result: SyncResult) -> _Sent:
        """Send the plan's writes in full batches; collect new links and failures (no database here)."""
        ext = self.mapping.identity.sfa_field
        ma_object = self.ma.profile.person_objects[0]
        sent = _Sent()
        for obj, rows in plan.sfa_upserts.items():
            ids, errs = self._guard(
                sent, SFA, obj, "upsert", list(rows), partial(self.sfa.upsert, obj, ext, rows)
            )
            sent.links += [(cid, RecordRef(SFA, obj, record_id)) for cid, record_id in (ids or {}).items()]
            # A duplicate rule that refused the create names the record this person already is.
            for err in errs or []:
                matched = self.sfa.refs_for(err.matched_ids) if err.matched_ids else []
                if matched:
                    sent.links.append((err.key, matched[0]))
            self._closed_loop_after_handover(plan, ids or {})
            result.leads_created += len(ids or {})
            result.sfa_writes += len(ids or {})
            sent.rejected += [(SFA, obj, e, e.key) for e in errs or []]
        for obj, updates in plan.sfa_updates.items():
            owners = [plan.owners[("sfa", r)] for r in updates]
            errs = self._guard(sent, SFA, obj, "update", owners, partial(self.sfa.update, obj, updates))
            failed = {e.key for e in errs or []}
            result.sfa_writes += len(updates) - len(failed) if errs is not None else 0
            sent.rejected += [(SFA, obj, e, plan.owners.get(("sfa", e.key), "")) for e in errs or []]
        if plan.ma_updates:
            owners = [plan.owners[("ma", h)] for h in plan.ma_updates]
            errs = self._guard(
                sent, MA, ma_object, "update", owners, partial(self.ma.update, plan.ma_updates)
            )
            result.ma_writes += len(plan.ma_updates) - len(errs or []) if errs is not None else 0
            sent.rejected += [(MA, ma_object, e, plan.owners.get(("ma", e.key), "")) for e in errs or []]
        if plan.ma_creates:
            ma_prop = self.mapping.identity.ma_property
            created, errs = self._guard(
                sent,
                MA,
                ma_object,
                "upsert",
                list(plan.ma_creates),
                partial(self.ma.create, ma_prop, plan.ma_creates),
            )
            sent.links += [
                (cid, RecordRef(MA, ma_object, record_id)) for cid, record_id in (created or {}).items()
            ]
            result.ma_created += len(created or {})
            sent.rejected += [(MA, ma_object, e, e.key) for e in errs or []]
        return sent

    def _closed_loop_after_handover(self, plan: _Plan, created: dict[str, str]) -> None:
        """Write the new sales record's outcome fields in this sync's one marketing write per person.

        The sales system fills defaults on create (e.g. a lead's status); the connector says what the
        created record holds, so marketing is not written a second time once the next poll reads it.
        """
        for cid, record_id in created.items():
            handover = plan.handovers.get(cid)
            if handover is None:
                continue
            record = self.sfa.as_created(handover.object, handover.fields, record_id)
            writes = self._closed_loop_writes(handover.stage, handover.ma, {handover.object: record})
            if writes:
                plan.ma_updates.setdefault(handover.ma_id, {}).update(writes)
                plan.owners[("ma", handover.ma_id)] = cid

    def _guard(
        self, sent: _Sent, role: str, obj: str, operation: str, owners: list[str], call: Callable[[], Any]
    ) -> Any:
        """Run one batch call; a failure that survived retries counts against every person in it."""
        try:
            return call()
        except ConnectorError as exc:
            sent.failed_calls.append((role, obj, operation, exc, owners))
            log.error("batch_failed", role=role, object=obj, operation=operation, error=exc.message[:300])
            return (None, None) if operation in ("upsert",) else None

    def _record_sent(self, session: Session, sent: _Sent, plan: _Plan, result: SyncResult) -> None:
        """Link the records just created; record every failure, per person."""
        identity = IdentityMap(session, self.connectors)
        for cid, ref in sent.links:
            identity.link(cid, ref)
        for role, obj, operation, exc, owners in sent.failed_calls:
            for cid in owners:
                self._record_error(
                    session, role, obj, operation, exc.code, exc.message, exc.category, cid, None
                )
                result.errors += 1
                result.error_keys.append(cid)
        for role, obj, err, cid in sent.rejected:
            self._record_error(session, role, obj, "write", err.code, err.message, err.category, cid, err.key)
            result.errors += 1
            result.error_keys.append(cid)
            plan.settled.pop(cid, None)  # not written: do not remember it as synced

    def _record_error(
        self,
        session: Session,
        role: str,
        obj: str,
        operation: str,
        code: str | None,
        message: str,
        category: str,
        common_id: str,
        record_id: str | None,
    ) -> None:
        record_error(
            session,
            role=role,
            connector=self.connectors.get(role, ""),
            operation=operation,
            category=category,
            message=message,
            common_id=common_id or None,
            code=code,
            object_type=obj,
            record_id=record_id,
        )
        metrics.errors_total.labels(category=category).inc()
        log.warning(
            "record_rejected",
            common_id=common_id,
            role=role,
            object=obj,
            record_id=record_id,
            category=category,
            code=code,
            error=message[:300],
        )

    # -- store helpers -----------------------------------------------------------------------------

    def _remembered(self, session: Session, ids: list[str]) -> dict[str, dict[tuple[str, str], str]]:
        out: dict[str, dict[tuple[str, str], str]] = {}
        rows = session.execute(
            select(FieldState.common_id, FieldState.role, FieldState.field, FieldState.value_hash).where(
                FieldState.common_id.in_(ids)
            )
        )
        for cid, role, name, digest in rows:
            out.setdefault(cid, {})[(role, name)] = digest
        return out

    def _remember(
        self, session: Session, plan: _Plan, remembered: dict[str, dict[tuple[str, str], str]]
    ) -> None:
        now = utcnow()
        for cid, values in plan.settled.items():
            known = remembered.get(cid, {})
            for (role, name), value in values.items():
                digest = value_hash(value)
                if known.get((role, name)) == digest:
                    continue
                row = session.get(FieldState, (cid, role, name))
                if row is None:
                    session.add(
                        FieldState(
                            common_id=cid,
                            role=role,
                            field=name,
                            value_hash=digest,
                            written_by_us=True,
                            updated_at=now,
                        )
                    )
                else:
                    row.value_hash = digest
                    row.updated_at = now
