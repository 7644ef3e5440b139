"""The catalog layer (repositories, versions, content) on SQLite and on PostgreSQL alike: the
migrations apply on both, versions change only with the content set, old versions keep their
content, and concurrent writers to one repository neither collide nor lose an update."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy.engine import make_url

from proxy.catalog.db import Catalog, make_engine, migrate
from proxy.catalog.models import Package, Repository, RepositoryVersion
from proxy.catalog.versions import (
    content_counts,
    create_repository,
    is_in_any_repository,
    new_version,
    version_packages,
)
from proxy.storage.locks import LockDir

WRITERS = 8
THREAD_TIMEOUT = 60  # seconds; a deadlock fails the test instead of hanging it


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of the parametrized kind, private to the test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
        return
    server_url = request.getfixturevalue("postgres_url")
    name = f"catalog_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Catalog]:
    request.node.callspec.params  # noqa: B018 - the parameter is passed on below
    url = _database_url_for(request, tmp_path)
    engine = make_engine(url)
    try:
        assert engine.dialect.name == request.param
        migrate(engine, LockDir(tmp_path / "locks"))
        catalog = Catalog(engine)
        yield catalog
    finally:
        engine.dispose()


def _database_url_for(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The test's `database_url`, of the kind `request.param` names."""
    request.node.funcargs.setdefault("_kind", request.param)
    return request.getfixturevalue("database_url")
