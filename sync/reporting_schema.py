"""The reporting schema for BI tools (docs/reporting.md): names, the stages table, CSV export, GRANTs.

The views themselves are created by migration 0003. PostgreSQL keeps them in the schema
``reporting``; SQLite, which has no schemas, names them ``reporting_<view>``.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import IO, Any

from sqlalchemy import Engine, inspect, text

from sync.funnel.report.i18n import LANGUAGES, Locale
from sync.mapping import Mapping
from sync.store.db import Store
from sync.timeutil import as_utc, utcnow

VIEWS = (
    "people",
    "transitions",
    "funnel_by_day",
    "sla_timers",
    "sla_breaches",
    "campaigns",
    "record_links",
    "stages",
)
BOM = "\ufeff"
_ROLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_$-]{0,62}$")


class ReportingError(ValueError):
    """A bad request to the reporting schema (unknown view, bad role name, unsupported database)."""


def qualified(engine: Engine, name: str) -> str:
    """``reporting.<name>`` on PostgreSQL, ``reporting_<name>`` on SQLite."""
    if name not in VIEWS:
        raise ReportingError(f"unknown reporting view {name!r}: use one of {', '.join(VIEWS)}")
    return f"reporting.{name}" if engine.dialect.name == "postgresql" else f"reporting_{name}"


def has_reporting_schema(engine: Engine) -> bool:
    """True once migration 0003 has created the reporting schema."""
    if engine.dialect.name == "postgresql":
        return inspect(engine).has_table("stages", schema="reporting")
    return inspect(engine).has_table("reporting_stages")


def require_reporting_schema(engine: Engine) -> None:
    """ReportingError with the way out when migration 0003 has not run yet."""
    if not has_reporting_schema(engine):
        raise ReportingError("this database has no reporting schema yet: run closedloop db upgrade")


def publish_stages(store: Store, mapping: Mapping) -> int:
    """Replace the ``stages`` table's rows with the mapping's stages (order, kind, labels); returns count."""
    locales = {language: Locale.of(language, mapping) for language in LANGUAGES}
    rank = {stage: i + 1 for i, stage in enumerate(mapping.success_path())}
    now = as_utc(utcnow()).strftime("%Y-%m-%d %H:%M:%S.%f")
    rows = [
        {
            "stage": s.id,
            "position": rank.get(s.id),
            "kind": "recycle" if s.recycle else "detour" if s.detour else "success",
            "label_en": locales["en"].stage(s.id),
            "label_ja": locales["ja"].stage(s.id),
            "description": s.description,
            "published_at": now,
        }
        for s in mapping.stages
    ]
    table = qualified(store.engine, "stages")
    stamp = "CAST(:published_at AS TIMESTAMP) AT TIME ZONE 'UTC'"
    if store.engine.dialect.name != "postgresql":
        stamp = ":published_at"
    insert = text(
        f"INSERT INTO {table} (stage, position, kind, label_en, label_ja, description, published_at) "
        f"VALUES (:stage, :position, :kind, :label_en, :label_ja, :description, {stamp})"
    )
    with store.engine.begin() as conn:
        conn.execute(text(f"DELETE FROM {table}"))
        conn.execute(insert, rows)
    return len(rows)


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return as_utc(value).isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    return value


def export_csv(store: Store, view: str, out: IO[str]) -> int:
    """Write one reporting view as CSV with a UTF-8 byte-order mark (Excel then reads Japanese right).

    ``out`` must be a text stream opened with ``encoding="utf-8"`` and ``newline=""``; rows are
    streamed, so a big view does not fill memory. Returns the number of data rows.
    """
    name = qualified(store.engine, view)
    require_reporting_schema(store.engine)
    out.write(BOM)
    writer = csv.writer(out, lineterminator="\r\n")
    count = 0
    with store.engine.connect() as conn:
        result = conn.execution_options(yield_per=2000).execute(text(f"SELECT * FROM {name}"))
        writer.writerow(list(result.keys()))
        for row in result:
            writer.writerow([_cell(v) for v in row])
            count += 1
    return count


def grant_statements(role: str) -> list[str]:
    """The PostgreSQL statements that give ``role`` read access to the reporting schema and nothing else.

    Views run with their owner's rights, so the role needs no access to the internal tables.
    """
    if not _ROLE.match(role):
        raise ReportingError(f"not a usable role name: {role!r} (letters, digits, _ $ -; at most 63)")
    quoted = '"' + role.replace('"', '""') + '"'
    return [
        f"GRANT USAGE ON SCHEMA reporting TO {quoted};",
        f"GRANT SELECT ON ALL TABLES IN SCHEMA reporting TO {quoted};",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA reporting GRANT SELECT ON TABLES TO {quoted};",
    ]


def apply_grants(store: Store, statements: Iterable[str]) -> None:
    """Run the GRANT statements in one transaction (PostgreSQL only)."""
    if store.engine.dialect.name != "postgresql":
        raise ReportingError(
            "SQLite has no roles: give a BI tool a read-only connection instead "
            "(for example the URI file:closedloop.db?mode=ro)"
        )
    with store.engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)
