"""The common lead ID: find or mint it, link system records and match keys to it, merge two of them.

Resolution order: an existing common ID carried by a record → a known record ID → normalised match
keys (email by default) → a newly minted ULID.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import false, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from ulid import ULID

from sync.store.models import MatchKey, Person, RecordLink, Transition
from sync.timeutil import utcnow

_RESOLVE_ATTEMPTS = 3


MAX_EMAIL = 254  # the longest address SMTP can carry (RFC 5321 path limit)
# A common ID is ours (a ULID) or at least an identifier-like token short enough for the store; a
# value someone typed into the common-ID field (quotes, spaces, 60 characters) is not adopted.
_COMMON_ID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


def normalise_email(value: object) -> str | None:
    """NFKC (full-width → ASCII), trimmed, lower-cased; None unless it looks like an address."""
    if value is None:
        return None
    text = unicodedata.normalize("NFKC", str(value)).strip().lower()
    if "@" not in text or text.startswith("@") or text.endswith("@") or " " in text or len(text) > MAX_EMAIL:
        return None
    return text


def valid_common_id(value: object) -> str | None:
    """The value as a common ID, or None when it cannot be one (blank, too long, odd characters)."""
    if value is None:
        return None
    text = str(value).strip()
    return text if _COMMON_ID.match(text) else None


def mint_common_id() -> str:
    """A new, sortable, unique common lead ID."""
    return str(ULID())


@dataclass(frozen=True)
class RecordRef:
    """A record in one role's system: ``("ma", "contact", "123")`` or ``("sfa", "lead", "00Q…")``."""

    role: str
    object_type: str
    record_id: str


@dataclass
class Candidate:
    """What a changed record tells us about who it belongs to."""

    records: list[RecordRef]
    common_id: str | None = None
    keys: dict[str, str] = field(default_factory=dict)
    email: str | None = None

    @classmethod
    def of(cls, records: list[RecordRef], common_id: object = None, email: object = None) -> Candidate:
        """A candidate from a record's common ID and raw email (normalised into the email match key)."""
        key = normalise_email(email)
        return cls(
            records=records,
            common_id=valid_common_id(common_id),
            keys={"email": key} if key else {},
            email=key,
        )


class IdentityMap:
    """Resolves and links common IDs inside one database session."""

    def __init__(self, session: Session, connectors: Mapping[str, str] | None = None) -> None:
        self.session = session
        self.connectors = dict(connectors or {})  # role -> connector name, recorded on each link

    def resolve_batch(self, candidates: Sequence[Candidate]) -> list[str]:
        """The common ID of every candidate, minting and linking as needed (one query per kind).

        Webhook tasks run in parallel: another transaction may link the same record (e.g. the engine
        that just created a sales-side record) between our read and our insert. On PostgreSQL the insert then fails
        on the unique key once that transaction commits; we roll back to a savepoint and resolve again,
        now seeing its links. SQLite has one writer at a time: taking the write lock before reading
        serialises resolutions instead (a savepoint there would hold a stale read snapshot).
        """
        if self.session.get_bind().dialect.name == "sqlite":
            self.session.execute(update(Person).where(false()).values(common_id=Person.common_id))
            return self._resolve_once(candidates)
        for attempt in range(_RESOLVE_ATTEMPTS):
            try:
                with self.session.begin_nested():
                    return self._resolve_once(candidates)
            except IntegrityError:
                if attempt == _RESOLVE_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    def _resolve_once(self, candidates: Sequence[Candidate]) -> list[str]:
        refs = {r for c in candidates for r in c.records}
        by_record = self._linked(refs)
        key_pairs = {(k, v) for c in candidates for k, v in c.keys.items() if v}
        by_key = self._keys(key_pairs)
        hints = {c.common_id for c in candidates if c.common_id}
        known_people = self._people(hints | set(by_record.values()) | set(by_key.values()))
        now = utcnow()
        resolved: list[str] = []
        for cand in candidates:
            common_id = self._choose(cand, by_record, by_key, known_people)
            if common_id is None:
                common_id = cand.common_id or mint_common_id()
            if common_id not in known_people:
                self.session.add(
                    Person(
                        common_id=common_id, email=cand.email, attributes={}, created_at=now, updated_at=now
                    )
                )
                known_people[common_id] = None
            for ref in cand.records:
                if ref not in by_record:
                    self.session.add(
                        RecordLink(
                            common_id=common_id,
                            role=ref.role,
                            connector=self.connectors.get(ref.role, ""),
                            object_type=ref.object_type,
                            record_id=ref.record_id,
                            created_at=now,
                        )
                    )
                    by_record[ref] = common_id
            for key_type, value in cand.keys.items():
                if value and (key_type, value) not in by_key:
                    self.session.add(MatchKey(key_type=key_type, key_value=value, common_id=common_id))
                    by_key[(key_type, value)] = common_id
            resolved.append(common_id)
        self.session.flush()
        return resolved

    def _choose(
        self,
        cand: Candidate,
        by_record: dict[RecordRef, str],
        by_key: dict[tuple[str, str], str],
        known_people: dict[str, str | None],
    ) -> str | None:
        if cand.common_id and cand.common_id in known_people:
            return self._follow(cand.common_id, known_people)
        for ref in cand.records:
            if ref in by_record:
                return self._follow(by_record[ref], known_people)
        if cand.common_id:
            return cand.common_id  # carried by the record: adopt it even if we never saw it
        for key in cand.keys.items():
            if key in by_key:
                return self._follow(by_key[key], known_people)
        return None

    def _follow(self, common_id: str, known_people: dict[str, str | None]) -> str:
        seen = set()
        while known_people.get(common_id) and common_id not in seen:
            seen.add(common_id)
            common_id = known_people[common_id] or common_id
        return common_id

    def _linked(self, refs: Iterable[RecordRef]) -> dict[RecordRef, str]:
        out: dict[RecordRef, str] = {}
        by_role: dict[tuple[str, str], list[str]] = {}
        for ref in refs:
            by_role.setdefault((ref.role, ref.object_type), []).append(ref.record_id)
        for (role, obj), ids in by_role.items():
            rows = self.session.execute(
                select(RecordLink.record_id, RecordLink.common_id).where(
                    RecordLink.role == role, RecordLink.object_type == obj, RecordLink.record_id.in_(ids)
                )
            )
            for record_id, common_id in rows:
                out[RecordRef(role, obj, record_id)] = common_id
        return out

    def _keys(self, pairs: set[tuple[str, str]]) -> dict[tuple[str, str], str]:
        out: dict[tuple[str, str], str] = {}
        types = {k for k, _ in pairs}
        for key_type in types:
            values = [v for k, v in pairs if k == key_type]
            rows = self.session.execute(
                select(MatchKey.key_value, MatchKey.common_id).where(
                    MatchKey.key_type == key_type, MatchKey.key_value.in_(values)
                )
            )
            for value, common_id in rows:
                out[(key_type, value)] = common_id
        return out

    def _people(self, ids: set[str]) -> dict[str, str | None]:
        if not ids:
            return {}
        rows = self.session.execute(
            select(Person.common_id, Person.merged_into).where(Person.common_id.in_(ids))
        )
        return {cid: merged for cid, merged in rows}

    def links(self, common_ids: Sequence[str]) -> dict[str, list[RecordRef]]:
        """Every record linked to each common ID."""
        out: dict[str, list[RecordRef]] = {cid: [] for cid in common_ids}
        rows = self.session.execute(
            select(RecordLink.common_id, RecordLink.role, RecordLink.object_type, RecordLink.record_id).where(
                RecordLink.common_id.in_(list(common_ids))
            )
        )
        for cid, role, obj, rid in rows:
            out.setdefault(cid, []).append(RecordRef(role, obj, rid))
        return out

    def link(self, common_id: str, ref: RecordRef) -> None:
        """Attach one more record to a person (no-op when already linked to them).

        An upsert where the backend has one: a webhook task may link the same new record at the same
        moment (it carries our common ID), and a plain insert would then fail this whole sync.
        """
        dialect = self.session.get_bind().dialect.name
        if dialect in ("postgresql", "sqlite"):
            module: Any = postgresql if dialect == "postgresql" else sqlite
            stmt = module.insert(RecordLink).values(
                common_id=common_id,
                role=ref.role,
                connector=self.connectors.get(ref.role, ""),
                object_type=ref.object_type,
                record_id=ref.record_id,
                created_at=utcnow(),
            )
            self.session.execute(
                stmt.on_conflict_do_update(
                    index_elements=["role", "object_type", "record_id"], set_={"common_id": common_id}
                )
            )
            return
        existing = self.session.execute(
            select(RecordLink).where(
                RecordLink.role == ref.role,
                RecordLink.object_type == ref.object_type,
                RecordLink.record_id == ref.record_id,
            )
        ).scalar_one_or_none()
        if existing is None:
            self.session.add(
                RecordLink(
                    common_id=common_id,
                    role=ref.role,
                    connector=self.connectors.get(ref.role, ""),
                    object_type=ref.object_type,
                    record_id=ref.record_id,
                    created_at=utcnow(),
                )
            )
        elif existing.common_id != common_id:
            existing.common_id = common_id

    def merge(self, winner: str, loser: str) -> None:
        """Fold ``loser`` into ``winner``: records and keys move; both transition histories stay.

        The loser's transitions are re-pointed at the winner so the funnel counts one person.
        """
        if winner == loser:
            return
        self.session.execute(update(RecordLink).where(RecordLink.common_id == loser).values(common_id=winner))
        self.session.execute(update(MatchKey).where(MatchKey.common_id == loser).values(common_id=winner))
        self.session.execute(update(Transition).where(Transition.common_id == loser).values(common_id=winner))
        self.session.execute(
            update(Person).where(Person.common_id == loser).values(merged_into=winner, updated_at=utcnow())
        )
