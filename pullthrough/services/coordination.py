"""Coordination of several nodes through PostgreSQL: what one host does in its data folder
(storage.locks, storage.ledger, catalog.generation), shared by every node of a cluster.

- Locks are session advisory locks, each on a connection of its own: a node that dies loses its
  connection, and PostgreSQL releases its locks with it. Within a process, threads wanting one
  key queue on an in-process lock first (storage.locks.KeyedLocks), so only one of them holds or waits on a connection:
  120 requests waiting for one cold file hold one connection per process, not 120.
- The cache ledger is three tables (entries, URLs of unhashed files, readers of copies); a process records the use of a file at most once per
  `touch_interval`, and writes the uses it saw in batches, not one per request: within about
  `_FLUSH_SECONDS` of the first use of a batch, whether or not another use follows.
- The change signal is a row, polled at most every `poll_seconds` by each process.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import (
    URL,
    ColumnElement,
    Connection,
    Engine,
    Float,
    cast,
    create_engine,
    delete,
    event,
    func,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from pullthrough.catalog.db import Catalog, in_batches
from pullthrough.catalog.models import CacheEntry, CacheReaders, CacheUrl, CatalogGeneration
from pullthrough.services.ledger_rebuild import cache_entries
from pullthrough.storage.copies import set_aside
from pullthrough.storage.ledger import (
    CacheLedger,
    Entry,
    Readers,
    RecentUses,
    damaged_parts,
    evictions_in_order,
)
from pullthrough.storage.locks import KeyedLocks, Lock, LockTimeout

log = logging.getLogger(__name__)
_POLL_SECONDS = 0.05
_MAX_POLL_SECONDS = 0.5
_FLUSH_SECONDS = 1.0
LOCK_CONNECTIONS_KEPT = 2  # per process, between locks
VICTIMS_PAGE = 1000  # ledger entries an eviction pass reads in one query


def _key(kind: str, name: str) -> int:
    """A 64-bit advisory lock key (signed, as PostgreSQL's bigint)."""
    digest = hashlib.sha256(f"pullthrough:{kind}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class AdvisoryLock(Lock):
    """One advisory lock, held on a connection of its own while it is held; the process's
    other threads wanting it wait on its in-process gate, without a connection."""

    def __init__(self, engine: Engine, key: int, name: str, gates: KeyedLocks[int]) -> None:
        self.engine, self.key, self.name = engine, key, name
        self.gates = gates
        self._conn: Connection | None = None
        self._gate: threading.Lock | None = None

    def acquire(self, *, timeout: float, blocking: bool = True) -> bool:
        deadline = time.monotonic() + timeout
        gate = self.gates.enter(self.key)
        taken = False
        try:
            entered = gate.acquire(timeout=max(timeout, 0)) if blocking else gate.acquire(False)
            if not entered:
                if blocking:
                    raise LockTimeout(f"lock {self.name} held for over {timeout:.0f}s")
                return False
            try:
                taken = self._acquire(deadline, blocking=blocking, timeout=timeout)
            finally:
                if not taken:
                    gate.release()
            return taken
        finally:
            if taken:
                self._gate = gate
            else:
                self.gates.leave(self.key)

    def _acquire(self, deadline: float, *, blocking: bool, timeout: float) -> bool:
        """The advisory lock itself, this process's one taker of the key."""
        pause = _POLL_SECONDS
        conn = self.engine.connect()
        try:
            while True:
                try:
                    taken = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key})
                    conn.commit()
                except DBAPIError as exc:
                    if not (exc.connection_invalidated and blocking):
                        raise
                    # The session was ended (a pooler or failover restarting, an operator's
                    # pg_terminate_backend) while the catalog may answer again at once: wait on
                    # a new one. Unreachable, the connecting fails (a 503) as before.
                    log.warning("waiting for lock %s: the session ended, reconnecting", self.name)
                    conn.close()
                    if time.monotonic() >= deadline:
                        raise
                    conn = self.engine.connect()
                    continue
                if taken.scalar():
                    self._conn = conn
                    return True
                if not blocking:
                    conn.close()
                    return False
                if time.monotonic() >= deadline:
                    conn.close()
                    raise LockTimeout(f"lock {self.name} held for over {timeout:.0f}s")
                time.sleep(pause)
                pause = min(pause * 2, _MAX_POLL_SECONDS)  # a long download: ask less often
        except BaseException:
            if self._conn is None and not conn.closed:  # cut short: it may hold the lock,
                conn.invalidate()  # so it is ended, not pooled
                conn.close()
            raise

    def release(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
                conn.commit()
            except SQLAlchemyError as exc:  # the session is gone (a restart): so is the lock
                log.warning("releasing lock %s: %s", self.name, exc)
                conn.invalidate()  # ended, not pooled: should it be alive, it holds the lock
            finally:
                conn.close()
        if self._gate is not None:
            gate, self._gate = self._gate, None
            gate.release()
            self.gates.leave(self.key)


def _unlock_all(dbapi_connection: Any, record: Any) -> None:
    """A connection back in the pool holds no advisory lock, whatever let it go (a lock object
    dropped while held, as NullPool's closing used to release): else the lock stayed held
    for as long as the connection lived, and every other node waited on it."""
    if dbapi_connection is None:
        return
    try:
        cursor = dbapi_connection.cursor()
        cursor.execute("SELECT pg_advisory_unlock_all()")
        cursor.close()
        dbapi_connection.commit()
    except Exception as exc:  # a session that is gone holds nothing; one that answers no more
        log.warning("could not release a pooled connection's locks: %s", exc)
        record.invalidate(exc)  # is ended


class AdvisoryLocks:
    """Locks by key across every node (LockDir's interface)."""

    def __init__(self, url: URL) -> None:
        # Connections of their own, not the catalog's pool: a download holds one meanwhile
        # (as many as locks are held: no overflow limit). A few stay open for the next lock: a
        # new session per lock (about 30 ms) made a cleanup or an eviction, a lock per file,
        # take hours on a big catalog. A connection goes back to the pool only once its lock
        # is let go; one that may still hold it is ended instead.
        self.engine = create_engine(
            url, pool_size=LOCK_CONNECTIONS_KEPT, max_overflow=-1, pool_pre_ping=True
        )
        event.listen(self.engine, "checkin", _unlock_all)
        self.gates: KeyedLocks[int] = KeyedLocks()

    def lock(self, key: str) -> AdvisoryLock:
        return AdvisoryLock(self.engine, _key("key", key), key[:80], self.gates)

    def named(self, name: str) -> AdvisoryLock:
        return AdvisoryLock(self.engine, _key("named", name), name, self.gates)

    def close(self) -> None:
        self.engine.dispose()


class SharedLedger:
    """The cache ledger in PostgreSQL (CacheLedger's interface), one for every node."""

    def __init__(
        self,
        engine: Engine,
        *,
        max_size: int,
        clock: Callable[[], float] = time.time,
        touch_interval: float = 60.0,
    ) -> None:
        self.engine = engine
        self.max_size = max_size
        self.clock = clock
        self._recent = RecentUses(touch_interval, clock)
        self._pending: dict[str, float] = {}
        self._flushed = time.monotonic()
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None

    def close(self) -> None:
        with self._lock:
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        self.flush()

    def record(self, sha256: str, size: int) -> None:
        used = _catalog_seconds()
        statement = insert(CacheEntry).values(sha256=sha256, size=size, last_used=used)
        statement = statement.on_conflict_do_update(
            index_elements=[CacheEntry.sha256], set_={"last_used": used}
        )
        with self.engine.begin() as conn:
            conn.execute(statement)

    def record_untracked(self, sizes: Mapping[str, int]) -> set[str]:
        """Files now cached (`sizes`: sha256 -> size), but for those tracked already, in one
        statement per IN_BATCH (two round trips a file made thousands of them cost seconds).
        Returns the sha256s recorded here."""
        recorded: set[str] = set()
        shas = sorted(sizes)  # one order: no deadlocks between nodes
        for batch in in_batches(shas):
            rows = [{"sha256": s, "size": sizes[s], "last_used": _catalog_seconds()} for s in batch]
            statement = insert(CacheEntry).values(rows).on_conflict_do_nothing()
            with self.engine.begin() as conn:  # a batch's rows locked only until it is in
                recorded.update(conn.scalars(statement.returning(CacheEntry.sha256)))
        return recorded

    def touch(self, sha256: str) -> None:
        if not self._recent.first(sha256):
            return
        with self._lock:
            self._pending[sha256] = self.clock()
            due = time.monotonic() - self._flushed >= _FLUSH_SECONDS or len(self._pending) > 500
            if not due and self._timer is None:
                # No later use may come to write this batch: a timer does, within a second,
                # else another node could evict a file this one has just served. (The `later`
                # thread runs jobs at once, in order; a job sleeping there would hold up pages.)
                self._timer = threading.Timer(_FLUSH_SECONDS, self._flush_on_timer)
                self._timer.daemon = True
                self._timer.name = "pullthrough-ledger-flush"
                self._timer.start()
        if due:
            self.flush()

    def _flush_on_timer(self) -> None:
        with self._lock:
            self._timer = None
        try:
            self.flush()
        except SQLAlchemyError as exc:  # uses are best-effort, as a request's own flush
            log.warning("could not record the uses of cached files: %s", exc)

    def flush(self) -> None:
        """Write the uses seen since the last flush, in one transaction."""
        with self._lock:
            pending, self._pending = self._pending, {}
            self._flushed = time.monotonic()
        if not pending:
            return
        flushed = self.clock()
        with self.engine.begin() as conn:
            for sha256, seen in sorted(pending.items()):  # one order: no deadlocks between nodes
                used = _catalog_seconds(ago=max(0.0, flushed - seen))
                conn.execute(
                    update(CacheEntry)
                    .where(CacheEntry.sha256 == sha256, CacheEntry.last_used < used)
                    .values(last_used=used)
                )

    def forget(self, sha256: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(CacheEntry).where(CacheEntry.sha256 == sha256))
            conn.execute(delete(CacheReaders).where(CacheReaders.sha256 == sha256))

    def tracks(self, sha256: str) -> bool:
        return self.used_at(sha256) is not None

    def tracked(self, shas: Collection[str]) -> set[str]:
        """Those of `shas` tracked, asked IN_BATCH at a time."""
        found: set[str] = set()
        with self.engine.connect() as conn:
            for batch in in_batches(sorted(shas)):
                query = select(CacheEntry.sha256).where(CacheEntry.sha256.in_(batch))
                found.update(conn.scalars(query))
        return found

    def used_at(self, sha256: str) -> float | None:
        with self.engine.connect() as conn:
            query = select(CacheEntry.last_used).where(CacheEntry.sha256 == sha256)
            used = conn.execute(query).scalar()
            return None if used is None else float(used)

    def total(self) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(select(func.coalesce(func.sum(CacheEntry.size), 0))).scalar() or 0
            )

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(CacheEntry)).scalar() or 0)

    def entries(self) -> Iterable[Entry]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(CacheEntry.sha256, CacheEntry.size, CacheEntry.last_used))
            return [Entry(sha, int(size), float(used)) for sha, size, used in rows]

    def over_limit(self) -> bool:
        return self.total() > self.max_size

    def victims(self) -> Iterator[Entry]:
        """Read a page at a time, least recently used first, as the pass goes (a pass read
        every entry: 100,000 rows for 100,000 cached files, of which it evicts a tenth)."""
        self.flush()  # this node's recent uses count
        target = int(self.max_size * 0.9)
        if (total := self.total()) > self.max_size:
            yield from evictions_in_order(self._least_recently_used(), total, target)

    def _least_recently_used(self) -> Iterator[Entry]:
        """Every entry, least recently used first (ties by sha256), VICTIMS_PAGE at a time:
        each page a query of its own, after the last one read (keyset pagination)."""
        order = (CacheEntry.last_used, CacheEntry.sha256)
        query = select(CacheEntry.sha256, CacheEntry.size, CacheEntry.last_used)
        query = query.order_by(*order).limit(VICTIMS_PAGE)
        after: ColumnElement[bool] | None = None
        while True:
            with self.engine.connect() as conn:
                page = conn.execute(query if after is None else query.where(after)).all()
            yield from (Entry(sha, int(size), float(used)) for sha, size, used in page)
            if len(page) < VICTIMS_PAGE:
                return
            after = tuple_(*order) > tuple_(page[-1][2], page[-1][0])

    def remember_url(self, url: str, sha256: str) -> None:
        key = hashlib.sha256(url.encode()).hexdigest()
        statement = insert(CacheUrl).values(url_sha256=key, url=url, sha256=sha256)
        statement = statement.on_conflict_do_update(
            index_elements=[CacheUrl.url_sha256], set_={"sha256": sha256}
        )
        with self.engine.begin() as conn:
            conn.execute(statement)

    def sha_for_url(self, url: str) -> str | None:
        key = hashlib.sha256(url.encode()).hexdigest()
        with self.engine.connect() as conn:
            found = conn.execute(select(CacheUrl.sha256).where(CacheUrl.url_sha256 == key))
            return found.scalar()

    def readers(self, sha256: str) -> Readers:
        with self.engine.connect() as conn:
            query = select(CacheReaders.readers).where(CacheReaders.sha256 == sha256)
            found = conn.execute(query).scalar()
        return None if found is None else frozenset(found.split())

    def set_readers(self, sha256: str, readers: Readers) -> None:
        with self.engine.begin() as conn:
            if readers is None:
                conn.execute(delete(CacheReaders).where(CacheReaders.sha256 == sha256))
                return
            text = " ".join(sorted(readers))
            statement = insert(CacheReaders).values(sha256=sha256, readers=text)
            conn.execute(
                statement.on_conflict_do_update(
                    index_elements=[CacheReaders.sha256], set_={"readers": text}
                )
            )


def _catalog_seconds(*, ago: float = 0.0) -> ColumnElement[float]:
    """The database's clock (epoch seconds), `ago` seconds back: uses are compared across
    nodes, so they are timed by one clock. A node's own clock only measures how long ago a
    use it holds for its next flush was (a difference, true whatever that clock's offset);
    last uses by each node's clock made a node running behind have its files evicted first,
    its uses not even written over older ones, and one running ahead keep its files."""
    return cast(func.extract("epoch", func.now()), Float) - ago


def adopt_local_ledger(engine: Engine, directory: Path) -> int:
    """Enter in the shared ledger the files a release before it tracked in the data folder's
    own (`directory`, a CacheLedger): without that, the files cached before the upgrade were
    never evicted nor counted against the limit. The folder is renamed once read, so this
    happens once; an entry the shared ledger has already stays as it is. A damaged folder is
    set aside instead, and its entries rebuilt from the catalog (services.ledger_rebuild).
    Returns how many files were adopted."""
    if not (directory / "files").is_dir():
        return 0
    if damaged := damaged_parts(directory):
        aside = set_aside(directory)
        log.warning(
            "the cache ledger kept in the data folder before the shared one is damaged (%s):"
            " set aside as %s (kept, not read again); its entries are rebuilt from the catalog",
            ", ".join(damaged),
            aside,
        )
        rebuilt = cache_entries(Catalog(engine))
        unknown = dict.fromkeys((e.sha256 for e in rebuilt), frozenset[str]())  # lost readers
        return _adopt(engine, rebuilt, {}, unknown)
    local = CacheLedger(directory, max_size=0)
    try:
        urls, limited = dict(local.remembered_urls()), dict(local.limited_copies())
        adopted = _adopt(engine, list(local.entries()), urls, limited)
    finally:
        local.close()
    directory.rename(directory.with_name(directory.name + ".adopted"))
    return adopted


def _adopt(
    engine: Engine,
    found: list[Entry],
    urls_found: dict[str, str],
    limited: dict[str, frozenset[str]],
) -> int:
    """Enter entries, URLs and the readers of copies not anyone's in the shared ledger,
    leaving those it has as they are."""
    entries = [{"sha256": e.sha256, "size": e.size, "last_used": e.last_used} for e in found]
    urls = [
        {"url_sha256": hashlib.sha256(url.encode()).hexdigest(), "url": url, "sha256": sha}
        for url, sha in urls_found.items()
    ]
    readers = [{"sha256": sha, "readers": " ".join(sorted(r))} for sha, r in limited.items()]
    with engine.begin() as conn:
        for table, rows in ((CacheEntry, entries), (CacheUrl, urls), (CacheReaders, readers)):
            # executemany, in batches: one statement of all the rows would pass PostgreSQL's
            # 65,535 parameters from about 21,000 files
            if rows:
                conn.execute(insert(table).on_conflict_do_nothing(), rows)
    return len(entries)


CHANGE_POLL_SECONDS = 0.5  # every process sees a catalog change within this


class SharedGeneration:
    """The catalog change signal as a row (Generation's interface): a change on one node is
    seen by every node within `poll_seconds`."""

    def __init__(self, engine: Engine, poll_seconds: float = CHANGE_POLL_SECONDS) -> None:
        self.engine = engine
        self.poll_seconds = poll_seconds
        self._token = b""
        self._read_at = -float("inf")
        self._lock = threading.Lock()
        with engine.begin() as conn:  # the row exists from the start (the migration makes none)
            row = insert(CatalogGeneration).values(id=1, token=uuid.uuid4().hex)
            conn.execute(row.on_conflict_do_nothing(index_elements=[CatalogGeneration.id]))

    def read(self) -> bytes:
        now = time.monotonic()
        if now - self._read_at < self.poll_seconds:
            return self._token
        with self._lock:
            if now - self._read_at >= self.poll_seconds:
                try:
                    with self.engine.connect() as conn:
                        query = select(CatalogGeneration.token).where(CatalogGeneration.id == 1)
                        self._token = (conn.execute(query).scalar() or "").encode()
                except SQLAlchemyError as exc:  # the catalog is away: go on as we are, ask later
                    log.warning("could not read the catalog's change signal: %s", exc)
                self._read_at = time.monotonic()
        return self._token

    def bump(self) -> None:
        token = uuid.uuid4().hex
        statement = insert(CatalogGeneration).values(id=1, token=token)
        statement = statement.on_conflict_do_update(
            index_elements=[CatalogGeneration.id], set_={"token": token}
        )
        with self.engine.begin() as conn:
            conn.execute(statement)
        with self._lock:
            self._read_at = -float("inf")  # this process sees its own change at once

    def close(self) -> None:
        pass
