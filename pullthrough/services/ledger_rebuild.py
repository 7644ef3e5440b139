"""A damaged cache ledger of one host (`data_dir/ledger`, diskcache) at start-up: set aside
(renamed, never deleted: an operator may want it) and rebuilt from the catalog, so the server
starts and its cache stays within its size limit.

What a rebuild restores: an entry (size, and as last use the time it was cached) for every
pull-through copy the catalog records (a package of origin "cache") whose bytes nothing else
records - no repository version, artifact, upload chunk or other package. What it cannot: the
real last uses; the files a URL of an index without hashes was stored as (such a file is
downloaded once more, then known again); which remotes a copy fetched with credentials is for
(each copy is then no remote's until one downloads it once more); and bytes the ledger alone recorded (a cached file
the catalog has no entry for, a sync's PEP 658 metadata not recorded yet): they stay in the
store, never evicted, as files nothing records."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import select

from pullthrough.catalog.db import Catalog
from pullthrough.catalog.models import Artifact, Package, UploadChunk
from pullthrough.catalog.versions import in_a_repository
from pullthrough.core.times import utc
from pullthrough.storage.copies import RESET_WAIT_SECONDS, set_aside
from pullthrough.storage.ledger import (
    CacheLedger,
    Copy,
    Entry,
    damaged_parts,
    rebuilt_entries,
)
from pullthrough.storage.locks import LockDir

log = logging.getLogger(__name__)
REBUILDING = "rebuilding"  # a mark in the ledger's folder while its entries are rebuilt
UNKNOWN_READERS = "unknown-readers"  # a mark while every copy is made no remote's
# A lock of the data folder: taken shared by every process that has the ledger open (a server's
# workers, `pullthrough worker`), exclusively to set a damaged database of it aside
IN_USE = "ledger_in_use"
CACHE_PAGE = 2000  # sha256s of copies read at a time
LOST = {
    "files": "its entries are rebuilt from the catalog",
    "urls": "files of indexes without hashes are downloaded once more",
    "readers": "each cached file is downloaded once more before a remote is served it",
}


class LedgerInUse(Exception):
    """The ledger is damaged, and other processes have it open: set aside under them, it would
    go on being written where no process reads it, the cache's size losing count of it."""

    def __init__(self, directory: Path, damaged: list[str]) -> None:
        super().__init__(
            f"the cache ledger's database in {directory} is damaged ({', '.join(damaged)}),"
            " and other processes of this data folder have it open (a running server's"
            " workers, `pullthrough worker`): a server's start sets it aside and rebuilds it"
            " while no other process has it open"
        )


def open_local_ledger(directory: Path, locks: LockDir, *, max_size: int) -> CacheLedger:
    """The ledger in `directory`, held in use (IN_USE) until it is closed: no other process
    sets it aside meanwhile (repair_local_ledger)."""
    in_use = locks.named(IN_USE, shared=True)
    in_use.acquire(timeout=RESET_WAIT_SECONDS)  # one being set aside: once it is
    try:
        return CacheLedger(directory, max_size=max_size, in_use=in_use)
    except BaseException:
        in_use.release()
        raise


def repair_local_ledger(catalog: Catalog, directory: Path, locks: LockDir) -> None:
    """Set aside a damaged database of the cache ledger in `directory` and rebuild its entries
    from the catalog, one process at a time (the others wait, then find it sound). Part of the
    one-time setup, before gunicorn starts its workers: a rebuild of many files may take longer
    than a worker may stay silent. A rebuild cut short (a killed process) is taken up again at
    the next start: the `rebuilding` mark goes only once it is complete."""
    mark, unknown = directory / REBUILDING, directory / UNKNOWN_READERS
    if not mark.exists() and not unknown.exists() and not damaged_parts(directory):
        return
    with locks.named("reset_ledger").held(RESET_WAIT_SECONDS):
        damaged = damaged_parts(directory)  # none if another process rebuilt it meanwhile
        with locks.named(IN_USE).if_free() as unused:
            if damaged and not unused:
                raise LedgerInUse(directory, damaged)
            if "files" in damaged:
                mark.touch()  # first: a process killed once the file is aside still rebuilds
            if "readers" in damaged:
                unknown.touch()  # no copy is anyone's until it is, even after a kill
            for part in damaged:
                aside = set_aside(directory / part)
                log.warning(
                    "the cache ledger's database %s is damaged: set aside as %s (kept, not"
                    " read again); %s",
                    directory / part,
                    aside,
                    LOST[part],
                )
        if not mark.exists() and not unknown.exists():
            return
        ledger = CacheLedger(directory, max_size=0)
        try:
            if mark.exists():
                entries = cache_entries(catalog)
                ledger.restore(entries)
                mark.unlink()
                log.warning(
                    "the cache ledger was rebuilt from the catalog: %d cached files, %d bytes",
                    len(entries),
                    sum(e.size for e in entries),
                )
            if unknown.exists():
                for entry in list(ledger.entries()):
                    ledger.set_readers(entry.sha256, frozenset())
                unknown.unlink()
        finally:
            ledger.close()


def cache_entries(catalog: Catalog) -> list[Entry]:
    """The ledger's entries the catalog implies (cache_entry_pages), all of them."""
    return [entry for page in cache_entry_pages(catalog) for entry in page]


def cache_entry_pages(catalog: Catalog) -> Iterator[list[Entry]]:
    """The ledger's entries the catalog implies: its pull-through copies in no repository
    version, but for bytes something else records (rebuilt_entries); in pages of about
    CACHE_PAGE, in the order of their sha256s, read as they are wanted (every orphan cleanup
    reads them: orphans.return_to_cache; a list of them all took some 40 MB for 100,000
    copies). Each question is asked of the whole catalog at once: in batches of bytes, each
    batch read the packages table again (quadratic: 8 s for 100,000 copies on SQLite, minutes
    for a million; and pages of copies asked about one after another, 3x slower on
    PostgreSQL). The bytes held are few: those of copies that something else records too."""
    copy = (Package.origin == "cache") & ~in_a_repository()
    with catalog.reading() as session:
        copied = select(Package.sha256).where(copy)
        held: set[str] = set()
        for query in (
            # another package of these bytes that is not a copy, or that is in a repository (two
            # questions: an OR of them is asked again of every package, not joined)
            select(Package.sha256).where(Package.sha256.in_(copied), Package.origin != "cache"),
            select(Package.sha256).where(Package.sha256.in_(copied), in_a_repository()),
            # any package's PEP 658 metadata (eviction keeps those bytes too)
            select(Package.metadata_sha256).where(Package.metadata_sha256.in_(copied)),
            select(Artifact.sha256).where(Artifact.sha256.in_(copied)),
            select(UploadChunk.sha256).where(UploadChunk.sha256.in_(copied)),
        ):
            held.update(s for s in session.scalars(query) if s is not None)
        rows = session.execute(
            select(Package.sha256, Package.size, Package.pulp_created)
            .where(copy)
            .order_by(Package.sha256),
            execution_options={"yield_per": CACHE_PAGE},  # a server-side cursor (PostgreSQL)
        )
        waiting: list[Copy] = []  # the copies of the last sha256 read: more may follow
        for part in rows.partitions():
            waiting += [Copy(sha, size, utc(created).timestamp()) for sha, size, created in part]
            last = waiting[-1].sha256
            yield rebuilt_entries((c for c in waiting if c.sha256 != last), held)
            waiting = [c for c in waiting if c.sha256 == last]
        yield rebuilt_entries(waiting, held)
