"""Sync: fill a repository from a remote, as Pulp's python plugin does.

Project pages are revalidated with conditional requests (an unchanged page costs one request and
no parsing); the remote's filters and keep_latest_packages decide the files; `immediate`
downloads them all (download_concurrency at a time, hash-checked), `on_demand` and `streamed`
record where to fetch them. Everything is decided before the catalog is touched, and the new
version is written in one transaction: a failed sync leaves no partial version.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from packaging.utils import canonicalize_name
from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from pullthrough.catalog.db import Catalog, in_batches
from pullthrough.catalog.models import Package, Remote, Repository, RepositoryContent, new_id
from pullthrough.catalog.repository_blocklist import entries
from pullthrough.catalog.versions import new_version, present_in, version_packages
from pullthrough.config import IMMEDIATE, RemoteSettings
from pullthrough.core.digests import COMPUTED
from pullthrough.core.filenames import InvalidFilename, parse_filename, python_version
from pullthrough.core.filters import FilterSpec
from pullthrough.core.metadata import InvalidDistribution
from pullthrough.core.models import QUARANTINED, DistFile, ProjectPage, file_versions
from pullthrough.core.policy import AUDIT, screen
from pullthrough.core.repository_blocklist import PackagesBlocked, blocked
from pullthrough.services.orphans import stored_as_artifact
from pullthrough.services.packages import apply_index_fields, package_from_file
from pullthrough.services.remote_pages import (
    READER,
    Cached,
    copy_key,
    keep_copy,
    kept_copy,
    parse_list,
    parse_page,
    validators,
)
from pullthrough.services.repair import restore_missing
from pullthrough.services.tasks import Ref, TaskContext
from pullthrough.storage.ledger import Ledger, may_read
from pullthrough.storage.locks import STORED_WAIT_SECONDS, Locks, stored_bytes
from pullthrough.storage.store import BlobStore, HashMismatch
from pullthrough.upstream.client import (
    UpstreamClient,
    UpstreamError,
    content_length,
    describe_url,
    download_bound,
)

log = logging.getLogger(__name__)
DEFAULT_CONCURRENCY = 4


class SyncFailed(Exception):
    pass


@dataclass(frozen=True)
class Wanted:
    project: str
    file: DistFile


def keep_latest(page: ProjectPage, count: int) -> ProjectPage:
    """Only the files of the `count` newest versions (0: all)."""
    if count <= 0:
        return page
    versions = file_versions(page)
    newest = set(sorted(set(versions.values()), reverse=True)[:count])
    files = tuple(f for f in page.files if versions.get(f.filename) in newest)
    return ProjectPage(page.name, files, page.versions, page.last_serial)


class Syncer:
    def __init__(self, ctx: TaskContext, remote_id: str, client: UpstreamClient) -> None:
        self.ctx = ctx
        self.svc = ctx.services
        self.remote_id = remote_id
        self.remote = client.remote
        self.client = client
        self.filters: FilterSpec = client.remote.filters
        self.concurrency = self.remote.download_concurrency or DEFAULT_CONCURRENCY
        self.errors: list[str] = []
        self.changed = 0
        self.now = datetime.now(UTC)  # the policy's clock, one for the whole sync

    def project_names(self) -> list[str]:
        names = self.filters.listed_names()
        if names is not None:
            return names
        fetched = self.client.get_page(self.client.root)
        if fetched.status != 200:
            raise SyncFailed(f"the remote has no project list at {describe_url(self.client.root)}")
        return self.filters.filter_names(parse_list(fetched).names)

    def page(self, name: str) -> ProjectPage | None:
        """Revalidate against the last sync's copy: a 304 costs no parsing."""
        url = self.client.project_url(canonicalize_name(name))
        key = copy_key("sync", self.remote_id, url)
        cached = kept_copy(self.svc.pages_cache, key)
        etag, modified = validators(cached)  # none for a copy another build read
        try:
            fetched = self.client.get_page(url, etag=etag, last_modified=modified)
        except UpstreamError as exc:
            self.errors.append(f"{name}: {exc}")
            return None
        if fetched.status == 304 and cached is not None and isinstance(cached.value, ProjectPage):
            keep_copy(self.svc.pages_cache, key, cached)  # in use: not the oldest stored
            return cached.value
        if fetched.status != 200:
            self.errors.append(f"{name}: not found on the remote ({describe_url(url)})")
            return None
        try:
            page = parse_page(fetched, name, self.remote.max_page_files)
        except (ValueError, UpstreamError) as exc:
            self.errors.append(f"{name}: unreadable page: {exc}")
            return None
        self.changed += 1
        # The next sync's validators; a full disk costs only that (the sync goes on)
        keep_copy(
            self.svc.pages_cache,
            key,
            Cached(page, 0, fetched.etag, fetched.last_modified, read_by=READER),
        )
        return page

    def wanted(self, names: list[str]) -> list[Wanted]:
        total = len(names)
        self.ctx.report(
            "sync.downloading.metadata", "Downloading Metadata", total=total, force=True
        )
        out: list[Wanted] = []
        with ThreadPoolExecutor(self.concurrency) as pool:
            for done, page in enumerate(pool.map(self.page, names), 1):
                self.ctx.report(
                    "sync.downloading.metadata", "Downloading Metadata", done=done, total=total
                )
                if page is None or not self.filters.allows_project(canonicalize_name(page.name)):
                    continue
                if page.status == QUARANTINED:  # PEP 792: none of its files is offered
                    log.warning("sync: %s is quarantined upstream; nothing taken", page.name)
                    continue
                screened = screen(self.remote.holds, self.filters.filter_page(page), self.now)
                if self.remote.holds.mode == AUDIT:
                    for filename, hold in screened.held.items():
                        log.info("audit: sync would hold %s: %s", filename, hold.reason)
                page = keep_latest(screened.page, self.remote.keep_latest_packages)
                out += [
                    Wanted(canonicalize_name(page.name), f)
                    for f in page.files
                    if f.sha256 or self.remote.allow_unhashed  # unchecked bytes: not unless asked
                ]
        self.ctx.completed("sync.downloading.metadata", "Downloading Metadata", total)
        self.ctx.check_canceled()
        return out

    def download(self, wanted: Wanted) -> Package | None:
        entry = wanted.file
        try:
            with (
                self.client.open_file(entry.url) as resp,
                self.svc.store.writer(entry.hashes, artifact=True) as w,  # as Pulp's sync
            ):
                size = content_length(resp) if entry.size is None else entry.size
                most = download_bound(size, self.svc.ledger.max_size)
                for chunk in self.client.iter_body(resp, entry.url, most=most):
                    w.write(chunk)
                w.verify()
                package, metadata = package_from_file(
                    w.tmp_path, entry.filename, sha256=w.hashers["sha256"].hexdigest()
                )
                with self._artifact(w.size, w.artifact_digests()):
                    w.commit()
        except (UpstreamError, HashMismatch, InvalidDistribution, InvalidFilename) as exc:
            self.errors.append(f"{entry.filename}: {exc}")
            return None
        if metadata is not None:
            digests = {a: hashlib.new(a, metadata).hexdigest() for a in COMPUTED}
            with self._artifact(len(metadata), digests):
                package.metadata_sha256 = self.svc.store.put_bytes(metadata)
        package.origin = "sync"
        package.remote_url, package.remote_id = entry.url, self.remote_id  # repair's source
        apply_index_fields(package, entry)
        return package

    def _artifact(self, size: int, digests: Mapping[str, str]) -> AbstractContextManager[None]:
        """Around storing bytes the sync records at its end (orphans.stored_as_artifact)."""
        svc = self.svc
        return stored_as_artifact(svc.catalog, svc.ledger, svc.locks, svc.store, size, digests)

    def on_demand(self, wanted: Wanted) -> Package:
        entry = wanted.file
        info = parse_filename(entry.filename, wanted.project)
        package = Package(
            filename=entry.filename,
            name=info.name,
            version=str(info.version) if info.version else entry.filename,
            packagetype=info.packagetype,
            python_version=python_version(entry.filename, info.packagetype),
            sha256=entry.sha256 or "",
            size=entry.size or 0,
            metadata_json={"name": wanted.project, "version": str(info.version or "")},
            origin="sync",
            remote_url=entry.url,
            remote_id=self.remote_id,
            policy=self.remote.policy,
        )
        apply_index_fields(package, entry)  # requires-python too: the index's alone says it
        return package


def sync(ctx: TaskContext) -> None:
    """The task: args `repository_id`, `remote_id`, `mirror`."""
    repository_id, mirror = ctx.args["repository_id"], bool(ctx.args.get("mirror"))
    svc = ctx.services
    with svc.catalog.session() as session:
        remote = session.get(Remote, ctx.args["remote_id"])
        if remote is None or session.get(Repository, repository_id) is None:
            raise SyncFailed("the repository or the remote no longer exists")
        settings = RemoteSettings.from_values(remote.name, remote.settings)
    client = UpstreamClient(settings, tls_dir=svc.settings.server.data_dir / "tls")
    try:
        syncer = Syncer(ctx, ctx.args["remote_id"], client)
        names = syncer.project_names()
        wanted = _unblocked(svc.catalog, repository_id, syncer.wanted(names))
        with svc.catalog.session() as session:
            filenames = [w.file.filename for w in wanted]
            existing = {
                p.filename: p
                for chunk in in_batches(filenames)
                for p in session.scalars(select(Package).where(Package.filename.in_(chunk)))
            }
        for w in wanted:
            # A filename names one file: the catalog's must be the bytes the remote lists.
            known = existing.get(w.file.filename)
            if known is not None and w.file.sha256 and known.sha256 != w.file.sha256:
                syncer.errors.append(
                    f"{w.file.filename}: the catalog already holds a different file of that name"
                    f" (sha256 {known.sha256}, the remote lists {w.file.sha256})"
                )
        if syncer.errors:
            raise SyncFailed(_failure_message(syncer.errors))
        immediate = settings.policy == IMMEDIATE
        # A copy another remote fetched with its credentials is taken in only once this
        # remote has downloaded it too: its index may refuse this remote the file
        foreign = {
            p.filename
            for p in existing.values()
            if p.origin == "cache" and not may_read(svc.ledger.readers(p.sha256), client.seen_as)
        }
        fetch = [
            w
            for w in wanted
            if (immediate or not w.file.sha256 or w.file.filename in foreign)
            and not (
                w.file.filename in existing
                and w.file.filename not in foreign
                and svc.store.has(existing[w.file.filename].sha256)
            )
        ]
        new: dict[str, Package] = {}
        downloaded: list[Package] = []  # stored by this sync, recorded at its end
        total = len(fetch)
        ctx.report("sync.downloading.artifacts", "Downloading Artifacts", total=total, force=True)
        with ThreadPoolExecutor(syncer.concurrency) as pool:
            for done, package in enumerate(pool.map(syncer.download, fetch), 1):
                if package is not None:
                    new[package.filename] = package
                    downloaded.append(package)
                ctx.report(
                    "sync.downloading.artifacts", "Downloading Artifacts", done=done, total=total
                )
                if done % 20 == 0:
                    ctx.check_canceled()
        ctx.completed("sync.downloading.artifacts", "Downloading Artifacts", total)
        for w in wanted:
            if w.file.filename not in existing and w.file.filename not in new and w.file.sha256:
                new[w.file.filename] = syncer.on_demand(w)
        if syncer.errors:
            raise SyncFailed(_failure_message(syncer.errors))
        ctx.check_canceled()
        # Stored once the downloads went well, the cache's until recorded (see _metadata_of)
        copies = [p for p in existing.values() if p.origin == "cache" and not p.metadata_sha256]
        taken_in = _taken_in(svc.catalog, repository_id, copies)
        metadata, ours = _metadata_of(svc.locks, svc.ledger, svc.store, taken_in)
        with svc.catalog.session() as session:
            gone = _gone(session, existing.values())
            # the files it records anew, and those whose package was evicted meanwhile
            expected = {name: p.sha256 for name, p in new.items()}
            expected |= {p.filename: p.sha256 for p in existing.values() if p.id in gone}
            since = _recorded_since(session, expected)
            ids = []
            for w in wanted:
                package = existing.get(w.file.filename)
                if package is not None and package.id in gone:
                    was, package = package, since.get(package.filename)
                    if package is None and w.file.filename not in new:
                        # its file is checked, fetched if evicted
                        new[w.file.filename] = _anew(syncer.on_demand(w), was)
                        downloaded.append(new[w.file.filename])
                if package is None and (package := since.get(w.file.filename)) is not None:
                    package = _taken_over(package, new[w.file.filename], downloaded)
                if package is None:
                    package = new[w.file.filename]
                    package.id = package.id or new_id()  # known now: one flush for all
                    session.add(package)
                ids.append(package.id)
            session.flush()
            # To the package of the file taken in: the copy read, or the one recorded
            # since it was evicted meanwhile (the same bytes)
            unused = set()
            for filename, (sha256, metadata_sha256) in metadata.items():
                applied = session.execute(
                    update(Package)
                    .where(
                        Package.filename == filename,
                        Package.sha256 == sha256,
                        Package.metadata_sha256.is_(None),
                    )
                    .values(metadata_sha256=metadata_sha256),
                    execution_options={"synchronize_session": False},
                )
                if not cast(CursorResult[Any], applied).rowcount:
                    unused.add(metadata_sha256)
            repo = session.get(Repository, repository_id)
            if repo is None:
                raise SyncFailed("the repository was deleted during the sync")
            version = new_version(session, repository_id, add=ids, exactly=mirror)
            if version is not None:
                ctx.outcome.created.append(Ref("repository_version", repository_id, version.number))
        for sha in ours - unused:  # recorded by the packages that took them
            svc.ledger.forget(sha)
        # Reports write to the catalog: never from inside the transaction above.
        ctx.completed("sync.associating.content", "Associating Content", len(ids))
        if restored := restore_missing(ctx, downloaded):
            log.warning(
                "sync of %s: %d files removed meanwhile, fetched again", repository_id, restored
            )
        ctx.completed(
            "sync.changed_projects",
            "Projects changed since the last sync",
            syncer.changed,
            len(names),
        )
        log.info("sync of %s: %d projects changed", repository_id, syncer.changed)
    finally:
        client.close()


def _taken_in(catalog: Catalog, repository_id: str, packages: list[Package]) -> list[Package]:
    """The packages the repository's latest version does not hold yet: those a sync takes in.
    A copy it holds was read when it came in; one that gave no metadata then (an sdist whose
    PKG-INFO may not serve as PEP 658 metadata) gives none now, and would be read whole (on
    S3, fetched) at every sync for nothing."""
    if not packages:
        return []
    rc = RepositoryContent
    with catalog.reading() as session:
        repo = session.get(Repository, repository_id)
        if repo is None:  # deleted: the sync finds out when it records what it took
            return packages
        present = present_in(repo.id, repo.latest_number)
        held = {
            package_id
            for chunk in in_batches(sorted(p.id for p in packages))
            for package_id in session.scalars(
                select(rc.package_id).where(present, rc.package_id.in_(chunk))
            )
        }
    return [p for p in packages if p.id not in held]


def _metadata_of(
    locks: Locks, ledger: Ledger, store: BlobStore, copies: list[Package]
) -> tuple[dict[str, tuple[str, str]], set[str]]:
    """The PEP 658 metadata of pull-through copies a sync takes in, read from their stored
    files and stored (a cached wheel's METADATA is read on demand, not kept): filename ->
    the file's sha256 and its metadata's. A copy whose file is gone or unreadable keeps none,
    as before.

    Bytes nothing records yet are the cache's from before they are stored until the sync
    records them (the second value: their sha256s), as an upload's: a sync that fails, or a
    process killed, leaves them to eviction rather than to no one (eviction spares them once
    a repository's package records them) - and not removed at once, which could take the
    same bytes another sync taking in the same copy stored and is about to record. Also bytes
    a package records now: wheels of one version for several platforms share their METADATA,
    and an eviction of another copy that records it (in no repository) removes it as recorded
    by nothing before this sync records it, unless the ledger keeps it meanwhile."""
    found: dict[str, tuple[str, str]] = {}
    ours: set[str] = set()
    for p in copies:
        try:
            with store.local_path(p.sha256) as path:
                _, metadata = package_from_file(path, p.filename, sha256=p.sha256)
        except (InvalidDistribution, InvalidFilename, OSError) as exc:  # FileNotFoundError too
            log.info("sync: no metadata for %s: %s", p.filename, exc)
            continue
        if metadata is None:
            continue
        sha = hashlib.sha256(metadata).hexdigest()
        # Under the bytes' lock, as every writer of bytes: a removal that found them recorded
        # by nothing (an evicted copy's metadata) removes them before, not after, they are
        # recorded and stored here
        with stored_bytes(locks, sha).held(STORED_WAIT_SECONDS):
            if sha not in ours and not ledger.tracks(sha):
                ledger.record(sha, len(metadata))
                ours.add(sha)
            found[p.filename] = (p.sha256, store.put_bytes(metadata))
    return found, ours


@dataclass(frozen=True)
class _Listed:
    """A remote's file as the repository's blocklist reads a package."""

    name: str
    version: str
    filename: str


def _unblocked(catalog: Catalog, repository_id: str, wanted: list[Wanted]) -> list[Wanted]:
    """The remote's files less those the repository's blocklist keeps out, decided before any
    is downloaded (a blocked file is never fetched): PackagesBlocked at once when the
    repository refuses a change that adds one (`error_on_reject`), else they are left out.
    One the latest version holds already stays, as `new_version` keeps it (a blocklist entry
    refuses what comes in, not what is there); `new_version` checks again what comes in, with
    the versions read from the files."""
    with catalog.reading() as session:
        rules = entries(session, repository_id)
        repo = session.get(Repository, repository_id)
        if not rules or repo is None:
            return wanted
        listed = [_Listed(w.project, _version_of(w), w.file.filename) for w in wanted]
        hit = {p.filename for p in blocked(rules, listed)}
        if not hit:
            return wanted
        present = {
            filename
            for chunk in in_batches(sorted(hit))
            for filename in session.scalars(
                version_packages(repo.id, repo.latest_number)
                .where(Package.filename.in_(chunk))
                .with_only_columns(Package.filename)
            )
        }
        coming = hit - present
        if coming and repo.error_on_reject:
            raise PackagesBlocked(coming)
    return [w for w in wanted if w.file.filename not in coming]


def _version_of(wanted: Wanted) -> str:
    """A file's version as its name gives it ("" when unreadable: matched by no entry of a
    name and version; `new_version` checks the version its metadata gives)."""
    try:
        return parse_filename(wanted.file.filename, wanted.project).version_text
    except InvalidFilename:
        return ""


def _gone(session: Session, packages: Iterable[Package]) -> set[str]:
    """The ids of the packages that were deleted since they were read (a cached copy the sync
    reuses, evicted with its file while the sync downloaded the rest); the others are locked
    (FOR UPDATE on PostgreSQL; SQLite's write lock is held already), so that no eviction
    deletes them before the new version holds them. In one order, by id: two syncs that reuse
    the same packages (listed in their own orders) would each hold part and wait for the rest."""
    ids = sorted(p.id for p in packages)
    alive: set[str] = set()
    for chunk in in_batches(ids):
        query = select(Package.id).where(Package.id.in_(chunk)).order_by(Package.id)
        query = query.with_for_update()
        alive.update(session.scalars(query))
    return set(ids) - alive


def _recorded_since(session: Session, expected: Mapping[str, str]) -> dict[str, Package]:
    """The packages of these filenames (`expected`: filename -> sha256) recorded since the
    sync read the catalog - a client fetched the file through the cache meanwhile, anew or
    after the copy the sync had read was evicted: the filename is unique, the sync cannot
    record it beside - locked as `_gone` locks the others. SyncFailed for one of other
    bytes."""
    found: dict[str, Package] = {}
    for chunk in in_batches(sorted(expected)):
        query = select(Package).where(Package.filename.in_(chunk)).order_by(Package.id)
        for package in session.scalars(query.with_for_update()):
            if package.sha256 != expected[package.filename]:
                raise SyncFailed(
                    f"{package.filename}: the catalog now holds a different file of that name"
                    f" (sha256 {package.sha256})"
                )
            found[package.filename] = package
    return found


def _taken_over(found: Package, ours: Package, downloaded: list[Package]) -> Package:
    """The package a client's request recorded of a file this sync also fetched, as the
    sync's record of it (the upload takes a copy over so too): the sync's bytes are an
    artifact, which a package of the cache's would keep - in no repository any more, neither
    orphan cleanup (it leaves the cache's content) nor eviction (it keeps an artifact's bytes)
    would ever remove it. A file the sync only listed (on demand) leaves the copy as it is,
    and a user's upload of the file stays theirs (orphan cleanup removes uploads in turn)."""
    if not any(p is ours for p in downloaded):
        return found
    if found.origin == "cache":
        found.origin, found.remote_url, found.remote_id = "sync", ours.remote_url, ours.remote_id
    found.metadata_sha256 = found.metadata_sha256 or ours.metadata_sha256
    downloaded[:] = [found if p is ours else p for p in downloaded]
    return found


def _anew(package: Package, was: Package) -> Package:
    """An on-demand record of the file a deleted package had (the same bytes: checked against
    the remote's digest when it lists one)."""
    package.sha256, package.size = was.sha256, was.size
    return package


def _failure_message(errors: list[str]) -> str:
    shown = "; ".join(errors[:10])
    more = f" (and {len(errors) - 10} more)" if len(errors) > 10 else ""
    return f"{len(errors)} item(s) failed, no version was created: {shown}{more}"
