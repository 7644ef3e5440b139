"""Pulp core's artifacts: bytes stored by sha256, which content may then be created from.

An artifact's bytes are recorded by its row (orphans.recorded): eviction, orphan cleanup and a
failed import leave them. They are written and removed under the bytes' lock, as an upload's."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Mapping
from typing import IO

from sqlalchemy import select

from pullthrough.catalog.db import Catalog
from pullthrough.catalog.models import Artifact, Package
from pullthrough.catalog.versions import is_in_any_repository
from pullthrough.core.digests import FORBIDDEN
from pullthrough.services import audit
from pullthrough.services.orphans import release, storing
from pullthrough.services.uploads import Writing
from pullthrough.storage.ledger import Ledger
from pullthrough.storage.locks import STORED_WAIT_SECONDS, Locks, stored_bytes
from pullthrough.storage.store import BlobStore

log = logging.getLogger(__name__)
Subject = Callable[[str], str]  # an artifact's id -> what the audit trail names (its href)


class ArtifactRefused(ValueError):
    """The artifact cannot be made; the message says why (Pulp's words, 400)."""


class ArtifactInUse(Exception):
    """Content uses the artifact: it cannot be deleted (409, as Pulp)."""


class Artifacts:
    def __init__(self, catalog: Catalog, store: BlobStore, ledger: Ledger, locks: Locks) -> None:
        self.catalog = catalog
        self.store = store
        self.ledger = ledger
        self.locks = locks

    def create(
        self,
        stream: IO[bytes],
        *,
        digests: Mapping[str, str],
        actor: str,
        subject: Subject,
        address: str = "",
    ) -> Artifact:
        """Store the bytes, checked against the digests given, and record them; the
        bytes' lock is held from before they are visible until their row is committed, and
        their cache ledger entry (a pull-through copy of the same bytes) is dropped within it:
        no eviction takes them."""
        forbidden = [a for a in FORBIDDEN if digests.get(a)]
        if forbidden:
            raise ArtifactRefused(
                f"Checksum algorithms {forbidden} forbidden for this Pulp instance."
            )
        with self.store.writer(artifact=True) as writer:
            shutil.copyfileobj(stream, Writing(writer), 1024 * 1024)
            found = writer.artifact_digests()
            for algorithm, value in found.items():
                if digests.get(algorithm) and digests[algorithm].lower() != value:
                    raise ArtifactRefused(f"The {algorithm} checksum did not match.")
            sha256 = found["sha256"]
            sizes = {sha256: writer.size}
            with storing(self.catalog, self.ledger, self.locks, self.store, sizes):
                with self.catalog.session() as session:
                    if session.scalar(select(Artifact.id).where(Artifact.sha256 == sha256)):
                        raise ArtifactRefused(
                            f"Artifact with sha256 checksum of '{sha256}' already exists."
                        )
                    artifact = Artifact(size=writer.size, **found)
                    session.add(artifact)
                    session.flush()
                    writer.commit()  # visible only now: checked and recorded
                    detail = {"sha256": sha256, "size": writer.size}
                    audit.record(
                        session, actor, "artifacts_create", subject(artifact.id),
                        address=address, detail=detail,
                    )  # fmt: skip
                self.ledger.forget(sha256)  # an artifact's bytes are never evicted
        log.info("stored artifact %s (%d bytes)", sha256, artifact.size)
        return artifact

    def delete(
        self, artifact: Artifact, *, actor: str, subject: Subject, address: str = ""
    ) -> None:
        """Remove an artifact no content uses (else ArtifactInUse), and its bytes unless
        something else records them: checked and removed under their lock. A pull-through
        copy of the same bytes (cache content in no repository) is no use that keeps it: the
        bytes go back to the cache, whose size limit evicts them in their turn."""
        sha256 = artifact.sha256
        with stored_bytes(self.locks, sha256).held(STORED_WAIT_SECONDS):
            with self.catalog.session() as session:
                found = select(Package.origin).where(Package.sha256 == sha256)
                origins = set(session.scalars(found))
                if origins - {"cache"} or is_in_any_repository(session, sha256):
                    raise ArtifactInUse(
                        "The Artifact cannot be deleted because it is associated with Content."
                    )
                gone = session.get(Artifact, artifact.id)
                if gone is not None:  # else deleted meanwhile (orphan cleanup): nothing to record
                    session.delete(gone)
                    detail = {"sha256": sha256}
                    audit.record(
                        session, actor, "artifacts_delete", subject(artifact.id),
                        address=address, detail=detail,
                    )  # fmt: skip
            release(self.catalog, self.ledger, self.store, sha256, artifact.size)
