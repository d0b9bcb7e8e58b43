"""SQLAlchemy models: identity map, field state, transitions, cursors, inbox, errors, SLA timers.

The schema is created and upgraded only through Alembic (``closedloop db upgrade``).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# SQLite keeps no time zone; store UTC everywhere and hand back aware datetimes.
from sync.timeutil import as_utc


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        return as_utc(value) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return as_utc(value) if value is not None else None


BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    """Declarative base of every Closedloop table."""

    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON}


class Person(Base):
    """One human across both systems, keyed by the common lead ID."""

    __tablename__ = "people"

    common_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    stage: Mapped[str | None] = mapped_column(String(64))
    stage_entered_at: Mapped[datetime | None]
    email: Mapped[str | None] = mapped_column(String(320), index=True)
    campaign: Mapped[str | None] = mapped_column(String(255))
    source: Mapped[str | None] = mapped_column(String(255))
    owner: Mapped[str | None] = mapped_column(String(64))
    score_at_mql: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    owners: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # {team id: owner id}
    nps: Mapped[Decimal | None] = mapped_column(Numeric(4, 1))
    merged_into: Mapped[str | None] = mapped_column(String(40), index=True)
    deleted_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class RecordLink(Base):
    """A record in the marketing (ma) or sales (sfa) system that belongs to a person."""

    __tablename__ = "record_links"
    __table_args__ = (
        UniqueConstraint("role", "object_type", "record_id", name="uq_record_links_record"),
        Index("ix_record_links_common", "common_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    common_id: Mapped[str] = mapped_column(String(40))
    role: Mapped[str] = mapped_column(String(16))  # ma | sfa
    connector: Mapped[str] = mapped_column(String(32), default="")  # the connector that holds it
    object_type: Mapped[str] = mapped_column(String(40))  # the connector's object name
    record_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]


class MatchKey(Base):
    """A normalised match key (e.g. email) pointing at a person."""

    __tablename__ = "match_keys"
    __table_args__ = (UniqueConstraint("key_type", "key_value", name="uq_match_keys_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    key_type: Mapped[str] = mapped_column(String(32))
    key_value: Mapped[str] = mapped_column(String(320))
    common_id: Mapped[str] = mapped_column(String(40), index=True)


class FieldState(Base):
    """What Closedloop last wrote to (or saw in) one field of one person in one role's system."""

    __tablename__ = "field_state"

    common_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    role: Mapped[str] = mapped_column(String(16), primary_key=True)
    field: Mapped[str] = mapped_column(String(128), primary_key=True)
    value_hash: Mapped[str] = mapped_column(String(32))
    written_by_us: Mapped[bool] = mapped_column(default=False)
    updated_at: Mapped[datetime]


class Transition(Base):
    """An append-only stage change; the same change recorded twice is stored once."""

    __tablename__ = "transitions"
    __table_args__ = (
        UniqueConstraint("common_id", "to_stage", "occurred_at", name="uq_transitions_change"),
        Index("ix_transitions_stage_time", "to_stage", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    common_id: Mapped[str] = mapped_column(String(40), index=True)
    from_stage: Mapped[str | None] = mapped_column(String(64))
    to_stage: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[datetime]
    recorded_at: Mapped[datetime]
    source_role: Mapped[str | None] = mapped_column(String(16))  # ma | sfa
    source_connector: Mapped[str | None] = mapped_column(String(32))
    source_record: Mapped[str | None] = mapped_column(String(64))
    cause: Mapped[str | None] = mapped_column(String(32))  # poll | webhook | backfill | replay
    campaign: Mapped[str | None] = mapped_column(String(255))
    source: Mapped[str | None] = mapped_column(String(255))
    owner: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(String(255))
    amount: Mapped[Decimal | None] = mapped_column(Numeric(18, 2))
    score: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))


class Cursor(Base):
    """A connector's cursor state per stream (e.g. ``ma:contacts``, ``sfa:Lead``), opaque to the core."""

    __tablename__ = "cursors"

    stream: Mapped[str] = mapped_column(String(64), primary_key=True)
    watermark: Mapped[datetime | None]
    state: Mapped[dict[str, Any]] = mapped_column(default=dict)
    last_success_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class InboxEvent(Base):
    """A webhook event (HubSpot) or outbound-message notification (Salesforce), deduplicated."""

    __tablename__ = "inbox"
    __table_args__ = (
        UniqueConstraint("source", "event_key", name="uq_inbox_event"),
        Index("ix_inbox_status", "status", "received_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(16))  # the receiving connector
    role: Mapped[str] = mapped_column(String(16), default="")  # ma | sfa
    event_key: Mapped[str] = mapped_column(String(128))
    object_type: Mapped[str] = mapped_column(String(40))
    record_id: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[datetime | None]
    received_at: Mapped[datetime]
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | done | error
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    processed_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)


class SyncError(Base):
    """A recorded failure: kept until replayed successfully or dismissed."""

    __tablename__ = "sync_errors"
    __table_args__ = (Index("ix_sync_errors_status", "status", "category"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    common_id: Mapped[str | None] = mapped_column(String(40), index=True)
    role: Mapped[str] = mapped_column(String(16))  # ma | sfa
    connector: Mapped[str] = mapped_column(String(32), default="")
    object_type: Mapped[str | None] = mapped_column(String(40))
    record_id: Mapped[str | None] = mapped_column(String(64))
    operation: Mapped[str] = mapped_column(String(32))
    category: Mapped[str] = mapped_column(String(32))  # validation | missing_field | auth | bad_event | ...
    code: Mapped[str | None] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | resolved | dismissed
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime]
    last_attempt_at: Mapped[datetime]


class SlaTimer(Base):
    """One SLA clock for one person: started on entering the from-stage, met on reaching the to-stage."""

    __tablename__ = "sla_timers"
    __table_args__ = (UniqueConstraint("sla_id", "common_id", "started_at", name="uq_sla_timer"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    sla_id: Mapped[str] = mapped_column(String(64))
    common_id: Mapped[str] = mapped_column(String(40), index=True)
    started_at: Mapped[datetime]
    due_at: Mapped[datetime]
    met_at: Mapped[datetime | None]
    breached_at: Mapped[datetime | None]
    detected_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | met | breached | cancelled
    feedback: Mapped[dict[str, Any]] = mapped_column(default=dict)


class OwnerName(Base):
    """A sales-side owner's display name, read once (reports show names instead of ids)."""

    __tablename__ = "owner_names"

    owner_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    fetched_at: Mapped[datetime]
