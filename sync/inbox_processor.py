"""Turn stored webhook events into people to sync.

An event only says *which* record changed; the engine then reads the fresh state of both systems,
so duplicated or out-of-order events are harmless.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from sync.engine import Engine, SyncResult
from sync.identity import IdentityMap
from sync.logs import get_logger
from sync.poller import Poller
from sync.store.db import Store
from sync.store.models import InboxEvent, Person, RecordLink
from sync.timeutil import utcnow

log = get_logger(__name__)


class InboxProcessor:
    """Processes pending inbox events in batches."""

    def __init__(self, store: Store, poller: Poller, engine: Engine) -> None:
        self.store = store
        self.poller = poller
        self.engine = engine

    def pending_ids(self, limit: int = 1000) -> list[int]:
        """IDs of events not processed yet, oldest first."""
        with self.store.session() as session:
            rows = session.execute(
                select(InboxEvent.id)
                .where(InboxEvent.status == "pending")
                .order_by(InboxEvent.id)
                .limit(limit)
            )
            return [r[0] for r in rows]

    def process(self, event_ids: Sequence[int]) -> SyncResult:
        """Resolve the events' records to people, sync them, and mark the events done."""
        with self.store.session() as session:
            events = list(
                session.execute(
                    select(InboxEvent).where(
                        InboxEvent.id.in_(list(event_ids)), InboxEvent.status == "pending"
                    )
                ).scalars()
            )
            for event in events:
                event.attempts += 1
            snapshot = [(e.id, e.source, e.object_type, e.record_id, dict(e.payload or {})) for e in events]
        if not snapshot:
            return SyncResult()
        common_ids = self._resolve(snapshot)
        result = SyncResult()
        for start in range(0, len(common_ids), 200):
            part = self.engine.sync_people(common_ids[start : start + 200], cause="webhook")
            for name in (
                "people",
                "transitions",
                "ma_writes",
                "sfa_writes",
                "leads_created",
                "ma_created",
                "errors",
            ):
                setattr(result, name, getattr(result, name) + getattr(part, name))
        with self.store.session() as session:
            now = utcnow()
            for event in session.execute(
                select(InboxEvent).where(InboxEvent.id.in_([s[0] for s in snapshot]))
            ).scalars():
                event.status = "done"
                event.processed_at = now
        return result

    def _resolve(self, events: list[tuple[int, str, str, str, dict[str, Any]]]) -> list[str]:
        hubspot_ids: list[str] = []
        merges: list[tuple[str, list[str]]] = []
        deletions: list[str] = []
        salesforce: dict[str, list[dict[str, Any]]] = {}
        for _id, source, obj, record_id, payload in events:
            if source == "hubspot":
                kind = str(payload.get("subscriptionType", ""))
                if kind.endswith(".deletion"):
                    deletions.append(record_id)
                    continue
                if kind.endswith(".merge"):
                    merged = [str(x) for x in payload.get("mergedObjectIds") or []]
                    primary = str(payload.get("primaryObjectId") or record_id)
                    merges.append((primary, merged))
                    hubspot_ids.append(primary)
                    continue
                hubspot_ids.append(record_id)
            else:
                salesforce.setdefault(obj, []).append({"Id": record_id, **payload})
        ids: list[str] = []
        if hubspot_ids:
            # A contact already linked resolves by its record ID; reading it first would spend one
            # call of HubSpot's 10-second budget per event (the engine reads it fresh anyway).
            known = self._linked_hubspot(list(dict.fromkeys(hubspot_ids)))
            ids += list(known.values())
            unknown = [h for h in dict.fromkeys(hubspot_ids) if h not in known]
            if unknown:
                props = ["email", self.poller.ma_prop, "lastmodifieddate"]
                contacts = list(self.poller.hubspot.read(unknown, props).values())
                with self.store.session() as session:
                    ids += self.poller.resolve_hubspot(session, contacts)
        if merges:
            ids += self._merge(merges)
        if deletions:
            self._record_deletions(deletions)
        if salesforce:
            changed = self._salesforce_records(salesforce)
            with self.store.session() as session:
                ids += self.poller.resolve_salesforce(session, changed)
        return list(dict.fromkeys(ids))

    def _linked_hubspot(self, hubspot_ids: list[str]) -> dict[str, str]:
        """HubSpot contact ID → common ID, for contacts already linked to a person not merged away."""
        with self.store.session() as session:
            rows = session.execute(
                select(RecordLink.record_id, RecordLink.common_id, Person.merged_into)
                .join(Person, Person.common_id == RecordLink.common_id)
                .where(
                    RecordLink.system == "hubspot",
                    RecordLink.object_type == "contact",
                    RecordLink.record_id.in_(hubspot_ids),
                )
            ).all()
        # A link to a merged-away person is left to the full resolution, which follows the merge.
        return {str(rid): str(cid) for rid, cid, merged in rows if not merged}

    def _salesforce_records(
        self, by_object: dict[str, list[dict[str, Any]]]
    ) -> dict[str, list[dict[str, Any]]]:
        """Outbound messages may carry only some fields; read the ones identity needs."""
        sf = self.poller.salesforce
        out: dict[str, list[dict[str, Any]]] = {}
        for obj, records in by_object.items():
            if obj in ("Lead", "Contact"):
                fields = [self.poller.ext, self.poller.email_field]
                out[obj] = sf.select_in(obj, fields, "Id", [r["Id"] for r in records])
            else:
                out[obj] = records
        return out

    def _merge(self, merges: list[tuple[str, list[str]]]) -> list[str]:
        """A HubSpot merge folds the merged contacts' people into the primary's person."""
        out: list[str] = []
        with self.store.session() as session:
            identity = IdentityMap(session)
            for primary, merged in merges:
                links = dict(
                    session.execute(
                        select(RecordLink.record_id, RecordLink.common_id).where(
                            RecordLink.system == "hubspot", RecordLink.record_id.in_([primary, *merged])
                        )
                    ).all()
                )
                winner = links.get(primary)
                if winner is None:
                    continue
                for loser_record in merged:
                    loser = links.get(loser_record)
                    if loser and loser != winner:
                        identity.merge(winner, loser)
                        log.info("people_merged", winner=winner, loser=loser)
                out.append(winner)
        return out

    def _record_deletions(self, hubspot_ids: list[str]) -> None:
        """Deletions are recorded, not propagated (by default)."""
        with self.store.session() as session:
            rows = session.execute(
                select(RecordLink.common_id).where(
                    RecordLink.system == "hubspot", RecordLink.record_id.in_(hubspot_ids)
                )
            ).all()
            for (cid,) in rows:
                person = session.get(Person, cid)
                if person is not None and person.deleted_at is None:
                    person.deleted_at = utcnow()
        log.info("hubspot_deletions_recorded", count=len(hubspot_ids))


__all__ = ["InboxProcessor"]
