"""Coordination of nodes through PostgreSQL (a real server): download locks that die with their
session, one cache ledger with batched uses, and a change signal seen within a second."""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, insert, text

from pullthrough.catalog.db import Catalog, make_engine, prepare
from pullthrough.catalog.models import CacheEntry, Package
from pullthrough.services.coordination import (
    AdvisoryLocks,
    SharedGeneration,
    SharedLedger,
    adopt_local_ledger,
)
from pullthrough.storage.ledger import CacheLedger
from pullthrough.storage.locks import LockTimeout
from support.calls import Occupancy
from support.postgres import private_database


@pytest.fixture
def engine(postgres_url: str) -> Iterator[Engine]:
    with private_database(postgres_url) as url:
        engine = make_engine(url)
        prepare(engine)
        try:
            yield engine
        finally:
            engine.dispose()


def test_a_download_lock_is_held_by_one_node_at_a_time(engine: Engine) -> None:
    node_a, node_b = AdvisoryLocks(engine.url), AdvisoryLocks(engine.url)
    try:
        held = node_a.lock("https://files.example/lib-1.0.whl")
        assert held.acquire(timeout=1)
        other = node_b.lock("https://files.example/lib-1.0.whl")
        assert not other.acquire(timeout=0, blocking=False)
        assert node_b.lock("https://files.example/lib-2.0.whl").acquire(timeout=0, blocking=False)
        with pytest.raises(LockTimeout):
            other.acquire(timeout=0.2)

        got: list[float] = []

        def wait() -> None:
            other.acquire(timeout=10)
            got.append(time.monotonic())
            other.release()

        waiter = threading.Thread(target=wait)
        waiter.start()
        time.sleep(0.3)
        released = time.monotonic()
        held.release()
        waiter.join(timeout=10)
        assert got and got[0] >= released  # it waited for the release, then went on
    finally:
        node_a.close()
        node_b.close()


def test_a_dead_nodes_locks_are_released_with_its_session(engine: Engine) -> None:
    node_a, node_b = AdvisoryLocks(engine.url), AdvisoryLocks(engine.url)
    try:
        held = node_a.lock("evict-me")
        assert held.acquire(timeout=1)
        assert held._conn is not None
        pid = held._conn.execute(text("SELECT pg_backend_pid()")).scalar()
        held._conn.commit()
        with engine.connect() as admin:  # the node's connection ends, as with kill -9
            admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            admin.commit()
        assert node_b.lock("evict-me").acquire(timeout=5)
    finally:
        node_b.close()
        node_a.close()


def test_a_wait_for_a_lock_outlives_the_end_of_its_session(engine: Engine) -> None:
    """A waiter whose session is ended (a pooler restarting, pg_terminate_backend) while the
    database still answers waits on a new one, and takes the lock once it is free."""
    node_a, node_b = AdvisoryLocks(engine.url), AdvisoryLocks(engine.url)
    try:
        held = node_a.lock("lib-1.0.whl")
        assert held.acquire(timeout=1)
        assert held._conn is not None
        holder = held._conn.execute(text("SELECT pg_backend_pid()")).scalar()
        held._conn.commit()
        got: list[BaseException | None] = []

        def wait() -> None:
            lock = node_b.lock("lib-1.0.whl")
            try:
                lock.acquire(timeout=10)
            except BaseException as exc:
                got.append(exc)
            else:
                got.append(None)
                lock.release()

        waiter = threading.Thread(target=wait)
        waiter.start()
        time.sleep(0.3)
        end_others = (
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid NOT IN (pg_backend_pid(), :holder)"
        )
        with engine.connect() as admin:
            admin.execute(text(end_others), {"holder": holder})
            admin.commit()
        time.sleep(0.3)
        held.release()
        waiter.join(timeout=10)
        assert got == [None]
    finally:
        node_b.close()
        node_a.close()


def _sessions(engine: Engine) -> int:
    """The other sessions open on this database."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    with engine.connect() as conn:
        return int(conn.execute(query).scalar() or 0)


def test_a_process_waits_for_a_lock_on_one_connection(engine: Engine) -> None:
    """Many requests of one node waiting for one download hold one connection between them,
    not one each (120 of them exhausted PostgreSQL's max_connections); each still takes the
    lock in turn, alone."""
    node_a, node_b = AdvisoryLocks(engine.url), AdvisoryLocks(engine.url)
    url = "https://files.example/cold-1.0.whl"
    occupancy = Occupancy()

    def wait() -> None:
        lock = node_b.lock(url)
        lock.acquire(timeout=30)
        with occupancy.stay(0.01):
            pass
        lock.release()

    try:
        held = node_a.lock(url)
        assert held.acquire(timeout=1)
        before = _sessions(engine)
        waiters = [threading.Thread(target=wait) for _ in range(20)]
        for waiter in waiters:
            waiter.start()
        time.sleep(0.5)
        try:
            sessions = _sessions(engine) - before
            assert not node_b.lock(url).acquire(timeout=0, blocking=False)
            with pytest.raises(LockTimeout):
                node_b.lock(url).acquire(timeout=0.1)
        finally:
            held.release()
        assert sessions == 1  # node b's one waiter, not one per waiting thread
        for waiter in waiters:
            waiter.join(timeout=30)
        assert occupancy.visits == 20 and occupancy.most == 1
        assert len(node_b.gates) == 0  # nothing kept per key once nobody wants it
        assert node_a.lock(url).acquire(timeout=1, blocking=False)
    finally:
        node_a.close()
        node_b.close()


def test_one_ledger_for_every_node(engine: Engine) -> None:
    now = [1000.0]
    node_a = SharedLedger(engine, max_size=250, clock=lambda: now[0], touch_interval=60)
    node_b = SharedLedger(engine, max_size=250, clock=lambda: now[0], touch_interval=60)
    for i, sha in enumerate(("a" * 64, "b" * 64, "c" * 64)):
        now[0] += 1
        (node_a if i % 2 else node_b).record(sha, 100)
    assert node_a.total() == node_b.total() == 300 and node_b.count() == 3
    assert node_a.over_limit() and node_b.tracks("b" * 64) and not node_b.tracks("d" * 64)

    now[0] += 10
    node_b.touch("a" * 64)  # the oldest, used again on another node
    # uses are batched: written at node b's next flush, not at once
    assert [v.sha256 for v in node_a.victims()] == ["a" * 64]
    node_b.flush()
    assert max(node_a.entries(), key=lambda e: e.last_used).sha256 == "a" * 64  # the latest
    assert [v.sha256 for v in node_a.victims()] == ["b" * 64]
    node_a.forget("b" * 64)
    assert node_b.total() == 200 and not node_b.over_limit()

    node_a.remember_url("https://files.example/x.whl", "c" * 64)
    assert node_b.sha_for_url("https://files.example/x.whl") == "c" * 64
    assert node_b.sha_for_url("https://files.example/y.whl") is None

    # a copy fetched with one remote's credentials is that remote's, on every node
    node_a.set_readers("c" * 64, frozenset({"r" * 32}))
    assert node_b.readers("c" * 64) == frozenset({"r" * 32}) and node_b.readers("a" * 64) is None
    node_b.set_readers("c" * 64, frozenset({"r" * 32, "s" * 32}))
    assert node_a.readers("c" * 64) == frozenset({"r" * 32, "s" * 32})
    node_a.forget("c" * 64)  # evicted: a copy fetched again is judged again
    assert node_b.readers("c" * 64) is None


def test_uses_are_written_in_batches(engine: Engine) -> None:
    """Requests for cached files write nothing themselves: the uses they record go to the
    catalog together at the next flush (about once a second), each file at most once."""
    now = [1000.0]
    files = [f"{i:064x}" for i in range(50)]
    other = SharedLedger(engine, max_size=10**9, clock=lambda: now[0])
    for sha in files:  # cached by another process
        other.record(sha, 1)
    recorded = {e.sha256: e.last_used for e in other.entries()}  # by the catalog's clock
    now[0] += 10
    ledger = SharedLedger(engine, max_size=10**9, clock=lambda: now[0], touch_interval=60)
    writes: list[str] = []

    def seen(*args: object) -> None:
        if "UPDATE" in str(args[2]):
            writes.append(str(args[2]))

    event.listen(engine, "before_cursor_execute", seen)
    try:
        for _ in range(20):  # 1,000 requests over 50 files
            for sha in files:
                ledger.touch(sha)
        assert writes == []  # none per request
        assert {e.sha256: e.last_used for e in ledger.entries()} == recorded
        ledger.flush()
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert len(writes) == len(files)  # one per file, not one per request
    assert min(e.last_used for e in ledger.entries()) > max(recorded.values())


def test_the_change_signal_has_a_token_from_the_start(engine: Engine) -> None:
    """A catalog upgraded to shared coordination has no signal row yet: a node must still
    load its distributions (a token equal to "none read yet" would skip that)."""
    first = SharedGeneration(engine).read()
    assert first and SharedGeneration(engine).read() == first


def test_a_catalog_change_is_seen_by_every_node_within_a_second(engine: Engine) -> None:
    node_a, node_b = SharedGeneration(engine), SharedGeneration(engine, poll_seconds=0.5)
    before = node_b.read()
    node_a.bump()
    assert node_a.read() != before  # its own change at once
    deadline = time.monotonic() + 1.0
    while node_b.read() == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert node_b.read() == node_a.read() != before


def test_a_use_is_written_within_about_a_second_without_another(engine: Engine) -> None:
    """The last use of a batch is written by a timer, not left for a later use that may never
    come (meanwhile another node would take the file for unused and evict it)."""
    now = [1000.0]
    SharedLedger(engine, max_size=10**9, clock=lambda: now[0]).record("a" * 64, 1)
    now[0] += 10
    ledger = SharedLedger(engine, max_size=10**9, clock=lambda: now[0])
    recorded = ledger.used_at("a" * 64)
    assert recorded is not None
    try:
        ledger.touch("a" * 64)  # no flush, no other use
        assert ledger.used_at("a" * 64) == recorded  # batched: not at once
        deadline = time.monotonic() + 2.5
        while (ledger.used_at("a" * 64) or 0) <= recorded:
            assert time.monotonic() < deadline, "the use was never written"
            time.sleep(0.05)
    finally:
        ledger.close()


def test_files_cached_before_the_shared_ledger_are_adopted_once(
    engine: Engine, tmp_path: Path
) -> None:
    """A node upgraded from a release that kept its ledger in the data folder (before the
    shared one): the files it had cached are tracked, counted against the limit and evicted
    in their turn, and URLs of files without a listed hash still find them."""
    local = CacheLedger(tmp_path / "ledger", max_size=10**9, clock=lambda: 1.0)
    local.record("a" * 64, 100)
    local.record("b" * 64, 50)
    many = [f"{n:064x}" for n in range(25_000)]  # more than one statement's parameters allow
    for sha in many:
        local.record(sha, 0)
    local.remember_url("http://127.0.0.1:1/files/b-1.0.tar.gz", "b" * 64)
    local.set_readers("a" * 64, frozenset({"r" * 32}))  # fetched with a remote's credentials
    local.close()
    shared = SharedLedger(engine, max_size=120, clock=lambda: 2.0)
    shared.record("b" * 64, 50)  # recorded since: left as it is
    try:
        assert adopt_local_ledger(engine, tmp_path / "ledger") == 2 + len(many)
        assert (shared.total(), shared.count()) == (150, 2 + len(many))
        assert shared.sha_for_url("http://127.0.0.1:1/files/b-1.0.tar.gz") == "b" * 64
        assert shared.readers("a" * 64) == frozenset({"r" * 32})  # still that remote's only
        assert "a" * 64 in {v.sha256 for v in shared.victims()}  # older than b's use
        assert "b" * 64 not in {v.sha256 for v in shared.victims()}
        assert adopt_local_ledger(engine, tmp_path / "ledger") == 0  # once
        assert (tmp_path / "ledger.adopted" / "files").is_dir()
    finally:
        shared.close()


def test_an_eviction_pass_reads_no_more_of_the_ledger_than_it_evicts(engine: Engine) -> None:
    """Each eviction pass read every entry of the shared ledger to choose its victims (100,000
    rows for 100,000 cached files, though a pass evicts about a tenth of them): it reads them
    least recently used first, a page at a time, and stops once it has enough."""
    count = 20_000
    rows = [
        {"sha256": f"{n:064x}", "size": 1000, "last_used": float(n * 7919 % count)}
        for n in range(count)
    ]
    with engine.begin() as conn:
        conn.execute(insert(CacheEntry), rows)
    ledger = SharedLedger(engine, max_size=count * 1000 - 1)  # over: evicts down to 90%
    fetched: list[int] = []

    def seen(_conn: object, cursor: Any, statement: str, *_: object) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            fetched.append(cursor.rowcount)

    event.listen(engine, "after_cursor_execute", seen)
    try:
        victims = list(ledger.victims())
    finally:
        event.remove(engine, "after_cursor_execute", seen)
        ledger.close()
    assert [v.last_used for v in victims] == [float(n) for n in range(count // 10 + 1)]
    assert sum(fetched) < count // 5, fetched


TWO_HOURS = 7200.0


def test_a_use_on_a_node_whose_clock_is_behind_still_counts_as_the_latest(engine: Engine) -> None:
    """Last uses compared across nodes are by the database's clock: a file used just now on a
    node whose clock runs 2 hours behind is the last to be evicted, not the first (its use
    was older than every other's, and not even written over the older one)."""
    right = SharedLedger(engine, max_size=150, touch_interval=60)
    behind = SharedLedger(engine, max_size=150, clock=lambda: time.time() - TWO_HOURS)
    right.record("a" * 64, 100)
    right.record("b" * 64, 100)
    behind.touch("a" * 64)  # the oldest, used again
    behind.flush()
    assert [v.sha256 for v in right.victims()] == ["b" * 64]


def test_a_file_cached_on_a_node_whose_clock_is_ahead_is_not_the_newest(engine: Engine) -> None:
    """A file cached on a node whose clock runs 2 hours ahead, then one cached on another
    node: the first is evicted first, as the older (not kept for 2 hours past its time)."""
    right = SharedLedger(engine, max_size=150)
    ahead = SharedLedger(engine, max_size=150, clock=lambda: time.time() + TWO_HOURS)
    ahead.record("a" * 64, 100)
    right.record("b" * 64, 100)
    assert [v.sha256 for v in right.victims()] == ["a" * 64]


def test_a_damaged_ledger_cached_before_the_shared_one_is_set_aside_and_rebuilt(
    engine: Engine, tmp_path: Path
) -> None:
    """A node upgraded with a damaged data-folder ledger starts all the same: the folder is
    set aside (kept), and the shared ledger gets the catalog's pull-through copies instead."""
    local = CacheLedger(tmp_path / "ledger", max_size=10**9)
    local.record("a" * 64, 100)
    local.close()
    (tmp_path / "ledger" / "files" / "cache.db").write_bytes(b"not a database" * 100)
    with Catalog(engine).session() as session:
        session.add_all(
            [
                Package(
                    filename=f"{name}-1-py3-none-any.whl",
                    name=name,
                    version="1",
                    packagetype="bdist_wheel",
                    sha256=sha * 64,
                    size=10,
                    origin=origin,
                )
                for name, sha, origin in (("copy", "c", "cache"), ("own", "d", "upload"))
            ]
        )
    shared = SharedLedger(engine, max_size=10**9)
    try:
        assert adopt_local_ledger(engine, tmp_path / "ledger") == 1
        assert [e.sha256 for e in shared.entries()] == ["c" * 64]
        (aside,) = tmp_path.glob("ledger.damaged-*")
        assert (aside / "files" / "cache.db").read_bytes() == b"not a database" * 100
        assert adopt_local_ledger(engine, tmp_path / "ledger") == 0  # once
    finally:
        shared.close()


def test_a_lock_taken_again_and_again_reuses_its_connection(engine: Engine) -> None:
    """Orphan cleanup, eviction and the return of copies to the cache take one lock per file,
    one file after another: a new PostgreSQL session for each (a connection, its
    authentication and a server process: about 30 ms a file) made a cleanup of 3,000 orphans
    take three minutes, and one of 400,000 hours. A lock let go leaves its connection for the
    next, holding no advisory lock."""
    locks = AdvisoryLocks(engine.url)
    connects = [0]

    def connected(*_: object) -> None:
        connects[0] += 1

    event.listen(locks.engine, "connect", connected)
    try:
        for n in range(50):
            lock = locks.lock(f"file-{n}")
            assert lock.acquire(timeout=1)
            lock.release()
        held = text(  # this database's (pg_locks lists every database of the server)
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        with engine.connect() as conn:
            assert conn.execute(held).scalar() == 0
        dropped = locks.lock("dropped")  # a lock object let go while held (as NullPool's
        assert dropped.acquire(timeout=1)  # closing did, its connection releases the lock)
        del dropped
        gc.collect()
        other = AdvisoryLocks(engine.url)
        try:
            assert other.lock("dropped").acquire(timeout=0, blocking=False)
        finally:
            other.close()
    finally:
        event.remove(locks.engine, "connect", connected)
        locks.close()
    assert connects[0] <= 3, connects
