"""HubSpot in the marketing (MA) role: contacts are the people; closed-loop values land on them."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta
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
from sync.connectors.hubspot import LIFECYCLE_ORDER, HubSpotConnector, HubSpotContact, PropertySpec
from sync.connectors.hubspot_history import CONTACT, HISTORY_PROPERTIES, hubspot_events
from sync.connectors.incremental import CursorState, Incremental
from sync.connectors.ratelimit import WindowLimiter
from sync.identity import Candidate, RecordRef
from sync.mapping import Mapping as SyncMapping
from sync.metrics import count_calls
from sync.sla_hooks import BREACH_PROPERTY

CONTACTS_STREAM = "contacts"
PROFILE = Profile(
    connector="hubspot",
    role=MA,
    person_objects=(CONTACT,),
    email_field="email",
    modified_field="lastmodifieddate",
    created_field="createdate",
    score_field="hubspotscore",
    campaign_field="hs_analytics_source_data_1",
    source_field="hs_analytics_source",
    status_field="hs_lead_status",
)
# Properties read whatever the mapping says.
BASE_PROPERTIES = (
    "email",
    "lifecyclestage",
    "hubspotscore",
    "hs_analytics_source",
    "hs_analytics_source_data_1",
    "hs_lead_status",
    "lastmodifieddate",
    "createdate",
)
# HubSpot's lifecycle stage for each standard stage; it only ever moves forward.
LIFECYCLE_FOR_STAGE = {
    "lead": "lead",
    "mql": "marketingqualifiedlead",
    "sql": "salesqualifiedlead",
    "opportunity": "opportunity",
    "won": "customer",
}


PROPERTY_GROUP = "closedloop"
PROPERTY_GROUP_LABEL = "Closedloop (sales outcomes)"
# Types for the closed-loop properties of the default mapping; others default to text.
KNOWN_TYPES = {
    "closedloop_amount": ("number", "number"),
    "closedloop_close_date": ("date", "date"),
}


def required_properties(mapping: SyncMapping) -> list[PropertySpec]:
    """Contact properties the mapping writes that are Closedloop's own."""
    specs = [PropertySpec(mapping.identity.ma_property, "Closedloop ID", unique=True)]
    names = {entry.ma for entry in mapping.closed_loop} | {BREACH_PROPERTY}
    for name in sorted(names):
        prop_type, field_type = KNOWN_TYPES.get(name, ("string", "text"))
        label = name.replace("closedloop_", "Closedloop ").replace("_", " ").title()
        specs.append(PropertySpec(name, label, type=prop_type, field_type=field_type))
    return specs


def contact_candidate(contact: HubSpotContact, id_property: str) -> Candidate:
    """What a HubSpot contact says about its person: record ID, common ID, email."""
    ref = RecordRef(MA, CONTACT, contact.id)
    return Candidate.of([ref], contact.properties.get(id_property), contact.properties.get("email"))


def open_edge(
    settings: Settings, policy: RetryPolicy, limit_storage: Any, http_session: Any = None
) -> HubSpotConnector:
    """The HubSpot HTTP edge: the window and daily limits shared by every worker through the limit storage."""
    limiter = WindowLimiter(
        limit_storage,
        per_window=settings.hubspot_window_limit,
        window_seconds=10,
        per_day=settings.hubspot_daily_limit,
        namespace="hubspot",
    )
    # HubSpot allows a few searches per second; we keep one below it for the request's travel time.
    search_limiter = WindowLimiter(
        limit_storage,
        per_window=max(1, settings.hubspot_search_per_second - 1),
        window_seconds=1,
        per_day=settings.hubspot_daily_limit,
        namespace="hubspot-search",
    )
    token = settings.hubspot_access_token.get_secret_value() if settings.hubspot_access_token else ""
    return HubSpotConnector(
        settings.hubspot_base_url,
        token,
        limiter,
        policy,
        on_call=count_calls("hubspot"),
        search_limiter=search_limiter,
    )


class HubSpotMarketing:
    """The MA role on a HubSpot portal's contacts."""

    profile = PROFILE
    streams: tuple[str, ...] = (CONTACTS_STREAM,)
    scan_streams = (ScanStream(CONTACTS_STREAM, "HubSpot contacts"),)

    def __init__(self, edge: HubSpotConnector, mapping: SyncMapping) -> None:
        self.edge = edge
        self.id_property = mapping.identity.ma_property
        closed_loop = {entry.ma for entry in mapping.closed_loop}
        self.properties = sorted(
            set(BASE_PROPERTIES) | set(HISTORY_PROPERTIES) | mapping.ma_properties() | closed_loop
        )
        self.identity_properties = ["email", self.id_property, "lastmodifieddate"]

    # -- change feed -------------------------------------------------------------------------------

    def poll(self, cursors: Mapping[str, CursorState], overlap: timedelta) -> ChangeBatch:
        """Contacts changed since the watermark (search on lastmodifieddate), one call when idle."""
        cursor = Incremental(cursors.get(CONTACTS_STREAM, CursorState()), overlap)
        fresh: list[HubSpotContact] = []
        for page in self.edge.changed_since(cursor.lower_bound(), self.identity_properties):
            for contact in page:
                stamp = contact.updated_at.isoformat() if contact.updated_at else ""
                if cursor.is_new(contact.id, stamp):
                    fresh.append(contact)
        return ChangeBatch(
            [contact_candidate(c, self.id_property) for c in fresh], {CONTACTS_STREAM: cursor.advance()}
        )

    # -- people ------------------------------------------------------------------------------------

    def read_people(
        self, common_ids: Sequence[str], links: Mapping[str, Sequence[RecordRef]]
    ) -> dict[str, RoleState]:
        """Each person's contact: batch read by linked ID, else found by the common ID it carries.

        Several contacts for one person: the most recently modified counts.
        """
        owner = {ref.record_id: cid for cid in common_ids for ref in links.get(cid, ()) if ref.role == MA}
        unlinked = [cid for cid in common_ids if cid not in owner.values()]
        contacts = dict(self.edge.read(list(owner), self.properties)) if owner else {}
        if unlinked:  # a search call, only for people no contact is linked to yet
            for hid, contact in self.edge.find_by_property(
                self.id_property, unlinked, self.properties
            ).items():
                owner.setdefault(hid, str(contact.properties.get(self.id_property)))
                contacts.setdefault(hid, contact)
        states: dict[str, RoleState] = {}
        for hid, contact in contacts.items():
            state = states.setdefault(owner[hid], RoleState())
            if state.updated_at is None or (contact.updated_at and contact.updated_at > state.updated_at):
                state.records = {CONTACT: contact.properties}
                state.primary_id = hid
                state.updated_at = contact.updated_at
        return states

    def update(self, updates: Mapping[str, Record]) -> list[RecordError]:
        return self.edge.update(dict(updates))

    def create(self, key_field: str, rows: Mapping[str, Record]) -> tuple[dict[str, str], list[RecordError]]:
        return self.edge.upsert(key_field, dict(rows))

    def lifecycle_writes(self, stage: str | None, current: Mapping[str, Any]) -> Record:
        """``lifecyclestage`` for the standard stage, only when that moves the contact forward."""
        lifecycle = LIFECYCLE_FOR_STAGE.get(stage or "")
        now = str(current.get("lifecyclestage") or "")
        if not lifecycle or (now and now not in LIFECYCLE_ORDER):
            return {}
        if LIFECYCLE_ORDER.index(lifecycle) > (LIFECYCLE_ORDER.index(now) if now else -1):
            return {"lifecyclestage": lifecycle}
        return {}

    # -- webhooks ----------------------------------------------------------------------------------

    def interpret(self, items: Sequence[InboxItem]) -> EventMeaning:
        """contact.* events: deletions, merges (the primary survives), everything else a change."""
        meaning = EventMeaning()
        for item in items:
            ref = RecordRef(MA, CONTACT, item.record_id)
            kind = str(item.payload.get("subscriptionType", ""))
            if kind.endswith(".deletion"):
                meaning.deletions.append(ref)
            elif kind.endswith(".merge"):
                primary = RecordRef(MA, CONTACT, str(item.payload.get("primaryObjectId") or item.record_id))
                # mergedObjectIds lists every contact of the merge, the surviving primary included.
                merged = [
                    RecordRef(MA, CONTACT, str(x))
                    for x in item.payload.get("mergedObjectIds") or []
                    if str(x) != primary.record_id
                ]
                meaning.merges.append((primary, merged))
                meaning.changed.append(primary)
            else:
                meaning.changed.append(ref)
        return meaning

    # -- provisioning --------------------------------------------------------------------------------

    def provision(self, mapping: SyncMapping, dry_run: bool) -> Provisioning:
        """Create missing contact properties (in Closedloop's own group); the common ID must be unique."""
        out = Provisioning()
        wanted = required_properties(mapping)
        existing = self.edge.existing_properties()
        missing = [spec for spec in wanted if spec.name not in existing]
        for spec in wanted:
            have = existing.get(spec.name)
            if have is not None and spec.unique and not have.get("unique"):
                out.problems.append(f"HubSpot property {spec.name} exists but is not unique-valued")
        if missing and not dry_run:
            self.edge.ensure_group(PROPERTY_GROUP, PROPERTY_GROUP_LABEL)
            for spec in missing:
                self.edge.create_property(spec, PROPERTY_GROUP)
        verb = "would create" if dry_run else "created"
        out.created = [f"HubSpot: {verb} contact property {spec.name}" for spec in missing]
        return out

    # -- backfill ------------------------------------------------------------------------------------

    def scan(
        self, stream: str, state: Mapping[str, Any], since: datetime | None, page_size: int
    ) -> Iterator[ScanPage]:
        """ALL contacts through the list API (``after`` token; search would stop at 10,000)."""
        after: str | None = state.get("after")
        while True:
            contacts, after = self.edge.list_page(after, self.identity_properties, limit=page_size)
            chosen = [c for c in contacts if since is None or c.updated_at is None or c.updated_at >= since]
            yield ScanPage(
                [contact_candidate(c, self.id_property) for c in chosen],
                {"after": after, "done": after is None},
                len(contacts),
            )
            if after is None:
                return

    def scan_total(self, stream: str) -> int | None:
        return self.edge.summary()[0]

    def newest_changes(self) -> dict[str, datetime | None]:
        return {CONTACTS_STREAM: self.edge.summary()[1]}

    def history(self, states: Mapping[str, RoleState]) -> dict[str, list[HistoryEvent]]:
        """Lifecycle-stage dates of each contact (read with the person's state: no extra call)."""
        return {
            cid: hubspot_events(state.primary_id, state.records[CONTACT])
            for cid, state in states.items()
            if state.primary_id and CONTACT in state.records
        }

    def candidates(self, refs: Sequence[RecordRef]) -> list[Candidate]:
        ids = list(dict.fromkeys(r.record_id for r in refs))
        contacts = self.edge.read(ids, self.identity_properties).values() if ids else []
        return [contact_candidate(c, self.id_property) for c in contacts]
