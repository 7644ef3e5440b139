"""cache_readers: the cached copies an index gave only to remotes sending credentials, and
which of them (a digest of what each sends); another remote listing the same file fetches it
itself rather than be served those bytes.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-05

Self-contained on purpose: a migration must not change when the code it once matched does.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cache_readers",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("readers", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("sha256"),
    )


def downgrade() -> None:
    op.drop_table("cache_readers")
