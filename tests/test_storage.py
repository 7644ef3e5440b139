from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pullthrough.storage.flights import Flights, Notice
from pullthrough.storage.ledger import (
    CacheLedger,
    Entry,
    Readers,
    choose_evictions,
    may_read,
    readers_after,
)
from pullthrough.storage.locks import OFD_LOCKS, KeyedLocks, LockDir, LockTimeout
from pullthrough.storage.s3 import DOWN_SECONDS, S3Location, S3Store
from pullthrough.storage.store import ArtifactStore, HashMismatch, StorageUnavailable, from_start
from support.calls import Occupancy
from support.seaweed import S3Server


def test_store_commits_only_verified_bytes(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "a")
    data = b"wheel bytes"
    sha = hashlib.sha256(data).hexdigest()
    assert store.put_bytes(data, {"sha256": sha}) == sha
    opened = store.open(sha)
    assert opened is not None
    assert opened.size == len(data)
    with opened.file as fh:
        assert fh.read() == data
    with pytest.raises(HashMismatch):
        store.put_bytes(b"other bytes", {"sha256": sha[::-1]})
    with pytest.raises(HashMismatch):
        store.put_bytes(b"other bytes", {"md5": "0" * 32})
    assert list(store.tmp.iterdir()) == []  # nothing half-written is left behind
    assert store.delete(sha) == len(data) and store.open(sha) is None


def test_a_store_lists_the_files_under_its_own_names_only(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "a")
    sha = store.put_bytes(b"wheel bytes")
    other = hashlib.sha256(b"other").hexdigest()
    (store.root / "ab" / "cd").mkdir(parents=True)
    (store.root / "ab" / "cd" / other).write_bytes(b"other")  # not where `other` lives
    (store.root / "ab" / "cd" / "notes.txt").write_bytes(b"")
    (store.tmp / "stray.partial").write_bytes(b"")
    assert [name for name, _ in store.files()] == [sha]
    assert next(iter(store.files()))[1] == store.written_at(sha)


def test_abandoned_partial_files_are_removed_at_start(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "a")
    old, fresh = store.tmp / "old.partial", store.tmp / "fresh.partial"
    old.write_bytes(b"x")
    fresh.write_bytes(b"y")
    os.utime(old, (time.time() - 2 * 86400,) * 2)
    ArtifactStore(tmp_path / "a")
    assert sorted(p.name for p in store.tmp.iterdir()) == ["fresh.partial"]


def test_choose_evictions_least_recently_used_first() -> None:
    entries = [Entry("a", 40, 3.0), Entry("b", 40, 1.0), Entry("c", 40, 2.0)]
    assert choose_evictions(entries, total=120, limit=150, target=100) == []
    victims = choose_evictions(entries, total=120, limit=100, target=60)
    assert [v.sha256 for v in victims] == ["b", "c"]


def test_choose_evictions_takes_the_least_recently_used_whatever_the_order_read() -> None:
    """Chosen in one pass over entries in any order (a ledger's, not sorted): the least
    recently used first, ties by sha256, until the total is at most the target."""
    rng = random.Random(7)
    entries = [
        Entry(f"{n:064x}", rng.randrange(50), float(rng.randrange(300))) for n in range(1000)
    ]
    total = sum(e.size for e in entries)
    for target in (0, total // 3, total - 1):
        expected, left = [], total
        for entry in sorted(entries, key=lambda e: (e.last_used, e.sha256)):
            if left <= target:
                break
            expected.append(entry)
            left -= entry.size
        rng.shuffle(entries)
        assert choose_evictions(iter(entries), total, target, target) == expected


def _peak_memory(work: Callable[[], Any]) -> tuple[Any, int]:
    """What `work` returns, and the peak of the memory it allocated."""
    tracemalloc.start()
    try:
        done = work()
        return done, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_ledgers_victims_are_chosen_holding_no_copy_of_every_entry(tmp_path: Path) -> None:
    """Each eviction pass sorted a list of every entry of the ledger to choose its victims
    (24 MB for 100,000 cached files, though a pass evicts about a tenth of them): it holds
    only the victims chosen so far."""
    count = 10_000
    ledger = CacheLedger(tmp_path, max_size=count * 1000 - 1)  # over: evicts down to 90%
    try:
        ledger.restore([Entry(f"{n:064x}", 1000, float(n * 7919 % count)) for n in range(count)])
        _, every = _peak_memory(lambda: list(ledger.entries()))
        victims, peak = _peak_memory(lambda: list(ledger.victims()))
        assert [v.last_used for v in victims] == [float(n) for n in range(count // 10 + 1)]
        assert peak < every / 3, (peak, every)
    finally:
        ledger.close()


def test_ledger_tracks_size_and_recency(tmp_path: Path) -> None:
    now = [1000.0]
    ledger = CacheLedger(tmp_path, max_size=100, clock=lambda: now[0], touch_interval=0.001)
    try:
        ledger.record("old", 40)
        now[0] += 1
        ledger.record("new", 40)
        ledger.record("new", 40)  # recorded twice, counted once
        assert (ledger.total(), ledger.count(), ledger.over_limit()) == (80, 2, False)
        now[0] += 1
        time.sleep(0.01)
        ledger.touch("old")  # now "new" is the least recently used
        now[0] += 1
        ledger.record("third", 40)
        assert ledger.over_limit()
        assert [v.sha256 for v in ledger.victims()] == ["new"]
        ledger.forget("new")
        assert (ledger.total(), ledger.count()) == (80, 2)
    finally:
        ledger.close()


A, B = "a" * 32, "b" * 32  # two remotes' credentials, as UpstreamClient.seen_as digests


@pytest.mark.parametrize(
    ("readers", "seen_as", "expected"),
    [
        (None, (), True),  # fetched anonymously: anyone's
        (None, (A,), True),
        (frozenset({A}), (A,), True),
        (frozenset({A}), (B,), False),  # fetched with A's credentials: not B's
        (frozenset({A}), (), False),  # nor an anonymous remote's
        (frozenset(), (A,), False),  # readers lost (a damaged ledger): nobody's until fetched
    ],
)
def test_a_copy_fetched_with_credentials_is_only_those_remotes(
    readers: Readers, seen_as: tuple[str, ...], expected: bool
) -> None:
    assert may_read(readers, seen_as) is expected


@pytest.mark.parametrize(
    ("readers", "seen_as", "tracked", "expected"),
    [
        (None, (A,), False, frozenset({A})),  # a new copy, fetched with credentials
        (None, (A,), True, None),  # anyone's already (recorded without readers)
        (frozenset({A}), (B,), True, frozenset({A, B})),
        (frozenset({A}), (), True, None),  # an anonymous remote fetched it too
        (frozenset(), (B,), True, frozenset({B})),
    ],
)
def test_who_may_read_a_copy_after_a_remote_fetched_it(
    readers: Readers, seen_as: tuple[str, ...], tracked: bool, expected: Readers
) -> None:
    assert readers_after(readers, seen_as, tracked=tracked) == expected


def test_a_forgotten_copy_forgets_its_readers(tmp_path: Path) -> None:
    ledger = CacheLedger(tmp_path, max_size=100)
    try:
        ledger.record("c" * 64, 10)
        ledger.set_readers("c" * 64, frozenset({A}))
        assert ledger.readers("c" * 64) == frozenset({A})
        ledger.forget("c" * 64)  # evicted: a copy fetched again is judged again
        assert ledger.readers("c" * 64) is None
    finally:
        ledger.close()


@pytest.fixture(
    params=[
        pytest.param(
            True,
            id="byte-locks",
            marks=pytest.mark.skipif(not OFD_LOCKS, reason="no open file description locks"),
        ),
        pytest.param(False, id="lock-files"),
    ]
)
def locks(request: pytest.FixtureRequest, tmp_path: Path) -> LockDir:
    """Each kind of a key's lock: a byte of a shared file (OFD locks, Linux), a file of its
    own."""
    return LockDir(tmp_path, byte_locks=request.param)


def lock_files_left(locks: LockDir) -> list[Path]:
    """Files a key's lock left: none of its own (the byte locks' shared file is no key's)."""
    return [p for p in locks.directory.rglob("*") if p.is_file() and p.name != "keys.lock"]


def test_lock_is_exclusive_across_threads(locks: LockDir) -> None:
    first = locks.lock("file-url")
    assert first.acquire(timeout=1)
    second = locks.lock("file-url")
    assert not second.acquire(timeout=0, blocking=False)
    with pytest.raises(LockTimeout):
        second.acquire(timeout=0.1)
    threading.Timer(0.1, first.release).start()
    assert second.acquire(timeout=5)
    second.release()


def test_a_lock_held_by_another_process_waits_until_that_process_dies(locks: LockDir) -> None:
    """Two gunicorn workers: the key another process holds is taken once that process is
    killed (nothing to clean up); other keys never wait for it."""
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path;"
            " from pullthrough.storage.locks import LockDir;"
            f" lock = LockDir(Path(sys.argv[1]), byte_locks={locks.byte_locks}).lock('file-url');"
            " assert lock.acquire(timeout=5); print('held', flush=True); time.sleep(60)",
            str(locks.directory),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == "held\n"
        held = locks.lock("file-url")
        assert not held.acquire(timeout=0, blocking=False)
        other = locks.lock("other-url")
        assert other.acquire(timeout=0, blocking=False)
        other.release()
    finally:
        child.kill()
        child.communicate(timeout=10)
    assert held.acquire(timeout=5)
    held.release()


def test_keys_never_wait_for_each_other_and_leave_no_lock_files(locks: LockDir) -> None:
    """Every key has a lock of its own (shared stripes made a small file wait 14 s behind
    another's slow download); released locks leave nothing behind."""
    held = [locks.lock(f"https://files.example/{n}.whl") for n in range(5000)]
    assert all(lock.acquire(timeout=0, blocking=False) for lock in held)
    for lock in held:
        lock.release()
    assert lock_files_left(locks) == []


def test_a_key_stays_exclusive_while_its_file_comes_and_goes(locks: LockDir) -> None:
    """At no time do two threads hold one key (lock files: holders remove the key's file on
    release, and waiters that locked a removed file retry)."""
    occupancy, errors = Occupancy(), []

    def work() -> None:
        try:
            for _ in range(50):
                lock = locks.lock("one-url")
                lock.acquire(timeout=30)
                with occupancy.stay(0.0005):
                    pass
                lock.release()
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == [] and occupancy.most == 1 and occupancy.visits == 8 * 50
    assert lock_files_left(locks) == []


def test_keyed_locks_serialize_one_key_only() -> None:
    locks: KeyedLocks[str] = KeyedLocks()
    order: list[str] = []
    entered = threading.Event()

    def slow() -> None:
        with locks.holding("stalled-page"):
            entered.set()
            time.sleep(0.3)
            order.append("stalled done")

    thread = threading.Thread(target=slow)
    thread.start()
    assert entered.wait(5)
    started = time.monotonic()
    with locks.holding("other-page"):  # an unrelated page: no wait
        assert time.monotonic() - started < 0.1
        order.append("other")
    with locks.holding("stalled-page"):  # the same page: waits, then sees it done
        assert order == ["other", "stalled done"]
    thread.join(timeout=5)
    assert len(locks) == 0


@pytest.mark.parametrize("name", ["/etc/passwd", "../" * 3 + "x" * 55, "A" * 64, "a" * 65])
def test_store_paths_come_only_from_sha256_digests(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="not a sha256"):
        ArtifactStore(tmp_path / "a").path(name)


def test_generated_admin_password_is_never_empty_under_concurrent_starts(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from pullthrough.config import AuthSettings
    from pullthrough.services.auth import admin_password

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda _: admin_password(AuthSettings(), tmp_path), range(64)))
    passwords = {p for p, _ in results}
    assert len(passwords) == 1 and "" not in passwords
    assert sum(generated for _, generated in results) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["admin-password"]


def test_temporary_files_of_gone_writers_are_removed_and_live_ones_kept(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "a")
    live = store.writer()
    live.write(b"being written")
    gone = store.tmp / "killed-download.partial"  # no process holds it: its writer was killed
    gone.write_bytes(b"half a file")
    old = time.time() - 3600
    for path in (gone, live.tmp_path):
        os.utime(path, (old, old))
    fresh = store.tmp / "just-created.partial"  # its writer may not have locked it yet
    fresh.write_bytes(b"")
    assert store.remove_abandoned() == 1
    assert not gone.exists() and live.tmp_path.exists() and fresh.exists()
    live.write(b", still")
    assert len(live.commit()) == 64


def test_a_fresh_temporary_file_of_a_dead_writer_goes_at_once_even_unreaped(
    tmp_path: Path,
) -> None:
    """A temporary file is named after the process that writes it: one whose writer is dead
    goes at once, not after the grace for files not locked yet - also while the dead writer
    is a zombie no one has reaped (a killed worker whose parent died with it, in a container
    whose init does not reap: signal 0 still finds it); a running writer's stays."""
    store = ArtifactStore(tmp_path / "a")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        stat = Path(f"/proc/{dead.pid}/stat")
        deadline = time.monotonic() + 10
        while stat.read_text().split(") ")[1][0] != "Z" and time.monotonic() < deadline:
            time.sleep(0.01)  # exited, not reaped (not waited for)
        (store.tmp / f"{dead.pid}-download.partial").write_bytes(b"half a file")
        running = store.tmp / f"{os.getppid()}-download.partial"
        running.write_bytes(b"being written")
        assert store.remove_abandoned() == 1
        assert [p.name for p in store.tmp.iterdir()] == [running.name]
    finally:
        dead.wait(timeout=10)


def test_a_fresh_temporary_file_of_an_earlier_process_of_a_reused_pid_goes_at_once(
    tmp_path: Path,
) -> None:
    """A container restarted (or a busy host) gives pids out again: the workers that start
    after a kill often have the very pids of the killed ones, whose temporary files - named
    after their pid - were then taken for a running writer's, or for this process's own, and
    kept, fresh, until the next start. A file's name says which process made it, not just its
    pid: one made by another process of a pid running now goes at once too."""
    store = ArtifactStore(tmp_path / "a")
    made = (
        "import os, sys; from pathlib import Path; from pullthrough.storage import store;"
        " os.getpid = lambda: int(sys.argv[1]); store.locked_temporary(Path(sys.argv[2]))"
    )
    for reused in (os.getppid(), os.getpid()):  # a running process's pid; this process's
        # made by a process that had that pid, and was killed: nothing holds its lock
        subprocess.run([sys.executable, "-c", made, str(reused), store.tmp], check=True)
    running = store.writer()  # this process's, being written
    running.write(b"being written")
    assert store.remove_abandoned() == 2
    assert list(store.tmp.iterdir()) == [running.tmp_path]
    running.abort()


def test_s3_local_copies_are_locked_while_used_and_removed_after(
    s3_server: S3Server, tmp_path: Path
) -> None:
    bucket = s3_server.bucket("local-copies")
    location = S3Location(
        s3_server.endpoint_url, bucket, s3_server.region, "", s3_server.access_key,
        s3_server.secret_key, "path", 0,
    )  # fmt: skip
    store = S3Store(location, tmp_path / "tmp")
    sha = store.put_bytes(b"wheel bytes")
    with store.local_path(sha) as path:
        assert path.read_bytes() == b"wheel bytes"
        assert store.remove_abandoned(grace=0) == 0  # in use: locked, kept
        assert path.exists()
    assert list(store.tmp.iterdir()) == []
    with pytest.raises(FileNotFoundError), store.local_path("0" * 64):
        pass
    assert list(store.tmp.iterdir()) == []


def _s3_store(s3_server: S3Server, bucket: str, tmp: Path) -> S3Store:
    location = S3Location(
        s3_server.endpoint_url, s3_server.bucket(bucket), s3_server.region, "",
        s3_server.access_key, s3_server.secret_key, "path", 0,
    )  # fmt: skip
    return S3Store(location, tmp)


@pytest.mark.slow
def test_a_hung_object_store_is_unavailable_within_seconds_then_at_once(
    s3_server: S3Server, tmp_path: Path
) -> None:
    """An object store that accepts connections and never answers: a request's HEAD fails
    within seconds (pip gives up after 15), and the next ones at once for a few seconds (no
    thread waits again); service resumes by itself."""
    store = _s3_store(s3_server, "hung", tmp_path / "tmp")
    sha = store.put_bytes(b"wheel bytes")
    with s3_server.paused():
        started = time.monotonic()
        with pytest.raises(StorageUnavailable):
            store.open(sha)
        assert time.monotonic() - started < 12
        started = time.monotonic()
        for call in (store.open, store.has, store.delete):
            with pytest.raises(StorageUnavailable):
                call(sha)
        with pytest.raises(StorageUnavailable):
            store.ping()
        assert time.monotonic() - started < 0.5
    time.sleep(DOWN_SECONDS)
    opened = store.open(sha)
    assert opened is not None and opened.file.read() == b"wheel bytes"


def test_an_s3_file_opened_to_send_is_sent_whole_when_evicted_before_its_first_read(
    s3_server: S3Server, tmp_path: Path
) -> None:
    """Another node evicts a file between a request's open (its 200 is then committed) and
    its first read: the GET started in open survives the deletion, whole file or range; a file
    evicted before the open is not stored (downloaded again), not a broken answer."""
    store = _s3_store(s3_server, "evicted-while-sent", tmp_path / "tmp")
    data = os.urandom(3 * 1024 * 1024)
    sha = store.put_bytes(data)
    whole = store.open(sha, read_from=from_start)
    ranged = store.open(sha, read_from=lambda sha256, size: size - 1000)
    headed = store.open(sha)  # HEAD request, redirect, 304: no GET
    assert whole is not None and ranged is not None and headed is not None
    assert whole.size == ranged.size == headed.size == len(data)
    store.delete(sha)  # another node's eviction
    assert whole.file.read() == data
    ranged.file.seek(len(data) - 1000)  # as werkzeug cuts the range
    assert ranged.file.read() == data[-1000:]
    for opened in (whole, ranged, headed):
        opened.file.close()
    assert store.open(sha, read_from=from_start) is None
    assert store.open(sha, read_from=lambda sha256, size: 5) is None


def test_notices_of_downloads_a_killed_process_left_go_when_a_process_starts(
    tmp_path: Path,
) -> None:
    """A process killed while it downloads leaves its notice (the store removes the file it
    named): the next process to start removes it, and a half-written one past a minute; the
    notice of a download still writing its file stays."""
    tmp, directory = tmp_path / "tmp", tmp_path / "flights"
    tmp.mkdir()
    first = Flights(directory, tmp)
    live, dead = tmp / "1.1-live.partial", tmp / "2.1-dead.partial"
    live.write_bytes(b"so far")
    first.post("https://files.example/live.whl", live, 100)
    first.post("https://files.example/dead.whl", dead, 100)  # its file already gone
    half = directory / "x.new"
    half.write_text("{")
    os.utime(half, (time.time() - 120, time.time() - 120))
    young = directory / "y.new"
    young.write_text("{")
    assert first.find("https://files.example/dead.whl") is not None
    Flights(directory, tmp)
    assert first.find("https://files.example/dead.whl") is None
    assert first.find("https://files.example/live.whl") == Notice(live.name, 100)
    assert not half.exists() and young.exists()
