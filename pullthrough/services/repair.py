"""Repair, as Pulp's: find stored files that are missing or no longer have their sha256 (bit rot,
a damaged disk or bucket) in one repository version or in the whole catalog, and put them
right where their source is known.

- a file synced or fetched on demand from a remote: downloaded again from the URL its package
  records, hash-checked, and put in place of the damaged copy;
- a package's PEP 658 metadata: read again from its file, or fetched beside it;
- a pull-through cache file: removed, so that the next request fetches it anew;
- an uploaded file, or an artifact's bytes (checked when the whole catalog is), have no
  other source: counted, logged, and left as they are.

Content fetched on demand and never asked for is not missing: it was never stored.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select

from pullthrough.catalog.models import Artifact, Package, Remote, RepositoryContent
from pullthrough.catalog.versions import version_packages
from pullthrough.config import IMMEDIATE, RemoteSettings
from pullthrough.core.metadata import MAX_METADATA_SIZE, InvalidDistribution
from pullthrough.services.orphans import recorded
from pullthrough.services.packages import package_from_file
from pullthrough.services.tasks import TaskContext
from pullthrough.storage.locks import STORED_WAIT_SECONDS, LockTimeout, stored_bytes
from pullthrough.storage.store import ArtifactWriter, HashMismatch, from_start
from pullthrough.upstream.client import (
    UpstreamClient,
    UpstreamError,
    content_length,
    describe_url,
    download_bound,
)

if TYPE_CHECKING:
    from pullthrough.services.container import Services

log = logging.getLogger(__name__)
CHUNK = 1024 * 1024

MISSING = ("repair.missing", "Identify missing units")  # Pulp's progress reports
CORRUPTED = ("repair.corrupted", "Identify corrupted units")
REPAIRED = ("repair.repaired", "Repair corrupted units")


class RepairFailed(Exception):
    pass


@dataclass(frozen=True)
class Stored:
    """A file a package says is stored: its own, or its metadata."""

    sha256: str
    package: Package
    held: bool  # whether a repository holds the package
    metadata: bool = False

    @property
    def expected(self) -> bool:
        """Whether it must be in the store: on-demand content only once it was asked for, and
        a pull-through cache file only while a repository holds it."""
        return self.package.policy == IMMEDIATE and (self.package.origin != "cache" or self.held)


def repair(ctx: TaskContext) -> None:
    """The task: args `repository_id` and `number` (a version; None: every package), and
    `verify_checksums` (False: look for missing files only)."""
    svc = ctx.services
    verify = ctx.args.get("verify_checksums", True) is not False
    query = select(Package)
    if ctx.args.get("repository_id") is not None:
        query = version_packages(ctx.args["repository_id"], int(ctx.args["number"]))
    with svc.catalog.reading() as session:
        packages = session.scalars(query.order_by(Package.filename)).all()
        held = set(session.scalars(select(RepositoryContent.package_id).distinct()))
    repairer = Repairer(ctx)
    unreadable: list[str] = []
    try:
        check = functools.partial(repairer.check, verify=verify)
        _each(
            ctx,
            [(_name(i), functools.partial(check, i)) for i in _files(packages, held)],
            unreadable,
        )
        if ctx.args.get("repository_id") is None:  # as Pulp's repair: every artifact too
            with svc.catalog.reading() as session:
                artifacts = session.scalars(select(Artifact.sha256).order_by(Artifact.sha256))
                shas = [sha for sha in artifacts if sha not in repairer.looked]
            check = functools.partial(repairer.check_artifact, verify=verify)
            _each(ctx, [(f"artifact {s}", functools.partial(check, s)) for s in shas], unreadable)
            # and the cache's files no package records (PEP 658 metadata files, mostly)
            seen = repairer.looked | set(shas)
            cached = sorted(e.sha256 for e in svc.ledger.entries() if e.sha256 not in seen)
            check = functools.partial(repairer.check_cached, verify=verify)
            _each(
                ctx, [(f"cached file {s}", functools.partial(check, s)) for s in cached], unreadable
            )
    finally:
        repairer.close()
    ctx.completed(*MISSING, repairer.missing)
    ctx.completed(*CORRUPTED, repairer.corrupted)
    ctx.completed(*REPAIRED, repairer.repaired)
    log.info(
        "repair: %d missing, %d corrupted, %d repaired",
        repairer.missing,
        repairer.corrupted,
        repairer.repaired,
    )
    if unreadable:
        more = f" (and {len(unreadable) - 5} more)" if len(unreadable) > 5 else ""
        raise RepairFailed(
            f"{len(unreadable)} file(s) could not be checked: {'; '.join(unreadable[:5])}{more}"
        )


def _each(
    ctx: TaskContext, checks: Iterable[tuple[str, Callable[[], None]]], unreadable: list[str]
) -> None:
    """Run each named check; one the store fails on is logged and listed in `unreadable`, and
    the others are checked all the same. The task may be canceled between them."""
    for done, (name, check) in enumerate(checks, 1):
        try:
            check()
        except OSError as exc:
            log.warning("repair: could not check %s: %s", name, exc)
            unreadable.append(f"{name}: {exc}")
        if done % 50 == 0:
            ctx.check_canceled()


def restore_missing(ctx: TaskContext, packages: list[Package]) -> int:
    """Fetch again the files of packages just recorded that went missing before they were: a
    sync stores its files first and records them at its end, and a remover in between (an
    eviction of a cached copy, an artifact's delete, a failed import) saw them recorded by
    nothing. Recorded now, nothing removes them any more. Returns how many were fetched."""
    repairer = Repairer(ctx)
    try:
        for item in _files(packages, {p.id for p in packages}):
            repairer.check(item, verify=False)
    finally:
        repairer.close()
    return repairer.repaired


def _files(packages: Iterable[Package], held: set[str]) -> Iterable[Stored]:
    """Each package's file, then its metadata (read again from the file once it is right);
    bytes two packages share, once."""
    seen: set[str] = set()
    for p in packages:
        items = [Stored(p.sha256, p, p.id in held)]
        if p.metadata_sha256:
            items.append(Stored(p.metadata_sha256, p, p.id in held, metadata=True))
        for item in items:
            if item.sha256 not in seen:
                seen.add(item.sha256)
                yield item


class Repairer:
    def __init__(self, ctx: TaskContext) -> None:
        self.ctx = ctx
        self.svc: Services = ctx.services
        self.missing = self.corrupted = self.repaired = 0
        self._clients: dict[str, UpstreamClient | None] = {}
        self.looked: set[str] = set()  # bytes checked (and counted) for a package's sake

    def close(self) -> None:
        for client in self._clients.values():
            if client is not None:
                client.close()

    def check(self, item: Stored, *, verify: bool) -> None:
        stored = self.svc.store.has(item.sha256)
        if stored or item.expected:
            self.looked.add(item.sha256)
        if not stored:
            if not item.expected:
                return
            self.missing += 1
            self.ctx.report(*MISSING, done=self.missing)
            log.warning("repair: %s is missing (sha256 %s)", _name(item), item.sha256)
        elif not verify or self._intact(item.sha256):
            return
        else:
            self.corrupted += 1
            self.ctx.report(*CORRUPTED, done=self.corrupted)
            log.warning("repair: %s does not have its sha256 %s", _name(item), item.sha256)
        if self._repair(item):
            self.repaired += 1
            self.ctx.report(*REPAIRED, done=self.repaired)

    def check_artifact(self, sha256: str, *, verify: bool) -> None:
        """An artifact's bytes: counted and logged if missing or changed (no source to fetch
        them again from). Not when it was deleted meanwhile (and its bytes with it)."""
        if not self.svc.store.has(sha256):
            if not self._artifact(sha256):
                return
            self.missing += 1
            self.ctx.report(*MISSING, done=self.missing)
            log.warning("repair: artifact %s is missing; it cannot be repaired", sha256)
        elif verify and not self._intact(sha256):
            self.corrupted += 1
            self.ctx.report(*CORRUPTED, done=self.corrupted)
            log.warning(
                "repair: artifact %s does not have its sha256; it cannot be repaired", sha256
            )

    def check_cached(self, sha256: str, *, verify: bool) -> None:
        """A file only the cache ledger records (a PEP 658 metadata file, or a file whose
        metadata could not be read): a damaged one is evicted, and the next request for it
        fetches it again; one that is gone is no longer counted in the cache's size."""
        if not self.svc.store.has(sha256):
            self._forget_gone(sha256)
        elif verify and not self._intact(sha256):
            self.corrupted += 1
            self.ctx.report(*CORRUPTED, done=self.corrupted)
            log.warning("repair: cached file %s does not have its sha256", sha256)
            if self._drop_from_cache(sha256):
                self.repaired += 1
                self.ctx.report(*REPAIRED, done=self.repaired)

    def _forget_gone(self, sha256: str) -> None:
        """The ledger entry of a cached file that is not stored: checked again under the bytes'
        lock (a storing records its entry while it holds it, an upload before its bytes are
        visible)."""
        try:
            with stored_bytes(self.svc.locks, sha256).held(STORED_WAIT_SECONDS):
                if not self.svc.store.has(sha256):
                    self.svc.ledger.forget(sha256)
                    log.info("repair: cached file %s is gone; its entry is forgotten", sha256)
        except LockTimeout:  # being stored right now
            pass

    def _artifact(self, sha256: str) -> bool:
        with self.svc.catalog.reading() as session:
            found = select(Artifact.id).where(Artifact.sha256 == sha256)
            return session.scalar(found) is not None

    def _intact(self, sha256: str) -> bool:
        opened = self.svc.store.open(sha256, read_from=from_start)  # read whole: one GET
        if opened is None:  # removed meanwhile (an eviction): nothing wrong with it
            return True
        digest = hashlib.sha256()
        with opened.file as fh:
            while chunk := fh.read(CHUNK):
                digest.update(chunk)
        return digest.hexdigest() == sha256

    def _repair(self, item: Stored) -> bool:
        try:
            if item.metadata and self._metadata_from_file(item):
                return True
            if item.package.origin == "cache" and not item.held:
                return self._drop_from_cache(item.sha256)
            if (
                client := self._client(item.package.remote_id)
            ) is None or not item.package.remote_url:
                log.warning(
                    "repair: %s cannot be repaired: no remote to fetch it from", _name(item)
                )
                return False
            url = item.package.remote_url + (".metadata" if item.metadata else "")
            most = MAX_METADATA_SIZE if item.metadata else item.package.size
            return self._download(client, url, item.sha256, most or None)
        except (UpstreamError, HashMismatch, OSError, LockTimeout) as exc:
            log.warning("repair: %s could not be repaired: %s", _name(item), exc)
            return False

    def _metadata_from_file(self, item: Stored) -> bool:
        """The metadata, read again from the (intact) file it came from."""
        p = item.package
        if not self.svc.store.has(p.sha256) or not self._intact(p.sha256):
            return False
        try:
            with self.svc.store.local_path(p.sha256) as path:
                _, metadata = package_from_file(path, p.filename, sha256=p.sha256)
        except (InvalidDistribution, ValueError, OSError):
            return False
        if metadata is None or hashlib.sha256(metadata).hexdigest() != item.sha256:
            return False
        with self.svc.store.writer({"sha256": item.sha256}) as w:
            w.write(metadata)
            return self._put_back(w, item.sha256)

    def _drop_from_cache(self, sha256: str) -> bool:
        """A damaged cache file is evicted: the next request for it fetches it again. Not when
        a repository took it in meanwhile (the eviction checks that, as a promotion's)."""
        remove = functools.partial(self.svc.store.delete, sha256)
        try:
            with stored_bytes(self.svc.locks, sha256).held(STORED_WAIT_SECONDS):
                if not self.svc.pullthrough.events.evict(sha256, remove):
                    return False
                self.svc.ledger.forget(sha256)
        except LockTimeout:  # being stored again right now: that copy is checked
            return False
        return True

    def _download(self, client: UpstreamClient, url: str, sha256: str, most: int | None) -> bool:
        """Fetch the bytes again, at most `most` of them: a body that goes on past the size
        the catalog knows is given up as it comes, not once the disk is full of it. A size it
        does not know (None: on-demand content synced from an HTML page records 0) is bounded
        as a pull-through download's: by the Content-Length, else by the cache's limit."""
        with client.open_file(url) as resp, self.svc.store.writer({"sha256": sha256}) as w:
            most = download_bound(most or content_length(resp), self.svc.ledger.max_size)
            for chunk in client.iter_body(resp, url, most=most):
                w.write(chunk)
            if not self._put_back(w, sha256):
                return False
        log.info("repair: fetched %s again", describe_url(url))
        return True

    def _put_back(self, writer: ArtifactWriter, sha256: str) -> bool:
        """Store the bytes in place of the damaged copy (readers of it keep what they opened),
        under their lock and only while a package or the cache ledger records them: orphan
        cleanup or an eviction may have removed their package meanwhile, and its file, which
        would come back recorded by nothing, and so never be removed."""
        with stored_bytes(self.svc.locks, sha256).held(STORED_WAIT_SECONDS):
            if not recorded(self.svc.catalog, self.svc.ledger, sha256):
                log.info("repair: %s is no longer in the catalog; not stored again", sha256)
                return False
            writer.commit()
        return True

    def _client(self, remote_id: str | None) -> UpstreamClient | None:
        if remote_id is None:
            return None
        if remote_id not in self._clients:
            with self.svc.catalog.reading() as session:
                remote = session.get(Remote, remote_id)
                settings = (
                    RemoteSettings.from_values(remote.name, remote.settings) if remote else None
                )
            tls = self.svc.settings.server.data_dir / "tls"
            self._clients[remote_id] = UpstreamClient(settings, tls_dir=tls) if settings else None
        return self._clients[remote_id]


def _name(item: Stored) -> str:
    return item.package.filename + (".metadata" if item.metadata else "")
