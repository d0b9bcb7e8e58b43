"""Polling with watermarks: find what changed in each system and resolve it to common IDs.

Each stream keeps a watermark (newest modification time seen) and re-reads a margin behind it so
clock skew and late commits cannot hide a change; records already seen at the same modification
time are skipped, so an idle cycle costs one call per polled object and enqueues nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from sync import metrics
from sync.connectors.hubspot import HubSpotConnector, HubSpotContact
from sync.connectors.salesforce import SalesforceConnector
from sync.identity import Candidate, IdentityMap, RecordRef
from sync.mapping import Mapping
from sync.store.db import Store
from sync.store.models import Cursor
from sync.timeutil import parse_timestamp, utcnow

SALESFORCE_STREAMS = ("Lead", "Contact", "Opportunity", "OpportunityContactRole")


class Poller:
    """Turns "what changed since the watermark" into the common IDs to sync."""

    def __init__(
        self,
        store: Store,
        mapping: Mapping,
        hubspot: HubSpotConnector,
        salesforce: SalesforceConnector,
        overlap: timedelta = timedelta(minutes=2),
    ) -> None:
        self.store = store
        self.mapping = mapping
        self.hubspot = hubspot
        self.salesforce = salesforce
        self.overlap = overlap
        self.ext = mapping.identity.sfa_field
        self.ma_prop = mapping.identity.ma_property
        self.email_field = next((f.sfa for f in mapping.fields if f.ma == "email"), "Email")

    # -- HubSpot -----------------------------------------------------------------------------------

    def poll_hubspot(self) -> list[str]:
        """Common IDs of HubSpot contacts changed since the last cycle."""
        stream = "hubspot:contacts"
        with self.store.session() as session:
            cursor = _cursor(session, stream)
            since = _lower_bound(cursor, self.overlap)
            seen: dict[str, str] = dict(cursor.state.get("seen", {}))
        started = utcnow()
        fresh: list[HubSpotContact] = []
        newest = None
        for page in self.hubspot.changed_since(since, ["email", self.ma_prop, "lastmodifieddate"]):
            for contact in page:
                stamp = contact.updated_at.isoformat() if contact.updated_at else ""
                if seen.get(contact.id) == stamp:
                    continue
                seen[contact.id] = stamp
                fresh.append(contact)
                if contact.updated_at and (newest is None or contact.updated_at > newest):
                    newest = contact.updated_at
        with self.store.session() as session:
            ids = self.resolve_hubspot(session, fresh)
            _advance(session, stream, newest, seen, self.overlap, started)
        return ids

    def resolve_hubspot(self, session: Session, contacts: Sequence[HubSpotContact]) -> list[str]:
        """Common IDs for HubSpot contacts (minting new ones for new people)."""
        candidates = [hubspot_candidate(c, self.ma_prop) for c in contacts]
        return _unique(IdentityMap(session).resolve_batch(candidates))

    # -- Salesforce --------------------------------------------------------------------------------

    def poll_salesforce(self) -> list[str]:
        """Common IDs of people whose Lead, Contact, Opportunity or contact role changed."""
        changed: dict[str, list[dict[str, Any]]] = {}
        cursors: dict[str, tuple[datetime | None, dict[str, str], datetime]] = {}
        for sobject in SALESFORCE_STREAMS:
            stream = f"salesforce:{sobject}"
            with self.store.session() as session:
                cursor = _cursor(session, stream)
                since = _lower_bound(cursor, self.overlap)
                seen: dict[str, str] = dict(cursor.state.get("seen", {}))
            started = utcnow()
            newest: datetime | None = None
            rows: list[dict[str, Any]] = []
            for rec in self.salesforce.changed_since(sobject, self._poll_fields(sobject), since):
                stamp = str(rec.get("SystemModstamp"))
                if seen.get(rec["Id"]) == stamp:
                    continue
                seen[rec["Id"]] = stamp
                rows.append(rec)
                when = parse_timestamp(stamp)
                if when and (newest is None or when > newest):
                    newest = when
            changed[sobject] = rows
            cursors[stream] = (newest, seen, started)
        with self.store.session() as session:
            ids = self.resolve_salesforce(session, changed)
            for stream, (newest, seen, started) in cursors.items():
                _advance(session, stream, newest, seen, self.overlap, started)
        return ids

    def _poll_fields(self, sobject: str) -> list[str]:
        if sobject in ("Lead", "Contact"):
            return [self.ext, self.email_field]
        if sobject == "OpportunityContactRole":
            return ["OpportunityId", "ContactId"]
        return []

    def resolve_salesforce(self, session: Session, changed: dict[str, list[dict[str, Any]]]) -> list[str]:
        """Common IDs for changed Salesforce records; opportunities map to people via contact roles."""
        candidates: list[Candidate] = []
        for sobject in ("Lead", "Contact"):
            for rec in changed.get(sobject, []):
                refs = [RecordRef("salesforce", sobject, rec["Id"])]
                candidates.append(Candidate.of(refs, rec.get(self.ext), rec.get(self.email_field)))
        ids = IdentityMap(session).resolve_batch(candidates)
        opp_ids = [r["Id"] for r in changed.get("Opportunity", [])]
        contact_ids = {
            r["ContactId"] for r in changed.get("OpportunityContactRole", []) if r.get("ContactId")
        }
        if opp_ids:
            roles = self.salesforce.select_in(
                "OpportunityContactRole", ["ContactId"], "OpportunityId", opp_ids
            )
            contact_ids |= {r["ContactId"] for r in roles if r.get("ContactId")}
        if contact_ids:
            contacts = self.salesforce.select_in(
                "Contact", [self.ext, self.email_field], "Id", list(contact_ids)
            )
            more = [
                Candidate.of(
                    [RecordRef("salesforce", "Contact", c["Id"])], c.get(self.ext), c.get(self.email_field)
                )
                for c in contacts
            ]
            ids += IdentityMap(session).resolve_batch(more)
        return _unique(ids)


def hubspot_candidate(contact: HubSpotContact, id_property: str) -> Candidate:
    """What a HubSpot contact says about its person: record ID, common ID, email."""
    ref = RecordRef("hubspot", "contact", contact.id)
    return Candidate.of([ref], contact.properties.get(id_property), contact.properties.get("email"))


def _unique(ids: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(ids))


def _cursor(session: Session, stream: str) -> Cursor:
    cursor = session.get(Cursor, stream)
    if cursor is None:
        cursor = Cursor(stream=stream, watermark=None, state={}, updated_at=utcnow())
        session.add(cursor)
        session.flush()
    return cursor


def _lower_bound(cursor: Cursor, overlap: timedelta) -> datetime | None:
    """Where the next read starts: a margin behind the watermark until that margin has settled."""
    if cursor.watermark is None:
        return None
    return cursor.watermark if cursor.state.get("settled") else cursor.watermark - overlap


def _advance(
    session: Session,
    stream: str,
    newest: datetime | None,
    seen: dict[str, str],
    overlap: timedelta,
    started: datetime | None = None,
) -> None:
    """Move the watermark forward and forget seen records that fell out of the overlap window.

    The margin re-read behind the watermark guards against skew and late commits, which last at
    most ``overlap``. Once a read has started ``overlap`` after the watermark last moved (elapsed
    time on our clock: no skew against the source's), every record at or before the watermark was
    visible to it, so later reads start at the watermark: an idle cycle is then one call per object
    instead of re-reading every record of the last burst.
    """
    cursor = _cursor(session, stream)
    previous = dict(cursor.state or {})
    moved_at = parse_timestamp(previous.get("moved_at"))
    settled = bool(previous.get("settled"))
    if newest is not None and (cursor.watermark is None or newest > cursor.watermark):
        cursor.watermark = newest
        moved_at, settled = utcnow(), False
    elif moved_at is None:  # a watermark set elsewhere (backfill, older state): start its margin now
        moved_at = started or utcnow()
    elif started is not None and started - moved_at >= overlap:
        settled = True
    if cursor.watermark is not None:
        floor = cursor.watermark - overlap
        seen = {rid: stamp for rid, stamp in seen.items() if (parse_timestamp(stamp) or floor) >= floor}
    now = utcnow()
    cursor.state = {"seen": seen, "moved_at": moved_at.isoformat() if moved_at else None, "settled": settled}
    cursor.last_success_at = now
    cursor.updated_at = now
    if cursor.watermark is not None:
        metrics.sync_lag_seconds.labels(stream=stream).set(max(0.0, (now - cursor.watermark).total_seconds()))
