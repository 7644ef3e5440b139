"""labels on content (Pulp's content pulp_labels, core 3.73)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05

Self-contained on purpose: a migration must not change when the code it once matched does.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("packages", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("pulp_labels", sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
        )


def downgrade() -> None:
    with op.batch_alter_table("packages", schema=None) as batch_op:
        batch_op.drop_column("pulp_labels")
