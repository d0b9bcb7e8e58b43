"""team owners, NPS and cached owner names

Revision ID: 0004_team_owners
Revises: 0003
Create Date: 2026-11-30 02:00:00

``people.owners`` holds the responsible owner per team ({team id: owner id}) as the sales side
says, ``people.nps`` the person's 0-10 Net Promoter score. ``owner_names`` keeps each owner's
display name, read once from the sales side (reports show names, not ids).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_team_owners"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # plain ALTER TABLE (SQLite 3.35+ too): a batch copy of ``people`` would break the reporting views
    op.add_column("people", sa.Column("owners", sa.JSON(), nullable=True))
    op.add_column("people", sa.Column("nps", sa.Numeric(4, 1), nullable=True))
    op.create_table(
        "owner_names",
        sa.Column("owner_id", sa.String(length=64), primary_key=True),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("owner_names")
    op.drop_column("people", "nps")
    op.drop_column("people", "owners")
