"""repository_blocklist: a repository's package blocklist (Pulp python >= 3.30.2) and its
error_on_reject (>= 3.34). Not the distributions' `blocklist` column (0005).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05

Self-contained on purpose: a migration must not change when the code it once matched does.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

ONE_PER_PROJECT = "version IS NULL AND name IS NOT NULL"


def upgrade() -> None:
    with op.batch_alter_table("repositories") as batch:
        batch.add_column(
            sa.Column(
                "error_on_reject", sa.Boolean(), nullable=False, server_default=sa.text("true")
            )
        )
    op.create_table(
        "repository_blocklist_entries",
        sa.Column("id", sa.String(length=36), primary_key=True),
        sa.Column(
            "repository_id",
            sa.String(length=36),
            sa.ForeignKey("repositories.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("version", sa.String(length=255), nullable=True),
        sa.Column("filename", sa.String(length=255), nullable=True),
        sa.Column("added_by", sa.String(length=255), nullable=True),
        sa.Column("pulp_created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("pulp_last_updated", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "(name IS NULL) <> (filename IS NULL)", name="blocklist_name_or_filename"
        ),
        sa.CheckConstraint("version IS NULL OR name IS NOT NULL", name="blocklist_version_of_name"),
        sa.UniqueConstraint("repository_id", "name", "version", name="uq_blocklist_name_version"),
        sa.UniqueConstraint("repository_id", "filename", name="uq_blocklist_filename"),
    )
    op.create_index(
        "ix_repository_blocklist_entries_repository_id",
        "repository_blocklist_entries",
        ["repository_id"],
    )
    op.create_index(
        "uq_blocklist_name",
        "repository_blocklist_entries",
        ["repository_id", "name"],
        unique=True,
        sqlite_where=sa.text(ONE_PER_PROJECT),
        postgresql_where=sa.text(ONE_PER_PROJECT),
    )


def downgrade() -> None:
    op.drop_index("uq_blocklist_name", table_name="repository_blocklist_entries")
    op.drop_index(
        "ix_repository_blocklist_entries_repository_id", table_name="repository_blocklist_entries"
    )
    op.drop_table("repository_blocklist_entries")
    with op.batch_alter_table("repositories") as batch:
        batch.drop_column("error_on_reject")
