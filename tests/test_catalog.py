"""The catalog layer (repositories, versions, content) on SQLite and on PostgreSQL alike: the
migrations apply on both, versions change only with the content set, old versions keep their
content, and concurrent writers to one repository neither collide nor lose an update."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    Engine,
    MetaData,
    Table,
    delete,
    event,
    func,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pullthrough.api.bindings import PUBLICATIONS
from pullthrough.catalog import versions as versions_module
from pullthrough.catalog.db import Catalog, alembic_config, make_engine, prepare
from pullthrough.catalog.labels import selected
from pullthrough.catalog.models import (
    Artifact,
    Base,
    Distribution,
    Package,
    Publication,
    Remote,
    Repository,
    RepositoryBlocklistEntry,
    RepositoryContent,
    RepositoryVersion,
    Task,
    Upload,
    UploadChunk,
    Worker,
    worker_id,
)
from pullthrough.catalog.versions import (
    DistributedVersion,
    OnlyVersion,
    VersionGone,
    content_counts,
    content_counts_of,
    create_repository,
    delete_version,
    is_in_any_repository,
    new_version,
    present_in,
    version_packages,
)
from pullthrough.config import RemoteSettings
from pullthrough.core.labels import parse_selector
from pullthrough.core.times import utc
from pullthrough.services.cached_content import CachedContent
from pullthrough.storage.store import ArtifactStore
from support.postgres import private_database

WRITERS = 8
THREAD_TIMEOUT = 60  # seconds: a deadlock fails the test instead of hanging it


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An engine on an empty database, SQLite or PostgreSQL."""
    with (
        private_database(request.getfixturevalue("postgres_url"))
        if request.param == "postgresql"
        else _sqlite(tmp_path)
    ) as url:
        engine = make_engine(url)
        try:
            assert engine.dialect.name == request.param
            yield engine
        finally:
            engine.dispose()


@pytest.fixture
def catalog(empty_engine: Engine) -> Catalog:
    """A migrated, empty catalog on SQLite or on PostgreSQL."""
    prepare(empty_engine)
    return Catalog(empty_engine)


@contextmanager
def _sqlite(tmp_path: Path) -> Iterator[str]:
    yield f"sqlite:///{tmp_path / 'catalog.sqlite3'}"


def add_packages(catalog: Catalog, *names: str) -> list[str]:
    """Package rows (not in any repository yet); returns their ids in order."""
    with catalog.session() as session:
        rows = [
            Package(
                filename=f"{name}-1.0-py3-none-any.whl",
                name=name,
                version="1.0",
                packagetype="bdist_wheel",
                python_version="py3",
                sha256=uuid.uuid4().hex * 2,
                size=100,
            )
            for name in names
        ]
        session.add_all(rows)
        session.flush()
        return [row.id for row in rows]


def make_repository(catalog: Catalog, name: str = "repo", **fields: object) -> str:
    with catalog.session() as session:
        return create_repository(session, name=name, **fields).id


def files_in(catalog: Catalog, repo_id: str, number: int) -> set[str]:
    with catalog.session() as session:
        return {p.filename for p in session.scalars(version_packages(repo_id, number))}


def version_numbers(catalog: Catalog, repo_id: str) -> list[int]:
    with catalog.session() as session:
        query = select(RepositoryVersion.number).where(RepositoryVersion.repository_id == repo_id)
        return sorted(session.scalars(query))


def latest_number(catalog: Catalog, repo_id: str) -> int:
    with catalog.session() as session:
        repo = session.get(Repository, repo_id)
        assert repo is not None
        return repo.latest_number


def version_id(session: Session, repository_id: str, number: int) -> str | None:
    there = select(RepositoryVersion.id).where(
        RepositoryVersion.repository_id == repository_id, RepositoryVersion.number == number
    )
    return session.scalar(there)


def number(version: RepositoryVersion | None) -> int:
    assert version is not None, "no new version"
    return version.number


def whl(name: str) -> str:
    return f"{name}-1.0-py3-none-any.whl"


# ---- migrations -----------------------------------------------------------------------------


def test_migrations_apply_cleanly_and_match_the_models(catalog: Catalog, tmp_path: Path) -> None:
    engine = catalog.engine
    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    with engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == head
    tables = set(inspect(engine).get_table_names())
    assert set(Base.metadata.tables) <= tables
    for name, table in Base.metadata.tables.items():
        columns = {c["name"] for c in inspect(engine).get_columns(name)}
        assert {c.name for c in table.columns} == columns, name
    prepare(engine)  # a second run (another worker) is a no-op
    with engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == head


def test_an_old_catalog_keeps_every_reference_through_the_upgrade(empty_engine: Engine) -> None:
    """A catalog early releases left at 0001 and 0002 - a remote that a repository, a
    distribution and an on-demand package refer to, a package in a repository - upgraded to the
    newest schema: the migrations that rebuild a table (copy, drop, rename) clear no reference
    (on SQLite they fired ON DELETE SET NULL) and are not stopped by one (ON DELETE RESTRICT:
    the server could not start)."""
    config = alembic_config(empty_engine)
    command.upgrade(config, "0001")
    tables = MetaData()
    tables.reflect(empty_engine)
    now = datetime.now(UTC)
    remote, repo, dist, pkg, synced = (str(uuid.uuid4()) for _ in range(5))
    stamps = {"pulp_created": now, "pulp_last_updated": now, "pulp_labels": {}}
    lists: dict[str, list[str]] = {
        key: [] for key in ("includes", "excludes", "package_types", "exclude_platforms")
    }
    package = {
        "name": "demo",
        "packagetype": "sdist",
        "python_version": "source",
        "size": 1,
        "metadata_json": {},
        "yanked": False,
        "upload_time": now,
        "origin": "upload",
        "pulp_created": now,
    }
    with empty_engine.begin() as conn:
        for table, values in [
            (
                "remotes",
                {
                    **stamps,
                    **lists,
                    "id": remote,
                    "name": "r2",
                    "url": "http://127.0.0.1:1/simple/",
                    "prereleases": True,
                    "keep_latest_packages": 0,
                    "policy": "on_demand",
                    "tls_validation": True,
                    "headers": [],
                },
            ),
            (
                "repositories",
                {
                    **stamps,
                    "id": repo,
                    "name": "mirror",
                    "remote_id": remote,
                    "autopublish": False,
                    "latest_number": 1,
                },
            ),
            (
                "distributions",
                {
                    **stamps,
                    "id": dist,
                    "name": "proxy2",
                    "base_path": "proxy2",
                    "remote_id": remote,
                    "allow_uploads": True,
                    "hidden": False,
                    "merge_remote": False,
                },
            ),
            (
                "packages",
                {
                    **package,
                    "id": pkg,
                    "filename": "demo-1.0.tar.gz",
                    "version": "1.0",
                    "sha256": "0" * 64,
                },
            ),
            (
                "repository_content",
                {"repository_id": repo, "package_id": pkg, "version_added": 1},
            ),
        ]:
            conn.execute(tables.tables[table].insert().values(**values))
    command.upgrade(config, "0002")  # on-demand packages refer to their remote from here on
    synced_row = {
        **package,
        "id": synced,
        "filename": "demo-2.0.tar.gz",
        "version": "2.0",
        "sha256": "1" * 64,
        "origin": "sync",
        "remote_id": remote,
        "policy": "on_demand",
    }
    tables = MetaData()
    tables.reflect(empty_engine)
    with empty_engine.begin() as conn:
        conn.execute(tables.tables["packages"].insert().values(**synced_row))
    prepare(empty_engine)  # what a start of the newest release does
    with Session(empty_engine) as session:
        assert session.scalars(select(Repository.remote_id)).all() == [remote]
        assert session.scalar(select(Package.remote_id).where(Package.id == synced)) == remote
        assert session.scalar(select(func.count()).select_from(RepositoryContent)) == 1
    distributions = MetaData()
    distributions.reflect(empty_engine, only=["distributions"])
    with empty_engine.connect() as conn:
        found = conn.execute(select(distributions.tables["distributions"].c.remote_id))
        assert found.scalars().all() == [remote]


def test_0003_moves_remote_settings_into_json_and_task_hrefs_into_references(
    empty_engine: Engine,
) -> None:
    """A catalog written by the previous release keeps its remotes' settings and its tasks'
    records through the upgrade, and back through the downgrade."""
    config = alembic_config(empty_engine)
    command.upgrade(config, "0002")
    repo, content = str(uuid.uuid4()), str(uuid.uuid4())
    version_href = f"/pulp/api/v3/repositories/python/python/{repo}/versions/3/"
    content_href = f"/pulp/api/v3/content/python/packages/{content}/"
    old_remote = {
        "id": str(uuid.uuid4()),
        "name": "corp",
        "url": "https://corp.example/simple/",
        "includes": ["acme-*"],
        "excludes": [],
        "prereleases": False,
        "package_types": [],
        "exclude_platforms": ["windows"],
        "keep_latest_packages": 2,
        "policy": "immediate",
        "tls_validation": True,
        "password": "pw-7",
        "headers": [{"X-Team": "infra"}],
        "max_retries": 1,
        "pulp_labels": {},
        "pulp_created": datetime.now(UTC),
        "pulp_last_updated": datetime.now(UTC),
    }
    with empty_engine.begin() as conn:
        remotes = Table("remotes", MetaData(), autoload_with=conn)
        tasks = Table("tasks", MetaData(), autoload_with=conn)
        conn.execute(remotes.insert().values(**old_remote))
        conn.execute(
            tasks.insert().values(
                id="t1",
                name="pullthrough.tasks.content.upload",
                state="completed",
                logging_cid="",
                pulp_created=datetime.now(UTC),
                progress_reports=[],
                created_resources=[version_href, content_href],
                reserved_resources=[],
                args={},
            )
        )

    command.upgrade(config, "head")
    with Catalog(empty_engine).session() as session:
        remote = session.scalars(select(Remote)).one()
        task = session.get(Task, "t1")
        assert task is not None
        assert task.created_resources == [
            {"kind": "repository_version", "id": repo, "number": 3},
            {"kind": "content", "id": content},
        ]
    settings = RemoteSettings.from_values(remote.name, remote.settings)
    assert (settings.url, settings.includes, settings.exclude_platforms) == (
        "https://corp.example/simple/",
        ["acme-*"],
        ["windows"],
    )
    assert (settings.prereleases, settings.keep_latest_packages, settings.policy) == (
        False,
        2,
        "immediate",
    )
    assert (settings.password, settings.header_map, settings.max_retries) == (
        "pw-7",
        {"X-Team": "infra"},
        1,
    )
    assert settings.connect_timeout == 10.0  # not set before: the declared default

    command.downgrade(config, "0002")
    with empty_engine.connect() as conn:
        remotes = Table("remotes", MetaData(), autoload_with=conn)
        tasks = Table("tasks", MetaData(), autoload_with=conn)
        row = conn.execute(select(remotes)).mappings().one()
        created = conn.execute(select(tasks.c.created_resources)).scalar_one()
    assert {k: row[k] for k in ("url", "includes", "policy", "password", "max_retries")} == {
        k: old_remote[k] for k in ("url", "includes", "policy", "password", "max_retries")
    }
    assert created == [version_href, content_href]


# ---- repositories and versions --------------------------------------------------------------


def test_0013_gives_workers_ids_and_clears_task_workers_that_are_none(
    empty_engine: Engine,
) -> None:
    """A worker gets its id (from its name, as new ones) and a creation time (its heartbeat);
    a task that names a process that is no worker (a write done in a request) names none."""
    config = alembic_config(empty_engine)
    command.upgrade(config, "0012")
    beat = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    with empty_engine.begin() as conn:
        tables = MetaData()
        tables.reflect(conn, only=["workers", "tasks"])
        conn.execute(tables.tables["workers"].insert().values(name="host-7-1", last_heartbeat=beat))
        for task, ran_by in (("ran", "host-7-1"), ("request", "host-7"), ("queued", None)):
            conn.execute(
                tables.tables["tasks"]
                .insert()
                .values(
                    id=task, name=task, state="completed", logging_cid="", pulp_created=beat,
                    progress_reports=[], created_resources=[], reserved_resources=[], args={},
                    worker=ran_by,
                )
            )  # fmt: skip

    command.upgrade(config, "head")
    with Catalog(empty_engine).session() as session:
        worker = session.scalars(select(Worker)).one()
        assert (worker.id, utc(worker.pulp_created)) == (worker_id("host-7-1"), beat)
        ran = {t.id: t.worker for t in session.scalars(select(Task))}
        assert ran == {"ran": "host-7-1", "request": None, "queued": None}
        session.add(Worker(name="host-8-1"))  # a new one: its id from its name
    with Catalog(empty_engine).session() as session:
        added = session.get(Worker, "host-8-1")
        assert added is not None and added.id == worker_id("host-8-1")


def an_old_package(engine: Engine) -> None:
    """Package `p1` in a catalog at an older revision, written with that revision's columns
    (0013 and 0014 have the same)."""
    with engine.begin() as conn:
        tables = MetaData()
        tables.reflect(conn, only=["packages"])
        conn.execute(
            tables.tables["packages"].insert().values(
                id="p1", filename=whl("old"), name="old", version="1.0", packagetype="bdist_wheel",
                python_version="py3", sha256="a" * 64, size=10, metadata_json={}, yanked=False,
                upload_time=datetime.now(UTC), origin="upload", pulp_created=datetime.now(UTC),
                policy="immediate",
            )
        )  # fmt: skip


def test_0014_adds_artifacts_to_an_existing_catalog(empty_engine: Engine) -> None:
    """A catalog with content gets an empty artifacts table, one artifact per sha256; going
    back drops it and leaves the content."""
    config = alembic_config(empty_engine)
    command.upgrade(config, "0013")
    an_old_package(empty_engine)  # p1

    command.upgrade(config, "head")
    digests = {"sha224": "b" * 56, "sha384": "b" * 96, "sha512": "b" * 128}
    with Catalog(empty_engine).session() as session:
        assert session.scalars(select(Artifact)).all() == []
        session.add(Artifact(sha256="a" * 64, size=10, **digests))
    with pytest.raises(IntegrityError), Catalog(empty_engine).session() as session:
        session.add(Artifact(sha256="a" * 64, size=10, **digests))
    with Catalog(empty_engine).session() as session:
        (artifact,) = session.scalars(select(Artifact)).all()
        assert artifact.pulp_created is not None and session.get(Package, "p1") is not None

    command.downgrade(config, "0013")
    with empty_engine.connect() as conn:
        assert "artifacts" not in inspect(conn).get_table_names()
        assert "packages" in inspect(conn).get_table_names()


def test_0015_gives_the_packages_there_no_labels(empty_engine: Engine) -> None:
    """A catalog's packages get labels, none at first; going back drops them."""
    config = alembic_config(empty_engine)
    command.upgrade(config, "0014")
    an_old_package(empty_engine)  # p1

    command.upgrade(config, "0015")
    with Catalog(empty_engine).session() as session:
        old = session.get(Package, "p1")
        assert old is not None and old.pulp_labels == {}
        old.pulp_labels = {"reviewed": "yes"}
    with Catalog(empty_engine).session() as session:
        assert session.get(Package, "p1").pulp_labels == {"reviewed": "yes"}  # type: ignore[union-attr]

    command.downgrade(config, "0014")
    with empty_engine.connect() as conn:
        assert "pulp_labels" not in {c["name"] for c in inspect(conn).get_columns("packages")}


def test_0016_adds_uploads_and_their_chunks(empty_engine: Engine) -> None:
    """Empty tables for uploads and chunks, one chunk per offset of an upload, the chunks
    going with their upload; going back drops them."""
    config = alembic_config(empty_engine)
    command.upgrade(config, "0015")
    command.upgrade(config, "head")
    with Catalog(empty_engine).session() as session:
        assert session.scalars(select(Upload)).all() == []
        upload = Upload(size=10)
        session.add(upload)
        session.flush()
        session.add(UploadChunk(upload_id=upload.id, offset=0, size=5, sha256="a" * 64))
        upload_id = upload.id
    with pytest.raises(IntegrityError), Catalog(empty_engine).session() as session:
        session.add(UploadChunk(upload_id=upload_id, offset=0, size=5, sha256="b" * 64))
    with Catalog(empty_engine).session() as session:
        session.execute(delete(Upload).where(Upload.id == upload_id))
    with Catalog(empty_engine).session() as session:
        assert session.scalars(select(UploadChunk)).all() == []  # ON DELETE CASCADE

    command.downgrade(config, "0015")
    with empty_engine.connect() as conn:
        names = inspect(conn).get_table_names()
        assert "uploads" not in names and "upload_chunks" not in names and "artifacts" in names


def test_0017_adds_the_repository_blocklist_and_error_on_reject(empty_engine: Engine) -> None:
    """A repository of before keeps its versions and rejects (error_on_reject true); an entry
    names a project or a file (not both, a version only with a name), once per repository, and
    goes with its repository; going back drops them."""
    config = alembic_config(empty_engine)
    command.upgrade(config, "0016")
    repo_id = str(uuid.uuid4())
    now = datetime.now(UTC)
    with empty_engine.begin() as conn:
        tables = MetaData()
        tables.reflect(conn)
        conn.execute(
            tables.tables["repositories"].insert().values(
                id=repo_id, name="old", autopublish=False, pulp_labels={}, latest_number=0,
                pulp_created=now, pulp_last_updated=now,
            )
        )  # fmt: skip
    command.upgrade(config, "head")
    with Catalog(empty_engine).session() as session:
        assert session.get(Repository, repo_id).error_on_reject is True  # type: ignore[union-attr]
        session.add_all(
            [
                RepositoryBlocklistEntry(repository_id=repo_id, name="x"),
                RepositoryBlocklistEntry(repository_id=repo_id, name="x", version="1.0"),
                RepositoryBlocklistEntry(repository_id=repo_id, filename="x-1.0.tar.gz"),
            ]
        )
    refused = [
        {"name": "x"},  # once per repository: every version
        {"name": "x", "version": "1.0"},
        {"filename": "x-1.0.tar.gz"},
        {"name": "y", "filename": "y-1.0.tar.gz"},  # one of them
        {},
        {"filename": "y-1.0.tar.gz", "version": "1.0"},  # a version only with a name
    ]
    for fields in refused:
        with pytest.raises(IntegrityError), Catalog(empty_engine).session() as session:
            session.add(RepositoryBlocklistEntry(repository_id=repo_id, **fields))
    with Catalog(empty_engine).session() as session:
        session.execute(delete(Repository).where(Repository.id == repo_id))
    with Catalog(empty_engine).session() as session:
        assert session.scalars(select(RepositoryBlocklistEntry)).all() == []  # CASCADE

    command.downgrade(config, "0016")
    with empty_engine.connect() as conn:
        assert "repository_blocklist_entries" not in inspect(conn).get_table_names()
        columns = {c["name"] for c in inspect(conn).get_columns("repositories")}
        assert "error_on_reject" not in columns and "autopublish" in columns


def test_a_read_only_transaction_reads_and_refuses_changes(catalog: Catalog) -> None:
    repo_id = make_repository(catalog, description="as created")
    with catalog.reading() as session:
        assert session.get(Repository, repo_id).description == "as created"  # type: ignore[union-attr]
    with pytest.raises(RuntimeError, match="read-only"), catalog.reading() as session:
        session.get(Repository, repo_id).description = "changed"  # type: ignore[union-attr]
    with pytest.raises(RuntimeError, match="read-only"), catalog.reading() as session:
        session.add(Remote(name="r"))
    with pytest.raises(RuntimeError, match="read-only"), catalog.reading() as session:
        session.execute(update(Repository).values(description="changed"))
    with catalog.session() as session:
        assert session.get(Repository, repo_id).description == "as created"  # type: ignore[union-attr]
        assert session.scalar(select(func.count()).select_from(Remote)) == 0


def test_add_new_inserts_a_row_once_with_its_defaults(catalog: Catalog) -> None:
    """What a cold file's request records: the row with the column defaults the ORM would give
    it; the same filename again (another worker's file, a sync's) leaves the first row as it
    was, and many threads adding one filename at once leave one row."""

    def cached(filename: str, sha256: str) -> Package:
        return Package(
            filename=filename,
            name="a",
            version="1.0",
            packagetype="bdist_wheel",
            sha256=sha256,
            size=100,
            requires_python=">=3.9",
            metadata_json={"summary": "first"},
            origin="cache",
        )

    catalog.add_new(cached(whl("a"), "1" * 64))
    catalog.add_new(cached(whl("a"), "2" * 64))
    with ThreadPoolExecutor(WRITERS) as pool:
        list(pool.map(lambda _: catalog.add_new(cached(whl("b"), "3" * 64)), range(WRITERS)))
    with catalog.session() as session:
        rows = {p.filename: p for p in session.scalars(select(Package))}
        assert session.scalar(select(func.count()).select_from(Package)) == 2
    row = rows[whl("a")]
    assert (row.sha256, row.metadata_json, row.origin, row.requires_python) == (
        "1" * 64,
        {"summary": "first"},
        "cache",
        ">=3.9",
    )
    assert len(row.id) == 36 and row.python_version == "" and row.yanked is False
    assert row.policy == "immediate" and row.upload_time is not None and row.remote_id is None


def test_create_repository_starts_at_an_empty_version_0(catalog: Catalog) -> None:
    repo_id = make_repository(catalog, description="d")
    assert latest_number(catalog, repo_id) == 0
    assert version_numbers(catalog, repo_id) == [0]
    assert files_in(catalog, repo_id, 0) == set()
    with catalog.session() as session:
        assert content_counts(session, repo_id, 0) == {"added": 0, "removed": 0, "present": 0}
        version = session.scalar(select(RepositoryVersion).where(RepositoryVersion.number == 0))
        assert version is not None and version.repository_id == repo_id


def test_new_version_only_when_the_content_set_changes(catalog: Catalog) -> None:
    a, b, c = add_packages(catalog, "a", "b", "c")
    repo_id = make_repository(catalog)

    with catalog.session() as session:
        v1 = new_version(session, repo_id, add=[a, b])
        assert v1 is not None and v1.number == 1 and v1.base_version_id is None  # none asked
        assert content_counts(session, repo_id, 1) == {"added": 2, "removed": 0, "present": 2}

    with catalog.session() as session:  # adding what is there, removing what is not: nothing
        assert new_version(session, repo_id, add=[a], remove=[c]) is None
        assert new_version(session, repo_id) is None
    assert latest_number(catalog, repo_id) == 1
    assert version_numbers(catalog, repo_id) == [0, 1]

    with catalog.session() as session:
        v2 = new_version(session, repo_id, add=[c, b], remove=[a])
        assert v2 is not None and v2.number == 2 and v2.base_version_id is None
        assert content_counts(session, repo_id, 2) == {"added": 1, "removed": 1, "present": 2}

    with catalog.session() as session:  # re-adding a removed package is a change again
        v3 = new_version(session, repo_id, add=[a], remove=[b, c])
        assert v3 is not None and v3.number == 3
        assert content_counts(session, repo_id, 3) == {"added": 1, "removed": 2, "present": 1}

    # every version keeps its own content
    assert files_in(catalog, repo_id, 0) == set()
    assert files_in(catalog, repo_id, 1) == {whl("a"), whl("b")}
    assert files_in(catalog, repo_id, 2) == {whl("b"), whl("c")}
    assert files_in(catalog, repo_id, 3) == {whl("a")}
    assert version_numbers(catalog, repo_id) == [0, 1, 2, 3]
    assert latest_number(catalog, repo_id) == 3
    with catalog.session() as session:  # counts of older versions are not disturbed either
        assert content_counts(session, repo_id, 1) == {"added": 2, "removed": 0, "present": 2}
        assert content_counts(session, repo_id, 2) == {"added": 1, "removed": 1, "present": 2}


def test_versions_of_two_repositories_are_independent(catalog: Catalog) -> None:
    a, b = add_packages(catalog, "a", "b")
    first, second = make_repository(catalog, "first"), make_repository(catalog, "second")
    with catalog.session() as session:
        assert number(new_version(session, first, add=[a])) == 1
        assert number(new_version(session, second, add=[a, b])) == 1
        assert number(new_version(session, first, remove=[a])) == 2
    assert files_in(catalog, first, 2) == set()
    assert files_in(catalog, second, 1) == {whl("a"), whl("b")}
    with catalog.session() as session:
        assert content_counts(session, second, 1)["present"] == 2
        package = session.get(Package, a)
        assert package is not None
        assert is_in_any_repository(session, package.sha256)
        assert not is_in_any_repository(session, "0" * 64)


def test_explicit_base_version_is_recorded(catalog: Catalog) -> None:
    a, b = add_packages(catalog, "a", "b")
    repo_id = make_repository(catalog)
    with catalog.session() as session:
        new_version(session, repo_id, add=[a])
        new_version(session, repo_id, add=[b])
        v3 = new_version(session, repo_id, remove=[b], base=1)
        assert v3 is not None and (v3.number, v3.base_version_id) == (
            3,
            version_id(session, repo_id, 1),
        )
    assert files_in(catalog, repo_id, 3) == {whl("a")}


def test_a_version_based_on_another_starts_from_what_that_one_holds(catalog: Catalog) -> None:
    """A modify's base_version: its content, changed as asked, whatever the latest holds; a
    base deleted since (its rows squashed into the next version) is no start for a version."""
    a, b, c = add_packages(catalog, "a", "b", "c")
    repo_id = make_repository(catalog)
    with catalog.session() as session:
        new_version(session, repo_id, add=[a])  # 1: a
        new_version(session, repo_id, add=[b])  # 2: a b
        new_version(session, repo_id, add=[c])  # 3: a b c
        assert number(new_version(session, repo_id, add=[c], base=1)) == 4
        assert number(new_version(session, repo_id, remove=["*"], exactly=True, base=2)) == 5
    assert files_in(catalog, repo_id, 4) == {whl("a"), whl("c")}
    assert files_in(catalog, repo_id, 5) == set()
    with catalog.session() as other:  # another request's, committed before this one's change
        assert delete_version(other, repo_id, 2)
    with catalog.session() as session, pytest.raises(VersionGone):
        new_version(session, repo_id, add=[c], base=2)
    assert version_numbers(catalog, repo_id) == [0, 1, 3, 4, 5]


def test_a_version_based_on_another_repositorys_version_names_it_until_it_goes(
    catalog: Catalog,
) -> None:
    """As Pulp's base_version: any repository's version, the start of the new one's content,
    and its base until that version goes - deleted, or with its repository (SET NULL)."""
    a, b, c = add_packages(catalog, "a", "b", "c")
    src, dst = make_repository(catalog, "src"), make_repository(catalog, "dst")
    with catalog.session() as session:
        new_version(session, src, add=[a])  # src 1: a
        new_version(session, src, add=[b])  # src 2: a b
        new_version(session, dst, add=[c])  # dst 1: c
        from_src = new_version(session, dst, add=[c], base=1, base_repository=src)  # dst 2
        latest = new_version(session, dst, remove=[a], base=2, base_repository=src)  # dst 3
        assert from_src is not None and latest is not None
        assert from_src.base_version_id == version_id(session, src, 1)
        assert latest.base_version_id == version_id(session, src, 2)
        with pytest.raises(VersionGone):
            new_version(session, dst, base=9, base_repository=src)
    assert files_in(catalog, dst, 2) == {whl("a"), whl("c")}
    assert files_in(catalog, dst, 3) == {whl("b")}
    assert destroy(catalog, src, 1)
    with catalog.session() as session:
        session.execute(delete(Repository).where(Repository.id == src))  # its versions too
    with catalog.session() as session:
        bases = select(RepositoryVersion.number, RepositoryVersion.base_version_id).where(
            RepositoryVersion.repository_id == dst
        )
        assert sorted(tuple(row) for row in session.execute(bases)) == [
            (0, None), (1, None), (2, None), (3, None)
        ]  # fmt: skip
    assert files_in(catalog, dst, 3) == {whl("b")}


def test_retain_repo_versions_keeps_only_the_newest(catalog: Catalog) -> None:
    a, b, c, d = add_packages(catalog, "a", "b", "c", "d")
    repo_id = make_repository(catalog, retain_repo_versions=2)
    with catalog.session() as session:
        new_version(session, repo_id, add=[a])  # 1
        assert version_numbers_in(session, repo_id) == [0, 1]
        new_version(session, repo_id, add=[b])  # 2
        assert version_numbers_in(session, repo_id) == [1, 2]
    with catalog.session() as session:
        new_version(session, repo_id, remove=[a])  # 3
        new_version(session, repo_id, add=[c, d])  # 4
    assert version_numbers(catalog, repo_id) == [3, 4]
    # pruning old versions loses nothing of the kept ones
    assert files_in(catalog, repo_id, 4) == {whl("b"), whl("c"), whl("d")}
    assert files_in(catalog, repo_id, 3) == {whl("b")}
    with catalog.session() as session:
        assert content_counts(session, repo_id, 4) == {"added": 2, "removed": 0, "present": 3}
        # the oldest kept version, as Pulp squashes the deleted ones into it: it adds what it
        # holds, removes nothing, and names no deleted base
        assert content_counts(session, repo_id, 3) == {"added": 1, "removed": 0, "present": 1}
        based = new_version(session, repo_id, add=[a], base=3)  # 5: a b, based on 3 (kept)
        assert based is not None
        new_version(session, repo_id, remove=[a])  # 6: b; 5 and 6 kept, 3 (5's base) deleted
        base_of_5 = select(RepositoryVersion.base_version_id).where(
            RepositoryVersion.id == based.id
        )
        assert session.scalar(base_of_5) is None

    with catalog.session() as session:  # retain 1: only the latest version is left
        repo = session.get(Repository, repo_id)
        assert repo is not None
        repo.retain_repo_versions = 1
    with catalog.session() as session:
        new_version(session, repo_id, add=[c])  # 7
    assert version_numbers(catalog, repo_id) == [7]
    assert files_in(catalog, repo_id, 7) == {whl("b"), whl("c")}

    unlimited = make_repository(catalog, "unlimited")
    with catalog.session() as session:
        for pid in (a, b, c):
            new_version(session, unlimited, add=[pid])
    assert version_numbers(catalog, unlimited) == [0, 1, 2, 3]


def summaries(catalog: Catalog, repo_id: str) -> dict[int, tuple[int, int, int]]:
    """Every version's (added, removed, present)."""
    with catalog.session() as session:
        return {
            n: tuple(content_counts(session, repo_id, n).values())  # type: ignore[misc]
            for n in version_numbers_in(session, repo_id)
        }


def destroy(catalog: Catalog, repo_id: str, number: int) -> bool:
    with catalog.session() as session:
        return delete_version(session, repo_id, number)


def test_deleting_a_version_squashes_its_changes_into_the_next(catalog: Catalog) -> None:
    a, b, c, d, e = add_packages(catalog, "a", "b", "c", "d", "e")
    repo_id = make_repository(catalog)
    with catalog.session() as session:
        new_version(session, repo_id, add=[a, b, e])  # 1: a b e
        new_version(session, repo_id, add=[c, d], remove=[a, e])  # 2: b c d
        new_version(session, repo_id, add=[a], remove=[d])  # 3: a b c (a again, d only in 2)
        new_version(session, repo_id, add=[e], remove=[b])  # 4: a c e
    before = {n: files_in(catalog, repo_id, n) for n in (1, 3, 4)}
    assert destroy(catalog, repo_id, 2)
    assert version_numbers(catalog, repo_id) == [0, 1, 3, 4]
    # every version left holds what it held
    assert {n: files_in(catalog, repo_id, n) for n in (1, 3, 4)} == before
    # 3 is counted from 1 now: c added (d, only in 2, is in no version), e removed; a stayed
    assert summaries(catalog, repo_id) == {
        0: (0, 0, 0),
        1: (3, 0, 3),
        3: (1, 1, 3),
        4: (1, 1, 3),
    }
    with catalog.session() as session:  # one range per stay: a from 1 on, d in none
        rows = session.execute(
            select(
                RepositoryContent.package_id,
                RepositoryContent.version_added,
                RepositoryContent.version_removed,
            ).where(RepositoryContent.repository_id == repo_id)
        )
        assert sorted((row[0], row[1], row[2]) for row in rows) == sorted(
            [(a, 1, None), (b, 1, 4), (c, 3, None), (e, 1, 3), (e, 4, None)]
        )
        assert session.get(Package, d) is not None  # an orphan now, for orphan cleanup
        assert not delete_version(session, repo_id, 2)  # gone: nothing to do


def test_deleting_the_latest_version_makes_the_one_before_latest(catalog: Catalog) -> None:
    a, b, c = add_packages(catalog, "a", "b", "c")
    repo_id = make_repository(catalog)
    with catalog.session() as session:
        new_version(session, repo_id, add=[a, b])  # 1
        new_version(session, repo_id, add=[c], remove=[a])  # 2
        publication = Publication(repository_version_id=select_version(session, repo_id, 2))
        session.add(publication)
        session.flush()
        published = publication.id
    assert destroy(catalog, repo_id, 2)
    assert latest_number(catalog, repo_id) == 1
    assert files_in(catalog, repo_id, 1) == {whl("a"), whl("b")}
    with catalog.session() as session:
        assert session.get(Publication, published) is None  # deleted with its version
        repo = session.get(Repository, repo_id)
        assert repo is not None and repo.last_number == 2
        # the next version gets a number never given, and nothing of 2 comes back
        v = new_version(session, repo_id, add=[a, b, a])
        assert v is None
        v = new_version(session, repo_id, remove=[b])
        assert v is not None and v.number == 3
        assert repo.latest_number == 3
    assert files_in(catalog, repo_id, 3) == {whl("a")}
    assert summaries(catalog, repo_id) == {0: (0, 0, 0), 1: (2, 0, 2), 3: (0, 1, 1)}
    assert destroy(catalog, repo_id, 3) and destroy(catalog, repo_id, 0)
    assert version_numbers(catalog, repo_id) == [1]
    assert summaries(catalog, repo_id) == {1: (2, 0, 2)}


def test_a_list_of_versions_counts_as_each_version_would(catalog: Catalog) -> None:
    """`content_counts_of` (a page of versions in two grouped queries) gives every version the
    summary its definition gives: rows added at it, removed at it, and present in it, after
    versions that add, remove, add again and are deleted (squashed into the next) at random."""
    ids = add_packages(catalog, *(f"p{i}" for i in range(10)))
    repo_id, other = make_repository(catalog), make_repository(catalog, "other")
    rnd = random.Random(7)
    with catalog.session() as session:
        new_version(session, other, add=ids[:3])  # another repository's rows are not counted
        for step in range(40):
            numbers = version_numbers_in(session, repo_id)
            if step % 7 == 6 and len(numbers) > 2:
                delete_version(session, repo_id, rnd.choice(numbers[:-1]))
            else:
                new_version(session, repo_id, add=rnd.sample(ids, 3), remove=rnd.sample(ids, 2))
        numbers = version_numbers_in(session, repo_id)
        rc = RepositoryContent

        def count(*where: Any) -> int:
            query = select(func.count()).select_from(rc).where(rc.repository_id == repo_id, *where)
            return session.scalar(query) or 0

        expected = {
            (repo_id, n): {
                "added": count(rc.version_added == n),
                "removed": count(rc.version_removed == n),
                "present": len(session.scalars(version_packages(repo_id, n)).all()),
            }
            for n in numbers
        }
        asked = [(repo_id, n) for n in numbers] + [(other, 1)]
        counted = content_counts_of(session, asked)
    assert len(numbers) > 20 and any(c["removed"] for c in expected.values())
    assert counted == {**expected, (other, 1): {"added": 3, "removed": 0, "present": 3}}
    # one version alone, or a few of a list, as in the whole list
    with catalog.session() as session:
        some = [(repo_id, numbers[3]), (repo_id, numbers[-1])]
        assert content_counts_of(session, some) == {key: expected[key] for key in some}


def select_version(session: Session, repo_id: str, number: int) -> str:
    query = select(RepositoryVersion.id).where(
        RepositoryVersion.repository_id == repo_id, RepositoryVersion.number == number
    )
    return session.scalars(query).one()


def test_a_versions_base_deleted_is_no_base(catalog: Catalog) -> None:
    a, b = add_packages(catalog, "a", "b")
    repo_id = make_repository(catalog)
    with catalog.session() as session:
        new_version(session, repo_id, add=[a])  # 1
        new_version(session, repo_id, add=[b])  # 2
        new_version(session, repo_id, remove=[b], base=1)  # 3, based on 1
    assert destroy(catalog, repo_id, 1)
    with catalog.session() as session:
        bases = select(RepositoryVersion.number, RepositoryVersion.base_version_id).where(
            RepositoryVersion.repository_id == repo_id
        )
        assert sorted(tuple(row) for row in session.execute(bases)) == [
            (0, None),
            (2, None),
            (3, None),
        ]
    assert summaries(catalog, repo_id)[2] == (2, 0, 2)  # a and b, counted from 0


def test_the_only_version_and_distributed_ones_are_kept(catalog: Catalog) -> None:
    (a,) = add_packages(catalog, "a")
    repo_id = make_repository(catalog)
    with pytest.raises(OnlyVersion, match=r"^\[PLP0011\] Cannot delete repository version"):
        destroy(catalog, repo_id, 0)
    with catalog.session() as session:
        new_version(session, repo_id, add=[a])  # 1
        new_version(session, repo_id, remove=[a])  # 2
        served = Distribution(name="d", base_path="d", repository_id=repo_id)
        session.add(served)
    with pytest.raises(DistributedVersion, match="used to distribute content"):
        destroy(catalog, repo_id, 2)  # the repository's latest, served
    with catalog.session() as session:
        dist = session.scalars(select(Distribution)).one()
        dist.repository_id = None
        dist.repository_version_id = select_version(session, repo_id, 1)
    with pytest.raises(DistributedVersion):
        destroy(catalog, repo_id, 1)  # served itself
    with catalog.session() as session:
        publication = Publication(repository_version_id=select_version(session, repo_id, 0))
        session.add(publication)
        session.flush()
        dist = session.scalars(select(Distribution)).one()
        dist.repository_version_id, dist.publication_id = None, publication.id
    with pytest.raises(DistributedVersion):
        destroy(catalog, repo_id, 0)  # its publication served
    assert version_numbers(catalog, repo_id) == [0, 1, 2]
    assert destroy(catalog, repo_id, 2)  # the latest, no distribution serving the repository
    assert latest_number(catalog, repo_id) == 1


def test_retain_counts_the_versions_left_after_deletions(catalog: Catalog) -> None:
    a, b, c = add_packages(catalog, "a", "b", "c")
    repo_id = make_repository(catalog)
    with catalog.session() as session:
        new_version(session, repo_id, add=[a])  # 1
        new_version(session, repo_id, add=[b])  # 2
    assert destroy(catalog, repo_id, 1)
    with catalog.session() as session:
        repo = session.get(Repository, repo_id)
        assert repo is not None
        repo.retain_repo_versions = 3
    with catalog.session() as session:
        new_version(session, repo_id, add=[c])  # 3: 0, 2 and 3 kept
    assert version_numbers(catalog, repo_id) == [0, 2, 3]


def test_retention_keeps_the_versions_distributions_serve(catalog: Catalog) -> None:
    """As Pulp's cleanup of old versions: a version a distribution is pinned to, or serves
    through a publication, is not deleted by `retain_repo_versions` (its distribution would be
    left serving nothing), nor counted among the versions kept; the content it holds stays."""
    a, b, c, d = add_packages(catalog, "a", "b", "c", "d")
    repo_id = make_repository(catalog)
    with catalog.session() as session:
        new_version(session, repo_id, add=[a])  # 1
        new_version(session, repo_id, add=[b])  # 2
        pinned = Distribution(
            name="pinned",
            base_path="pinned",
            repository_version_id=select_version(session, repo_id, 1),
        )
        publication = Publication(repository_version_id=select_version(session, repo_id, 2))
        session.add_all([pinned, publication])
        session.flush()
        session.add(
            Distribution(name="published", base_path="published", publication_id=publication.id)
        )
        session.get(Repository, repo_id).retain_repo_versions = 2  # type: ignore[union-attr]
    with catalog.session() as session:
        new_version(session, repo_id, remove=[a])  # 3
        new_version(session, repo_id, add=[c])  # 4
        new_version(session, repo_id, add=[d])  # 5
    assert version_numbers(catalog, repo_id) == [1, 2, 4, 5]
    with catalog.session() as session:
        dists = session.scalars(select(Distribution).order_by(Distribution.name)).all()
        assert [d.repository_version_id for d in dists] == [
            select_version(session, repo_id, 1),
            None,
        ]
        assert [d.publication_id for d in dists] == [None, publication.id]
    assert files_in(catalog, repo_id, 1) == {whl("a")}
    assert files_in(catalog, repo_id, 2) == {whl("a"), whl("b")}
    assert files_in(catalog, repo_id, 5) == {whl("b"), whl("c"), whl("d")}


@pytest.mark.parametrize("empty_engine", ["postgresql"], indirect=True)  # SQLite: one writer
def test_retention_keeps_a_version_a_distribution_is_set_to_while_it_decides(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: retention reads which old versions no distribution serves, then deletes
    them one by one, each locked and checked again. A distribution set to one of them in
    between (committed before that version's lock) makes the check refuse its deletion: that
    version is kept, as one served is - not the whole change (an upload, a sync, a modify)
    failed with "cannot be deleted because it ... (is) used to distribute content"."""
    a, b, c = add_packages(catalog, "a", "b", "c")
    repo_id = make_repository(catalog, retain_repo_versions=1)
    with catalog.session() as session:
        dist = Distribution(name="pinned", base_path="pinned")
        session.add(dist)
        session.flush()
        dist_id = dist.id
    with catalog.session() as session:
        new_version(session, repo_id, add=[a])  # 1 (0 goes)
    real = versions_module.is_distributed
    pinned: list[str] = []

    def then_pinned(session: Session, version: RepositoryVersion) -> bool:
        served = real(session, version)
        if version.number == 1 and not pinned:  # retention found it unserved: pinned now
            pinned.append(version.id)
            with catalog.session() as other:  # another request, committed at once
                pin = update(Distribution).where(Distribution.id == dist_id)
                other.execute(pin.values(repository_version_id=version.id))
        return served

    monkeypatch.setattr(versions_module, "is_distributed", then_pinned)
    with catalog.session() as session:
        assert number(new_version(session, repo_id, add=[b])) == 2  # 1 is served now: kept
    assert pinned and version_numbers(catalog, repo_id) == [1, 2]
    with catalog.session() as session:
        assert session.get_one(Distribution, dist_id).repository_version_id == pinned[0]
        new_version(session, repo_id, add=[c])  # 3: 1 still kept, 2 goes
    assert version_numbers(catalog, repo_id) == [1, 3]


def version_numbers_in(session: Session, repo_id: str) -> list[int]:
    query = select(RepositoryVersion.number).where(RepositoryVersion.repository_id == repo_id)
    return sorted(session.scalars(query))


def test_a_failed_transaction_leaves_no_version(catalog: Catalog) -> None:
    (a,) = add_packages(catalog, "a")
    repo_id = make_repository(catalog)
    with pytest.raises(RuntimeError), catalog.session() as session:
        assert new_version(session, repo_id, add=[a]) is not None
        raise RuntimeError("the caller fails after making the version")
    assert latest_number(catalog, repo_id) == 0
    assert version_numbers(catalog, repo_id) == [0]
    assert files_in(catalog, repo_id, 1) == set()


# ---- concurrency ----------------------------------------------------------------------------


def test_concurrent_writers_get_distinct_versions_and_lose_nothing(catalog: Catalog) -> None:
    names = [f"pkg{i}" for i in range(WRITERS)]
    ids = add_packages(catalog, *names)
    repo_id = make_repository(catalog)
    start = threading.Barrier(WRITERS, timeout=THREAD_TIMEOUT)

    def write(package_id: str) -> int:
        start.wait()
        with catalog.session() as session:
            version = new_version(session, repo_id, add=[package_id])
            assert version is not None
            return version.number

    with ThreadPoolExecutor(WRITERS) as pool:
        futures = [pool.submit(write, pid) for pid in ids]
        numbers = [f.result(timeout=THREAD_TIMEOUT) for f in futures]

    assert sorted(numbers) == list(range(1, WRITERS + 1))
    assert latest_number(catalog, repo_id) == WRITERS
    assert version_numbers(catalog, repo_id) == list(range(WRITERS + 1))
    assert files_in(catalog, repo_id, WRITERS) == {whl(n) for n in names}
    with catalog.session() as session:
        assert content_counts(session, repo_id, WRITERS) == {
            "added": 1,
            "removed": 0,
            "present": WRITERS,
        }
        # each version holds exactly one package more than the one before it
        for number in range(1, WRITERS + 1):
            counts = content_counts(session, repo_id, number)
            assert counts == {"added": 1, "removed": 0, "present": number}, number
        total = session.scalar(
            select(func.count()).select_from(version_packages(repo_id, WRITERS).subquery())
        )
        assert total == WRITERS


def test_concurrent_writers_that_loaded_the_repository_first(catalog: Catalog) -> None:
    """A writer that read the repository earlier in its transaction (as the API's modify does
    with a base version) must still build on the newest version once it holds the lock."""
    names = [f"pkg{i}" for i in range(WRITERS)]
    ids = add_packages(catalog, *names)
    repo_id = make_repository(catalog)
    # PostgreSQL: every writer has read version 0 before any takes the lock. SQLite serializes
    # whole write transactions (BEGIN IMMEDIATE), so there they can only start together.
    loaded = threading.Barrier(WRITERS, timeout=THREAD_TIMEOUT)
    serialized = catalog.engine.dialect.name == "sqlite"

    def write(package_id: str) -> int:
        if serialized:
            loaded.wait()
        with catalog.session() as session:
            repo = session.get(Repository, repo_id)
            assert repo is not None and repo.latest_number >= 0
            if not serialized:
                loaded.wait()
            version = new_version(session, repo_id, add=[package_id])
            assert version is not None
            return version.number

    with ThreadPoolExecutor(WRITERS) as pool:
        futures = [pool.submit(write, pid) for pid in ids]
        numbers = [f.result(timeout=THREAD_TIMEOUT) for f in futures]

    assert sorted(numbers) == list(range(1, WRITERS + 1))
    assert files_in(catalog, repo_id, WRITERS) == {whl(n) for n in names}


def test_a_writer_that_waited_for_the_lock_builds_on_the_version_made_meanwhile(
    catalog: Catalog,
) -> None:
    """The latest version is read once the repository's lock is held: on PostgreSQL a
    `SELECT ... FOR UPDATE` that waited evaluates its select list (latest_number's subquery)
    in the snapshot taken before it waited, which has not the version made meanwhile. Here the
    second writer adds back what the first removed: that is a change, never "nothing"."""
    (a,) = add_packages(catalog, "a")
    repo_id = make_repository(catalog)
    with catalog.session() as session:
        assert number(new_version(session, repo_id, add=[a])) == 1
    waiting = threading.Event()

    def second() -> int | None:
        with catalog.session() as session:
            waiting.set()
            version = new_version(session, repo_id, add=[a])
            return None if version is None else version.number

    with ThreadPoolExecutor(1) as pool, catalog.session() as session:
        assert number(new_version(session, repo_id, remove=[a])) == 2
        future = pool.submit(second)
        assert waiting.wait(THREAD_TIMEOUT)
        _until_a_lock_is_awaited(catalog)
        session.commit()
    assert future.result(timeout=THREAD_TIMEOUT) == 3
    assert files_in(catalog, repo_id, 2) == set()
    assert files_in(catalog, repo_id, 3) == {whl("a")}


def _until_a_lock_is_awaited(catalog: Catalog) -> None:
    """On PostgreSQL, wait (bounded) until a backend waits for a row lock; on SQLite the
    second writer waits for BEGIN IMMEDIATE instead, which it cannot be seen doing: a pause."""
    if catalog.engine.dialect.name == "sqlite":
        time.sleep(0.5)
        return
    query = text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
    deadline = time.monotonic() + THREAD_TIMEOUT
    while time.monotonic() < deadline:
        with catalog.engine.connect() as conn:
            if conn.scalar(query):
                return
        time.sleep(0.02)
    raise AssertionError("the second writer never waited for the repository's lock")


@pytest.mark.parametrize("empty_engine", ["postgresql"], indirect=True)  # SQLite: one writer
def test_a_distribution_pointed_at_a_version_being_deleted_conflicts_it_is_not_emptied(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: a distribution set to serve a version after its deletion checked that none
    does, and committed before the deletion, must not be left serving nothing (the foreign
    key's SET NULL): its write waits for the deletion, then fails (the API's 409)."""
    a, b = add_packages(catalog, "a", "b")
    repo_id = make_repository(catalog)
    with catalog.session() as session:
        first = new_version(session, repo_id, add=[a])
        assert first is not None
        first_id = first.id
        assert number(new_version(session, repo_id, add=[b])) == 2
        dist = Distribution(name="pinned", base_path="pinned")
        session.add(dist)
        session.flush()
        dist_id = dist.id
    checked, go = threading.Event(), threading.Event()
    real = versions_module.is_distributed

    def paused(session: Session, version: RepositoryVersion) -> bool:
        served = real(session, version)
        checked.set()
        assert go.wait(THREAD_TIMEOUT)
        return served

    monkeypatch.setattr(versions_module, "is_distributed", paused)

    def delete() -> bool:
        with catalog.session() as session:
            return delete_version(session, repo_id, 1)

    def point() -> None:
        with catalog.session() as session:
            pin = update(Distribution).where(Distribution.id == dist_id)
            session.execute(pin.values(repository_version_id=first_id))

    with ThreadPoolExecutor(2) as pool:
        deleting = pool.submit(delete)
        assert checked.wait(THREAD_TIMEOUT)
        pointing = pool.submit(point)
        deadline = time.monotonic() + 5
        while not pointing.done() and not _lock_awaited(catalog) and time.monotonic() < deadline:
            time.sleep(0.02)
        go.set()
        deleted = deleting.result(timeout=THREAD_TIMEOUT)
        failed = pointing.exception(timeout=THREAD_TIMEOUT)
    with catalog.session() as session:
        served = session.get(Distribution, dist_id)
        assert served is not None
        if deleted:
            assert isinstance(failed, IntegrityError), "the distribution was left serving nothing"
            assert served.repository_version_id is None
        else:
            assert failed is None and served.repository_version_id == first_id


def _lock_awaited(catalog: Catalog) -> bool:
    query = text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
    with catalog.engine.connect() as conn:
        return bool(conn.scalar(query))


# ---- eviction against promotion -------------------------------------------------------------


def cached_package(catalog: Catalog, store: ArtifactStore, name: str) -> Package:
    """A file the cache fetched: stored, and an orphaned package in the catalog."""
    data = f"{name}'s bytes".encode()
    package = Package(
        filename=whl(name),
        name=name,
        version="1.0",
        packagetype="bdist_wheel",
        sha256=store.put_bytes(data),
        size=len(data),
        origin="cache",
    )
    with catalog.session() as session:
        session.add(package)
    return package


def test_eviction_and_promotion_never_leave_a_repository_without_its_file(
    catalog: Catalog, tmp_path: Path
) -> None:
    """A cached file being evicted while a `modify` adds its package to a repository: the
    promotion cannot commit between eviction's check and its removal of the file."""
    store = ArtifactStore(tmp_path / "artifacts")
    package = cached_package(catalog, store, "cached")
    sha = package.sha256
    repo_id = make_repository(catalog)
    promotion: list[BaseException | None] = []

    def promote() -> None:
        try:
            with catalog.session() as session:
                new_version(session, repo_id, add=[package.id])
            promotion.append(None)
        except Exception as exc:
            promotion.append(exc)

    promoter = threading.Thread(target=promote)

    def remove_file() -> int:
        promoter.start()  # the promotion tries to commit right now ...
        promoter.join(timeout=0.5)  # ... and cannot while eviction holds the package
        assert promoter.is_alive() and promotion == []
        return store.delete(sha)

    assert CachedContent(catalog).evict(sha, remove_file)
    promoter.join(timeout=THREAD_TIMEOUT)
    assert len(promotion) == 1 and promotion[0] is not None  # it failed: the package is gone
    assert files_in(catalog, repo_id, latest_number(catalog, repo_id)) == set()
    assert not store.has(sha)


def test_a_promoted_file_is_not_evicted(catalog: Catalog, tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    package = cached_package(catalog, store, "promoted")
    sha = package.sha256
    repo_id = make_repository(catalog)
    with catalog.session() as session:
        new_version(session, repo_id, add=[package.id])
    assert not CachedContent(catalog).evict(sha, lambda: store.delete(sha))
    assert store.has(sha)


# ---- label selectors (catalog.labels) -------------------------------------------------------

LABELLED = {
    "prod-eu": {"env": "prod", "region": "eu-west", "app.kubernetes.io/x": "legacy"},
    "prod-us": {"env": "prod", "region": "US-East", "team name": "Core, Infra"},
    "dev": {"env": "dev", "owner": None},
    "bare": {},
}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("env", {"prod-eu", "prod-us", "dev"}),
        ("!env", {"bare"}),
        ("env=prod", {"prod-eu", "prod-us"}),
        ("env=Prod", set()),  # = is exact
        ("env!=prod", {"dev"}),  # has the key, another value
        ("region~east", {"prod-us"}),  # ~ ignores case
        ("region~%", set()),  # a LIKE wildcard is a character like any other
        ("owner", {"dev"}),  # a null value: the key is there
        ("!owner", {"prod-eu", "prod-us", "bare"}),
        ("owner!=x", {"dev"}),
        ("owner=", set()),  # null is not the empty string
        ("env=prod,region~EU", {"prod-eu"}),  # terms are ANDed
        (r"team name=Core\, Infra", {"prod-us"}),
        ("app.kubernetes.io", set()),  # a dotted key is one key, not a path
    ],
)
def test_a_label_selector_picks_the_rows_in_sql(
    catalog: Catalog, selector: str, expected: set[str]
) -> None:
    add_labelled(catalog)
    assert labelled_names(catalog, selector) == expected


def test_selectors_of_one_shape_are_bound_with_their_own_keys(catalog: Catalog) -> None:
    """The engine caches a statement's SQL by its shape: each key is a parameter of its own."""
    add_labelled(catalog)
    assert labelled_names(catalog, "region") == {"prod-eu", "prod-us"}
    assert labelled_names(catalog, "owner") == {"dev"}
    assert labelled_names(catalog, "!region") == {"dev", "bare"}
    assert labelled_names(catalog, "!owner") == {"prod-eu", "prod-us", "bare"}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("city~zürich", {"upper", "lower"}),
        ("city~ZÜRICH", {"upper", "lower"}),
        ("city~Ürich", {"upper", "lower"}),
        ("city~zurich", set()),
    ],
)
def test_a_contains_selector_ignores_case_beyond_ascii_on_sqlite(
    tmp_path: Path, selector: str, expected: set[str]
) -> None:
    """`~` ignores case in any script on SQLite, whose own lower() folds ASCII only (so that
    `~ZÜRICH` missed `ZÜRICH`), as PostgreSQL does in a UTF-8 locale. (On PostgreSQL it folds
    as the database's locale does, as Pulp's; these tests' cluster has the C locale, which
    folds ASCII only, so the case is SQLite's alone.)"""
    with _sqlite(tmp_path) as url:
        engine = make_engine(url)
        try:
            prepare(engine)
            catalog = Catalog(engine)
            with catalog.session() as session:
                session.add(Repository(name="upper", pulp_labels={"city": "ZÜRICH"}))
                session.add(Repository(name="lower", pulp_labels={"city": "zürich"}))
            assert labelled_names(catalog, selector) == expected
        finally:
            engine.dispose()


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("équipe", {"accented"}),
        ("!équipe", {"plain"}),
        ("équipe=rouge", {"accented"}),
        ("équipe!=bleu", {"accented"}),
        ("équipe~ROUGE", {"accented"}),
        ("größe", {"plain"}),
    ],
)
def test_a_selector_finds_keys_beyond_ascii(
    catalog: Catalog, selector: str, expected: set[str]
) -> None:
    """A key may have any script's letters (Pulp's [\\w .-]): the JSON text of the labels
    escapes them (\\u00e9), which SQLite's JSON paths before 3.45 compare as written."""
    with catalog.session() as session:
        session.add(Repository(name="accented", pulp_labels={"équipe": "rouge"}))
        session.add(Repository(name="plain", pulp_labels={"größe": None}))
    assert labelled_names(catalog, selector) == expected


def add_labelled(catalog: Catalog) -> None:
    with catalog.session() as session:
        for name, labels in LABELLED.items():
            session.add(Repository(name=name, pulp_labels=labels))


def labelled_names(catalog: Catalog, selector: str) -> set[str]:
    with catalog.reading() as session:
        where = selected(Repository.pulp_labels, parse_selector(selector))
        return set(session.scalars(select(Repository.name).where(where)))


def test_a_read_sees_one_snapshot_while_a_writer_commits(catalog: Catalog) -> None:
    """A list counts its rows, then reads a page of them, in one read: a package a writer
    commits in between is in neither, on PostgreSQL as on SQLite (else `count` said 1 and
    `results` held none)."""
    add_packages(catalog, "before")
    with catalog.reading() as session:
        counted = session.scalar(select(func.count()).select_from(Package))
        add_packages(catalog, "meanwhile")  # another connection, committed
        listed = session.scalars(select(Package.name)).all()
    assert (counted, listed) == (1, ["before"])
    with catalog.reading() as session:
        assert session.scalar(select(func.count()).select_from(Package)) == 2


@pytest.mark.parametrize("empty_engine", ["postgresql"], indirect=True)  # SQLite: one writer
def test_a_publication_of_the_latest_takes_the_latest_there_is_when_it_is_made(
    catalog: Catalog,
) -> None:
    """PostgreSQL: a publication of "the latest" whose request read the repository before a
    deletion of that latest version committed publishes the version that is the latest now
    (it looked for the deleted one: a 500)."""
    a, b = add_packages(catalog, "a", "b")
    repo_id = make_repository(catalog)
    with catalog.session() as session:
        assert number(new_version(session, repo_id, add=[a])) == 1
        assert number(new_version(session, repo_id, add=[b])) == 2
    with catalog.session() as session:
        repo = session.get(Repository, repo_id)
        assert repo is not None and repo.latest_number == 2  # what the request read
        assert destroy(catalog, repo_id, 2)  # another request's, committed meanwhile
        assert PUBLICATIONS.build is not None
        publication = PUBLICATIONS.build(session, {"repository": repo})
        session.add(publication)
        session.flush()
        assert publication.repository_version_id == select_version(session, repo_id, 1)


def insert_packages(session: Session, ids: list[str]) -> None:
    """Package rows of these ids, as rows (a big mirror's tens of thousands in a second), all of
    the same bytes: what is tested is the catalog's work, not the files'."""
    session.execute(
        insert(Package),
        [
            {"id": pid, "filename": whl(f"p{pid}"), "name": f"p{pid}", "version": "1.0"}
            | {"packagetype": "bdist_wheel", "sha256": "ab" * 32, "size": 1}
            for pid in ids
        ],
    )


@pytest.mark.parametrize("empty_engine", ["postgresql"], indirect=True)  # its parameter limit
def test_a_version_removing_more_packages_than_a_statement_takes_parameters(
    catalog: Catalog,
) -> None:
    """PostgreSQL takes at most 65,535 parameters in a statement: a version that removes 69,990
    of 70,000 packages (a mirror sync of a remote whose filters now leave ten, a modify that
    removes everything) marks them removed in batches (one list of them all failed)."""
    repo_id = make_repository(catalog)
    ids = [f"{i:036d}" for i in range(70_000)]
    with catalog.session() as session:
        insert_packages(session, ids)
        rows = [{"repository_id": repo_id, "package_id": pid, "version_added": 1} for pid in ids]
        session.execute(insert(RepositoryContent), rows)
        session.add(RepositoryVersion(repository_id=repo_id, number=1))
        session.execute(update(Repository).where(Repository.id == repo_id).values(last_number=1))
    with catalog.session() as session:
        assert number(new_version(session, repo_id, add=ids[:10], exactly=True)) == 2
    assert files_in(catalog, repo_id, 2) == {whl(f"p{pid}") for pid in ids[:10]}
    with catalog.session() as session:
        held = select(func.count()).select_from(version_packages(repo_id, 1).subquery())
        assert session.scalar(held) == 70_000  # version 1 unchanged


@pytest.mark.parametrize("empty_engine", ["postgresql"], indirect=True)  # its planner
def test_deleting_a_version_between_two_big_ones_squashes_in_one_pass(catalog: Catalog) -> None:
    """A user deletes version 2 of a mirror of 30,000 packages (a mirror sync whose filters
    left ten; version 3, the next sync, took the rest back): its changes are squashed into
    version 3 in statements that each read the repository once (matching the re-added rows in
    one query scanned the repository's rows once per row: minutes)."""
    repo_id = make_repository(catalog)
    ids = [f"{i:036d}" for i in range(30_000)]
    with catalog.session() as session:
        insert_packages(session, ids)
        rows = [
            {"repository_id": repo_id, "package_id": pid, "version_added": 1}
            | {"version_removed": None if i < 10 else 2}
            for i, pid in enumerate(ids)
        ]
        rows += [
            {"repository_id": repo_id, "package_id": pid, "version_added": 3} for pid in ids[10:]
        ]
        session.execute(insert(RepositoryContent), rows)
        session.add_all(RepositoryVersion(repository_id=repo_id, number=n) for n in (1, 2, 3))
        session.execute(update(Repository).where(Repository.id == repo_id).values(last_number=3))
    with catalog.session() as session:
        session.execute(text("SET LOCAL statement_timeout = '10s'"))  # ample for one pass
        assert delete_version(session, repo_id, 2)
    assert version_numbers(catalog, repo_id) == [0, 1, 3]
    with catalog.session() as session:
        rc = RepositoryContent
        for held in (1, 3):
            members = select(rc.package_id).where(present_in(repo_id, held))
            assert set(session.scalars(members)) == set(ids)
        assert content_counts(session, repo_id, 3) == {"added": 0, "removed": 0, "present": 30_000}
        assert session.scalar(select(func.count()).select_from(rc)) == 30_000  # one row each


def _sqlite_steps_of_evictions(path: Path, others: int) -> int:
    """Thousands of SQLite virtual machine instructions (a progress handler: the same on a
    loaded machine as on an idle one) that evicting 20 cached files costs in a catalog of
    `others` more packages, each with PEP 658 metadata."""
    engine = make_engine(f"sqlite:///{path}")
    prepare(engine)
    catalog = Catalog(engine)
    created = datetime(2026, 1, 2, tzinfo=UTC)
    fields = {"name": "p", "version": "1", "packagetype": "bdist_wheel", "size": 1}
    with catalog.session() as session:
        session.add_all(
            Package(
                filename=f"synced-{n}.whl",
                sha256=f"a{n:063x}",
                metadata_sha256=f"b{n:063x}",
                origin="sync",
                pulp_created=created,
                **fields,
            )
            for n in range(others)
        )
        session.add_all(
            Package(
                filename=f"copy-{n}.whl",
                sha256=f"c{n:063x}",
                origin="cache",
                pulp_created=created,
                **fields,
            )
            for n in range(20)
        )
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0  # go on

    engine.dispose()
    event.listen(engine, "connect", lambda conn, _: conn.set_progress_handler(count, 1000))
    for n in range(20):
        assert CachedContent(catalog).evict(f"c{n:063x}", lambda: 1)
    engine.dispose()
    return steps[0]


def test_an_eviction_costs_the_same_in_a_bigger_catalog(tmp_path: Path) -> None:
    """Eviction asks, for each file it evicts, whether any package keeps those bytes as its
    PEP 658 metadata (packages.metadata_sha256), which had no index: each victim read the whole
    packages table (54 ms a victim among 400,000 packages; an eviction pass of 10,000 victims
    took minutes). Four times the catalog must not cost four times the work per victim."""
    small = _sqlite_steps_of_evictions(tmp_path / "small.sqlite3", 2_000)
    large = _sqlite_steps_of_evictions(tmp_path / "large.sqlite3", 8_000)
    assert large < 2 * small, (small, large)
