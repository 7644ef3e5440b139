"""withdraw the PEP 658 metadata of sdists

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02

Until now an sdist's PKG-INFO was offered as its core metadata, and installers trust that
instead of building: an old PKG-INFO without Requires-Dist made pip install it without its
dependencies. Whether a stored sdist's PKG-INFO is fit (Metadata-Version 2.2+, no dependency field
Dynamic) was not recorded, so every sdist's advertisement is withdrawn; sdists uploaded or synced
from now on are judged when they arrive. Installers build those sdists instead (the old files
stay in the store, unreferenced).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    packages = sa.table(
        "packages", sa.column("packagetype", sa.String()), sa.column("metadata_sha256", sa.String())
    )
    op.execute(
        packages.update().where(packages.c.packagetype == "sdist").values(metadata_sha256=None)
    )


def downgrade() -> None:
    """Nothing to restore: the advertisements were wrong."""
