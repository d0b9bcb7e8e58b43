"""reporting views for BI tools

The reporting schema is the public, documented face of the store (docs/reporting.md): read-only
views over the internal tables plus one small table, ``stages``, that Closedloop fills from the
mapping (order and labels of the funnel stages). The SQL is frozen here on purpose: a later change
of the views is a new migration, so a BI dashboard built on revision 0003 keeps its meaning.

Naming per dialect: PostgreSQL puts everything in the schema ``reporting`` (``reporting.people``);
SQLite has no schemas, so the same objects are named with a ``reporting_`` prefix
(``reporting_people``). Column names are identical on both.

Revision ID: 0003
Revises: 0002_roles
Create Date: 2026-11-29 22:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002_roles"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Dialect pieces: {r} is the name prefix; epoch/day/now are expression templates over {x}.
DIALECTS = {
    "postgresql": {
        "r": "reporting.",
        "ts": "TIMESTAMP WITH TIME ZONE",
        "epoch": "CAST(EXTRACT(EPOCH FROM {x}) AS DOUBLE PRECISION)",
        "day": "CAST(({x} AT TIME ZONE 'UTC') AS DATE)",
        "now": "CURRENT_TIMESTAMP",
    },
    "sqlite": {
        "r": "reporting_",
        "ts": "DATETIME",
        # stored as 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC): whole seconds plus the exact fraction
        "epoch": "(CAST(strftime('%s', {x}) AS REAL) + CAST(substr({x}, 20) AS REAL))",
        "day": "date({x})",
        "now": "strftime('%Y-%m-%d %H:%M:%f', 'now')",
    },
}

STAGES_TABLE = """
CREATE TABLE {r}stages (
    stage VARCHAR(64) NOT NULL PRIMARY KEY,
    position INTEGER,
    kind VARCHAR(16) NOT NULL,
    label_en VARCHAR(255),
    label_ja VARCHAR(255),
    description TEXT,
    published_at {ts}
)
"""

# Roles, not vendors: ``role`` is ma (marketing) or sfa (sales), ``connector`` the tool behind it.
RECORD_LINKS = """
CREATE VIEW {r}record_links AS
SELECT l.id AS link_id,
       l.common_id,
       l.role,
       l.connector,
       l.object_type,
       l.record_id,
       l.created_at
FROM record_links l
"""

PEOPLE = """
CREATE VIEW {r}people AS
SELECT p.common_id,
       p.stage,
       s.position AS stage_position,
       s.kind AS stage_kind,
       s.label_en AS stage_label_en,
       s.label_ja AS stage_label_ja,
       p.stage_entered_at,
       p.owner,
       p.campaign,
       p.source,
       p.score_at_mql,
       (SELECT l.connector FROM {r}record_links l WHERE l.common_id = p.common_id AND l.role = 'ma'
        ORDER BY l.link_id DESC LIMIT 1) AS ma_connector,
       (SELECT l.record_id FROM {r}record_links l WHERE l.common_id = p.common_id AND l.role = 'ma'
        ORDER BY l.link_id DESC LIMIT 1) AS ma_record_id,
       (SELECT l.connector FROM {r}record_links l WHERE l.common_id = p.common_id AND l.role = 'sfa'
        ORDER BY l.link_id DESC LIMIT 1) AS sfa_connector,
       (SELECT l.record_id FROM {r}record_links l WHERE l.common_id = p.common_id AND l.role = 'sfa'
          AND LOWER(l.object_type) = 'lead'
        ORDER BY l.link_id DESC LIMIT 1) AS sfa_lead_id,
       (SELECT l.record_id FROM {r}record_links l WHERE l.common_id = p.common_id AND l.role = 'sfa'
          AND LOWER(l.object_type) = 'contact'
        ORDER BY l.link_id DESC LIMIT 1) AS sfa_contact_id,
       (SELECT l.record_id FROM {r}record_links l WHERE l.common_id = p.common_id AND l.role = 'sfa'
          AND LOWER(l.object_type) IN ('opportunity', 'deal')
        ORDER BY l.link_id DESC LIMIT 1) AS sfa_deal_id,
       CASE WHEN p.merged_into IS NULL AND p.deleted_at IS NULL THEN 1 ELSE 0 END AS is_active,
       p.merged_into,
       p.deleted_at,
       p.created_at,
       p.updated_at
FROM people p
LEFT JOIN {r}stages s ON s.stage = p.stage
"""

TRANSITIONS = """
CREATE VIEW {r}transitions AS
SELECT t.id AS transition_id,
       t.common_id,
       t.from_stage,
       t.to_stage,
       s.position AS to_stage_position,
       s.kind AS to_stage_kind,
       t.occurred_at,
       {day_occurred} AS occurred_on,
       {epoch_occurred} AS occurred_epoch,
       t.occurred_at AS valid_from,
       LEAD(t.occurred_at) OVER w AS valid_to,
       CASE WHEN LEAD(t.id) OVER w IS NULL THEN 1 ELSE 0 END AS is_current,
       ({epoch_next} - {epoch_occurred}) / 3600.0 AS hours_in_stage,
       t.cause,
       t.source_role,
       t.source_connector,
       t.campaign,
       t.source,
       t.owner,
       t.reason,
       t.amount,
       t.score,
       t.recorded_at
FROM transitions t
LEFT JOIN {r}stages s ON s.stage = t.to_stage
WINDOW w AS (PARTITION BY t.common_id ORDER BY t.occurred_at, t.id)
"""

FUNNEL_BY_DAY = """
CREATE VIEW {r}funnel_by_day AS
SELECT {day_occurred} AS day,
       t.to_stage AS stage,
       s.position AS stage_position,
       COUNT(*) AS moves_in,
       COUNT(DISTINCT t.common_id) AS people
FROM transitions t
LEFT JOIN {r}stages s ON s.stage = t.to_stage
GROUP BY {day_occurred}, t.to_stage, s.position
"""

SLA_TIMERS = """
CREATE VIEW {r}sla_timers AS
SELECT st.id AS timer_id,
       st.sla_id,
       st.common_id,
       st.status,
       st.started_at,
       {day_started} AS started_on,
       st.due_at,
       st.met_at,
       st.breached_at,
       st.detected_at,
       CASE WHEN st.met_at IS NULL THEN NULL
            ELSE ({epoch_met} - {epoch_started}) / 3600.0 END AS hours_to_meet,
       CASE WHEN st.status = 'met' THEN 1 ELSE 0 END AS is_met,
       CASE WHEN st.status = 'breached' THEN 1 ELSE 0 END AS is_breached,
       CASE WHEN st.status = 'open' AND st.due_at < {now} THEN 1 ELSE 0 END AS is_overdue,
       p.owner,
       p.campaign
FROM sla_timers st
LEFT JOIN people p ON p.common_id = st.common_id
"""

SLA_BREACHES = """
CREATE VIEW {r}sla_breaches AS
SELECT timer_id,
       sla_id,
       common_id,
       status,
       started_at,
       started_on,
       due_at,
       COALESCE(breached_at, due_at) AS breached_at,
       detected_at,
       met_at,
       CASE WHEN met_at IS NULL THEN 1 ELSE 0 END AS is_open,
       owner,
       campaign
FROM {r}sla_timers
WHERE is_breached = 1 OR is_overdue = 1
"""

CAMPAIGNS = """
CREATE VIEW {r}campaigns AS
SELECT COALESCE(NULLIF(p.campaign, ''), '(none)') AS campaign,
       COUNT(*) AS people,
       SUM(CASE WHEN p.merged_into IS NULL AND p.deleted_at IS NULL THEN 1 ELSE 0 END) AS active_people,
       SUM(CASE WHEN EXISTS (SELECT 1 FROM transitions t WHERE t.common_id = p.common_id
                             AND t.to_stage = 'mql') THEN 1 ELSE 0 END) AS mqls,
       SUM(CASE WHEN EXISTS (SELECT 1 FROM transitions t WHERE t.common_id = p.common_id
                             AND t.to_stage = 'sql') THEN 1 ELSE 0 END) AS sqls,
       SUM(CASE WHEN EXISTS (SELECT 1 FROM transitions t WHERE t.common_id = p.common_id
                             AND t.to_stage = 'won') THEN 1 ELSE 0 END) AS wins,
       COALESCE(SUM((SELECT SUM(t.amount) FROM transitions t WHERE t.common_id = p.common_id
                     AND t.to_stage = 'won')), 0) AS won_amount
FROM people p
GROUP BY COALESCE(NULLIF(p.campaign, ''), '(none)')
"""

# Creation order (dependencies first); dropped in reverse.
VIEWS = (
    ("record_links", RECORD_LINKS),
    ("people", PEOPLE),
    ("transitions", TRANSITIONS),
    ("funnel_by_day", FUNNEL_BY_DAY),
    ("sla_timers", SLA_TIMERS),
    ("sla_breaches", SLA_BREACHES),
    ("campaigns", CAMPAIGNS),
)


def _pieces(dialect: str) -> dict[str, str]:
    d = DIALECTS[dialect]
    epoch, day = d["epoch"], d["day"]
    return {
        "r": d["r"],
        "ts": d["ts"],
        "now": d["now"],
        "day_occurred": day.format(x="t.occurred_at"),
        "day_started": day.format(x="st.started_at"),
        "epoch_occurred": epoch.format(x="t.occurred_at"),
        "epoch_next": epoch.format(x="LEAD(t.occurred_at) OVER w"),
        "epoch_started": epoch.format(x="st.started_at"),
        "epoch_met": epoch.format(x="st.met_at"),
    }


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    pieces = _pieces(dialect)
    if dialect == "postgresql":
        op.execute("CREATE SCHEMA IF NOT EXISTS reporting")
    op.execute(STAGES_TABLE.format(**pieces))
    for _name, sql in VIEWS:
        op.execute(sql.format(**pieces))


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    prefix = DIALECTS[dialect]["r"]
    for name, _sql in reversed(VIEWS):
        op.execute(f"DROP VIEW IF EXISTS {prefix}{name}")
    op.execute(f"DROP TABLE IF EXISTS {prefix}stages")
    if dialect == "postgresql":
        op.execute("DROP SCHEMA IF EXISTS reporting")
