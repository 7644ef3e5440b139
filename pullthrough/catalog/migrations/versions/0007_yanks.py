"""local yanks (PEP 592) of repositories and distributions

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "yanks",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("repository_id", sa.String(length=36), nullable=True),
        sa.Column("distribution_id", sa.String(length=36), nullable=True),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("version", sa.String(length=255), nullable=True),
        sa.Column("filename", sa.String(length=255), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("pulp_created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("pulp_last_updated", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "(repository_id IS NULL) <> (distribution_id IS NULL)", name="yank_one_target"
        ),
        sa.CheckConstraint("(version IS NULL) <> (filename IS NULL)", name="yank_one_subject"),
        sa.ForeignKeyConstraint(["repository_id"], ["repositories.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["distribution_id"], ["distributions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_yanks_repository_name", "yanks", ["repository_id", "name"])
    op.create_index("ix_yanks_distribution", "yanks", ["distribution_id"])


def downgrade() -> None:
    op.drop_table("yanks")
