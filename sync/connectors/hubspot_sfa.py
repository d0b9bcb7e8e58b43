"""HubSpot in the sales (SFA) role: the contact is the person, its associated deals the outcomes.

Deals reach their contacts through associations v4 whose type IDs are read from the portal's
labels; won and lost come from the stage metadata of each deal's pipeline
(:mod:`sync.connectors.hubspot_deals`). When the same portal also plays the marketing role
(``CLOSEDLOOP_MA=hubspot``), a contact counts as a sales-side record once sales has it (its
``hs_lead_status`` is set, or a deal is associated): before that the engine hands it over, which
here creates nothing but writes the mapping's handover fields (e.g. lead status ``NEW``, an owner)
onto the same contact.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sync.config import Settings
from sync.connectors import hubspot_ma
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
from sync.connectors.errors import RecordError, RetryPolicy
from sync.connectors.hubspot import HubSpotConnector, HubSpotContact, PropertySpec
from sync.connectors.hubspot_deals import (
    CONTACT,
    DEAL,
    DERIVED,
    MODIFIED_AT,
    PortalMeta,
    contact_events,
    contact_record,
    deal_events,
    deal_record,
)
from sync.connectors.incremental import CursorState, Incremental
from sync.identity import Candidate, RecordRef, normalise_email
from sync.mapping import Mapping as SyncMapping
from sync.timeutil import parse_timestamp

CONTACTS, DEALS = "contacts", "deals"
STREAMS = (CONTACTS, DEALS)
PROFILE = Profile(
    connector="hubspot",
    role=SFA,
    person_objects=(CONTACT,),
    outcome_object=DEAL,
    id_field="hs_object_id",
    email_field="email",
    modified_field=MODIFIED_AT,
    created_field="createdate",
    owner_field="hubspot_owner_id",
    amount_field="amount",
    status_field="hs_lead_status",
)
CONTACT_PROPERTIES = ("email", "hs_lead_status", "hubspot_owner_id", "createdate", "lastmodifieddate")
DEAL_PROPERTIES = (
    "dealname",
    "pipeline",
    "dealstage",
    "amount",
    "closedate",
    "closed_lost_reason",
    "closed_won_reason",
    "hubspot_owner_id",
    "createdate",
    "hs_lastmodifieddate",
)
PROPERTY_GROUP = "closedloop"
HISTORY = "hubspot_history"  # RoleState.extras: (contact, deals) as read, with their property history


@dataclass(frozen=True)
class SalesEdge:
    """The HubSpot HTTP edge, and whether the marketing role is the same portal."""

    http: HubSpotConnector
    same_portal: bool


def open_edge(
    settings: Settings, policy: RetryPolicy, limit_storage: Any, http_session: Any = None
) -> SalesEdge:
    """The HubSpot edge (the same limits as the marketing role's: one portal, one budget)."""
    return SalesEdge(
        hubspot_ma.open_edge(settings, policy, limit_storage, http_session), settings.ma == "hubspot"
    )


def bind(edge: SalesEdge, mapping: SyncMapping) -> HubSpotSales:
    """The SFA role for the mapping in force."""
    return HubSpotSales(edge.http, mapping, same_portal=edge.same_portal)


def primary_deal(deals: Sequence[Record]) -> Record | None:
    """The person's primary deal: the most recently created one."""
    return max(deals, key=lambda d: str(d.get("createdate") or "")) if deals else None


class HubSpotSales:
    """The SFA role on a HubSpot portal: contacts (with ``hs_lead_status``) and their deals."""

    profile = PROFILE
    streams: tuple[str, ...] = STREAMS
    scan_streams = (ScanStream(CONTACTS, "HubSpot contacts (sales)"), ScanStream(DEALS, "HubSpot deals"))

    def __init__(self, edge: HubSpotConnector, mapping: SyncMapping, same_portal: bool = False) -> None:
        self.edge = edge
        self.same_portal = same_portal
        # In one portal the marketing role's poll already sees every contact change: searching the
        # contacts again would spend the portal's search allowance (a few per second) for nothing.
        self.streams = (DEALS,) if same_portal else STREAMS
        self.meta = PortalMeta(edge)
        self.ext = mapping.identity.sfa_field
        self.email_field = "email"
        self.contact_properties = sorted(
            (set(CONTACT_PROPERTIES) | mapping.sfa_fields(CONTACT) | {self.ext}) - DERIVED
        )
        self.deal_properties = sorted((set(DEAL_PROPERTIES) | mapping.sfa_fields(DEAL)) - DERIVED)
        self.identity_properties = [self.ext, self.email_field, "lastmodifieddate"]
        # common ID -> contact ID of the people this thread read last: where their handover writes (one
        # portal); per thread, as a worker's threads share the connector
        self._read = threading.local()

    # -- change feed -------------------------------------------------------------------------------

    def poll(self, cursors: Mapping[str, CursorState], overlap: timedelta) -> ChangeBatch:
        """Contacts (unless one portal) and deals changed since each stream's watermark (search by
        modification time); deals reach their people through their contacts."""
        advanced: dict[str, CursorState] = {}
        contacts: list[HubSpotContact] = []
        deal_ids: list[str] = []
        for stream in self.streams:
            cursor = Incremental(cursors.get(stream, CursorState()), overlap)
            props = self.identity_properties if stream == CONTACTS else ["hs_lastmodifieddate"]
            for page in self.edge.changed_since(cursor.lower_bound(), props, stream):
                for record in page:
                    stamp = record.updated_at.isoformat() if record.updated_at else ""
                    if not cursor.is_new(record.id, stamp):
                        continue
                    if stream == CONTACTS:
                        contacts.append(record)
                    else:
                        deal_ids.append(record.id)
            advanced[stream] = cursor.advance()
        return ChangeBatch(self._candidates(contacts, deal_ids), advanced)

    def _candidate(self, contact: HubSpotContact) -> Candidate:
        ref = RecordRef(SFA, CONTACT, contact.id)
        return Candidate.of([ref], contact.properties.get(self.ext), contact.properties.get(self.email_field))

    def _candidates(self, contacts: Sequence[HubSpotContact], deal_ids: Sequence[str]) -> list[Candidate]:
        """Candidates of changed contacts; changed deals reach their people through their contacts."""
        have = {c.id for c in contacts}
        tied = {c for ids in self._deal_contacts(deal_ids).values() for c in ids}
        extra = sorted(tied - have, key=int)
        more = self.edge.read(extra, self.identity_properties).values() if extra else []
        return [self._candidate(c) for c in (*contacts, *more)]

    def _associated(self, from_type: str, ids: Sequence[str]) -> dict[str, list[str]]:
        """Per record, the IDs of the other object tied to it by any of the portal's association labels."""
        if not ids:
            return {}
        found = self.edge.associations(from_type, DEALS if from_type == CONTACTS else CONTACTS, ids)
        seen = {t for linked in found.values() for types in linked.values() for t in types}
        wanted = self.meta.type_ids(from_type, seen)
        return {
            rid: sorted((to for to, types in linked.items() if types & wanted), key=int)
            for rid, linked in found.items()
        }

    def _deal_contacts(self, deal_ids: Sequence[str]) -> dict[str, list[str]]:
        return self._associated(DEALS, list(dict.fromkeys(deal_ids)))

    # -- people ------------------------------------------------------------------------------------

    def read_people(
        self, common_ids: Sequence[str], links: Mapping[str, Sequence[RecordRef]]
    ) -> dict[str, RoleState]:
        """Each person's contact (by link, else by the common ID it carries) and its associated deals."""
        wanted = set(common_ids)
        linked: dict[str, str] = {}
        for cid in common_ids:
            for ref in links.get(cid, ()):
                if ref.object_type == CONTACT and (ref.role == SFA or (self.same_portal and ref.role == MA)):
                    linked.setdefault(ref.record_id, cid)
        history = ["hs_lead_status"]
        found = self.edge.read(list(linked), self.contact_properties, CONTACTS, history) if linked else {}
        owners_found = {linked[c.id] for c in found.values() if c.id in linked}
        by_key = [cid for cid in common_ids if cid not in owners_found]
        if by_key:
            found |= self.edge.read(by_key, self.contact_properties, CONTACTS, history, id_property=self.ext)
        chosen: dict[str, HubSpotContact] = {}
        for contact in found.values():
            ext = contact.properties.get(self.ext)
            owner = ext if isinstance(ext, str) and ext in wanted else linked.get(contact.id)
            if owner and (owner not in chosen or _newer(contact, chosen[owner])):
                chosen[owner] = contact
        self._read.contact_of = {cid: c.id for cid, c in chosen.items()}
        deals_of = self._associated(CONTACTS, [c.id for c in chosen.values()])
        deal_ids = sorted({d for ids in deals_of.values() for d in ids}, key=int)
        deals = self.edge.read(deal_ids, self.deal_properties, DEALS, ["dealstage"]) if deal_ids else {}
        states: dict[str, RoleState] = {}
        for cid, contact in chosen.items():
            outcomes = [deal_record(self.meta, deals[d]) for d in deals_of.get(contact.id, []) if d in deals]
            record = contact_record(contact)
            if self.same_portal and not record.get("hs_lead_status") and not outcomes:
                continue  # marketing's contact, not handed to sales yet
            records: dict[str, Record] = {CONTACT: record}
            primary = primary_deal(outcomes)
            if primary is not None:
                records[DEAL] = primary
            times = [parse_timestamp(r.get(MODIFIED_AT)) for r in (record, *outcomes)]
            states[cid] = RoleState(
                records=records,
                outcomes=outcomes,
                primary_id=contact.id,
                updated_at=max((t for t in times if t is not None), default=None),
                # read with their property history: the replay needs no further call
                extras={HISTORY: (contact, [deals[d] for d in deals_of.get(contact.id, []) if d in deals])},
            )
        return states

    def write_target(self, state: RoleState) -> WriteTarget | None:
        """The contact; in one portal none: the marketing record is the same contact, so there is
        nothing to sync between the roles (comparing two reads of one record could only undo a
        rep's change made between them)."""
        contact = state.record(CONTACT)
        if contact is None or self.same_portal:
            return None
        return WriteTarget(CONTACT, contact)

    def upsert(
        self, obj: str, key_field: str, rows: Mapping[str, Record]
    ) -> tuple[dict[str, str], list[RecordError]]:
        """The handover: in one portal, write the fields onto the person's own contact (never create one);
        otherwise create-or-update contacts keyed by the common ID."""
        if obj != CONTACT:
            return {}, [
                RecordError(k, "UNSUPPORTED", f"HubSpot: cannot create a {obj} at the handover", "validation")
                for k in rows
            ]
        clean = {cid: {k: v for k, v in fields.items() if k not in DERIVED} for cid, fields in rows.items()}
        if not self.same_portal:
            return self.edge.upsert(key_field, clean)
        known: dict[str, str] = getattr(self._read, "contact_of", {})
        where = {cid: known[cid] for cid in clean if cid in known}
        unknown = [cid for cid in clean if cid not in where]
        if unknown:
            by_key = self.edge.read(unknown, [key_field], CONTACTS, id_property=key_field)
            where |= {str(c.properties.get(key_field)): c.id for c in by_key.values()}
        errors = [
            RecordError(cid, "NOT_FOUND", "HubSpot: no contact carries this common ID yet", "not_found", True)
            for cid in clean
            if cid not in where
        ]
        updates = {where[cid]: fields for cid, fields in clean.items() if cid in where}
        failed = self.edge.update(updates) if updates else []
        owner = {rid: cid for cid, rid in where.items()}
        errors += [RecordError(owner.get(e.key, e.key), e.code, e.message, e.category) for e in failed]
        bad = {e.key for e in errors}
        return {cid: rid for cid, rid in where.items() if cid not in bad}, errors

    def update(self, obj: str, updates: Mapping[str, Record]) -> list[RecordError]:
        clean = {rid: {k: v for k, v in f.items() if k not in DERIVED} for rid, f in updates.items()}
        return self.edge.update(clean, CONTACTS if obj == CONTACT else DEALS)

    def create_follow_up(
        self, record_id: str, owner: str | None, subject: str, due: date, description: str
    ) -> None:
        """A to-do task on the contact, due that day, assigned to the owner when known."""
        task: Record = {
            "hs_timestamp": datetime(due.year, due.month, due.day, tzinfo=UTC).isoformat(),
            "hs_task_subject": subject,
            "hs_task_body": description,
            "hs_task_status": "NOT_STARTED",
            "hs_task_type": "TODO",
        }
        if owner:
            task["hubspot_owner_id"] = owner
        self.edge.create_task(task, record_id, self.meta.task_type_id())

    def owner_names(self, ids: Sequence[str]) -> dict[str, str]:
        """Names of the owners with these ids, paging the owners list until all are found."""
        wanted, after = set(ids), None
        found: dict[str, str] = {}
        while wanted - set(found):
            owners, after = self.edge.owners_page(after)
            for owner in owners:
                name = " ".join(str(owner.get(k) or "").strip() for k in ("firstName", "lastName")).strip()
                if str(owner.get("id")) in wanted:
                    found[str(owner["id"])] = name or str(owner.get("email") or owner["id"])
            if after is None:
                break
        return found

    # -- provisioning --------------------------------------------------------------------------------

    def provision(self, mapping: SyncMapping, dry_run: bool) -> Provisioning:
        """The common-ID contact property (created, unique); the mapping's contact and deal properties and
        a won stage (closed, probability 1.0) in some pipeline are checked."""
        out = Provisioning()
        contacts = self.edge.existing_properties(CONTACTS)
        have = contacts.get(self.ext)
        if have is None:
            verb = "would create" if dry_run else "created"
            if not dry_run:
                self.edge.ensure_group(PROPERTY_GROUP, hubspot_ma.PROPERTY_GROUP_LABEL)
                self.edge.create_property(
                    PropertySpec(self.ext, "Closedloop ID", unique=True), PROPERTY_GROUP
                )
            out.created.append(f"HubSpot: {verb} contact property {self.ext}")
        elif not have.get("unique"):
            out.problems.append(f"HubSpot property {self.ext} exists but is not unique-valued")
        deals = self.edge.existing_properties(DEALS)
        for obj, existing in ((CONTACT, contacts), (DEAL, deals)):
            for name in sorted(mapping.sfa_fields(obj) - DERIVED - {self.ext}):
                if name not in existing and name != "hs_object_id":
                    out.missing.append(
                        f"HubSpot: missing {obj} property {name} (create it in Settings → Properties)"
                    )
        stages = [s for p in self.edge.deal_pipelines() for s in p.get("stages") or []]
        if not any(
            str((s.get("metadata") or {}).get("isClosed")).lower() == "true"
            and float((s.get("metadata") or {}).get("probability") or 0) >= 1.0
            for s in stages
        ):
            out.problems.append("HubSpot: no deal stage is closed with probability 1.0 (won)")
        return out

    # -- backfill ------------------------------------------------------------------------------------

    def scan(
        self, stream: str, state: Mapping[str, Any], since: datetime | None, page_size: int
    ) -> Iterator[ScanPage]:
        """Every contact, or every deal (reaching its contacts), through the list API (``after`` token)."""
        after: str | None = state.get("after")
        props = self.identity_properties if stream == CONTACTS else ["hs_lastmodifieddate"]
        while True:
            records, after = self.edge.list_page(after, props, limit=page_size, object_type=stream)
            chosen = [r for r in records if since is None or r.updated_at is None or r.updated_at >= since]
            if stream == CONTACTS:
                candidates = [self._candidate(c) for c in chosen]
            else:
                candidates = self._candidates([], [d.id for d in chosen])
            yield ScanPage(candidates, {"after": after, "done": after is None}, len(records))
            if after is None:
                return

    def scan_total(self, stream: str) -> int | None:
        return self.edge.summary(stream)[0]

    def newest_changes(self) -> dict[str, datetime | None]:
        return {stream: self.edge.summary(stream)[1] for stream in self.streams}

    def history(self, states: Mapping[str, RoleState]) -> dict[str, list[HistoryEvent]]:
        """Snapshots at each change of the contact's ``hs_lead_status`` and of each deal's ``dealstage``
        (from the history read with the people; read again only for states from elsewhere)."""
        missing = {cid: s for cid, s in states.items() if HISTORY not in s.extras}
        contacts: dict[str, HubSpotContact] = {}
        deals: dict[str, HubSpotContact] = {}
        if missing:
            contact_ids = [s.primary_id for s in missing.values() if s.primary_id]
            deal_ids = [str(d["hs_object_id"]) for s in missing.values() for d in s.outcomes]
            contacts = self.edge.read(contact_ids, self.contact_properties, CONTACTS, ["hs_lead_status"])
            deals = self.edge.read(deal_ids, self.deal_properties, DEALS, ["dealstage"]) if deal_ids else {}
        out: dict[str, list[HistoryEvent]] = {}
        for cid, state in states.items():
            if HISTORY in state.extras:
                contact, own_deals = state.extras[HISTORY]
            else:
                contact = contacts.get(state.primary_id or "")
                own_deals = [deals[i] for d in state.outcomes if (i := str(d["hs_object_id"])) in deals]
            events = contact_events(contact, self.same_portal) if contact is not None else []
            for deal in own_deals:
                events += deal_events(self.meta, deal)
            out[cid] = events
        return out

    # -- matching ------------------------------------------------------------------------------------

    def find_people(self, emails: Sequence[str]) -> dict[str, RecordRef]:
        """Contacts with one of these emails and no common ID yet; in one portal none (the marketing
        contact itself is handed over, and HubSpot keeps one contact per email)."""
        if self.same_portal or not emails:
            return {}
        found: dict[str, RecordRef] = {}
        for contact in self.edge.find_by_property(
            self.email_field, emails, [self.email_field, self.ext]
        ).values():
            email = normalise_email(contact.properties.get(self.email_field))
            if email and email not in found and not contact.properties.get(self.ext):
                found[email] = RecordRef(SFA, CONTACT, contact.id)
        return found

    def refs_for(self, record_ids: Sequence[str]) -> list[RecordRef]:
        """Contacts (the only person object here)."""
        return [RecordRef(SFA, CONTACT, str(rid)) for rid in record_ids]

    def as_created(self, obj: str, fields: Mapping[str, Any], record_id: str) -> Record:
        """The contact as the handover leaves it: our fields (HubSpot adds no defaults we read)."""
        return {**fields, "hs_object_id": record_id}

    # -- webhooks ----------------------------------------------------------------------------------

    def interpret(self, items: Sequence[InboxItem]) -> EventMeaning:
        """deal.* events change their deal (and, for an association change, its contact too);
        contact.* events received in this role (another marketing system) change, merge or delete
        their contact; a deal's deletion changes nothing here (its contacts are read afresh)."""
        meaning = EventMeaning()
        for item in items:
            kind = str(item.payload.get("subscriptionType", ""))
            if kind.endswith(".deletion"):
                if item.object_type == CONTACT:  # a deleted deal only changes its contacts' outcome
                    meaning.deletions.append(RecordRef(SFA, CONTACT, item.record_id))
                continue
            if item.object_type == CONTACT and kind.endswith(".merge"):
                merged = [RecordRef(SFA, CONTACT, str(x)) for x in item.payload.get("mergedObjectIds") or []]
                primary = RecordRef(SFA, CONTACT, str(item.payload.get("primaryObjectId") or item.record_id))
                meaning.merges.append((primary, [m for m in merged if m != primary]))
                meaning.changed.append(primary)
                continue
            if kind.endswith(".associationChange"):
                for key in ("fromObjectId", "toObjectId"):
                    value = item.payload.get(key)
                    obj = _association_end(item.payload, key)
                    if value is not None and obj:
                        meaning.changed.append(RecordRef(SFA, obj, str(value)))
                continue
            obj = DEAL if item.object_type == DEAL else CONTACT
            meaning.changed.append(RecordRef(SFA, obj, item.record_id))
        return meaning

    def candidates(self, refs: Sequence[RecordRef]) -> list[Candidate]:
        """Contacts read for identity; deals resolve through their associated contacts."""
        contact_ids = list(dict.fromkeys(r.record_id for r in refs if r.object_type == CONTACT))
        deal_ids = [r.record_id for r in refs if r.object_type == DEAL]
        contacts = list(self.edge.read(contact_ids, self.identity_properties).values()) if contact_ids else []
        return self._candidates(contacts, deal_ids)


def _newer(a: HubSpotContact, b: HubSpotContact) -> bool:
    """Whether ``a`` was modified after ``b`` (an unknown time counts as oldest)."""
    return a.updated_at is not None and (b.updated_at is None or a.updated_at > b.updated_at)


def _association_end(payload: Mapping[str, Any], key: str) -> str | None:
    """The object at one end of an association event (``DEAL_TO_CONTACT``: from a deal, to a contact)."""
    kind = str(payload.get("associationType") or "")
    if "_TO_" not in kind:
        return None
    ends = kind.split("_TO_", 1)
    name = ends[0] if key == "fromObjectId" else ends[1]
    return {"DEAL": DEAL, "CONTACT": CONTACT}.get(name)
