"""Turn stored webhook events into people to sync.

An event only says *which* record changed; the engine then reads the fresh state of both systems,
so duplicated or out-of-order events are harmless.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from sync.connectors.contract import Connector, InboxItem
from sync.engine import Engine, SyncResult
from sync.identity import IdentityMap, RecordRef
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
            snapshot = [(e.id, e.role, e.object_type, e.record_id, dict(e.payload or {})) for e in events]
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
        by_role: dict[str, list[InboxItem]] = {}
        for _id, role, obj, record_id, payload in events:
            by_role.setdefault(role, []).append(InboxItem(obj, record_id, payload))
        ids: list[str] = []
        for role, items in by_role.items():
            connector = self.poller.connectors.get(role)
            if connector is None:
                log.warning("inbox_events_without_role", role=role, count=len(items))
                continue
            meaning = connector.interpret(items)
            ids += self._changed(connector, meaning.changed)
            if meaning.merges:
                ids += self._merge(meaning.merges)
            if meaning.deletions:
                self._record_deletions(meaning.deletions)
        return list(dict.fromkeys(ids))

    def _changed(self, connector: Connector, refs: list[RecordRef]) -> list[str]:
        """Common IDs of changed records: linked ones by their link, others read and resolved.

        Resolving a linked record by its link saves a read per event from the vendor's budget (the
        engine reads it fresh anyway).
        """
        refs = list(dict.fromkeys(refs))
        known = self._linked(refs)
        unknown = [r for r in refs if r not in known]
        ids = list(known.values())
        if unknown:
            candidates = connector.candidates(unknown)
            with self.store.session() as session:
                ids += self.poller.resolve(session, candidates)
        return ids

    def _linked(self, refs: list[RecordRef]) -> dict[RecordRef, str]:
        """Record → common ID, for records already linked to a person not merged away."""
        out: dict[RecordRef, str] = {}
        with self.store.session() as session:
            for (role, obj), group in _grouped(refs).items():
                rows = session.execute(
                    select(RecordLink.record_id, RecordLink.common_id)
                    .join(Person, Person.common_id == RecordLink.common_id)
                    .where(
                        RecordLink.role == role,
                        RecordLink.object_type == obj,
                        RecordLink.record_id.in_(group),
                        Person.merged_into.is_(None),
                    )
                )
                out.update({RecordRef(role, obj, rid): cid for rid, cid in rows})
        return out

    def _merge(self, merges: list[tuple[RecordRef, list[RecordRef]]]) -> list[str]:
        """A merge in a source system folds the merged records' people into the survivor's person."""
        out: list[str] = []
        with self.store.session() as session:
            identity = IdentityMap(session, self.poller.connector_names)
            for primary, merged in merges:
                links = _link_owners(session, [primary, *merged])
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

    def _record_deletions(self, refs: list[RecordRef]) -> None:
        """Deletions are recorded, not propagated (by default)."""
        with self.store.session() as session:
            for cid in set(_link_owners(session, refs).values()):
                person = session.get(Person, cid)
                if person is not None and person.deleted_at is None:
                    person.deleted_at = utcnow()
        log.info("deletions_recorded", count=len(refs))


def _grouped(refs: Sequence[RecordRef]) -> dict[tuple[str, str], list[str]]:
    out: dict[tuple[str, str], list[str]] = {}
    for ref in refs:
        out.setdefault((ref.role, ref.object_type), []).append(ref.record_id)
    return out


def _link_owners(session: Session, refs: Sequence[RecordRef]) -> dict[RecordRef, str]:
    """Record → common ID of every linked record among ``refs``."""
    out: dict[RecordRef, str] = {}
    for (role, obj), group in _grouped(refs).items():
        rows = session.execute(
            select(RecordLink.record_id, RecordLink.common_id).where(
                RecordLink.role == role, RecordLink.object_type == obj, RecordLink.record_id.in_(group)
            )
        )
        out.update({RecordRef(role, obj, rid): cid for rid, cid in rows})
    return out


__all__ = ["InboxProcessor"]
