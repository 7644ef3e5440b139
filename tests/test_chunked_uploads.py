"""Chunked uploads in-process (services.chunked_uploads): chunks kept in the store and the
catalog, checked; a commit makes a checked artifact and removes the chunks; a deleted, replaced
or stale upload leaves no chunk bytes, except bytes something else records; the same on S3."""

from __future__ import annotations

import hashlib
import io
import os
import re
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from test_artifacts import artifact_ids, artifact_of
from test_services import WHL_02, main_and_wheel, queue, services, stored_soon, streamed, task

from pullthrough.catalog.models import Upload, UploadChunk
from pullthrough.core.chunks import ChunkRefused
from pullthrough.services.artifacts import ArtifactRefused, Artifacts
from pullthrough.services.chunked_uploads import COMMIT, ChunkedUploads, UploadGone
from pullthrough.services.container import ORPHAN_CLEANUP, Services
from pullthrough.storage.s3 import S3Location, S3Store
from support.seaweed import S3Server
from support.upstream import Upstream

__all__ = ["services"]  # the fixture, shared with test_services
SIZE = 2500


def new_upload(svc: Services, size: int) -> str:
    with svc.catalog.session() as session:
        upload = Upload(size=size)
        session.add(upload)
        session.flush()
        return upload.id


def send(uploads: ChunkedUploads, upload_id: str, data: bytes, start: int, **kw: str) -> None:
    header = f"bytes {start}-{start + len(data) - 1}/{kw.pop('total', '*')}"
    uploads.add_chunk(
        upload_id, io.BytesIO(data), header, kw.get("sha256"), actor="admin", subject="u"
    )


def send_all(uploads: ChunkedUploads, upload_id: str, data: bytes, size: int = 1000) -> None:
    for start in range(0, len(data), size):
        send(uploads, upload_id, data[start : start + size], start)


def hashes(data: bytes, size: int = 1000) -> list[str]:
    return [hashlib.sha256(data[i : i + size]).hexdigest() for i in range(0, len(data), size)]


def chunk_rows(svc: Services) -> list[tuple[int, int]]:
    with svc.catalog.reading() as session:
        found = select(UploadChunk.offset, UploadChunk.size).order_by(UploadChunk.offset)
        return [(o, s) for o, s in session.execute(found)]


def test_chunks_are_committed_into_an_artifact_and_then_go(services: Services) -> None:
    data = os.urandom(SIZE)
    upload_id = new_upload(services, SIZE)
    send(services.chunked_uploads, upload_id, data[2000:], 2000)  # in any order
    send(services.chunked_uploads, upload_id, data[:1000], 0, total=str(SIZE))
    send(services.chunked_uploads, upload_id, data[1000:2000], 1000)
    assert chunk_rows(services) == [(0, 1000), (1000, 1000), (2000, 500)]
    assert all(services.store.has(h) for h in hashes(data))

    sha256 = hashlib.sha256(data).hexdigest()
    artifact = services.chunked_uploads.commit(
        upload_id, sha256, actor="admin", subject=lambda id: id
    )
    assert (artifact.sha256, artifact.size) == (sha256, SIZE)
    opened = services.store.open(sha256)
    assert opened is not None
    with opened.file as fh:
        assert fh.read() == data
    assert chunk_rows(services) == []
    assert not any(services.store.has(h) for h in hashes(data))
    with services.catalog.reading() as session:
        assert session.get(Upload, upload_id) is None


def test_a_chunk_with_a_wrong_sha256_or_out_of_range_is_refused_and_not_kept(
    services: Services,
) -> None:
    data = os.urandom(1000)
    upload_id = new_upload(services, SIZE)
    with pytest.raises(ChunkRefused, match=re.escape("Checksum does not match chunk upload.")):
        send(services.chunked_uploads, upload_id, data, 0, sha256="0" * 64)
    with pytest.raises(ChunkRefused, match=re.escape("End byte is greater than upload size.")):
        send(services.chunked_uploads, upload_id, data, 2000)
    with pytest.raises(ChunkRefused, match=re.escape("Chunk size does not match content range.")):
        services.chunked_uploads.add_chunk(
            upload_id, io.BytesIO(data), "bytes 0-499/*", actor="admin", subject="u"
        )
    assert chunk_rows(services) == []
    assert not services.store.has(hashlib.sha256(data).hexdigest())
    assert list(services.store.tmp.glob("*.partial")) == []
    with pytest.raises(UploadGone):
        send(services.chunked_uploads, "00000000-0000-0000-0000-000000000000", data, 0)


def test_a_commit_with_a_wrong_sha256_stores_nothing_and_a_delete_removes_the_chunks(
    services: Services,
) -> None:
    data = os.urandom(SIZE)
    upload_id = new_upload(services, SIZE)
    send_all(services.chunked_uploads, upload_id, data)
    with pytest.raises(ArtifactRefused, match=re.escape("The sha256 checksum did not match.")):
        services.chunked_uploads.commit(upload_id, "1" * 64, actor="admin", subject=lambda i: i)
    assert not services.store.has(hashlib.sha256(data).hexdigest())
    assert artifact_ids(services) == set()
    assert len(chunk_rows(services)) == 3  # kept, as Pulp's: the client deletes the upload

    services.chunked_uploads.delete(upload_id, actor="admin", subject="u")
    assert chunk_rows(services) == []
    assert not any(services.store.has(h) for h in hashes(data))
    assert list(services.store.tmp.glob("*.partial")) == []
    with pytest.raises(UploadGone):
        services.chunked_uploads.delete(upload_id, actor="admin", subject="u")


def test_an_incomplete_upload_is_not_committed(services: Services) -> None:
    data = os.urandom(SIZE)
    upload_id = new_upload(services, SIZE)
    send(services.chunked_uploads, upload_id, data[:1000], 0)
    send(services.chunked_uploads, upload_id, data[1500:], 1500)
    sha256 = hashlib.sha256(data).hexdigest()
    with pytest.raises(ChunkRefused, match="bytes 1000-1499 of 2500 were not uploaded"):
        services.chunked_uploads.commit(upload_id, sha256, actor="admin", subject=lambda i: i)
    send(services.chunked_uploads, upload_id, data[900:1600], 900)  # overlaps both
    with pytest.raises(ChunkRefused, match="Chunks overlap"):
        services.chunked_uploads.commit(upload_id, sha256, actor="admin", subject=lambda i: i)
    assert artifact_ids(services) == set()


def test_bytes_shared_with_another_upload_or_an_artifact_stay_until_neither_records_them(
    services: Services,
) -> None:
    data = os.urandom(1000)
    sha256 = hashlib.sha256(data).hexdigest()
    first, second = new_upload(services, 1000), new_upload(services, 1000)
    send(services.chunked_uploads, first, data, 0)
    send(services.chunked_uploads, second, data, 0)
    services.chunked_uploads.delete(first, actor="admin", subject="u")
    assert services.store.has(sha256)  # the second upload's chunk
    artifact_of(services, data)  # an artifact of the same bytes
    services.chunked_uploads.delete(second, actor="admin", subject="u")
    assert services.store.has(sha256)  # the artifact's


def test_a_chunk_sent_again_replaces_the_one_at_its_offset_and_its_bytes(
    services: Services,
) -> None:
    old, new = os.urandom(1000), os.urandom(1000)
    upload_id = new_upload(services, 1000)
    send(services.chunked_uploads, upload_id, old, 0)
    send(services.chunked_uploads, upload_id, new, 0)
    assert chunk_rows(services) == [(0, 1000)]
    assert not services.store.has(hashlib.sha256(old).hexdigest())
    artifact = services.chunked_uploads.commit(
        upload_id, hashlib.sha256(new).hexdigest(), actor="admin", subject=lambda i: i
    )
    assert artifact.size == 1000


def test_orphan_cleanup_removes_uploads_past_the_protection_time(services: Services) -> None:
    data = os.urandom(1000)
    upload_id = new_upload(services, 1000)
    send(services.chunked_uploads, upload_id, data, 0)
    queue(services, ORPHAN_CLEANUP)  # the default protection time: a day
    assert services.new_worker().run_once()
    assert chunk_rows(services) == [(0, 1000)]

    cleanup = queue(services, ORPHAN_CLEANUP, orphan_protection_time=0)
    assert services.new_worker().run_once()
    assert chunk_rows(services) == []
    assert not services.store.has(hashlib.sha256(data).hexdigest())
    reports = {r["code"]: r["done"] for r in task(services, cleanup).progress_reports}
    assert reports["clean-up.uploads"] == 1


def test_the_commit_task_records_the_artifact_or_fails_with_the_reason(
    services: Services,
) -> None:
    data = os.urandom(SIZE)
    upload_id = new_upload(services, SIZE)
    send_all(services.chunked_uploads, upload_id, data)
    args = {"upload_id": upload_id, "actor": "admin", "artifacts": "/a/"}
    failed = queue(services, COMMIT, sha256="2" * 64, **args)
    assert services.new_worker().run_once()
    row = task(services, failed)
    assert row.state == "failed" and row.error is not None
    assert row.error["description"] == "The sha256 checksum did not match."

    done = queue(services, COMMIT, sha256=hashlib.sha256(data).hexdigest(), **args)
    assert services.new_worker().run_once()
    row = task(services, done)
    assert row.state == "completed"
    assert row.created_resources == [{"kind": "artifact", "id": next(iter(artifact_ids(services)))}]


def test_chunks_in_s3_make_an_artifact_and_leave_no_object(
    services: Services, s3_server: S3Server, tmp_path: Path
) -> None:
    location = S3Location(
        s3_server.endpoint_url, s3_server.bucket("chunked"), s3_server.region, "",
        s3_server.access_key, s3_server.secret_key, "path", 0,
    )  # fmt: skip
    store = S3Store(location, tmp_path / "s3-tmp")
    svc = services
    artifacts = Artifacts(svc.catalog, store, svc.ledger, svc.locks)
    uploads = ChunkedUploads(svc.catalog, store, svc.ledger, svc.locks, artifacts)
    data = os.urandom(SIZE)
    upload_id = new_upload(svc, SIZE)
    send_all(uploads, upload_id, data)
    assert all(store.has(h) for h in hashes(data))
    with pytest.raises(ArtifactRefused):
        uploads.commit(upload_id, "3" * 64, actor="admin", subject=lambda i: i)
    sha256 = hashlib.sha256(data).hexdigest()
    assert not store.has(sha256)

    calls: list[str] = []
    real_call = store.call

    def noted(method: str, **args: Any) -> Any:
        calls.append(method)
        return real_call(method, **args)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(store, "call", noted)
        artifact = uploads.commit(upload_id, sha256, actor="admin", subject=lambda i: i)
    chunks = len(hashes(data))
    assert calls[:chunks] == ["get_object"] * chunks  # each chunk read with a GET, no HEAD first
    opened = store.open(artifact.sha256)
    assert opened is not None
    with opened.file as fh:
        assert fh.read() == data
    assert not any(store.has(h) for h in hashes(data))

    other = new_upload(svc, 1000)
    send(uploads, other, data[:1000], 0)
    uploads.delete(other, actor="admin", subject="u")
    listed = s3_server.client().list_objects_v2(Bucket=location.bucket)
    assert [o["Key"] for o in listed.get("Contents", [])] == [
        f"{sha256[:2]}/{sha256[2:4]}/{sha256}"
    ]


def test_a_cached_file_a_chunk_kept_from_eviction_is_still_the_caches_once_the_upload_goes(
    services: Services, upstream: Upstream
) -> None:
    """An eviction pass that meets a cached file whose bytes an upload's chunk records leaves
    them (kept). Once the upload goes, they are the cache's own again: evictable, or removed -
    never a cached file that no ledger entry counts, that orphan cleanup leaves (the cache's)
    and that no eviction ever removes."""
    dist, expected = main_and_wheel(services, upstream)
    with closing(streamed(services, dist, WHL_02)) as opened:
        assert b"".join(opened) == expected.data
    stored_soon(opened)
    assert services.ledger.tracks(expected.sha256)
    upload_id = new_upload(services, len(expected.data))
    send(services.chunked_uploads, upload_id, expected.data, 0)  # one chunk: the same bytes

    services.ledger.max_size = 1
    services.pullthrough.evict_if_needed()
    assert services.store.has(expected.sha256)  # the chunk's
    services.chunked_uploads.delete(upload_id, actor="admin", subject="u")

    assert services.ledger.tracks(expected.sha256) or not services.store.has(expected.sha256)
    services.pullthrough.evict_if_needed()  # evicted in its turn
    assert not services.store.has(expected.sha256)
