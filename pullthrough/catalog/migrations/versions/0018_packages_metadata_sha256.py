"""packages.metadata_sha256 indexed: eviction (per victim), orphan cleanup and the cache
ledger's rebuild ask which packages record given bytes as their PEP 658 metadata, and each
such question read the whole table without it.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-05

Self-contained on purpose: a migration must not change when the code it once matched does.
"""

from __future__ import annotations

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_packages_metadata_sha256", "packages", ["metadata_sha256"])


def downgrade() -> None:
    op.drop_index("ix_packages_metadata_sha256", table_name="packages")
