"""imported OSV advisories, and what each distribution does with them

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "advisories",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("modified", sa.String(length=64), nullable=False),
        sa.Column("withdrawn", sa.String(length=64), nullable=True),
        sa.Column("record", sa.Text(), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "advisory_projects",
        sa.Column("advisory_id", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(["advisory_id"], ["advisories.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("advisory_id", "name"),
    )
    op.create_index("ix_advisory_projects_name", "advisory_projects", ["name"])
    with op.batch_alter_table("distributions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("block_malicious", sa.Boolean(), nullable=False, server_default=sa.true())
        )
        batch_op.add_column(
            sa.Column("hold_advisories", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("distributions", schema=None) as batch_op:
        batch_op.drop_column("hold_advisories")
        batch_op.drop_column("block_malicious")
    op.drop_table("advisory_projects")
    op.drop_table("advisories")
