"""Orphan cleanup: packages in no repository version, older than a protection time, then the
artifacts no package uses, and their files; then the (chunked) uploads older than that time,
and their chunks. Content a distribution can reach is in some repository version, so it is
never touched; pull-through cache files are left to the cache's own LRU limit - those a
repository held and let go again included, which the cleanup hands back to it."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, suppress
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, exists, or_, select
from sqlalchemy.orm import Session

from pullthrough.catalog.db import IN_BATCH, Catalog, in_batches
from pullthrough.catalog.kept import KEEPERS, add_artifact, keeping, kept
from pullthrough.catalog.models import Artifact, Package, RepositoryContent, Upload
from pullthrough.catalog.versions import in_a_repository, is_in_any_repository
from pullthrough.services.ledger_rebuild import cache_entry_pages
from pullthrough.services.tasks import TaskContext, catalog_time
from pullthrough.storage.ledger import Ledger
from pullthrough.storage.locks import STORED_WAIT_SECONDS, Locks, LockTimeout, stored_bytes
from pullthrough.storage.store import BlobStore, StorageUnavailable

if TYPE_CHECKING:
    from pullthrough.services.container import Services

log = logging.getLogger(__name__)
DEFAULT_PROTECTION_MINUTES = 1440  # as Pulp's ORPHAN_PROTECTION_TIME
_UNSYNCHRONIZED = {"synchronize_session": False}  # the rows deleted are not used again


def orphan_cleanup(ctx: TaskContext) -> None:
    """The task: args `orphan_protection_time` (minutes), `content_ids` (None: all)."""
    minutes = ctx.args.get("orphan_protection_time")
    minutes = DEFAULT_PROTECTION_MINUTES if minutes is None else int(minutes)
    svc = ctx.services
    # By the catalog's clock (PostgreSQL's), not this node's: one running ahead took a file
    # uploaded through another node a moment ago for one past the protection time
    cutoff = catalog_time(svc.catalog, svc.clock) - timedelta(minutes=minutes)
    orphan = (~in_a_repository(), Package.origin != "cache", Package.pulp_created <= cutoff)
    if ids := ctx.args.get("content_ids"):
        wanted = sorted(set(ids))
    else:
        with svc.catalog.reading() as session:
            wanted = list(session.scalars(select(Package.id).where(*orphan).order_by(Package.id)))
    files: set[str] = set()  # the bytes the rows deleted recorded
    ours: set[str] = set()  # those of them the cache's ledger holds for this cleanup alone
    orphans = 0
    # A transaction a batch: on SQLite the catalog's write lock is held a batch's time, not
    # the cleanup's (5 s for 70,000 orphans, while every upload and cached file waited)
    for batch in in_batches(wanted):
        with svc.catalog.session() as session:
            # Locked (PostgreSQL; SQLite's write lock is held already), then looked at again:
            # a repository change that took one in before the lock committed first, and is
            # seen now; one after it waits for this transaction, and finds the package gone
            query = select(Package).where(Package.id.in_(batch), *orphan).with_for_update()
            found = list(session.scalars(query.order_by(Package.id)))
            held = select(RepositoryContent.package_id).where(
                RepositoryContent.package_id.in_([p.id for p in found])
            )
            taken = set(session.scalars(held))
            deleted = [p for p in found if p.id not in taken]
            session.execute(
                delete(Package).where(Package.id.in_([p.id for p in deleted])),
                execution_options=_UNSYNCHRONIZED,
            )
            sizes = {p.sha256: p.size for p in deleted}
            metadata = {p.metadata_sha256 for p in deleted if p.metadata_sha256} - sizes.keys()
            sizes |= _artifact_sizes(session, metadata)
            sizes |= {sha: _stored_size(svc.store, sha) for sha in metadata - sizes.keys()}
            ours |= _cached_till_removed(svc.ledger, sizes)
            files |= sizes.keys()
            orphans += len(deleted)
    # Then, as Pulp, the artifacts no content uses (any more), past the protection time: a
    # sync's of a package's PEP 658 metadata too. NOT EXISTS, not NOT IN: see in_a_repository
    unused = (
        ~exists().where(Package.sha256 == Artifact.sha256),
        ~exists().where(Package.metadata_sha256 == Artifact.sha256),
        Artifact.pulp_created <= cutoff,
    )
    with svc.catalog.reading() as session:
        unused_ids = list(session.scalars(select(Artifact.id).where(*unused).order_by(Artifact.id)))
    artifacts = 0
    for batch in in_batches(unused_ids):
        with svc.catalog.session() as session:
            locked = select(Artifact).where(Artifact.id.in_(batch), *unused).with_for_update()
            found_artifacts = list(session.scalars(locked.order_by(Artifact.id)))
            session.execute(
                delete(Artifact).where(Artifact.id.in_([a.id for a in found_artifacts])),
                execution_options=_UNSYNCHRONIZED,
            )
            sizes = {a.sha256: a.size for a in found_artifacts}
            ours |= _cached_till_removed(svc.ledger, sizes)
            files |= sizes.keys()
            artifacts += len(found_artifacts)
    removed = 0
    for sha in files:
        try:
            with stored_bytes(svc.locks, sha).held(STORED_WAIT_SECONDS):
                if sha in ours:  # the cache held them for this cleanup alone
                    svc.ledger.forget(sha)
                if not recorded(svc.catalog, svc.ledger, sha) and not _written_since(
                    svc, sha, cutoff.timestamp()
                ):
                    removed += svc.store.delete(sha) > 0
        except LockTimeout:  # being written again, long: whoever writes it records it
            log.warning("orphan cleanup left %s: its bytes are being written", sha)
    ctx.completed("clean-up.content", "Clean up orphan Content", orphans)
    ctx.completed("clean-up.artifacts", "Clean up orphan Artifacts", removed)
    if not ctx.args.get("content_ids"):  # and uploads left unfinished past the protection time
        with svc.catalog.reading() as session:
            stale = session.scalars(select(Upload.id).where(Upload.pulp_created <= cutoff)).all()
        for upload_id in stale:
            svc.chunked_uploads.discard(upload_id)
        ctx.completed("clean-up.uploads", "Clean up uploads", len(stale))
        returned = return_to_cache(svc.catalog, svc.ledger, svc.locks)
        ctx.completed("clean-up.cache", "Return pull-through copies to the cache", returned)
        aborted = abort_abandoned_writes(svc.store, svc.locks)
        ctx.completed("clean-up.unfinished", "Abort unfinished writes to the store", aborted)
        gone = remove_unrecorded(svc, cutoff.timestamp())
        ctx.completed("clean-up.unrecorded", "Remove stored files nothing records", gone)
    if artifacts:
        log.info("orphan cleanup removed %d artifacts", artifacts)


def _cached_till_removed(ledger: Ledger, sizes: Mapping[str, int]) -> set[str]:
    """Record in the cache ledger, before the catalog's deletion is committed, the bytes that
    deletion leaves recorded by nothing and the cleanup removes after it: a process killed in
    between leaves them to eviction, not in the store for good. Should the deletion not be
    committed, eviction spares bytes a package or an artifact records (and forgets them).
    Returns the sha256s recorded here. In batches: on SQLite the catalog's write lock is held
    meanwhile, and a ledger transaction per file held it 35 s for 70,000 orphans."""
    return ledger.record_untracked(sizes)


def _artifact_sizes(session: Session, shas: Collection[str]) -> dict[str, int]:
    """The sizes the artifacts of `shas` give (a sync's PEP 658 metadata has one)."""
    found: dict[str, int] = {}
    for batch in in_batches(sorted(shas)):
        query = select(Artifact.sha256, Artifact.size).where(Artifact.sha256.in_(batch))
        found.update((sha, size) for sha, size in session.execute(query))
    return found


def _stored_size(store: BlobStore, sha256: str) -> int:
    """The size of stored bytes no row being deleted gives one for (an uploaded package's
    PEP 658 metadata, which has no artifact): recorded as 0, the cache's size left them out.
    0 for bytes not stored, or a store that cannot say now (they then count for nothing, as
    before)."""
    try:
        opened = store.open(sha256)
    except (OSError, StorageUnavailable) as exc:
        log.warning("orphan cleanup could not read the size of %s: %s", sha256, exc)
        return 0
    if opened is None:
        return 0
    opened.file.close()
    return opened.size


def recorded(catalog: Catalog, ledger: Ledger, sha256: str) -> bool:
    """Whether a package (its file or its metadata), an artifact, an upload's chunk or the
    cache ledger records these bytes - another package of the same bytes, or an upload, an
    artifact, a chunk or a download
    of them since the orphans were deleted: checked under the bytes' lock, which those hold
    until they record them."""
    if ledger.tracks(sha256):  # a pull-through cache file
        return True
    with catalog.reading() as session:
        uses = or_(Package.sha256 == sha256, Package.metadata_sha256 == sha256)
        return bool(session.scalar(select(or_(exists().where(uses), keeping(sha256)))))


def recorded_in_catalog(catalog: Catalog, shas: Sequence[str]) -> set[str]:
    """Those of `shas` (at most IN_BATCH) a package (its file or its metadata), an artifact or
    an upload's chunk records: one question per column, for a batch of files at once."""
    found: set[str] = set()
    with catalog.reading() as session:
        for column in (Package.sha256, Package.metadata_sha256, *KEEPERS):
            found.update(session.scalars(select(column).where(column.in_(shas))))
    return found


def drop_unrecorded(
    catalog: Catalog, ledger: Ledger, locks: Locks, store: BlobStore, sha256: str
) -> None:
    """Remove bytes whose only record just went (an evicted package's PEP 658 metadata) unless
    something records them, checked under their lock - if it is free at once: its holder is
    storing the same bytes (and records them), or removing them (a caller holding another
    lock of bytes does not wait for one)."""
    with stored_bytes(locks, sha256).if_free() as taken:
        if taken and not recorded(catalog, ledger, sha256):
            store.delete(sha256)


def release(catalog: Catalog, ledger: Ledger, store: BlobStore, sha256: str, size: int) -> None:
    """Bytes a keeper (an artifact, an upload's chunk) no longer keeps, under their lock: if a
    pull-through copy alone records them (cache content in no repository) they are the cache's
    again - its size limit evicts them in their turn, where nothing else would ever remove
    them (an eviction kept them for their keeper, and forgot them); if nothing records them,
    they are removed."""
    with catalog.reading() as session:
        origins = set(session.scalars(select(Package.origin).where(Package.sha256 == sha256)))
        cache_only = (
            origins == {"cache"}
            and not is_in_any_repository(session, sha256)
            and not kept(session, sha256)
        )
    if cache_only:
        if not ledger.tracks(sha256):
            ledger.record(sha256, size)
    elif not recorded(catalog, ledger, sha256):
        store.delete(sha256)


def return_to_cache(catalog: Catalog, ledger: Ledger, locks: Locks) -> int:
    """Hand back to the cache's ledger the pull-through copies that nothing but their own
    packages records and that it does not track: a copy a `modify` took into a repository left
    the ledger (a repository's file is never evicted); once no version holds it any more (a
    version or the repository deleted), nothing removed it - orphan cleanup skips the cache's
    content, and eviction knows only what the ledger tracks. Recorded as used now, they are
    evicted in their turn. Bytes being stored or evicted right now (their lock busy) are left
    to the next cleanup; one that a repository takes in again meanwhile is kept by eviction,
    which checks under that lock. Returns how many were handed back."""
    returned = 0
    for page in cache_entry_pages(catalog):
        tracked = ledger.tracked([e.sha256 for e in page])
        for entry in page:
            if entry.sha256 in tracked:
                continue
            with stored_bytes(locks, entry.sha256).if_free() as taken:
                if taken and not ledger.tracks(entry.sha256) and _a_copy(catalog, entry.sha256):
                    ledger.record(entry.sha256, entry.size)
                    returned += 1
    if returned:
        log.info("orphan cleanup handed %d pull-through copies back to the cache", returned)
    return returned


def _a_copy(catalog: Catalog, sha256: str) -> bool:
    """Whether a pull-through copy in no repository still records these bytes: asked under
    their lock, once the ledger was found not to track them - an eviction that removed them
    after their page was read has let go of their lock (and of the copy) by then."""
    with catalog.reading() as session:
        copy = (Package.sha256 == sha256) & (Package.origin == "cache") & ~in_a_repository()
        return bool(session.scalar(select(exists().where(copy))))


def remove_unrecorded(svc: Services, cutoff: float) -> int:
    """Remove the files in the store that nothing records - no package (its file or its
    metadata), artifact, upload chunk, nor the cache's ledger - written before `cutoff` (epoch
    seconds: the protection time's). Every writer records its bytes before they are visible
    (in the ledger until the catalog has them: storing, PullThrough._keep), but a release
    before this one stored a pull-through copy first and recorded it after: a process killed
    in between left a file no eviction or cleanup would ever count or remove. Each is checked
    again under its lock, as the cleanup's own removals are; one whose lock is busy is being
    written or removed right now. The stored files are asked about IN_BATCH at a time (a set
    of every sha256 recorded took some 150 MB for 400,000 packages). Returns how many were
    removed."""
    removed = 0
    old = (sha for sha, written in svc.store.files() if written <= cutoff)
    while batch := list(itertools.islice(old, IN_BATCH)):
        known = svc.ledger.tracked(batch) | recorded_in_catalog(svc.catalog, batch)
        for sha in batch:
            if sha in known:
                continue
            with stored_bytes(svc.locks, sha).if_free() as taken:
                if (
                    taken
                    and not recorded(svc.catalog, svc.ledger, sha)
                    and not _written_since(svc, sha, cutoff)
                ):
                    removed += svc.store.delete(sha) > 0
    if removed:
        log.warning("orphan cleanup removed %d stored files nothing recorded", removed)
    return removed


def abort_abandoned_writes(store: BlobStore, locks: Locks) -> int:
    """Abort the writes to the store that killed processes began and never finished (an object
    store's multipart uploads, whose parts it keeps, listed nowhere, until then): those whose
    bytes' lock is free. Whoever writes bytes holds their lock from before the write begins
    until it ends (stored_bytes), and a dead process's locks go with it: a write listed before
    its lock was found free has no writer left - whatever the clocks of the nodes and the
    object store say, a live upload on another node is never taken for an old one. Returns
    how many were aborted; a store that fails is logged, and looked at again next time."""
    aborted = 0
    try:
        unfinished = store.unfinished()
    except StorageUnavailable as exc:  # (or a key without s3:ListBucketMultipartUploads)
        log.warning("could not look for unfinished writes to the store: %s", exc)
        return 0
    for write in unfinished:
        with stored_bytes(locks, write.sha256).if_free() as taken:
            if not taken:
                continue  # being written right now
            try:
                store.abort(write)
            except StorageUnavailable as exc:  # (or a key without s3:AbortMultipartUpload)
                log.warning("could not abort an unfinished write of %s: %s", write.sha256, exc)
                return aborted
            aborted += 1
    if aborted:
        log.warning("aborted %d unfinished writes to the store left by killed processes", aborted)
    return aborted


@contextmanager
def storing(
    catalog: Catalog, ledger: Ledger, locks: Locks, store: BlobStore, sizes: Mapping[str, int]
) -> Iterator[None]:
    """Around storing bytes and recording them in the catalog (`sizes`: sha256 -> size): their
    locks, taken in one order (no deadlock between two writers), held until the record is
    committed - a remover of the same bytes meanwhile waits, then finds them recorded.

    Bytes nothing records yet are the cache's from before they are visible until then: a
    record that fails, or a process killed in between, leaves them to eviction rather than to
    no one (eviction keeps bytes a package, an artifact or a chunk records, should the record
    have been committed after all). Those entries go once the block ends: at once for bytes
    never stored, and once recorded for the others."""
    with ExitStack() as held:
        for sha in sorted(sizes):
            held.enter_context(stored_bytes(locks, sha).held(STORED_WAIT_SECONDS))
        ours = [sha for sha in sizes if not recorded(catalog, ledger, sha)]
        for sha in ours:
            ledger.record(sha, sizes[sha])
        try:
            yield
        except BaseException:
            for sha in ours:
                with suppress(Exception):  # a store that cannot say: the entry stays
                    if not store.has(sha):
                        ledger.forget(sha)
            raise
        for sha in ours:
            ledger.forget(sha)


@contextmanager
def stored_as_artifact(
    catalog: Catalog,
    ledger: Ledger,
    locks: Locks,
    store: BlobStore,
    size: int,
    digests: Mapping[str, str],
    made: set[str] | None = None,
) -> Iterator[None]:
    """Around storing bytes a sync or an import records at its end: under their lock, and the
    cache's until then (storing), then an artifact of them unless there is one (its sha256
    added to `made` when made here), as Pulp's sync makes one of every file it downloads. An
    artifact's bytes are never evicted - a sync or an import bigger than the cache's free room
    evicts none of the cache's files, nor its own, for files that stop counting once recorded -
    and orphan cleanup removes the artifacts no content uses past its protection time, with
    their bytes: what a run that failed, or was killed before its end, stored is not in the
    store for good."""
    with storing(catalog, ledger, locks, store, {digests["sha256"]: size}):
        yield
        with catalog.session() as session:
            if add_artifact(session, size, digests) and made is not None:
                made.add(digests["sha256"])


def _written_since(svc: Services, sha256: str, cutoff: float) -> bool:
    """Whether the bytes were written again within the protection time, as Pulp protects new
    artifacts too: a sync or an import stores its files, then records them all at its end, so
    they stay while it runs (with no protection time, as in Pulp, they do not)."""
    written = svc.store.written_at(sha256)
    return written is not None and written > cutoff
