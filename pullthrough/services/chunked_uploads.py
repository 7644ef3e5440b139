"""Pulp core's chunked uploads: a file sent in chunks (by any node), then committed into an
artifact or made content.

Chunks are kept where every node sees them: their bytes in the store, by sha256, and a row each
in the catalog (orphans.recorded counts them, so nothing else removes bytes a chunk records).
They are written like an artifact's bytes, under the bytes' lock until their row is committed,
and removed under it when nothing else records them: after a commit, when the upload is deleted,
or when orphan cleanup finds it stale. The whole file is made only from complete chunks, and
checked: an artifact (services.artifacts) or a package (services.uploads) of the bytes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import IO, cast

from sqlalchemy import delete, select

from pullthrough.catalog.db import Catalog
from pullthrough.catalog.models import Artifact, Upload, UploadChunk
from pullthrough.core.chunks import (
    ChunkRefused,
    check_complete,
    check_length,
    check_range,
    parse_content_range,
)
from pullthrough.services import audit
from pullthrough.services.artifacts import Artifacts
from pullthrough.services.orphans import release, storing
from pullthrough.services.tasks import Ref, TaskContext
from pullthrough.storage.ledger import Ledger
from pullthrough.storage.locks import STORED_WAIT_SECONDS, Locks, stored_bytes
from pullthrough.storage.store import BlobStore, Opened, from_start

log = logging.getLogger(__name__)
COPY_SIZE = 1024 * 1024
COMMIT = "pullthrough.tasks.upload_commit"  # the task of `POST <upload>commit/`


class UploadGone(LookupError):
    """No such upload (deleted, committed or cleaned up meanwhile): 404."""


class ChunkedUploads:
    def __init__(
        self, catalog: Catalog, store: BlobStore, ledger: Ledger, locks: Locks, artifacts: Artifacts
    ) -> None:
        self.catalog = catalog
        self.store = store
        self.ledger = ledger
        self.locks = locks
        self.artifacts = artifacts

    def add_chunk(
        self,
        upload_id: str,
        stream: IO[bytes],
        content_range: str | None,
        sha256: str | None = None,
        *,
        actor: str,
        subject: str,
        address: str = "",
    ) -> None:
        """Store a chunk at the place its Content-Range header says, checked against the
        upload's size and the chunk's `sha256` (if given); a chunk sent again at the same
        offset replaces the one there. ChunkRefused says what is wrong; UploadGone."""
        where = parse_content_range(content_range)
        with self.catalog.reading() as session:
            size = session.scalar(select(Upload.size).where(Upload.id == upload_id))
        if size is None:
            raise UploadGone(upload_id)
        check_range(where, size)
        replaced: tuple[str, int] | None = None
        with self.store.writer() as writer:
            remaining = where.length + 1  # one more than the range: a larger chunk is refused
            while remaining > 0 and (data := stream.read(min(COPY_SIZE, remaining))):
                writer.write(data)
                remaining -= len(data)
            check_length(where, writer.size)
            digest = writer.digest()
            if sha256 and sha256.lower() != digest:
                raise ChunkRefused("Checksum does not match chunk upload.")
            sizes = {digest: writer.size}
            with (
                storing(self.catalog, self.ledger, self.locks, self.store, sizes),
                self.catalog.session() as session,
            ):
                upload = session.get(Upload, upload_id, with_for_update=True)
                if upload is None:  # deleted since: its deletion saw no such chunk
                    raise UploadGone(upload_id)
                at = select(UploadChunk).where(
                    UploadChunk.upload_id == upload_id, UploadChunk.offset == where.start
                )
                if (old := session.scalar(at)) is not None:
                    replaced = (old.sha256, old.size)
                    session.delete(old)
                    session.flush()
                chunk = UploadChunk(
                    upload_id=upload_id, offset=where.start, size=writer.size, sha256=digest
                )
                session.add(chunk)
                session.flush()
                writer.commit()  # visible only now: checked and recorded
                detail = {"offset": where.start, "size": writer.size, "sha256": digest}
                audit.record(
                    session, actor, "uploads_update", subject,
                    address=address, detail=detail,
                )  # fmt: skip
        if replaced is not None and replaced[0] != digest:
            self._release(*replaced)

    @contextmanager
    def assembled(self, upload_id: str) -> Iterator[IO[bytes]]:
        """The whole file, read from the upload's chunks in order: ChunkRefused unless they
        cover its size exactly; UploadGone."""
        with self.catalog.reading() as session:
            upload = session.get(Upload, upload_id)
            if upload is None:
                raise UploadGone(upload_id)
            chunks = [(c.offset, c.size, c.sha256) for c in upload.chunks]
            size = upload.size
        check_complete([(offset, length) for offset, length, _ in chunks], size)
        joined = _Joined(self.store, [sha for _, _, sha in chunks])
        try:
            yield cast(IO[bytes], joined)
        finally:
            joined.close()

    def commit(
        self,
        upload_id: str,
        sha256: str,
        *,
        actor: str,
        subject: Callable[[str], str],
        address: str = "",
    ) -> Artifact:
        """An artifact of the upload's bytes, checked against `sha256` (ArtifactRefused);
        then the upload goes, as in Pulp: it cannot make another."""
        with self.assembled(upload_id) as stream:
            artifact = self.artifacts.create(
                stream, digests={"sha256": sha256}, actor=actor, subject=subject, address=address
            )
        self.discard(upload_id)
        return artifact

    def delete(self, upload_id: str, *, actor: str, subject: str, address: str = "") -> None:
        """Remove an upload, its chunks, and their bytes unless something else records them."""
        self._delete(upload_id, (actor, subject, address))

    def discard(self, upload_id: str) -> None:
        """Remove an upload that was used (or is stale), if it is still there."""
        with suppress(UploadGone):
            self._delete(upload_id, None)

    def _delete(self, upload_id: str, audited: tuple[str, str, str] | None) -> None:
        with self.catalog.session() as session:
            upload = session.get(Upload, upload_id, with_for_update=True)
            if upload is None:
                raise UploadGone(upload_id)
            owned = select(UploadChunk.sha256, UploadChunk.size).where(
                UploadChunk.upload_id == upload_id
            )
            hashes = {(sha256, size) for sha256, size in session.execute(owned)}
            session.execute(delete(UploadChunk).where(UploadChunk.upload_id == upload_id))
            session.delete(upload)
            if audited is not None:
                actor, subject, address = audited
                audit.record(session, actor, "uploads_delete", subject, address=address)
        for sha256, size in hashes:
            self._release(sha256, size)

    def _release(self, sha256: str, size: int) -> None:
        """Remove a chunk's bytes unless something else records them (another chunk, a
        package, an artifact, the cache), checked under their lock. A pull-through copy of the
        same bytes (cache content in no repository) that only the chunk kept from eviction
        (which then forgot it) is the cache's again, as an artifact's deleted: its size limit
        evicts it in its turn, else nothing would ever remove it."""
        with stored_bytes(self.locks, sha256).held(STORED_WAIT_SECONDS):
            release(self.catalog, self.ledger, self.store, sha256, size)


class _Joined:
    """A file read from stored chunks one after the other (for shutil.copyfileobj)."""

    def __init__(self, store: BlobStore, hashes: list[str]) -> None:
        self.store = store
        self.todo = list(reversed(hashes))
        self.current: Opened | None = None

    def read(self, size: int = -1) -> bytes:
        while True:
            if self.current is None:
                if not self.todo:
                    return b""
                sha256 = self.todo.pop()
                self.current = self.store.open(sha256, read_from=from_start)  # one GET each
                if self.current is None:
                    raise ChunkRefused(f"A chunk of the upload is no longer stored ({sha256}).")
            data = self.current.file.read(size if size > 0 else COPY_SIZE)
            if data:
                return data
            self.close()

    def close(self) -> None:
        if self.current is not None:
            self.current.file.close()
            self.current = None


def commit_task(ctx: TaskContext) -> None:
    """The task: args `upload_id`, `sha256`, `actor`, `address`, `artifacts` (the artifacts'
    list href, which an artifact's href starts with, for the audit trail)."""
    args = ctx.args
    try:
        artifact = ctx.services.chunked_uploads.commit(
            args["upload_id"],
            args["sha256"],
            actor=args["actor"],
            subject=lambda id: f"{args['artifacts']}{id}/",
            address=args.get("address", ""),
        )
    except UploadGone:
        raise LookupError("The upload was not found (deleted meanwhile).") from None
    ctx.outcome.created.append(Ref("artifact", artifact.id))
    ctx.completed("upload.commit", "Create an artifact", 1)
