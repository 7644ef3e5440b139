"""uploads: Pulp core's chunked uploads and their chunks (bytes in the store by sha256)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05

Self-contained on purpose: a migration must not change when the code it once matched does.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "uploads",
        sa.Column("id", sa.String(length=36), primary_key=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("pulp_created", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "upload_chunks",
        sa.Column("id", sa.String(length=36), primary_key=True),
        sa.Column(
            "upload_id",
            sa.String(length=36),
            sa.ForeignKey("uploads.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("pulp_created", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("upload_id", "offset", name="uq_upload_chunks_offset"),
    )
    op.create_index("ix_upload_chunks_sha256", "upload_chunks", ["sha256"])


def downgrade() -> None:
    op.drop_index("ix_upload_chunks_sha256", table_name="upload_chunks")
    op.drop_table("upload_chunks")
    op.drop_table("uploads")
