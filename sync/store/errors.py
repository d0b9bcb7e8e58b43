"""Recording sync errors: one open row per person, role and operation, bumped on each new failure."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from sync.store.models import SyncError
from sync.timeutil import utcnow


def record_error(
    session: Session,
    *,
    role: str,
    operation: str,
    category: str,
    message: str,
    common_id: str | None = None,
    code: str | None = None,
    object_type: str | None = None,
    record_id: str | None = None,
    connector: str = "",
) -> SyncError:
    """Add an open error, or count one more attempt on the person's open error of the same kind.

    The error stays until a later sync resolves it or someone dismisses it.
    """
    now = utcnow()
    existing = None
    if common_id is not None:
        existing = session.execute(
            select(SyncError).where(
                SyncError.common_id == common_id,
                SyncError.role == role,
                SyncError.operation == operation,
                SyncError.status == "open",
            )
        ).scalar_one_or_none()
    if existing is not None:
        existing.attempts += 1
        existing.last_attempt_at = now
        existing.message = message
        existing.code = code
        existing.category = category
        return existing
    error = SyncError(
        common_id=common_id,
        role=role,
        connector=connector,
        object_type=object_type,
        record_id=record_id,
        operation=operation,
        category=category,
        code=code,
        message=message,
        payload={},
        status="open",
        attempts=1,
        created_at=now,
        last_attempt_at=now,
    )
    session.add(error)
    return error
