"""a remote's settings in one JSON column; tasks record references, not hrefs

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02

Self-contained on purpose: a migration must not change when the code it once matched does.
"""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# The remote columns of 0001, with their types: all become keys of `settings`.
_COLUMNS: dict[str, Any] = {
    "url": sa.Text(),
    "includes": sa.JSON(),
    "excludes": sa.JSON(),
    "prereleases": sa.Boolean(),
    "package_types": sa.JSON(),
    "exclude_platforms": sa.JSON(),
    "keep_latest_packages": sa.Integer(),
    "policy": sa.String(length=16),
    "download_concurrency": sa.Integer(),
    "tls_validation": sa.Boolean(),
    "ca_cert": sa.Text(),
    "client_cert": sa.Text(),
    "client_key": sa.Text(),
    "proxy_url": sa.Text(),
    "proxy_username": sa.Text(),
    "proxy_password": sa.Text(),
    "username": sa.Text(),
    "password": sa.Text(),
    "headers": sa.JSON(),
    "connect_timeout": sa.Float(),
    "sock_connect_timeout": sa.Float(),
    "sock_read_timeout": sa.Float(),
    "total_timeout": sa.Float(),
    "max_retries": sa.Integer(),
    "rate_limit": sa.Integer(),
}
_NOT_NULL = {"url", "includes", "excludes", "prereleases", "package_types", "exclude_platforms"}
_NOT_NULL |= {"keep_latest_packages", "policy", "tls_validation", "headers"}
_DEFAULTS = {"includes": [], "excludes": [], "prereleases": True, "package_types": []}
_DEFAULTS |= {"exclude_platforms": [], "keep_latest_packages": 0, "policy": "on_demand"}
_DEFAULTS |= {"tls_validation": True, "headers": []}

_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_ROOT = "/pulp/api/v3/"
_KINDS = {
    "repositories/python/python/": "repository",
    "remotes/python/python/": "remote",
    "distributions/python/pypi/": "distribution",
    "publications/python/pypi/": "publication",
    "content/python/packages/": "content",
    "tasks/": "task",
}


def _ref(href: str) -> dict[str, Any] | None:
    version = re.fullmatch(f"{_ROOT}repositories/python/python/({_UUID})/versions/(\\d+)/", href)
    if version:
        return {"kind": "repository_version", "id": version[1], "number": int(version[2])}
    for path, kind in _KINDS.items():
        if match := re.fullmatch(f"{re.escape(_ROOT + path)}({_UUID})/", href):
            return {"kind": kind, "id": match[1]}
    return None


def _href(ref: dict[str, Any]) -> str:
    if ref["kind"] == "repository_version":
        return f"{_ROOT}repositories/python/python/{ref['id']}/versions/{ref['number']}/"
    path = next(p for p, k in _KINDS.items() if k == ref["kind"])
    return f"{_ROOT}{path}{ref['id']}/"


def _remotes(columns: list[str]) -> sa.TableClause:
    return sa.table(
        "remotes",
        sa.column("id", sa.String()),
        sa.column("settings", sa.JSON()),
        *(sa.column(name, _COLUMNS[name]) for name in columns),
    )


def _tasks() -> sa.TableClause:
    return sa.table(
        "tasks", sa.column("id", sa.String()), sa.column("created_resources", sa.JSON())
    )


def _rewrite_tasks(convert: Any) -> None:
    conn = op.get_bind()
    tasks = _tasks()
    for task_id, created in conn.execute(sa.select(tasks.c.id, tasks.c.created_resources)):
        new = [c for c in (convert(item) for item in created or []) if c is not None]
        if new != created:
            conn.execute(tasks.update().where(tasks.c.id == task_id).values(created_resources=new))


def upgrade() -> None:
    with op.batch_alter_table("remotes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("settings", sa.JSON(), nullable=True))
    conn = op.get_bind()
    remotes = _remotes(list(_COLUMNS))
    for row in conn.execute(sa.select(remotes)).mappings():
        settings = {k: row[k] for k in _COLUMNS if row[k] is not None}
        conn.execute(remotes.update().where(remotes.c.id == row["id"]).values(settings=settings))
    with op.batch_alter_table("remotes", schema=None) as batch_op:
        batch_op.alter_column("settings", existing_type=sa.JSON(), nullable=False)
        for name in _COLUMNS:
            batch_op.drop_column(name)
    _rewrite_tasks(lambda item: _ref(item) if isinstance(item, str) else item)


def downgrade() -> None:
    _rewrite_tasks(lambda item: _href(item) if isinstance(item, dict) else item)
    with op.batch_alter_table("remotes", schema=None) as batch_op:
        for name, kind in _COLUMNS.items():
            batch_op.add_column(sa.Column(name, kind, nullable=True))
    conn = op.get_bind()
    remotes = _remotes(list(_COLUMNS))
    for row_id, settings in conn.execute(sa.select(remotes.c.id, remotes.c.settings)):
        values = {**_DEFAULTS, **{k: v for k, v in (settings or {}).items() if k in _COLUMNS}}
        conn.execute(remotes.update().where(remotes.c.id == row_id).values(**values))
    with op.batch_alter_table("remotes", schema=None) as batch_op:
        for name in _NOT_NULL:
            batch_op.alter_column(name, existing_type=_COLUMNS[name], nullable=False)
        batch_op.drop_column("settings")
