"""ordered remotes: a distribution's remotes after the first (`distributions.remote_id`)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "distribution_remotes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("distribution_id", sa.String(length=36), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("remote_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(["distribution_id"], ["distributions.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["remote_id"], ["remotes.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_distribution_remotes_distribution_id", "distribution_remotes", ["distribution_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_distribution_remotes_distribution_id", table_name="distribution_remotes")
    op.drop_table("distribution_remotes")
