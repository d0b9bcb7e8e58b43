"""Breach notifications: one JSON POST per breached timer to an incoming webhook (Slack or Microsoft Teams).

Sent once per breach (recorded in the timer's ``feedback``), after the breach was detected and
outside any database transaction. A failure is recorded and retried on later detection runs with
exponential backoff. The URL is a secret: it is never logged, stored or put in an error message.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from sync.funnel.log import logger
from sync.funnel.sla import COMPLETE_AT, MISSING, SlaRule
from sync.store.models import SlaTimer
from sync.timeutil import as_utc

SENT = "notify"  # feedback key: when the notification was accepted
ATTEMPTS = "notify_attempts"
RETRY_AT = "notify_retry_at"
ERROR = "notify_error"
FIRST_RETRY = timedelta(minutes=1)
LAST_RETRY = timedelta(hours=1)


class NotifyFailed(Exception):
    """A notification was not accepted; ``kind`` says why without naming the URL."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


class Post(Protocol):
    """Posts a JSON payload to a URL within ``timeout`` seconds; raises :class:`NotifyFailed`."""

    def __call__(self, url: str, payload: dict[str, Any], timeout: float) -> None: ...


def post_json(url: str, payload: dict[str, Any], timeout: float) -> None:
    """POST ``payload`` as JSON; any non-2xx answer, timeout or network error raises :class:`NotifyFailed`.

    The standard library client is used on purpose: it logs nothing, so the URL cannot leak
    through a debug log of an HTTP library.
    """
    if not url.startswith(("https://", "http://")):
        raise NotifyFailed("not an http(s) URL")
    try:
        request = urllib.request.Request(
            url,
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - scheme checked above
            response.read(4096)
    except urllib.error.HTTPError as exc:
        raise NotifyFailed(f"HTTP {exc.code}") from None
    except TimeoutError:
        raise NotifyFailed("timeout") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        kind = "timeout" if isinstance(reason, TimeoutError) else f"network error ({type(reason).__name__})"
        raise NotifyFailed(kind) from None
    except (http.client.InvalidURL, ValueError):  # a malformed host or port; the message quotes the URL
        raise NotifyFailed("invalid URL") from None
    except (OSError, http.client.HTTPException) as exc:
        raise NotifyFailed(f"network error ({type(exc).__name__})") from None


def backoff(attempts: int) -> timedelta:
    """Wait after the ``attempts``-th try: 1, 2, 4, ... minutes, at most an hour."""
    return min(FIRST_RETRY * 2 ** max(attempts - 1, 0), LAST_RETRY)


def message(rule: SlaRule, timer: SlaTimer) -> dict[str, Any]:
    """The payload: ``{"text": ...}`` is what both Slack and Teams incoming webhooks accept."""
    due = as_utc(timer.due_at)
    missing = (timer.feedback or {}).get(MISSING)
    if rule.kind == COMPLETE_AT:
        return {
            "text": (
                f"SLA breached: {rule.id} (fields filled on entering {rule.from_stage}) for person "
                f"{timer.common_id} at {due:%Y-%m-%d %H:%M} UTC: missing {', '.join(missing or ())}."
            )
        }
    return {
        "text": (
            f"SLA breached: {rule.id} ({rule.from_stage} → {rule.to_stage} within {rule.allowance}) "
            f"for person {timer.common_id}: due {due:%Y-%m-%d %H:%M} UTC, not met."
        )
    }


@dataclass
class NotifyResult:
    """What one delivery run did, by timer id."""

    sent: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    deferred: list[int] = field(default_factory=list)  # left for a later run (its receiver failed just now)


Sessions = Callable[[], AbstractContextManager[Session]]


def deliver(
    sessions: Sessions,
    rules: Sequence[SlaRule],
    now: datetime,
    url_for: Callable[[str], str | None],
    timeout: float,
    post: Post = post_json,
    retry_window: timedelta = timedelta(days=7),
    limit: int = 100,
) -> NotifyResult:
    """Send the notifications due for breached timers of SLAs with ``notify``.

    Each is claimed in its own short transaction (which also schedules its retry), posted with no
    transaction open, then recorded. After a receiver fails, its other notifications wait for the
    next run, so a dead receiver costs one timeout per run, whatever the number of breaches.
    """
    now = as_utc(now)
    by_id = {rule.id: rule for rule in rules if rule.notify}
    result = NotifyResult()
    if not by_id:
        return result
    failing: set[str] = set()
    for timer_id, sla_id in _due(sessions, by_id, now, retry_window, limit):
        rule = by_id[sla_id]
        if rule.notify in failing:
            result.deferred.append(timer_id)
            continue
        claim = _claim(sessions, timer_id, rule, now)
        if claim is None:
            continue
        payload, common_id = claim
        try:
            url = url_for(rule.notify or "")
            if not url:
                raise NotifyFailed(f"no webhook URL: {rule.notify} is not set")
            post(url, payload, timeout)
        except NotifyFailed as exc:
            failing.add(rule.notify or "")
            _record(sessions, timer_id, now, error=exc.kind)
            logger().error("sla_notify_failed", sla_id=rule.id, common_id=common_id, error=exc.kind)
            result.failed.append(timer_id)
            continue
        _record(sessions, timer_id, now, error=None)
        logger().info("sla_notified", sla_id=rule.id, common_id=common_id)
        result.sent.append(timer_id)
    return result


def _needs(timer: SlaTimer, now: datetime) -> bool:
    feedback = timer.feedback or {}
    if SENT in feedback:
        return False
    retry_at = feedback.get(RETRY_AT)
    return retry_at is None or datetime.fromisoformat(retry_at) <= now


def _due(
    sessions: Sessions, by_id: dict[str, SlaRule], now: datetime, retry_window: timedelta, limit: int
) -> list[tuple[int, str]]:
    query = (
        select(SlaTimer)
        .where(
            SlaTimer.status == "breached",
            SlaTimer.sla_id.in_(list(by_id)),
            SlaTimer.detected_at.is_not(None),
            SlaTimer.detected_at >= now - retry_window,
        )
        .order_by(SlaTimer.due_at, SlaTimer.id)
    )
    with sessions() as session:
        return [(t.id, t.sla_id) for t in session.scalars(query) if _needs(t, now)][:limit]


def _claim(
    sessions: Sessions, timer_id: int, rule: SlaRule, now: datetime
) -> tuple[dict[str, Any], str] | None:
    """Count the attempt and schedule its retry before posting: a concurrent run then skips it."""
    with sessions() as session:
        timer = session.get(SlaTimer, timer_id, with_for_update={"skip_locked": True})
        if timer is None or not _needs(timer, now):
            return None
        feedback = dict(timer.feedback or {})
        attempts = int(feedback.get(ATTEMPTS, 0)) + 1
        feedback[ATTEMPTS] = attempts
        feedback[RETRY_AT] = (now + backoff(attempts)).isoformat()
        timer.feedback = feedback  # a new dict, so SQLAlchemy sees the change
        return message(rule, timer), timer.common_id


def _record(sessions: Sessions, timer_id: int, now: datetime, error: str | None) -> None:
    with sessions() as session:
        timer = session.get(SlaTimer, timer_id)
        if timer is None:
            return
        feedback = dict(timer.feedback or {})
        if error is None:
            feedback[SENT] = now.isoformat()
            feedback.pop(RETRY_AT, None)
            feedback.pop(ERROR, None)
        else:
            feedback[ERROR] = error
        timer.feedback = feedback
