"""Owner display names, read once from the sales side and kept in ``owner_names``.

Reports show a name wherever an owner appears; an owner whose name is not known yet shows its id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from sync.store.models import OwnerName, Person
from sync.timeutil import utcnow

Lookup = Callable[[Sequence[str]], dict[str, str]]


def known_owner_ids(session: Session) -> set[str]:
    """Every owner id the store mentions: people's current owners and their owners per team."""
    ids = {o for (o,) in session.execute(select(Person.owner).where(Person.owner.is_not(None))) if o}
    rows = session.execute(select(Person.owners).where(Person.owners.is_not(None)))
    for (owners,) in rows:
        ids.update(str(v) for v in (owners or {}).values() if v)
    return ids


def missing_owner_ids(session: Session, limit: int = 2000) -> list[str]:
    """Owner ids with no stored name yet (sorted, at most ``limit``)."""
    named = set(session.scalars(select(OwnerName.owner_id)))
    return sorted(known_owner_ids(session) - named)[:limit]


def save_owner_names(session: Session, names: Mapping[str, str], now: datetime) -> None:
    """Store names read from the sales side (an id already named keeps the newer name)."""
    for owner_id, name in names.items():
        session.merge(OwnerName(owner_id=owner_id, name=name[:255], fetched_at=now))


def owner_names(session: Session, ids: Iterable[str] | None = None) -> dict[str, str]:
    """Stored names by owner id (only ``ids`` when given)."""
    query = select(OwnerName.owner_id, OwnerName.name)
    if ids is not None:
        query = query.where(OwnerName.owner_id.in_(list(ids)))
    return {str(i): str(n) for i, n in session.execute(query)}


def refresh_owner_names(
    sessions: Callable[[], AbstractContextManager[Session]], lookup: Lookup, now: datetime | None = None
) -> int:
    """Read the names of owners not named yet; returns how many were stored.

    Three steps so no transaction stays open across the API call: read the ids, call ``lookup``
    (the sales connector's ``owner_names``), store the names.
    """
    with sessions() as session:
        ids = missing_owner_ids(session)
    if not ids:
        return 0
    names = lookup(ids)
    if names:
        with sessions() as session:
            save_owner_names(session, names, now or utcnow())
    return len(names)
