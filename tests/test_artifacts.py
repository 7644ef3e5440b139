"""Artifacts' bytes kept safe, in-process: orphan cleanup removes an artifact no content uses
(bytes and all) and keeps the others, and the pull-through cache never evicts bytes an
artifact records, whichever came first."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any, BinaryIO, cast

import pytest
from sqlalchemy import Engine, event, insert, select
from test_services import (
    WHL_02,
    main_and_wheel,
    queue,
    services,
    settings_for,
    stored_soon,
    streamed,
    task,
)

from pullthrough.app import create_app
from pullthrough.catalog.models import Artifact, Package
from pullthrough.catalog.versions import create_repository
from pullthrough.services.artifacts import ArtifactInUse, ArtifactRefused
from pullthrough.services.container import ORPHAN_CLEANUP, REPAIR, Services
from pullthrough.services.orphans import recorded
from pullthrough.services.repair import repair
from pullthrough.services.tasks import TaskContext
from pullthrough.storage.store import Opened, ReadFrom, from_start, shard
from support.packages import build_wheel
from support.servers import wait_until
from support.upstream import Upstream

__all__ = ["services"]  # the fixture, shared with test_services


def artifact_of(svc: Services, data: bytes, **digests: str) -> Artifact:
    return svc.artifacts.create(
        io.BytesIO(data), digests=digests, actor="admin", subject=lambda id: id
    )


def artifact_ids(svc: Services) -> set[str]:
    with svc.catalog.reading() as session:
        return set(session.scalars(select(Artifact.id)))


def cache(svc: Services, upstream: Upstream) -> bytes:
    """shelf-reader 0.2's wheel, downloaded through the cache: stored, in the ledger, and
    catalogued as cache content."""
    dist, wheel = main_and_wheel(svc, upstream)
    with closing(streamed(svc, dist, WHL_02)) as opened:
        assert b"".join(opened) == wheel.data
    stored_soon(opened)

    def catalogued() -> bool:
        with svc.catalog.reading() as session:
            found = select(Package.id).where(Package.sha256 == wheel.sha256)
            return session.scalar(found) is not None

    assert wait_until(catalogued, 10)
    return wheel.data


def test_orphan_cleanup_removes_only_the_artifacts_no_content_uses(
    services: Services, upstream: Upstream, tmp_path: Path
) -> None:
    unused = artifact_of(services, os.urandom(3000))
    wheel = build_wheel(tmp_path / "w", "acme-used", "1.0")
    used = artifact_of(services, wheel.read_bytes())
    with services.catalog.session() as session:
        repo_id = create_repository(session, name="held").id
    with wheel.open("rb") as fh:  # content of its bytes, in a repository
        services.uploads.upload(repo_id, fh, wheel.name, actor="admin")
    shared = artifact_of(services, cache(services, upstream))  # bytes the cache holds too
    assert not services.ledger.tracks(shared.sha256)  # an artifact's now: not the cache's
    for artifact in (unused, used, shared):  # what a failed import checks before removing
        assert recorded(services.catalog, services.ledger, artifact.sha256)

    queue(services, ORPHAN_CLEANUP, orphan_protection_time=0)
    assert services.new_worker().run_once()

    assert artifact_ids(services) == {used.id, shared.id}
    assert not services.store.has(unused.sha256)
    assert services.store.has(used.sha256) and services.store.has(shared.sha256)


def test_orphan_cleanup_keeps_a_new_unused_artifact_within_the_protection_time(
    services: Services,
) -> None:
    unused = artifact_of(services, os.urandom(3000))
    queue(services, ORPHAN_CLEANUP)  # the default protection time: a day
    assert services.new_worker().run_once()
    assert artifact_ids(services) == {unused.id} and services.store.has(unused.sha256)


@pytest.mark.parametrize("first", ["artifact", "cache"])
def test_the_cache_never_evicts_an_artifacts_bytes(
    services: Services, upstream: Upstream, first: str
) -> None:
    """The download first, then an artifact of its bytes (which takes them out of the ledger);
    or an artifact, then a download of the same bytes that was under way already, which
    records them in the ledger once stored: with the cache over its limit the bytes stay."""
    _, wheel = main_and_wheel(services, upstream)
    if first == "artifact":
        artifact = artifact_of(services, wheel.data)
        services.ledger.record(wheel.sha256, len(wheel.data))  # as that download's _keep does
    else:
        cache(services, upstream)
        artifact = artifact_of(services, wheel.data)
    services.ledger.max_size = 1
    assert services.pullthrough.evict_if_needed() == 0
    assert services.store.has(wheel.sha256)
    assert not services.ledger.tracks(wheel.sha256)  # not the cache's to evict any more
    assert artifact_ids(services) == {artifact.id}


def test_a_wrong_digest_stores_nothing_and_a_used_artifact_is_not_deleted(
    services: Services, tmp_path: Path
) -> None:
    data = os.urandom(2000)
    with pytest.raises(ArtifactRefused, match=r"The sha256 checksum did not match\."):
        artifact_of(services, data, sha256="0" * 64)
    assert artifact_ids(services) == set()
    assert list((services.settings.server.data_dir / "artifacts" / ".tmp").iterdir()) == []
    artifact = artifact_of(services, data, sha512=hashlib.sha512(data).hexdigest())
    with pytest.raises(ArtifactRefused, match="already exists"):
        artifact_of(services, data)

    wheel = build_wheel(tmp_path / "w", "acme-kept", "1.0")
    kept = artifact_of(services, wheel.read_bytes())
    with wheel.open("rb") as fh:
        services.uploads.upload(None, fh, wheel.name, actor="admin")
    with pytest.raises(ArtifactInUse):
        services.artifacts.delete(kept, actor="admin", subject=lambda id: id)
    services.artifacts.delete(artifact, actor="admin", subject=lambda id: id)
    assert artifact_ids(services) == {kept.id}
    assert services.store.has(kept.sha256) and not services.store.has(artifact.sha256)


def test_an_artifact_of_cached_bytes_is_deleted_and_its_bytes_go_back_to_the_cache(
    services: Services, upstream: Upstream
) -> None:
    """A pull-through copy of the same bytes is no content that keeps an artifact: deleted,
    its bytes stay for the cache, whose size limit evicts them (and their cache content)."""
    data = cache(services, upstream)
    artifact = artifact_of(services, data)
    services.artifacts.delete(artifact, actor="admin", subject=lambda id: id)
    assert artifact_ids(services) == set()
    assert services.store.has(artifact.sha256) and services.ledger.tracks(artifact.sha256)
    services.ledger.max_size = 1
    assert services.pullthrough.evict_if_needed() == 1
    assert not services.store.has(artifact.sha256)


def test_an_artifact_whose_row_cannot_be_committed_leaves_no_bytes_behind(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bytes are visible (writer.commit) before the row's transaction commits: a failure
    there (here the audit record's; a lost catalog or a killed process alike) must not leave
    a file nothing records, which no cleanup would ever find: the cache's until committed."""
    data = os.urandom(2000)
    sha256 = hashlib.sha256(data).hexdigest()

    def fail(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the catalog went away")

    monkeypatch.setattr("pullthrough.services.artifacts.audit.record", fail)
    with pytest.raises(RuntimeError):
        artifact_of(services, data)
    assert artifact_ids(services) == set()
    assert not services.store.has(sha256) or recorded(services.catalog, services.ledger, sha256)
    services.ledger.max_size = 1  # the cache's now: evicted in their turn
    services.pullthrough.evict_if_needed()
    assert not services.store.has(sha256)
    monkeypatch.undo()
    artifact = artifact_of(services, data)  # and once committed, never the cache's
    assert services.store.has(sha256) and not services.ledger.tracks(artifact.sha256)


def test_content_from_an_artifact_deleted_meanwhile_is_made_from_the_bytes_opened(
    upstream: Upstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The artifact's bytes are opened to be read (a GET started, on S3), not only looked at
    (a HEAD, whose GET starts at the first read): deleted meanwhile, the bytes opened are
    still read whole and the content is made, not a 500 for a FileNotFoundError."""
    app = create_app(settings_for(upstream, tmp_path))
    svc: Services = app.extensions["pullthrough"]
    try:
        wheel = build_wheel(tmp_path / "w", "acme-gone", "1.0")
        artifact = artifact_of(svc, wheel.read_bytes())
        real_open = svc.store.open

        def open_then_deleted(sha256: str, *, read_from: ReadFrom | None = None) -> Opened | None:
            """As S3Store.open: without `read_from`, a look only (the bytes read later)."""
            opened = real_open(sha256, read_from=read_from) if read_from else None
            if svc.store.has(sha256):
                svc.artifacts.delete(artifact, actor="admin", subject=lambda id: id)
            if opened is not None:
                return opened
            later = lambda: real_open(sha256, read_from=from_start)  # noqa: E731
            return Opened(cast(BinaryIO, _Later(later)), len(wheel.read_bytes()))

        monkeypatch.setattr(svc.store, "open", open_then_deleted)
        password = (tmp_path / "data" / "admin-password").read_text().strip()
        answer = app.test_client().post(
            "/pulp/api/v3/content/python/packages/",
            data={
                "artifact": f"/pulp/api/v3/artifacts/{artifact.id}/",
                "relative_path": wheel.name,
            },
            auth=("admin", password),
        )
        assert answer.status_code == 202, answer.get_data(as_text=True)
        assert svc.store.has(artifact.sha256)
    finally:
        svc.close()


class _Later(io.RawIOBase):
    """A file opened at its first read, as S3Reader starts its GET."""

    def __init__(self, opener: Callable[[], Opened | None]) -> None:
        self.opener = opener
        self.file: BinaryIO | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.file is None:
            opened = self.opener()
            if opened is None:
                raise FileNotFoundError("gone")
            self.file = opened.file
        data = self.file.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
        super().close()


@pytest.mark.parametrize("damage", ["lost", "corrupted"])
def test_a_repair_of_the_whole_catalog_counts_an_artifact_whose_bytes_are_damaged(
    services: Services, upstream: Upstream, damage: str
) -> None:
    """As Pulp's repair of every artifact: bytes the store lost or changed are counted missing
    or corrupted, and logged (they have no source to be fetched again from), also when a
    pull-through copy of them (which need not be stored) is catalogued."""
    artifacts = [
        artifact_of(services, os.urandom(3000)),
        artifact_of(services, cache(services, upstream)),
    ]
    for artifact in artifacts:
        if damage == "lost":
            services.store.delete(artifact.sha256)
        else:
            path = services.settings.server.data_dir / "artifacts" / shard(artifact.sha256)
            path.write_bytes(b"bit rot")
    task_id = queue(services, REPAIR)
    repair(TaskContext(services, task_id, {"repository_id": None}))
    reports = {r["code"]: r["done"] for r in task(services, task_id).progress_reports}
    counted = reports["repair.missing" if damage == "lost" else "repair.corrupted"]
    assert (counted, reports["repair.repaired"]) == (2, 0)


def test_a_content_list_links_each_package_to_its_artifact_in_a_query_or_two(
    upstream: Upstream, tmp_path: Path
) -> None:
    """`GET content/python/packages/?limit=...`: each package's `artifact` is the href of the
    artifact of its bytes, or null; the page asks the catalog for them at once, not with a
    query per package (a round trip each on PostgreSQL)."""
    settings = settings_for(upstream, tmp_path)
    app = create_app(settings)
    svc: Services = app.extensions["pullthrough"]
    try:
        with svc.catalog.session() as session:
            session.execute(
                insert(Package),
                [
                    {"filename": f"many_{i}-1.0-py3-none-any.whl", "name": f"many-{i}"}
                    | {"version": "1.0", "packagetype": "bdist_wheel", "size": 1}
                    | {"sha256": hashlib.sha256(b"%d" % i).hexdigest()}
                    for i in range(300)
                ],
            )
        linked = {i: artifact_of(svc, b"%d" % i) for i in (0, 7, 299)}  # bytes of three of them
        auth = ("admin", (settings.server.data_dir / "admin-password").read_text().strip())
        statements: list[str] = []

        def count(*args: Any) -> None:
            statements.append(args[2])

        event.listen(Engine, "before_cursor_execute", count)
        try:
            answer = app.test_client().get(
                "/pulp/api/v3/content/python/packages/", query_string={"limit": 1000}, auth=auth
            )
        finally:
            event.remove(Engine, "before_cursor_execute", count)
        assert answer.status_code == 200
        shown = {p["name"]: p["artifact"] for p in answer.get_json()["results"]}
        assert len(shown) == 300
        assert {name: href for name, href in shown.items() if href} == {
            f"many-{i}": f"/pulp/api/v3/artifacts/{a.id}/" for i, a in linked.items()
        }
        assert len(statements) < 20, statements  # not one per package
    finally:
        svc.close()
