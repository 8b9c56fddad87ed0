"""r0002: report versions lose ``note``, a column nothing ever wrote or read (always "").

Revision ID: r0002
Revises: r0001
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "r0002"
down_revision: str | None = "r0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("report_versions")}
    if "note" in columns:  # a database made by create_all before r0001 has it; one made since r0001 too
        with op.batch_alter_table("report_versions") as batch:  # sqlite: the table is copied without it
            batch.drop_column("note")


def downgrade() -> None:
    with op.batch_alter_table("report_versions") as batch:
        batch.add_column(sa.Column("note", sa.Text(), nullable=False, server_default=""))
