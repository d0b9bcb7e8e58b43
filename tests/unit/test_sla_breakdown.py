"""SLA breach analysis by owner, team, campaign and ISO week, checked against the store's own rows.

The expected figures are counted here from a plain SQL read of ``sla_timers`` and ``people``; the
history comes from ``funnel_history`` (the engine's stage rules and the real SLA timer code).
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from rich.console import Console
from sqlalchemy import text

from sync.funnel.figures import FunnelReport
from sync.funnel.filters import PeopleFilter
from sync.funnel.report.html import render_html
from sync.funnel.report.i18n import Locale
from sync.funnel.report.json_csv import report_to_csv, report_to_json
from sync.funnel.report.table import render_table
from sync.mapping import load_mapping
from sync.reporting import funnel_report
from sync.sla_hooks import sla_rules
from sync.store.db import Store, upgrade
from tests.unit.funnel_history import MAPPING, simulate

SINCE, UNTIL = datetime(2026, 9, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)
NOW = datetime(2026, 11, 25, tzinfo=UTC)
# first touch and the information sheet wait on inside sales' stages (sal, sql); kickoff on customer success'
TEAM = {"first_touch": "inside_sales", "info_sheet": "inside_sales", "kickoff": "customer_success"}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    url = f"sqlite:///{tmp_path_factory.mktemp('breakdown') / 'store.db'}"
    upgrade(url)
    store = Store(url)
    simulate(store, 400, seed=16)
    yield store
    store.dispose()


def expected(store: Store, owner: str | None = None) -> Counter[tuple[str, str, str, str]]:
    """(dimension, value, sla or *, met|breached) → timers, counted from the raw rows."""
    query = text(
        "SELECT t.sla_id, t.status, t.started_at, p.owner, p.owners, p.campaign "
        "FROM sla_timers t LEFT JOIN people p ON p.common_id = t.common_id "
        "WHERE t.status IN ('met', 'breached')"
    )
    counts: Counter[tuple[str, str, str, str]] = Counter()
    with store.engine.connect() as conn:
        for sla_id, status, started, person_owner, team_owners, campaign in conn.execute(query):
            started_at = datetime.fromisoformat(str(started)).replace(tzinfo=UTC)
            if not SINCE <= started_at < UNTIL or (owner is not None and person_owner != owner):
                continue
            owners = json.loads(team_owners) if isinstance(team_owners, str) else team_owners or {}
            values = {
                "owner": owners.get(TEAM[sla_id]) or person_owner or "(none)",
                "team": TEAM[sla_id],
                "campaign": campaign or "(none)",
                "week": started_at.strftime("%G-W%V"),
            }
            for dimension, value in values.items():
                counts[(dimension, value, sla_id, status)] += 1
                counts[(dimension, value, "*", status)] += 1
    return counts


def measured(report: FunnelReport) -> Counter[tuple[str, str, str, str]]:
    counts: Counter[tuple[str, str, str, str]] = Counter()
    for g in report.sla_groups:
        counts[(g.dimension, g.value, g.sla_id, "met")] += g.met
        counts[(g.dimension, g.value, g.sla_id, "breached")] += g.breached
    return +counts  # drop zeros


def report(store: Store, who: PeopleFilter | None = None) -> FunnelReport:
    mapping = load_mapping(MAPPING)
    return funnel_report(store, mapping, SINCE, UNTIL, now=NOW, **({"who": who} if who else {}))


def test_an_sla_belongs_to_the_mapping_team_owning_the_stage_it_waits_on() -> None:
    mapping = load_mapping(MAPPING)
    path = ["lead", "mql", "sal", "sql", "opportunity", "won", "kickoff", "customer", "expansion", "churned"]
    teams = [mapping.team_of(stage) for stage in path]
    assert teams == [
        *("marketing", "marketing", "inside_sales", "inside_sales", "field_sales", "field_sales"),
        *("customer_success", "customer_success", "customer_success", "customer_success"),
    ]
    assert {rule.id: rule.team for rule in sla_rules(mapping)} == TEAM


def test_breakdown_equals_the_counts_of_the_store_rows(store: Store) -> None:
    result = report(store)
    truth = expected(store)
    assert sum(n for (d, _, s, st), n in truth.items() if d == "week" and s == "*" and st == "breached") >= 20
    assert len({v for d, v, _, _ in truth if d == "week"}) >= 6  # a real trend, not one bucket
    assert measured(result) == truth
    for g in result.sla_groups:
        assert g.compliance_rate == (g.met / (g.met + g.breached) if g.met + g.breached else None)
    weeks = [g.value for g in result.sla_groups if g.dimension == "week" and g.sla_id == "*"]
    assert weeks == sorted(weeks)
    owners = [g.breached for g in result.sla_groups if g.dimension == "owner" and g.sla_id == "*"]
    assert owners == sorted(owners, reverse=True)


def test_a_people_filter_narrows_the_breakdown(store: Store) -> None:
    result = report(store, PeopleFilter(owner="005A"))
    assert measured(result) == expected(store, owner="005A")
    assert {g.value for g in result.sla_groups if g.dimension == "owner"} == {"005A"}


def test_every_output_format_carries_the_breakdown(store: Store) -> None:
    result = report(store)
    truth = expected(store)
    rows = report_to_json(result)["sla_breakdown"]
    from_json = Counter(
        {(r["dimension"], r["value"], r["sla_id"], k): r[k] for r in rows for k in ("met", "breached")}
    )
    assert +from_json == truth

    csv_rows = list(csv.DictReader(io.StringIO(report_to_csv(result))))
    from_csv = Counter(
        {
            (r["section"].removeprefix("sla_by_"), r["group"], r["item"], r["metric"]): int(r["value"])
            for r in csv_rows
            if r["section"].startswith("sla_by_") and r["metric"] in ("met", "breached")
        }
    )
    assert +from_csv == truth

    worst = max(set(TEAM.values()), key=lambda team: truth[("team", team, "*", "breached")])
    met, breached = truth[("team", worst, "*", "met")], truth[("team", worst, "*", "breached")]
    en = Locale.of("en", load_mapping(MAPPING))
    label = next(t.label for t in load_mapping(MAPPING).teams() if t.id == worst)
    html = render_html(result, en)
    assert '<section id="sla-breakdown">' in html
    kept = en.pct(met / (met + breached))
    assert label is not None
    assert f"The team whose SLAs fail most: {label.en}, {breached:,} missed, {kept} kept." in html
    out = io.StringIO()
    render_table(result, Console(file=out, width=140), Locale.of("ja", load_mapping(MAPPING)))
    table = out.getvalue()
    assert "SLA の期限超過（チーム別）" in table and "インサイドセールス" in table
    busiest_week = max(
        (v for d, v, s, st in truth if d == "week" and s == "*"),
        key=lambda w: truth[("week", w, "*", "breached")],
    )
    assert busiest_week in table


def test_no_timers_no_breakdown(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    upgrade(url)
    empty = Store(url)
    try:
        assert report(empty).sla_groups == []
    finally:
        empty.dispose()
