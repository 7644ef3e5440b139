"""Rebuilding a damaged cache ledger from the catalog: which files become evictable again."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from pullthrough.catalog.db import Catalog, make_engine, prepare
from pullthrough.catalog.models import (
    Artifact,
    Package,
    Repository,
    RepositoryContent,
    Upload,
    UploadChunk,
)
from pullthrough.services.ledger_rebuild import (
    REBUILDING,
    UNKNOWN_READERS,
    LedgerInUse,
    cache_entries,
    open_local_ledger,
    repair_local_ledger,
)
from pullthrough.storage.ledger import CacheLedger, Copy, Entry, damaged_parts, rebuilt_entries
from pullthrough.storage.locks import LockDir

CREATED = datetime(2026, 1, 2, tzinfo=UTC)


@pytest.mark.parametrize(
    ("copies", "held", "expected"),
    [
        ([], set(), []),
        ([Copy("a", 10, 1.0)], set(), [Entry("a", 10, 1.0)]),
        ([Copy("a", 10, 1.0)], {"a"}, []),  # held by something else: never evictable
        # two copies of the same bytes: one entry, last used at the later caching
        (
            [Copy("b", 5, 1.0), Copy("b", 5, 3.0), Copy("a", 7, 2.0)],
            {"c"},
            [
                Entry("a", 7, 2.0),
                Entry("b", 5, 3.0),
            ],
        ),
    ],
)
def test_rebuilt_entries_are_the_copies_nothing_else_holds(
    copies: list[Copy], held: set[str], expected: list[Entry]
) -> None:
    assert rebuilt_entries(copies, held) == expected


def test_restored_entries_are_counted_once_and_keep_their_last_use(tmp_path: Path) -> None:
    ledger = CacheLedger(tmp_path, max_size=100, clock=lambda: 50.0)
    try:
        ledger.record("a", 10)  # recorded meanwhile: stays as it is
        ledger.restore([Entry("a", 10, 1.0), Entry("b", 20, 2.0)])
        assert (ledger.total(), ledger.count()) == (30, 2)
        assert (ledger.used_at("a"), ledger.used_at("b")) == (50.0, 2.0)
    finally:
        ledger.close()


@pytest.mark.parametrize("how", ["garbage", "truncated"])
def test_a_damaged_ledger_database_is_found(tmp_path: Path, how: str) -> None:
    ledger = CacheLedger(tmp_path, max_size=100)
    for i in range(500):
        ledger.record(f"{i:064x}", 10)
    ledger.close()
    assert damaged_parts(tmp_path) == []
    db = tmp_path / "files" / "cache.db"
    with db.open("r+b") as fh:
        if how == "garbage":
            fh.write(b"\xde\xad\xbe\xef" * 1024)
        else:
            fh.truncate(db.stat().st_size // 3)
    assert damaged_parts(tmp_path) == ["files"]


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    engine = make_engine(f"sqlite:///{tmp_path / 'catalog.sqlite3'}")
    prepare(engine)
    return Catalog(engine)


def package(sha: str, filename: str, origin: str = "cache", **more: object) -> Package:
    return Package(
        filename=filename,
        name="p",
        version="1",
        packagetype="bdist_wheel",
        sha256=sha,
        size=len(sha),
        origin=origin,
        pulp_created=CREATED,
        **more,
    )


def sha(letter: str) -> str:
    return letter * 64


def fill(catalog: Catalog) -> None:
    """Pull-through copies, each but the first held by something other than the cache."""
    with catalog.session() as session:
        repo = Repository(name="r")
        session.add(repo)
        promoted = package(sha("b"), "promoted.whl")
        session.add_all(
            [
                package(sha("a"), "orphan.whl"),  # the one evictable file
                promoted,
                package(sha("c"), "also-uploaded.whl"),
                package(sha("c"), "uploaded.whl", origin="upload"),  # the same bytes, uploaded
                package(sha("d"), "artifact.whl"),
                Artifact(sha256=sha("d"), sha224="", sha384="", sha512="", size=64),
                package(sha("e"), "chunk.whl"),
                package(sha("f"), "metadata.whl"),
                package(sha("0"), "private.whl", origin="upload", metadata_sha256=sha("f")),
                package(sha("9"), "synced.whl", origin="sync"),  # not a copy: never recorded
            ]
        )
        upload = Upload(size=64)
        session.add(upload)
        session.flush()
        session.add(UploadChunk(upload_id=upload.id, offset=0, size=64, sha256=sha("e")))
        session.add(
            RepositoryContent(repository_id=repo.id, package_id=promoted.id, version_added=1)
        )


def test_only_copies_no_repository_artifact_chunk_or_package_holds_are_rebuilt(
    catalog: Catalog,
) -> None:
    fill(catalog)
    assert cache_entries(catalog) == [Entry(sha("a"), 64, CREATED.timestamp())]


def test_a_damaged_ledger_is_set_aside_and_rebuilt_from_the_catalog(
    catalog: Catalog, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fill(catalog)
    directory = tmp_path / "ledger"
    before = CacheLedger(directory, max_size=100)
    before.record(sha("z"), 1)
    before.close()
    (directory / "files" / "cache.db").write_bytes(b"not a database" * 100)
    locks = LockDir(tmp_path / "locks")
    with caplog.at_level(logging.WARNING, logger="pullthrough"):
        repair_local_ledger(catalog, directory, locks)
    assert rebuilt(directory) == ([sha("a")], 64)
    (aside,) = directory.glob("files.damaged-*")
    assert (aside / "cache.db").read_bytes() == b"not a database" * 100  # kept as it was
    assert f"set aside as {aside}" in caplog.text
    assert "rebuilt from the catalog: 1 cached files, 64 bytes" in caplog.text
    repair_local_ledger(catalog, directory, locks)  # sound now: left as it is
    assert list(directory.glob("*.damaged-*")) == [aside]
    assert not (directory / REBUILDING).exists()


def test_a_damaged_ledger_another_process_has_open_is_not_set_aside(
    catalog: Catalog, tmp_path: Path
) -> None:
    """The ledger open elsewhere (a running server's worker, held in use by open_local_ledger):
    renamed aside under it, that process would go on writing where nobody reads. LedgerInUse
    says so, and the ledger stays where it is; once it is closed, the repair goes ahead."""
    fill(catalog)
    directory = tmp_path / "ledger"
    locks = LockDir(tmp_path / "locks")
    elsewhere = open_local_ledger(directory, locks, max_size=100)
    (directory / "files" / "cache.db").write_bytes(b"not a database" * 100)
    with pytest.raises(LedgerInUse, match="damaged \\(files\\)"):
        repair_local_ledger(catalog, directory, locks)
    assert list(directory.glob("*.damaged-*")) == []
    assert not (directory / REBUILDING).exists()
    elsewhere.close()
    repair_local_ledger(catalog, directory, locks)
    assert len(list(directory.glob("files.damaged-*"))) == 1
    assert rebuilt(directory) == ([sha("a")], 64)


def test_a_rebuild_cut_short_is_taken_up_again(catalog: Catalog, tmp_path: Path) -> None:
    """A process killed while it rebuilt: its mark stays, and the next start completes it."""
    fill(catalog)
    directory = tmp_path / "ledger"
    directory.mkdir()
    (directory / REBUILDING).touch()  # the file set aside, no entry written yet
    repair_local_ledger(catalog, directory, LockDir(tmp_path / "locks"))
    assert rebuilt(directory) == ([sha("a")], 64)
    assert not (directory / REBUILDING).exists()
    assert list(directory.glob("*.damaged-*")) == []


def test_a_damaged_readers_database_makes_every_copy_no_remotes(
    catalog: Catalog, tmp_path: Path
) -> None:
    """Which remotes a copy fetched with credentials is for cannot be rebuilt: rather than
    anyone's (served to a remote its index refuses), each copy is no remote's until one
    downloads it once more."""
    directory = tmp_path / "ledger"
    before = CacheLedger(directory, max_size=100)
    before.record(sha("a"), 1)  # fetched anonymously: anyone's
    before.record(sha("b"), 1)
    before.set_readers(sha("b"), frozenset({"r" * 32}))  # fetched with a remote's credentials
    before.close()
    (directory / "readers" / "cache.db").write_bytes(b"not a database" * 100)
    repair_local_ledger(catalog, directory, LockDir(tmp_path / "locks"))
    after = CacheLedger(directory, max_size=100)
    try:
        assert after.readers(sha("a")) == after.readers(sha("b")) == frozenset()
        assert sorted(e.sha256 for e in after.entries()) == [sha("a"), sha("b")]  # still cache
    finally:
        after.close()
    assert list(directory.glob("readers.damaged-*")) and not (directory / UNKNOWN_READERS).exists()


def rebuilt(directory: Path) -> tuple[list[str], int]:
    """The files a ledger tracks, and its total."""
    ledger = CacheLedger(directory, max_size=100)
    try:
        return sorted(e.sha256 for e in ledger.entries()), ledger.total()
    finally:
        ledger.close()


def _catalog_of(path: Path, copies: int) -> Catalog:
    """A catalog of `copies` pull-through copies and as many synced packages, half of them in
    a repository: the shape of a big cache beside big repositories."""
    engine = make_engine(f"sqlite:///{path}")
    prepare(engine)
    catalog = Catalog(engine)
    with catalog.session() as session:
        repo = Repository(name="r")
        session.add(repo)
        session.flush()
        for n in range(copies):
            session.add(package(f"{n:064x}", f"copy-{n}.whl"))
            synced = package(f"{n + copies:064x}", f"synced-{n}.whl", origin="sync")
            session.add(synced)
            if n % 2:
                session.flush()
                session.add(
                    RepositoryContent(repository_id=repo.id, package_id=synced.id, version_added=1)
                )
    return catalog


def _sqlite_steps(catalog: Catalog, run: Callable[[], object]) -> int:
    """How many thousand SQLite virtual machine instructions `run` costs: its work, counted
    the same on a loaded machine as on an idle one."""
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0  # go on

    def counting(dbapi_connection: Any, _: Any) -> None:
        dbapi_connection.set_progress_handler(count, 1000)

    catalog.engine.dispose()
    event.listen(catalog.engine, "connect", counting)
    try:
        run()
    finally:
        event.remove(catalog.engine, "connect", counting)
        catalog.engine.dispose()
    return steps[0]


def test_the_rebuild_costs_in_proportion_to_the_catalog_not_its_square(tmp_path: Path) -> None:
    """cache_entries (a damaged ledger's rebuild, and every orphan cleanup's hand-back of
    copies) asked in batches of 500 bytes which of them something else records, and each
    batch read the whole packages table again (no index on metadata_sha256; a repository's
    packages by `IN (SELECT ...)`): quadratic, 8 s for 100,000 copies, minutes for a million.
    Four times the catalog must cost about four times the work, not sixteen."""
    small = _catalog_of(tmp_path / "small.sqlite3", 2_000)
    large = _catalog_of(tmp_path / "large.sqlite3", 8_000)
    found: dict[str, int] = {}
    cost = {
        "small": _sqlite_steps(small, lambda: found.update(small=len(cache_entries(small)))),
        "large": _sqlite_steps(large, lambda: found.update(large=len(cache_entries(large)))),
    }
    assert found == {"small": 2_000, "large": 8_000}
    assert cost["large"] < 6 * cost["small"], cost
