"""Uploads (twine, and the REST API's content upload): validate, store, add to a repository."""

from __future__ import annotations

import functools
import hashlib
import logging
import shutil
from collections.abc import Callable, Mapping
from typing import IO

from packaging.utils import canonicalize_name
from packaging.version import Version
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pullthrough.catalog.db import Catalog
from pullthrough.catalog.kept import add_artifact
from pullthrough.catalog.models import (
    Package,
    ProjectStatus,
    Repository,
    RepositoryContent,
    RepositoryVersion,
)
from pullthrough.catalog.repository_blocklist import blocked_packages
from pullthrough.catalog.versions import new_version, version_packages
from pullthrough.core.filenames import InvalidFilename, parse_filename, release_of
from pullthrough.core.metadata import InvalidDistribution
from pullthrough.core.models import ARCHIVED, QUARANTINED
from pullthrough.core.repository_blocklist import PackagesBlocked
from pullthrough.services import audit
from pullthrough.services.orphans import drop_unrecorded, storing
from pullthrough.services.packages import package_from_file
from pullthrough.storage.ledger import Ledger
from pullthrough.storage.locks import STORED_WAIT_SECONDS, Locks
from pullthrough.storage.store import ArtifactWriter, BlobStore, HashMismatch

log = logging.getLogger(__name__)
# Checked transactions an upload makes before it gives up (UploadConflict): each one another
# node's change refused (Uploads._record) sees that change, so a second one rarely fails
RECORD_ATTEMPTS = 3
# What an upload's record keeps: its package, the version made, the bytes of the cached copy
# whose name it took (see Uploads._recorded)
Recorded = tuple[Package, RepositoryVersion | None, set[str]]
# PEP 740 attestations sent with a file (twine's and uv's legacy upload, pulp-cli's content
# upload): the catalog keeps none, so an upload with them is refused, not stripped unseen
NO_ATTESTATIONS = "Attestations (PEP 740) are not kept by this index: upload without them"


class UploadRefused(ValueError):
    """The upload is not acceptable; the message says why (400 for the client)."""


class UploadConflict(UploadRefused):
    """The catalog changed under the upload at every attempt (409): nothing was recorded; the
    client may send it again."""


class UploadForbidden(UploadRefused):
    """The upload is well formed but not allowed here (403): an archived or quarantined
    project (PEP 792)."""


class Uploads:
    def __init__(self, catalog: Catalog, store: BlobStore, ledger: Ledger, locks: Locks) -> None:
        self.catalog = catalog
        self.store = store
        self.ledger = ledger
        self.locks = locks

    def upload(
        self,
        repository_id: str | None,
        stream: IO[bytes],
        filename: str,
        *,
        digests: Mapping[str, str] = {},
        name: str | None = None,
        version: str | None = None,
        actor: str,
        address: str = "",
        where: str = "",
    ) -> tuple[Package, int | None]:
        """Store one file and add it to the repository (if any); returns the package and the new
        version number (None when nothing changed: re-uploading the same file is idempotent).
        `actor` uploaded it (from `address`, to the distribution at `where`): the audit trail
        records it in the same transaction, and a new package keeps it as `uploaded_by`."""
        try:
            parse_filename(filename)
        except InvalidFilename as exc:
            raise UploadRefused(str(exc)) from None
        given = {k: v for k, v in digests.items() if v}
        with self.store.writer(given, artifact=True) as writer:  # an artifact, as Pulp's
            shutil.copyfileobj(stream, Writing(writer), 1024 * 1024)
            try:
                writer.verify()
                package, metadata = package_from_file(
                    writer.tmp_path, filename, sha256=writer.hashers["sha256"].hexdigest()
                )
            except HashMismatch as exc:
                raise UploadRefused(
                    f"The digest sent for {filename!r} does not match: {exc}"
                ) from None
            except (InvalidDistribution, InvalidFilename) as exc:
                raise UploadRefused(str(exc)) from None
            _check_declared(package, name, version)
            stored = {package.sha256: writer.size} | _sized(metadata)
            # One upload of a project at a time, on every node: the checks (a filename used
            # once, one sdist per release) read what is committed, and PostgreSQL runs two
            # transactions at once (SQLite one after the other). Without it, two files of one
            # name through two nodes at once were both let in, and the second to commit broke
            # the filename's unique key: a 500, not "File already exists". Held for the checks
            # and the commit only, after the bytes' locks (storing: no order the other way
            # round), not while the bytes are stored: on S3 that is a PUT of up to gigabytes,
            # and the project's other files would wait for it, then fail (LockTimeout, 503).
            project_lock = self.locks.lock(f"upload-project:{package.name}")
            with storing(self.catalog, self.ledger, self.locks, self.store, stored):
                with self.catalog.reading() as session:  # refused before it is stored, mostly
                    _admitted(session, repository_id, package, filename)
                writer.commit()  # visible from now (checked): the cache's until recorded
                with project_lock.held(STORED_WAIT_SECONDS):
                    package, created, replaced = self._record(
                        filename,
                        functools.partial(
                            self._recorded,
                            repository_id=repository_id,
                            package=package,
                            metadata=metadata,
                            writer=writer,
                            actor=actor,
                            address=address,
                            where=where,
                        ),
                    )
                # within the bytes' lock: an eviction of the same bytes (a cached copy) cannot
                # come between the commit and this, and take the upload's file with it
                self.ledger.forget(package.sha256)  # a repository's file is never evicted
                if package.metadata_sha256:
                    self.ledger.forget(package.metadata_sha256)
        # The bytes of the copy whose name the upload took: recorded by its package alone (the
        # metadata a sync kept for it, its file once in a repository), they would stay in the
        # store with nothing that records them. The cache's (tracked) are left to its eviction.
        for sha in sorted(replaced - {package.sha256, package.metadata_sha256 or ""}):
            try:
                drop_unrecorded(self.catalog, self.ledger, self.locks, self.store, sha)
            except Exception as exc:  # the upload is done: the file is left, as before
                log.warning("upload of %s left the replaced copy's file %s: %s", filename, sha, exc)
        log.info("uploaded %s (sha256 %s)", filename, package.sha256)
        return package, created.number if created else None

    def _record(self, filename: str, attempt: Callable[[Session], Recorded]) -> Recorded:
        """The checked transaction that records a stored upload (`attempt`, in a session of its
        own), under the project's lock. The lock orders uploads only: another node's cache may
        record the filename (Catalog.add_new), or an orphan cleanup remove the package found,
        between the check and the commit. The unique key or a foreign key then refuses the
        transaction (nothing of it stays), and it is checked and made again: the upload is
        answered as if that had happened before it (taking a cached copy's name, or "File
        already exists"), not with a 500."""
        for tried in range(1, RECORD_ATTEMPTS + 1):
            try:
                with self.catalog.session() as session:
                    return attempt(session)
            except IntegrityError as exc:
                log.info(
                    "upload of %s raced a change (attempt %d of %d): %s",
                    filename,
                    tried,
                    RECORD_ATTEMPTS,
                    exc.orig,
                )
        raise UploadConflict(
            f"The catalog kept changing while {filename!r} was recorded; nothing was"
            " changed: try again"
        )

    def _recorded(
        self,
        session: Session,
        repository_id: str | None,
        package: Package,
        metadata: bytes | None,
        writer: ArtifactWriter,
        *,
        actor: str,
        address: str,
        where: str,
    ) -> Recorded:
        """One attempt of _record: `package` (as described from the file) checked again, then
        recorded, or the package of its filename that stays taken as the upload; the package
        kept, the version made and the bytes the cached copy whose name it took recorded (its
        file, its metadata)."""
        filename = package.filename
        # again, one at a time: what another upload committed meanwhile
        existing, displaced = _admitted(session, repository_id, package, filename)
        replaced: set[str] = set()
        if displaced is not None:  # our upload takes the name (if another node's eviction
            # took it first, so be it: one statement, not the ORM's count of deleted rows)
            replaced = {displaced.sha256, displaced.metadata_sha256 or ""} - {""}
            session.execute(delete(Package).where(Package.id == displaced.id))
        if existing is None:
            package.uploaded_by = actor
            session.add(package)
        else:
            package = existing
            if package.origin == "cache":  # a pull-through copy becomes the upload
                package.origin, package.uploaded_by = "upload", actor
        if metadata is not None and package.metadata_sha256 is None:
            # PEP 658 metadata, also for a package that had none kept (a cached
            # copy, whose wheel's METADATA was read on demand; a synced record)
            package.metadata_sha256 = self.store.put_bytes(metadata)
        add_artifact(session, writer.size, writer.artifact_digests())
        session.flush()
        try:
            created = (
                new_version(session, repository_id, add=[package.id]) if repository_id else None
            )
        except PackagesBlocked as exc:  # an entry added since the check
            raise UploadRefused(str(exc)) from None
        detail = {
            "filename": filename,
            "sha256": package.sha256,
            "new": existing is None,
        }
        if where:
            detail["distribution"] = where
        if created is not None:
            detail["repository_version"] = created.number
        audit.record(session, actor, "upload", filename, address=address, detail=detail)
        return package, created, replaced


def _admitted(
    session: Session, repository_id: str | None, package: Package, filename: str
) -> tuple[Package | None, Package | None]:
    """UploadRefused (UploadForbidden) unless the file may be uploaded now; else the package
    of that filename that stays (None: a new one), and a pull-through copy in no repository
    holding the name with other bytes, which the upload takes it from (the caller deletes it)."""
    if repository_id is not None:
        _check_status(session, repository_id, package.name)
        _check_blocklist(session, repository_id, package)
    existing = session.scalar(select(Package).where(Package.filename == filename))
    displaced = None
    if (
        existing is not None
        and existing.sha256 != package.sha256
        and existing.origin == "cache"
        and not session.scalar(
            select(RepositoryContent.id).where(RepositoryContent.package_id == existing.id)
        )
    ):  # only a pull-through copy in no repository: our upload takes the name
        existing, displaced = None, existing
    if existing is not None and existing.sha256 != package.sha256:
        # Not its digest: the file may be in a private index the uploader cannot read
        raise UploadRefused(
            f"File already exists ({filename!r}): a filename can only be used once;"
            " upload a new version instead"
        )
    if existing is None and session.scalar(
        select(Package.id).where(Package.sha256 == package.sha256).limit(1)
    ):  # as PyPI: one file, one name (not `x-1.0-...`, `x-1.0.0-...` and `x-0!1.0-...`)
        raise UploadRefused(
            f"File already exists ({filename!r}): these bytes were uploaded under"
            " another name; a file can only be uploaded once"
        )
    if repository_id is not None and package.packagetype == "sdist":
        _check_one_sdist(session, repository_id, existing or package)
    return existing, displaced


def _sized(metadata: bytes | None) -> dict[str, int]:
    return {hashlib.sha256(metadata).hexdigest(): len(metadata)} if metadata else {}


class Writing:
    """A file-like `write` for shutil.copyfileobj that hashes as it goes."""

    def __init__(self, writer: ArtifactWriter) -> None:
        self.writer = writer

    def write(self, data: bytes) -> None:
        self.writer.write(data)


def _check_status(session: Session, repository_id: str, name: str) -> None:
    status = session.scalar(
        select(ProjectStatus).where(
            ProjectStatus.repository_id == repository_id, ProjectStatus.name == name
        )
    )
    if status is not None and status.status in (ARCHIVED, QUARANTINED):
        why = f": {status.reason}" if status.reason else ""
        raise UploadForbidden(f"Project {name!r} is {status.status}{why}; it takes no uploads")


def _check_blocklist(session: Session, repository_id: str, package: Package) -> None:
    """Refused before the file is kept, if the repository's blocklist names it and rejects
    (error_on_reject); else stored, and left out of the repository (catalog.versions)."""
    repo = session.get(Repository, repository_id)
    rejects = repo is not None and repo.error_on_reject
    if rejects and blocked_packages(session, repository_id, [package]):
        raise UploadRefused(str(PackagesBlocked([package.filename])))


def _check_one_sdist(session: Session, repository_id: str, package: Package) -> None:
    """As PyPI: one sdist per release. Another sdist of the same version in the repository's
    latest version (`x-1.0.tar.gz` beside `x-1.0.0.tar.gz` or `x-1.0.zip`) would leave
    installers to pick one of two different sources."""
    latest = session.get(Repository, repository_id)
    others = session.scalars(
        version_packages(repository_id, latest.latest_number if latest else 0).where(
            Package.name == package.name,
            Package.packagetype == "sdist",
            Package.sha256 != package.sha256,
        )
    )
    release = release_of(package.version)
    for other in others:
        if release_of(other.version) == release:
            raise UploadRefused(
                f"Only one sdist may be uploaded per release: {other.filename!r} is"
                f" {package.name} {other.version} in this repository already"
            )


def _check_declared(package: Package, name: str | None, version: str | None) -> None:
    """The form's name and version (twine sends them) must agree with the file's metadata."""
    if name and canonicalize_name(name) != package.name:
        raise UploadRefused(
            f"The name {name!r} does not match the file's metadata ({package.name!r})"
        )
    if version:
        try:
            same = Version(version) == Version(package.version)
        except ValueError:  # InvalidVersion, or digits past int()'s limit
            same = False
        if not same:
            raise UploadRefused(
                f"The version {version!r} does not match the file's metadata ({package.version!r})"
            )
