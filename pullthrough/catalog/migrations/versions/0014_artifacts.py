"""artifacts: Pulp core's stored bytes, by sha256, that content may be created from

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04

Self-contained on purpose: a migration must not change when the code it once matched does.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "artifacts",
        sa.Column("id", sa.String(length=36), primary_key=True),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("sha224", sa.String(length=56), nullable=False),
        sa.Column("sha384", sa.String(length=96), nullable=False),
        sa.Column("sha512", sa.String(length=128), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("pulp_created", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("sha256", name="uq_artifacts_sha256"),
    )


def downgrade() -> None:
    op.drop_table("artifacts")
