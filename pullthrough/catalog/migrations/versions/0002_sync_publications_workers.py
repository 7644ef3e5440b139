"""sync publications workers

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workers",
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("last_heartbeat", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "publications",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("repository_version_id", sa.String(length=36), nullable=False),
        sa.Column("pulp_created", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["repository_version_id"], ["repository_versions.id"], ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("distributions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("publication_id", sa.String(length=36), nullable=True))
        batch_op.create_foreign_key(
            "fk_distributions_publication_id",
            "publications",
            ["publication_id"],
            ["id"],
            ondelete="SET NULL",
        )

    with op.batch_alter_table("packages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("remote_url", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("remote_id", sa.String(length=36), nullable=True))
        batch_op.add_column(
            sa.Column("policy", sa.String(length=16), nullable=False, server_default="immediate")
        )
        batch_op.create_foreign_key(
            "fk_packages_remote_id", "remotes", ["remote_id"], ["id"], ondelete="SET NULL"
        )


def downgrade() -> None:
    with op.batch_alter_table("packages", schema=None) as batch_op:
        batch_op.drop_constraint("fk_packages_remote_id", type_="foreignkey")
        batch_op.drop_column("policy")
        batch_op.drop_column("remote_id")
        batch_op.drop_column("remote_url")

    with op.batch_alter_table("distributions", schema=None) as batch_op:
        batch_op.drop_constraint("fk_distributions_publication_id", type_="foreignkey")
        batch_op.drop_column("publication_id")

    op.drop_table("publications")
    op.drop_table("workers")
