"""Funnel analytics against a simulated transition history.

The simulator below keeps its own records; every expected figure is computed here from those
records, straight from the written definitions, and compared with what the report says.
"""

from __future__ import annotations

import csv
import io
import json
import math
import random
import re
import statistics
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from rich.console import Console
from sqlalchemy import insert

from sync.funnel import build_report, plan_backwards, update_funnel_gauges
from sync.funnel.figures import FunnelReport
from sync.funnel.plan import BENCHMARKS
from sync.funnel.report import render_table, report_to_csv, report_to_json
from sync.store.db import Store, upgrade
from sync.store.models import Person, Transition

PATH = ("lead", "mql", "sal", "sql", "opportunity", "won")
DETOURS = ("lost", "disqualified", "recycled")
SINCE = datetime(2026, 10, 1, tzinfo=UTC)
UNTIL = datetime(2026, 11, 1, tzinfo=UTC)
CAMPAIGNS = ("Webinar", "Search ads", "Expo 2026", None)
LOSS_REASONS = ("Price", "Timing", "Competitor", None)
DQ_REASONS = ("No budget", "Student", None)
BANDS = (50, 60, 70, 80, 90)
World = tuple[list["SimPerson"], Store, FunnelReport]


@dataclass
class Move:
    from_stage: str | None
    to_stage: str
    at: datetime
    reason: str | None = None
    amount: Decimal | None = None
    score: Decimal | None = None


@dataclass
class SimPerson:
    cid: str
    campaign: str | None
    owner: str
    region: str
    score_at_mql: Decimal | None = None
    moves: list[Move] = field(default_factory=list)
    merged: bool = False

    @property
    def stage(self) -> str | None:
        return self.moves[-1].to_stage if self.moves else "lead"


def simulate(n: int, seed: int = 7) -> list[SimPerson]:
    """A sales team working leads: each person walks the funnel with random waits and detours."""
    rng = random.Random(seed)
    people = []
    for i in range(n):
        p = SimPerson(
            f"p{i:05d}",
            rng.choice(CAMPAIGNS),
            rng.choice(("u1", "u2", "u3")),
            rng.choice(("kanto", "kansai")),
        )
        walk(p, rng)
        people.append(p)
    # People who never moved, and a merged-away record: they count in "current" only if live.
    people += [SimPerson(f"q{i}", "Webinar", "u1", "kanto") for i in range(3)]
    people.append(SimPerson("merged", "Webinar", "u1", "kanto", merged=True))
    return people


def walk(p: SimPerson, rng: random.Random) -> None:
    """One person's path through the funnel, appended to ``p.moves``."""
    at = datetime(2026, 9, 1, tzinfo=UTC) + timedelta(minutes=rng.randrange(0, 90 * 24 * 60))
    stage: str | None = None

    def move(to: str, hours: float, **extra: object) -> None:
        nonlocal at, stage
        at += timedelta(hours=hours, minutes=1)
        p.moves.append(Move(stage, to, at, **extra))  # type: ignore[arg-type]
        stage = to

    move("lead", 0)
    while True:
        roll = rng.random()
        if stage == "lead" and roll < 0.75:
            score = Decimal(rng.randrange(30, 100)) if rng.random() < 0.9 else None
            if p.score_at_mql is None and not any(m.to_stage == "mql" for m in p.moves):
                p.score_at_mql = score
            move(
                "mql",
                rng.uniform(1, 200),
                score=score if score is not None else Decimal(rng.randrange(40, 99)),
            )
        elif stage == "mql":
            if roll < 0.1:
                move("disqualified", rng.uniform(1, 100), reason=rng.choice(DQ_REASONS))
            elif roll < 0.2:
                move("recycled", rng.uniform(1, 100))
            elif roll < 0.3:
                move("sql", rng.uniform(1, 100))  # skips SAL
            else:
                move("sal", rng.uniform(0.2, 60))
        elif stage == "recycled" and roll < 0.5:
            move("mql", rng.uniform(10, 400), score=Decimal(rng.randrange(30, 100)))
        elif stage == "sal" and roll < 0.8:
            if roll < 0.6:
                move("sql", rng.uniform(1, 150))
            else:
                move("disqualified", rng.uniform(1, 50), reason=rng.choice(DQ_REASONS))
        elif stage == "sql" and roll < 0.9:
            if roll < 0.1:
                move("won", rng.uniform(24, 400), amount=Decimal(rng.randrange(1, 30) * 100_000))
            elif roll < 0.3:
                move("lost", rng.uniform(24, 400), reason=rng.choice(LOSS_REASONS))
            else:
                move("opportunity", rng.uniform(5, 200))
        elif stage == "opportunity" and roll < 0.85:
            if roll < 0.4:
                move("won", rng.uniform(24, 800), amount=Decimal(rng.randrange(1, 30) * 100_000))
            else:
                move("lost", rng.uniform(24, 800), reason=rng.choice(LOSS_REASONS))
        else:
            break


def load(store: Store, people: list[SimPerson]) -> None:
    now = datetime(2026, 12, 31, tzinfo=UTC)
    person_rows, move_rows = [], []
    for p in people:
        person_rows.append(
            dict(
                common_id=p.cid,
                stage=p.stage,
                campaign=p.campaign,
                source="web",
                owner=p.owner,
                attributes={"region": p.region},
                score_at_mql=p.score_at_mql,
                merged_into="p00000" if p.merged else None,
                created_at=now,
                updated_at=now,
            )
        )
        for m in p.moves:
            move_rows.append(
                dict(
                    common_id=p.cid,
                    from_stage=m.from_stage,
                    to_stage=m.to_stage,
                    occurred_at=m.at,
                    recorded_at=now,
                    campaign=p.campaign,
                    reason=m.reason,
                    amount=m.amount,
                    score=m.score,
                )
            )
    with store.session() as session:
        session.execute(insert(Person), person_rows)
        session.execute(insert(Transition), move_rows)


# ---- expected figures, straight from the definitions, over the simulator's records ----


def in_period(at: datetime) -> bool:
    return SINCE <= at < UNTIL


def reaches(stage: str, target: str) -> bool:
    return stage == target or (stage in PATH and target in PATH and PATH.index(stage) >= PATH.index(target))


def start(p: SimPerson, stage: str) -> datetime | None:
    return min((m.at for m in p.moves if m.to_stage == stage and in_period(m.at)), default=None)


def reached_after(p: SimPerson, target: str, t: datetime) -> Move | None:
    return min(
        (m for m in p.moves if m.at >= t and reaches(m.to_stage, target)), key=lambda m: m.at, default=None
    )


def label(value: str | None) -> str:
    return value if value else "(none)"


def expected_conversion(
    people: list[SimPerson], a: str, b: str, within: float | None = None
) -> tuple[int, int]:
    cohort = converted = 0
    for p in people:
        t = start(p, a)
        if t is None:
            continue
        cohort += 1
        hit = reached_after(p, b, t)
        if hit and (within is None or hit.at - t <= timedelta(days=within)):
            converted += 1
    return cohort, converted


def expected_hours(people: list[SimPerson], a: str, b: str) -> list[float]:
    out = []
    for p in people:
        t = start(p, a)
        hit = reached_after(p, b, t) if t else None
        if t and hit:
            out.append((hit.at - t).total_seconds() / 3600)
    return sorted(out)


def expected_band(score: Decimal) -> str:
    if score < BANDS[0]:
        return f"<{BANDS[0]}"
    for low in reversed(BANDS):
        if score >= low:
            return f"{low}+" if low == BANDS[-1] else f"{low}-{low + 9}"
    raise AssertionError


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[SimPerson], Store, FunnelReport]:
    path: Path = tmp_path_factory.mktemp("funnel") / "store.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    store = Store(url)
    people = simulate(600)
    load(store, people)
    report = build_report(
        store,
        SINCE,
        UNTIL,
        conversions=(("mql", "sal"), ("mql", "sql"), ("sql", "won"), ("mql", "won"), ("mql", "sal", 1)),
    )
    return people, store, report


def test_simulation_is_rich_enough(world: World) -> None:
    people, _, _ = world
    kinds = Counter(m.to_stage for p in people for m in p.moves if in_period(m.at))
    assert all(kinds[s] >= 5 for s in PATH + DETOURS), kinds


def test_stage_counts(world: World) -> None:
    people, _, report = world
    assert [s.stage for s in report.stages] == list(PATH + DETOURS)
    for s in report.stages:
        moves = [m for p in people for m in p.moves if in_period(m.at)]
        assert s.reached == len(
            {p.cid for p in people for m in p.moves if m.to_stage == s.stage and in_period(m.at)}
        )
        assert s.inflow == sum(1 for m in moves if m.to_stage == s.stage)
        assert s.outflow == sum(1 for m in moves if m.from_stage == s.stage)
        assert s.current == sum(1 for p in people if p.stage == s.stage and not p.merged)


def test_cohort_conversion(world: World) -> None:
    people, _, report = world
    for c in report.conversion:
        cohort, converted = expected_conversion(people, c.from_stage, c.to_stage, c.within_days)
        assert (c.cohort, c.converted) == (cohort, converted), c
        assert c.rate == pytest.approx(converted / cohort)
    assert report.conversion[-1].within_days == 1
    assert report.conversion[-1].converted < report.conversion[0].converted  # the window really binds


def test_velocity(world: World) -> None:
    people, _, report = world
    assert [(v.from_stage, v.to_stage) for v in report.velocity] == [
        ("mql", "sal"),
        ("sal", "sql"),
        ("mql", "sql"),
        ("sql", "won"),
        ("mql", "won"),
    ]
    for v in report.velocity:
        hours = expected_hours(people, v.from_stage, v.to_stage)
        assert v.count == len(hours)
        assert v.median_hours == pytest.approx(statistics.median(hours))
        assert v.p90_hours == pytest.approx(hours[math.ceil(0.9 * len(hours)) - 1])


def test_campaign_contribution(world: World) -> None:
    people, _, report = world
    expected: dict[str, list[object]] = {}
    for p in people:
        t = start(p, "mql")
        if t is None:
            continue
        row = expected.setdefault(label(p.campaign), [0, 0, 0, Decimal(0)])
        row[0] += 1  # type: ignore[operator]
        row[1] += 1 if reached_after(p, "sql", t) else 0  # type: ignore[operator]
        won = min((m for m in p.moves if m.at >= t and m.to_stage == "won"), key=lambda m: m.at, default=None)
        if won:
            row[2] += 1  # type: ignore[operator]
            row[3] += won.amount  # type: ignore[operator]
    total_wins = sum(r[2] for r in expected.values())  # type: ignore[misc]
    got = {r.campaign: r for r in report.by_campaign}
    assert set(got) == set(expected)
    for name, (mqls, sqls, wins, amount) in expected.items():
        r = got[name]
        assert (r.mqls, r.sqls, r.wins, r.won_amount) == (mqls, sqls, wins, amount)
        assert r.mql_to_sql == pytest.approx(sqls / mqls)  # type: ignore[operator]
        assert r.share_of_wins == pytest.approx(wins / total_wins)  # type: ignore[operator]
    assert [r.wins for r in report.by_campaign] == sorted((r.wins for r in report.by_campaign), reverse=True)


@pytest.mark.parametrize(
    "stage, attr", [("lost", "loss_reasons"), ("disqualified", "disqualification_reasons")]
)
def test_reasons(world: World, stage: str, attr: str) -> None:
    people, _, report = world
    overall: Counter[str] = Counter()
    per: dict[str, Counter[str]] = {}
    for p in people:
        for m in p.moves:
            if m.to_stage == stage and in_period(m.at):
                reason = m.reason or "(not recorded)"
                overall[reason] += 1
                per.setdefault(label(p.campaign), Counter())[reason] += 1
    breakdown = getattr(report, attr)
    assert {r.reason: r.count for r in breakdown.overall} == dict(overall)
    assert [r.count for r in breakdown.overall] == sorted(overall.values(), reverse=True)
    assert {k: {r.reason: r.count for r in v} for k, v in breakdown.by_campaign.items()} == {
        k: dict(v) for k, v in per.items()
    }


def test_score_validation(world: World) -> None:
    people, _, report = world
    bands: dict[str, list[int]] = {}
    for p in people:
        t = start(p, "mql")
        if t is None:
            continue
        score = p.score_at_mql
        if score is None:
            score = next(m.score for m in p.moves if m.at == t)
        assert score is not None
        band = bands.setdefault(expected_band(score), [0, 0, 0])
        band[0] += 1
        band[1] += any(m.at >= t and m.to_stage == "won" for m in p.moves)
        band[2] += any(m.at >= t and m.to_stage == "lost" for m in p.moves)
    assert {b.label: [b.mqls, b.wins, b.lost] for b in report.score_validation} == bands
    assert report.score_validation[0].label.startswith("<")
    assert report.score_validation[-1].label == "90+"


@pytest.mark.parametrize("by, key", [("owner", lambda p: p.owner), ("region", lambda p: p.region)])
def test_grouping(world: World, by: str, key: object) -> None:
    people, store, _ = world
    report = build_report(store, SINCE, UNTIL, by=by)
    assert report.group_by == by
    groups = {g.value: g for g in report.groups}
    values = {key(p) for p in people}  # type: ignore[operator]
    assert set(groups) == values
    for value in values:
        members = [p for p in people if key(p) == value]  # type: ignore[operator]
        g = groups[value]
        for s in g.stages:
            reached = {p.cid for p in members for m in p.moves if m.to_stage == s.stage and in_period(m.at)}
            assert s.reached == len(reached)
            assert s.current == sum(1 for p in members if p.stage == s.stage and not p.merged)
        for c in g.conversion:
            assert (c.cohort, c.converted) == expected_conversion(members, c.from_stage, c.to_stage)


def test_outside_period_is_ignored(world: World) -> None:
    people, store, _ = world
    empty = build_report(store, datetime(2030, 1, 1, tzinfo=UTC), datetime(2030, 2, 1, tzinfo=UTC))
    assert all(s.reached == 0 and s.inflow == 0 for s in empty.stages)
    assert all(c.cohort == 0 and c.rate is None for c in empty.conversion)
    assert empty.by_campaign == [] and empty.loss_reasons.overall == []
    assert sum(s.current for s in empty.stages) == sum(1 for p in people if not p.merged)


def test_json_and_csv(world: World) -> None:
    people, _, report = world
    data = json.loads(json.dumps(report_to_json(report)))
    required = {
        "period",
        "stages",
        "conversion",
        "velocity",
        "by_campaign",
        "loss_reasons",
        "disqualification_reasons",
        "score_validation",
        "sla",
    }
    assert required <= set(data)
    assert data["period"] == {"since": SINCE.isoformat(), "until": UNTIL.isoformat()}
    mql_cohort, mql_sql = expected_conversion(people, "mql", "sql")
    conv = next(c for c in data["conversion"] if (c["from_stage"], c["to_stage"]) == ("mql", "sql"))
    assert (conv["cohort"], conv["converted"]) == (mql_cohort, mql_sql)
    assert conv["rate"] == pytest.approx(mql_sql / mql_cohort)

    rows = list(csv.DictReader(io.StringIO(report_to_csv(report))))
    cell = {(r["section"], r["group"], r["item"], r["metric"]): r["value"] for r in rows}
    won_reached = len({p.cid for p in people for m in p.moves if m.to_stage == "won" and in_period(m.at)})
    assert int(cell[("stages", "", "won", "reached")]) == won_reached
    assert float(cell[("conversion", "", "mql->sql", "rate")]) == pytest.approx(mql_sql / mql_cohort)
    top = report.by_campaign[0]
    assert int(cell[("by_campaign", top.campaign, "", "wins")]) == top.wins


def test_table_shows_figures(world: World) -> None:
    people, _, report = world
    console = Console(record=True, width=160)
    render_table(report, console)
    text = console.export_text()
    cohort, converted = expected_conversion(people, "mql", "sql")
    row = rf"MQL → SQL\s+│\s+{cohort:,}\s+│\s+{converted:,}\s+│\s+{round(converted / cohort * 100)}%\s+│"
    assert re.search(row, text), text
    assert "Why deals were lost" in text and "Score at MQL time vs outcome" in text


def test_gauges_follow_the_report(world: World) -> None:
    people, _, report = world
    assert update_funnel_gauges(report) is True
    mql = len({p.cid for p in people for m in p.moves if m.to_stage == "mql" and in_period(m.at)})
    assert REGISTRY.get_sample_value("closedloop_funnel_stage_reached", {"stage": "mql"}) == mql
    cohort, converted = expected_conversion(people, "sql", "won")
    ratio = REGISTRY.get_sample_value(
        "closedloop_funnel_conversion_ratio", {"from_stage": "sql", "to_stage": "won"}
    )
    assert ratio == pytest.approx(converted / cohort)


# ---- KPI planning ----


def test_plan_reproduces_the_domain_worked_example() -> None:
    rates = {("opportunity", "won"): 0.30, ("mql", "opportunity"): 0.20, ("lead", "mql"): 0.50}
    plan = plan_backwards(
        10_000_000, 1_000_000, rates, path=("lead", "mql", "opportunity", "won"), visit_to_lead=0.02
    )
    assert [(s.stage, s.count) for s in plan.steps] == [
        ("visit", 17_000),
        ("lead", 340),
        ("mql", 170),
        ("opportunity", 34),
        ("won", 10),
    ]
    assert all(s.rate_source == "given" for s in plan.steps[:-1])


def test_plan_rounds_up_every_step() -> None:
    plan = plan_backwards(
        1_000_001, 1_000_000, {("sql", "won"): 0.3, ("mql", "sql"): 0.25, ("lead", "mql"): 0.4}
    )
    # 2 wins; 2 / 0.3 = 6.67 → 7 SQLs; 7 / 0.25 = 28 MQLs; 28 / 0.4 = 70 leads
    assert [s.count for s in plan.steps] == [70, 28, 7, 2]


def test_plan_uses_measured_rates_then_labelled_benchmarks(world: World) -> None:
    people, _, report = world
    plan = plan_backwards(50_000_000, 2_000_000, report)
    sql_cohort, sql_won = expected_conversion(people, "sql", "won")
    mql_cohort, mql_sql = expected_conversion(people, "mql", "sql")
    wins = 25
    sqls = math.ceil(wins / (sql_won / sql_cohort) - 1e-9)
    mqls = math.ceil(sqls / (mql_sql / mql_cohort) - 1e-9)
    assert plan.count("won") == wins and plan.count("sql") == sqls and plan.count("mql") == mqls
    steps = {s.stage: s for s in plan.steps}
    assert steps["sql"].rate_source == steps["mql"].rate_source == "measured"
    assert steps["lead"].rate_to_next == BENCHMARKS[("lead", "mql")][0]
    assert steps["lead"].rate_source is not None and steps["lead"].rate_source.startswith("benchmark")
    assert plan.count("lead") == math.ceil(mqls / 0.5)


def test_plan_rejects_unknown_rates() -> None:
    with pytest.raises(ValueError, match="no rate for sal→sql"):
        plan_backwards(100, 10, {}, path=("sal", "sql"))
    with pytest.raises(ValueError, match="must be in"):
        plan_backwards(100, 10, {("sql", "won"): 0}, path=("sql", "won"))


def test_plan_arithmetic_is_exact() -> None:
    # 57 / 0.57 is 100.00000000000001 in binary floating point; the plan must still say 100.
    plan = plan_backwards(57, 1, {("sql", "won"): 0.57}, path=("sql", "won"))
    assert plan.count("sql") == 100
