from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path

import pytest

from pullthrough.storage.ledger import CacheLedger, Entry, choose_evictions
from pullthrough.storage.locks import LockDir, LockTimeout
from pullthrough.storage.store import ArtifactStore, HashMismatch


def test_store_commits_only_verified_bytes(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "a")
    data = b"wheel bytes"
    sha = hashlib.sha256(data).hexdigest()
    assert store.put_bytes(data, {"sha256": sha}) == sha
    opened = store.open(sha)
    assert opened is not None
    with opened as fh:
        assert fh.read() == data
    with pytest.raises(HashMismatch):
        store.put_bytes(b"other bytes", {"sha256": sha[::-1]})
    with pytest.raises(HashMismatch):
        store.put_bytes(b"other bytes", {"md5": "0" * 32})
    assert list(store.tmp.iterdir()) == []  # nothing half-written is left behind
    assert store.delete(sha) == len(data) and store.open(sha) is None


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


def test_lock_is_exclusive_across_threads(tmp_path: Path) -> None:
    locks = LockDir(tmp_path)
    first = locks.lock("file-url")
    assert first.acquire(timeout=1)
    second = locks.lock("file-url")
    assert not second.acquire(timeout=0, blocking=False)
    with pytest.raises(LockTimeout):
        second.acquire(timeout=0.1)
    threading.Timer(0.1, first.release).start()
    assert second.acquire(timeout=5)
    second.release()


@pytest.mark.parametrize("name", ["/etc/passwd", "../" * 3 + "x" * 55, "A" * 64, "a" * 65])
def test_store_paths_come_only_from_sha256_digests(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="not a sha256"):
        ArtifactStore(tmp_path / "a").path(name)


def test_generated_admin_password_is_never_empty_under_concurrent_starts(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from pullthrough.config import AuthSettings
    from pullthrough.services.auth import Authenticator, admin_password

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda _: admin_password(AuthSettings(), tmp_path), range(64)))
    passwords = {p for p, _ in results}
    assert len(passwords) == 1 and "" not in passwords
    assert sum(generated for _, generated in results) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["admin-password"]
    assert not Authenticator("admin", "").allows("Basic YWRtaW46")  # admin with no password
