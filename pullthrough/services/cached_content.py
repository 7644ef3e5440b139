"""Pull-through files as catalog content: recorded as orphans when cached (so they can be
promoted into a repository), protected from eviction once a repository holds them."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import and_, delete, exists, or_, select

from pullthrough.catalog.db import Catalog
from pullthrough.catalog.kept import keeping
from pullthrough.catalog.models import Package
from pullthrough.catalog.versions import in_any_repository
from pullthrough.core.filenames import InvalidFilename
from pullthrough.core.metadata import InvalidDistribution
from pullthrough.core.models import DistFile
from pullthrough.services.packages import apply_index_fields, package_from_file

log = logging.getLogger(__name__)


class CachedContent:
    def __init__(self, catalog: Catalog, drop: Callable[[str], None] | None = None) -> None:
        self.catalog = catalog
        # Removes bytes an evicted package alone recorded, if nothing records them now
        # (orphans.drop_unrecorded): the PEP 658 metadata a sync kept for a copy it took in
        self.drop = drop

    def describe(self, entry: DistFile, sha256: str, path: Path) -> Package | None:
        """The orphaned package a verified file becomes, read from its bytes at `path` before
        they are stored (an object store would otherwise be read back); None for a file the
        catalog does not list (a `.metadata` file, or one whose metadata cannot be read)."""
        if entry.filename.endswith(".metadata"):
            return None  # the METADATA is not kept separately: a cached wheel's is read on demand
        try:
            package, _ = package_from_file(path, entry.filename, sha256=sha256)
        except (InvalidDistribution, InvalidFilename, FileNotFoundError) as exc:
            log.info("cached %s without a catalog entry: %s", entry.filename, exc)
            return None
        package.origin = "cache"
        apply_index_fields(package, entry)
        return package

    def cached(self, package: Package) -> None:
        """A described file is now stored: record it as an orphaned package, unless a package
        of that filename is recorded already (by another worker, a sync or an upload)."""
        self.catalog.add_new(package)

    def evict(self, sha256: str, remove: Callable[[], object]) -> bool:
        """Remove a cached file and its orphaned packages - unless a repository holds it by now,
        or an artifact or an upload's chunk records its bytes. The check and the removal happen
        in one transaction that locks the file's packages (SQLite's write lock; FOR UPDATE on
        PostgreSQL): a promotion (`modify`) cannot commit in between and leave a repository
        with a package whose file is gone. Returns whether the file was removed.

        Bytes a package other than a pull-through copy records stay (an upload's
        entry outlives its commit if its process is killed in between): they are orphan
        cleanup's to remove, once in no repository."""
        with self.catalog.session() as session:
            locked = select(Package.id).where(Package.sha256 == sha256).with_for_update()
            session.execute(locked).all()
            # Bytes any package records as its PEP 658 metadata stay, a cached copy's too (a
            # sync's, which the cache tracks until it records them): only its eviction drops them
            uses = or_(
                and_(Package.sha256 == sha256, Package.origin != "cache"),
                Package.metadata_sha256 == sha256,
            )
            held = or_(
                in_any_repository(sha256),
                keeping(sha256),  # an artifact's or a chunk's bytes stay while it does
                exists().where(uses),
            )
            if session.scalar(select(held)):  # one query: eviction runs it for every victim
                return False
            kept_metadata = select(Package.metadata_sha256).where(
                Package.sha256 == sha256, Package.metadata_sha256.is_not(None)
            )
            metadata = {m for m in session.scalars(kept_metadata) if m is not None}
            remove()
            session.execute(delete(Package).where(Package.sha256 == sha256))
        # A pull-through copy keeps no metadata of its own, but one a sync took in does (sync's
        # _metadata_of); recorded by the package alone, it would stay in the store for good.
        for sha in sorted(metadata - {sha256}):
            if self.drop is not None:
                try:
                    self.drop(sha)
                except Exception as exc:  # the eviction is done: the file is left, as before
                    log.warning("eviction left the metadata file %s: %s", sha, exc)
        return True
