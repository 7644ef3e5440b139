"""The services in-process, without an HTTP server of ours: resolution (local content first,
then the remote through its filters), pull-through, the registry's view of the catalog, and the
task worker. The upstream is a real index on loopback; timings are injected, not patched."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import sqlite3
import threading
import time
import tracemalloc
import uuid
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import ExitStack, closing
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import msgspec
import pytest
from flask import Flask
from packaging.utils import NormalizedName
from sqlalchemy import Engine, delete, event, func, insert, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from test_remote_pages import WrittenByAnotherVersion
from werkzeug.test import EnvironBuilder

from pullthrough.api import kinds
from pullthrough.app import create_app
from pullthrough.catalog.db import Catalog, database_url, make_engine, prepare
from pullthrough.catalog.models import (
    Artifact,
    CacheEntry,
    Distribution,
    Package,
    Remote,
    Repository,
    RepositoryBlocklistEntry,
    RepositoryContent,
    Task,
    Worker,
    now,
)
from pullthrough.catalog.versions import create_repository, new_version, version_packages
from pullthrough.config import ConfigError, RemoteSettings, Settings, load_settings
from pullthrough.core.models import DistFile
from pullthrough.core.repository_blocklist import PackagesBlocked
from pullthrough.services import audit as audit_module
from pullthrough.services import orphans as orphans_module
from pullthrough.services import pullthrough as pullthrough_module
from pullthrough.services import sync as sync_module
from pullthrough.services import tasks as tasks_module
from pullthrough.services import uploads as uploads_module
from pullthrough.services.container import (
    BACKGROUND_TASKS,
    ORPHAN_CLEANUP,
    REPAIR,
    SYNC,
    Services,
    build_services,
    sync_config,
)
from pullthrough.services.distribution import Distribution as ServedDistribution
from pullthrough.services.distribution import NotFound
from pullthrough.services.health import online_workers
from pullthrough.services.packages import package_from_file
from pullthrough.services.pullthrough import (
    HOLD_BACK,
    STORING_THREADS,
    PullThrough,
    StoredFile,
    StreamedFile,
    relayable,
)
from pullthrough.services.remote_pages import copy_key
from pullthrough.services.repair import RepairFailed, repair
from pullthrough.services.sync import Syncer
from pullthrough.services.tasks import TaskContext, TaskWorker, enqueue
from pullthrough.services.uploads import UploadRefused
from pullthrough.storage.ledger import CacheLedger
from pullthrough.storage.locks import LockDir, stored_bytes
from pullthrough.storage.store import (
    ArtifactStore,
    Opened,
    ReadFrom,
    StorageFull,
    StorageUnavailable,
)
from pullthrough.upstream.client import UpstreamClient, UpstreamError
from pullthrough.web.content import PRECONDITION_FAILED, range_span
from support.packages import build_wheel
from support.postgres import private_database
from support.seaweed import S3Server
from support.servers import config_text, serving, wait_until
from support.upstream import Upstream, UpstreamFile, extract_metadata

WHL_01 = "shelf_reader-0.1-py3-none-any.whl"
WHL_02 = "shelf_reader-0.2-py3-none-any.whl"
SDIST_01 = "shelf_reader-0.1.tar.gz"


def settings_for(upstream: Upstream, tmp_path: Path, **remote: object) -> Settings:
    config = tmp_path / "pullthrough.toml"
    config.write_text(config_text(upstream.index_url, tmp_path / "data", **remote))
    return load_settings(config, environ={})


@pytest.fixture
def services(upstream: Upstream, tmp_path: Path) -> Iterator[Services]:
    svc = build_services(settings_for(upstream, tmp_path))
    try:
        yield svc
    finally:
        svc.close()


def add_distribution(svc: Services, name: str, **columns: object) -> None:
    with svc.catalog.session() as session:
        remote = session.scalars(select(Remote).where(Remote.name == "up")).one()
        session.add(Distribution(name=name, base_path=name, remote_id=remote.id, **columns))
    svc.registry.changed()


def local_repository(svc: Services, tmp_path: Path, project: str, version: str) -> str:
    """A repository holding one uploaded wheel; returns its id."""
    with svc.catalog.session() as session:
        repo_id = create_repository(session, name=f"local-{project}").id
    wheel = build_wheel(tmp_path / "local", project, version)
    with wheel.open("rb") as fh:
        svc.uploads.upload(repo_id, fh, wheel.name, actor="admin")
    return repo_id


def filenames(svc: Services, base_path: str, project: str) -> set[str]:
    dist = svc.registry.get(base_path)
    assert dist is not None
    return {f.filename for f in dist.project(NormalizedName(project)).page.files}


def test_a_prepared_thread_opens_no_connection_when_it_reads(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a request reads first on a thread of its own (the page copies, the shared
    renderings, the counters, the ledger, the catalog) opens no SQLite connection on a thread
    prepared for it (gunicorn_worker.prepare_threads), where it opens one per cache without."""
    opened: list[object] = []
    connect = sqlite3.connect

    def counted(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        opened.append(args[0])
        connection: sqlite3.Connection = connect(*args, **kwargs)
        return connection

    def reads() -> None:
        for cache in (services.pages_cache, services.renders_cache, services.counters.cache):
            cache.get("page")
        services.ledger.tracks("0" * 64)
        services.ledger.sha_for_url("https://files.example/a-1.0.tar.gz")
        with services.catalog.reading() as session:
            session.execute(select(1))

    def on_a_new_thread(job: Callable[[], None]) -> list[object]:
        opened.clear()
        thread = threading.Thread(target=job)
        thread.start()
        thread.join()
        return list(opened)

    monkeypatch.setattr(sqlite3, "connect", counted)
    assert len(on_a_new_thread(reads)) >= 5  # without: each cache's connection, at least

    def prepared_then_reads() -> None:
        services.prepare_thread()
        opened.clear()
        reads()

    assert on_a_new_thread(prepared_then_reads) == []


# ---- resolution -----------------------------------------------------------------------------


def test_a_local_project_shadows_the_remote_one_unless_merged(
    services: Services, tmp_path: Path
) -> None:
    repo_id = local_repository(services, tmp_path, "shelf-reader", "9.0")
    add_distribution(services, "shadow", repository_id=repo_id)
    add_distribution(services, "merged", repository_id=repo_id, merge_remote=True)

    ours = "shelf_reader-9.0-py3-none-any.whl"
    assert filenames(services, "shadow", "shelf-reader") == {ours}
    assert {ours, WHL_01, WHL_02} <= filenames(services, "merged", "shelf-reader")
    # a project we do not hold comes from the remote either way
    assert filenames(services, "shadow", "meta-lib") == {"meta_lib-2.0-py3-none-any.whl"}


def test_the_remote_filters_apply_to_pages_and_direct_requests(
    upstream: Upstream, tmp_path: Path
) -> None:
    svc = build_services(settings_for(upstream, tmp_path, excludes=["shelf-reader==0.1"]))
    try:
        dist = svc.registry.get("main")
        assert dist is not None
        listed = filenames(svc, "main", "shelf-reader")
        assert WHL_02 in listed and WHL_01 not in listed
        with pytest.raises(NotFound, match=WHL_01):
            svc.pullthrough.open(dist, WHL_01)
        assert not upstream.requests_for(WHL_01, server="files")
    finally:
        svc.close()


def test_a_page_being_fetched_is_not_fetched_again_by_reloaded_distributions(
    services: Services, upstream: Upstream
) -> None:
    """One upstream fetch per page per process, also for the distributions of a reload that
    happens meanwhile, and for another distribution on the same remote."""
    upstream.delay, upstream.fault_scope = 0.5, "index"
    pages: list[set[str]] = []

    def page_of(base_path: str) -> None:
        pages.append(filenames(services, base_path, "shelf-reader"))

    first = threading.Thread(target=page_of, args=("main",))
    first.start()
    assert wait_until(lambda: upstream.requests_for("shelf-reader", server="index"), 5)
    add_distribution(services, "second")  # a reload, while the page is being fetched
    others = [threading.Thread(target=page_of, args=(name,)) for name in ("main", "second")]
    for thread in others:
        thread.start()
    for thread in [first, *others]:
        thread.join(timeout=10)
    assert len(pages) == 3 and pages[0] == pages[1] == pages[2] and {WHL_01, WHL_02} <= pages[0]
    assert len(upstream.requests_for("shelf-reader", server="index")) == 1


# ---- pull-through ---------------------------------------------------------------------------


def test_a_file_is_fetched_once_then_served_from_the_store(
    services: Services, upstream: Upstream
) -> None:
    dist, expected = main_and_wheel(services, upstream)

    first = services.pullthrough.open(dist, WHL_02)
    assert isinstance(first, StreamedFile)
    with closing(first):
        assert b"".join(first) == expected.data
    second = services.pullthrough.open(dist, WHL_02)
    assert isinstance(second, StoredFile)
    with second.file:
        assert second.file.read() == expected.data

    assert len(upstream.requests_for(WHL_02, server="files", method="GET")) == 1
    assert services.ledger.total() == len(expected.data)  # an orphan the LRU may evict

    def cached() -> tuple[str, str] | None:  # catalogued just after it is stored
        with services.catalog.session() as session:
            found = session.scalar(select(Package).where(Package.filename == WHL_02))
            return None if found is None else (found.origin, found.sha256)

    assert wait_until(cached, 10)
    assert cached() == ("cache", expected.sha256)


def main_and_wheel(svc: Services, upstream: Upstream) -> tuple[ServedDistribution, UpstreamFile]:
    """The `main` distribution, and the upstream's shelf-reader 0.2 wheel (a small file)."""
    dist = svc.registry.get("main")
    assert dist is not None
    return dist, next(f for f in upstream.files_for("shelf-reader") if f.filename == WHL_02)


def streamed(svc: Services, dist: ServedDistribution, filename: str) -> StreamedFile:
    opened = svc.pullthrough.open(dist, filename)
    assert isinstance(opened, StreamedFile)  # not stored: fetched from the upstream
    return opened


def lock_is_free(svc: Services, dist: ServedDistribution, filename: str) -> bool:
    """Whether no download holds the file's single-flight lock (taken and let go at once)."""
    lock = svc.pullthrough.locks.lock(dist.find_file(filename)[0].url)
    if not lock.acquire(timeout=0, blocking=False):
        return False
    lock.release()
    return True


def stored_soon(opened: StreamedFile) -> None:
    """Wait for a file's storing, which runs alongside its answer."""
    assert opened.stored is not None  # not stored before its answer
    opened.stored.result(timeout=10)


def big_wheel(upstream: Upstream, tmp_path: Path) -> UpstreamFile:
    """A wheel bigger than the held-back tail: sent as it arrives, from a thread of its own."""
    path = build_wheel(tmp_path / "big", "big-lib", "1.0")
    with zipfile.ZipFile(path, "a") as wheel:
        wheel.writestr("big_lib/blob.bin", os.urandom(2 * HOLD_BACK))
    return upstream.add_file("big-lib", path)


def test_a_client_that_reads_nothing_holds_up_nobody(
    services: Services, upstream: Upstream
) -> None:
    """A small file is stored once verified, whatever its first client does: the lock other
    requests wait on is let go without that client reading a byte, or its answer closing."""
    dist, expected = main_and_wheel(services, upstream)
    first = streamed(services, dist, WHL_02)
    stored_soon(first)
    assert services.store.has(expected.sha256) and lock_is_free(services, dist, WHL_02)
    assert services.ledger.total() == len(expected.data)
    with closing(first):
        assert b"".join(first) == expected.data  # its bytes are still there for it
    assert list(services.store.tmp.iterdir()) == []


def test_a_small_file_closed_unread_is_stored_all_the_same(
    services: Services, upstream: Upstream
) -> None:
    """A client that goes away before the body (the server closes an answer it never sent)."""
    dist, expected = main_and_wheel(services, upstream)
    first = streamed(services, dist, WHL_02)
    first.close()
    stored_soon(first)
    assert services.store.has(expected.sha256) and lock_is_free(services, dist, WHL_02)
    again = services.pullthrough.open(dist, WHL_02)
    assert isinstance(again, StoredFile)
    again.file.close()
    assert len(upstream.requests_for(WHL_02, server="files", method="GET")) == 1


def wheels_of_their_own(upstream: Upstream, tmp_path: Path, count: int) -> dict[str, str]:
    """`count` small wheels, each the one file of a project of its own: filename -> sha256."""
    made = {}
    for n in range(count):
        path = build_wheel(tmp_path / "own", f"own-{n}", "1.0")
        made[path.name] = upstream.add_file(f"own-{n}", path).sha256
    return made


def hold_publishing(
    services: Services, monkeypatch: pytest.MonkeyPatch, held: Callable[[str], bool] = bool
) -> threading.Event:
    """The store's publish made to wait (an object store that takes its time), for the files
    whose sha256 `held` picks, until the event returned is set (10 s at most)."""
    go_on = threading.Event()
    real = services.store.publish

    def publish(tmp: Path, sha256: str) -> None:
        if held(sha256):
            assert go_on.wait(10)
        real(tmp, sha256)

    monkeypatch.setattr(services.store, "publish", publish)
    return go_on


def test_with_every_storing_thread_busy_a_small_file_is_stored_before_its_answer(
    services: Services, upstream: Upstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No queue of files waiting for a storing thread (each would hold its lock and temporary
    file): with all of them held up by a slow store, the next file is stored right away."""
    dist = services.registry.get("main")
    assert dist is not None
    *slow, last = wheels_of_their_own(upstream, tmp_path, STORING_THREADS + 1).items()
    go_on = hold_publishing(services, monkeypatch, lambda sha256: sha256 != last[1])
    held = [streamed(services, dist, filename) for filename, _ in slow]
    quick = streamed(services, dist, last[0])
    assert quick.stored is None  # stored before its answer, not queued
    assert services.store.has(last[1]) and lock_is_free(services, dist, last[0])
    quick.close()
    go_on.set()
    for opened in held:
        opened.close()
        stored_soon(opened)
    assert all(services.store.has(sha) for _, sha in slow)


def test_a_stopping_process_stores_a_small_file_before_its_answer(
    services: Services, upstream: Upstream
) -> None:
    """At a worker's exit the storing threads are gone: the file is stored in the request's
    own thread, and nothing (lock, temporary file) is left behind."""
    dist, expected = main_and_wheel(services, upstream)
    services.pullthrough.close()
    with closing(streamed(services, dist, WHL_02)) as first:
        assert first.stored is None
        assert services.store.has(expected.sha256) and lock_is_free(services, dist, WHL_02)
        assert b"".join(first) == expected.data
    assert list(services.store.tmp.iterdir()) == []


def test_the_next_request_for_a_file_being_stored_is_served_from_the_store(
    services: Services, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client's next request for a file it has just received, while that file is still being
    stored, and whose look in the store (an object store's HEAD) misses just before the store
    ends: it waits, or finds it on a second look once it has the lock; one upstream GET."""
    dist = services.registry.get("main")
    assert dist is not None
    real_open = services.store.open

    def slow_miss(sha256: str, *, read_from: ReadFrom | None = None) -> Opened | None:
        if (found := real_open(sha256, read_from=read_from)) is None:
            time.sleep(0.05)  # the round trip of a HEAD that found nothing
        return found

    monkeypatch.setattr(services.store, "open", slow_miss)
    with closing(streamed(services, dist, WHL_02)) as first:
        whole = b"".join(first)
    again = services.pullthrough.open(dist, WHL_02)
    assert isinstance(again, StoredFile)
    with again.file:
        assert again.file.read() == whole
    assert len(upstream.requests_for(WHL_02, server="files", method="GET")) == 1


@pytest.mark.parametrize("big", [False, True], ids=["small", "big"])
def test_a_file_that_cannot_be_stored_is_still_sent_whole(
    services: Services,
    upstream: Upstream,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    big: bool,
) -> None:
    """The disk fills between the check and the rename: the client has the verified bytes, the
    store has nothing (not even a temporary file), and the next request fetches it again."""
    dist, expected = main_and_wheel(services, upstream)
    if big:
        expected = big_wheel(upstream, tmp_path)
    name = expected.filename

    def full(tmp_path: Path, sha256: str) -> None:
        raise StorageFull(errno.ENOSPC, "no space left for the file store")

    monkeypatch.setattr(services.store, "publish", full)
    with closing(streamed(services, dist, name)) as first:
        assert b"".join(first) == expected.data
    stored_soon(first)
    assert not services.store.has(expected.sha256) and lock_is_free(services, dist, name)
    assert list(services.store.tmp.iterdir()) == [] and services.ledger.total() == 0
    monkeypatch.undo()
    with closing(streamed(services, dist, name)) as second:
        assert b"".join(second) == expected.data
    stored_soon(second)
    assert services.store.has(expected.sha256)
    assert len(upstream.requests_for(name, server="files", method="GET")) == 2


def test_a_big_files_last_bytes_do_not_wait_for_its_storing(
    services: Services, upstream: Upstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The held-back tail waits for the digest, not for the disk or the object store (a big
    upload): the client has every byte while the file is still being stored."""
    dist = services.registry.get("main")
    assert dist is not None
    big = big_wheel(upstream, tmp_path)
    go_on = hold_publishing(services, monkeypatch)
    with closing(streamed(services, dist, big.filename)) as first:
        assert b"".join(first) == big.data
        assert not services.store.has(big.sha256) and not lock_is_free(services, dist, big.filename)
    go_on.set()
    stored_soon(first)
    assert services.store.has(big.sha256) and lock_is_free(services, dist, big.filename)
    assert services.ledger.total() == len(big.data)


def test_another_workers_request_for_a_big_wheels_metadata_waits_for_its_storing(
    services: Services,
    upstream: Upstream,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A second worker (services of its own on the same data folder) asked for the metadata of
    a big wheel another worker is fetching follows that download, then reads the stored wheel:
    its bytes are in before they are stored (an object store's upload), so it waits for that."""
    other = build_services(settings_for(upstream, tmp_path))
    try:
        dist, dist_there = services.registry.get("main"), other.registry.get("main")
        assert dist is not None and dist_there is not None
        big = big_wheel(upstream, tmp_path)
        upstream.chunk_size, upstream.slow_files = 64 * 1024, 0.1  # about a second
        go_on = hold_publishing(services, monkeypatch)
        with (
            ThreadPoolExecutor(1) as pool,
            closing(streamed(services, dist, big.filename)) as first,
        ):
            asked = pool.submit(other.pullthrough.metadata, dist_there, big.filename)
            assert b"".join(first) == big.data
            with pytest.raises(FutureTimeout):
                asked.result(timeout=1.0)  # the wheel is in, not stored yet
            go_on.set()
            metadata, _ = asked.result(timeout=10)
        assert metadata.startswith(b"Metadata-Version") and b"big-lib" in metadata.lower()
        assert len(upstream.requests_for(big.filename, server="files", method="GET")) == 1
    finally:
        other.close()


def test_with_every_storing_thread_busy_a_big_file_is_stored_before_its_last_bytes(
    services: Services, upstream: Upstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stored in its download's own thread then, which a stopping worker does not wait for once
    the answer is complete: the answer waits for the storing instead."""
    dist = services.registry.get("main")
    assert dist is not None
    slow = wheels_of_their_own(upstream, tmp_path, STORING_THREADS)
    big = big_wheel(upstream, tmp_path)
    go_on = threading.Event()
    real = services.store.publish

    def publish(tmp: Path, sha256: str) -> None:
        if sha256 == big.sha256:
            time.sleep(0.3)  # a big file's upload
        else:
            assert go_on.wait(10)  # an object store that takes its time
        real(tmp, sha256)

    monkeypatch.setattr(services.store, "publish", publish)
    held = [streamed(services, dist, filename) for filename in slow]
    with closing(streamed(services, dist, big.filename)) as first:
        assert b"".join(first) == big.data
        assert services.store.has(big.sha256) and lock_is_free(services, dist, big.filename)
    go_on.set()
    for opened in held:
        opened.close()
        stored_soon(opened)


def test_upstream_metadata_is_answered_without_waiting_for_its_storing(
    services: Services, upstream: Upstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A `.metadata` file's bytes are checked before they come: the answer does not wait for
    the disk or the object store (as a wheel's does not)."""
    dist = services.registry.get("main")
    assert dist is not None
    wheel = upstream.add_file("meta-fast", build_wheel(tmp_path, "meta-fast", "1.0"), metadata=True)
    go_on = hold_publishing(services, monkeypatch)
    started = time.monotonic()
    data, stale = services.pullthrough.metadata(dist, wheel.filename)
    assert time.monotonic() - started < 4 and (data, stale) == (wheel.metadata, False)
    go_on.set()
    assert wait_until(lambda: services.store.has(wheel.metadata_sha256 or ""), 10)


def test_a_file_the_catalog_cannot_read_is_cached_all_the_same(
    services: Services, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reading a file for its catalog entry fails in a way nobody foresaw: that is logged and
    costs the entry, not the download or the cache."""
    dist, expected = main_and_wheel(services, upstream)

    def broken(entry: DistFile, sha256: str, path: Path) -> Package | None:
        raise RuntimeError("a bug in reading metadata")

    monkeypatch.setattr(services.pullthrough.events, "describe", broken)
    with closing(streamed(services, dist, WHL_02)) as first:
        assert b"".join(first) == expected.data
    stored_soon(first)
    assert services.store.has(expected.sha256)
    assert services.ledger.total() == len(expected.data)
    with services.catalog.session() as session:
        assert session.scalar(select(Package).where(Package.filename == WHL_02)) is None


class EvictingEvents:
    """The catalog's side of eviction, reduced to deleting; `meanwhile` runs once, during the
    first eviction (another worker caching a file while this one evicts)."""

    def __init__(self, meanwhile: Callable[[], object]) -> None:
        self.meanwhile: Callable[[], object] | None = meanwhile

    def describe(self, entry: DistFile, sha256: str, path: Path) -> Package | None:
        return None

    def cached(self, package: Package) -> None:
        pass

    def evict(self, sha256: str, remove: Callable[[], object]) -> bool:
        remove()
        if (then := self.meanwhile) is not None:
            self.meanwhile = None
            then()
        return True


def test_a_file_recorded_during_an_eviction_pass_is_evicted_too(tmp_path: Path) -> None:
    """The other worker skips eviction while this one holds its lock, so this one looks again
    after its pass: the cache does not stay over its limit until the next new file."""
    clock = [0.0]
    store = ArtifactStore(tmp_path / "files")
    ledger = CacheLedger(tmp_path / "ledger", max_size=250, clock=lambda: clock[0])

    def cache(n: int) -> None:
        clock[0] += 1
        ledger.record(store.put_bytes(bytes([n]) * 100), 100)

    for n in range(3):
        cache(n)
    assert ledger.over_limit()
    pullthrough = PullThrough(
        store, ledger, LockDir(tmp_path / "locks"), EvictingEvents(lambda: cache(3))
    )
    assert pullthrough.evict_if_needed() == 2
    assert ledger.total() == 200 and ledger.count() == 2
    ledger.close()


def test_a_file_the_catalog_fails_to_enter_still_has_the_cache_kept_within_its_limit(
    services: Services, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A catalog that fails to take a new file's entry (busy in a storm of cold downloads) costs
    that entry only: the eviction after it still runs, or the cache grew past its limit for as
    long as the catalog kept failing."""
    dist, _ = main_and_wheel(services, upstream)
    first, second = (
        f for f in upstream.files_for("shelf-reader") if f.filename in (WHL_01, WHL_02)
    )

    def busy(package: Package) -> None:
        raise OperationalError("INSERT", {}, Exception("database is locked"))

    monkeypatch.setattr(services.pullthrough.events, "cached", busy)
    services.ledger.max_size = max(first.size, second.size) + 1  # room for one of them
    for wanted in (first, second):
        with closing(streamed(services, dist, wanted.filename)) as opened:
            assert b"".join(opened) == wanted.data
        stored_soon(opened)
    assert wait_until(lambda: not services.ledger.over_limit(), 10), services.ledger.total()


def test_a_file_used_during_an_eviction_pass_is_not_evicted_by_it(tmp_path: Path) -> None:
    """A pass chooses its victims once, and may take long (an object store): a victim used
    meanwhile is the most recent file now, and stays; the next pass takes the oldest then."""
    clock = [0.0]
    store = ArtifactStore(tmp_path / "files")
    ledger = CacheLedger(tmp_path / "ledger", max_size=250, clock=lambda: clock[0])
    shas = []
    for n in range(4):
        clock[0] += 1
        shas.append(store.put_bytes(bytes([n]) * 100))
        ledger.record(shas[-1], 100)

    def use_the_second() -> None:
        clock[0] += 1
        ledger.touch(shas[1])

    pullthrough = PullThrough(
        store, ledger, LockDir(tmp_path / "locks"), EvictingEvents(use_the_second)
    )
    assert pullthrough.evict_if_needed() == 2
    assert [store.has(sha) for sha in shas] == [False, True, False, True]
    assert [ledger.tracks(sha) for sha in shas] == [False, True, False, True]
    ledger.close()


def test_an_eviction_racing_a_new_download_of_the_same_file_leaves_them_in_step(
    services: Services, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another worker (or node) downloads a file anew while this one evicts it: once the
    eviction has removed the bytes, and before it has dropped their record. Afterwards the
    bytes are stored, recorded in the ledger and in the catalog - not stored and catalogued but
    no longer recorded, so never evicted (nor, the other way round, catalogued without bytes,
    which, promoted into a repository, would be listed and answer 404)."""
    dist, expected = main_and_wheel(services, upstream)
    pullthrough = services.pullthrough
    with closing(streamed(services, dist, WHL_02)) as first:
        assert b"".join(first) == expected.data
    stored_soon(first)

    def catalogued() -> bool:
        with services.catalog.session() as session:
            found = select(Package).where(Package.sha256 == expected.sha256)
            return session.scalar(found) is not None

    assert wait_until(catalogued, 10)
    other: list[threading.Thread] = []

    def download_again() -> None:
        with closing(streamed(services, dist, WHL_02)) as again:
            assert b"".join(again) == expected.data
        stored_soon(again)

    real_evict = pullthrough.events.evict

    def evict_while_downloaded(sha256: str, remove: Callable[[], object]) -> bool:
        def remove_then_download() -> None:
            remove()
            services.ledger.max_size = 10**9  # this pass is the last
            other.append(threading.Thread(target=download_again))
            other[0].start()
            other[0].join(timeout=1.0)  # it may wait for this eviction (it should)

        return real_evict(sha256, remove_then_download)

    monkeypatch.setattr(pullthrough.events, "evict", evict_while_downloaded)
    services.ledger.max_size = 1
    assert pullthrough.evict_if_needed() == 1
    other[0].join(timeout=10)
    assert not other[0].is_alive()
    assert len(upstream.requests_for(WHL_02, server="files", method="GET")) == 2
    assert wait_until(catalogued, 10)
    assert services.store.has(expected.sha256)
    assert services.ledger.tracks(expected.sha256)  # evicted in its turn, once old


def test_metadata_of_a_cached_wheel_is_served_while_the_upstream_is_down(
    services: Services, upstream: Upstream
) -> None:
    """The page names a `.metadata` file; it was never fetched, but the wheel was: with the
    upstream gone, the wheel's own METADATA answers, once it matches the page's hash."""
    dist = services.registry.get("main")
    assert dist is not None
    wheel = "app_with_dep-1.0-py3-none-any.whl"
    (expected,) = [f for f in upstream.files_for("app-with-dep") if f.filename == wheel]
    with closing(services.pullthrough.ensure(dist, *dist.find_file(wheel)).file):
        pass
    upstream.fail_status = 503
    data, _ = services.pullthrough.metadata(dist, wheel)
    assert data == expected.metadata
    assert upstream.requests_for(wheel + ".metadata")  # it was asked first, and failed
    with pytest.raises(UpstreamError):  # not cached: nothing to answer from
        services.pullthrough.metadata(dist, "meta_lib-2.0-py3-none-any.whl")


def unhashed_metadata_wheel(upstream: Upstream, tmp_path: Path) -> UpstreamFile:
    """A wheel whose page marks its `.metadata` available without a hash (PEP 714)."""
    upstream.unhashed_metadata = True
    return upstream.add_file(
        "meta-plain", build_wheel(tmp_path, "meta-plain", "1.0"), metadata=True
    )


@pytest.mark.parametrize(
    "sent",
    [b"<html><body><h1>502 Bad Gateway</h1></body></html>\n", b"other"],
    ids=["an-error-page", "another-files-metadata"],
)
def test_metadata_without_a_hash_is_kept_only_when_it_is_the_files(
    upstream: Upstream, tmp_path: Path, sent: bytes
) -> None:
    """A page may mark a file's `.metadata` available without its hash (PEP 714). What the
    upstream answers it with (a 200) is kept only when it reads as that file's core metadata:
    an error page, or another file's metadata, is a 502 and nothing is kept, so once the
    upstream heals the next request asks it again and gets the metadata (then kept)."""
    wheel = unhashed_metadata_wheel(upstream, tmp_path)
    right = wheel.metadata
    if sent == b"other":
        sent = (
            upstream.add_file(
                "meta-other", build_wheel(tmp_path, "meta-other", "1.0"), metadata=True
            ).metadata
            or b""
        )
    app = create_app(settings_for(upstream, tmp_path))
    try:
        client = app.test_client()
        url = f"/pulp/content/main/{wheel.filename}.metadata"
        wheel.metadata = sent  # what the upstream's .metadata URL answers now, with a 200
        failed = client.get(url)
        assert failed.status_code == 502 and b"not the core metadata" in failed.data
        wheel.metadata = right  # the upstream heals
        for _ in range(2):  # asked again, then kept
            healed = client.get(url)
            assert (healed.status_code, healed.data) == (200, right)
        assert len(upstream.requests_for(wheel.filename + ".metadata", method="GET")) == 2
    finally:
        app.extensions["pullthrough"].close()


def test_metadata_without_a_hash_falls_back_to_a_cached_wheels(
    upstream: Upstream, tmp_path: Path
) -> None:
    """The upstream answers an unhashed `.metadata` with something else (an error page with a
    200): a wheel cached earlier answers with its own METADATA, which that file must equal
    (PEP 658); nothing of the upstream's answer is kept."""
    wheel = unhashed_metadata_wheel(upstream, tmp_path)
    right = wheel.metadata
    app = create_app(settings_for(upstream, tmp_path))
    try:
        client = app.test_client()
        url = f"/pulp/content/main/{wheel.filename}"
        assert client.get(url).data == wheel.data
        store = app.extensions["pullthrough"].store
        assert wait_until(lambda: store.has(wheel.sha256), 10)  # stored alongside its answer
        wheel.metadata = b"<html><body><h1>502 Bad Gateway</h1></body></html>\n"
        for _ in range(2):  # the upstream asked each time: its answer was not kept
            answer = client.get(url + ".metadata")
            assert (answer.status_code, answer.data) == (200, right)
        assert len(upstream.requests_for(wheel.filename + ".metadata", method="GET")) == 2
    finally:
        app.extensions["pullthrough"].close()


def test_concurrent_requests_for_a_cold_file_make_one_upstream_fetch(
    services: Services, upstream: Upstream
) -> None:
    dist = services.registry.get("main")
    assert dist is not None
    expected = next(f for f in upstream.files_for("shelf-reader") if f.filename == WHL_01)
    bodies: list[bytes] = []
    lock = threading.Lock()

    def fetch() -> None:
        opened = services.pullthrough.open(dist, WHL_01)
        if isinstance(opened, StoredFile):
            with opened.file:
                body = opened.file.read()
        else:
            with closing(opened):
                body = b"".join(opened)
        with lock:
            bodies.append(body)

    threads = [threading.Thread(target=fetch) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert bodies == [expected.data] * 8
    assert len(upstream.requests_for(WHL_01, server="files", method="GET")) == 1


def test_a_request_waiting_for_another_remotes_failed_download_tries_its_own(
    services: Services, upstream: Upstream
) -> None:
    """Requests waiting for a download that fails answer with its error rather than each try
    again in turn - those through the same remote. A remote of the same index with other
    settings (a longer read timeout here; other credentials, proxy or certificates alike) may
    well get the file: a request through it tries it itself, as before."""
    with services.catalog.session() as session:
        up = session.scalars(select(Remote).where(Remote.name == "up")).one()
        impatient = {**up.settings, "name": "impatient", "sock_read_timeout": 1, "max_retries": 0}
        remote = Remote(name="impatient", settings=impatient)
        session.add(remote)
        session.flush()
        session.add(Distribution(name="impatient", base_path="impatient", remote_id=remote.id))
    services.registry.changed()
    dist, whl = main_and_wheel(services, upstream)
    other = services.registry.get("impatient")
    assert other is not None and other.find_file(WHL_02)  # both pages read before the delay
    upstream.delay, upstream.fault_scope = 2, "files"  # past `impatient`'s read timeout only

    def body(through: ServedDistribution) -> bytes:
        opened = services.pullthrough.open(through, WHL_02)
        assert isinstance(opened, StreamedFile)
        with closing(opened):
            return b"".join(opened)

    with ThreadPoolExecutor(2) as pool:
        failing = pool.submit(body, other)
        assert wait_until(lambda: not lock_is_free(services, dist, WHL_02), timeout=5)
        waiting = pool.submit(body, dist)  # waits for the impatient remote's download
        with pytest.raises(UpstreamError):
            failing.result(timeout=10)
        assert waiting.result(timeout=10) == whl.data


def test_a_request_whose_page_lists_other_bytes_does_not_join_a_download_in_flight(
    services: Services, upstream: Upstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request joins a big file's download in flight only when it expects the same bytes:
    a page that lists the file's URL with another sha256 (another index's page, a stale
    one) gets the file checked against that digest - a 502 - not bytes its page does not
    vouch for, which the download checks against the first request's digest only."""
    whl = big_wheel(upstream, tmp_path)
    add_distribution(services, "other")
    dist, other = services.registry.get("main"), services.registry.get("other")
    assert dist is not None and other is not None
    entry, view = other.find_file(whl.filename)
    elsewhere = msgspec.structs.replace(entry, hashes={"sha256": "0" * 64})
    monkeypatch.setattr(other, "find_file", lambda _: (elsewhere, view))
    upstream.chunk_size, upstream.slow_files = 64 * 1024, 0.2  # about 2 s for the file
    first = streamed(services, dist, whl.filename)
    with closing(first):
        with pytest.raises(UpstreamError):  # while the first one's download goes on
            answer = services.pullthrough.open(other, whl.filename)
            assert isinstance(answer, StreamedFile)
            with closing(answer):
                body = b"".join(answer)
            assert hashlib.sha256(body).hexdigest() == "0" * 64  # its page's bytes, or none
        assert b"".join(first) == whl.data


# ---- the registry ---------------------------------------------------------------------------


def test_every_process_sees_a_catalog_change(upstream: Upstream, tmp_path: Path) -> None:
    settings = settings_for(upstream, tmp_path)
    one, other = build_services(settings), build_services(settings)  # two workers' views
    try:
        assert other.registry.get("later") is None
        add_distribution(one, "later")  # commits, then bumps the change token
        assert other.registry.get("later") is not None
        assert filenames(other, "later", "meta-lib") == {"meta_lib-2.0-py3-none-any.whl"}
    finally:
        one.close()
        other.close()


# ---- the task worker ------------------------------------------------------------------------


def uploaded_orphan(svc: Services, tmp_path: Path, project: str) -> Package:
    """A wheel of `project` 1.0 uploaded into no repository (an orphan, made now)."""
    wheel = build_wheel(tmp_path / "w", project, "1.0")
    with wheel.open("rb") as fh:
        return svc.uploads.upload(None, fh, wheel.name, actor="admin")[0]


def queue(svc: Services, name: str, **args: object) -> str:
    with svc.catalog.session() as session:
        return enqueue(session, name, dict(args))


def task(svc: Services, task_id: str) -> Task:
    with svc.catalog.session() as session:
        found = session.get(Task, task_id)
        assert found is not None
        return found


def test_the_worker_runs_tasks_and_records_their_outcome(services: Services) -> None:
    def double(ctx: TaskContext) -> None:
        ctx.report("math", "Doubling", done=1, total=1)
        ctx.outcome.result = {"value": 2 * int(ctx.args["value"])}

    def broken(ctx: TaskContext) -> None:
        raise ValueError("no such thing")

    worker = TaskWorker(
        services, {"t.double": double, "t.broken": broken}, heartbeat=0.05, dead_after=1.0
    )
    ok, bad = queue(services, "t.double", value=21), queue(services, "t.broken")
    unknown = queue(services, "t.unknown")
    assert worker.run_once() and worker.run_once() and worker.run_once()
    assert not worker.run_once()  # nothing left

    done = task(services, ok)
    assert (done.state, done.result, done.worker) == ("completed", {"value": 42}, worker.name)
    assert [r["state"] for r in done.progress_reports] == ["completed"]
    failed = task(services, bad)
    assert failed.state == "failed" and failed.error is not None
    assert failed.error["description"] == "no such thing"
    assert task(services, unknown).state == "failed"


def test_a_task_is_canceled_at_its_next_check(services: Services) -> None:
    started = threading.Event()

    def waits(ctx: TaskContext) -> None:
        started.set()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ctx.check_canceled()
            time.sleep(0.02)

    worker = TaskWorker(services, {"t.waits": waits}, heartbeat=0.05, dead_after=1.0)
    task_id = queue(services, "t.waits")
    runner = threading.Thread(target=worker.run_once)
    runner.start()
    assert started.wait(10)
    with services.catalog.session() as session:
        row = session.get(Task, task_id)
        assert row is not None
        row.state = "canceling"
    runner.join(timeout=10)
    assert task(services, task_id).state == "canceled"


def test_a_task_canceled_before_it_ran_has_finished_and_is_purged(
    upstream: Upstream, tmp_path: Path
) -> None:
    """A waiting task canceled (`pulp task cancel`) ends at once, as Pulp's: it says when
    (finished_at), and `pulp task purge --state canceled` removes its record like any other
    finished task's - it stayed for good, since the purge takes tasks finished before a time."""
    config = tmp_path / "pullthrough.toml"
    text = config_text(upstream.index_url, tmp_path / "data")
    config.write_text(text.replace("[server]\n", "[server]\nembedded_worker = false\n"))
    settings = load_settings(config, environ={})
    app = create_app(settings)
    svc = app.extensions["pullthrough"]
    try:
        auth = ("admin", (settings.server.data_dir / "admin-password").read_text().strip())
        client = app.test_client()
        task_id = queue(svc, ORPHAN_CLEANUP)
        answer = client.patch(
            f"/pulp/api/v3/tasks/{task_id}/", json={"state": "canceled"}, auth=auth
        )
        assert answer.status_code == 200, answer.text
        assert answer.get_json()["state"] == "canceled"
        assert answer.get_json()["finished_at"] is not None
        earlier = queue(svc, ORPHAN_CLEANUP)  # canceled as an earlier version did: no time
        with svc.catalog.session() as session:
            row = session.get(Task, earlier)
            assert row is not None
            row.state = "canceled"
        answer = client.post(
            "/pulp/api/v3/tasks/purge/",
            json={"states": ["canceled"], "finished_before": "2999-01-01T00:00:00Z"},
            auth=auth,
        )
        assert answer.status_code == 202, answer.text
        assert TaskWorker(svc, BACKGROUND_TASKS, heartbeat=1.0, dead_after=30.0).run_once()
        with svc.catalog.session() as session:
            assert session.get(Task, task_id) is None and session.get(Task, earlier) is None
    finally:
        svc.close()


def test_a_worker_asked_to_stop_finishes_its_task_alive(services: Services) -> None:
    """SIGTERM on `pullthrough worker` (systemd, docker stop) asks its worker to stop: it takes
    no new task and finishes the one under way still heartbeating, so another worker does not
    reap that task as failed meanwhile (it was, then flipped to completed, its version made)."""
    started, go_on = threading.Event(), threading.Event()

    def waits(ctx: TaskContext) -> None:
        started.set()
        assert go_on.wait(10)
        ctx.outcome.result = {"done": True}

    worker = TaskWorker(services, {"t.waits": waits}, heartbeat=0.05, dead_after=1.0)
    running, next_one = queue(services, "t.waits"), queue(services, "t.waits")
    worker.start()
    assert started.wait(10)
    worker.stop(timeout=0)  # what the SIGTERM handler does
    time.sleep(2.0)  # twice the time after which a silent worker is presumed dead
    reaper = TaskWorker(services, {}, heartbeat=0.05, dead_after=1.0)
    assert reaper.reap() == 0
    assert task(services, running).state == "running"
    go_on.set()
    worker.stop(timeout=10)
    done = task(services, running)
    assert (done.state, done.result) == ("completed", {"done": True})
    assert task(services, next_one).state == "waiting"  # left for another worker


def test_a_worker_missing_for_a_week_is_forgotten_and_its_tasks_name_none(
    services: Services,
) -> None:
    """As Pulp: a worker record missing for seven days goes, and the tasks it ran stay, naming
    no worker (not a worker href that leads nowhere); one missing for less stays."""
    ran: dict[str, str] = {}  # worker -> the task it ran
    with services.catalog.session() as session:
        for name, days in (("gone-host-1", 8), ("quiet-host-2", 6)):
            session.add(Worker(name=name, last_heartbeat=now() - timedelta(days=days)))
            ran[name] = enqueue(session, "t.done", {})
            row = session.get(Task, ran[name])
            assert row is not None
            row.state, row.worker = "completed", name
    TaskWorker(services, {}, heartbeat=1.0, dead_after=30.0).reap()
    with services.catalog.session() as session:
        names = set(session.scalars(select(Worker.name)))
    assert "gone-host-1" not in names and "quiet-host-2" in names
    assert task(services, ran["gone-host-1"]).worker is None
    assert task(services, ran["quiet-host-2"]).worker == "quiet-host-2"


def test_an_outcome_never_replaces_a_final_state(services: Services) -> None:
    """A task reaped as failed (its worker was silent too long, e.g. behind a long catalog
    write) keeps that state when its worker comes back with an outcome: pollers saw it end."""

    def reaped_meanwhile(ctx: TaskContext) -> None:
        with services.catalog.session() as session:
            row = session.get(Task, ctx.task_id)
            assert row is not None
            row.state = "failed"

    worker = TaskWorker(services, {"t.reaped": reaped_meanwhile}, heartbeat=0.05, dead_after=1)
    task_id = queue(services, "t.reaped")
    assert worker.run_once()
    assert task(services, task_id).state == "failed"


def on_postgres(upstream: Upstream, tmp_path: Path, url: str, **remote: object) -> Settings:
    """settings_for's server on the PostgreSQL database at `url`, with no embedded worker."""
    config = tmp_path / "pullthrough.toml"
    text = config_text(upstream.index_url, tmp_path / "data", **remote)
    config.write_text(
        text.replace("[server]\n", f'[server]\ndatabase_url = "{url}"\nembedded_worker = false\n')
    )
    return load_settings(config, environ={})


def test_an_orphan_cleanup_leaves_a_package_a_repository_takes_in_meanwhile(
    upstream: Upstream, tmp_path: Path, postgres_url: str
) -> None:
    """On PostgreSQL, a modify adds an old orphan to a repository (not committed yet) while an
    orphan cleanup runs: the cleanup waits for it and leaves the package, rather than fail the
    whole task on the foreign key of the new version's row."""
    with private_database(postgres_url) as url:
        svc = build_services(on_postgres(upstream, tmp_path, url))
        try:
            orphan = uploaded_orphan(svc, tmp_path, "kept-orphan")
            with svc.catalog.session() as session:
                repo_id = create_repository(session, name="r").id
            task_id = queue(svc, ORPHAN_CLEANUP, orphan_protection_time=0)
            with Session(svc.catalog.engine) as modifying:
                assert new_version(modifying, repo_id, add=[orphan.id]) is not None
                modifying.flush()  # its row refers to the package: held until committed
                cleaning = threading.Thread(target=svc.new_worker().run_once)
                cleaning.start()
                cleaning.join(timeout=1)
                assert cleaning.is_alive()  # waiting for the modify
                modifying.commit()
            cleaning.join(timeout=30)
            assert not cleaning.is_alive()
            assert task(svc, task_id).state == "completed"
            with svc.catalog.session() as session:
                assert session.get(Package, orphan.id) is not None
            assert svc.store.has(orphan.sha256)
        finally:
            svc.close()


def test_an_orphan_cleanup_on_a_node_whose_clock_is_ahead_keeps_a_new_upload(
    upstream: Upstream, tmp_path: Path, postgres_url: str
) -> None:
    """On PostgreSQL, an orphan cleanup with an hour's protection runs on a node whose clock
    runs 2 hours ahead, just after another node uploaded a file to no repository: the file
    stays (the cutoff is by the database's clock), not removed as 2 hours old."""
    with private_database(postgres_url) as url:
        svc = build_services(on_postgres(upstream, tmp_path, url))
        try:
            fresh = uploaded_orphan(svc, tmp_path, "fresh-orphan")
            svc.clock = lambda: now() + timedelta(hours=2)  # this node's clock
            task_id = queue(svc, ORPHAN_CLEANUP, orphan_protection_time=60)
            svc.new_worker().run_once()
            assert task(svc, task_id).state == "completed"
            with svc.catalog.session() as session:
                assert session.get(Package, fresh.id) is not None
            assert svc.store.has(fresh.sha256)
        finally:
            svc.close()


def test_an_orphan_cleanup_on_one_host_uses_its_clock(services: Services, tmp_path: Path) -> None:
    """On SQLite (one host), the cutoff is the host's clock: an upload to no repository is
    kept by an hour's protection, and removed once that clock is 2 hours later."""
    wheel = build_wheel(tmp_path / "w", "aging-orphan", "1.0")
    with wheel.open("rb") as fh:
        orphan = services.uploads.upload(None, fh, wheel.name, actor="admin")[0]
    for hours, kept in ((0, True), (2, False)):
        services.clock = lambda hours=hours: now() + timedelta(hours=hours)  # type: ignore[misc]
        task_id = queue(services, ORPHAN_CLEANUP, orphan_protection_time=60)
        services.new_worker().run_once()
        assert task(services, task_id).state == "completed"
        with services.catalog.session() as session:
            assert (session.get(Package, orphan.id) is not None) == kept


def test_an_orphan_cleanup_of_more_packages_than_a_statement_takes_parameters(
    upstream: Upstream, tmp_path: Path, postgres_url: str
) -> None:
    """On PostgreSQL (at most 65,535 parameters in one statement), an orphan cleanup after a
    big mirror left every repository removes its 70,000 orphans: its IN lists go in batches
    (one list of them all failed the whole task)."""
    with private_database(postgres_url) as url:
        svc = build_services(on_postgres(upstream, tmp_path, url))
        try:
            old = datetime(2020, 1, 1, tzinfo=UTC)
            rows = [
                {
                    "id": f"{i:036d}",
                    "filename": f"big_mirror-1.{i}-py3-none-any.whl",
                    "name": "big-mirror",
                    "version": f"1.{i}",
                    "packagetype": "bdist_wheel",
                    "sha256": "ab" * 32,  # one file's bytes: the cleanup's file work is not tested
                    "size": 1,
                    "origin": "sync",
                    "pulp_created": old,
                    "upload_time": old,
                }
                for i in range(70_000)
            ]
            with svc.catalog.session() as session:
                session.execute(insert(Package), rows)
            task_id = queue(svc, ORPHAN_CLEANUP, orphan_protection_time=0)
            svc.new_worker().run_once()
            done = task(svc, task_id)
            assert done.state == "completed", done.error
            with svc.catalog.session() as session:
                assert session.scalar(select(func.count()).select_from(Package)) == 0
        finally:
            svc.close()


def test_an_orphan_cleanup_of_more_named_packages_than_a_statement_takes_parameters(
    upstream: Upstream, tmp_path: Path, postgres_url: str
) -> None:
    """On PostgreSQL, an orphan cleanup limited to 70,000 content hrefs (`content_hrefs`: the
    packages a mirror just left) removes them, and only them: the packages it names are read
    in batches (one list of them all failed the whole task)."""
    with private_database(postgres_url) as url:
        svc = build_services(on_postgres(upstream, tmp_path, url))
        try:
            old = datetime(2020, 1, 1, tzinfo=UTC)
            ids = [str(uuid.UUID(int=i + 1)) for i in range(70_001)]
            rows = [
                {"id": pid, "filename": f"big_mirror-1.{i}-py3-none-any.whl"}
                | {"name": "big-mirror", "version": f"1.{i}", "packagetype": "bdist_wheel"}
                | {"sha256": "ab" * 32, "size": 1, "origin": "sync"}  # one file's bytes
                | {"pulp_created": old, "upload_time": old}
                for i, pid in enumerate(ids)
            ]
            with svc.catalog.session() as session:
                session.execute(insert(Package), rows)
            task_id = queue(svc, ORPHAN_CLEANUP, orphan_protection_time=0, content_ids=ids[1:])
            svc.new_worker().run_once()
            done = task(svc, task_id)
            assert done.state == "completed", done.error
            with svc.catalog.session() as session:
                assert session.scalars(select(Package.id)).all() == ids[:1]  # not named: kept
        finally:
            svc.close()


def _per_row_subplans(engine: Engine, statements: list[tuple[str, Any]]) -> list[str]:
    """The statements whose PostgreSQL plan, with a work_mem a big catalog's id lists do not
    fit in, runs a subquery again for every row (`NOT (SubPlan 1)`: `x NOT IN (SELECT ...)`
    that cannot be hashed): a cost of rows times rows."""
    found = []
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("SET work_mem = '64kB'")
        for statement, parameters in statements:
            if not statement.lstrip().upper().startswith(("SELECT", "DELETE", "UPDATE")):
                continue
            cursor.execute("EXPLAIN " + statement, parameters)
            plan = "\n".join(row[0] for row in cursor.fetchall())
            if re.search(r"[(]SubPlan \d+[)]", plan):
                found.append(" ".join(statement.split())[:160] + "\n" + plan)
    finally:
        raw.rollback()
        raw.close()
    return found


def test_an_orphan_cleanup_reads_a_big_catalog_in_time_proportional_to_it(
    upstream: Upstream, tmp_path: Path, postgres_url: str
) -> None:
    """On PostgreSQL, `x NOT IN (SELECT ...)` becomes an anti-join only while the list fits in
    work_mem (4 MB by default: some 60,000 ids); past that, the subquery is read again for
    every row. Orphan cleanup asked it of the packages in no repository version, of the
    artifacts no package records (every synced file is an artifact) and, handing copies back to
    the cache, of the copies in no repository: a catalog of 400,000 packages kept one cleanup
    reading for over 12 minutes. The question must be one a join answers (NOT EXISTS)."""
    with private_database(postgres_url) as url:
        svc = build_services(on_postgres(upstream, tmp_path, url))
        try:
            old = datetime(2020, 1, 1, tzinfo=UTC)
            count = 8_000  # packages: a quarter pull-through copies, the rest synced
            ids = [str(uuid.UUID(int=i + 1)) for i in range(count)]
            origins = ["cache" if i % 4 == 0 else "sync" for i in range(count)]
            packages = [
                {"id": pid, "filename": f"big_mirror-1.{i}-py3-none-any.whl"}
                | {"name": "big-mirror", "version": f"1.{i}", "packagetype": "bdist_wheel"}
                | {"sha256": f"{i:064x}", "size": 1, "origin": origins[i]}
                | {"pulp_created": old, "upload_time": old}
                for i, pid in enumerate(ids)
            ]
            # the synced files in a repository, but for a few orphans (the cleanup's file work
            # is not what is measured); the copies in none, tracked by the cache but for a few
            held = [i for i in range(count) if origins[i] == "sync" and i % 1000 != 1]
            tracked = [i for i in range(count) if origins[i] == "cache" and i % 1000]
            with svc.catalog.session() as session:
                session.execute(insert(Package), packages)
                session.execute(
                    insert(Artifact),
                    [
                        {"sha256": f"{i:064x}", "size": 1}
                        | {"sha224": "", "sha384": "", "sha512": ""}
                        for i in range(count)
                        if origins[i] == "sync"
                    ],
                )
                repo_id = create_repository(session, name="big").id
                session.flush()
                session.execute(
                    insert(RepositoryContent),
                    [
                        {"repository_id": repo_id, "package_id": ids[i], "version_added": 1}
                        for i in held
                    ],
                )
                session.execute(
                    insert(CacheEntry),
                    [{"sha256": f"{i:064x}", "size": 1, "last_used": 1.0} for i in tracked],
                )
            with svc.catalog.engine.begin() as conn:
                conn.execute(text("ANALYZE"))
            statements: list[tuple[str, Any]] = []

            def seen(_c: Any, _cur: Any, statement: str, parameters: Any, *_: Any) -> None:
                statements.append((statement, parameters))

            event.listen(svc.catalog.engine, "before_cursor_execute", seen)
            try:
                task_id = queue(svc, ORPHAN_CLEANUP, orphan_protection_time=0)
                svc.new_worker().run_once()
            finally:
                event.remove(svc.catalog.engine, "before_cursor_execute", seen)
            done = task(svc, task_id)
            assert done.state == "completed", done.error
            assert _per_row_subplans(svc.catalog.engine, statements) == []
        finally:
            svc.close()


def _orphans_with_files_of_their_own(svc: Services, count: int) -> None:
    """`count` synced packages in no repository, past any protection time, each with its own
    file, its PEP 658 metadata and an artifact of the file (no bytes are stored: the cleanup's
    catalog and ledger work is what is measured)."""
    old = datetime(2020, 1, 1, tzinfo=UTC)
    with svc.catalog.session() as session:
        session.execute(
            insert(Package),
            [
                {"id": str(uuid.UUID(int=i + 1)), "filename": f"big_mirror-1.{i}-py3-none-any.whl"}
                | {"name": "big-mirror", "version": f"1.{i}", "packagetype": "bdist_wheel"}
                | {"sha256": f"{i:064x}", "metadata_sha256": f"{i + 10**9:064x}", "size": 10}
                | {"origin": "sync", "pulp_created": old, "upload_time": old}
                for i in range(count)
            ],
        )
        session.execute(
            insert(Artifact),
            [
                {"sha256": f"{i:064x}", "size": 10, "sha224": "", "sha384": "", "sha512": ""}
                for i in range(count)
            ],
        )


@contextlib.contextmanager
def _deleting_orphans(svc: Services) -> Iterator[Callable[[], bool]]:
    """Whether an orphan cleanup's deleting transaction is open now: from its DELETE of
    packages to its commit (on SQLite the catalog's write lock is held all that time: every
    upload and pull-through record waits for it)."""
    deleting: list[Any] = []  # the connection that deletes, then None once it has committed

    def seen(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if not deleting and statement.lstrip().upper().startswith("DELETE FROM PACKAGES"):
            deleting.append(conn)

    def committed(conn: Any) -> None:
        if deleting and conn is deleting[0]:
            deleting.append(None)

    engine = svc.catalog.engine
    event.listen(engine, "before_cursor_execute", seen)
    event.listen(engine, "commit", committed)
    try:
        yield lambda: len(deleting) == 1
    finally:
        event.remove(engine, "before_cursor_execute", seen)
        event.remove(engine, "commit", committed)


def test_an_orphan_cleanup_records_its_files_in_the_ledger_in_batches_on_sqlite(
    services: Services,
) -> None:
    """The files an orphan cleanup removes are recorded in the cache ledger before its
    deletion is committed (a process killed in between leaves them to eviction): one ledger
    transaction per file, 0.5 ms each, held SQLite's write lock on the catalog about 35 s for
    70,000 orphans (two files each), while every upload and pull-through record waited (and
    failed past the 60 s busy timeout). They are recorded in batches."""
    _orphans_with_files_of_their_own(services, 3_000)
    ledger = services.ledger
    assert isinstance(ledger, CacheLedger)
    transactions = [0]
    transact = ledger.files.transact
    with _deleting_orphans(services) as deleting:

        def counted(*args: Any, **kwargs: Any) -> Any:
            transactions[0] += deleting()
            return transact(*args, **kwargs)

        ledger.files.transact = counted
        try:
            task_id = queue(services, ORPHAN_CLEANUP, orphan_protection_time=0)
            services.new_worker().run_once()
        finally:
            del ledger.files.transact
    assert task(services, task_id).state == "completed"
    assert transactions[0] <= 20, transactions
    assert ledger.count() == 0 and ledger.total() == 0  # forgotten once removed
    ledger.record("a" * 64, 5)
    assert ledger.record_untracked({"a" * 64: 5, "b" * 64: 7}) == {"b" * 64}
    assert ledger.count() == 2 and ledger.total() == 12


def test_an_orphan_cleanup_deletes_in_short_transactions(services: Services) -> None:
    """An orphan cleanup deleted every orphan in one transaction: on SQLite the catalog's
    write lock was held all that time (some 5 s for 70,000 orphans), and every upload and
    pull-through record waited for it. It deletes them a batch a transaction; all are gone,
    their files with them."""
    _orphans_with_files_of_their_own(services, 3_000)
    deleted: list[int] = [0]  # packages and artifacts deleted by each transaction committed
    pending: dict[int, int] = {}

    def seen(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith(("DELETE FROM PACKAGES", "DELETE FROM ARTIFACTS")):
            pending[id(conn)] = pending.get(id(conn), 0) + cursor.rowcount

    def committed(conn: Any) -> None:
        deleted.append(pending.pop(id(conn), 0))

    engine = services.catalog.engine
    event.listen(engine, "after_cursor_execute", seen)
    event.listen(engine, "commit", committed)
    try:
        task_id = queue(services, ORPHAN_CLEANUP, orphan_protection_time=0)
        services.new_worker().run_once()
    finally:
        event.remove(engine, "after_cursor_execute", seen)
        event.remove(engine, "commit", committed)
    assert task(services, task_id).state == "completed"
    with services.catalog.reading() as session:
        assert session.scalar(select(func.count()).select_from(Package)) == 0
        assert session.scalar(select(func.count()).select_from(Artifact)) == 0
    assert sum(deleted) == 6_000
    assert max(deleted) <= 1_000, sorted(deleted)[-3:]


def test_an_orphan_cleanup_records_its_files_in_the_ledger_in_batches_on_postgres(
    upstream: Upstream, tmp_path: Path, postgres_url: str
) -> None:
    """On PostgreSQL, the orphan cleanup's ledger records (see the SQLite test above) went in
    two round trips a file while its deleting transaction held the orphans' rows: they go in
    batches."""
    with private_database(postgres_url) as url:
        svc = build_services(on_postgres(upstream, tmp_path, url))
        try:
            _orphans_with_files_of_their_own(svc, 1_500)
            statements = [0]
            with _deleting_orphans(svc) as deleting:

                def count(*_: Any) -> None:
                    statements[0] += deleting()

                event.listen(svc.catalog.engine, "before_cursor_execute", count)
                try:
                    task_id = queue(svc, ORPHAN_CLEANUP, orphan_protection_time=0)
                    svc.new_worker().run_once()
                finally:
                    event.remove(svc.catalog.engine, "before_cursor_execute", count)
            done = task(svc, task_id)
            assert done.state == "completed", done.error
            assert statements[0] < 100, statements
            assert svc.ledger.count() == 0
        finally:
            svc.close()


def _memory_of_removing_unrecorded(upstream: Upstream, tmp_path: Path, count: int) -> int:
    """The peak of memory allocated by remove_unrecorded in a catalog of `count` packages
    (each with its file, its metadata and an artifact), with one stored file nothing records:
    it is removed."""
    tmp_path.mkdir()
    svc = build_services(settings_for(upstream, tmp_path))
    try:
        _orphans_with_files_of_their_own(svc, count)
        with svc.catalog.session() as session:
            repo_id = create_repository(session, name="big").id
            session.flush()
            session.execute(
                insert(RepositoryContent),
                [
                    {"repository_id": repo_id, "package_id": str(uuid.UUID(int=i + 1))}
                    | {"version_added": 1}
                    for i in range(count)
                ],
            )
        stray = svc.store.put_bytes(b"nothing records these bytes")
        tracemalloc.start()
        try:
            removed = orphans_module.remove_unrecorded(svc, time.time() + 60)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert removed == 1 and not svc.store.has(stray)
        return peak
    finally:
        svc.close()


def test_a_look_for_files_nothing_records_holds_no_list_of_the_whole_catalog(
    upstream: Upstream, tmp_path: Path
) -> None:
    """Orphan cleanup's look for stored files nothing records read every sha256 the catalog
    and the ledger record into one set first (packages, their metadata, artifacts, chunks:
    about 150 MB for 400,000 synced packages, in every cleanup): it asks about the stored
    files in batches. Four times the catalog must not take four times the memory."""
    small = _memory_of_removing_unrecorded(upstream, tmp_path / "small", 2_000)
    large = _memory_of_removing_unrecorded(upstream, tmp_path / "large", 8_000)
    assert large < 1.5 * small, (small, large)


def test_a_modify_of_many_content_units_asks_the_catalog_in_batches(
    upstream: Upstream, tmp_path: Path, postgres_url: str
) -> None:
    """A modify that adds 5,000 packages to a repository, then one that removes them (by
    href, through the REST API on PostgreSQL), each asks the catalog in batches: one look-up
    per href and one ledger transaction per package added made a modify of 70,000 take 85 s,
    near gunicorn's 120 s timeout with a catalog a network away."""
    with private_database(postgres_url) as url:
        settings = on_postgres(upstream, tmp_path, url)
        app = create_app(settings)
        svc = app.extensions["pullthrough"]
        try:
            auth = ("admin", (settings.server.data_dir / "admin-password").read_text().strip())
            client = app.test_client()
            created = client.post(
                "/pulp/api/v3/repositories/python/python/", json={"name": "big"}, auth=auth
            )
            repo_href = created.get_json()["pulp_href"]
            ids = [str(uuid.UUID(int=i + 1)) for i in range(5_000)]
            rows = [
                {"id": pid, "filename": f"big_{i}-1.0-py3-none-any.whl", "name": f"big-{i}"}
                | {"version": "1.0", "packagetype": "bdist_wheel", "size": 1, "origin": "sync"}
                | {"sha256": "ab" * 32}  # one file's bytes: files are not what is tested
                for i, pid in enumerate(ids)
            ]
            with svc.catalog.session() as session:
                session.execute(insert(Package), rows)
            hrefs = [f"/pulp/api/v3/content/python/packages/{pid}/" for pid in ids]
            statements: list[str] = []

            def count(*args: Any) -> None:
                statements.append(args[2])

            event.listen(Engine, "before_cursor_execute", count)
            try:
                for body in ({"add_content_units": hrefs}, {"remove_content_units": hrefs}):
                    statements.clear()
                    answer = client.post(repo_href + "modify/", json=body, auth=auth)
                    assert answer.status_code == 202, answer.get_json()
                    assert len(statements) < 200, statements[-5:]
            finally:
                event.remove(Engine, "before_cursor_execute", count)
            with svc.catalog.session() as session:
                repo = session.scalars(select(Repository).where(Repository.name == "big")).one()
                assert repo.latest_number == 2
                added = select(func.count()).select_from(version_packages(repo.id, 1).subquery())
                assert session.scalar(added) == 5_000
                assert session.scalars(version_packages(repo.id, 2)).all() == []
        finally:
            svc.close()


def test_a_modify_promotes_a_pull_through_copy_out_of_the_cache(
    upstream: Upstream, tmp_path: Path
) -> None:
    """A modify adding a pull-through copy to a repository takes it out of the cache's ledger
    (never evicted again): the ledger's part of a modify now reads only such copies."""
    settings = settings_for(upstream, tmp_path)
    app = create_app(settings)
    svc = app.extensions["pullthrough"]
    try:
        dist, whl = main_and_wheel(svc, upstream)
        cached_in_catalog(svc, dist, whl)
        assert svc.ledger.tracks(whl.sha256)
        with svc.catalog.session() as session:
            package_id = session.scalars(select(Package.id).where(Package.filename == WHL_02)).one()
        auth = ("admin", (settings.server.data_dir / "admin-password").read_text().strip())
        client = app.test_client()
        created = client.post(
            "/pulp/api/v3/repositories/python/python/", json={"name": "kept"}, auth=auth
        )
        body = {"add_content_units": [f"/pulp/api/v3/content/python/packages/{package_id}/"]}
        answer = client.post(created.get_json()["pulp_href"] + "modify/", json=body, auth=auth)
        assert answer.status_code == 202, answer.get_json()
        assert not svc.ledger.tracks(whl.sha256)
    finally:
        svc.close()


def test_a_copy_a_repository_let_go_is_the_caches_again_after_orphan_cleanup(
    upstream: Upstream, tmp_path: Path
) -> None:
    """A pull-through copy a modify took into a repository left the cache's ledger; once the
    repository is deleted, nothing removed it for good (orphan cleanup skips the cache's
    content, eviction knows only the ledger's). Orphan cleanup hands it back to the cache,
    whose size limit then evicts it."""
    settings = settings_for(upstream, tmp_path)
    app = create_app(settings)
    svc = app.extensions["pullthrough"]
    try:
        dist, whl = main_and_wheel(svc, upstream)
        cached_in_catalog(svc, dist, whl)
        with svc.catalog.session() as session:
            package_id = session.scalars(select(Package.id).where(Package.filename == WHL_02)).one()
        auth = ("admin", (settings.server.data_dir / "admin-password").read_text().strip())
        client = app.test_client()
        created = client.post(
            "/pulp/api/v3/repositories/python/python/", json={"name": "kept"}, auth=auth
        )
        repository = created.get_json()["pulp_href"]
        body = {"add_content_units": [f"/pulp/api/v3/content/python/packages/{package_id}/"]}
        answer = client.post(repository + "modify/", json=body, auth=auth)
        assert answer.status_code == 202, answer.get_json()
        assert wait_until(lambda: not svc.ledger.tracks(whl.sha256), 10)
        assert client.delete(repository, auth=auth).status_code == 202
        assert wait_until(lambda: client.get(repository, auth=auth).status_code == 404, 10)

        cleanup = client.post(
            "/pulp/api/v3/orphans/cleanup/", json={"orphan_protection_time": 0}, auth=auth
        )
        assert cleanup.status_code == 202, cleanup.get_json()
        task_id = cleanup.get_json()["task"].rstrip("/").rsplit("/", 1)[-1]
        # its end, not the ledger's entry: the file stays locked until the task moves on
        assert wait_until(lambda: task(svc, task_id).state in ("completed", "failed"), 10)
        assert task(svc, task_id).state == "completed", task(svc, task_id).error
        assert svc.ledger.tracks(whl.sha256)
        assert svc.store.has(whl.sha256)  # not an orphan: the cache's, evicted in its turn
        svc.ledger.max_size = 1
        assert svc.pullthrough.evict_if_needed() == 1
        assert not svc.store.has(whl.sha256)
        with svc.catalog.session() as session:
            assert session.get(Package, package_id) is None
    finally:
        svc.close()


def _memory_of_returning_copies(upstream: Upstream, tmp_path: Path, count: int) -> int:
    """The peak of memory allocated by return_to_cache with `count` pull-through copies in no
    repository, all tracked by the cache's ledger but one, which it hands back."""
    tmp_path.mkdir()
    svc = build_services(settings_for(upstream, tmp_path))
    try:
        old = datetime(2020, 1, 1, tzinfo=UTC)
        with svc.catalog.session() as session:
            session.execute(
                insert(Package),
                [
                    {"id": str(uuid.UUID(int=i + 1)), "filename": f"cached-1.{i}-py3-none-any.whl"}
                    | {"name": "cached", "version": f"1.{i}", "packagetype": "bdist_wheel"}
                    | {"sha256": f"{i:064x}", "size": 10, "origin": "cache"}
                    | {"pulp_created": old, "upload_time": old}
                    for i in range(count)
                ],
            )
        svc.ledger.record_untracked({f"{i:064x}": 10 for i in range(1, count)})
        tracemalloc.start()
        try:
            returned = orphans_module.return_to_cache(svc.catalog, svc.ledger, svc.locks)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert returned == 1 and svc.ledger.tracks(f"{0:064x}")
        return peak
    finally:
        svc.close()


def test_a_hand_back_of_copies_to_the_cache_holds_no_list_of_the_whole_ledger(
    upstream: Upstream, tmp_path: Path
) -> None:
    """Every orphan cleanup hands back to the cache the copies its ledger does not track: it
    read a set of every sha256 the ledger tracks, and a list of every copy in the catalog, at
    once (some 40 MB for 100,000 cached files). They are read a page at a time. Four times the
    cache must not take four times the memory."""
    small = _memory_of_returning_copies(upstream, tmp_path / "small", 4_000)
    large = _memory_of_returning_copies(upstream, tmp_path / "large", 16_000)
    assert large < 1.5 * small, (small, large)


def test_a_mirror_sync_removes_what_a_change_added_while_it_ran(
    upstream: Upstream, tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL, a mirror sync makes a version holding what the remote has and nothing
    else, also when another change (an upload) added a package to the repository while the
    sync ran: what to remove is read under the repository's lock, not before it."""
    with private_database(postgres_url) as url:
        svc = build_services(on_postgres(upstream, tmp_path, url, includes=["shelf-reader"]))
        try:
            repo_id, args = new_sync(svc, mirror=True)
            intruder = build_wheel(tmp_path / "w", "intruder", "1.0")
            record = sync_module.new_version  # type: ignore[attr-defined]

            def uploaded_meanwhile(session: Any, *args: Any, **kwargs: Any) -> Any:
                with intruder.open("rb") as fh:  # its own transaction, committed first
                    svc.uploads.upload(repo_id, fh, intruder.name, actor="admin")
                return record(session, *args, **kwargs)

            monkeypatch.setattr(sync_module, "new_version", uploaded_meanwhile)
            run_sync(svc, args)
            with svc.catalog.session() as session:
                latest = session.get(Repository, repo_id)
                assert latest is not None and latest.latest_number == 2  # the upload's, then
                held = {p.filename for p in session.scalars(version_packages(repo_id, 2))}
            assert held == {f.filename for f in upstream.files_for("shelf-reader")}
        finally:
            svc.close()


def test_a_cancel_racing_a_workers_claim_asks_the_running_task_to_stop(
    upstream: Upstream, tmp_path: Path, postgres_url: str
) -> None:
    """On PostgreSQL, a worker claims a waiting task (`running`, not committed yet) while an
    admin cancels it: the cancel waits for the claim and asks the running task to stop
    (`canceling`), rather than write `canceled` over `running` for a task that then runs."""
    with private_database(postgres_url) as url:
        settings = on_postgres(upstream, tmp_path, url)
        app = create_app(settings)
        svc = app.extensions["pullthrough"]
        try:
            task_id = queue(svc, ORPHAN_CLEANUP)
            auth = ("admin", (settings.server.data_dir / "admin-password").read_text().strip())
            answers: list[str] = []

            def cancel() -> None:
                answer = app.test_client().patch(
                    f"/pulp/api/v3/tasks/{task_id}/", json={"state": "canceled"}, auth=auth
                )
                answers.append(answer.get_json()["state"])

            with svc.catalog.session() as claiming:  # a worker's claim, as TaskWorker.claim
                claimed = claiming.scalar(
                    select(Task).where(Task.id == task_id).with_for_update(skip_locked=True)
                )
                assert claimed is not None
                claimed.state = "running"
                claiming.flush()
                canceling = threading.Thread(target=cancel)
                canceling.start()
                canceling.join(timeout=1.0)  # it waits for the claim (it should)
            canceling.join(timeout=10)
            assert answers == ["canceling"]
            assert task(svc, task_id).state == "canceling"  # the worker stops at its next check
        finally:
            svc.close()


def test_a_reap_while_a_worker_records_its_outcome_leaves_the_task_to_it(
    upstream: Upstream, tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL, another worker's reap runs while a worker writes its task's outcome (its
    heartbeat looked late): the reap skips the task being written, which ends as its worker
    says, rather than `failed` then overwritten, or `completed` then overwritten."""
    with private_database(postgres_url) as url:
        svc = build_services(on_postgres(upstream, tmp_path, url))
        try:
            task_id = queue(svc, "t.quick")
            reaped: list[int] = []
            get = Session.get

            def get_then_reap(self: Session, entity: Any, ident: Any, **kw: Any) -> Any:
                row = get(self, entity, ident, **kw)
                if entity is Task and not reaped:  # the outcome's read: another worker reaps
                    reaper = TaskWorker(svc, {}, heartbeat=5, dead_after=60, name="other")
                    reaping = threading.Thread(target=lambda: reaped.append(reaper.reap()))
                    reaping.start()
                    reaping.join(timeout=10)
                return row

            monkeypatch.setattr(Session, "get", get_then_reap)
            worker = TaskWorker(svc, {"t.quick": lambda ctx: None}, heartbeat=5, dead_after=60)
            assert worker.run_once()  # it never heartbeat: to the reaper, a dead worker's task
            monkeypatch.undo()
            assert reaped == [0]
            assert task(svc, task_id).state == "completed"
        finally:
            svc.close()


def test_workers_of_nodes_whose_clocks_differ_are_not_taken_for_dead(
    upstream: Upstream, tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL, two nodes whose clocks are two minutes apart (more than the worker
    timeout): each one's worker heartbeats, and neither reaps the other's running task nor
    lists the other as offline - heartbeats are by the catalog's clock, not the node's."""
    with private_database(postgres_url) as url:
        svc = build_services(on_postgres(upstream, tmp_path, url))
        try:
            skew = timedelta(minutes=2)

            def clock_off_by(offset: timedelta) -> None:  # this node's clock from now on
                monkeypatch.setattr(tasks_module, "now", lambda: datetime.now(UTC) + offset)

            behind = TaskWorker(svc, {}, heartbeat=5, dead_after=30, name="behind")
            ahead = TaskWorker(svc, {}, heartbeat=5, dead_after=30, name="ahead")
            for worker, offset in ((behind, -skew), (ahead, skew)):
                clock_off_by(offset)
                worker.heartbeat(force=True)
                with svc.catalog.session() as session:
                    session.add(Task(id=worker.name, name="t.any", state="running"))
                    session.flush()
                    session.get_one(Task, worker.name).worker = worker.name
            for worker, offset in ((behind, -skew), (ahead, skew)):
                clock_off_by(offset)
                assert worker.reap() == 0
                names = {w.name for w in online_workers(svc.catalog, 30)}
                assert names == {"behind", "ahead"}
            assert {task(svc, "behind").state, task(svc, "ahead").state} == {"running"}
        finally:
            svc.close()


def test_the_task_of_a_silent_worker_is_failed(services: Services) -> None:
    with services.catalog.session() as session:
        session.add(Worker(name="ghost", last_heartbeat=now() - timedelta(seconds=5)))
        session.add(Task(id="orphaned", name="t.any", state="running", worker="ghost"))
        session.add(Worker(name="alive", last_heartbeat=now()))
        session.add(Task(id="busy", name="t.any", state="running", worker="alive"))
    reaper = TaskWorker(services, {}, heartbeat=0.05, dead_after=2.0)
    assert reaper.reap() == 1
    failed = task(services, "orphaned")
    assert failed.state == "failed" and failed.error is not None
    assert "ghost" in failed.error["description"]
    assert task(services, "busy").state == "running"  # heartbeat 0 s ago, within 2 s


def test_an_orphan_cleanup_racing_an_upload_of_the_same_bytes_leaves_them_stored(
    services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Orphan cleanup deletes the orphans' packages, then their files: an upload of the same
    bytes in between (its package recorded, its file written) keeps its file, rather than be
    listed and answer 404."""
    wheel = build_wheel(tmp_path / "twice", "twice", "1.0")

    def upload() -> Package:
        with wheel.open("rb") as fh:
            return services.uploads.upload(None, fh, wheel.name, actor="admin")[0]

    first = upload()  # in no repository: an orphan
    queue(services, ORPHAN_CLEANUP, orphan_protection_time=0)
    uploaded: list[Package] = []
    uploading: list[threading.Thread] = []
    tracks = services.ledger.tracks

    def tracks_while_uploading(sha256: str) -> bool:
        if not uploading:  # the first file the cleanup is about to delete
            uploading.append(threading.Thread(target=lambda: uploaded.append(upload())))
            uploading[0].start()
            uploading[0].join(timeout=1.0)  # it may wait for the cleanup (it should)
        return tracks(sha256)

    monkeypatch.setattr(services.ledger, "tracks", tracks_while_uploading)
    assert services.new_worker().run_once()
    uploading[0].join(timeout=10)
    (again,) = uploaded
    assert again.id != first.id  # the orphan was deleted, the upload made a new package
    for sha in (again.sha256, again.metadata_sha256):
        assert sha is not None and services.store.has(sha)


def test_the_files_an_orphan_cleanup_leaves_to_the_cache_count_their_size(
    services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Orphan cleanup records the files it removes in the cache ledger before its deletion is
    committed: a process killed (or a writer holding their locks) before they are removed
    leaves them to eviction. An uploaded package's PEP 658 metadata (no artifact gives its
    size) was recorded with size 0: the cache's size left it out, and its limit never counted
    it. Each counts its stored bytes."""
    orphan = uploaded_orphan(services, tmp_path, "loose")
    files = {orphan.sha256: orphan.size}
    assert orphan.metadata_sha256 is not None
    opened = services.store.open(orphan.metadata_sha256)
    assert opened is not None
    opened.file.close()
    files[orphan.metadata_sha256] = opened.size
    monkeypatch.setattr(orphans_module, "STORED_WAIT_SECONDS", 0.1)
    locks = [stored_bytes(services.locks, sha) for sha in sorted(files)]
    for lock in locks:  # a writer of the same bytes: the cleanup leaves them (LockTimeout)
        assert lock.acquire(timeout=5)
    try:
        task_id = queue(services, ORPHAN_CLEANUP, orphan_protection_time=0)
        assert services.new_worker().run_once()
    finally:
        for lock in locks:
            lock.release()
    assert task(services, task_id).state == "completed"
    assert all(services.store.has(sha) for sha in files)
    assert services.ledger.tracked(list(files)) == set(files)
    assert services.ledger.total() == sum(files.values()), files


def test_an_upload_of_cached_bytes_is_not_evicted_before_it_leaves_the_cache(
    services: Services, upstream: Upstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An upload (into no repository) of bytes the cache holds takes them out of the cache's
    ledger once its package is committed; an eviction right then, with the cache over its
    limit, must not take the uploaded file and its package with it."""
    dist, expected = main_and_wheel(services, upstream)
    with closing(streamed(services, dist, WHL_02)) as cached:
        assert b"".join(cached) == expected.data
    stored_soon(cached)
    assert wait_until(lambda: services.ledger.tracks(expected.sha256), 10)
    forget = services.ledger.forget
    evicted: list[int] = []
    armed = [True]

    def evict_then_forget(sha256: str) -> None:
        if armed:  # the cache is over its limit right as the upload leaves it
            armed.clear()
            services.ledger.max_size = 1
            evicted.append(services.pullthrough.evict_if_needed())
        forget(sha256)

    monkeypatch.setattr(services.ledger, "forget", evict_then_forget)
    (tmp_path / WHL_02).write_bytes(expected.data)
    with (tmp_path / WHL_02).open("rb") as fh:
        uploaded = services.uploads.upload(None, fh, WHL_02, actor="admin")[0]
    assert evicted == [0]
    assert services.store.has(expected.sha256)
    with services.catalog.session() as session:
        assert session.get(Package, uploaded.id) is not None


def test_an_upload_whose_record_fails_leaves_its_bytes_to_eviction(
    services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An upload's file (and its metadata) is visible before the catalog commits its package;
    a commit that fails then left bytes nothing recorded, stored for good. They are the cache's
    until recorded: the next eviction takes them, and a refused upload leaves no entry."""
    wheel = build_wheel(tmp_path / "w", "leaky", "1.0")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()

    def failing(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the catalog went away")

    monkeypatch.setattr(audit_module, "record", failing)  # after the file is visible
    with wheel.open("rb") as fh, pytest.raises(RuntimeError):
        services.uploads.upload(None, fh, wheel.name, actor="admin")
    monkeypatch.undo()
    with services.catalog.session() as session:
        assert session.scalar(select(Package).where(Package.sha256 == digest)) is None
    with zipfile.ZipFile(wheel) as zf:
        metadata = hashlib.sha256(zf.read("leaky-1.0.dist-info/METADATA")).hexdigest()
    assert services.store.has(digest) and services.store.has(metadata)
    assert services.ledger.tracks(digest) and services.ledger.tracks(metadata)
    services.ledger.max_size = 1
    assert services.pullthrough.evict_if_needed() == 2
    assert not services.store.has(digest) and not services.store.has(metadata)

    other = build_wheel(tmp_path / "other", "leaky", "1.0", requires_python=">=3.8")
    with wheel.open("rb") as fh:
        services.uploads.upload(None, fh, wheel.name, actor="admin")
    with other.open("rb") as fh, pytest.raises(UploadRefused, match="File already exists"):
        services.uploads.upload(None, fh, wheel.name, actor="admin")
    assert not services.ledger.tracks(hashlib.sha256(other.read_bytes()).hexdigest())


def test_an_upload_does_not_wait_for_another_file_of_its_project_being_stored(
    services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The project's upload lock covers the checks and the catalog's commit, not the storing
    of the bytes (on S3 a PUT of up to gigabytes): another file of the project uploaded
    meanwhile is taken at once, not made to wait for it (a 503 once the wait ran out)."""
    big = build_wheel(tmp_path / "big", "busy", "1.0")
    small = build_wheel(tmp_path / "small", "busy", "1.1")
    slow = hashlib.sha256(big.read_bytes()).hexdigest()
    publishing, finish = threading.Event(), threading.Event()
    publish = services.store.publish

    def slowly(tmp: Path, sha256: str) -> None:
        if sha256 == slow:
            publishing.set()
            finish.wait(10)
        publish(tmp, sha256)

    monkeypatch.setattr(services.store, "publish", slowly)
    monkeypatch.setattr(uploads_module, "STORED_WAIT_SECONDS", 1.0)

    def upload(wheel: Path) -> int | None:
        with wheel.open("rb") as fh:
            return services.uploads.upload(None, fh, wheel.name, actor="admin")[1]

    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(upload, big)
        try:
            assert publishing.wait(10)
            upload(small)  # LockTimeout before: the big one's storing held the project's lock
        finally:
            finish.set()
        first.result()
    with services.catalog.reading() as session:
        names = set(session.scalars(select(Package.filename).where(Package.name == "busy")))
    assert names == {big.name, small.name}


def test_an_upload_that_takes_over_a_cached_copy_stores_its_metadata(
    services: Services, upstream: Upstream, tmp_path: Path
) -> None:
    """An upload of a file the cache holds takes its package over (the cache kept no METADATA
    apart: it reads a cached wheel's on demand) and stores the PEP 658 metadata, as for any
    upload; both are the package's then, neither left in the cache's ledger."""
    dist, expected = main_and_wheel(services, upstream)
    cached_in_catalog(services, dist, expected)
    (tmp_path / WHL_02).write_bytes(expected.data)
    with zipfile.ZipFile(tmp_path / WHL_02) as zf:
        (name,) = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = hashlib.sha256(zf.read(name)).hexdigest()
    with services.catalog.session() as session:
        cached = session.scalars(select(Package).where(Package.filename == WHL_02)).one()
        assert cached.origin == "cache" and cached.metadata_sha256 is None
    with (tmp_path / WHL_02).open("rb") as fh:
        uploaded = services.uploads.upload(None, fh, WHL_02, actor="admin")[0]
    assert (uploaded.id, uploaded.origin) == (cached.id, "upload")
    assert uploaded.metadata_sha256 == metadata and services.store.has(metadata)
    assert not services.ledger.tracks(metadata) and not services.ledger.tracks(expected.sha256)


RACES = ["cached-other-bytes", "cached-same-bytes", "cached-and-kept", "orphan-cleaned", "recached"]


@pytest.mark.parametrize("meanwhile", RACES)
@pytest.mark.parametrize("through", ["legacy", "rest"])
def test_an_upload_racing_another_nodes_record_of_its_filename_is_answered_as_one_after_it(
    upstream: Upstream,
    tmp_path: Path,
    postgres_url: str,
    monkeypatch: pytest.MonkeyPatch,
    meanwhile: str,
    through: str,
) -> None:
    """On PostgreSQL, another node records the upload's filename (a pull-through copy, other
    bytes or the same; one a repository then takes in) or an orphan cleanup removes the
    package the upload found, between the upload's check and its commit: twine (or pulp-cli,
    through the REST API) gets what it gets when that happened before the upload (200 or 202,
    or 400 "File already exists"), not a 500 from the filename's unique key or the version's
    foreign key; nothing half-written stays. Other nodes that evict and cache the name again
    at every check: a 409 from either, nothing changed."""
    with private_database(postgres_url) as url:
        settings = on_postgres(upstream, tmp_path, url)
        app = create_app(settings)
        svc = app.extensions["pullthrough"]
        try:
            with svc.catalog.session() as session:
                repo_id = create_repository(session, name="corp").id
                other_repo_id = create_repository(session, name="other").id
            add_distribution(svc, "corp", repository_id=repo_id, allow_uploads=True)
            wheel = build_wheel(tmp_path / "w", "raced", "1.0")
            sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
            cached = wheel
            if meanwhile != "cached-same-bytes":
                cached = build_wheel(tmp_path / "c", "raced", "1.0", requires_python=">=3.8")
            copy = package_from_file(
                cached, wheel.name, sha256=hashlib.sha256(cached.read_bytes()).hexdigest()
            )[0]
            copy.origin = "cache"
            if meanwhile == "orphan-cleaned":  # an earlier upload of it, in no repository
                with wheel.open("rb") as fh:
                    svc.uploads.upload(None, fh, wheel.name, actor="admin")

            def another_node() -> None:
                if meanwhile == "orphan-cleaned":
                    with svc.catalog.session() as session:
                        session.execute(delete(Package).where(Package.filename == wheel.name))
                    return
                if meanwhile == "recached":  # evicted, then cached again
                    with svc.catalog.session() as session:
                        session.execute(delete(Package).where(Package.filename == wheel.name))
                svc.catalog.add_new(copy)  # as the cache records a copy: its own transaction
                if meanwhile == "cached-and-kept":
                    with svc.catalog.session() as session:
                        taken = select(Package.id).where(Package.filename == wheel.name)
                        added = [session.scalars(taken).one()]
                        assert new_version(session, other_repo_id, add=added) is not None

            admitted = uploads_module._admitted
            checks: list[str] = []

            def racing(session: Session, *args: Any) -> Any:
                found = admitted(session, *args)
                checks.append(args[-1])
                if len(checks) == 2 or (meanwhile == "recached" and len(checks) > 2):
                    # the check under the project's lock, before the insert
                    another_node()
                return found

            monkeypatch.setattr(uploads_module, "_admitted", racing)
            password = (settings.server.data_dir / "admin-password").read_text().strip()
            with wheel.open("rb") as fh:
                if through == "legacy":
                    url = "/pypi/corp/legacy/"
                    form = {":action": "file_upload", "content": (fh, wheel.name)}
                else:  # pulp-cli's `content upload`
                    url = "/pulp/api/v3/content/python/packages/"
                    form = {"file": (fh, wheel.name), "repository": kinds.REPOSITORY.href(repo_id)}
                answer = app.test_client().post(url, data=form, auth=("admin", password))
            assert len(checks) >= 2
            with svc.catalog.session() as session:
                named = session.scalars(select(Package).where(Package.filename == wheel.name))
                recorded = [(p.sha256, p.origin) for p in named]
                held = {p.filename: p.sha256 for p in session.scalars(version_packages(repo_id, 1))}
            if meanwhile in ("cached-and-kept", "recached"):
                status, says = (409, "try again") if meanwhile == "recached" else (400, "exists")
                assert answer.status_code == status, answer.get_data(as_text=True)
                assert says in answer.get_data(as_text=True)
                assert recorded == [(copy.sha256, "cache")]
                assert held == {}
            else:
                ok = 200 if through == "legacy" else 202
                assert answer.status_code == ok, answer.get_data(as_text=True)
                assert recorded == [(sha, "upload")]
                assert held == {wheel.name: sha}
                assert svc.store.has(sha)
        finally:
            svc.close()


def test_an_upload_left_in_the_cache_ledger_by_a_killed_process_is_not_evicted(
    services: Services, upstream: Upstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An upload (into no repository) of bytes the cache holds, committed by a process killed
    before it took them out of the ledger: an eviction must leave the uploaded file and its
    package (orphan cleanup's to remove, not the cache's)."""
    dist, expected = main_and_wheel(services, upstream)
    with closing(streamed(services, dist, WHL_02)) as cached:
        assert b"".join(cached) == expected.data
    stored_soon(cached)
    assert wait_until(lambda: services.ledger.tracks(expected.sha256), 10)
    monkeypatch.setattr(services.ledger, "forget", lambda sha256: None)  # killed: never done
    (tmp_path / WHL_02).write_bytes(expected.data)
    with (tmp_path / WHL_02).open("rb") as fh:
        uploaded = services.uploads.upload(None, fh, WHL_02, actor="admin")[0]
    monkeypatch.undo()
    services.ledger.max_size = 1
    services.pullthrough.evict_if_needed()
    assert services.store.has(expected.sha256)
    with services.catalog.session() as session:
        assert session.get(Package, uploaded.id) is not None


def test_a_sync_fetches_again_a_file_removed_before_it_recorded_it(
    upstream: Upstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sync stores its files first and records them at its end; a remover in between (an
    eviction of a cached copy, an artifact's delete, a failed import) sees them recorded by
    nothing and removes them. Once recorded, the sync finds the file gone and fetches it again:
    the synced package is listed with its file, not a 404."""
    svc = build_services(
        settings_for(upstream, tmp_path, policy="immediate", includes=["shelf-reader"])
    )
    try:
        whl = next(f for f in upstream.files_for("shelf-reader") if f.filename == WHL_02)
        _, args = new_sync(svc)
        record = sync_module.new_version  # type: ignore[attr-defined]

        def removed_first(session: Any, *args: Any, **kwargs: Any) -> Any:
            assert svc.store.delete(whl.sha256) > 0  # as a remover would, before the record
            return record(session, *args, **kwargs)

        monkeypatch.setattr(sync_module, "new_version", removed_first)
        task_id = queue(svc, SYNC, **args)
        upstream.clear_log()
        sync_module.sync(TaskContext(svc, task_id, args))
        assert svc.store.has(whl.sha256)
        fetched = [r.path.rsplit("/", 1)[1] for r in upstream.requests_for("/files/")]
        assert fetched.count(WHL_02) == 2  # the sync's download, then once more
        reports = {r["code"]: r["done"] for r in task(svc, task_id).progress_reports}
        assert (reports["repair.missing"], reports["repair.repaired"]) == (1, 1)
    finally:
        svc.close()


@pytest.fixture(params=["sqlite", "postgres"])
def syncing(
    request: pytest.FixtureRequest, upstream: Upstream, tmp_path: Path
) -> Iterator[Services]:
    """Services whose remote syncs shelf-reader immediately, on SQLite or PostgreSQL."""
    remote: dict[str, object] = {"policy": "immediate", "includes": ["shelf-reader"]}
    with ExitStack() as stack:
        if request.param == "postgres":
            url = stack.enter_context(private_database(request.getfixturevalue("postgres_url")))
            settings = on_postgres(upstream, tmp_path, url, **remote)
        else:
            settings = settings_for(upstream, tmp_path, **remote)
        svc = build_services(settings)
        stack.callback(svc.close)
        yield svc


def new_sync(svc: Services, *, mirror: bool = False) -> tuple[str, dict[str, Any]]:
    """A new repository `r`, and the arguments of a sync of it from the remote `up`."""
    with svc.catalog.session() as session:
        repo_id = create_repository(session, name="r").id
        remote_id = session.scalar(select(Remote.id).where(Remote.name == "up"))
    return repo_id, {"repository_id": repo_id, "remote_id": remote_id, "mirror": mirror}


def run_sync(svc: Services, args: dict[str, Any]) -> None:
    """The sync task with `args`, queued and run here."""
    sync_module.sync(TaskContext(svc, queue(svc, SYNC, **args), args))


def sync_evicting_first(
    svc: Services, monkeypatch: pytest.MonkeyPatch, then: Callable[[], None] = lambda: None
) -> str:
    """A sync of shelf-reader into a new repository whose first download finds the cache over
    its limit: an eviction pass (which must evict one file), then `then`. The repository's id."""
    repo_id, args = new_sync(svc)
    download = sync_module.Syncer.download
    evicted: list[int] = []
    first = threading.Lock()

    def evicting_first(syncer: Any, wanted: Any) -> Any:
        with first:  # the first download only, whichever thread makes it
            if not evicted:
                limit, svc.ledger.max_size = svc.ledger.max_size, 1
                evicted.append(svc.pullthrough.evict_if_needed())
                svc.ledger.max_size = limit
                then()
        return download(syncer, wanted)

    monkeypatch.setattr(sync_module.Syncer, "download", evicting_first)
    run_sync(svc, args)
    assert evicted == [1]
    return repo_id


def test_a_sync_gives_up_a_download_going_on_past_the_files_size(
    upstream: Upstream, tmp_path: Path
) -> None:
    """An immediate sync from an upstream that sends junk without end after a file's bytes (no
    Content-Length) gives that file up past the size the index lists, at once - not once the
    disk is full of it - and fails saying so, with nothing of it left on disk."""
    svc = build_services(
        settings_for(upstream, tmp_path, includes=["shelf-reader==0.1"], policy="immediate")
    )
    try:
        _, args = new_sync(svc)
        upstream.endless_files = True
        started = time.monotonic()
        with pytest.raises(sync_module.SyncFailed, match="bytes expected"):
            run_sync(svc, args)
        assert time.monotonic() - started < 10  # the junk comes 64 KiB every 10 ms, without end
        assert list(svc.store.tmp.iterdir()) == []
    finally:
        svc.close()


def test_a_sync_records_anew_a_cached_copy_evicted_while_it_ran(
    syncing: Services, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sync reuses the cache's copy of a file it wants (the package and its stored bytes);
    an eviction while the sync downloads the rest deletes both. The sync then records the file
    anew and fetches it again, rather than fail on the deleted package's foreign key."""
    svc = syncing
    dist, whl = main_and_wheel(svc, upstream)
    cached_in_catalog(svc, dist, whl)  # its bookkeeping done: it neither evicts nor holds a lock
    assert svc.ledger.tracks(whl.sha256)
    repo_id = sync_evicting_first(svc, monkeypatch)
    assert svc.store.has(whl.sha256)
    with svc.catalog.session() as session:
        synced = session.scalars(select(Package).where(Package.filename == WHL_02)).one()
        assert synced.origin == "sync" and synced.sha256 == whl.sha256
        assert repo_id in {
            rc.repository_id
            for rc in session.scalars(
                select(RepositoryContent).where(RepositoryContent.package_id == synced.id)
            )
        }


def test_a_sync_taking_in_a_cached_copy_keeps_its_pep_658_metadata(
    syncing: Services, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wheel pulled through the cache (its METADATA read on demand, not kept) that a sync
    then takes into a repository gets its PEP 658 metadata stored and recorded, as a file the
    sync downloads does: the repository's pages can offer it (pip and uv then read it instead
    of the whole wheel)."""
    svc = syncing
    dist, whl = main_and_wheel(svc, upstream)
    cached_in_catalog(svc, dist, whl)
    repo_id, args = new_sync(svc)
    with svc.catalog.session() as session:
        copy = session.scalars(select(Package).where(Package.filename == WHL_02)).one()
        assert copy.origin == "cache" and copy.metadata_sha256 is None
    upstream.clear_log()
    run_sync(svc, args)
    assert WHL_02 not in {r.path.rsplit("/", 1)[1] for r in upstream.requests_for("/files/")}
    with svc.catalog.session() as session:
        taken = session.scalars(select(Package).where(Package.filename == WHL_02)).one()
        assert repo_id in {
            rc.repository_id
            for rc in session.scalars(
                select(RepositoryContent).where(RepositoryContent.package_id == taken.id)
            )
        }
    metadata = extract_metadata(WHL_02, whl.data)
    assert taken.metadata_sha256 == hashlib.sha256(metadata).hexdigest()
    opened = svc.store.open(taken.metadata_sha256)
    assert opened is not None
    with opened.file as fh:
        assert fh.read() == metadata


@pytest.mark.parametrize("failing", ["download", "record"])
def test_a_failed_sync_leaves_no_metadata_of_a_cached_copy_behind(
    upstream: Upstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    """A sync that fails (a download's hash mismatch; its record, here a blocklist entry added
    meanwhile) records nothing: nor does it leave the PEP 658 metadata it would have kept for
    a cached copy it takes in stored, where nothing records it and nothing ever removes it."""
    svc = build_services(
        settings_for(upstream, tmp_path, includes=["shelf-reader"], policy="immediate")
    )
    try:
        dist, whl = main_and_wheel(svc, upstream)
        cached_in_catalog(svc, dist, whl)
        _, args = new_sync(svc)
        if failing == "download":
            upstream.corrupt_files = True  # every other file the sync downloads
        else:

            def blocked(*_: object, **__: object) -> None:
                raise PackagesBlocked([WHL_02])

            monkeypatch.setattr(sync_module, "new_version", blocked)
        with pytest.raises((sync_module.SyncFailed, PackagesBlocked)):
            run_sync(svc, args)
        metadata = hashlib.sha256(extract_metadata(WHL_02, whl.data)).hexdigest()
        svc.ledger.max_size = 1  # the cache evicts all it may
        svc.pullthrough.evict_if_needed()
        assert not svc.store.has(metadata)  # never stored, or the cache's: evicted
    finally:
        svc.close()


def test_a_failed_sync_leaves_the_metadata_another_sync_is_recording(
    upstream: Upstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two syncs take the same cached copy into two repositories; each stores its metadata
    (the same bytes), then records it. The one whose record fails does not remove those bytes
    as recorded by nothing: the other, recording them now, would be left with a package whose
    metadata file is gone. They are the cache's until recorded, left to eviction."""
    svc = build_services(settings_for(upstream, tmp_path, includes=["shelf-reader==0.2"]))
    try:
        dist, whl = main_and_wheel(svc, upstream)
        cached_in_catalog(svc, dist, whl)
        metadata = extract_metadata(WHL_02, whl.data)
        with svc.catalog.session() as session:
            first, second = (create_repository(session, name=n).id for n in ("r1", "r2"))
            remote_id = session.scalar(select(Remote.id).where(Remote.name == "up"))
        assert svc.store.put_bytes(metadata)  # the other sync's, not recorded yet

        def blocked(*_: object, **__: object) -> None:
            raise PackagesBlocked([WHL_02])

        with monkeypatch.context() as patched:
            patched.setattr(sync_module, "new_version", blocked)
            args = {"repository_id": first, "remote_id": remote_id, "mirror": False}
            with pytest.raises(PackagesBlocked):
                run_sync(svc, args)
        sha = hashlib.sha256(metadata).hexdigest()
        with svc.catalog.session() as session:  # the other sync's record, as it commits it
            taken = session.scalars(select(Package).where(Package.filename == WHL_02)).one()
            assert taken.metadata_sha256 is None
            taken.metadata_sha256 = sha
            new_version(session, second, add=[taken.id])
        assert svc.store.has(sha)
    finally:
        svc.close()


def test_an_evicted_copy_takes_the_metadata_a_sync_kept_for_it_along(
    upstream: Upstream, tmp_path: Path
) -> None:
    """The PEP 658 metadata a sync keeps for a cached copy it takes in is recorded by that
    package alone. Once no repository holds the copy, the cache evicts it (file and package):
    its metadata file goes too, rather than stay in the store with nothing that records it,
    where no eviction, orphan cleanup or repair ever looks."""
    svc = build_services(settings_for(upstream, tmp_path, includes=["shelf-reader==0.2"]))
    try:
        dist, whl = main_and_wheel(svc, upstream)
        cached_in_catalog(svc, dist, whl)
        repo_id, args = new_sync(svc)
        run_sync(svc, args)
        with svc.catalog.session() as session:
            taken = session.scalars(select(Package).where(Package.filename == WHL_02)).one()
            metadata_sha256 = taken.metadata_sha256
            assert taken.origin == "cache" and metadata_sha256 is not None
            session.get_one(Repository, repo_id).retain_repo_versions = 1
            new_version(session, repo_id, remove=[taken.id])  # in no version any more
        assert svc.store.has(metadata_sha256)
        svc.ledger.max_size = 1
        assert svc.pullthrough.evict_if_needed() >= 1
        assert not svc.store.has(whl.sha256)
        with svc.catalog.session() as session:
            assert session.scalar(select(Package.id).where(Package.filename == WHL_02)) is None
        assert not svc.store.has(metadata_sha256)
    finally:
        svc.close()


def test_an_upload_taking_the_name_of_a_copy_takes_the_metadata_a_sync_kept_for_it_along(
    upstream: Upstream, tmp_path: Path
) -> None:
    """A cached copy a sync took in (and kept PEP 658 metadata for) is in no repository any
    more; an upload of other bytes under its filename takes the name, and the copy's record
    goes: its metadata file goes too (unless something else records it), rather than stay in
    the store recorded by nothing, where no eviction, orphan cleanup or repair ever looks."""
    svc = build_services(settings_for(upstream, tmp_path, includes=["shelf-reader==0.2"]))
    try:
        dist, whl = main_and_wheel(svc, upstream)
        cached_in_catalog(svc, dist, whl)
        repo_id, args = new_sync(svc)
        run_sync(svc, args)
        limit, svc.ledger.max_size = svc.ledger.max_size, 1
        svc.pullthrough.evict_if_needed()  # the copy is a repository's: the cache forgets it
        svc.ledger.max_size = limit
        assert svc.store.has(whl.sha256) and not svc.ledger.tracks(whl.sha256)
        with svc.catalog.session() as session:
            taken = session.scalars(select(Package).where(Package.filename == WHL_02)).one()
            metadata_sha256 = taken.metadata_sha256
            assert taken.origin == "cache" and metadata_sha256 is not None
            session.get_one(Repository, repo_id).retain_repo_versions = 1
            new_version(session, repo_id, remove=[taken.id])  # in no version any more
        ours = build_wheel(tmp_path, "shelf-reader", "0.2", requires_python=">=3.8")
        assert ours.name == WHL_02
        with ours.open("rb") as fh:
            package, _ = svc.uploads.upload(None, fh, WHL_02, actor="admin")
        assert package.sha256 != whl.sha256 and package.metadata_sha256 != metadata_sha256
        for sha in (metadata_sha256, whl.sha256):  # gone, or left to the cache's eviction
            assert not svc.store.has(sha) or svc.ledger.tracks(sha), sha
    finally:
        svc.close()


def test_an_eviction_during_a_sync_leaves_the_metadata_the_sync_is_recording(
    upstream: Upstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two cached copies with the same PEP 658 metadata bytes (wheels of one version for two
    platforms share their METADATA): one took it in a sync before and is in no repository
    now. A sync taking the other in finds those bytes recorded (by the first), stores them,
    and records them at its end; the first evicted meanwhile takes its metadata file along
    as recorded by nothing - and the sync commits a package whose metadata file is gone."""
    svc = build_services(settings_for(upstream, tmp_path, includes=["shelf-reader==0.2"]))
    try:
        dist, whl = main_and_wheel(svc, upstream)
        cached_in_catalog(svc, dist, whl)
        metadata = extract_metadata(WHL_02, whl.data)
        sha = svc.store.put_bytes(metadata)
        twin = svc.store.put_bytes(b"the other platform's wheel")
        svc.ledger.record(twin, 26)
        _, args = new_sync(svc)
        with svc.catalog.session() as session:
            session.add(
                Package(
                    filename="shelf_reader-0.2-py3-none-win_amd64.whl",
                    name="shelf-reader",
                    version="0.2",
                    packagetype="bdist_wheel",
                    sha256=twin,
                    size=26,
                    origin="cache",
                    metadata_sha256=sha,  # kept by a sync that took it in before
                )
            )
        read = sync_module._metadata_of

        def then_evicted(*args: Any) -> Any:
            found = read(*args)
            assert svc.pullthrough.events.evict(twin, lambda: svc.store.delete(twin))
            return found

        monkeypatch.setattr(sync_module, "_metadata_of", then_evicted)
        run_sync(svc, args)
        with svc.catalog.session() as session:
            taken = session.scalars(select(Package).where(Package.filename == WHL_02)).one()
            assert taken.metadata_sha256 == sha
        assert svc.store.has(sha)
    finally:
        svc.close()


def test_a_sync_storing_metadata_waits_for_a_removal_of_the_same_bytes(
    services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An eviction drops a cached copy's metadata file as recorded by nothing (checked, then
    removed, under the bytes' lock) while a sync taking in a copy with the same METADATA
    records and stores those bytes: the sync waits for that lock, and stores them after the
    removal - not before it, leaving its package a metadata file that is gone."""
    wheel = build_wheel(tmp_path / "w", "twin", "1.0")
    sha = services.store.put_bytes(wheel.read_bytes())
    _, metadata = package_from_file(wheel, wheel.name, sha256=sha)
    assert metadata is not None
    meta = services.store.put_bytes(metadata)  # an evicted copy's, recorded by nothing now
    copy = Package(filename=wheel.name, sha256=sha)
    checked, proceed = threading.Event(), threading.Event()
    check = orphans_module.recorded

    def slowly(*args: Any) -> bool:  # the removal's check done, its removal yet to come
        found = check(*args)
        checked.set()
        proceed.wait(5)
        return found

    monkeypatch.setattr(orphans_module, "recorded", slowly)
    svc = services
    with ThreadPoolExecutor(2) as pool:
        dropping = pool.submit(
            orphans_module.drop_unrecorded, svc.catalog, svc.ledger, svc.locks, svc.store, meta
        )
        assert checked.wait(5)
        storing = pool.submit(sync_module._metadata_of, svc.locks, svc.ledger, svc.store, [copy])
        with contextlib.suppress(FutureTimeout):
            storing.result(timeout=0.5)  # before: stored at once, then removed
        proceed.set()
        dropping.result()
        assert storing.result() == ({wheel.name: (sha, meta)}, {meta})
    assert services.store.has(meta) and services.ledger.tracks(meta)


def test_the_cache_evicts_no_metadata_file_a_cached_copy_records(
    upstream: Upstream, tmp_path: Path
) -> None:
    """Metadata bytes a sync stored are the cache's until recorded; left so (a sync that
    failed, or whose copy had metadata by then) while a cached copy in no repository records
    them, their eviction must not remove them: that copy would list a metadata file gone."""
    svc = build_services(settings_for(upstream, tmp_path, includes=["shelf-reader==0.2"]))
    try:
        dist, whl = main_and_wheel(svc, upstream)
        cached_in_catalog(svc, dist, whl)
        metadata = extract_metadata(WHL_02, whl.data)
        sha = svc.store.put_bytes(metadata)
        svc.ledger.record(sha, len(metadata))  # a failed sync's
        with svc.catalog.session() as session:
            taken = session.scalars(select(Package).where(Package.filename == WHL_02)).one()
            taken.metadata_sha256 = sha  # another sync's, in no repository since
        assert not svc.pullthrough.events.evict(sha, lambda: svc.store.delete(sha))
        assert svc.store.has(sha)
    finally:
        svc.close()


def test_a_sync_reads_a_cached_copy_it_took_in_once_not_at_every_sync(
    upstream: Upstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sync reads the PEP 658 metadata of a cached copy it takes into the repository from the
    stored file. An sdist whose PKG-INFO cannot serve as PEP 658 metadata (Metadata-Version
    2.1) keeps none: read again at every later sync, which already holds it, it made each
    sync of an unchanged remote read every such cached file whole (on S3, a GET of it)."""
    svc = build_services(settings_for(upstream, tmp_path, includes=["shelf-reader==0.1"]))
    try:
        dist = svc.registry.get("main")
        assert dist is not None
        sdist = next(f for f in upstream.files_for("shelf-reader") if f.filename == SDIST_01)
        cached_in_catalog(svc, dist, sdist)
        repo_id, args = new_sync(svc)
        read: list[str] = []
        local_path = svc.store.local_path

        def counted(sha256: str) -> Any:
            read.append(sha256)
            return local_path(sha256)

        monkeypatch.setattr(svc.store, "local_path", counted)
        run_sync(svc, args)
        assert read.count(sdist.sha256) == 1  # taken in: its metadata looked for
        with svc.catalog.session() as session:
            taken = session.scalars(select(Package).where(Package.filename == SDIST_01)).one()
            assert (taken.origin, taken.metadata_sha256) == ("cache", None)
            assert repo_id in set(
                session.scalars(
                    select(RepositoryContent.repository_id).where(
                        RepositoryContent.package_id == taken.id
                    )
                )
            )
        read.clear()
        for _ in range(2):  # the repository holds it already: nothing to take in, or read
            run_sync(svc, args)
        assert read == []
    finally:
        svc.close()


def test_a_sync_takes_the_copy_a_client_cached_again_after_an_eviction(
    syncing: Services, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cache's copy a sync reuses is evicted while the sync downloads the rest, and a
    client fetches the file again meanwhile: a new package of that filename. The sync takes
    that one, rather than record the file anew beside it (the filename is unique)."""
    svc = syncing
    dist, whl = main_and_wheel(svc, upstream)
    cached_in_catalog(svc, dist, whl)
    sync_evicting_first(svc, monkeypatch, then=lambda: cached_in_catalog(svc, dist, whl))
    assert svc.store.has(whl.sha256)
    with svc.catalog.session() as session:
        (held,) = session.scalars(select(Package).where(Package.filename == WHL_02))
        members = select(RepositoryContent.repository_id)
        assert session.scalars(members.where(RepositoryContent.package_id == held.id)).all()


def test_a_sync_takes_the_copy_a_client_cached_while_it_downloaded(
    syncing: Services, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file no package records when a sync starts is fetched through the cache by a client
    while the sync downloads (a long mirror, a popular file): a package of that filename. The
    sync takes that one into the repository rather than fail on the filename's unique key,
    and the cache does not keep the file for good (the sync's artifact of it no content uses)."""
    svc = syncing
    dist, whl = main_and_wheel(svc, upstream)
    repo_id, args = new_sync(svc)
    download = sync_module.Syncer.download

    def cached_meanwhile(self: Syncer, wanted: Any) -> Any:
        if wanted.file.filename == WHL_02:
            cached_in_catalog(svc, dist, whl)
        return download(self, wanted)

    monkeypatch.setattr(sync_module.Syncer, "download", cached_meanwhile)
    run_sync(svc, args)
    with svc.catalog.session() as session:
        held = {p.filename: p.sha256 for p in session.scalars(version_packages(repo_id, 1))}
        (package,) = session.scalars(select(Package).where(Package.filename == WHL_02))
    assert held[WHL_02] == whl.sha256
    assert package.sha256 == whl.sha256
    assert svc.store.has(whl.sha256)
    with svc.catalog.session() as session:  # the repository lets it go
        session.get_one(Repository, repo_id).retain_repo_versions = 1
        new_version(session, repo_id, remove=[package.id])
    cleanup = {"orphan_protection_time": 0}
    orphans_module.orphan_cleanup(TaskContext(svc, queue(svc, ORPHAN_CLEANUP, **cleanup), cleanup))
    svc.ledger.max_size = 1
    svc.pullthrough.evict_if_needed()  # evicts what the cache may, forgets what it may not
    # removed, or the cache's to evict in its turn: not kept for good by an artifact
    assert not svc.store.has(whl.sha256) or svc.ledger.tracks(whl.sha256)


def test_a_sync_leaves_an_upload_of_its_file_made_while_it_downloaded_an_upload(
    syncing: Services, upstream: Upstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file a user uploads (to another repository) while a sync downloads the same file: the
    sync takes that package into its repository (the filename is unique), and it stays the
    user's upload - who uploaded it, and from no remote - not recorded as the sync's."""
    svc = syncing
    _, whl = main_and_wheel(svc, upstream)
    repo_id, args = new_sync(svc)
    with svc.catalog.session() as session:
        private = create_repository(session, name="private").id
    (tmp_path / "up").mkdir()
    (tmp_path / "up" / WHL_02).write_bytes(whl.data)
    download = sync_module.Syncer.download

    def uploaded_meanwhile(self: Syncer, wanted: Any) -> Any:
        if wanted.file.filename == WHL_02:
            with (tmp_path / "up" / WHL_02).open("rb") as fh:
                svc.uploads.upload(private, fh, WHL_02, actor="alice")
        return download(self, wanted)

    monkeypatch.setattr(sync_module.Syncer, "download", uploaded_meanwhile)
    run_sync(svc, args)
    with svc.catalog.session() as session:
        held = {p.filename: p.sha256 for p in session.scalars(version_packages(repo_id, 1))}
        (package,) = session.scalars(select(Package).where(Package.filename == WHL_02))
        assert held[WHL_02] == whl.sha256
        assert (package.origin, package.uploaded_by, package.remote_id) == (
            "upload",
            "alice",
            None,
        )


def test_the_copy_cached_again_after_an_eviction_keeps_the_metadata_the_sync_read(
    syncing: Services, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The PEP 658 metadata a sync keeps for a cached copy it takes in goes to the package it
    takes in: also when that is a new one (the copy evicted while the sync downloaded the
    rest, and the file cached again meanwhile) - not to the evicted one's id, which no row has
    any more, the stored metadata then recorded by nothing and the package taken without."""
    svc = syncing
    dist, whl = main_and_wheel(svc, upstream)
    cached_in_catalog(svc, dist, whl)
    sync_evicting_first(svc, monkeypatch, then=lambda: cached_in_catalog(svc, dist, whl))
    metadata = hashlib.sha256(extract_metadata(WHL_02, whl.data)).hexdigest()
    with svc.catalog.session() as session:
        (held,) = session.scalars(select(Package).where(Package.filename == WHL_02))
        assert held.metadata_sha256 == metadata
    assert svc.store.has(metadata)


def cached_in_catalog(svc: Services, dist: ServedDistribution, file: UpstreamFile) -> None:
    """An upstream's file fetched through the cache, and recorded in the catalog (after its
    storing)."""
    with closing(streamed(svc, dist, file.filename)) as cached:
        assert b"".join(cached) == file.data
    stored_soon(cached)

    def recorded() -> bool:
        with svc.catalog.session() as session:
            found = select(Package.id).where(Package.filename == file.filename)
            return session.scalar(found) is not None

    assert wait_until(recorded, 10)


def test_two_syncs_lock_the_packages_they_share_in_one_order(postgres_url: str) -> None:
    """Two syncs' record transactions lock the packages they reuse (FOR UPDATE, 500 at a time),
    listed in their own orders (two remotes' projects): each took its first 500 and waited for
    the other's, and PostgreSQL ended one of them as a deadlock. One order (by id) lets the
    second wait for the first."""
    with private_database(postgres_url) as url:
        engine = make_engine(url)
        try:
            prepare(engine)
            catalog = Catalog(engine)
            with catalog.session() as session:
                rows = [
                    Package(
                        filename=f"p{i}-1.0-py3-none-any.whl", name=f"p{i}", version="1.0",
                        packagetype="bdist_wheel", python_version="py3",
                        sha256=f"{i:064x}", size=1,
                    )
                    for i in range(1000)
                ]  # fmt: skip
                session.add_all(rows)
            orders = [rows, rows[500:] + rows[:500]]
            barrier = threading.Barrier(2, timeout=30)
            errors: list[BaseException] = []

            def record(packages: list[Package]) -> None:
                try:
                    with catalog.session() as session:
                        scalars = session.scalars

                        def then_wait(*args: Any, **kwargs: Any) -> Any:
                            found = scalars(*args, **kwargs)
                            if not barrier.broken:
                                with contextlib.suppress(threading.BrokenBarrierError):
                                    barrier.wait(timeout=3)  # both hold their first 500
                            return found

                        session.scalars = then_wait  # type: ignore[method-assign]
                        assert sync_module._gone(session, packages) == set()
                except BaseException as exc:
                    errors.append(exc)

            threads = [threading.Thread(target=record, args=(o,)) for o in orders]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            assert not any(t.is_alive() for t in threads)
            assert errors == []
        finally:
            engine.dispose()


def test_an_orphan_cleanup_leaves_the_bytes_a_running_sync_has_just_stored(
    upstream: Upstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sync stores its files, then records them all at its end; an orphan cleanup in between
    (of a day-old orphan of the same bytes) leaves them, as Pulp protects new artifacts, or
    removes them first (the sync stores them under their lock, after the removal): the synced
    package is listed with its file, rather than answer 404."""
    svc = build_services(
        settings_for(upstream, tmp_path, policy="immediate", includes=["shelf-reader"])
    )
    try:
        whl = next(f for f in upstream.files_for("shelf-reader") if f.filename == WHL_02)
        (tmp_path / WHL_02).write_bytes(whl.data)
        with (tmp_path / WHL_02).open("rb") as fh:
            orphan = svc.uploads.upload(None, fh, WHL_02, actor="admin")[0]
        day_ago = time.time() - 86_400 - 60  # past the default protection time
        with svc.catalog.session() as session:
            session.get(Package, orphan.id).pulp_created = now() - timedelta(days=1, minutes=1)  # type: ignore[union-attr]
            repo_id = create_repository(session, name="r").id
            remote_id = session.scalar(select(Remote.id).where(Remote.name == "up"))
        for sha in (orphan.sha256, orphan.metadata_sha256 or ""):
            os.utime(svc.store.path(sha), (day_ago, day_ago))  # type: ignore[attr-defined]
        queue(svc, ORPHAN_CLEANUP)
        queue(svc, SYNC, repository_id=repo_id, remote_id=remote_id, mirror=False)
        stored, go_on = threading.Event(), threading.Event()
        download = Syncer.download

        def download_then_wait(self: Syncer, wanted: Any) -> Any:  # stores, lets go, waits
            package = download(self, wanted)
            if package is not None and package.sha256 == whl.sha256:
                stored.set()
                go_on.wait(30)  # its package is recorded only at the sync's end
            return package

        monkeypatch.setattr(Syncer, "download", download_then_wait)
        syncing: list[threading.Thread] = []
        tracks = svc.ledger.tracks

        def deleted() -> bool:
            with svc.catalog.reading() as session:
                return session.get(Package, orphan.id) is None

        def tracks_while_syncing(sha256: str) -> bool:
            # once the orphans' packages are gone (committed): the sync downloads the file anew
            if not syncing and deleted():
                syncing.append(threading.Thread(target=svc.new_worker().run_once))
                syncing[0].start()  # it waits for the bytes' lock this removal holds
            return tracks(sha256)

        monkeypatch.setattr(svc.ledger, "tracks", tracks_while_syncing)
        assert svc.new_worker().run_once()  # the cleanup
        assert stored.wait(30)
        go_on.set()
        syncing[0].join(timeout=30)
        assert not syncing[0].is_alive()
        with svc.catalog.session() as session:
            synced = session.scalars(select(Package).where(Package.filename == WHL_02)).one()
            assert synced.id != orphan.id and synced.origin == "sync"
        assert svc.store.has(synced.sha256)
    finally:
        svc.close()


def test_bytes_whose_lock_stays_held_cost_an_upload_a_503_and_a_cleanup_that_file_only(
    upstream: Upstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another request or task holds a file's bytes' lock past the wait (a long write of the
    same bytes): an upload of them is a 503 to retry, not a 500; an orphan cleanup leaves that
    file (whoever writes it records it) and removes the others."""
    monkeypatch.setattr("pullthrough.services.orphans.STORED_WAIT_SECONDS", 0.3)  # both waits
    settings = settings_for(upstream, tmp_path)
    app = create_app(settings)
    svc = app.extensions["pullthrough"]
    try:
        orphans = []
        for name in ("orphan-a", "orphan-b"):
            with build_wheel(tmp_path / name, name, "1.0").open("rb") as fh:
                orphans.append(
                    svc.uploads.upload(
                        None, fh, f"{name.replace('-', '_')}-1.0-py3-none-any.whl", actor="admin"
                    )[0]
                )
        held = stored_bytes(svc.locks, orphans[0].sha256)
        assert held.acquire(timeout=1)
        try:
            auth = ("admin", (settings.server.data_dir / "admin-password").read_text().strip())
            again = build_wheel(tmp_path / "again", "orphan-a", "1.0")
            with again.open("rb") as fh:
                answer = app.test_client().post(
                    "/pulp/api/v3/content/python/packages/",
                    data={"file": (fh, again.name)},
                    auth=auth,
                )
            assert answer.status_code == 503 and answer.headers["Retry-After"]
            queue(svc, ORPHAN_CLEANUP, orphan_protection_time=0)
            assert svc.new_worker().run_once()
        finally:
            held.release()
        assert svc.store.has(orphans[0].sha256)  # left to whoever writes it
        assert not svc.store.has(orphans[1].sha256)
    finally:
        svc.close()


# ---- the app, through Flask's test client ----------------------------------------------------


def test_the_app_answers_pages_and_the_api_in_process(upstream: Upstream, tmp_path: Path) -> None:
    settings = settings_for(upstream, tmp_path)
    app = create_app(settings)
    try:
        client = app.test_client()
        page = client.get(
            "/pypi/main/simple/shelf-reader/",
            headers={"Accept": "application/vnd.pypi.simple.v1+json"},
        )
        assert page.status_code == 200
        assert WHL_02 in {f["filename"] for f in page.get_json()["files"]}
        assert client.get("/pulp/api/v3/repositories/python/python/").status_code == 401
        password = (settings.server.data_dir / "admin-password").read_text().strip()
        created = client.post(
            "/pulp/api/v3/repositories/python/python/",
            json={"name": "in-process"},
            auth=("admin", password),
        )
        assert created.status_code == 201, created.get_data(as_text=True)
        assert created.get_json()["latest_version_href"].endswith("/versions/0/")
    finally:
        app.extensions["pullthrough"].close()


@pytest.mark.parametrize(
    ("asked", "status", "content_range", "part"),
    [
        ("bytes=-10", 206, "bytes {tail}-{last}/{size}", slice(-10, None)),
        ("bytes=-100000000", 206, "bytes 0-{last}/{size}", slice(None)),  # longer: all of it
        ("bytes=0-3", 206, "bytes 0-3/{size}", slice(0, 4)),
        ("bytes=100000000-", 416, "bytes */{size}", slice(0, 0)),
    ],
)
def test_ranges_of_a_cached_file_follow_rfc_9110(
    upstream: Upstream, tmp_path: Path, asked: str, status: int, content_range: str, part: slice
) -> None:
    app = create_app(settings_for(upstream, tmp_path))
    try:
        client = app.test_client()
        url = f"/pulp/content/main/{WHL_02}"
        with client.get(url) as first:
            whole = first.get_data()  # and stored alongside: the range comes from the store
        with client.get(url, headers={"Range": asked}) as answer:
            assert answer.status_code == status
            size = len(whole)
            expected = content_range.format(tail=size - 10, last=size - 1, size=size)
            assert answer.headers["Content-Range"] == expected
            if status == 206:
                assert answer.get_data() == whole[part]
        assert len(upstream.requests_for(WHL_02, server="files", method="GET")) == 1
    finally:
        app.extensions["pullthrough"].close()


def test_a_cached_files_conditions_come_before_its_range(
    upstream: Upstream, tmp_path: Path
) -> None:
    """RFC 9110 13.2.2: If-Match, then If-None-Match, then Range; a Range is for GET only, and
    one of another unit or several ranges is ignored (the whole file), not a 416. A 412 says
    why, without the file. With If-Range the Range holds only for the file's own ETag, strongly
    compared (13.1.5: not a weak one, nor a date, which a file without Last-Modified never
    matches); otherwise the whole file."""
    app = create_app(settings_for(upstream, tmp_path))
    try:
        client = app.test_client()
        url = f"/pulp/content/main/{WHL_02}"
        with client.get(url) as first:
            whole = first.get_data()  # and stored alongside: what follows is the store's
        etag = f'"{hashlib.sha256(whole).hexdigest()}"'
        cases: list[tuple[str, dict[str, str], int, bytes]] = [
            ("GET", {"If-None-Match": etag, "Range": "bytes=0-9"}, 304, b""),
            ("GET", {"If-None-Match": f"W/{etag}"}, 304, b""),
            ("GET", {"If-None-Match": '"other"', "Range": "bytes=0-9"}, 206, whole[:10]),
            (
                "GET",
                {"If-Match": '"other"', "Range": "bytes=0-9"},
                412,
                PRECONDITION_FAILED.encode(),
            ),
            ("GET", {"If-Match": f"{etag}", "Range": "bytes=0-9"}, 206, whole[:10]),
            ("GET", {"If-Match": "*"}, 200, whole),
            ("GET", {"If-Range": etag, "Range": "bytes=10-99"}, 206, whole[10:100]),
            ("GET", {"If-Range": f"W/{etag}", "Range": "bytes=10-99"}, 200, whole),
            ("GET", {"If-Range": '"other"', "Range": "bytes=10-99"}, 200, whole),
            (
                "GET",
                {"If-Range": "Sun, 06 Nov 1994 08:49:37 GMT", "Range": "bytes=0-9"},
                200,
                whole,
            ),
            ("GET", {"Range": "items=0-1"}, 200, whole),
            ("GET", {"Range": "bytes=0-1,5-6"}, 200, whole),
            ("HEAD", {"Range": "bytes=0-9"}, 200, b""),
        ]
        for method, headers, status, body in cases:
            with client.open(url, method=method, headers=headers) as answer:
                assert answer.status_code == status, (method, headers)
                assert answer.get_data() == body, (method, headers)
                assert answer.headers["ETag"] == etag
                if method == "HEAD":
                    assert answer.headers["Content-Length"] == str(len(whole))
    finally:
        app.extensions["pullthrough"].close()


@pytest.fixture
def on_s3(upstream: Upstream, s3_server: S3Server, tmp_path: Path) -> Iterator[Flask]:
    """The app, its files in a bucket of their own on the S3 server."""
    storage = {
        "backend": "s3",
        "s3_endpoint_url": s3_server.endpoint_url,
        "s3_bucket": s3_server.bucket(f"services-{uuid.uuid4().hex[:12]}"),
        "s3_region": s3_server.region,
        "s3_access_key_id": s3_server.access_key,
        "s3_secret_access_key": s3_server.secret_key,
        "s3_addressing_style": "path",
    }
    config = tmp_path / "pullthrough.toml"
    config.write_text(
        config_text(upstream.index_url, tmp_path / "data")
        + "[storage]\n"
        + "".join(f'{k} = "{v}"\n' for k, v in storage.items())
    )
    app = create_app(load_settings(config, environ={}))
    try:
        yield app
    finally:
        app.extensions["pullthrough"].close()


def stored_in_the_bucket(app: Flask) -> tuple[bytes, str]:
    """WHL_02 fetched through the app, then in its bucket: its bytes and its ETag."""
    with app.test_client().get(f"/pulp/content/main/{WHL_02}") as first:
        whole = first.get_data()
    sha256 = hashlib.sha256(whole).hexdigest()
    assert wait_until(lambda: app.extensions["pullthrough"].store.has(sha256))
    return whole, f'"{sha256}"'


def received(app: Flask, url: str, headers: dict[str, str]) -> tuple[int, bytes]:
    """What a WSGI server sends a client for a GET: the status, once the app starts its answer,
    then the body up to its end - or up to an error while it is read, too late for another
    status: the client is left with a body cut short."""
    statuses: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        statuses.append(status)

    body = bytearray()
    chunks = app(EnvironBuilder(url, headers=list(headers.items())).get_environ(), start_response)
    try:
        for chunk in chunks:
            body += chunk
    except OSError:  # the object gone when its GET starts, at the first read
        pass
    finally:
        getattr(chunks, "close", lambda: None)()
    return int(statuses[-1].split()[0]), bytes(body)


@pytest.mark.parametrize(
    ("headers", "status", "part"),
    [
        ({"If-None-Match": '"other"'}, 200, slice(None)),
        ({"If-Match": "{etag}"}, 200, slice(None)),
        ({"If-None-Match": '"other"', "Range": "bytes=10-99"}, 206, slice(10, 100)),
        ({"If-Match": "{etag}", "Range": "bytes=-20"}, 206, slice(-20, None)),
        ({"If-Range": "{etag}", "Range": "bytes=10-99"}, 206, slice(10, 100)),
        ({"If-Range": '"other"', "Range": "bytes=10-99"}, 200, slice(None)),
    ],
)
def test_an_s3_files_answer_to_a_condition_is_whole_though_another_node_evicts_it_meanwhile(
    on_s3: Flask,
    monkeypatch: pytest.MonkeyPatch,
    headers: dict[str, str],
    status: int,
    part: slice,
) -> None:
    """Another node evicts a file from the bucket right after a request has opened it, before
    the first read of its answer: an answer that sends bytes once its condition is met
    (If-None-Match naming another ETag, If-Match naming the file's, If-Range) has its GET under
    way by then, from where it sends, so the client gets them whole - never a cut body."""
    whole, etag = stored_in_the_bucket(on_s3)
    services: Services = on_s3.extensions["pullthrough"]
    store = services.store
    real_open = store.open
    evictions = [etag.strip('"')]

    def open_then_evicted(sha256: str, *, read_from: ReadFrom | None = None) -> Opened | None:
        opened = real_open(sha256, read_from=read_from)
        if evictions:  # another node's eviction, between this open and the answer's first read
            store.delete(evictions.pop())
        return opened

    monkeypatch.setattr(store, "open", open_then_evicted)
    asked = {name: value.format(etag=etag) for name, value in headers.items()}
    url = f"/pulp/content/main/{WHL_02}"
    assert received(on_s3, url, asked) == (status, whole[part])
    assert not evictions and not store.has(etag.strip('"'))


def test_an_s3_files_answers_without_its_bytes_never_get_them(
    on_s3: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HEAD, a 304, a 412 and a 416 send none of a file: the object store is asked for its
    size (a HEAD), never for its bytes."""
    whole, etag = stored_in_the_bucket(on_s3)
    store = on_s3.extensions["pullthrough"].store
    real_call = store.call
    calls: list[str] = []

    def noted(method: str, **args: Any) -> Any:
        calls.append(method)
        return real_call(method, **args)

    monkeypatch.setattr(store, "call", noted)
    client = on_s3.test_client()
    url = f"/pulp/content/main/{WHL_02}"
    cases: list[tuple[str, dict[str, str], int]] = [
        ("HEAD", {"If-None-Match": '"other"', "Range": "bytes=0-9"}, 200),
        ("GET", {"If-None-Match": etag}, 304),
        ("GET", {"If-None-Match": etag, "If-Range": etag, "Range": "bytes=0-9"}, 304),
        ("GET", {"If-Match": '"other"'}, 412),
        ("GET", {"Range": f"bytes={len(whole)}-"}, 416),
    ]
    for method, headers, status in cases:
        with client.open(url, method=method, headers=headers) as answer:
            assert answer.status_code == status, (method, headers)
    assert "head_object" in calls and "get_object" not in calls


MIB = 1024 * 1024
GUARD = 10 * MIB - HOLD_BACK  # the guard byte of a 10 MiB file


@pytest.mark.parametrize(
    ("asked", "size", "relayed"),
    [
        ("bytes=-10000", 10 * MIB, True),  # a locker reading a wheel's central directory
        ("bytes=0-99", 10 * MIB, True),  # its head
        (f"bytes=0-{GUARD - 1}", 10 * MIB, True),  # everything before the guard byte
        (f"bytes=0-{GUARD}", 10 * MIB, False),  # ... and the guard byte
        (f"bytes={GUARD + 1}-", 10 * MIB, True),  # everything after it
        ("bytes=0-", 10 * MIB, False),  # the whole file
        (f"bytes=-{HOLD_BACK}", 10 * MIB, False),  # the held-back tail
        (f"bytes={4 * MIB}-", 10 * MIB, False),  # resuming a GET cut short, from before the guard
        ("bytes=-22", 1000, True),  # a small file's end record
        ("bytes=0-9", 1000, False),  # a small file is held back whole: its guard is its first byte
        ("bytes=-1000", 1000, False),
        ("bytes=-5000", 1000, False),  # a suffix longer than the file takes all of it
        ("bytes=2000-", 1000, False),  # not satisfiable: from the store, which says why
    ],
)
def test_a_cold_range_is_relayed_only_without_the_guard_byte(
    asked: str, size: int, relayed: bool
) -> None:
    assert relayable(range_span(asked), size) is relayed
    assert relayable(range_span(asked), None) is False  # no size on the index: no guard known


def test_hostile_api_requests_are_400s(upstream: Upstream, tmp_path: Path) -> None:
    settings = settings_for(upstream, tmp_path)
    app = create_app(settings)
    try:
        client = app.test_client()
        password = (settings.server.data_dir / "admin-password").read_text().strip()
        auth = ("admin", password)
        repos = "/pulp/api/v3/repositories/python/python/"
        remotes = "/pulp/api/v3/remotes/python/python/"
        deep = "[" * 100_000 + "]" * 100_000
        answers = [
            client.post(repos, data=deep, content_type="application/json", auth=auth),
            client.get(repos, query_string={"offset": str(10**30)}, auth=auth),
            client.get(repos, query_string={"limit": "-1"}, auth=auth),
            client.post(
                remotes,
                json={
                    "name": "r",
                    "url": "http://127.0.0.1:9/",
                    "headers": [{"X-A": "1\r\nX-B: 2"}],
                },
                auth=auth,
            ),
            client.post(
                remotes,
                json={"name": "r", "url": "http://127.0.0.1:9/", "headers": [{"Bad Name": "x"}]},
                auth=auth,
            ),
        ]
        assert [a.status_code for a in answers] == [400] * len(answers)
        assert all(a.is_json and a.get_json() for a in answers)
    finally:
        app.extensions["pullthrough"].close()


def test_a_base_path_inside_another_distributions_is_refused(
    upstream: Upstream, tmp_path: Path
) -> None:
    """As in Pulp, a distribution's base path overlaps no other's: `main/simple` would have its
    project list answered by `main` (as a project named `simple`)."""
    settings = settings_for(upstream, tmp_path)
    app = create_app(settings)
    try:
        client = app.test_client()
        auth = ("admin", (settings.server.data_dir / "admin-password").read_text().strip())
        dists = "/pulp/api/v3/distributions/python/pypi/"
        for inside in ("main/simple", "main/team/pypi"):
            refused = client.post(dists, json={"name": "x", "base_path": inside}, auth=auth)
            assert refused.status_code == 400
            assert refused.get_json() == {
                "base_path": ["Overlaps with existing distribution 'main'."]
            }
        assert (
            client.post(dists, json={"name": "t", "base_path": "team"}, auth=auth).status_code
            == 202
        )

        def created() -> list[dict[str, Any]]:
            listed = client.get(dists, query_string={"name": "t"}, auth=auth).get_json()
            return list(listed["results"])

        assert wait_until(created, 10)  # by a task
        (team,) = created()
        around = client.patch(team["pulp_href"], json={"base_path": "main/t"}, auth=auth)
        assert around.status_code == 400
        assert (
            client.post(dists, json={"name": "u", "base_path": "mainly"}, auth=auth).status_code
            == 202
        )
    finally:
        app.extensions["pullthrough"].close()


def test_secrets_inside_urls_and_header_values_are_write_only(
    upstream: Upstream, tmp_path: Path
) -> None:
    settings = settings_for(upstream, tmp_path)
    app = create_app(settings)
    try:
        client = app.test_client()
        auth = ("admin", (settings.server.data_dir / "admin-password").read_text().strip())
        body = {
            "name": "private",
            "url": "https://reader:url-pw-51c@index.example/simple/?token=tok-3e1&flat",
            "proxy_url": "http://proxy-user:proxy-pw-7d2@proxy.example:3128/",
            "headers": [{"X-Api-Key": "key-93f0"}, {"X-Team": "infra"}],
        }
        created = client.post("/pulp/api/v3/remotes/python/python/", json=body, auth=auth)
        assert created.status_code == 201, created.get_data(as_text=True)
        shown = created.get_json()
        assert shown["url"] == "https://********@index.example/simple/?token=********&flat"
        assert shown["proxy_url"] == "http://********@proxy.example:3128/"
        assert shown["headers"] == [{"X-Api-Key": "********"}, {"X-Team": "********"}]
        href = shown["pulp_href"]

        # Written back as shown (a GET, edited, PUT back): the secrets stay.
        edited = {**shown, "headers": [*shown["headers"], {"X-New": "new-value"}]}
        assert client.put(href, json=edited, auth=auth).status_code == 202
        read = client.get(href, auth=auth).get_data(as_text=True)
        secrets = ("url-pw-51c", "reader", "tok-3e1", "proxy-pw-7d2", "key-93f0", "new-value")
        for secret in secrets:
            assert secret not in read
        with app.extensions["pullthrough"].catalog.session() as session:
            row = session.scalars(select(Remote).where(Remote.name == "private")).one()
            kept = RemoteSettings.from_values(row.name, row.settings)
        assert kept.url == body["url"] and kept.proxy_url == body["proxy_url"]
        assert kept.header_map == {"X-Api-Key": "key-93f0", "X-Team": "infra", "X-New": "new-value"}

        # A new value replaces the old one; a parameter shown HIDDEN keeps its stored value.
        url = "https://other@index.example/simple/?token=********&user=new"
        client.patch(href, json={"url": url}, auth=auth)
        with app.extensions["pullthrough"].catalog.session() as session:
            row = session.scalars(select(Remote).where(Remote.name == "private")).one()
            assert (
                row.settings["url"] == "https://other@index.example/simple/?token=tok-3e1&user=new"
            )
        # ... but only for the host they were sent to: an API client that may not read them
        # must not have them sent to a host of its choosing.
        for moved in (
            {"url": "https://evil.example/simple/?token=********"},
            {"url": "https://********@evil.example/simple/"},
            {"proxy_url": "http://********@evil.example:3128/"},
            {"url": "https://evil.example/simple/", "headers": [{"X-Api-Key": "********"}]},
        ):
            refused = client.patch(href, json=moved, auth=auth)
            assert refused.status_code == 400, (moved, refused.get_data(as_text=True))
            assert "same" in refused.get_data(as_text=True)
        with app.extensions["pullthrough"].catalog.session() as session:
            row = session.scalars(select(Remote).where(Remote.name == "private")).one()
            assert "evil" not in str(row.settings)
        audit = client.get("/pulp/api/v3/audit/", auth=auth)
        assert audit.status_code == 200 and "index.example" in audit.get_data(as_text=True)
        assert "tok-3e1" not in audit.get_data(as_text=True)
    finally:
        app.extensions["pullthrough"].close()


def test_a_sync_that_cannot_keep_a_page_copy_still_reads_the_page(
    services: Services,
    upstream: Upstream,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A full disk: the copy a sync keeps for its next revalidation is only not kept; the
    page fetched is read all the same (as a 304's copy, and as a request's page)."""
    wheel = upstream.add_file("kept-lib", build_wheel(tmp_path, "kept-lib", "0.1"))
    with services.catalog.session() as session:
        remote = session.scalars(select(Remote).where(Remote.name == "up")).one()
        settings = RemoteSettings.from_values(remote.name, remote.settings)

    def full(*_: object, **__: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(services.pages_cache, "set", full)
    client = UpstreamClient(settings, tls_dir=tmp_path / "tls")
    try:
        syncer = Syncer(TaskContext(services, "task", {}), remote.id, client)
        page = syncer.page("kept-lib")
    finally:
        client.close()
    assert page is not None and [f.filename for f in page.files] == [wheel.filename]
    assert syncer.errors == [] and syncer.changed == 1
    assert "could not keep the page" in caplog.text and "No space left" in caplog.text


def test_a_sync_reads_again_a_page_copy_an_older_build_read(
    services: Services, upstream: Upstream, tmp_path: Path
) -> None:
    """A sync's copy of an upstream page holds what the build that read it made of it: one an
    older release read (before an upgrade in place) is asked for whole, not revalidated with
    its ETag, or the upstream's 304 keeps that reading - here a "Back to index" link an older
    release took for a file - for as long as the page does not change, as for a request's
    page (remote_pages.READER)."""
    wheel = upstream.add_file("kept-lib", build_wheel(tmp_path, "kept-lib", "0.1"))
    with services.catalog.session() as session:
        remote = session.scalars(select(Remote).where(Remote.name == "up")).one()
        settings = RemoteSettings.from_values(remote.name, remote.settings)
    client = UpstreamClient(settings, tls_dir=tmp_path / "tls")
    try:
        assert Syncer(TaskContext(services, "task", {}), remote.id, client).page("kept-lib")
        key = copy_key("sync", remote.id, client.project_url("kept-lib"))
        copy = services.pages_cache.get(key)
        link = DistFile("Back to index", upstream.index_url)
        older = replace(copy.value, files=(*copy.value.files, link))
        services.pages_cache.set(key, replace(copy, value=older, read_by="an older release"))
        upstream.clear_log()
        page = Syncer(TaskContext(services, "task", {}), remote.id, client).page("kept-lib")
    finally:
        client.close()
    assert page is not None and [f.filename for f in page.files] == [wheel.filename]
    asked = upstream.requests_for("/simple/kept-lib/")
    assert asked and all(r.header("If-None-Match") is None for r in asked)


def test_a_sync_reads_a_page_whose_copy_this_version_cannot_read(
    services: Services, upstream: Upstream, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A copy of a page kept by the last sync that this version cannot read back (written by
    another version, after a rollback; damaged) is no copy: the page is read whole, as a
    request's page is, instead of every sync of the project failing."""
    wheel = upstream.add_file("kept-lib", build_wheel(tmp_path, "kept-lib", "0.1"))
    with services.catalog.session() as session:
        remote = session.scalars(select(Remote).where(Remote.name == "up")).one()
        settings = RemoteSettings.from_values(remote.name, remote.settings)
    client = UpstreamClient(settings, tls_dir=tmp_path / "tls")
    try:
        key = copy_key("sync", remote.id, client.project_url("kept-lib"))
        services.pages_cache.set(key, WrittenByAnotherVersion())
        page = Syncer(TaskContext(services, "task", {}), remote.id, client).page("kept-lib")
    finally:
        client.close()
    assert page is not None and [f.filename for f in page.files] == [wheel.filename]
    assert services.pages_cache.get(key).value == page  # replaced by a copy of its own
    assert "unreadable copy of" in caplog.text


def test_a_setting_the_config_file_no_longer_gives_goes_back_to_its_default(
    upstream: Upstream, tmp_path: Path
) -> None:
    """An exemption or audit mode tried once, then deleted from the file, must not stay in force
    after the restart; a value the API changed since is the API's and stays."""
    config = tmp_path / "pullthrough.toml"

    def start(remote: str, distribution: str) -> dict[str, Any]:
        config.write_text(
            f'[server]\ndata_dir = "{tmp_path / "data"}"\n'
            f'[[remotes]]\nname = "up"\nurl = "{upstream.index_url}"\n{remote}\n'
            f'[[distributions]]\nname = "main"\nbase_path = "main"\nremote = "up"\n{distribution}\n'
        )
        svc = build_services(load_settings(config, environ={}))
        try:
            with svc.catalog.session() as session:
                row = session.scalars(select(Remote).where(Remote.name == "up")).one()
                dist = session.scalars(
                    select(Distribution).where(Distribution.name == "main")
                ).one()
                return {
                    "remote": RemoteSettings.from_values(row.name, row.settings),
                    "block_malicious": dist.block_malicious,
                    "hidden": dist.hidden,
                    "blocklist": dist.blocklist,
                }
        finally:
            svc.close()

    first = start(
        'min_age = "7d"\npolicy_exempt = ["hot"]\npolicy_mode = "audit"\n'
        'exclude_newer = "2026-11-01T00:00:00+00:00"\nprereleases = false',
        'block_malicious = false\nhidden = true\nblocklist = ["evil"]',
    )
    assert first["remote"].policy_mode == "audit" and first["remote"].policy_exempt == ["hot"]
    assert not first["block_malicious"] and first["hidden"]
    # The API changes two of them (as a PATCH writes them).
    svc = build_services(load_settings(config, environ={}))
    try:
        with svc.catalog.session() as session:
            row = session.scalars(select(Remote).where(Remote.name == "up")).one()
            row.settings = {**row.settings, "policy_exempt": ["warm"]}
            dist = session.scalars(select(Distribution).where(Distribution.name == "main")).one()
            dist.blocklist = ["evil", "worse"]
    finally:
        svc.close()

    later = start('min_age = "7d"', "")
    defaults = RemoteSettings(name="up", url=upstream.index_url)
    assert later["remote"].policy_mode == defaults.policy_mode == "enforce"
    assert later["remote"].exclude_newer is defaults.exclude_newer is None
    assert later["remote"].prereleases == defaults.prereleases
    assert later["block_malicious"] and not later["hidden"]
    assert later["remote"].min_age == "7d"  # still given
    assert later["remote"].policy_exempt == ["warm"] and later["blocklist"] == ["evil", "worse"]


def test_a_failed_second_look_at_the_store_lets_the_download_lock_go(
    upstream: Upstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The look taken once a download's lock is held may fail (the object store or the catalog
    down for a moment): that request fails, and the lock goes with it, so the next request
    for the file does not wait out the download timeout."""
    app = create_app(settings_for(upstream, tmp_path))
    services = app.extensions["pullthrough"]
    services.pullthrough.wait_timeout = 5.0
    failures = [StorageUnavailable("the object store timed out a moment ago")]
    second_look = PullThrough._stored_meanwhile

    def failing_once(self: PullThrough, *args: Any) -> StoredFile | None:
        if failures:
            raise failures.pop()
        return second_look(self, *args)

    monkeypatch.setattr(PullThrough, "_stored_meanwhile", failing_once)
    try:
        client = app.test_client()
        url = f"/pulp/content/main/{WHL_02}"
        assert client.get(url).status_code == 503
        started = time.monotonic()
        with client.get(url) as answer:
            assert answer.status_code == 200 and len(answer.get_data()) > 0
        assert time.monotonic() - started < 4.0
    finally:
        services.close()


def synced_from_upstream(
    services: Services, upstream: Upstream, tmp_path: Path, name: str
) -> UpstreamFile:
    """A wheel of `name` 0.1 the upstream serves, and its package as an immediate sync of
    remote `up` records it (the URL it came from), its file not stored."""
    wheel = upstream.add_file(name, build_wheel(tmp_path, name, "0.1"))
    with services.catalog.session() as session:
        remote = session.scalars(select(Remote).where(Remote.name == "up")).one()
        session.add(
            Package(
                filename=wheel.filename, name=name, version="0.1",
                packagetype="bdist_wheel", sha256=wheel.sha256, size=wheel.size,
                origin="sync", remote_url=upstream.file_url(wheel), remote_id=remote.id,
            )
        )  # fmt: skip
    return wheel


def test_a_repair_does_not_put_back_a_file_its_package_left_meanwhile(
    services: Services, upstream: Upstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Orphan cleanup deletes an orphan's package, then (under its bytes' lock) its file; a
    repair fetching that file again meanwhile must not store it after that: a file that no
    package and no ledger entry records is never removed by anything."""
    wheel = synced_from_upstream(services, upstream, tmp_path, "lost-lib")
    fetch = UpstreamClient.iter_body

    def cleaned_up_meanwhile(
        client: UpstreamClient, resp: Any, url: str, *args: Any, **kwargs: Any
    ) -> Iterator[bytes]:
        with services.catalog.session() as session:  # the orphan's package goes
            session.execute(delete(Package).where(Package.filename == wheel.filename))
        yield from fetch(client, resp, url, *args, **kwargs)

    monkeypatch.setattr(UpstreamClient, "iter_body", cleaned_up_meanwhile)
    task_id = queue(services, REPAIR)
    repair(TaskContext(services, task_id, {"repository_id": None}))
    assert not services.store.has(wheel.sha256)


def test_a_repair_gives_up_a_download_going_on_past_the_files_size(
    services: Services, upstream: Upstream, tmp_path: Path
) -> None:
    """A lost file fetched again from an upstream that sends junk without end after its bytes
    (no Content-Length) is given up past the size the catalog records, at once: not once the
    disk is full of it, as when only the sha256 at the end bounded it."""
    wheel = synced_from_upstream(services, upstream, tmp_path, "lost-lib")
    upstream.endless_files = True
    task_id = queue(services, REPAIR)
    started = time.monotonic()
    repair(TaskContext(services, task_id, {"repository_id": None}))
    assert time.monotonic() - started < 5  # the junk comes 64 KiB every 10 ms, without end
    assert not services.store.has(wheel.sha256)
    assert list(services.store.tmp.iterdir()) == []  # nothing of it left on disk
    reports = {r["code"]: r["done"] for r in task(services, task_id).progress_reports}
    assert (reports["repair.missing"], reports["repair.repaired"]) == (1, 0)


def test_a_repair_fetches_again_a_damaged_file_whose_size_the_catalog_does_not_know(
    services: Services, upstream: Upstream, tmp_path: Path
) -> None:
    """On-demand content synced from an HTML page (no sizes) is recorded with size 0; once
    fetched and stored, then damaged, a repair fetches it again: the catalog's 0 is no bound
    on the download (the upstream's Content-Length, else the cache's limit, is)."""
    wheel = synced_from_upstream(services, upstream, tmp_path, "sizeless-lib")
    with services.catalog.session() as session:
        package = session.scalars(select(Package).where(Package.filename == wheel.filename)).one()
        package.size, package.policy = 0, "on_demand"  # as `Syncer.on_demand` records it
    services.store.put_bytes(wheel.data)
    stored = services.store.path(wheel.sha256)  # type: ignore[attr-defined]
    stored.chmod(0o644)
    stored.write_bytes(b"bit rot" + wheel.data[7:])
    task_id = queue(services, REPAIR)
    repair(TaskContext(services, task_id, {"repository_id": None}))
    reports = {r["code"]: r["done"] for r in task(services, task_id).progress_reports}
    assert (reports["repair.corrupted"], reports["repair.repaired"]) == (1, 1)
    assert stored.read_bytes() == wheel.data


def test_a_repair_goes_on_past_a_file_the_store_cannot_read_and_then_fails_naming_it(
    services: Services, upstream: Upstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store error on one file (an S3 outage, a bad disk block) does not end the repair: the
    other files are still checked and repaired, and the task then fails naming the file it
    could not check."""
    unreadable, lost = (  # in this order (by filename)
        synced_from_upstream(services, upstream, tmp_path, name)
        for name in ("damaged-lib", "lost-lib")
    )
    services.store.put_bytes(unreadable.data)
    opened = services.store.open

    def failing(sha256: str, **kwargs: Any) -> Any:
        if sha256 == unreadable.sha256:
            raise StorageUnavailable("the store did not answer")
        return opened(sha256, **kwargs)

    monkeypatch.setattr(services.store, "open", failing)
    task_id = queue(services, REPAIR)
    ctx = TaskContext(services, task_id, {"repository_id": None})
    with pytest.raises(RepairFailed, match=r"1 file\(s\) could not be checked: damaged_lib-0\.1"):
        repair(ctx)
    assert services.store.has(lost.sha256)  # the next file was still repaired
    reports = {r["code"]: r["done"] for r in task(services, task_id).progress_reports}
    assert (reports["repair.missing"], reports["repair.repaired"]) == (1, 1)


def test_a_config_distribution_at_a_base_path_the_api_gave_is_refused_as_such(
    upstream: Upstream, tmp_path: Path
) -> None:
    """A base path equal to one the API gave another distribution overlaps it too: refused
    with the configuration's error and nothing written - not by the catalog's unique base
    path, when looking up the file's next distribution writes the first one out."""
    settings = settings_for(upstream, tmp_path)
    build_services(settings).close()  # the catalog, with the file's `main`
    catalog = Catalog(make_engine(database_url("", settings.server.data_dir)))
    with catalog.session() as session:
        session.add(Distribution(name="team", base_path="team"))  # as the API would
    config = tmp_path / "pullthrough.toml"
    for name, base_path in (("mine", "team"), ("later", "later")):
        config.write_text(
            config.read_text()
            + f'[[distributions]]\nname = "{name}"\nbase_path = "{base_path}"\nremote = "up"\n'
        )
    with pytest.raises(ConfigError, match="'team' overlaps the base path 'team'"):
        sync_config(catalog, load_settings(config, environ={}))
    with catalog.session() as session:
        assert set(session.scalars(select(Distribution.name))) == {"main", "team"}
    catalog.engine.dispose()


# ---- a repository's package blocklist --------------------------------------------------------


def _block(svc: Services, repo_id: str, *, reject: bool = True, **entry: str) -> None:
    with svc.catalog.session() as session:
        session.get(Repository, repo_id).error_on_reject = reject  # type: ignore[union-attr]
        session.add(RepositoryBlocklistEntry(repository_id=repo_id, **entry))


def _present(svc: Services, repo_id: str) -> set[str]:
    with svc.catalog.session() as session:
        repo = session.get(Repository, repo_id)
        assert repo is not None
        return {p.filename for p in session.scalars(version_packages(repo_id, repo.latest_number))}


def test_an_upload_the_blocklist_names_is_refused_or_left_out(
    services: Services, tmp_path: Path
) -> None:
    """Rejecting (error_on_reject): refused, nothing kept; else stored and left out of the
    repository (no new version), as Pulp's finalize_new_version; content already in the
    repository stays."""
    repo_id = local_repository(services, tmp_path, "kept", "1.0")
    _block(services, repo_id, name="Blocked_Pkg")
    _block(services, repo_id, name="kept")  # what is in already stays
    wheel = build_wheel(tmp_path / "w", "blocked-pkg", "1.0")
    with wheel.open("rb") as fh, pytest.raises(UploadRefused) as refused:
        services.uploads.upload(repo_id, fh, wheel.name, actor="admin")
    assert str(refused.value) == (
        f"Blocklisted packages cannot be added to this repository: {wheel.name}"
    )
    with services.catalog.session() as session:
        assert session.scalar(select(Package).where(Package.filename == wheel.name)) is None
    assert _present(services, repo_id) == {"kept-1.0-py3-none-any.whl"}

    with services.catalog.session() as session:
        session.get(Repository, repo_id).error_on_reject = False  # type: ignore[union-attr]
    with wheel.open("rb") as fh:
        package, number = services.uploads.upload(repo_id, fh, wheel.name, actor="admin")
    assert number is None and package.filename == wheel.name  # stored, not added
    assert _present(services, repo_id) == {"kept-1.0-py3-none-any.whl"}
    other = build_wheel(tmp_path / "w", "blocked-pkg-two", "1.0")
    with other.open("rb") as fh:
        assert services.uploads.upload(repo_id, fh, other.name, actor="admin")[1] == 2


def test_a_sync_leaves_out_what_the_blocklist_names_or_fails_whole(
    upstream: Upstream, tmp_path: Path
) -> None:
    """Decided before any download: a sync that would add a blocked file fails without
    fetching a file (`error_on_reject`), or leaves the blocked ones out without fetching them;
    one the repository holds already (blocked after it came) stays, as in any change."""
    svc = build_services(
        settings_for(upstream, tmp_path, includes=["shelf-reader"], policy="immediate")
    )
    try:
        repo_id, args = new_sync(svc, mirror=True)
        _block(svc, repo_id, name="shelf-reader", version="0.1.0")  # 0.1 by PEP 440
        _block(svc, repo_id, filename=WHL_02)
        blocked = {WHL_01, WHL_02, "shelf_reader-0.1.tar.gz"}
        upstream.clear_log()
        task_id = queue(svc, SYNC, **args)
        with pytest.raises(PackagesBlocked) as failed:
            sync_module.sync(TaskContext(svc, task_id, args))
        assert str(failed.value) == (
            f"Blocklisted packages cannot be added to this repository: {WHL_01},"
            f" shelf_reader-0.1.tar.gz, {WHL_02}"
        )
        assert _present(svc, repo_id) == set()
        assert upstream.requests_for("/files/") == []  # failed before any download

        with svc.catalog.session() as session:
            session.get(Repository, repo_id).error_on_reject = False  # type: ignore[union-attr]
        task_id = queue(svc, SYNC, **args)
        sync_module.sync(TaskContext(svc, task_id, args))
        present = _present(svc, repo_id)
        assert present and not present & blocked
        assert all(name.startswith("shelf_reader-0.") for name in present)
        fetched = {r.path.rsplit("/", 1)[1] for r in upstream.requests_for("/files/")}
        assert fetched == present  # the blocked files were never fetched

        # A file the repository holds stays when an entry blocks it afterwards, as in Pulp
        kept = sorted(present)[0]
        _block(svc, repo_id, reject=False, filename=kept)
        task_id = queue(svc, SYNC, **args)
        sync_module.sync(TaskContext(svc, task_id, args))
        assert _present(svc, repo_id) == present
    finally:
        svc.close()


def test_a_sync_takes_files_whose_index_entry_holds_a_nul_character(
    upstream: Upstream, tmp_path: Path, postgres_url: str
) -> None:
    """An upstream page whose requires-python or yanked reason holds a NUL character (JSON's
    \\u0000): on PostgreSQL, whose text columns cannot hold one, the whole sync failed with
    psycopg's DataError. Such a requires-python is no specifier, and is not kept (pip ignores
    an invalid one); the reason is kept without it."""
    wheels = tmp_path / "wheels"
    upstream.add_file(
        "nul-rp",
        build_wheel(wheels, "nul-rp", "1.0"),
        requires_python=">=3\x00.9",
    )
    upstream.add_file("nul-rp", build_wheel(wheels, "nul-rp", "1.1"), yanked="bad\x00build")
    with private_database(postgres_url) as url:
        svc = build_services(on_postgres(upstream, tmp_path, url, includes=["nul-rp"]))
        try:
            repo_id, args = new_sync(svc)
            run_sync(svc, args)
            with svc.catalog.session() as session:
                taken = {
                    p.version: (p.requires_python, p.yanked, p.yanked_reason)
                    for p in session.scalars(version_packages(repo_id, 1))
                }
            assert taken == {"1.0": (None, False, None), "1.1": (None, True, "badbuild")}
        finally:
            svc.close()


class NulLink(BaseHTTPRequestHandler):
    """A PEP 691 project page whose one file's link holds a NUL character (JSON's \\u0000)."""

    def do_GET(self) -> None:
        host = f"http://{self.headers['Host']}"
        body = json.dumps(
            {
                "meta": {"api-version": "1.1"},
                "name": "nul-url",
                "files": [
                    {
                        "filename": "nul_url-1.0-py3-none-any.whl",
                        "url": f"{host}/files/nul_url-1.0-py3-none-any.whl\x00.x",
                        "hashes": {"sha256": "a" * 64},
                    }
                ],
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.pypi.simple.v1+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_a_sync_takes_a_file_whose_link_holds_a_nul_character(
    tmp_path: Path, postgres_url: str
) -> None:
    """An upstream page whose link holds a NUL character (JSON's \\u0000): on PostgreSQL, whose
    text columns cannot hold one, the sync's record of its URL failed the whole sync. The URL
    is kept as the upstream client asks for it, the NUL percent-encoded."""
    with serving(NulLink) as origin, private_database(postgres_url) as url:
        config = tmp_path / "pullthrough.toml"
        text = config_text(f"{origin}/simple/", tmp_path / "data", includes=["nul-url"])
        config.write_text(
            text.replace(
                "[server]\n", f'[server]\ndatabase_url = "{url}"\nembedded_worker = false\n'
            )
        )
        svc = build_services(load_settings(config, environ={}))
        try:
            repo_id, args = new_sync(svc)
            run_sync(svc, args)
            with svc.catalog.session() as session:
                taken = [
                    (p.filename, p.remote_url)
                    for p in session.scalars(version_packages(repo_id, 1))
                ]
            assert taken == [
                (
                    "nul_url-1.0-py3-none-any.whl",
                    f"{origin}/files/nul_url-1.0-py3-none-any.whl%00.x",
                )
            ]
        finally:
            svc.close()


def test_a_cached_file_is_served_while_the_ledger_cannot_say_who_may_read_it(
    upstream: Upstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Who may be served a copy is the ledger's (the catalog's, across nodes): when it cannot
    be read for a moment, a copy this process read before is served as it was, not a 503
    for every warm file; a copy it never read is not served blind."""
    app = create_app(settings_for(upstream, tmp_path))
    services = app.extensions["pullthrough"]
    try:
        client = app.test_client()
        url = f"/pulp/content/main/{WHL_02}"
        with client.get(url) as first:
            assert first.status_code == 200

        def stored() -> bool:
            with client.head(url) as answer:
                return "ETag" in answer.headers

        assert wait_until(stored)
        monkeypatch.setattr(pullthrough_module, "READERS_SECONDS", 0.0)  # read again each time

        def down(sha256: str) -> object:
            raise OperationalError("SELECT", {}, Exception("the catalog is down"))

        monkeypatch.setattr(services.ledger, "readers", down)
        with client.get(url) as again:
            assert again.status_code == 200 and again.headers["ETag"]
        services.pullthrough._readers.clear()  # never read here: not served blind
        assert client.get(url).status_code == 503
    finally:
        services.close()
