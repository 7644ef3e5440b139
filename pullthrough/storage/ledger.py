"""The cache ledger: which stored files are orphaned pull-through copies, their sizes and last use.

Kept in diskcache (SQLite under the data folder), so every gunicorn worker shares one view. Only
files recorded here can be evicted; content that belongs to a repository is never recorded. A
damaged database of it is set aside and rebuilt from the catalog at start-up
(services.ledger_rebuild).
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import diskcache
from cachetools import TTLCache

from pullthrough.storage.copies import opened
from pullthrough.storage.locks import Lock

_TOTAL = "__total__"
# The ledger's diskcaches: its entries, the URLs of unhashed files, and who may read a copy
PARTS = ("files", "urls", "readers")
_SETTINGS: dict[str, Any] = {"eviction_policy": "none", "size_limit": 2**62, "statistics": False}
RESTORE_BATCH = 1000  # entries written in one transaction: other workers' writes go between


@dataclass(frozen=True, slots=True)
class Entry:
    sha256: str
    size: int
    last_used: float


# Who may be served a stored copy through a remote's page: None for anyone (a copy some remote
# fetched sending nothing of its own), else the UpstreamClient.seen_as digests of the remotes
# that fetched it with their credentials (frozenset(): nobody known, after a damaged ledger)
Readers = frozenset[str] | None


def may_read(readers: Readers, seen_as: tuple[str, ...]) -> bool:
    """Whether a remote the index sees as `seen_as` may be served a copy of `readers`: bytes
    an index gave one remote for its credentials are no other remote's."""
    return readers is None or (bool(seen_as) and seen_as[0] in readers)


def readers_after(readers: Readers, seen_as: tuple[str, ...], *, tracked: bool) -> Readers:
    """A copy's readers once a remote seen as `seen_as` has fetched it (`readers`: before;
    `tracked`: whether the ledger recorded it before): anyone's once fetched anonymously, and
    still anyone's when it was so already; else also that remote's."""
    if not seen_as or (readers is None and tracked):
        return None
    return (readers or frozenset()) | {seen_as[0]}


@dataclass(frozen=True, slots=True)
class Copy:
    """A pull-through copy the catalog records: its file, size and when it was cached."""

    sha256: str
    size: int
    created: float


def rebuilt_entries(copies: Iterable[Copy], held: Collection[str]) -> list[Entry]:
    """The ledger's entries for the cache's copies the catalog records, but not for bytes
    something else `held` (a repository, an artifact, an upload's chunk, another package):
    those must never be evicted. One entry per file; its last use, which was lost, is taken as
    its latest caching: no later than the truth, so the oldest copies go first."""
    found: dict[str, Entry] = {}
    for copy in copies:
        if copy.sha256 in held:
            continue
        known = found.get(copy.sha256)
        if known is None or known.last_used < copy.created:
            found[copy.sha256] = Entry(copy.sha256, copy.size, copy.created)
    return sorted(found.values(), key=lambda e: e.sha256)


class RecentUses:
    """The files this process saw used in the last `interval` seconds: a use of one of them is
    not written again, so a hot file costs one write per interval per process, not one per
    request."""

    def __init__(self, interval: float, clock: Callable[[], float]) -> None:
        self._seen: TTLCache[str, bool] = TTLCache(maxsize=65536, ttl=interval, timer=clock)
        self._lock = threading.Lock()  # cachetools caches are not thread-safe

    def first(self, sha256: str) -> bool:
        """Whether this use is the first of its interval (to be written); notes it."""
        with self._lock:
            if sha256 in self._seen:
                return False
            self._seen[sha256] = True
            return True


def _lru_order(entry: Entry) -> tuple[float, str]:
    """The order of eviction: least recently used first, ties by sha256."""
    return entry.last_used, entry.sha256


@dataclass(frozen=True, slots=True)
class _LatestFirst:
    """An entry in a heap whose top is the most recently used (heapq's is its least)."""

    entry: Entry

    def __lt__(self, other: _LatestFirst) -> bool:
        return _lru_order(self.entry) > _lru_order(other.entry)


def evictions_in_order(lru_first: Iterable[Entry], total: int, target: int) -> Iterator[Entry]:
    """Entries least recently used first (`lru_first` is in that order), until `total` is at
    most `target`: read only as far as that."""
    for entry in lru_first:
        if total <= target:
            return
        yield entry
        total -= entry.size


def choose_evictions(entries: Iterable[Entry], total: int, limit: int, target: int) -> list[Entry]:
    """Least recently used first, until `total` is at most `target`; nothing while within `limit`.

    Evicting down to a target below the limit keeps a full cache from scanning on every new file.
    `entries` are read once, in any order, holding only those chosen so far (a heap, the most
    recently used on top, let go once the others free enough): a list of every entry, sorted,
    took 24 MB a pass for 100,000 cached files, of which a pass evicts about a tenth.
    """
    if total <= limit:
        return []
    need, freed = total - target, 0
    chosen: list[_LatestFirst] = []
    for entry in entries:
        if freed >= need and _lru_order(entry) >= _lru_order(chosen[0].entry):
            continue  # used after every one chosen, which free enough
        heapq.heappush(chosen, _LatestFirst(entry))
        freed += entry.size
        while freed - chosen[0].entry.size >= need:
            freed -= heapq.heappop(chosen).entry.size
    return sorted((c.entry for c in chosen), key=_lru_order)


class Ledger(Protocol):
    """Which stored files are cache, their sizes and last use: this host's (CacheLedger), or
    every node's (services.coordination.SharedLedger)."""

    max_size: int

    def close(self) -> None: ...
    def record(self, sha256: str, size: int) -> None: ...
    def record_untracked(self, sizes: Mapping[str, int]) -> set[str]: ...
    def touch(self, sha256: str) -> None: ...
    def forget(self, sha256: str) -> None: ...
    def tracks(self, sha256: str) -> bool: ...
    def tracked(self, shas: Collection[str]) -> set[str]: ...
    def used_at(self, sha256: str) -> float | None: ...
    def total(self) -> int: ...
    def count(self) -> int: ...
    def entries(self) -> Iterable[Entry]: ...
    def over_limit(self) -> bool: ...
    def victims(self) -> Iterable[Entry]: ...
    def remember_url(self, url: str, sha256: str) -> None: ...
    def sha_for_url(self, url: str) -> str | None: ...
    def readers(self, sha256: str) -> Readers: ...
    def set_readers(self, sha256: str, readers: Readers) -> None: ...


class CacheLedger:
    def __init__(
        self,
        directory: Path,
        *,
        max_size: int,
        clock: Callable[[], float] = time.time,
        touch_interval: float = 60.0,  # seconds: a hot file costs one write a minute per process
        in_use: Lock | None = None,  # held by the caller; released when the ledger is closed
    ) -> None:
        self.files = diskcache.Cache(str(directory / "files"), **_SETTINGS)
        self.urls = diskcache.Cache(str(directory / "urls"), **_SETTINGS)
        self.limited = diskcache.Cache(str(directory / "readers"), **_SETTINGS)  # sha -> Readers
        self.max_size = max_size
        self.clock = clock
        self._recent = RecentUses(touch_interval, clock)
        self._in_use = in_use

    def close(self) -> None:
        self.files.close()
        self.urls.close()
        self.limited.close()
        if self._in_use is not None:
            self._in_use.release()

    def record(self, sha256: str, size: int) -> None:
        """A file now cached as orphaned content."""
        with self.files.transact():
            if self.files.get(sha256) is None:
                self.files.incr(_TOTAL, size)
            self.files.set(sha256, (size, self.clock()))

    def record_untracked(self, sizes: Mapping[str, int]) -> set[str]:
        """Files now cached (`sizes`: sha256 -> size), but for those tracked already, in
        transactions of RESTORE_BATCH: a transaction per file made thousands of them cost
        seconds. Returns the sha256s recorded here."""
        recorded: set[str] = set()
        shas = sorted(sizes)
        for start in range(0, len(shas), RESTORE_BATCH):
            with self.files.transact():
                added = 0
                for sha256 in shas[start : start + RESTORE_BATCH]:
                    if self.files.get(sha256) is None:
                        self.files.set(sha256, (sizes[sha256], self.clock()))
                        recorded.add(sha256)
                        added += sizes[sha256]
                self.files.incr(_TOTAL, added)  # once a batch: a read and a write each
        return recorded

    def restore(self, entries: Sequence[Entry]) -> None:
        """Enter files rebuilt from the catalog (rebuilt_entries), with their last use; one
        recorded meanwhile (by a worker started already) stays as it is."""
        for start in range(0, len(entries), RESTORE_BATCH):
            with self.files.transact():
                for entry in entries[start : start + RESTORE_BATCH]:
                    if self.files.get(entry.sha256) is None:
                        self.files.incr(_TOTAL, entry.size)
                        self.files.set(entry.sha256, (entry.size, entry.last_used))

    def touch(self, sha256: str) -> None:
        if not self._recent.first(sha256):
            return
        with self.files.transact():
            if (record := self.files.get(sha256)) is not None:
                self.files.set(sha256, (record[0], self.clock()))

    def forget(self, sha256: str) -> None:
        """Stop tracking a file (evicted, or promoted into a repository)."""
        with self.files.transact():
            if (record := self.files.pop(sha256, default=None)) is not None:
                self.files.decr(_TOTAL, record[0])
        self.limited.pop(sha256, default=None)  # a copy fetched again is judged again

    def tracks(self, sha256: str) -> bool:
        return self.used_at(sha256) is not None

    def tracked(self, shas: Collection[str]) -> set[str]:
        """Those of `shas` tracked."""
        return {sha256 for sha256 in shas if self.files.get(sha256) is not None}

    def used_at(self, sha256: str) -> float | None:
        """When a tracked file was last used (recorded, or touched), else None."""
        record = self.files.get(sha256)
        return None if record is None else float(record[1])

    def total(self) -> int:
        return int(self.files.get(_TOTAL, 0))

    def count(self) -> int:
        return max(len(self.files) - (1 if _TOTAL in self.files else 0), 0)

    def entries(self) -> Iterable[Entry]:
        for key in self.files.iterkeys():
            if key != _TOTAL and (record := self.files.get(key)) is not None:
                yield Entry(key, record[0], record[1])

    def over_limit(self) -> bool:
        return self.total() > self.max_size

    def victims(self) -> list[Entry]:
        target = int(self.max_size * 0.9)
        return choose_evictions(self.entries(), self.total(), self.max_size, target)

    def remember_url(self, url: str, sha256: str) -> None:
        """For indexes that give no sha256: which stored file a URL was downloaded into."""
        self.urls.set(url, sha256)

    def sha_for_url(self, url: str) -> str | None:
        found = self.urls.get(url)
        return str(found) if found is not None else None

    def readers(self, sha256: str) -> Readers:
        found = self.limited.get(sha256)
        return None if found is None else frozenset(found)

    def set_readers(self, sha256: str, readers: Readers) -> None:
        if readers is None:
            self.limited.pop(sha256, default=None)
        else:
            self.limited.set(sha256, tuple(sorted(readers)))

    def limited_copies(self) -> Iterator[tuple[str, frozenset[str]]]:
        """Every copy not anyone's, with its readers."""
        for sha256 in self.limited.iterkeys():
            if (readers := self.readers(sha256)) is not None:
                yield sha256, readers

    def remembered_urls(self) -> Iterator[tuple[str, str]]:
        """Every URL remembered, with its stored file's sha256."""
        for url in self.urls.iterkeys():
            if (sha256 := self.sha_for_url(url)) is not None:
                yield url, sha256


def damaged_parts(directory: Path) -> list[str]:
    """The ledger's diskcaches (PARTS) in `directory` whose database is damaged: read whole,
    so that a damaged page is found now, not at the first eviction or status read."""
    damaged = []
    for part in PARTS:
        if (cache := opened(directory / part, _SETTINGS, check=True)) is None:
            damaged.append(part)
        else:
            cache.close()
    return damaged
