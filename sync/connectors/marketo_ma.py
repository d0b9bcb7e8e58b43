"""Marketo in the marketing (MA) role: leads are the people; closed-loop values land on them.

- Change feed: Get Lead Activities after a paging token (New Lead, Change Data Value, Change
  Score, Merge Leads; their IDs read from ``activities/types.json``). The token is the cursor's
  opaque state, the newest activity time its watermark (for lag); an idle poll is one call.
- People: leads read by ID (300 per call), and by the common-ID field for people not linked yet.
  Each lead also carries ``acquisitionProgramName``, the name of its acquisition program (the
  campaign), resolved through the Programs API and cached: Marketo stores only the program's ID.
- Writes: Sync Leads (createOrUpdate, 300 per call) with ``lookupField`` = the common-ID field for
  creates and ``id`` for updates; each skipped record becomes a :class:`RecordError`.
- Lifecycle: none. Marketo has no standard, API-writable lifecycle field that only moves forward
  (the Revenue Cycle Model's stages are not writable through REST, and Lead Status is the team's
  own field that often feeds the MQL rule), so ``closedloop_stage`` carries the standard stage.
- History: the same activities give each field's changes with their times; undone from the
  current values they yield the lead's snapshots (the replay path).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sync.config import Settings
from sync.connectors.contract import (
    MA,
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
)
from sync.connectors.errors import RecordError, RetryPolicy
from sync.connectors.incremental import CursorState
from sync.connectors.marketo_client import (
    MAX_BATCH,
    Activity,
    FieldSpec,
    MarketoEdge,
    make_marketo_client,
)
from sync.connectors.ratelimit import ConcurrencyGate, WindowLimiter
from sync.identity import Candidate, RecordRef
from sync.mapping import Mapping as SyncMapping
from sync.metrics import count_calls
from sync.sla_hooks import BREACH_PROPERTY
from sync.timeutil import parse_timestamp, utcnow

LEAD = "lead"
ACTIVITIES_STREAM = "activities"
PROGRAM_NAME = "acquisitionProgramName"  # added by this connector: Marketo keeps only the ID
PROFILE = Profile(
    connector="marketo",
    role=MA,
    person_objects=(LEAD,),
    email_field="email",
    modified_field="updatedAt",
    created_field="createdAt",
    score_field="leadScore",
    campaign_field=PROGRAM_NAME,
    source_field="leadSource",
    status_field="leadStatus",
)
NEW_LEAD, CHANGE_DATA_VALUE, CHANGE_SCORE, MERGE_LEADS = (
    "New Lead",
    "Change Data Value",
    "Change Score",
    "Merge Leads",
)
FEED_TYPES = (NEW_LEAD, CHANGE_DATA_VALUE, CHANGE_SCORE, MERGE_LEADS)
HISTORY_TYPES = (CHANGE_DATA_VALUE, CHANGE_SCORE)
# Where a feed without a saved position starts: before any lead of any instance.
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
RECENT = timedelta(days=7)  # how far back newest_changes looks first
MAX_HISTORY_LEADS = 30  # leadIds per Get Lead Activities call
WINDOW_MARGIN_SECONDS = 1
BASE_FIELDS = (
    "id",
    "email",
    "firstName",
    "lastName",
    "company",
    "title",
    "phone",
    "leadSource",
    "leadStatus",
    "leadScore",
    "acquisitionProgramId",
    "createdAt",
    "updatedAt",
)
# Marketo data types for the closed-loop fields of the shipped mappings; others are strings.
KNOWN_TYPES = {"closedloop_amount": "currency", "closedloop_close_date": "date"}
SEARCHABLE_TYPES = {"string", "email", "integer"}  # what Sync Leads accepts as lookupField


def required_fields(mapping: SyncMapping) -> list[FieldSpec]:
    """Lead fields the mapping makes Closedloop write that are its own (the common ID first)."""
    specs = [FieldSpec(mapping.identity.ma_property, "Closedloop ID", "string")]
    names = {entry.ma for entry in mapping.closed_loop} | {BREACH_PROPERTY}
    for name in sorted(names - {mapping.identity.ma_property}):
        label = name.replace("closedloop_", "Closedloop ").replace("_", " ").title()
        specs.append(FieldSpec(name, label, KNOWN_TYPES.get(name, "string")))
    return specs


def window_limiter(settings: Settings, limit_storage: Any) -> WindowLimiter:
    """The window and daily share every worker keeps together (``closedloop status`` reads its day).

    The window is kept a second longer than Marketo's: a call is counted here before
    marketorestpython's own pause (up to 0.2 s) and the request's travel, so Marketo may see two
    workers' calls closer together than they were counted; without the margin a few calls a
    minute are answered 606 and wait out a whole window.
    """
    return WindowLimiter(
        limit_storage,
        per_window=settings.marketo_window_limit,
        window_seconds=settings.marketo_window_seconds + WINDOW_MARGIN_SECONDS,
        per_day=max(1, int(settings.marketo_daily_limit * settings.marketo_daily_share)),
        namespace="marketo",
    )


def open_edge(
    settings: Settings, policy: RetryPolicy, limit_storage: Any, http_session: Any = None
) -> MarketoEdge:
    """The Marketo HTTP edge: window, daily share and calls in flight shared by every worker."""
    limiter = window_limiter(settings, limit_storage)
    gate = ConcurrencyGate(limit_storage, settings.marketo_concurrency, "marketo")
    secret = settings.marketo_client_secret.get_secret_value() if settings.marketo_client_secret else ""
    client = make_marketo_client(
        settings.marketo_base_url or "",
        settings.marketo_client_id or "",
        secret,
        settings.marketo_munchkin_id,
        before_call=lambda _endpoint: limiter.acquire(),
        gate=gate.held,
    )
    return MarketoEdge(client, policy, on_call=count_calls("marketo"))


def lead_candidate(lead: Mapping[str, Any], id_field: str) -> Candidate:
    """What a Marketo lead says about its person: record ID, common ID, email."""
    ref = RecordRef(MA, LEAD, str(lead["id"]))
    return Candidate.of([ref], lead.get(id_field), lead.get("email"))


class MarketoMarketing:
    """The MA role on a Marketo instance's leads."""

    profile = PROFILE
    streams: tuple[str, ...] = (ACTIVITIES_STREAM,)
    scan_streams = (ScanStream("leads", "Marketo leads"),)

    def __init__(self, edge: MarketoEdge, mapping: SyncMapping) -> None:
        self.edge = edge
        self.id_field = mapping.identity.ma_property
        closed_loop = {entry.ma for entry in mapping.closed_loop}
        self.wanted = sorted(set(BASE_FIELDS) | mapping.ma_properties() | closed_loop | {self.id_field})
        self._program_names: dict[str, str] = {}

    # -- fields ------------------------------------------------------------------------------------

    def _fields(self, names: Sequence[str]) -> list[str]:
        """The names this instance has (asking for an unknown field fails the whole call, 1006)."""
        known = {f.name for f in self.edge.describe()}
        return [n for n in names if n in known]

    def _identity_fields(self) -> list[str]:
        return self._fields(["id", "email", self.id_field, "updatedAt"])

    def _with_program(self, leads: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Add the acquisition program's name to each lead (programs read once, again when one is new)."""
        ids = {str(lead["acquisitionProgramId"]) for lead in leads if lead.get("acquisitionProgramId")}
        unknown = ids - set(self._program_names)
        if unknown:
            self._program_names |= {str(p["id"]): str(p.get("name", "")) for p in self.edge.programs()}
            # A program gone meanwhile stays unnamed instead of costing a call on every read.
            self._program_names |= {pid: "" for pid in unknown if pid not in self._program_names}
        for lead in leads:
            program = lead.get("acquisitionProgramId")
            lead[PROGRAM_NAME] = (self._program_names.get(str(program)) or None) if program else None
        return leads

    def _read(self, lead_ids: Sequence[str], fields: Sequence[str]) -> list[dict[str, Any]]:
        return self.edge.leads_by("id", list(lead_ids), fields) if lead_ids else []

    # -- change feed -------------------------------------------------------------------------------

    def poll(self, cursors: Mapping[str, CursorState], overlap: timedelta) -> ChangeBatch:
        """Leads with new activities after the saved paging token; one call when nothing happened."""
        saved = cursors.get(ACTIVITIES_STREAM, CursorState())
        token = saved.state.get("token")
        if not token:
            since = saved.watermark - overlap if saved.watermark is not None else EPOCH
            token = self.edge.paging_token(since)
        batch = self.edge.activities_since(str(token), FEED_TYPES)
        lead_ids = list(dict.fromkeys(str(a.lead_id) for a in batch.activities))
        leads = self._read(lead_ids, self._identity_fields())
        newest = max((a.at for a in batch.activities), default=None)
        watermark = (
            saved.watermark if newest is None or (saved.watermark and saved.watermark > newest) else newest
        )
        state = CursorState(watermark, {"token": batch.next_token})
        return ChangeBatch(
            [lead_candidate(lead, self.id_field) for lead in leads], {ACTIVITIES_STREAM: state}
        )

    # -- people ------------------------------------------------------------------------------------

    def read_people(
        self, common_ids: Sequence[str], links: Mapping[str, Sequence[RecordRef]]
    ) -> dict[str, RoleState]:
        """Each person's lead, by linked ID, else by the common-ID field; several: the newest modified."""
        owner = {ref.record_id: cid for cid in common_ids for ref in links.get(cid, ()) if ref.role == MA}
        fields = self._fields(self.wanted)
        leads = self._read(list(owner), fields)
        linked = set(owner.values())
        unlinked = [cid for cid in common_ids if cid not in linked]
        if unlinked:
            for lead in self.edge.leads_by(self.id_field, unlinked, fields):
                owner.setdefault(str(lead["id"]), str(lead.get(self.id_field)))
                leads.append(lead)
        states: dict[str, RoleState] = {}
        wanted = set(common_ids)
        for lead in self._with_program(leads):
            cid = owner.get(str(lead["id"]))
            if cid is None or cid not in wanted:
                continue
            updated = parse_timestamp(lead.get("updatedAt"))
            state = states.setdefault(cid, RoleState())
            if state.updated_at is None or (updated and updated > state.updated_at):
                state.records = {LEAD: lead}
                state.primary_id = str(lead["id"])
                state.updated_at = updated
        return states

    def update(self, updates: Mapping[str, Record]) -> list[RecordError]:
        """Update leads by ID (updateOnly, so a lead deleted meanwhile is not re-created)."""
        ids = list(updates)
        rows = [{"id": int(lead_id), **fields} for lead_id, fields in updates.items()]
        results = self.edge.upsert(rows, "id", action="updateOnly")
        return [_keyed(r.error, ids[r.index]) for r in results if r.error is not None]

    def create(self, key_field: str, rows: Mapping[str, Record]) -> tuple[dict[str, str], list[RecordError]]:
        """createOrUpdate keyed by the common-ID field: a person is never created twice."""
        cids = list(rows)
        records = [{**fields, key_field: cid} for cid, fields in rows.items()]
        created: dict[str, str] = {}
        errors: list[RecordError] = []
        for result in self.edge.upsert(records, key_field):
            cid = cids[result.index]
            if result.error is not None:
                errors.append(_keyed(result.error, cid))
            elif result.lead_id is not None:
                created[cid] = str(result.lead_id)
        return created, errors

    def lifecycle_writes(self, stage: str | None, current: Mapping[str, Any]) -> Record:
        """Nothing: see the module docstring (the standard stage goes to ``closedloop_stage``)."""
        return {}

    # -- webhooks ----------------------------------------------------------------------------------

    def interpret(self, items: Sequence[InboxItem]) -> EventMeaning:
        """Flow-step webhook calls: the lead changed; ``mergedLeadIds`` in the payload are a merge."""
        meaning = EventMeaning()
        for item in items:
            ref = RecordRef(MA, LEAD, item.record_id)
            merged = item.payload.get("mergedLeadIds") or []
            if isinstance(merged, list) and merged:
                meaning.merges.append((ref, [RecordRef(MA, LEAD, str(x)) for x in merged]))
            meaning.changed.append(ref)
        return meaning

    def candidates(self, refs: Sequence[RecordRef]) -> list[Candidate]:
        ids = list(dict.fromkeys(r.record_id for r in refs if r.record_id.isdigit()))
        return [lead_candidate(lead, self.id_field) for lead in self._read(ids, self._identity_fields())]

    # -- provisioning --------------------------------------------------------------------------------

    def provision(self, mapping: SyncMapping, dry_run: bool) -> Provisioning:
        """Create the missing custom lead fields (Create Lead Fields); the common ID must be searchable."""
        out = Provisioning()
        wanted = required_fields(mapping)
        existing = {f.name: f for f in self.edge.describe()}
        missing = [spec for spec in wanted if spec.name not in existing]
        have = existing.get(mapping.identity.ma_property)
        if have is not None and have.data_type not in SEARCHABLE_TYPES:
            out.problems.append(
                f"Marketo lead field {have.name} is a {have.data_type} field; the common ID needs a "
                "string field (Sync Leads can only look leads up by a searchable field)"
            )
        if dry_run:
            out.created = [f"Marketo: would create lead field {spec.name}" for spec in missing]
            return out
        outcome = self.edge.create_fields(missing) if missing else {}
        for spec in missing:
            error = outcome.get(spec.name)
            if error is None and spec.name in outcome:
                out.created.append(f"Marketo: created lead field {spec.name}")
            else:
                reason = f" ({error.code}: {error.message})" if error is not None else ""
                out.missing.append(
                    f"Marketo: an admin must create the lead field {spec.name} "
                    f"(Admin > Field Management, type {spec.data_type}){reason}"
                )
        return out

    # -- backfill ------------------------------------------------------------------------------------

    def scan(
        self, stream: str, state: Mapping[str, Any], since: datetime | None, page_size: int
    ) -> Iterator[ScanPage]:
        """Every lead: each one has a New Lead activity, so the feed from the start lists them all.

        A page is ``page_size`` (at most 300) entries of the activity log, so some pages hold fewer leads.
        """
        token = state.get("token") or self.edge.paging_token(EPOCH)
        while True:
            size = max(1, min(page_size, MAX_BATCH))
            batch = self.edge.activities_since(str(token), (NEW_LEAD,), max_pages=1, batch_size=size)
            ids = list(dict.fromkeys(str(a.lead_id) for a in batch.activities))
            leads = self._read(ids, self._identity_fields())
            chosen = [
                lead
                for lead in leads
                if since is None or (parse_timestamp(lead.get("updatedAt")) or since) >= since
            ]
            token = batch.next_token
            yield ScanPage(
                [lead_candidate(lead, self.id_field) for lead in chosen],
                {"token": token, "done": not batch.more},
                len(leads),
            )
            if not batch.more:
                return

    def scan_total(self, stream: str) -> int | None:
        return None  # Marketo has no cheap lead count

    def newest_changes(self) -> dict[str, datetime | None]:
        """The newest activity's time (the last week first; the whole feed when that is empty)."""
        for since in (utcnow() - RECENT, EPOCH):
            token, newest = self.edge.paging_token(since), None
            while True:
                batch = self.edge.activities_since(token, FEED_TYPES)
                newest = max([a.at for a in batch.activities] + ([newest] if newest else []), default=None)
                token = batch.next_token
                if not batch.more:
                    break
            if newest is not None:
                return {ACTIVITIES_STREAM: newest}
        return {ACTIVITIES_STREAM: None}

    def history(self, states: Mapping[str, RoleState]) -> dict[str, list[HistoryEvent]]:
        """Snapshots of each lead from its field and score changes (30 leads per activity read)."""
        leads = {
            state.primary_id: (cid, state.records[LEAD])
            for cid, state in states.items()
            if state.primary_id and LEAD in state.records
        }
        if not leads:
            return {}
        found: dict[str, list[Activity]] = {lead_id: [] for lead_id in leads}
        ids = sorted(leads, key=int)
        for start in range(0, len(ids), MAX_HISTORY_LEADS):
            chunk = ids[start : start + MAX_HISTORY_LEADS]
            created = [parse_timestamp(leads[i][1].get("createdAt")) for i in chunk]
            since = min((c for c in created if c is not None), default=EPOCH)
            token = self.edge.paging_token(since)
            while True:
                batch = self.edge.activities_since(token, HISTORY_TYPES, lead_ids=[int(i) for i in chunk])
                for activity in batch.activities:
                    found.setdefault(str(activity.lead_id), []).append(activity)
                token = batch.next_token
                if not batch.more:
                    break
        return {cid: lead_events(lead_id, record, found[lead_id]) for lead_id, (cid, record) in leads.items()}


def lead_events(
    lead_id: str, current: Mapping[str, Any], activities: Sequence[Activity]
) -> list[HistoryEvent]:
    """The lead at its creation and after each change: its changes undone, newest first, from now."""
    changes = sorted((a for a in activities if a.field and a.field in current), key=lambda a: (a.at, a.id))
    snapshot = dict(current)
    states: list[tuple[datetime, dict[str, Any]]] = []
    for activity in reversed(changes):
        states.append((activity.at, dict(snapshot)))
        assert activity.field is not None
        snapshot[activity.field] = activity.old_value
    created = parse_timestamp(current.get("createdAt"))
    events: list[HistoryEvent] = []
    if created is not None:
        events.append(HistoryEvent(created, MA, LEAD, lead_id, snapshot))
    by_time: dict[datetime, dict[str, Any]] = {}
    for at, values in reversed(states):
        by_time[at] = values  # several changes at one instant: the state after the last of them
    events += [HistoryEvent(at, MA, LEAD, lead_id, values) for at, values in by_time.items()]
    last = parse_timestamp(current.get("updatedAt"))
    if last is not None and (not events or last > events[-1].at):
        events.append(HistoryEvent(last, MA, LEAD, lead_id, dict(current)))
    return events


def _keyed(error: RecordError, key: str) -> RecordError:
    """The error keyed by what the engine knows the record by (lead ID or common ID)."""
    return RecordError(
        key=key, code=error.code, message=error.message, category=error.category, transient=error.transient
    )
