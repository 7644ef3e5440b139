"""Offline bundles, the I/O: export a repository version from the catalog and store into a tar
file, and import one into a repository (core.bundles holds the format and its checks).

An import reads the archive twice. The first pass checks the manifest, the members and every
file's size and sha256, touching nothing; only a bundle that passes is stored (each file
hash-checked again as the store writes it, and validated as a distribution), and the catalog
changes in one transaction: the packages, the repository's yanks and project statuses, ONE
new repository version and an audit event. A failure on the way removes the files it stored.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import tarfile
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, BinaryIO

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from pullthrough.catalog.db import Catalog, in_batches
from pullthrough.catalog.models import (
    Artifact,
    Package,
    ProjectStatus,
    Repository,
    RepositoryContent,
    RepositoryVersion,
)
from pullthrough.catalog.models import Yank as YankRow
from pullthrough.catalog.versions import (
    create_repository,
    new_version,
    present_in,
    version_packages,
)
from pullthrough.core.bundles import (
    MANIFEST,
    MAX_MANIFEST_BYTES,
    MAX_NAME,
    BundleFile,
    InvalidBundle,
    Manifest,
    Member,
    PackageEntry,
    StatusEntry,
    YankEntry,
    compression,
    digest_problem,
    manifest_bytes,
    member_problems,
    metadata_path,
    one_sdist_per_release,
    parse_manifest,
)
from pullthrough.core.filenames import InvalidFilename
from pullthrough.core.metadata import InvalidDistribution
from pullthrough.core.repository_blocklist import PackagesBlocked
from pullthrough.services import audit
from pullthrough.services.orphans import recorded, stored_as_artifact
from pullthrough.services.packages import package_from_file
from pullthrough.storage.ledger import Ledger
from pullthrough.storage.locks import STORED_WAIT_SECONDS, Locks, LockTimeout, stored_bytes
from pullthrough.storage.store import ArtifactWriter, BlobStore, HashMismatch, from_start

log = logging.getLogger(__name__)
CHUNK = 1024 * 1024
IMPORT_ACTION = "bundle_import"


if TYPE_CHECKING:
    from pullthrough.services.container import Services  # which builds the services


class BundleError(Exception):
    """An export or import that cannot be done; the message says why (nothing was changed)."""


@dataclass
class ExportReport:
    repository: str
    version: int
    packages: int
    bytes: int

    def summary(self) -> str:
        return (
            f"repository {self.repository!r} version {self.version}: {self.packages} packages,"
            f" {self.bytes} bytes of files"
        )


@dataclass
class ImportReport:
    repository: str
    version: int  # the repository's latest version after the import
    created: bool  # whether the import made that version (False: the content was there)
    repository_created: bool = False
    packages: int = 0
    new_packages: int = 0  # catalog entries made; the others were there, same sha256
    stored_files: int = 0  # files written to the store (the others were stored already)
    removed: int = 0  # packages of the previous version that the bundle does not hold
    changed: list[str] = field(default_factory=list)  # yanks and statuses set

    def summary(self) -> str:
        made = "created" if self.created else "unchanged, still"
        return (
            f"repository {self.repository!r}{' (new)' if self.repository_created else ''}"
            f" {made} at version {self.version}: {self.packages} packages"
            f" ({self.new_packages} new, {self.packages - self.new_packages} already known),"
            f" {self.stored_files} files stored, {self.removed} removed,"
            f" {len(self.changed)} yanks/statuses changed"
        )


class _HashingReader:
    """A file-like `read` for tarfile.addfile that hashes what it passes on."""

    def __init__(self, source: IO[bytes]) -> None:
        self.source = source
        self.sha256 = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        data = self.source.read(size)
        self.sha256.update(data)
        self.size += len(data)
        return data


class Bundles:
    def __init__(
        self,
        catalog: Catalog,
        store: BlobStore,
        ledger: Ledger,
        locks: Locks,
        on_change: Callable[[], None],
    ) -> None:
        self.catalog = catalog
        self.store = store
        self.ledger = ledger
        self.locks = locks
        self.on_change = on_change  # every process reloads its view (Registry.changed)

    @classmethod
    def of(cls, services: Services) -> Bundles:
        return cls(
            services.catalog,
            services.store,
            services.ledger,
            services.locks,
            services.registry.changed,
        )

    # Export

    def export(
        self, repository: str, number: int | None, target: Path, *, generator: str = ""
    ) -> ExportReport:
        """Write the bundle of a repository version (None: the latest) to `target`, whole or
        not at all (a temporary file beside it, renamed when complete)."""
        manifest = self._manifest(repository, number, generator)
        missing = [
            p.filename
            for p in manifest.packages
            if not self.store.has(p.sha256)
            or (p.metadata is not None and not self.store.has(p.metadata.sha256))
        ]
        if missing:
            shown = ", ".join(missing[:10]) + (
                f" and {len(missing) - 10} more" if missing[10:] else ""
            )
            raise BundleError(
                f"{len(missing)} file(s) of the version are not stored here (on-demand content"
                f" not fetched yet?): {shown}; sync with the immediate policy first"
            )
        tmp = target.with_name(f".{target.name}.partial")
        try:
            with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
                raw = manifest_bytes(manifest)
                tar.addfile(_info(MANIFEST, len(raw), manifest.created), io.BytesIO(raw))
                for p in manifest.packages:
                    self._add(tar, p.file, p.upload_time)
                    if p.metadata is not None:
                        self._add(tar, p.metadata, p.upload_time)
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return ExportReport(
            manifest.repository, manifest.version, len(manifest.packages), manifest.total_size()
        )

    def _manifest(self, repository: str, number: int | None, generator: str) -> Manifest:
        with self.catalog.session() as session:
            repo = session.scalar(select(Repository).where(Repository.name == repository))
            if repo is None:
                raise BundleError(f"there is no repository named {repository!r}")
            number = repo.latest_number if number is None else number
            version = session.scalar(
                select(RepositoryVersion).where(
                    RepositoryVersion.repository_id == repo.id, RepositoryVersion.number == number
                )
            )
            if version is None:
                raise BundleError(f"repository {repository!r} has no version {number}")
            packages = session.scalars(
                version_packages(repo.id, number).order_by(Package.filename)
            ).all()
            yanks = session.scalars(
                select(YankRow)
                .where(YankRow.repository_id == repo.id)
                .order_by(YankRow.name, YankRow.version, YankRow.filename)
            ).all()
            statuses = session.scalars(
                select(ProjectStatus)
                .where(ProjectStatus.repository_id == repo.id)
                .order_by(ProjectStatus.name)
            ).all()
            return Manifest(
                repository=repo.name,
                version=number,
                created=datetime.now(UTC),
                packages=tuple(self._entry(p) for p in packages),
                yanks=tuple(YankEntry(y.name, y.version, y.filename, y.reason) for y in yanks),
                statuses=tuple(StatusEntry(s.name, s.status, s.reason) for s in statuses),
                generator=generator,
            )

    def _entry(self, p: Package) -> PackageEntry:
        metadata = None
        if p.metadata_sha256:
            opened = self.store.open(p.metadata_sha256)
            if opened is not None:
                opened.file.close()
                metadata = BundleFile(metadata_path(p.filename), p.metadata_sha256, opened.size)
            else:  # reported as missing with the package
                metadata = BundleFile(metadata_path(p.filename), p.metadata_sha256, 0)
        uploaded = p.upload_time
        uploaded = uploaded.replace(tzinfo=UTC) if uploaded.tzinfo is None else uploaded
        return PackageEntry(
            filename=p.filename,
            name=p.name,
            version=p.version,
            sha256=p.sha256,
            size=p.size,
            upload_time=uploaded.astimezone(UTC),
            requires_python=p.requires_python,
            yanked=p.yanked,
            yanked_reason=p.yanked_reason,
            metadata=metadata,
            uploaded_by=p.uploaded_by,
            origin=p.origin,
        )

    def _add(self, tar: tarfile.TarFile, wanted: BundleFile, when: datetime) -> None:
        opened = self.store.open(wanted.sha256, read_from=from_start)  # read whole
        if opened is None:
            raise BundleError(f"{wanted.path}: the stored file is gone (sha256 {wanted.sha256})")
        with opened.file:
            if opened.size != wanted.size:
                raise BundleError(
                    f"{wanted.path}: the stored file has {opened.size} bytes, the catalog says"
                    f" {wanted.size}"
                )
            reader = _HashingReader(opened.file)
            tar.addfile(_info(wanted.path, wanted.size, when), reader)
        if (problem := digest_problem(wanted, reader.sha256.hexdigest(), reader.size)) is not None:
            raise BundleError(f"the store's copy is damaged: {problem}")

    # Import

    def import_bundle(
        self,
        source: Path,
        repository: str | None = None,
        *,
        add_only: bool = False,
        actor: str,
    ) -> ImportReport:
        """Check the whole bundle, store its files, then make ONE new version of `repository`
        (None: the bundle's repository name; created if missing) holding its packages (with
        `add_only`, its packages besides those there already). InvalidBundle for a bundle that
        is not right, BundleError when it does not fit this catalog; nothing changed either way.
        """
        if repository is not None and (not repository.strip() or len(repository) > MAX_NAME):
            raise BundleError(
                f"a repository's name is 1 to {MAX_NAME} characters, not {len(repository)}"
            )
        with source.open("rb") as fh:
            head = fh.read(6)
        if (kind := compression(head)) is not None:
            raise InvalidBundle(
                f"{source} is {kind}-compressed: a bundle is a plain tar, as `pullthrough"
                " export` writes it"
            )
        try:  # plain tar only ("r:"): never decompressed, every byte read is a byte of the file
            tar = tarfile.open(source, "r:")  # noqa: SIM115 - closed by the `with` below
        except tarfile.TarError as exc:
            raise InvalidBundle(f"{source} is not a bundle (a plain tar file): {exc}") from None
        with tar:
            try:
                members = {m.name: m for m in tar.getmembers()}
                listing = [
                    Member(m.name, m.isreg() and not m.issparse(), m.size) for m in tar.getmembers()
                ]
            except (tarfile.TarError, EOFError) as exc:
                raise InvalidBundle(f"{source} is damaged: {exc}") from None
            manifest = _read_manifest(tar, members.get(MANIFEST))
            if problems := member_problems(listing, manifest):
                raise InvalidBundle(_listed(problems))
            # Pass 1: every file is what the manifest says, before anything is written.
            problems = []
            for path, wanted in manifest.files().items():
                sha256, size = _digest(_open_member(tar, members[path]))
                if (problem := digest_problem(wanted, sha256, size)) is not None:
                    problems.append(problem)
            if problems:
                raise InvalidBundle(_listed(problems))
            target = repository or manifest.repository
            self._check_conflicts(manifest, target, add_only=add_only)
            published: dict[str, float | None] = {}  # sha256 -> its write time, as stored here
            ours: set[str] = set()  # the artifacts this import made (see _held)
            try:
                new = self._store_files(tar, members, manifest, published, ours)
                report = self._record(manifest, target, new, add_only=add_only, actor=actor)
            except BaseException:
                self._remove_unused(published, ours)
                raise
            self._restore(tar, members, manifest, ours)
        for p in manifest.packages:  # a repository's file is never evicted from the cache
            self.ledger.forget(p.sha256)
            if p.metadata is not None:
                self.ledger.forget(p.metadata.sha256)
        report.stored_files = len(published)
        self.on_change()
        return report

    def _known(self, manifest: Manifest) -> dict[str, str]:
        """The sha256 of the catalog's packages named as the bundle's, by filename."""
        names = [p.filename for p in manifest.packages]
        found: dict[str, str] = {}
        with self.catalog.session() as session:
            for chunk in in_batches(names):
                query = select(Package.filename, Package.sha256).where(Package.filename.in_(chunk))
                found.update((filename, sha256) for filename, sha256 in session.execute(query))
        return found

    def _check_conflicts(self, manifest: Manifest, target: str, *, add_only: bool) -> None:
        """A filename names one file and a file has one name, as for uploads: refuse a bundle
        whose file differs from ours of that name, or is ours under another name. With
        add_only, the target's sdists count as the bundle's (one sdist per release)."""
        known = self._known(manifest)
        with self.catalog.session() as session:
            for p in manifest.packages:
                if known.get(p.filename, p.sha256) == p.sha256:
                    continue
                row = session.scalars(select(Package).where(Package.filename == p.filename)).one()
                if not _replaceable(session, row):
                    raise BundleError(
                        f"the catalog already holds a different {p.filename!r} (sha256"
                        f" {known[p.filename]}, the bundle's is {p.sha256}); a filename names"
                        " one file"
                    )
            new = {
                p.sha256: p.filename for p in manifest.packages if known.get(p.filename) != p.sha256
            }
            for chunk in in_batches(list(new)):
                query = select(Package.filename, Package.sha256).where(Package.sha256.in_(chunk))
                for filename, sha256 in session.execute(query):
                    if filename != new[sha256]:
                        raise BundleError(
                            f"the catalog already holds the bundle's {new[sha256]!r} as"
                            f" {filename!r} (sha256 {sha256}); a file has one name"
                        )
            repo = session.scalar(select(Repository).where(Repository.name == target))
            if add_only and repo is not None:
                there = session.scalars(
                    version_packages(repo.id, repo.latest_number).where(
                        Package.packagetype == "sdist"
                    )
                )
                held = [
                    PackageEntry(p.filename, p.name, p.version, p.sha256, p.size, p.upload_time)
                    for p in there
                ]
                if problem := one_sdist_per_release([*held, *manifest.packages]):
                    raise BundleError(f"repository {target!r}: {problem}")

    def _store_files(
        self,
        tar: tarfile.TarFile,
        members: dict[str, tarfile.TarInfo],
        manifest: Manifest,
        published: dict[str, float | None],
        ours: set[str],
    ) -> dict[str, Package]:
        """Store every file the store lacks (hash-checked again) and make the catalog entries of
        packages it does not know, validated as distributions; returns them by filename."""
        known = self._known(manifest)
        new: dict[str, Package] = {}
        for entry in manifest.packages:
            is_new = known.get(entry.filename) != entry.sha256
            if entry.metadata is not None and not self.store.has(entry.metadata.sha256):
                self._put(tar, members, entry.metadata, published, ours)
            package: Package | None = None
            if not self.store.has(entry.sha256):
                member = _open_member(tar, members[entry.file.path])
                with self.store.writer({"sha256": entry.sha256}, artifact=True) as writer:
                    while chunk := member.read(CHUNK):
                        writer.write(chunk)
                    if is_new:
                        writer.flush()
                        package = _validated(writer.tmp_path, entry)
                    try:
                        with self._held(writer, ours):
                            self._published(writer.commit(), published)
                    except HashMismatch as exc:
                        raise InvalidBundle(
                            f"{entry.file.path!r} changed while read: {exc}"
                        ) from None
            elif is_new:
                with self.store.local_path(entry.sha256) as path:
                    package = _validated(path, entry)
            if package is not None:
                new[entry.filename] = package
        return new

    def _put(
        self,
        tar: tarfile.TarFile,
        members: dict[str, tarfile.TarInfo],
        wanted: BundleFile,
        published: dict[str, float | None],
        ours: set[str],
    ) -> None:
        member = _open_member(tar, members[wanted.path])
        with self.store.writer({"sha256": wanted.sha256}, artifact=True) as writer:
            while chunk := member.read(CHUNK):
                writer.write(chunk)
            try:
                with self._held(writer, ours):
                    self._published(writer.commit(), published)
            except HashMismatch as exc:
                raise InvalidBundle(f"{wanted.path!r} changed while read: {exc}") from None

    def _restore(
        self,
        tar: tarfile.TarFile,
        members: dict[str, tarfile.TarInfo],
        manifest: Manifest,
        ours: set[str],
    ) -> None:
        """Put back from the bundle a file removed before the import recorded it: an import
        stores its files first and records them at its end, and a remover in between (an
        eviction of a cached copy, an artifact's delete, another import's failure) saw them
        recorded by nothing. Recorded now, nothing removes them any more."""
        restored = [w for w in manifest.files().values() if not self.store.has(w.sha256)]
        for wanted in restored:
            self._put(tar, members, wanted, {}, ours)
        if restored:
            log.warning("import: %d files removed meanwhile, stored again", len(restored))

    def _record(
        self,
        manifest: Manifest,
        target: str,
        new: dict[str, Package],
        *,
        add_only: bool,
        actor: str,
    ) -> ImportReport:
        with self.catalog.session() as session:
            repo = session.scalar(select(Repository).where(Repository.name == target))
            created_repo = repo is None
            if repo is None:
                repo = create_repository(
                    session,
                    name=target,
                    description=f"imported from a bundle of {manifest.repository!r}",
                )
            ids: list[str] = []
            for entry in manifest.packages:
                package = session.scalar(select(Package).where(Package.filename == entry.filename))
                if package is not None and package.sha256 != entry.sha256:
                    if not _replaceable(session, package):  # taken meanwhile
                        raise BundleError(
                            f"the catalog already holds a different {entry.filename!r}"
                        )
                    session.delete(package)
                    session.flush()
                    package = None
                if package is None:
                    package = new.get(entry.filename)
                    if package is None:  # appeared and went meanwhile: try again
                        raise BundleError(f"{entry.filename!r} changed in the catalog; try again")
                    if session.scalar(
                        select(Package.id).where(Package.sha256 == entry.sha256).limit(1)
                    ):  # uploaded meanwhile under another name
                        raise BundleError(
                            f"the catalog already holds the bundle's {entry.filename!r} under"
                            " another name; a file has one name"
                        )
                    session.add(package)
                    session.flush()
                ids.append(package.id)
            current = set(
                session.scalars(
                    select(RepositoryContent.package_id).where(
                        present_in(repo.id, repo.latest_number)
                    )
                )
            )
            remove = set() if add_only else current - set(ids)
            try:
                version = new_version(session, repo.id, add=ids, remove=remove)
            except PackagesBlocked as exc:  # the target repository's blocklist, rejecting
                raise BundleError(str(exc)) from None
            changed = _set_yanks(session, repo.id, manifest.yanks, add_only=add_only)
            changed += _set_statuses(session, repo.id, manifest.statuses, add_only=add_only)
            report = ImportReport(
                repository=target,
                version=version.number if version is not None else repo.latest_number,
                created=version is not None,
                repository_created=created_repo,
                packages=len(ids),
                new_packages=len(new),
                removed=len(remove) if version is not None else 0,
                changed=changed,
            )
            audit.record(
                session,
                actor,
                IMPORT_ACTION,
                target,
                detail={
                    "bundle": str(manifest.repository),
                    "bundle_version": manifest.version,
                    "packages": len(ids),
                    "new_packages": len(new),
                    "repository_version": version.number if version is not None else None,
                    "removed": report.removed,
                    "yanks_and_statuses": changed,
                },
            )
        return report

    def _held(self, writer: ArtifactWriter, made: set[str]) -> AbstractContextManager[None]:
        """Around storing bytes the import records at its end (orphans.stored_as_artifact): an
        import killed before its end leaves artifacts no content uses, which orphan cleanup
        removes; the artifacts it made (`made`) a failing import removes with their files
        (_remove_unused)."""
        digests = writer.artifact_digests()
        return stored_as_artifact(
            self.catalog, self.ledger, self.locks, self.store, writer.size, digests, made
        )

    def _published(self, sha256: str, published: dict[str, float | None]) -> None:
        """A file this import stored, with its write time as the store tells it (the store's
        clock: an object store's differs from ours)."""
        published[sha256] = self.store.written_at(sha256)

    def _remove_unused(self, published: dict[str, float | None], ours: set[str]) -> None:
        """Remove the files this import stored when it fails, unless something uses them now:
        each checked and removed under its bytes' lock, which an upload or a download of the
        same bytes holds until it records them (as orphan cleanup does); and unless they were
        stored again since this import stored them - a sync stores its files, then lets go of
        their lock, and records them at its end (orphan cleanup spares them by the same test)."""
        for sha256, stored_at in published.items():
            try:
                with stored_bytes(self.locks, sha256).held(STORED_WAIT_SECONDS):
                    if sha256 in ours:  # its artifact goes with the import that made it
                        with self.catalog.session() as session:
                            session.execute(delete(Artifact).where(Artifact.sha256 == sha256))
                    written = self.store.written_at(sha256)
                    again = written is not None and written != stored_at
                    if not again and not recorded(self.catalog, self.ledger, sha256):
                        self.store.delete(sha256)
            except LockTimeout:  # being written again, long: whoever writes it records it
                log.warning("a failed import left %s: its bytes are being written", sha256)
            except Exception:  # the import's own error matters more
                log.exception("could not remove %s, stored by a failed import", sha256)


def _info(name: str, size: int, when: datetime) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = int(when.timestamp())
    info.mode = 0o644
    return info


def _read_manifest(tar: tarfile.TarFile, member: tarfile.TarInfo | None) -> Manifest:
    if member is None:
        raise InvalidBundle(f"the archive holds no {MANIFEST}: not a pullthrough bundle")
    if not member.isreg() or member.issparse() or member.size > MAX_MANIFEST_BYTES:
        raise InvalidBundle(f"{MANIFEST} is not a plain file of at most {MAX_MANIFEST_BYTES} bytes")
    return parse_manifest(_open_member(tar, member).read())


def _open_member(tar: tarfile.TarFile, member: tarfile.TarInfo) -> BinaryIO:
    found = tar.extractfile(member)
    if found is None:  # member_problems has checked it is a plain file
        raise InvalidBundle(f"{member.name!r} is not a plain file")
    return found  # type: ignore[return-value]  # an IO[bytes] that tarfile types loosely


def _digest(fh: IO[bytes]) -> tuple[str, int]:
    sha256 = hashlib.sha256()
    size = 0
    try:
        while chunk := fh.read(CHUNK):
            sha256.update(chunk)
            size += len(chunk)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise InvalidBundle(f"the archive is damaged: {exc}") from None
    return sha256.hexdigest(), size


def _validated(path: Path, entry: PackageEntry) -> Package:
    """The catalog entry of a bundle's file: a real distribution of the name and version the
    manifest gives, whose PEP 658 metadata (if the bundle has it) is the file's own; the file
    says what it requires (requires-python), the manifest only what an index adds (upload
    time, yanks, who uploaded)."""
    try:
        package, metadata = package_from_file(path, entry.filename, sha256=entry.sha256)
    except (InvalidDistribution, InvalidFilename) as exc:
        raise InvalidBundle(f"{entry.file.path!r}: {exc}") from None
    if (package.name, package.version) != (entry.name, entry.version):
        raise InvalidBundle(
            f"{entry.file.path!r} is {package.name} {package.version}, the manifest says"
            f" {entry.name} {entry.version}"
        )
    if entry.metadata is not None and (
        metadata is None or hashlib.sha256(metadata).hexdigest() != entry.metadata.sha256
    ):
        raise InvalidBundle(
            f"{entry.metadata.path!r} is not the metadata inside {entry.file.path!r}"
        )
    package.upload_time = entry.upload_time
    package.yanked = entry.yanked
    package.yanked_reason = entry.yanked_reason
    package.uploaded_by = entry.uploaded_by
    package.metadata_sha256 = entry.metadata.sha256 if entry.metadata is not None else None
    package.origin = "upload" if entry.origin == "upload" else "sync"  # a copy, not the cache's
    return package


def _replaceable(session: Session, package: Package) -> bool:
    """Only a pull-through copy in no repository gives up its name (as an upload does)."""
    return package.origin == "cache" and not session.scalar(
        select(RepositoryContent.id).where(RepositoryContent.package_id == package.id).limit(1)
    )


def _set_yanks(
    session: Session, repository_id: str, yanks: tuple[YankEntry, ...], *, add_only: bool
) -> list[str]:
    """The repository's yanks made the bundle's (with add_only: the bundle's added); returns
    what changed."""
    rows: dict[tuple[str, str | None, str | None], YankRow] = {}
    changed = []
    for found in session.scalars(select(YankRow).where(YankRow.repository_id == repository_id)):
        key = (found.name, found.version, found.filename)
        if key in rows:  # left twice by an import before manifests were refused for that
            session.delete(found)
            changed.append(f"duplicate yank {key[0]} {key[1] or key[2]} removed")
        else:
            rows[key] = found
    for y in yanks:
        key = (y.name, y.version, y.filename)
        what = f"yank {y.name} {y.version or y.filename}"
        if (row := rows.pop(key, None)) is None:
            session.add(
                YankRow(
                    repository_id=repository_id,
                    name=y.name,
                    version=y.version,
                    filename=y.filename,
                    reason=y.reason,
                )
            )
            changed.append(what)
        elif row.reason != y.reason:
            row.reason = y.reason
            changed.append(what)
    if not add_only:
        for key, row in rows.items():
            session.delete(row)
            changed.append(f"unyank {key[0]} {key[1] or key[2]}")
    return changed


def _set_statuses(
    session: Session, repository_id: str, statuses: tuple[StatusEntry, ...], *, add_only: bool
) -> list[str]:
    rows = {
        s.name: s
        for s in session.scalars(
            select(ProjectStatus).where(ProjectStatus.repository_id == repository_id)
        )
    }
    changed = []
    for s in statuses:
        if (row := rows.pop(s.name, None)) is None:
            session.add(
                ProjectStatus(
                    repository_id=repository_id, name=s.name, status=s.status, reason=s.reason
                )
            )
        elif (row.status, row.reason) != (s.status, s.reason):
            row.status, row.reason = s.status, s.reason
        else:
            continue
        changed.append(f"status {s.name} {s.status}")
    if not add_only and rows:
        for batch in in_batches([r.id for r in rows.values()]):
            session.execute(
                delete(ProjectStatus).where(ProjectStatus.id.in_(batch)),
                execution_options={"synchronize_session": False},  # its rows are not used again
            )
        changed += [f"status {name} cleared" for name in rows]
    return changed


def _listed(problems: list[str]) -> str:
    shown = "; ".join(problems[:10])
    more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
    return f"{len(problems)} problem(s): {shown}{more}"
