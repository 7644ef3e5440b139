"""Offline bundles: the manifest (built, read back, and every way it can be wrong), the archive's
members against it (path traversal names, missing and extra files, sizes), and export/import
between two catalogs in-process (SQLite and local disk, no server): what is copied, what an
import refuses with nothing changed, and that importing again changes nothing."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import tarfile
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from hashlib import sha256
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select

from pullthrough.catalog.models import (
    AuditEvent,
    Package,
    ProjectStatus,
    Repository,
    RepositoryBlocklistEntry,
    RepositoryVersion,
    Yank,
)
from pullthrough.catalog.versions import create_repository, version_packages
from pullthrough.config import load_settings
from pullthrough.core.bundles import (
    MANIFEST,
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
    parse_manifest,
)
from pullthrough.services.bundles import BundleError, Bundles
from pullthrough.services.container import Services, build_services
from pullthrough.services.local_content import LocalContent
from pullthrough.storage.locks import stored_bytes
from support.packages import build_sdist, build_wheel
from support.postgres import private_database
from support.seaweed import S3Server

SHA_A = "a" * 64
SHA_B = "b" * 64
SHA_C = "c" * 64
WHEEL = "acme_lib-1.0-py3-none-any.whl"
WHEN = datetime(2026, 5, 4, 3, 2, 1, 123456, tzinfo=UTC)


def entry(**fields: Any) -> PackageEntry:
    values: dict[str, Any] = {
        "filename": WHEEL,
        "name": "acme-lib",
        "version": "1.0",
        "sha256": SHA_A,
        "size": 10,
        "upload_time": WHEN,
        "metadata": BundleFile(f"metadata/{WHEEL}.metadata", SHA_B, 3),
    }
    return PackageEntry(**{**values, **fields})


def manifest(*packages: PackageEntry, **fields: Any) -> Manifest:
    values: dict[str, Any] = {
        "repository": "corp",
        "version": 3,
        "created": WHEN,
        "packages": packages or (entry(),),
    }
    return Manifest(**{**values, **fields})


def document(**changes: Any) -> dict[str, Any]:
    """A valid manifest as JSON, with top-level keys changed."""
    doc: dict[str, Any] = json.loads(manifest_bytes(manifest()))
    doc.update(changes)
    return doc


def package_doc(**changes: Any) -> dict[str, Any]:
    doc = document()
    package: dict[str, Any] = {**doc["packages"][0], **changes}
    return document(packages=[package])


# ---- the manifest ----------------------------------------------------------------------------


def test_a_manifest_reads_back_as_written() -> None:
    written = manifest(
        entry(requires_python=">=3.9", yanked=True, yanked_reason="old", uploaded_by="ann"),
        entry(
            filename="acme_lib-2.0.tar.gz",
            version="2.0",
            sha256=SHA_C,
            metadata=None,
            origin="sync",
            upload_time=datetime(2026, 1, 1, tzinfo=UTC),
        ),
        yanks=(YankEntry("acme-lib", version="2.0", reason="broken"),),
        statuses=(StatusEntry("acme-lib", "deprecated", "use acme"),),
        generator="pullthrough 1.0",
    )
    read = parse_manifest(manifest_bytes(written))
    assert read == written
    doc = json.loads(manifest_bytes(written))
    first = doc["packages"][0]
    assert first["upload_time"] == "2026-05-04T03:02:01.123456Z"  # as the pages show it
    assert first["path"] == f"files/{WHEEL}"
    assert first["metadata"] == {"path": f"metadata/{WHEEL}.metadata", "sha256": SHA_B, "size": 3}
    assert read.files() == {
        f"files/{WHEEL}": BundleFile(f"files/{WHEEL}", SHA_A, 10),
        f"metadata/{WHEEL}.metadata": BundleFile(f"metadata/{WHEEL}.metadata", SHA_B, 3),
        "files/acme_lib-2.0.tar.gz": BundleFile("files/acme_lib-2.0.tar.gz", SHA_C, 10),
    }
    assert read.total_size() == 23


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[]", "must be a JSON object"),
        (json.dumps(document(format="zip")).encode(), "not a pullthrough bundle"),
        (json.dumps(document(format_version=2)).encode(), "format version 2 is not supported"),
        (json.dumps(document(repository="corp")).encode(), "repository must be a JSON object"),
        (json.dumps(document(repository={"name": "corp"})).encode(), "whole number"),
        (json.dumps(document(repository={"name": "", "version": 1})).encode(), "not a repo"),
        (json.dumps(document(packages={})).encode(), "packages must be a list"),
        (json.dumps(document(packages=[1])).encode(), "packages[0] must be a JSON object"),
        (json.dumps(document(created="yesterday")).encode(), "not an ISO 8601 time"),
        (json.dumps(document(created="2026-01-01T00:00:00")).encode(), "no time zone"),
        (
            json.dumps(package_doc(upload_time="0001-01-01T00:00:00+14:00")).encode(),
            "upload_time '0001-01-01T00:00:00\\+14:00' is out of range in UTC",
        ),
        (
            json.dumps(package_doc(upload_time="9999-12-31T23:00:00-10:00")).encode(),
            "upload_time '9999-12-31T23:00:00-10:00' is out of range in UTC",
        ),
        (json.dumps(document(created="9999-12-31T23:59:59-00:01")).encode(), "out of range"),
        (json.dumps(package_doc(filename="../x.whl")).encode(), "not a filename"),
        (json.dumps(package_doc(filename="a/b-1.0.tar.gz")).encode(), "not a filename"),
        (json.dumps(package_doc(filename=".hidden-1.0.tar.gz")).encode(), "not a filename"),
        (json.dumps(package_doc(filename="acme_lib-1.0.egg")).encode(), "only wheels and sdists"),
        (json.dumps(package_doc(filename="acme.whl")).encode(), "Invalid"),
        (json.dumps(package_doc(name="other")).encode(), "is not the filename's"),
        (json.dumps(package_doc(path="../../etc/passwd")).encode(), "path must be"),
        (json.dumps(package_doc(sha256="A" * 64)).encode(), "64 lowercase hex"),
        (json.dumps(package_doc(sha256="abc")).encode(), "64 lowercase hex"),
        (json.dumps(package_doc(size=-1)).encode(), "whole number of bytes"),
        (json.dumps(package_doc(size=True)).encode(), "whole number of bytes"),
        (json.dumps(package_doc(size="10")).encode(), "whole number of bytes"),
        (json.dumps(package_doc(version=1)).encode(), "version must be a string"),
        (json.dumps(package_doc(yanked="no")).encode(), "yanked must be true or false"),
        (json.dumps(package_doc(yanked_reason=1)).encode(), "string or null"),
        (json.dumps(package_doc(upload_time=None)).encode(), "upload_time must be a string"),
        (json.dumps(package_doc(origin="elsewhere")).encode(), "origin must be"),
        (
            json.dumps(package_doc(uploaded_by="x" * 256)).encode(),
            "uploaded_by is longer than 255 characters",
        ),
        (
            json.dumps(document(yanks=[{"name": "a" * 256, "version": "1"}])).encode(),
            "yanks[0]: name is longer than 255",
        ),
        (
            json.dumps(document(yanks=[{"name": "a", "version": "1" + ".0" * 128}])).encode(),
            "yanks[0]: version is longer than 255",
        ),
        (
            json.dumps(
                document(yanks=[{"name": "a", "filename": f"a-1.0-{'x' * 250}-none-any.whl"}])
            ).encode(),
            "yanks[0]: filename is longer than 255",
        ),
        (
            json.dumps(document(project_statuses=[{"name": "a" * 256, "status": "archived"}])),
            "project_statuses[0]: name is longer than 255",
        ),
        (
            json.dumps(package_doc(metadata={"path": "metadata/x", "sha256": SHA_B, "size": 1})),
            "metadata.path must be",
        ),
        (json.dumps(package_doc(metadata={"path": "x", "size": 1})).encode(), "sha256 must"),
        (
            json.dumps(document(packages=[package_doc()["packages"][0]] * 2)).encode(),
            "listed twice",
        ),
        (
            manifest_bytes(
                manifest(
                    entry(), entry(filename="acme_lib-1.0-py2.py3-none-any.whl", metadata=None)
                )
            ),
            f"'{WHEEL}' and 'acme_lib-1.0-py2.py3-none-any.whl' are the same file",
        ),
        (
            manifest_bytes(
                manifest(
                    entry(filename="acme_lib-1.0.tar.gz", metadata=None),
                    entry(
                        filename="acme_lib-1.0.0.tar.gz",
                        version="1.0.0",
                        sha256=SHA_B,
                        metadata=None,
                    ),
                )
            ),
            "'acme_lib-1.0.tar.gz' and 'acme_lib-1.0.0.tar.gz' are two sdists of acme-lib 1.0.0",
        ),
        (
            manifest_bytes(
                manifest(
                    entry(filename="acme_lib-1.0.zip", metadata=None),
                    entry(filename="acme_lib-1.0.tar.gz", sha256=SHA_B, metadata=None),
                )
            ),
            "two sdists of acme-lib 1.0; a release has one",
        ),
        (
            json.dumps(document(yanks=[{"name": "acme-lib", "version": "1", "filename": WHEEL}])),
            "one of them",
        ),
        (json.dumps(document(yanks=[{"name": "acme-lib"}])).encode(), "one of them"),
        (json.dumps(document(yanks=[{"name": "Acme", "version": "1"}])).encode(), "normalized"),
        (json.dumps(document(yanks=[{"name": "acme", "version": "one"}])).encode(), "PEP 440"),
        (
            json.dumps(document(yanks=[{"name": "other", "filename": WHEEL}])).encode(),
            "is not a file of",
        ),
        (
            json.dumps(document(project_statuses=[{"name": "acme", "status": "gone"}])),
            "status must be one of",
        ),
        (
            json.dumps(
                document(
                    yanks=[
                        {"name": "acme-lib", "version": "1.0", "reason": "broken"},
                        {"name": "acme-lib", "version": "1.0", "reason": "again"},
                    ]
                )
            ),
            "yanks[1]: acme-lib 1.0 is yanked twice",
        ),
        (
            json.dumps(
                document(
                    yanks=[
                        {"name": "acme-lib", "filename": WHEEL},
                        {"name": "acme-lib", "version": "1.0"},
                        {"name": "acme-lib", "filename": WHEEL, "reason": "again"},
                    ]
                )
            ),
            f"yanks[2]: acme-lib {WHEEL} is yanked twice",
        ),
        (
            json.dumps(
                document(
                    yanks=[
                        {"name": "acme-lib", "version": "2.0.0a1"},
                        {"name": "acme-lib", "version": "2.0.0-alpha1"},  # normalized: the same
                    ]
                )
            ),
            "yanks[1]: acme-lib 2.0.0a1 is yanked twice",
        ),
    ],
)
def test_a_malformed_manifest_is_refused_saying_what_is_wrong(
    raw: bytes | str, message: str
) -> None:
    with pytest.raises(InvalidBundle, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_manifest(raw.encode() if isinstance(raw, str) else raw)


def test_names_of_255_characters_are_read_back_as_written() -> None:
    name = "a" * 255
    written = manifest(
        entry(uploaded_by="u" * 255),
        yanks=(YankEntry(name, version="1" + ".0" * 127), YankEntry("acme-lib", filename=WHEEL)),
        statuses=(StatusEntry(name, "archived"),),
    )
    assert parse_manifest(manifest_bytes(written)) == written


def test_the_first_and_last_times_there_are_read_back_as_written() -> None:
    first, last = datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    written = manifest(entry(upload_time=first), created=last)
    assert json.loads(manifest_bytes(written))["packages"][0]["upload_time"] == (
        "0001-01-01T00:00:00.000000Z"
    )
    assert parse_manifest(manifest_bytes(written)) == written


def test_a_yanks_version_is_normalized() -> None:
    doc = document(yanks=[{"name": "acme-lib", "version": "2.0.0a1", "reason": None}])
    assert parse_manifest(json.dumps(doc).encode()).yanks == (YankEntry("acme-lib", "2.0.0a1"),)
    doc = document(yanks=[{"name": "acme-lib", "version": "2.0.0-alpha1"}])
    assert parse_manifest(json.dumps(doc).encode()).yanks[0].version == "2.0.0a1"


# ---- the members against the manifest --------------------------------------------------------


GOOD = [
    Member(MANIFEST, True, 100),
    Member(f"files/{WHEEL}", True, 10),
    Member(f"metadata/{WHEEL}.metadata", True, 3),
]


def test_members_that_match_the_manifest_have_no_problems() -> None:
    assert member_problems(GOOD, manifest()) == []
    assert member_problems(reversed(GOOD), manifest()) == []


@pytest.mark.parametrize(
    ("members", "problem"),
    [
        (GOOD[:2], f"'metadata/{WHEEL}.metadata' is missing"),
        (GOOD[1:], "holds 0 manifest.json members"),
        ([*GOOD, GOOD[0]], "holds 2 manifest.json members"),
        ([*GOOD, Member("../x", True, 1)], "'../x' is not listed in the manifest"),
        ([*GOOD, Member(f"files/../{WHEEL}", True, 10)], "is not listed in the manifest"),
        ([*GOOD, Member(f"./files/{WHEEL}", True, 10)], "is not listed in the manifest"),
        ([*GOOD, Member("/etc/passwd", True, 1)], "'/etc/passwd' is not listed"),
        ([*GOOD, GOOD[1]], "is in the archive twice"),
        ([GOOD[0], Member(f"files/{WHEEL}", True, 11), GOOD[2]], "has 11 bytes, the manifest"),
        ([GOOD[0], Member(f"files/{WHEEL}", False, 10), GOOD[2]], "is not a plain file"),
    ],
)
def test_members_that_do_not_match_are_named(members: list[Member], problem: str) -> None:
    problems = member_problems(members, manifest())
    assert any(problem in p for p in problems), problems


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (gzip.compress(b"x", mtime=0), "gzip"),
        (bz2.compress(b"x"), "bzip2"),
        (lzma.compress(b"x"), "xz"),
        (b"\x28\xb5\x2f\xfd\x00", "zstd"),
        (b"PK\x03\x04rest", "zip"),
        (b"manifest.json\x00\x00\x00", None),  # a tar begins with its first member's name
        (b"", None),
    ],
)
def test_a_compressed_file_is_recognized(data: bytes, expected: str | None) -> None:
    assert compression(data[:6]) == expected


def test_digest_problems_name_the_file() -> None:
    wanted = BundleFile("files/x.whl", SHA_A, 10)
    assert digest_problem(wanted, SHA_A, 10) is None
    assert digest_problem(wanted, SHA_B, 10) == (
        f"'files/x.whl' has sha256 {SHA_B}, the manifest says {SHA_A}"
    )
    assert digest_problem(wanted, SHA_A, 9) == "'files/x.whl' has 9 bytes, the manifest says 10"


# ---- export and import, in-process -----------------------------------------------------------


def services_in(folder: Path) -> Services:
    config = folder.with_suffix(".toml")
    config.write_text(f'remotes = []\ndistributions = []\n[server]\ndata_dir = "{folder}"\n')
    return build_services(load_settings(config, environ={}))


def bundles(svc: Services) -> Bundles:
    return Bundles.of(svc)


@pytest.fixture
def site_a(tmp_path: Path) -> Iterator[Services]:
    """A catalog with repository `corp`: a wheel and an sdist of acme-lib, a wheel of
    acme-tools; 2.0 yanked, acme-tools deprecated."""
    svc = services_in(tmp_path / "a")
    with svc.catalog.session() as session:
        repo_id = create_repository(session, name="corp").id
    built = [
        build_wheel(tmp_path / "dist", "acme-lib", "1.0"),
        build_wheel(tmp_path / "dist", "acme-lib", "2.0"),
        build_sdist(tmp_path / "dist", "acme-lib", "2.0"),
        build_wheel(tmp_path / "dist", "acme-tools", "0.1"),
    ]
    for path in built:
        with path.open("rb") as fh:
            svc.uploads.upload(repo_id, fh, path.name, actor="ann")
    with svc.catalog.session() as session:
        session.add(Yank(repository_id=repo_id, name="acme-lib", version="2.0", reason="broken"))
        session.add(ProjectStatus(repository_id=repo_id, name="acme-tools", status="deprecated"))
    try:
        yield svc
    finally:
        svc.close()


@pytest.fixture
def site_b(tmp_path: Path) -> Iterator[Services]:
    svc = services_in(tmp_path / "b")
    try:
        yield svc
    finally:
        svc.close()


def catalog_state(svc: Services) -> dict[str, Any]:
    """What an import may change: repositories and their versions, packages, yanks, statuses,
    stored files."""
    with svc.catalog.session() as session:
        state = {
            "repositories": sorted(
                (r.name, r.latest_number) for r in session.scalars(select(Repository))
            ),
            "versions": session.scalar(select(func.count()).select_from(RepositoryVersion)),
            "packages": sorted(session.scalars(select(Package.filename))),
            "yanks": session.scalar(select(func.count()).select_from(Yank)),
            "statuses": session.scalar(select(func.count()).select_from(ProjectStatus)),
        }
    root = svc.settings.server.data_dir / "artifacts"
    state["files"] = sorted(p.name for p in root.glob("??/??/*"))
    return state


def repository_files(svc: Services, name: str, number: int | None = None) -> dict[str, Package]:
    with svc.catalog.session() as session:
        repo = session.scalars(select(Repository).where(Repository.name == name)).one()
        number = repo.latest_number if number is None else number
        query = version_packages(repo.id, number)
        return {p.filename: p for p in session.scalars(query)}


def test_a_bundle_carries_a_repository_version_to_another_catalog(
    site_a: Services, site_b: Services, tmp_path: Path
) -> None:
    bundle = tmp_path / "corp.tar"
    exported = bundles(site_a).export("corp", None, bundle, generator="pullthrough test")
    assert (exported.repository, exported.version, exported.packages) == ("corp", 4, 4)
    with tarfile.open(bundle) as tar:
        names = tar.getnames()
        raw = tar.extractfile(MANIFEST).read()  # type: ignore[union-attr]
    assert names[0] == MANIFEST
    doc = json.loads(raw)
    assert doc["repository"] == {"name": "corp", "version": 4}
    assert doc["yanks"] == [
        {"name": "acme-lib", "version": "2.0", "filename": None, "reason": "broken"}
    ]
    assert {p["filename"]: p["uploaded_by"] for p in doc["packages"]} == dict.fromkeys(
        repository_files(site_a, "corp"), "ann"
    )
    sdist = next(p for p in doc["packages"] if p["filename"].endswith(".tar.gz"))
    wheel = next(p for p in doc["packages"] if p["filename"] == "acme_lib-2.0-py3-none-any.whl")
    assert wheel["metadata"]["sha256"] and f"metadata/{wheel['filename']}.metadata" in names
    assert sdist["metadata"] is None or sdist["metadata"]["path"] in names

    report = bundles(site_b).import_bundle(bundle, actor="cli:test")
    assert (report.repository, report.version, report.created) == ("corp", 1, True)
    assert (report.repository_created, report.packages, report.new_packages) == (True, 4, 4)
    mine, theirs = repository_files(site_b, "corp"), repository_files(site_a, "corp")
    assert set(mine) == set(theirs)
    for filename, package in mine.items():
        original = theirs[filename]
        for column in ("sha256", "size", "version", "requires_python", "metadata_sha256"):
            assert getattr(package, column) == getattr(original, column), (filename, column)
        assert package.upload_time.replace(tzinfo=None) == original.upload_time.replace(tzinfo=None)
        assert package.uploaded_by == "ann"
        opened = site_b.store.open(package.sha256)
        assert opened is not None
        with opened.file, site_a.store.local_path(package.sha256) as path:
            assert opened.file.read() == path.read_bytes()
        if package.metadata_sha256:
            assert site_b.store.has(package.metadata_sha256)
    with site_b.catalog.session() as session:
        yank = session.scalars(select(Yank)).one()
        assert (yank.name, yank.version, yank.reason) == ("acme-lib", "2.0", "broken")
        status = session.scalars(select(ProjectStatus)).one()
        assert (status.name, status.status) == ("acme-tools", "deprecated")
        event = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "bundle_import")
        ).one()
        assert (event.actor, event.subject) == ("cli:test", "corp")
        assert event.detail["repository_version"] == 1 and event.detail["packages"] == 4

    # The server's view: the page shows the files, the yank and the upload times.
    with site_b.catalog.session() as session:
        repo = session.scalars(select(Repository)).one()
    page = LocalContent(site_b.catalog, repo.id, repo.latest_number).project("acme-lib")
    assert page is not None
    yanked = {f.filename: f.yanked for f in page.files}
    assert yanked["acme_lib-2.0-py3-none-any.whl"] == "broken"
    assert yanked["acme_lib-1.0-py3-none-any.whl"] is False

    # Again: nothing changes, no version is made.
    before = catalog_state(site_b)
    again = bundles(site_b).import_bundle(bundle, actor="cli:test")
    assert (again.version, again.created, again.new_packages, again.stored_files) == (
        1,
        False,
        0,
        0,
    )
    assert catalog_state(site_b) == before


def test_an_older_version_is_exported_and_an_import_makes_the_new_version_exactly_it(
    site_a: Services, site_b: Services, tmp_path: Path
) -> None:
    bundles(site_a).export("corp", 1, tmp_path / "v1.tar")
    bundles(site_a).export("corp", None, tmp_path / "v4.tar")
    assert bundles(site_b).import_bundle(tmp_path / "v4.tar", "mirror", actor="t").version == 1
    report = bundles(site_b).import_bundle(tmp_path / "v1.tar", "mirror", actor="t")
    assert (report.version, report.created, report.removed, report.new_packages) == (2, True, 3, 0)
    assert set(repository_files(site_b, "mirror")) == {"acme_lib-1.0-py3-none-any.whl"}
    assert len(repository_files(site_b, "mirror", 1)) == 4  # the old version is as it was
    # --add: the bundle's packages besides what is there
    report = bundles(site_b).import_bundle(tmp_path / "v4.tar", "mirror", add_only=True, actor="t")
    assert (report.version, report.created) == (3, True)
    assert len(repository_files(site_b, "mirror")) == 4
    with pytest.raises(BundleError, match="has no version 9"):
        bundles(site_a).export("corp", 9, tmp_path / "v9.tar")
    with pytest.raises(BundleError, match="no repository named 'nope'"):
        bundles(site_a).export("nope", None, tmp_path / "nope.tar")
    assert not (tmp_path / "v9.tar").exists() and not (tmp_path / "nope.tar").exists()


def rewrite(bundle: Path, out: Path, change: Any) -> Path:
    """A copy of the bundle with `change(name, data)` applied to every member: the new
    (name, data), or None to leave the member out; `extra` members are appended."""
    with tarfile.open(bundle) as src, tarfile.open(out, "w") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read()  # type: ignore[union-attr]
            changed = change(member.name, data)
            if changed is None:
                continue
            name, data = changed
            info = tarfile.TarInfo(name)
            info.size = len(data)
            dst.addfile(info, io.BytesIO(data))
    return out


def flip_one_byte(bundle: Path, out: Path, member_name: str) -> Path:
    """The bundle with one byte of a member's data changed in place (sizes stay)."""
    with tarfile.open(bundle) as tar:
        offset = tar.getmember(member_name).offset_data
    data = bytearray(bundle.read_bytes())
    data[offset + 100] ^= 0x01
    out.write_bytes(bytes(data))
    return out


def refused(svc: Services, bundle: Path, match: str, repository: str | None = None) -> None:
    before = catalog_state(svc)
    with pytest.raises((InvalidBundle, BundleError), match=match):
        bundles(svc).import_bundle(bundle, repository, actor="t")
    assert catalog_state(svc) == before


def test_an_import_into_a_repository_keeps_out_what_its_blocklist_names(
    site_a: Services, site_b: Services, tmp_path: Path
) -> None:
    """The target's blocklist holds for an import as for any new version: refused whole, with
    nothing changed, or (error_on_reject false) the named packages left out."""
    bundle = tmp_path / "corp.tar"
    bundles(site_a).export("corp", None, bundle)
    with site_b.catalog.session() as session:
        repo_id = create_repository(session, name="guarded").id
        session.add(RepositoryBlocklistEntry(repository_id=repo_id, name="acme-tools"))
    refused(
        site_b,
        bundle,
        "Blocklisted packages cannot be added to this repository: acme_tools-0.1-py3-none-any.whl",
        "guarded",
    )
    with site_b.catalog.session() as session:
        session.get(Repository, repo_id).error_on_reject = False  # type: ignore[union-attr]
    report = bundles(site_b).import_bundle(bundle, "guarded", actor="t")
    assert report.created and report.version == 1
    files = set(repository_files(site_b, "guarded"))
    assert len(files) == 3 and not any(f.startswith("acme_tools") for f in files)


def test_a_bad_bundle_is_refused_whole_with_nothing_changed(
    site_a: Services, site_b: Services, tmp_path: Path
) -> None:
    good = tmp_path / "good.tar"
    bundles(site_a).export("corp", None, good)
    # Something there already, to see that nothing of it changes either.
    bundles(site_b).import_bundle(good, "before", actor="t")
    wheel = "files/acme_lib-2.0-py3-none-any.whl"
    tools = "files/acme_tools-0.1-py3-none-any.whl"

    refused(site_b, flip_one_byte(good, tmp_path / "flip.tar", wheel), "has sha256", "x")
    # the last file damaged: the others, checked first, are not stored either
    refused(site_b, flip_one_byte(good, tmp_path / "flip2.tar", tools), "has sha256", "x")
    refused(
        site_b,
        rewrite(good, tmp_path / "trav.tar", lambda n, d: ("../x" if n == wheel else n, d)),
        "'../x' is not listed in the manifest",
    )
    refused(
        site_b,
        rewrite(good, tmp_path / "miss.tar", lambda n, d: None if n == tools else (n, d)),
        f"'{tools}' is missing",
    )
    refused(
        site_b,
        rewrite(good, tmp_path / "short.tar", lambda n, d: (n, d[:-1] if n == wheel else d)),
        "bytes, the manifest says",
    )

    def bad_manifest(name: str, data: bytes) -> tuple[str, bytes]:
        return name, (data[:-5] if name == MANIFEST else data)

    refused(site_b, rewrite(good, tmp_path / "m.tar", bad_manifest), "manifest is not JSON")
    refused(
        site_b,
        rewrite(good, tmp_path / "nom.tar", lambda n, d: None if n == MANIFEST else (n, d)),
        "no manifest.json",
    )
    (tmp_path / "junk.tar").write_bytes(b"not a tar file at all" * 100)
    refused(site_b, tmp_path / "junk.tar", "is not a bundle")

    # A file that is not the distribution the manifest says: right hash, wrong content.
    def lie(name: str, data: bytes) -> tuple[str, bytes]:
        if name != MANIFEST:
            return name, data
        doc = json.loads(data)
        doc["packages"][0]["version"] = "7.0"
        return name, json.dumps(doc).encode()

    new_site = services_in(tmp_path / "c")
    try:
        refused(new_site, rewrite(good, tmp_path / "lie.tar", lie), "the manifest says acme-lib 7")
    finally:
        new_site.close()


def failing_after_two_files(site_a: Services, tmp_path: Path) -> tuple[Path, list[Package]]:
    """Repository `corp` as a bundle whose last package is not what its manifest says: an
    import stores the files before it, then fails. The bundle, and its first two packages."""
    good = tmp_path / "good.tar"
    bundles(site_a).export("corp", None, good)
    listed: list[str] = []

    def lie(name: str, data: bytes) -> tuple[str, bytes]:
        if name != MANIFEST:
            return name, data
        doc = json.loads(data)
        listed.extend(p["filename"] for p in doc["packages"])
        doc["packages"][-1]["version"] = "7.0"
        return name, json.dumps(doc).encode()

    damaged = rewrite(good, tmp_path / "lie.tar", lie)
    files = repository_files(site_a, "corp")
    return damaged, [files[name] for name in listed[:2]]


def test_a_failed_import_leaves_a_file_an_upload_of_the_same_bytes_records_meanwhile(
    site_a: Services, site_b: Services, tmp_path: Path
) -> None:
    """An import stores its files, and a failed one removes them, each under its bytes' lock:
    an upload of the same bytes holds that lock from writing them to recording them, and its
    file stays."""
    damaged, (kept, removed) = failing_after_two_files(site_a, tmp_path)
    failures: list[BaseException] = []

    def run_import() -> None:
        try:
            bundles(site_b).import_bundle(damaged, "x", actor="t")
        except BaseException as exc:
            failures.append(exc)

    lock = stored_bytes(site_b.locks, kept.sha256)
    lock.acquire(timeout=5)  # an upload of the same bytes, writing them
    importing = threading.Thread(target=run_import)
    importing.start()
    try:
        importing.join(2)  # the import waits for the lock to store the file
        assert importing.is_alive()
        with site_b.catalog.session() as session:  # the upload records its package
            columns = {c.key: getattr(kept, c.key) for c in Package.__table__.columns}
            session.add(Package(**{**columns, "id": str(uuid.uuid4())}))
    finally:
        lock.release()
        importing.join(30)
    assert [type(exc) for exc in failures] == [InvalidBundle]
    assert site_b.store.has(kept.sha256)
    assert not site_b.store.has(removed.sha256)


def test_a_failed_import_leaves_a_file_a_sync_stored_again_meanwhile(
    site_a: Services, site_b: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sync stores its files, lets go of their lock, and records them at its end (orphan
    cleanup spares them by their write time): a failed import must not remove a file a sync
    stored again after the import did, or the sync records a package without its file."""
    damaged, (synced, removed) = failing_after_two_files(site_a, tmp_path)
    opened = site_a.store.open(synced.sha256)
    assert opened is not None
    with opened.file as fh:
        data = fh.read()
    remove_unused = Bundles._remove_unused

    def sync_meanwhile(self: Bundles, published: dict[str, float | None], ours: set[str]) -> None:
        assert synced.sha256 in published  # the import stored it
        time.sleep(0.05)  # a later write, as a sync's would be
        site_b.store.put_bytes(data, {"sha256": synced.sha256})  # as Syncer.download
        remove_unused(self, published, ours)

    monkeypatch.setattr(Bundles, "_remove_unused", sync_meanwhile)
    with pytest.raises(InvalidBundle):
        bundles(site_b).import_bundle(damaged, "x", actor="t")
    assert site_b.store.has(synced.sha256)  # the sync records it at its end
    assert not site_b.store.has(removed.sha256)


def test_an_import_puts_back_a_file_removed_before_it_recorded_it(
    site_a: Services, site_b: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An import stores its files first and records them at its end; a remover in between (an
    eviction of a cached copy, an artifact's delete, another import's failure) sees them
    recorded by nothing and removes them. Once recorded, the import stores them again from the
    bundle: its repository's files are all there."""
    bundle = tmp_path / "corp.tar"
    bundles(site_a).export("corp", None, bundle)
    wheel = repository_files(site_a, "corp")["acme_lib-1.0-py3-none-any.whl"]
    record = Bundles._record

    def removed_first(self: Bundles, *args: Any, **kwargs: Any) -> Any:
        assert self.store.delete(wheel.sha256) > 0  # as a remover would, before the record
        return record(self, *args, **kwargs)

    monkeypatch.setattr(Bundles, "_record", removed_first)
    bundles(site_b).import_bundle(bundle, "corp", actor="t")
    files = repository_files(site_b, "corp")
    assert all(site_b.store.has(p.sha256) for p in files.values())
    with site_b.store.local_path(wheel.sha256) as path:
        assert sha256(path.read_bytes()).hexdigest() == wheel.sha256


def test_only_a_plain_tar_is_read_and_never_a_sparse_member(
    site_a: Services, site_b: Services, tmp_path: Path
) -> None:
    good = tmp_path / "good.tar"
    bundles(site_a).export("corp", None, good)
    bundles(site_b).import_bundle(good, "before", actor="t")
    for kind, compress in (("gzip", gzip.compress), ("bzip2", bz2.compress), ("xz", lzma.compress)):
        packed = tmp_path / f"good.tar.{kind}"
        packed.write_bytes(compress(good.read_bytes()))
        refused(site_b, packed, f"is {kind}-compressed: a bundle is a plain tar", "x")
    (tmp_path / "junk.tar").write_bytes(b"not a tar file at all" * 100)
    with pytest.raises(InvalidBundle) as caught:
        bundles(site_b).import_bundle(tmp_path / "junk.tar", actor="t")
    assert str(caught.value) == f"{tmp_path / 'junk.tar'} is not a bundle (a plain tar file):" + (
        " invalid header"
    )

    # A sparse member: its holes are bytes the archive does not hold (a 1 GiB file of zeros in
    # a few KB), so it is refused even when whole (a map of one block, no hole).
    wheel = "files/acme_tools-0.1-py3-none-any.whl"
    sparse = tmp_path / "sparse.tar"
    with tarfile.open(good) as src, tarfile.open(sparse, "w", format=tarfile.PAX_FORMAT) as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read()  # type: ignore[union-attr]
            info = tarfile.TarInfo(member.name)
            info.size = len(data)
            if member.name == wheel:
                info.pax_headers = {
                    "GNU.sparse.map": f"0,{len(data)}",
                    "GNU.sparse.size": str(len(data)),
                }
            dst.addfile(info, io.BytesIO(data))
    with tarfile.open(sparse) as tar:
        assert tar.getmember(wheel).issparse()
    refused(site_b, sparse, f"'{wheel}' is not a plain file", "x")


def test_a_bundle_cannot_lend_a_file_other_metadata_or_requirements(
    site_a: Services, site_b: Services, tmp_path: Path
) -> None:
    good = tmp_path / "good.tar"
    bundles(site_a).export("corp", None, good)
    fake = b"Metadata-Version: 2.1\nName: acme-lib\nVersion: 2.0\nRequires-Dist: evil-package\n"

    def other_metadata(name: str, data: bytes) -> tuple[str, bytes]:
        if name == MANIFEST:
            doc = json.loads(data)
            for package in doc["packages"]:
                if package["metadata"] and package["filename"].startswith("acme_lib-2.0"):
                    package["metadata"].update(sha256=sha256(fake).hexdigest(), size=len(fake))
            return name, json.dumps(doc).encode()
        return name, fake if name == "metadata/acme_lib-2.0-py3-none-any.whl.metadata" else data

    tampered = rewrite(good, tmp_path / "meta.tar", other_metadata)
    refused(site_b, tampered, "is not the metadata inside 'files/acme_lib-2.0-py3-none-any.whl'")

    def other_requirement(name: str, data: bytes) -> tuple[str, bytes]:
        if name != MANIFEST:
            return name, data
        doc = json.loads(data)
        for package in doc["packages"]:
            package["requires_python"] = "<3"
        return name, json.dumps(doc).encode()

    bundles(site_b).import_bundle(
        rewrite(good, tmp_path / "req.tar", other_requirement), "x", actor="t"
    )
    # the files' own requires-python, not the manifest's
    assert {p.requires_python for p in repository_files(site_b, "x").values()} == {
        p.requires_python for p in repository_files(site_a, "corp").values()
    }


def test_a_bundle_file_that_differs_from_ours_of_the_same_name_is_refused(
    site_a: Services, site_b: Services, tmp_path: Path
) -> None:
    bundle = tmp_path / "corp.tar"
    bundles(site_a).export("corp", None, bundle)
    with site_b.catalog.session() as session:
        repo_id = create_repository(session, name="mine").id
    other = build_wheel(tmp_path / "other", "acme-tools", "0.1", requires_python=">=3.8")
    with other.open("rb") as fh:
        site_b.uploads.upload(repo_id, fh, other.name, actor="bob")
    refused(site_b, bundle, "already holds a different 'acme_tools-0.1-py3-none-any.whl'")


def test_an_import_removes_a_yank_an_earlier_import_left_twice(
    site_a: Services, site_b: Services, tmp_path: Path
) -> None:
    bundle = tmp_path / "corp.tar"
    bundles(site_a).export("corp", None, bundle)
    bundles(site_b).import_bundle(bundle, actor="t")
    with site_b.catalog.session() as session:  # as a manifest naming it twice used to leave it
        repo = session.scalars(select(Repository)).one()
        session.add(Yank(repository_id=repo.id, name="acme-lib", version="2.0", reason="broken"))
    report = bundles(site_b).import_bundle(bundle, actor="t")
    assert report.changed == ["duplicate yank acme-lib 2.0 removed"]
    with site_b.catalog.session() as session:
        assert [(y.name, y.version) for y in session.scalars(select(Yank))] == [("acme-lib", "2.0")]
    before = catalog_state(site_b)
    assert bundles(site_b).import_bundle(bundle, actor="t").changed == []
    assert catalog_state(site_b) == before


def test_an_import_refuses_a_repository_name_the_catalog_cannot_hold(
    site_a: Services, site_b: Services, tmp_path: Path
) -> None:
    bundle = tmp_path / "corp.tar"
    bundles(site_a).export("corp", None, bundle)
    refused(site_b, bundle, "name is 1 to 255 characters, not 256", repository="x" * 256)
    refused(site_b, bundle, "name is 1 to 255 characters, not 1", repository=" ")


def renamed(bundle: Path, out: Path, old: str, new: str, replacement: Path | None = None) -> Path:
    """The bundle with package `old` called `new` (and its bytes replaced by `replacement`'s)."""
    data = replacement.read_bytes() if replacement is not None else None

    def change(name: str, content: bytes) -> tuple[str, bytes] | None:
        if name == MANIFEST:
            doc = json.loads(content)
            for package in doc["packages"]:
                if package["filename"] == old:
                    package.update(filename=new, path=f"files/{new}", metadata=None)
                    if data is not None:
                        package.update(sha256=sha256(data).hexdigest(), size=len(data))
                        package["version"] = new.removeprefix("acme_lib-").removesuffix(".tar.gz")
            return name, json.dumps(doc).encode()
        if name == f"metadata/{old}.metadata":
            return None
        if name == f"files/{old}":
            return f"files/{new}", content if data is None else data
        return name, content

    return rewrite(bundle, out, change)


def test_a_bundle_file_that_is_ours_under_another_name_is_refused(
    site_a: Services, site_b: Services, tmp_path: Path
) -> None:
    bundle = tmp_path / "corp.tar"
    bundles(site_a).export("corp", None, bundle)
    bundles(site_b).import_bundle(bundle, actor="t")
    wheel = "acme_tools-0.1-py3-none-any.whl"
    other = renamed(bundle, tmp_path / "other.tar", wheel, "acme_tools-0.1-py2.py3-none-any.whl")
    refused(
        site_b,
        other,
        f"already holds the bundle's 'acme_tools-0.1-py2.py3-none-any.whl' as '{wheel}'",
        repository="elsewhere",
    )


def test_an_added_bundle_may_not_give_a_release_a_second_sdist(
    site_a: Services, site_b: Services, tmp_path: Path
) -> None:
    bundle = tmp_path / "corp.tar"
    bundles(site_a).export("corp", None, bundle)
    bundles(site_b).import_bundle(bundle, actor="t")
    sdist = build_sdist(tmp_path / "new", "acme-lib", "2.0.0")
    second = renamed(bundle, tmp_path / "second.tar", "acme_lib-2.0.tar.gz", sdist.name, sdist)
    before = catalog_state(site_b)
    with pytest.raises(BundleError, match="are two sdists of acme-lib 2"):
        bundles(site_b).import_bundle(second, add_only=True, actor="t")
    assert catalog_state(site_b) == before
    # Without --add the new version holds the bundle's sdist only: one per release.
    bundles(site_b).import_bundle(second, actor="t")
    assert {f for f in repository_files(site_b, "corp") if f.startswith("acme_lib-2")} == {
        "acme_lib-2.0-py3-none-any.whl",
        "acme_lib-2.0.0.tar.gz",
    }


def test_export_refuses_content_that_is_not_stored(site_a: Services, tmp_path: Path) -> None:
    files = repository_files(site_a, "corp")
    site_a.store.delete(files["acme_lib-1.0-py3-none-any.whl"].sha256)
    with pytest.raises(BundleError, match=r"1 file.* not stored here.*acme_lib-1\.0-py3"):
        bundles(site_a).export("corp", None, tmp_path / "corp.tar")
    assert list(tmp_path.glob("*.tar*")) == []


def test_a_bundle_goes_into_postgresql_and_s3_and_comes_back_out_the_same(
    site_a: Services, tmp_path: Path, postgres_url: str, s3_server: S3Server
) -> None:
    bundle = tmp_path / "corp.tar"
    bundles(site_a).export("corp", None, bundle)
    bucket = s3_server.bucket(f"bundles-{uuid.uuid4().hex[:8]}")

    def objects() -> list[str]:
        listed = s3_server.client().list_objects_v2(Bucket=bucket)
        return sorted(o["Key"] for o in listed.get("Contents", []))

    # A session time zone that is not UTC: upload times must not move.
    with private_database(postgres_url, timezone="Europe/Berlin") as url:
        config = tmp_path / "pg.toml"
        config.write_text(
            f'remotes = []\ndistributions = []\n[server]\ndata_dir = "{tmp_path / "pg"}"\n'
            f'database_url = "{url}"\n[storage]\nbackend = "s3"\n'
            f's3_endpoint_url = "{s3_server.endpoint_url}"\ns3_bucket = "{bucket}"\n'
            f's3_region = "{s3_server.region}"\ns3_access_key_id = "{s3_server.access_key}"\n'
            f's3_secret_access_key = "{s3_server.secret_key}"\ns3_addressing_style = "path"\n'
        )
        svc = build_services(load_settings(config, environ={}))
        try:
            wheel = "files/acme_tools-0.1-py3-none-any.whl"
            refused(svc, flip_one_byte(bundle, tmp_path / "flip.tar", wheel), "has sha256")
            assert objects() == []
            report = bundles(svc).import_bundle(bundle, actor="t")
            assert (report.version, report.created, report.stored_files) == (1, True, 7)
            assert len(objects()) == 7  # four files, three PEP 658 metadata files
            again = bundles(svc).import_bundle(bundle, actor="t")
            assert (again.version, again.created, again.stored_files) == (1, False, 0)
            bundles(svc).export("corp", None, tmp_path / "back.tar")
        finally:
            svc.close()
    with tarfile.open(bundle) as first, tarfile.open(tmp_path / "back.tar") as back:
        there = parse_manifest(first.extractfile(MANIFEST).read())  # type: ignore[union-attr]
        back_again = parse_manifest(back.extractfile(MANIFEST).read())  # type: ignore[union-attr]
        for name in first.getnames():
            if name != MANIFEST:
                one, two = first.extractfile(name), back.extractfile(name)
                assert one is not None and two is not None
                assert one.read() == two.read(), name
    assert back_again.packages == there.packages
    assert (back_again.yanks, back_again.statuses) == (there.yanks, there.statuses)
    assert back_again.version == 1 and there.version == 4


def test_an_import_clears_more_project_statuses_than_a_statement_takes_parameters(
    site_a: Services, tmp_path: Path, postgres_url: str
) -> None:
    """An import (not add-only) into a repository holding 70,000 project statuses the bundle
    does not carry clears them, on PostgreSQL (at most 65,535 parameters in one statement):
    one list of them all failed the whole import."""
    bundle = tmp_path / "corp.tar"
    bundles(site_a).export("corp", None, bundle)
    with private_database(postgres_url) as url:
        config = tmp_path / "pg.toml"
        config.write_text(
            f'remotes = []\ndistributions = []\n[server]\ndata_dir = "{tmp_path / "pg"}"\n'
            f'database_url = "{url}"\n'
        )
        svc = build_services(load_settings(config, environ={}))
        try:
            with svc.catalog.session() as session:
                repo_id = create_repository(session, name="corp").id
                rows = [
                    {"repository_id": repo_id, "name": f"old-{i}", "status": "archived"}
                    | {"id": str(uuid.UUID(int=i + 1))}
                    for i in range(70_000)
                ]
                session.execute(insert(ProjectStatus), rows)
            report = bundles(svc).import_bundle(bundle, actor="t")
            assert report.created
            assert sum(c.endswith(" cleared") for c in report.changed) == 70_000
            with svc.catalog.session() as session:
                left = session.scalars(select(ProjectStatus.name)).all()
            assert left == ["acme-tools"]  # the bundle's
        finally:
            svc.close()
