"""repository_versions.base_version_id: a version's base (a modify's base_version) is a version
of any repository, as Pulp's RepositoryVersion.base_version (a foreign key, SET NULL when that
version goes), no longer a number of its own repository's (base_number).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-05

Self-contained on purpose: a migration must not change when the code it once matched does.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("repository_versions") as batch:
        batch.add_column(sa.Column("base_version_id", sa.String(length=36), nullable=True))
        batch.create_foreign_key(
            "fk_repository_versions_base_version_id",
            "repository_versions",
            ["base_version_id"],
            ["id"],
            ondelete="SET NULL",
        )
    op.execute(
        "UPDATE repository_versions SET base_version_id = (SELECT base.id FROM"
        " repository_versions AS base WHERE base.repository_id ="
        " repository_versions.repository_id AND base.number = repository_versions.base_number)"
        " WHERE base_number IS NOT NULL"
    )
    with op.batch_alter_table("repository_versions") as batch:
        batch.drop_column("base_number")


def downgrade() -> None:
    with op.batch_alter_table("repository_versions") as batch:
        batch.add_column(sa.Column("base_number", sa.Integer(), nullable=True))
    op.execute(  # a base in another repository has no number of this one's: none
        "UPDATE repository_versions SET base_number = (SELECT base.number FROM"
        " repository_versions AS base WHERE base.id = repository_versions.base_version_id AND"
        " base.repository_id = repository_versions.repository_id)"
        " WHERE base_version_id IS NOT NULL"
    )
    with op.batch_alter_table("repository_versions") as batch:
        batch.drop_constraint("fk_repository_versions_base_version_id", type_="foreignkey")
        batch.drop_column("base_version_id")
