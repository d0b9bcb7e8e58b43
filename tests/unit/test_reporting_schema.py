"""The reporting schema on SQLite and PostgreSQL: docs/reporting.md's sample queries give the funnel
report's figures, exports open with the right characters, and the read-only role reads only views.

The history comes from ``funnel_history`` (the engine's stage rules and SLA timer code); every
figure compared comes out of `funnel report --format json`.
"""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from sync.cli import app
from sync.funnel.filters import PeopleFilter
from sync.mapping import load_mapping
from sync.reporting import funnel_report
from sync.reporting_schema import has_reporting_schema
from sync.store.db import Store, alembic_config, upgrade
from tests.conftest import PG_ADMIN_URL
from tests.unit.funnel_history import MAPPING, simulate

ROOT = Path(__file__).parents[2]
DOC = ROOT / "docs" / "reporting.md"
SINCE, UNTIL = "2026-10-01", "2026-11-01"
runner = CliRunner()


def sample_queries() -> dict[str, str]:
    """Every ```sql block of the doc that starts with ``-- sample: NAME``."""
    blocks = re.findall(r"```sql\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    out = {}
    for block in blocks:
        match = re.match(r"-- sample: (\w+)\n", block)
        if match:
            out[match[1]] = block
    return out


def for_dialect(sql: str, dialect: str) -> str:
    """The doc's rule: on SQLite, ``reporting.`` becomes ``reporting_``."""
    return sql if dialect == "postgresql" else sql.replace("reporting.", "reporting_")


def invoke(url: str, *args: str) -> Any:
    env = {"CLOSEDLOOP_DATABASE_URL": url, "CLOSEDLOOP_MAPPINGS": str(MAPPING)}
    result = runner.invoke(app, list(args), env=env)
    assert result.exit_code == 0, result.output
    return result


def funnel_json(url: str) -> dict[str, Any]:
    result = invoke(url, "funnel", "report", "--since", SINCE, "--until", UNTIL, "--format", "json")
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def run(store: Store, sql: str) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        result = conn.execute(text(for_dialect(sql, store.engine.dialect.name)))
        return [dict(row._mapping) for row in result]


@pytest.fixture
def world(store: Store) -> tuple[Store, dict[str, Any]]:
    simulate(store, 400, seed=11)
    invoke(store.url, "db", "upgrade")  # publishes the mapping's stages into the reporting schema
    return store, funnel_json(store.url)


def test_the_doc_has_the_promised_samples() -> None:
    assert {"stage_reach", "conversion", "velocity", "sla_compliance", "labelled_funnel"} <= set(
        sample_queries()
    )


def test_sample_queries_give_the_funnel_reports_figures(world: tuple[Store, dict[str, Any]]) -> None:
    store, report = world
    samples = sample_queries()

    reached = {r["stage"]: r["reached"] for r in run(store, samples["stage_reach"])}
    expected = {s["stage"]: s["reached"] for s in report["stages"] if s["reached"]}
    assert reached == expected
    assert expected["sql"] > 20 and expected["recycled"] > 5  # the walk really covers the funnel

    (conv,) = run(store, samples["conversion"])
    (mql_sql,) = [c for c in report["conversion"] if (c["from_stage"], c["to_stage"]) == ("mql", "sql")]
    assert (conv["cohort"], conv["converted"]) == (mql_sql["cohort"], mql_sql["converted"])
    assert float(conv["rate"]) == pytest.approx(mql_sql["rate"])

    (vel,) = run(store, samples["velocity"])
    (speed,) = [v for v in report["velocity"] if (v["from_stage"], v["to_stage"]) == ("mql", "sql")]
    assert vel["count"] == speed["count"] > 10
    assert float(vel["median_hours"]) == pytest.approx(speed["median_hours"], abs=1e-6)
    assert float(vel["p90_hours"]) == pytest.approx(speed["p90_hours"], abs=1e-6)

    slas = {r["sla_id"]: r for r in run(store, samples["sla_compliance"])}
    started = [s for s in report["sla"] if s["started"]]
    assert {s["sla_id"] for s in started} == set(slas)
    for s in started:
        row = slas[s["sla_id"]]
        assert (row["started"], row["met"], row["breached"]) == (s["started"], s["met"], s["breached"])
        assert float(row["compliance_rate"]) == pytest.approx(s["compliance_rate"])
    first_touch = slas["first_touch"]
    assert first_touch["breached"] and first_touch["met"]  # both outcomes were exercised

    funnel = run(store, samples["labelled_funnel"])
    inflow = {s["stage"]: s["inflow"] for s in report["stages"] if s["inflow"]}
    path = report["success_path"]
    assert [r["position"] for r in funnel] == [path.index(s) + 1 for s in path if s in inflow]
    assert [r["moves_in"] for r in funnel] == [inflow[s] for s in path if s in inflow]
    assert [r["label_ja"] for r in funnel][:2] == ["リード", "MQL"]
    assert "商談化" in [r["label_ja"] for r in funnel]


def test_transitions_carry_validity_ranges(world: tuple[Store, dict[str, Any]]) -> None:
    store, _ = world
    name = "reporting.transitions" if store.engine.dialect.name == "postgresql" else "reporting_transitions"
    rows = run(store, f"SELECT * FROM {name} ORDER BY common_id, valid_from, transition_id")
    by_person: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_person.setdefault(row["common_id"], []).append(row)
    for moves in by_person.values():
        for move, nxt in zip(moves, moves[1:], strict=False):
            assert move["valid_to"] == nxt["valid_from"] and move["is_current"] == 0
            hours = (nxt["occurred_epoch"] - move["occurred_epoch"]) / 3600
            assert float(move["hours_in_stage"]) == pytest.approx(hours)
        assert moves[-1]["valid_to"] is None and moves[-1]["is_current"] == 1


def test_people_view_shows_links_and_current_stage(world: tuple[Store, dict[str, Any]]) -> None:
    store, report = world
    name = "reporting.people" if store.engine.dialect.name == "postgresql" else "reporting_people"
    rows = run(store, f"SELECT * FROM {name} WHERE is_active = 1")
    current = {s["stage"]: s["current"] for s in report["stages"] if s["current"]}
    counted: dict[str, int] = {}
    for row in rows:
        if row["stage"]:
            counted[row["stage"]] = counted.get(row["stage"], 0) + 1
    assert counted == current
    assert all(row["ma_record_id"] and row["ma_connector"] == "hubspot" for row in rows)
    assert not any(row["sfa_lead_id"] for row in rows)


def test_export_writes_utf8_with_bom_and_japanese_reads_back(
    world: tuple[Store, dict[str, Any]], tmp_path: Path
) -> None:
    store, report = world
    out = tmp_path / "campaigns.csv"
    invoke(store.url, "funnel", "export", "campaigns", "--format", "csv", "--output", str(out))
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # the byte-order mark Excel looks for
    assert "展示会2026".encode() in raw
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    names = {r["campaign"] for r in rows}
    assert {"ウェビナー秋", "展示会2026", "Search ads", "(none)"} == names
    wins = {r["campaign"]: int(r["wins"]) for r in rows}
    with store.session() as session:
        won = session.execute(
            text("SELECT COUNT(DISTINCT common_id) FROM transitions WHERE to_stage = 'won'")
        )
        assert sum(wins.values()) == won.scalar()

    transitions = tmp_path / "transitions.csv"
    invoke(store.url, "funnel", "export", "transitions", "--output", str(transitions))
    text_ = transitions.read_bytes().decode("utf-8-sig")
    assert "価格" in text_ and text_.count("\r\n") > 100


def test_export_rejects_an_unknown_view(sqlite_url: str) -> None:
    env = {"CLOSEDLOOP_DATABASE_URL": sqlite_url, "CLOSEDLOOP_MAPPINGS": str(MAPPING)}
    result = runner.invoke(app, ["funnel", "export", "people; DROP TABLE people"], env=env)
    assert result.exit_code == 2 and "unknown view" in result.output
    assert Store(sqlite_url).engine.connect().execute(text("SELECT COUNT(*) FROM people")).scalar() == 0


def test_grant_gives_a_role_the_views_and_not_the_tables(pg_url: str) -> None:
    role = f"bi_{uuid.uuid4().hex[:8]}"
    printed = invoke(pg_url, "reporting", "grant", role).stdout
    assert f'GRANT SELECT ON ALL TABLES IN SCHEMA reporting TO "{role}";' in printed
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE ROLE "{role}" LOGIN')
    try:
        invoke(pg_url, "db", "upgrade")  # publishes the stages
        invoke(pg_url, "reporting", "grant", role, "--apply")
        as_role = pg_url.replace("postgres@", f"{role}@", 1).replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(as_role) as conn:
            assert conn.execute("SELECT COUNT(*) FROM reporting.people").fetchone() == (0,)
            assert conn.execute("SELECT COUNT(*) FROM reporting.stages").fetchone()[0] == 13  # type: ignore[index]
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("SELECT COUNT(*) FROM people")
    finally:
        with psycopg.connect(pg_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as db:
            db.execute(f'DROP OWNED BY "{role}"')
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP ROLE IF EXISTS "{role}"')


def test_grant_refuses_sqlite_and_odd_role_names(sqlite_url: str) -> None:
    env = {"CLOSEDLOOP_DATABASE_URL": sqlite_url, "CLOSEDLOOP_MAPPINGS": str(MAPPING)}
    refused = runner.invoke(app, ["reporting", "grant", "bi", "--apply"], env=env)
    assert refused.exit_code == 1 and "SQLite has no roles" in refused.output
    odd = runner.invoke(app, ["reporting", "grant", 'x"; DROP TABLE people; --'], env=env)
    assert odd.exit_code == 2 and "not a usable role name" in odd.output


def test_export_before_the_migration_says_what_to_do(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0002_roles")
    env = {"CLOSEDLOOP_DATABASE_URL": url, "CLOSEDLOOP_MAPPINGS": str(MAPPING)}
    result = runner.invoke(app, ["funnel", "export", "people", "--output", str(tmp_path / "p.csv")], env=env)
    assert result.exit_code == 1 and "run closedloop db upgrade" in result.output
    assert not (tmp_path / "p.csv").exists()


def test_migration_0003_downgrades_and_upgrades_cleanly(store: Store) -> None:
    postgres = store.engine.dialect.name == "postgresql"
    name = "reporting.people" if postgres else "reporting_people"
    command.downgrade(alembic_config(store.url), "0002_roles")
    assert not has_reporting_schema(store.engine)
    with store.engine.connect() as conn, pytest.raises(DBAPIError):
        conn.execute(text(f"SELECT 1 FROM {name}"))
    upgrade(store.url)
    assert has_reporting_schema(store.engine)
    assert run(store, f"SELECT COUNT(*) AS n FROM {name}") == [{"n": 0}]


def test_a_report_narrowed_to_campaign_and_owner_matches_the_views(
    world: tuple[Store, dict[str, Any]],
) -> None:
    store, _ = world
    r = "reporting." if store.engine.dialect.name == "postgresql" else "reporting_"
    campaign, owner = "展示会2026", "005A"
    narrowed = funnel_report(
        store,
        load_mapping(MAPPING),
        since=datetime(2026, 10, 1, tzinfo=UTC),
        until=datetime(2026, 11, 1, tzinfo=UTC),
        who=PeopleFilter(campaign, owner),
    )
    reached = run(
        store,
        f"SELECT t.to_stage AS stage, COUNT(DISTINCT t.common_id) AS n FROM {r}transitions t "
        f"JOIN {r}people p ON p.common_id = t.common_id WHERE p.campaign = '{campaign}' "
        f"AND p.owner = '{owner}' AND t.occurred_on >= '{SINCE}' AND t.occurred_on < '{UNTIL}' "
        "GROUP BY t.to_stage",
    )
    assert {row["stage"]: row["n"] for row in reached} == {
        s.stage: s.reached for s in narrowed.stages if s.reached
    }
    started = run(
        store,
        f"SELECT sla_id, COUNT(*) AS n FROM {r}sla_timers WHERE campaign = '{campaign}' AND owner = '{owner}' "
        f"AND started_on >= '{SINCE}' AND started_on < '{UNTIL}' GROUP BY sla_id",
    )
    assert {row["sla_id"]: row["n"] for row in started} == {
        s.sla_id: s.started for s in narrowed.sla if s.started
    }
    everyone = funnel_report(
        store,
        load_mapping(MAPPING),
        since=datetime(2026, 10, 1, tzinfo=UTC),
        until=datetime(2026, 11, 1, tzinfo=UTC),
    )
    assert 0 < narrowed.stage("mql").reached < everyone.stage("mql").reached  # type: ignore[union-attr]


def test_reporting_stages_publishes_an_edited_mapping(sqlite_url: str, tmp_path: Path) -> None:
    edited = tmp_path / "mapping.yaml"
    text_ = (MAPPING / "default.yaml").read_text(encoding="utf-8")
    edited.write_text(text_.replace("ja: 商談化", "ja: 有望商談"), encoding="utf-8")
    env = {"CLOSEDLOOP_DATABASE_URL": sqlite_url, "CLOSEDLOOP_MAPPINGS": str(edited)}
    result = runner.invoke(app, ["reporting", "stages"], env=env)
    assert result.exit_code == 0, result.output
    store = Store(sqlite_url)
    rows = run(store, "SELECT stage, position, kind, label_ja FROM reporting.stages ORDER BY stage")
    store.dispose()
    by_stage = {row["stage"]: row for row in rows}
    assert by_stage["sql"]["label_ja"] == "有望商談" and by_stage["sql"]["position"] == 4
    assert by_stage["recycled"]["kind"] == "recycle" and by_stage["recycled"]["position"] is None
    assert len(rows) == len(load_mapping(edited).stages) == 13


def test_migration_0004_adds_team_owners_nps_and_owner_names_and_downgrades(store: Store) -> None:
    config = alembic_config(store.url)
    command.downgrade(config, "0003")
    with store.engine.connect() as conn, pytest.raises(DBAPIError):
        conn.execute(text("SELECT owners FROM people"))
    upgrade(store.url)
    now = datetime(2026, 11, 30, tzinfo=UTC)
    with store.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO people (common_id, owners, nps, attributes, created_at, updated_at) "
                "VALUES ('p1', :owners, 9, '{}', :now, :now)"
            ),
            {"owners": json.dumps({"field_sales": "005B"}), "now": now},
        )
        conn.execute(text("INSERT INTO owner_names VALUES ('005B', '佐藤 花子', :now)"), {"now": now})
    assert run(store, "SELECT p.nps, o.name FROM people p, owner_names o")[0]["name"] == "佐藤 花子"
    assert has_reporting_schema(store.engine)  # the reporting views survived the new columns
    assert run(store, "SELECT COUNT(*) AS n FROM reporting.people") == [{"n": 1}]
    command.downgrade(config, "0003")
    assert run(store, "SELECT COUNT(*) AS n FROM reporting.people") == [{"n": 1}]
    with store.engine.connect() as conn, pytest.raises(DBAPIError):
        conn.execute(text("SELECT name FROM owner_names"))
