"""Files through the cache: served from the store, or fetched once from the upstream while being
streamed to the first client, hash-checked, then made visible and recorded as orphaned content."""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, NamedTuple, Protocol

from sqlalchemy.exc import SQLAlchemyError

from pullthrough.catalog.models import Package
from pullthrough.core.metadata import (
    MAX_METADATA_SIZE,
    InvalidDistribution,
    check_filename_matches,
    parse_metadata,
    read_metadata,
)
from pullthrough.core.models import DistFile
from pullthrough.services.distribution import Distribution, NotFound, PageView
from pullthrough.services.metrics import Metrics
from pullthrough.storage.flights import Flights
from pullthrough.storage.ledger import Ledger, Readers, may_read, readers_after
from pullthrough.storage.locks import (
    STORED_WAIT_SECONDS,
    Lock,
    Locks,
    LockTimeout,
    stored_bytes,
)
from pullthrough.storage.store import (
    ArtifactWriter,
    BlobStore,
    Digests,
    HashMismatch,
    ReadFrom,
    StorageFull,
    StorageUnavailable,
    being_written,
    from_start,
)
from pullthrough.upstream.client import (
    SIZE,
    Answer,
    UpstreamClient,
    UpstreamError,
    UpstreamRefused,
    UpstreamTimeout,
    content_length,
    describe_url,
    download_bound,
)

log = logging.getLogger(__name__)
HOLD_BACK = 256 * 1024  # bytes a client waits for until the digest is verified
STALL_SECONDS = 600.0  # a download with no progress for this long is given up by its readers
EVICTION_PASSES = 4  # a pass, then again for files recorded meanwhile (bounded)
STORING_THREADS = 8  # small files stored at once, per process, while they are sent
CHUNK_SIZE = 1024 * 1024
# How long a process trusts what it read of who may be served a copy (the warm path asks no
# database). A refusal is checked again before a download; a copy anyone may read turns into
# one some remotes may only once evicted and fetched again with credentials, which LRU makes
# rare for a file used in this time.
READERS_SECONDS = 60.0
READERS_KEPT = 65536  # files whose readers a process remembers (then it starts afresh)
LEDGER_ERRORS = (OSError, sqlite3.Error, SQLAlchemyError)  # a ledger that cannot be read
JOIN_LOOK_SECONDS = 1.0  # how often a request waiting for another process's download looks
TAIL_POLL_SECONDS = 0.05  # how often a request following it looks for more bytes


Span = Callable[[int], tuple[int, int] | None]  # a file's size -> (start, stop) of a range


def relayable(span: Span, size: int | None) -> bool:
    """Whether a range of a file not stored yet may come straight from the upstream, whose
    bytes no digest checks. A whole GET holds back the file's last HOLD_BACK bytes until the
    file is verified (all of a small one); a relayed range must leave out the first of them,
    the guard byte, so that no mix of ranges and cut-short GETs ever makes up the whole file
    unchecked (a client resuming a download cut short at the guard waits for the verified
    file). `size` is the index's, or where it gives none the total the upstream's 206 states
    (None: never relayed); a range that is not satisfiable as such is not relayed either."""
    if size is None or (taken := span(size)) is None:
        return False
    guard = max(0, size - HOLD_BACK)
    start, stop = taken
    return not start <= guard < stop


@dataclass
class StoredFile:
    file: BinaryIO
    size: int
    sha256: str
    stale: bool = False


@dataclass
class StreamedFile:
    """A download in progress; iterate it for the bytes, and always close it (WSGI does)."""

    chunks: Generator[bytes, None, None]
    size: int | None
    stale: bool = False
    reader: BinaryIO | None = None  # what the chunks come from, closed with them
    # The file's storing, done once its bytes are verified (PullThrough._store_received);
    # None when it was done before the answer (or nothing is kept)
    stored: Future[None] | None = None
    # Another process's download, followed (PullThrough._follow): stored once it lets the
    # download's lock go
    elsewhere: bool = False

    def __iter__(self) -> Iterator[bytes]:
        return self.chunks

    def close(self) -> None:
        self.chunks.close()  # a download or a storing goes on in its own thread
        if self.reader is not None:
            self.reader.close()  # the chunks' own, unless they never started


@dataclass
class RangedFile:
    """Part of a file not stored yet, as the upstream sends it (206): bytes `start` to `end`
    (inclusive) of `total`. A part cannot be checked against the file's digest; the whole file
    is fetched into the cache alongside, verified as always. Iterate it, and close it."""

    chunks: Generator[bytes, None, None]
    start: int
    end: int
    total: int | None
    stale: bool = False

    def __iter__(self) -> Iterator[bytes]:
        return self.chunks

    def close(self) -> None:
        self.chunks.close()


class Kept(NamedTuple):
    """A file newly stored, and its catalog entry (None for a file the catalog does not list)."""

    sha256: str
    package: Package | None


# Another Content-Range (one of a number no SIZE is, say) is no range of a file we could fetch
_CONTENT_RANGE = re.compile(rf"bytes ({SIZE})-({SIZE})/({SIZE}|\*)")


class _Progress:
    """A download's state, shared by the thread that fetches it and the client that tails it."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.written = 0
        self.done = False
        self.error: Exception | None = None

    def update(self, *, written: int | None = None, error: Exception | None = None) -> None:
        with self.cond:
            if written is not None:
                self.written = written
            self.error = error or self.error
            self.cond.notify_all()

    def finish(self, error: Exception | None = None) -> None:
        with self.cond:
            self.done, self.error = True, error
            self.cond.notify_all()


@dataclass
class _Flight:
    """A download under way in this process, for a request for the same file to join."""

    tmp_path: Path  # what it is written to
    expected: dict[str, str]  # the digests it is checked against (its index entry's)
    progress: _Progress
    size: int | None
    most: int
    storing: Future[None]


class _Failures:
    """The downloads that failed, by client (remote) and URL, each with when and the error its
    request answered: the requests that waited for one answer with that error, rather than each
    try the upstream again in turn (an upstream that accepts connections and never answers cost
    the last of N waiting requests N read timeouts). A request that comes after the failure
    tries again, and so does one through another remote (other credentials, proxy, timeouts:
    it may get the file). This process's only: a waiting request of another process tries once
    for all of its own."""

    def __init__(self, keep: float) -> None:
        self.keep = keep  # seconds: the longest a request waits for a download
        self._failed: dict[tuple[UpstreamClient, str], tuple[float, UpstreamError]] = {}
        self._lock = threading.Lock()

    def note(self, client: UpstreamClient, url: str, error: UpstreamError) -> None:
        now = time.monotonic()
        with self._lock:
            for old in [k for k, (at, _) in self._failed.items() if now - at > self.keep]:
                del self._failed[old]
            self._failed[client, url] = (now, error)

    def since(self, client: UpstreamClient, url: str, moment: float) -> UpstreamError | None:
        """The error of a download of `url` through `client` that failed after `moment`
        (time.monotonic()), as a new exception of its kind (each waiting request raises its
        own)."""
        with self._lock:
            at, error = self._failed.get((client, url), (moment, None))
        if error is None or at < moment:
            return None
        return type(error)(*error.args)


def fetch_key(seen_as: tuple[str, ...], url: str) -> str:
    """What a download is one of (its lock, its flight, its failure): a URL, as the index sees
    the remote asking for it - a file fetched with credentials is no other remote's."""
    return " ".join((*seen_as, url))


def seen_as(dist: Distribution, entry: DistFile, view: PageView) -> tuple[str, ...] | None:
    """Who the index sees when this distribution fetches a listed file: the remote it would be
    fetched through (UpstreamClient.seen_as); None for the repository's own content, which no
    remote fetches (the distribution's access governs it)."""
    client, _ = dist.origin(entry, view)
    return client.seen_as if client is not None else None


class _HeldBack:
    """A client's bytes of a file not verified yet, `size` long when known (its Content-Length):
    all but the last HOLD_BACK go out as they come, hashed; those only once the whole file is in
    and matches its digests (a failure cuts the answer short)."""

    def __init__(self, expected: Mapping[str, str], size: int | None) -> None:
        self.digests = Digests(expected)
        self.size = size
        self.sent = 0
        self._held = bytearray()

    def feed(self, data: bytes) -> bytes:
        """The bytes that may go now, `data` come (never more than `size` in all, so never
        its last HOLD_BACK unchecked)."""
        if self.size is not None and self.sent + len(self._held) + len(data) > self.size:
            raise UpstreamError(f"more bytes than the {self.size} the answer announced")
        self._held += data
        cut = len(self._held) - HOLD_BACK
        if cut <= 0:
            return b""
        out = bytes(self._held[:cut])
        del self._held[:cut]
        self.digests.update(out)
        self.sent += cut
        return out

    def finish(self) -> bytes | None:
        """The bytes held back, if with those sent they are the whole file; else None, and they
        are dropped (those sent are still counted and hashed: the file may come again)."""
        rest, self._held = bytes(self._held), bytearray()
        whole = self.digests.copy()
        whole.update(rest)
        try:
            whole.verify()
        except HashMismatch:
            return None
        if self.size is not None and self.sent + len(rest) != self.size:
            return None
        self.digests, self.sent = whole, self.sent + len(rest)
        return rest


class CacheEvents(Protocol):
    """What the catalog wants to know about the cache (see services.cached_content)."""

    def describe(self, entry: DistFile, sha256: str, path: Path) -> Package | None: ...
    def cached(self, package: Package) -> None: ...
    def evict(self, sha256: str, remove: Callable[[], object]) -> bool: ...


class PullThrough:
    def __init__(
        self,
        store: BlobStore,
        ledger: Ledger,
        locks: Locks,
        events: CacheEvents,
        *,
        wait_timeout: float = 900.0,  # how long a request waits for another's download
        metrics: Metrics | None = None,
        flights: Flights | None = None,  # this host's downloads, for other processes to follow
    ) -> None:
        self.metrics = metrics or Metrics()
        self.store = store
        self.flights = flights
        self.ledger = ledger
        self.locks = locks
        self.events = events
        self.wait_timeout = wait_timeout
        self._failures = _Failures(wait_timeout)  # for the requests that waited for them
        self._flights: dict[str, _Flight] = {}  # big files being fetched here, by URL
        self._flights_lock = threading.Lock()
        self._prefetching: set[str] = set()  # URLs fetched for the cache on behalf of ranges
        self._prefetch_lock = threading.Lock()
        # Never more files waiting to be stored than threads storing them: each holds its
        # download's lock (a file, or a database connection) and a temporary file.
        self._storing = ThreadPoolExecutor(STORING_THREADS, thread_name_prefix="pullthrough-store")
        self._storers = threading.BoundedSemaphore(STORING_THREADS)
        # The catalog entries and eviction after a file is stored hold nothing: they may
        # queue, one at a time per process (fewer waits for the catalog's write lock).
        self._bookkeeping = ThreadPoolExecutor(1, thread_name_prefix="pullthrough-bookkeeping")
        # sha256 -> (its readers, when read: time.monotonic()); a plain dict, whose get and
        # set are atomic: a TTLCache and its lock cost the warm path ten times as much
        self._readers: dict[str, tuple[Readers, float]] = {}

    def close(self) -> None:
        """Finish storing the files received (their downloads' locks are held till then), and
        their bookkeeping."""
        self._storing.shutdown(wait=True)
        self._bookkeeping.shutdown(wait=True)

    def _stored(
        self, sha256: str | None, stale: bool, read_from: ReadFrom | None = None
    ) -> StoredFile | None:
        """The stored file, open (from `read_from`: see BlobStore.open), its use recorded."""
        if sha256 is None or (opened := self.store.open(sha256, read_from=read_from)) is None:
            return None
        try:
            self.ledger.touch(sha256)
        except (OSError, sqlite3.Error, SQLAlchemyError) as exc:  # served all the same
            log.warning("could not record a use of %s: %s", sha256, exc)
        return StoredFile(opened.file, opened.size, sha256, stale)

    def _known_sha(
        self, entry: DistFile, reader: tuple[str, ...] | None, *, recent: bool = True
    ) -> str | None:
        """The stored name of a listed file (its sha256, or the one found when fetching it), if
        a remote the index sees as `reader` may be served that copy (None: the repository's
        own content; `recent`: as this process read that lately, else as the ledger says)."""
        if (sha := entry.sha256 or self.ledger.sha_for_url(entry.url)) is None:
            return None
        if reader is None or may_read(self._readers_of(sha, recent=recent), reader):
            return sha
        return None

    def servable_sha(self, dist: Distribution, entry: DistFile, view: PageView) -> str | None:
        """The sha256 of the copy of a listed file this distribution may be served from the
        store, if known (stored or not): none for a copy fetched with another remote's
        credentials, which it would download itself."""
        return self._known_sha(entry, seen_as(dist, entry, view))

    def _readers_of(self, sha256: str, *, recent: bool) -> Readers:
        """Who may be served a copy; what this process read last when the ledger cannot be
        read now (the catalog down: warm files go on), else the ledger's error."""
        known = self._readers.get(sha256)
        if recent and known is not None and time.monotonic() - known[1] < READERS_SECONDS:
            return known[0]
        try:
            readers = self.ledger.readers(sha256)
        except LEDGER_ERRORS:
            if known is None:
                raise
            return known[0]
        self._note_readers(sha256, readers)
        return readers

    def _note_readers(self, sha256: str, readers: Readers) -> None:
        if len(self._readers) >= READERS_KEPT:
            self._readers.clear()
        self._readers[sha256] = (readers, time.monotonic())

    def open(
        self, dist: Distribution, filename: str, *, read_from: ReadFrom | None = from_start
    ) -> StoredFile | StreamedFile:
        """The file to send (`read_from=None`: an answer that may send none of it)."""
        entry, view = dist.find_file(filename)
        return self._open(dist, entry, view, read_from)

    def peek(self, dist: Distribution, filename: str) -> StoredFile | int | None:
        """The stored file if cached, else the size the index gives (or None); no download."""
        entry, view = dist.find_file(filename)
        stored = self._stored(self._known_sha(entry, seen_as(dist, entry, view)), view.stale)
        return stored if stored is not None else entry.size

    def open_stored(
        self,
        dist: Distribution,
        entry: DistFile,
        view: PageView,
        read_from: ReadFrom | None = from_start,
    ) -> StoredFile | None:
        """A listed file if it is stored for this distribution's remote (counted as a hit);
        never a download, nor a wait."""
        sha = self._known_sha(entry, seen_as(dist, entry, view))
        if (stored := self._stored(sha, view.stale, read_from)) is None:
            return None
        self.metrics.cache_hits.inc()
        if view.stale:
            self.metrics.cache_stale.inc()
        return stored

    def _open(
        self, dist: Distribution, entry: DistFile, view: PageView, read_from: ReadFrom | None
    ) -> StoredFile | StreamedFile:
        if (stored := self.open_stored(dist, entry, view, read_from)) is not None:
            return stored
        opened = self._download(dist, entry, view, read_from)
        if view.stale:
            self.metrics.cache_stale.inc()
        return opened

    def _download(
        self,
        dist: Distribution,
        entry: DistFile,
        view: PageView,
        read_from: ReadFrom | None,
        *,
        again: bool = True,
    ) -> StoredFile | StreamedFile:
        """A file not stored at the first look: fetched here, or stored meanwhile by the
        download this one waited for, or that download's bytes as they come (`again`: fetched
        anew should another process's end unverified)."""
        url, expected, size = entry.url, dict(entry.hashes), entry.size
        client, keep = self._source(dist, entry, view)
        key = fetch_key(client.seen_as, url)
        if (joined := self._join(url, key, expected, view)) is not None:
            return joined
        lock = self.locks.lock(key)
        asked = time.monotonic()
        followed = self._take_or_follow(lock, key, dist, entry, view, again=again)
        if followed is not None:
            return followed
        try:  # a look at the store (S3 down) or the catalog (down) may fail: the lock goes
            if (stored := self._stored_meanwhile(entry, client, view, read_from)) is not None:
                lock.release()
                return stored
            if (failed := self._failures.since(client, url, asked)) is not None:
                raise failed  # the download this request waited for
            self.metrics.cache_misses.inc()
            try:
                resp = client.open_file(url)
            except UpstreamError as exc:
                self._failures.note(client, url, exc)  # before the lock goes: for those waiting
                raise
        except BaseException:
            lock.release()
            raise
        try:
            if (announced := content_length(resp)) is not None:
                size = announced
            most = download_bound(size, self.ledger.max_size)
            writer = self.store.writer(expected)
            reader = open(writer.tmp_path, "rb")  # noqa: SIM115 - owned by the tail generator
        except BaseException:
            resp.close()
            lock.release()
            raise
        progress = _Progress()
        storing: Future[None] | None
        if size is not None and size <= HOLD_BACK:
            # Sent only once complete and verified anyway: fetched right here, sparing a
            # thread's start-up; stored alongside the answer, the client waiting for neither
            # the disk nor the other (a slow client holds up no request for it).
            storing = self._receive_then_store(
                client, resp, writer, entry, url, lock, keep, progress, most
            )
        else:
            # Fetched at the upstream's pace on a thread of its own, the client tailing it;
            # stored once verified, while the held-back tail goes out.
            storing = Future()
            fetch = (client, resp, writer, entry, url, lock, keep, progress, most)
            flight = _Flight(writer.tmp_path, expected, progress, size, most, storing)
            with self._flights_lock:
                self._flights[key] = flight
            if self.flights is not None:
                self.flights.post(key, writer.tmp_path, size)

            def fetch_then_store() -> None:
                alongside = None
                try:
                    alongside = self._receive_then_store(*fetch)
                finally:  # a storing under way is done when its storing thread is
                    with self._flights_lock:  # stored or given up: the lock tells
                        if self._flights.get(key) is flight:  # not a later download's
                            del self._flights[key]
                    if self.flights is not None:
                        self.flights.withdraw(key, flight.tmp_path)
                    if alongside is None:
                        storing.set_result(None)
                    else:
                        alongside.add_done_callback(lambda _: storing.set_result(None))

            threading.Thread(
                target=fetch_then_store, name="pullthrough-download", daemon=True
            ).start()
        return self._tailed(reader, progress, url, most, size, view.stale, storing)

    def _join(
        self, url: str, key: str, expected: dict[str, str], view: PageView
    ) -> StreamedFile | None:
        """The big file this process is fetching from `url` (as `key`: fetch_key), sent as it
        grows, as to the request that started its download: a request waiting for the
        download's lock gets no byte until the file is stored, and a client that gives up on a
        silent server (pip after 15 s) failed on a file that takes longer to come. None when
        there is no such download (or it has just ended: then the lock tells whether it was
        stored), and when the download checks other digests than `expected` (a page listing
        the URL with other bytes gets the file checked against its own)."""
        with self._flights_lock:
            flight = self._flights.get(key)
        if flight is None or flight.expected != expected:
            return None
        try:
            reader = open(flight.tmp_path, "rb")  # noqa: SIM115 - owned by the tail generator
        except FileNotFoundError:  # stored (renamed into place) or given up just now
            return None
        most, storing = flight.most, flight.storing
        joined = self._tailed(reader, flight.progress, url, most, flight.size, view.stale, storing)
        self.metrics.cache_hits.inc()  # the upstream is not asked again, as for a waiter
        return joined

    def _tailed(
        self,
        reader: BinaryIO,
        progress: _Progress,
        url: str,
        most: int,
        size: int | None,
        stale: bool,
        storing: Future[None] | None,
    ) -> StreamedFile:
        """A download's file as it grows, answered once more than the held-back tail has
        arrived, or the download has ended: a small file is then wholly fetched and verified
        (a failure is a clean 502)."""
        with progress.cond:
            if not progress.cond.wait_for(
                lambda: progress.done or progress.written > HOLD_BACK, timeout=STALL_SECONDS
            ):
                progress.error = UpstreamTimeout(f"no data from {describe_url(url)} for a while")
            error = progress.error
        if error is not None:
            reader.close()
            raise _answer_for(error)
        tail = self._tail(reader, progress, url, most)
        return StreamedFile(tail, size, stale, reader, storing)

    def _take_or_follow(
        self,
        lock: Lock,
        key: str,
        dist: Distribution,
        entry: DistFile,
        view: PageView,
        *,
        again: bool,
    ) -> StreamedFile | None:
        """Take a download's lock (None), or follow the download of the file that another
        process of this host holds it for, looking for one every JOIN_LOOK_SECONDS while
        waiting (it is posted once its upstream answers). Only a file with a sha256 is
        followed: the bytes are checked here, as they are sent."""
        if self.flights is None or "sha256" not in entry.hashes:
            self._take(lock, entry.url)
            return None
        deadline = time.monotonic() + self.wait_timeout
        while not lock.acquire(timeout=0, blocking=False):
            if (followed := self._follow(key, dist, entry, view, again=again)) is not None:
                return followed
            if (left := deadline - time.monotonic()) <= 0:
                raise _waited_too_long(entry.url)
            with suppress(LockTimeout):
                if lock.acquire(timeout=min(JOIN_LOOK_SECONDS, left)):
                    break
        return None

    def _follow(
        self, key: str, dist: Distribution, entry: DistFile, view: PageView, *, again: bool
    ) -> StreamedFile | None:
        """The file another process of this host is downloading (Flights, as `key`:
        fetch_key), sent as it grows once more than the held-back tail is in; None when none
        is, or it has just ended (the lock then tells whether it was stored)."""
        assert self.flights is not None
        if (notice := self.flights.find(key)) is None:
            return None
        try:
            reader = open(self.store.tmp / notice.name, "rb")  # noqa: SIM115 - owned by the chunks
        except OSError:  # stored or given up
            return None
        try:
            if not _grown_past(reader, HOLD_BACK, entry.url):
                reader.close()
                return None
        except BaseException:
            reader.close()
            raise
        chunks = self._followed(reader, dist, entry, view, notice.size, again=again)
        self.metrics.cache_hits.inc()  # the upstream is not asked again, as for a waiter
        return StreamedFile(chunks, notice.size, view.stale, reader, elsewhere=True)

    def _followed(
        self,
        reader: BinaryIO,
        dist: Distribution,
        entry: DistFile,
        view: PageView,
        size: int | None,
        *,
        again: bool,
    ) -> Generator[bytes, None, None]:
        """Another process's download as it grows, checked here: the last HOLD_BACK bytes go
        once the whole file matches its digests. One that ends otherwise (cut short, its
        worker killed) is fetched again (`again`), here or by whoever fetches it now, and sent
        on from where this answer is; else, or failing again, the answer is cut short."""
        held = _HeldBack(entry.hashes, size)
        with reader:
            for data in _written(reader, entry.url, size):
                if out := held.feed(data):
                    yield out
        if (rest := held.finish()) is None and again:
            log.warning(
                "a download of %s followed from another process ended unverified; fetching it"
                " again",
                describe_url(entry.url),
            )
            opened = self._download(dist, entry, view, from_start, again=False)
            with closing(_bytes_after(opened, held.sent)) as more:
                for data in more:
                    if out := held.feed(data):
                        yield out
            rest = held.finish()
        if rest is None:
            raise UpstreamError(f"download of {describe_url(entry.url)} failed")
        yield rest

    def _take(self, lock: Lock, url: str) -> None:
        """Take a download's lock, waiting while another request (in any worker) fetches or
        stores the file."""
        if lock.acquire(timeout=0, blocking=False):
            return
        try:
            lock.acquire(timeout=self.wait_timeout)
        except LockTimeout:
            raise _waited_too_long(url) from None

    def _stored_meanwhile(
        self,
        entry: DistFile,
        client: UpstreamClient,
        view: PageView,
        read_from: ReadFrom | None,
    ) -> StoredFile | None:
        """A second look, once a download's lock was free: the file stored by another request
        meanwhile (one waited for, or one that let the lock go between the first look and the
        taking), for the remote of `client`, as the ledger says now. Only a file the ledger has
        just recorded is looked up: on S3 a look is a HEAD."""
        sha = self._known_sha(entry, client.seen_as, recent=False)
        if sha is None or not self.ledger.tracks(sha):
            return None
        if (stored := self._stored(sha, view.stale, read_from)) is not None:
            self.metrics.cache_hits.inc()
        return stored

    def _store_alongside(
        self,
        writer: ArtifactWriter,
        entry: DistFile,
        url: str,
        reader: tuple[str, ...],
        lock: Lock,
        keep: bool,
    ) -> Future[None] | None:
        """Store a file received and verified on a free storing thread, while its (last) bytes
        go out; a stopping process finishes that work. When every storing thread is busy, or
        the process is stopping: here and now (a small file's, before its answer). The Future
        of a storing under way, or None once stored here."""
        if self._storers.acquire(blocking=False):
            try:
                storing = self._storing.submit(
                    self._store_received, writer, entry, url, reader, lock, keep
                )
            except RuntimeError:  # the pool is shut down: the process is stopping
                self._storers.release()
            else:
                storing.add_done_callback(lambda _: self._storers.release())
                return storing
        self._store_received(writer, entry, url, reader, lock, keep)
        return None

    def _source(
        self, dist: Distribution, entry: DistFile, view: PageView
    ) -> tuple[UpstreamClient, bool]:
        """The client to fetch a listed file with, and whether to keep it; NotFound without a
        remote, UpstreamRefused for bytes that could not be checked."""
        client, keep = dist.origin(entry, view)
        if client is None or not entry.url:
            raise NotFound(
                f"{describe_url(entry.url) or entry.filename!r} is not stored and distribution {dist.base_path!r} has no remote"
            )
        metadata = entry.filename.endswith(".metadata")  # vouched for by the page itself
        if not entry.sha256 and not metadata and not client.remote.allow_unhashed:
            raise UpstreamRefused(
                f"refused: the upstream lists {entry.filename!r} without a sha256, so its bytes"
                " cannot be checked; set the remote's allow_unhashed to fetch it"
            )
        return client, keep

    def open_range(
        self,
        dist: Distribution,
        filename: str,
        byte_range: str,
        span: Span,
        *,
        read_from: ReadFrom | None,
    ) -> StoredFile | RangedFile | None:
        """A Range request (one range; `span` says which bytes it takes of a file of a given
        size): the stored file (the caller cuts the range), or, for a file not stored yet,
        that range from the upstream at its pace while the whole file is fetched into the
        cache alongside (single-flight, as `open`) - unless the range takes in the file's
        guard byte (`relayable`): then the file is fetched and verified first, and the range
        cut from the store. None when the upstream does not answer with that range (the caller
        sends the whole file instead). `read_from`: where the stored file's answer sends bytes
        from (see BlobStore.open), None if it may send none of them."""
        entry, view = dist.find_file(filename)
        sha = self._known_sha(entry, seen_as(dist, entry, view))
        if (stored := self._stored(sha, view.stale, read_from)) is not None:
            self.metrics.cache_hits.inc()
            return stored
        client, _ = self._source(dist, entry, view)
        if entry.size is not None and not relayable(span, entry.size):
            return self.ensure(dist, entry, view, read_from)
        if entry.size is not None and entry.size <= HOLD_BACK:
            # A small file being fetched or stored right now (a client asking for a range of
            # what it has just downloaded): a moment's wait, and it comes from the store.
            lock = self.locks.lock(fetch_key(client.seen_as, entry.url))
            self._take(lock, entry.url)
            lock.release()
            if (stored := self._stored_meanwhile(entry, client, view, read_from)) is not None:
                return stored
        self._prefetch(dist, entry, view)
        resp = client.open_range(entry.url, byte_range)
        found = _CONTENT_RANGE.fullmatch(resp.headers.get("Content-Range", "").strip())
        if resp.status != 206 or found is None:
            resp.close()
            return None
        start, end = int(found[1]), int(found[2])
        total = None if found[3] == "*" else int(found[3])
        if end < start or (total is not None and entry.size is not None and total != entry.size):
            resp.close()  # not the file the page describes
            return None
        if entry.size is None and not relayable(span, total):
            resp.close()  # no size on the index: the upstream's total places the guard
            return self.ensure(dist, entry, view, read_from)

        def chunks() -> Generator[bytes, None, None]:
            with resp:
                sent = 0
                for chunk in client.iter_body(resp, entry.url):
                    chunk = chunk[: end - start + 1 - sent]  # never more than the range
                    sent += len(chunk)
                    yield chunk
                    if sent > end - start:
                        break
            if sent <= end - start:
                raise UpstreamError(f"upstream cut a range short: {describe_url(entry.url)}")

        return RangedFile(chunks(), start, end, total, view.stale)

    def _prefetch(self, dist: Distribution, entry: DistFile, view: PageView) -> None:
        """Fetch the whole file into the cache in the background (once per process at a time;
        across processes the download lock keeps it to one)."""
        with self._prefetch_lock:
            if entry.url in self._prefetching:
                return
            self._prefetching.add(entry.url)

        def fetch() -> None:
            try:
                self.ensure(dist, entry, view, None).file.close()
            except Exception as exc:
                log.warning("fetching %s for the cache failed: %s", describe_url(entry.url), exc)
            finally:
                with self._prefetch_lock:
                    self._prefetching.discard(entry.url)

        threading.Thread(target=fetch, name="pullthrough-prefetch", daemon=True).start()

    def _receive(
        self,
        client: UpstreamClient,
        resp: Answer,
        writer: ArtifactWriter,
        url: str,
        progress: _Progress,
        most: int,
    ) -> None:
        """The upstream's bytes into the temporary file, then checked against every digest the
        index gives (HashMismatch). At most `most` bytes: a body that goes on past them is given
        up at once (UpstreamError), before they are written."""
        with resp:
            for chunk in client.iter_body(resp, url, most=most):
                writer.write(chunk)
                writer.flush()
                progress.update(written=writer.size)
        writer.verify()

    def _keep(
        self, writer: ArtifactWriter, entry: DistFile, url: str, reader: tuple[str, ...]
    ) -> Kept:
        """Record a received, verified file in the ledger (and who may read it: a copy fetched
        with `reader`'s credentials is that remote's, unless anyone's already), then make it
        visible in the store (fsync, then rename or upload); its catalog entry is read from the
        local bytes first. In that order, under the bytes' lock: a process killed in between
        leaves an entry of bytes not stored (evicted in its turn, freeing nothing), never bytes
        in the store that nothing counts, evicts or removes, nor bytes of one remote that
        another is served."""
        sha = writer.digest()
        try:
            package = self.events.describe(entry, sha, writer.tmp_path)
        except Exception:  # the catalog's loss only: the file is cached all the same
            log.exception("could not read %s for the catalog", describe_url(url))
            package = None
        with stored_bytes(self.locks, sha).held(STORED_WAIT_SECONDS):
            readers = None  # fetched anonymously: anyone's
            if reader:  # a ledger that cannot say: the copy is not kept
                tracked = self.ledger.tracks(sha)
                readers = readers_after(self.ledger.readers(sha), reader, tracked=tracked)
            self._account(sha, writer.size, None if "sha256" in entry.hashes else url)
            try:
                self._set_readers(sha, readers)
                writer.commit()
            except BaseException:
                with suppress(Exception):  # a store that cannot say: the entry stays
                    if not self.store.has(sha):
                        self.ledger.forget(sha)
                raise
        log.info("cached %s (%d bytes, sha256 %s)", describe_url(url), writer.size, sha)
        return Kept(sha, package)

    def _receive_then_store(
        self,
        client: UpstreamClient,
        resp: Answer,
        writer: ArtifactWriter,
        entry: DistFile,
        url: str,
        lock: Lock,
        keep: bool,
        progress: _Progress,
        most: int,
    ) -> Future[None] | None:
        """Receive and verify a file (a download in flight until it is stored), hand it to a
        storing thread or store it here, then let its answer go on: a storing done in a daemon
        download thread never outlives its answer. The Future of a storing under way, or None
        (stored here, or a failure: nothing kept, the lock released, the error in `progress`)."""
        self.metrics.downloads.inc()
        error: Exception | None = None
        received = False
        try:
            self._receive(client, resp, writer, url, progress, most)
            if "sha256" not in entry.hashes:  # allow_unhashed: what the index says is all
                _check_size(writer.size, entry.size, url)
                if entry.filename.endswith(".metadata"):
                    _check_core_metadata(writer.tmp_path, writer.size, entry.filename, url)
            received = True
        except Exception as exc:
            log.error("download of %s failed, nothing stored: %s", describe_url(url), exc)
            error = exc
        finally:
            if not received:
                writer.abort()
                if isinstance(answer := _answer_for(error), UpstreamError):
                    self._failures.note(client, url, answer)  # before the lock goes
                lock.release()
                self.metrics.downloads.dec()
                progress.finish(error)
        if not received:
            return None
        try:
            return self._store_alongside(writer, entry, url, client.seen_as, lock, keep)
        finally:
            progress.finish()

    def _store_received(
        self,
        writer: ArtifactWriter,
        entry: DistFile,
        url: str,
        reader: tuple[str, ...],
        lock: Lock,
        keep: bool,
    ) -> None:
        """Store a file received and verified (while its last bytes go to the client), let
        waiting requests go on, then the bookkeeping, on its own thread. A file that cannot be
        stored is only not cached; the client has its bytes all the same."""
        kept = None
        try:
            with writer:
                if keep:
                    kept = self._keep(writer, entry, url, reader)
        except Exception as exc:
            log.error("sent %s, but could not store it: %s", describe_url(url), exc)
        finally:
            lock.release()  # visible (or given up): waiting requests go on
            self.metrics.downloads.dec()
        if kept is not None:
            try:
                self._bookkeeping.submit(self._after_caching, url, kept)
            except RuntimeError:  # the pool is shut down: the process is stopping
                self._after_caching(url, kept)

    def _account(self, sha: str, size: int, url: str | None) -> None:
        """Enter a new file in the LRU ledger (and, for an index without hashes, its URL). The
        file is complete and verified already, if not stored yet: a ledger that cannot write (a
        full disk) costs only its eviction, never the download."""
        try:
            self.ledger.record(sha, size)
            if url is not None:
                self.ledger.remember_url(url, sha)
        except (OSError, sqlite3.Error, SQLAlchemyError) as exc:
            log.warning("cached %s, but the cache ledger could not record it: %s", sha, exc)

    def _set_readers(self, sha: str, readers: Readers) -> None:
        """Record who may be served a copy before it is visible: a copy not recorded as some
        remotes' is not kept (raises); one left some remotes' for want of a write is only
        downloaded once more by the others."""
        try:
            self.ledger.set_readers(sha, readers)
        except LEDGER_ERRORS as exc:
            if readers is not None:
                raise
            log.warning("cached %s, but could not record it as anyone's: %s", sha, exc)
        self._note_readers(sha, readers)

    def _after_caching(self, url: str, kept: Kept) -> None:
        """Catalog the new file as orphaned content, then keep the cache within its limit -
        whether or not the catalog took the entry (a busy one in a storm of cold files)."""
        try:
            if kept.package is not None:
                with stored_bytes(self.locks, kept.sha256).held(STORED_WAIT_SECONDS):
                    if self.ledger.tracks(kept.sha256):  # else evicted since: no entry
                        self.events.cached(kept.package)
        except Exception:
            log.exception("cataloguing %s (%s) failed", describe_url(url), kept.sha256)
        try:
            self.evict_if_needed()
        except Exception:
            log.exception("eviction after caching %s failed", describe_url(url))

    def _tail(
        self, reader: BinaryIO, progress: _Progress, url: str, most: int
    ) -> Generator[bytes, None, None]:
        """Send the temporary file as it grows. The last HOLD_BACK bytes wait for the digest, so
        a client never receives a complete body with bad bytes (on a failure the response is cut
        short): those of what has arrived, and those of the `most` bytes expected, which the
        client's Content-Length may say. A client that reads slowly or goes away does not slow
        the download."""
        sent = 0
        with reader:
            while True:
                with progress.cond:
                    moved = progress.cond.wait_for(
                        functools.partial(_moved_past, progress, most, sent), timeout=STALL_SECONDS
                    )
                    written, done, error = progress.written, progress.done, progress.error
                if not moved:  # the download thread is bounded by the upstream timeouts
                    raise UpstreamTimeout(f"the download of {describe_url(url)} stalled")
                if error is not None:
                    raise UpstreamError(f"download of {describe_url(url)} failed: {error}")
                limit = written if done else _unverified_limit(written, most)
                while sent < limit:
                    data = reader.read(min(CHUNK_SIZE, limit - sent))
                    if not data:
                        break
                    sent += len(data)
                    yield data
                if done:
                    break

    def ensure(
        self,
        dist: Distribution,
        entry: DistFile,
        view: PageView,
        read_from: ReadFrom | None = None,
    ) -> StoredFile:
        """The file, downloading it first if needed (for PEP 658 metadata, a guarded range)."""
        opened = self._open(dist, entry, view, read_from)
        if isinstance(opened, StoredFile):
            return opened
        with closing(opened):
            for _ in opened:
                pass
        if opened.stored is not None:
            try:
                opened.stored.result(timeout=self.wait_timeout)
            except TimeoutError:
                raise UpstreamTimeout(f"storing {describe_url(entry.url)} took too long") from None
        reader = seen_as(dist, entry, view)
        if opened.elsewhere:
            lock = self.locks.lock(fetch_key(reader or (), entry.url))
            self._take(lock, entry.url)
            lock.release()
        sha = self._known_sha(entry, reader, recent=False)
        if (stored := self._stored(sha, view.stale, read_from)) is None:
            raise UpstreamError(f"download of {describe_url(entry.url)} did not complete")
        return stored

    def _whole(self, dist: Distribution, entry: DistFile, view: PageView) -> bytes:
        """A listed file's bytes, verified, fetched into the cache if need be; a file being
        fetched does not wait for its storing (its bytes are checked before they come)."""
        opened = self._open(dist, entry, view, from_start)
        if isinstance(opened, StoredFile):
            with opened.file:
                return opened.file.read()
        with closing(opened):
            return b"".join(opened)

    def metadata(self, dist: Distribution, filename: str) -> tuple[bytes, bool]:
        """PEP 658 metadata of a listed file: the upstream's `.metadata` file when it has one
        (or, when that cannot be fetched, the same bytes from the wheel if it is cached), else
        the METADATA of the wheel (fetched into the cache if need be)."""
        entry, view = dist.find_file(filename)
        if entry.core_metadata:
            hashes = entry.core_metadata if isinstance(entry.core_metadata, Mapping) else {}
            url = entry.url + ".metadata" if entry.url else ""
            metadata_entry = DistFile(entry.filename + ".metadata", url, hashes)
            try:
                return self._whole(dist, metadata_entry, view), view.stale
            except UpstreamError:
                if (inside := self._cached_metadata(dist, entry, view, hashes)) is None:
                    raise
                return inside, view.stale
        if not filename.endswith(".whl"):
            raise NotFound(f"No metadata file for {filename!r}")
        wheel = self.ensure(dist, entry, view, None)  # read from a local copy
        wheel.file.close()
        try:
            return self._read_metadata(wheel.sha256, filename), view.stale
        except FileNotFoundError:  # evicted meanwhile
            raise UpstreamError(f"{filename!r} left the cache while being read") from None
        except InvalidDistribution as exc:
            raise NotFound(f"No metadata for {filename!r}: {exc}") from None

    def _read_metadata(self, sha256: str, filename: str) -> bytes:
        with self.store.local_path(sha256) as path:  # size-capped and link-refusing
            return read_metadata(path, filename).raw

    def _cached_metadata(
        self, dist: Distribution, entry: DistFile, view: PageView, hashes: Mapping[str, str]
    ) -> bytes | None:
        """The METADATA of a cached wheel (the upstream is failing, or sent something else: a
        wheel fetched earlier still answers), if it is the very file the page's metadata hash
        names; without that hash, the wheel's own METADATA is the metadata (PEP 658)."""
        if not entry.filename.endswith(".whl"):
            return None
        sha = self._known_sha(entry, seen_as(dist, entry, view))
        if (stored := self._stored(sha, view.stale)) is None:
            return None
        stored.file.close()
        try:
            raw = self._read_metadata(stored.sha256, entry.filename)
        except (OSError, InvalidDistribution):
            return None
        if "sha256" in hashes and hashlib.sha256(raw).hexdigest() != hashes["sha256"]:
            return None
        return raw

    def evict_if_needed(self) -> int:
        """Evict least recently used orphaned files while over the size limit (one worker at a
        time; the others skip). Open files stay readable, so a download in progress is safe.

        A file another worker recorded during a pass (it skipped: the lock was held) was not
        among that pass's victims, so the holder looks again once it has let the lock go;
        without that, the cache stayed over its limit until the next new file."""
        evicted, lock = 0, self.locks.named("evict")
        for _ in range(EVICTION_PASSES):
            if not self.ledger.over_limit():
                break
            with lock.if_free() as taken:
                if not taken:
                    break  # the holder looks again after its pass
                done, paused = self._evict_pass()
            evicted += done
            if paused:
                break
        if evicted:
            log.info("evicted %d cached files", evicted)
        return evicted

    def _evict_pass(self) -> tuple[int, bool]:
        """Files evicted down to the ledger's target, and whether the store stopped it.

        A storing holds its bytes' lock while it writes and records them in the ledger, then
        again while it adds their catalog entry (only if still recorded); an eviction while it
        removes the bytes, their entries and their record. A victim being stored right now (by
        any worker or node) is skipped, and so is one used or stored again since the pass chose
        its victims (a long pass on an object store would evict files in use)."""
        evicted = 0
        for victim in self.ledger.victims():
            remove = functools.partial(self.store.delete, victim.sha256)
            with stored_bytes(self.locks, victim.sha256).if_free() as taken:
                if not taken or self.ledger.used_at(victim.sha256) != victim.last_used:
                    continue  # being stored right now; or used since, or no longer cache
                try:
                    if self.events.evict(victim.sha256, remove):
                        evicted += 1
                        self.metrics.evictions.inc()  # counted as they go: a pass may be long
                    self.ledger.forget(victim.sha256)  # evicted, or promoted: no longer cache
                    self._readers.pop(victim.sha256, None)  # read again once fetched again
                except StorageUnavailable as exc:  # still there and tracked: evicted later
                    log.warning("eviction paused: %s", exc)
                    return evicted, True
        return evicted, False


def _check_size(received: int, listed: int | None, url: str) -> None:
    """A file no digest checks (allow_unhashed) must at least have the size its index lists:
    an upstream whose body ends early without a Content-Length would otherwise have a cut
    file kept, and served for good."""
    if listed is not None and received != listed:
        raise UpstreamError(
            f"upstream sent {received} bytes of {describe_url(url)}; its index lists {listed}"
        )


def _check_core_metadata(path: Path, size: int, filename: str, url: str) -> None:
    """PEP 658 metadata a page gives no hash for (PEP 714 allows it) is kept only when it reads
    as the core metadata of its file: a Metadata-Version, and the file's name and version.
    Anything else (an error page sent with a 200) is an UpstreamError: nothing is kept, and the
    next request asks the upstream again."""
    try:
        if size > MAX_METADATA_SIZE:
            raise InvalidDistribution(f"over {MAX_METADATA_SIZE} bytes")
        meta = parse_metadata(path.read_bytes())
        if meta.metadata_version is None:
            raise InvalidDistribution("no Metadata-Version field")
        check_filename_matches(meta, filename.removesuffix(".metadata"))
    except ValueError as exc:  # InvalidDistribution, or bytes parse_email cannot take
        raise UpstreamError(
            f"upstream sent {describe_url(url)}, which is not the core metadata of"
            f" {filename.removesuffix('.metadata')!r}: {exc}"
        ) from None


def _answer_for(error: Exception | None) -> Exception:
    """The error a request answers with for a download that failed with `error` (None: it was
    cut short, by the process stopping)."""
    if isinstance(error, HashMismatch):
        return UpstreamError(f"upstream sent a file that fails its hash check: {error}")
    if isinstance(error, UpstreamError | StorageFull | StorageUnavailable):
        return error
    return UpstreamError(str(error) if error is not None else "the download was cut short")


def _waited_too_long(url: str) -> UpstreamTimeout:
    return UpstreamTimeout(f"waited too long for a download of {describe_url(url)}")


def _grown_past(reader: BinaryIO, size: int, url: str) -> bool:
    """Wait until another process's temporary file holds more than `size` bytes (True) or its
    writer is done with it (False); UpstreamTimeout when it does not for STALL_SECONDS."""
    deadline = time.monotonic() + STALL_SECONDS
    while being_written(reader):
        if os.fstat(reader.fileno()).st_size > size:
            return True
        if time.monotonic() > deadline:
            raise UpstreamTimeout(f"no data from {describe_url(url)} for a while")
        time.sleep(TAIL_POLL_SECONDS)
    return False


def _written(reader: BinaryIO, url: str, size: int | None) -> Generator[bytes, None, None]:
    """The bytes of a temporary file another process writes, as they come, until there are
    `size` (when known: the reader checks them, and waits for no storing) or its writer is done
    with it (complete, or given up); UpstreamTimeout when it stalls for STALL_SECONDS."""
    moved, read = time.monotonic(), 0
    while size is None or read < size:
        writing = being_written(reader)  # before the read: if done, the read gets all there is
        wanted = CHUNK_SIZE if size is None else min(CHUNK_SIZE, size - read)
        if data := reader.read(wanted):
            read += len(data)
            moved = time.monotonic()
            yield data
        elif not writing:
            return
        elif time.monotonic() - moved > STALL_SECONDS:
            raise UpstreamTimeout(f"the download of {describe_url(url)} stalled")
        else:
            time.sleep(TAIL_POLL_SECONDS)


def _bytes_after(opened: StoredFile | StreamedFile, offset: int) -> Generator[bytes, None, None]:
    """A file's bytes past its first `offset`; it is closed after."""
    if isinstance(opened, StoredFile):
        with opened.file as file:
            file.seek(offset)
            while data := file.read(CHUNK_SIZE):
                yield data
        return
    with closing(opened):
        for data in opened:
            if offset < len(data):
                yield data[offset:]
            offset = max(0, offset - len(data))


def _unverified_limit(written: int, most: int) -> int:
    """How much of a download not verified yet may go out: all but the last HOLD_BACK bytes of
    what has arrived, and never the last HOLD_BACK of the most it may hold."""
    return min(written, most) - HOLD_BACK


def _moved_past(progress: _Progress, most: int, sent: int) -> bool:
    """The download ended, or has more than the held-back tail beyond what was sent."""
    return progress.done or _unverified_limit(progress.written, most) > sent
