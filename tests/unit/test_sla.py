"""SLA timers on a real SQLite store: start, met, breached (on time and detected late), detours, feedback."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select
from sqlalchemy.orm import Session
from structlog.testing import capture_logs

from sync.funnel.business_time import Calendar
from sync.funnel.sla import SlaRule, detect_breaches, on_transition
from sync.funnel.sla_stats import summarise_slas
from sync.store.db import Store, upgrade
from sync.store.models import SlaTimer

JP = Calendar.of("JP")
FIRST_TOUCH = SlaRule("first_touch", "mql", "sal", hours=24, on_breach=("log", "sfa_task", "ma_property"))
KICKOFF = SlaRule("kickoff", "won", "onboarding", business_days=3, on_breach=("ma_property",))
RULES = [FIRST_TOUCH, KICKOFF]
T0 = datetime(2026, 11, 2, 10, tzinfo=UTC)  # a Monday


class Sink:
    """Records feedback calls; can be told to fail."""

    def __init__(self, fail: set[str] | None = None) -> None:
        self.tasks: list[tuple[str, str, datetime]] = []
        self.properties: list[tuple[str, str, datetime]] = []
        self.fail = fail or set()

    def create_sfa_task(self, common_id: str, sla_id: str, due_at: datetime) -> None:
        if "sfa_task" in self.fail:
            raise ConnectionError("Salesforce down (token=abc123)")
        self.tasks.append((common_id, sla_id, due_at))

    def set_ma_property(self, common_id: str, sla_id: str, breached_at: datetime) -> None:
        if "ma_property" in self.fail:
            raise ConnectionError("HubSpot down")
        self.properties.append((common_id, sla_id, breached_at))


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    url = f"sqlite:///{tmp_path / 'sla.db'}"
    upgrade(url)
    store = Store(url)
    with store.session() as s:
        yield s
    store.dispose()


def move(session: Session, cid: str, stage: str, at: datetime) -> list[SlaTimer]:
    return on_transition(session, cid, stage, at, RULES, JP)


def timers(session: Session, cid: str) -> list[SlaTimer]:
    return list(session.scalars(select(SlaTimer).where(SlaTimer.common_id == cid).order_by(SlaTimer.id)))


def test_hours_sla_met_in_time(session: Session) -> None:
    started = move(session, "a", "mql", T0)
    assert [(t.sla_id, t.due_at) for t in started] == [("first_touch", T0 + timedelta(hours=24))]
    move(session, "a", "sal", T0 + timedelta(hours=5))
    [timer] = timers(session, "a")
    assert (timer.status, timer.met_at) == ("met", T0 + timedelta(hours=5))
    assert detect_breaches(session, T0 + timedelta(days=5), RULES, Sink()) == []


def test_a_later_success_stage_also_meets_the_sla(session: Session) -> None:
    move(session, "a", "mql", T0)
    move(session, "a", "sql", T0 + timedelta(hours=3))  # skipped SAL
    assert timers(session, "a")[0].status == "met"


def test_business_days_across_weekend_and_japanese_holiday(session: Session) -> None:
    # Won Fri 20 Nov 2026 10:00; Mon 23 Nov is a holiday → due Thu 26 Nov 10:00
    [timer] = move(session, "b", "won", datetime(2026, 11, 20, 10, tzinfo=UTC))
    assert timer.due_at == datetime(2026, 11, 26, 10, tzinfo=UTC)
    # Won on Saturday: clock starts Monday 09:00 → due Thursday 09:00
    [timer] = move(session, "c", "won", datetime(2026, 11, 7, 15, tzinfo=UTC))
    assert timer.due_at == datetime(2026, 11, 12, 9, tzinfo=UTC)


def test_breach_applies_feedback_once(session: Session) -> None:
    move(session, "a", "mql", T0)
    sink = Sink()
    before = REGISTRY.get_sample_value("closedloop_sla_breaches_total", {"sla": "first_touch"}) or 0
    now = T0 + timedelta(hours=30)
    with capture_logs() as logs:
        [breach] = detect_breaches(session, now, RULES, sink)
        assert detect_breaches(session, now + timedelta(hours=1), RULES, sink) == []
    due = T0 + timedelta(hours=24)
    assert (breach.sla_id, breach.common_id, breach.breached_at, breach.detected_at) == (
        "first_touch",
        "a",
        due,
        now,
    )
    assert breach.actions == ("log", "sfa_task", "ma_property")
    assert sink.tasks == [("a", "first_touch", due)] and sink.properties == [("a", "first_touch", due)]
    assert [entry["event"] for entry in logs] == ["sla_breached"]
    [timer] = timers(session, "a")
    assert (timer.status, timer.breached_at, timer.detected_at) == ("breached", due, now)
    assert set(timer.feedback) == {"log", "sfa_task", "ma_property"}
    after = REGISTRY.get_sample_value("closedloop_sla_breaches_total", {"sla": "first_touch"})
    assert after == before + 1


def test_breach_detected_late_keeps_its_true_time(session: Session) -> None:
    move(session, "a", "mql", T0)
    late = T0 + timedelta(days=9)
    [breach] = detect_breaches(session, late, RULES, Sink())
    assert breach.breached_at == T0 + timedelta(hours=24)
    assert breach.detected_at == late


def test_target_reached_after_the_deadline_is_a_breach(session: Session) -> None:
    move(session, "a", "mql", T0)
    move(session, "a", "sal", T0 + timedelta(hours=30))  # nobody ran detection in between
    sink = Sink()
    [breach] = detect_breaches(session, T0 + timedelta(hours=31), RULES, sink)
    assert breach.breached_at == T0 + timedelta(hours=24)
    [timer] = timers(session, "a")
    assert (timer.status, timer.met_at) == ("breached", T0 + timedelta(hours=30))
    assert len(sink.tasks) == 1


def test_reaching_the_target_after_a_detected_breach_records_when(session: Session) -> None:
    move(session, "a", "mql", T0)
    detect_breaches(session, T0 + timedelta(hours=25), RULES, Sink())
    move(session, "a", "sal", T0 + timedelta(hours=40))
    [timer] = timers(session, "a")
    assert (timer.status, timer.met_at) == ("breached", T0 + timedelta(hours=40))


def test_leaving_through_a_detour_cancels_the_timer(session: Session) -> None:
    move(session, "a", "mql", T0)
    move(session, "a", "disqualified", T0 + timedelta(hours=2))
    assert timers(session, "a")[0].status == "cancelled"
    assert detect_breaches(session, T0 + timedelta(days=3), RULES, Sink()) == []


def test_leaving_after_the_deadline_was_still_a_breach(session: Session) -> None:
    move(session, "a", "mql", T0)
    move(session, "a", "recycled", T0 + timedelta(hours=50))
    [breach] = detect_breaches(session, T0 + timedelta(hours=51), RULES, Sink())
    assert breach.breached_at == T0 + timedelta(hours=24)


def test_recycled_lead_gets_a_new_clock(session: Session) -> None:
    move(session, "a", "mql", T0)
    move(session, "a", "recycled", T0 + timedelta(hours=1))
    move(session, "a", "mql", T0 + timedelta(days=10))
    assert [t.status for t in timers(session, "a")] == ["cancelled", "open"]


def test_same_transition_twice_starts_one_timer(session: Session) -> None:
    assert len(move(session, "a", "mql", T0)) == 1
    assert move(session, "a", "mql", T0) == []
    assert len(timers(session, "a")) == 1


def test_failed_feedback_is_retried_without_repeating_the_rest(session: Session) -> None:
    move(session, "a", "mql", T0)
    sink = Sink(fail={"sfa_task"})
    with capture_logs() as logs:
        [breach] = detect_breaches(session, T0 + timedelta(hours=25), RULES, sink)
    assert breach.actions == ("log", "ma_property")
    assert "abc123" not in repr(logs)  # the exception text (which may hold secrets) is not logged
    sink.fail.clear()
    [retry] = detect_breaches(session, T0 + timedelta(hours=26), RULES, sink)
    assert retry.actions == ("sfa_task",)
    assert retry.detected_at == T0 + timedelta(hours=25)
    assert len(sink.tasks) == 1 and len(sink.properties) == 1
    assert detect_breaches(session, T0 + timedelta(hours=27), RULES, sink) == []


def test_compliance_summary(session: Session) -> None:
    move(session, "met", "mql", T0)
    move(session, "met", "sal", T0 + timedelta(hours=1))
    move(session, "met2", "mql", T0)
    move(session, "met2", "sal", T0 + timedelta(hours=23))
    move(session, "late", "mql", T0)
    move(session, "late", "sal", T0 + timedelta(hours=40))
    move(session, "waiting", "mql", T0)
    move(session, "gone", "mql", T0)
    move(session, "gone", "disqualified", T0 + timedelta(hours=1))
    move(session, "fresh", "mql", T0 + timedelta(hours=40))
    now = T0 + timedelta(hours=48)
    detect_breaches(session, now, RULES, Sink())
    [ft, kickoff] = summarise_slas(session, RULES, T0 - timedelta(days=1), T0 + timedelta(days=7), now)
    assert (ft.started, ft.met, ft.breached, ft.cancelled, ft.running) == (6, 2, 2, 1, 1)
    assert ft.open_breaches == 1  # "waiting": missed and still not contacted
    assert ft.compliance_rate == pytest.approx(2 / 4)
    assert (kickoff.started, kickoff.compliance_rate) == (0, None)


def test_rule_validation() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        SlaRule("x", "mql", "sal")
    with pytest.raises(ValueError, match="unknown on_breach"):
        SlaRule("x", "mql", "sal", hours=1, on_breach=("email",))
    assert KICKOFF.allowance == "3 business days" and FIRST_TOUCH.allowance == "24h"
