"""roles, not vendors: the store says which role (ma, sfa) and which connector a row belongs to

Revision ID: 0002_roles
Revises: 0001
Create Date: 2026-11-29 23:05:00

Before, ``system`` held a vendor name ("hubspot", "salesforce") where it meant the role, so one
vendor in both roles (HubSpot marketing + HubSpot CRM deals) would collide. Existing rows are
converted: hubspot → role ma, salesforce → role sfa, the vendor kept as the connector.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_roles"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROLE_OF = {"hubspot": "ma", "salesforce": "sfa"}
VENDOR_OF = {role: vendor for vendor, role in ROLE_OF.items()}


def _to_roles(table: str, column: str) -> None:
    for vendor, role in ROLE_OF.items():
        op.execute(
            sa.text(f"UPDATE {table} SET {column} = :role WHERE {column} = :vendor").bindparams(
                role=role, vendor=vendor
            )
        )


def _to_vendors(table: str, column: str) -> None:
    for role, vendor in VENDOR_OF.items():
        op.execute(
            sa.text(f"UPDATE {table} SET {column} = :vendor WHERE {column} = :role").bindparams(
                role=role, vendor=vendor
            )
        )


def _rename_streams(mapping: dict[str, str]) -> None:
    for old, new in mapping.items():
        op.execute(
            sa.text(
                "UPDATE cursors SET stream = :new || substr(stream, :n) WHERE stream LIKE :pattern"
            ).bindparams(new=new, n=len(old) + 1, pattern=f"{old}%")
        )


def upgrade() -> None:
    with op.batch_alter_table("record_links") as batch:
        batch.drop_constraint("uq_record_links_record", type_="unique")
        batch.alter_column(
            "system", new_column_name="role", existing_type=sa.String(16), existing_nullable=False
        )
        batch.add_column(sa.Column("connector", sa.String(32), nullable=False, server_default=""))
    with op.batch_alter_table("record_links") as batch:  # a separate copy: SQLite loses a same-batch re-add
        batch.create_unique_constraint("uq_record_links_record", ["role", "object_type", "record_id"])
    op.execute("UPDATE record_links SET connector = role")
    _to_roles("record_links", "role")

    with op.batch_alter_table("field_state") as batch:
        batch.alter_column(
            "system", new_column_name="role", existing_type=sa.String(16), existing_nullable=False
        )
    _to_roles("field_state", "role")

    with op.batch_alter_table("sync_errors") as batch:
        batch.alter_column(
            "system", new_column_name="role", existing_type=sa.String(16), existing_nullable=False
        )
        batch.add_column(sa.Column("connector", sa.String(32), nullable=False, server_default=""))
    op.execute("UPDATE sync_errors SET connector = role")
    _to_roles("sync_errors", "role")

    with op.batch_alter_table("transitions") as batch:
        batch.alter_column(
            "source_system",
            new_column_name="source_role",
            existing_type=sa.String(16),
            existing_nullable=True,
        )
        batch.add_column(sa.Column("source_connector", sa.String(32), nullable=True))
    op.execute("UPDATE transitions SET source_connector = source_role")
    _to_roles("transitions", "source_role")

    with op.batch_alter_table("inbox") as batch:
        batch.add_column(sa.Column("role", sa.String(16), nullable=False, server_default=""))
    op.execute("UPDATE inbox SET role = source")
    _to_roles("inbox", "role")

    # Poll and backfill cursors were keyed by vendor (``hubspot:contacts``); now by role (``ma:contacts``).
    _rename_streams(
        {
            "hubspot:": "ma:",
            "salesforce:": "sfa:",
            "backfill:hubspot": "backfill:ma:contacts",
            "backfill:salesforce:": "backfill:sfa:",
        }
    )


def downgrade() -> None:
    _rename_streams(
        {
            "ma:": "hubspot:",
            "sfa:": "salesforce:",
            "backfill:ma:contacts": "backfill:hubspot",
            "backfill:sfa:": "backfill:salesforce:",
        }
    )
    with op.batch_alter_table("inbox") as batch:
        batch.drop_column("role")
    _to_vendors("transitions", "source_role")
    with op.batch_alter_table("transitions") as batch:
        batch.drop_column("source_connector")
        batch.alter_column(
            "source_role",
            new_column_name="source_system",
            existing_type=sa.String(16),
            existing_nullable=True,
        )
    _to_vendors("sync_errors", "role")
    with op.batch_alter_table("sync_errors") as batch:
        batch.drop_column("connector")
        batch.alter_column(
            "role", new_column_name="system", existing_type=sa.String(16), existing_nullable=False
        )
    _to_vendors("field_state", "role")
    with op.batch_alter_table("field_state") as batch:
        batch.alter_column(
            "role", new_column_name="system", existing_type=sa.String(16), existing_nullable=False
        )
    _to_vendors("record_links", "role")
    with op.batch_alter_table("record_links") as batch:
        batch.drop_constraint("uq_record_links_record", type_="unique")
        batch.drop_column("connector")
        batch.alter_column(
            "role", new_column_name="system", existing_type=sa.String(16), existing_nullable=False
        )
        batch.create_unique_constraint("uq_record_links_record", ["system", "object_type", "record_id"])
