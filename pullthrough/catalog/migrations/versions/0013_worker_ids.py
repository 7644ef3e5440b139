"""worker ids: a worker's href (`workers/<id>/`) and when it first heartbeat

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04

Self-contained on purpose: a migration must not change when the code it once matched does.
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

WORKER_IDS = uuid.UUID("5d1f6f2e-7c1a-4b8e-9a53-0c2b8f4e6a71")  # as catalog.models.worker_id


def upgrade() -> None:
    with op.batch_alter_table("workers") as batch:
        batch.add_column(sa.Column("id", sa.String(length=36), nullable=True))
        batch.add_column(sa.Column("pulp_created", sa.DateTime(timezone=True), nullable=True))
    workers = sa.table(
        "workers",
        sa.column("name", sa.String()),
        sa.column("id", sa.String()),
        sa.column("pulp_created", sa.DateTime(timezone=True)),
        sa.column("last_heartbeat", sa.DateTime(timezone=True)),
    )
    conn = op.get_bind()
    for (name,) in conn.execute(sa.select(workers.c.name)).all():
        conn.execute(
            workers.update()
            .where(workers.c.name == name)
            .values(id=str(uuid.uuid5(WORKER_IDS, name)), pulp_created=workers.c.last_heartbeat)
        )
    # A write done in the request named its process as its worker, which is no task worker
    # (no row): such tasks name none now, as new ones do.
    tasks = sa.table("tasks", sa.column("worker", sa.String()))
    conn.execute(
        tasks.update()
        .where(tasks.c.worker.is_not(None), tasks.c.worker.not_in(sa.select(workers.c.name)))
        .values(worker=None)
    )
    with op.batch_alter_table("workers") as batch:
        batch.alter_column("id", existing_type=sa.String(length=36), nullable=False)
        batch.alter_column("pulp_created", existing_type=sa.DateTime(timezone=True), nullable=False)
        batch.create_unique_constraint("uq_workers_id", ["id"])


def downgrade() -> None:
    with op.batch_alter_table("workers") as batch:
        batch.drop_constraint("uq_workers_id", type_="unique")
        batch.drop_column("pulp_created")
        batch.drop_column("id")
