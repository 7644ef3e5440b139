"""Offline bundles: one repository version as a tar file, for a site with no network.

A bundle is an uncompressed tar (wheels and sdists are compressed already) holding
`manifest.json` first, then `files/<filename>` for every package and
`metadata/<filename>.metadata` for the PEP 658 metadata a page offers. The manifest says, per
package, what the pages need (hashes, size, upload time, requires-python, yanked, who uploaded
it), and the repository's own yanks and project statuses. This module builds and checks
manifests; reading and writing archives is services.bundles'.

Nothing in a bundle is trusted: the manifest is checked field by field, a member is read only
under the name the manifest implies (never a path of the archive's choosing: `../x` is merely
an unexpected member), and every file must have the size and sha256 the manifest gives.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeGuard

from packaging.utils import canonicalize_name
from packaging.version import Version

from pullthrough.core.filenames import (
    InvalidFilename,
    offerable,
    parse_filename,
    parse_version,
    release_of,
)
from pullthrough.core.models import PROJECT_STATUSES, is_hex_digest

FORMAT = "pullthrough-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 256 * 1024 * 1024  # a manifest larger than this is not one
ORIGINS = ("upload", "sync", "cache")
MAX_NAME = 255  # the catalog's column width for names and filenames


class InvalidBundle(ValueError):
    """A bundle that cannot be imported; the message says what is wrong with it."""


def file_path(filename: str) -> str:
    return f"files/{filename}"


def metadata_path(filename: str) -> str:
    return f"metadata/{filename}.metadata"


@dataclass(frozen=True)
class BundleFile:
    """A member of the archive and what its bytes must be."""

    path: str
    sha256: str
    size: int


@dataclass(frozen=True)
class PackageEntry:
    filename: str
    name: str  # normalized
    version: str  # as the file's metadata writes it
    sha256: str
    size: int
    upload_time: datetime  # aware, UTC
    requires_python: str | None = None
    yanked: bool = False  # the package's own mark (its index yanked it); see Manifest.yanks
    yanked_reason: str | None = None
    metadata: BundleFile | None = None  # the PEP 658 metadata file, when pages offer one
    uploaded_by: str | None = None
    origin: str = "upload"

    @property
    def file(self) -> BundleFile:
        return BundleFile(file_path(self.filename), self.sha256, self.size)

    @property
    def is_sdist(self) -> bool:
        return parse_filename(self.filename).packagetype == "sdist"


@dataclass(frozen=True)
class YankEntry:
    """A yank of the repository (every version of it): a release or one file."""

    name: str
    version: str | None = None
    filename: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class StatusEntry:
    """A project's status (PEP 792) in the repository."""

    name: str
    status: str
    reason: str | None = None


@dataclass(frozen=True)
class Manifest:
    repository: str  # the exported repository's name
    version: int  # and version number
    created: datetime
    packages: tuple[PackageEntry, ...]
    yanks: tuple[YankEntry, ...] = ()
    statuses: tuple[StatusEntry, ...] = ()
    generator: str = ""  # "pullthrough <version>"

    def files(self) -> dict[str, BundleFile]:
        """Every member the archive must hold besides the manifest, by path."""
        out: dict[str, BundleFile] = {}
        for p in self.packages:
            out[p.file.path] = p.file
            if p.metadata is not None:
                out[p.metadata.path] = p.metadata
        return out

    def total_size(self) -> int:
        return sum(f.size for f in self.files().values())


def utc_text(value: datetime) -> str:
    """A time as the pages render it (microseconds, `Z`), the year always in four digits
    (strftime's `%Y` writes year 1 as `1`, which fromisoformat cannot read back)."""
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return f"{aware.year:04d}" + aware.strftime("-%m-%dT%H:%M:%S.%fZ")


def manifest_bytes(manifest: Manifest) -> bytes:
    """The manifest as the bundle holds it: JSON, UTF-8, keys sorted."""
    document = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "generator": manifest.generator,
        "created": utc_text(manifest.created),
        "repository": {"name": manifest.repository, "version": manifest.version},
        "packages": [_package_json(p) for p in manifest.packages],
        "yanks": [
            {"name": y.name, "version": y.version, "filename": y.filename, "reason": y.reason}
            for y in manifest.yanks
        ],
        "project_statuses": [
            {"name": s.name, "status": s.status, "reason": s.reason} for s in manifest.statuses
        ],
    }
    return json.dumps(document, indent=1, sort_keys=True, ensure_ascii=False).encode()


def _package_json(p: PackageEntry) -> dict[str, Any]:
    return {
        "filename": p.filename,
        "path": p.file.path,
        "name": p.name,
        "version": p.version,
        "sha256": p.sha256,
        "size": p.size,
        "upload_time": utc_text(p.upload_time),
        "requires_python": p.requires_python,
        "yanked": p.yanked,
        "yanked_reason": p.yanked_reason,
        "metadata": (
            None
            if p.metadata is None
            else {"path": p.metadata.path, "sha256": p.metadata.sha256, "size": p.metadata.size}
        ),
        "uploaded_by": p.uploaded_by,
        "origin": p.origin,
        "provenance": None,  # PEP 740: the catalog keeps none
    }


# Reading a manifest: every field checked, every problem named with where it is.


def parse_manifest(raw: bytes) -> Manifest:
    """The manifest of a bundle, or InvalidBundle saying what is wrong (the first problem)."""
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise InvalidBundle(f"the manifest is not JSON: {exc}") from None
    doc = _object(document, "the manifest")
    if doc.get("format") != FORMAT:
        raise InvalidBundle(f"not a pullthrough bundle (format {doc.get('format')!r})")
    if doc.get("format_version") != FORMAT_VERSION:
        raise InvalidBundle(
            f"bundle format version {doc.get('format_version')!r} is not supported"
            f" (this pullthrough reads version {FORMAT_VERSION})"
        )
    repo = _object(doc.get("repository"), "repository")
    name = _text(repo, "name", "repository")
    if not name.strip() or len(name) > MAX_NAME:
        raise InvalidBundle(f"repository.name {name!r} is not a repository name")
    number = repo.get("version")
    if not _is_int(number) or number < 0:
        raise InvalidBundle(f"repository.version must be a whole number: {number!r}")
    packages = tuple(
        _package(_object(item, f"packages[{i}]"), f"packages[{i}]")
        for i, item in enumerate(_list(doc, "packages"))
    )
    seen: set[str] = set()
    for p in packages:
        if p.filename in seen:
            raise InvalidBundle(f"{p.filename!r} is listed twice")
        seen.add(p.filename)
    if problem := one_name_per_file(packages) or one_sdist_per_release(packages):
        raise InvalidBundle(problem)
    yanks = tuple(
        _yank(_object(item, f"yanks[{i}]"), f"yanks[{i}]")
        for i, item in enumerate(_list(doc, "yanks"))
    )
    yanked: set[tuple[str, str | None, str | None]] = set()
    for i, y in enumerate(yanks):  # as the API: a version (normalized) or a file, yanked once
        if (y.name, y.version, y.filename) in yanked:
            raise InvalidBundle(f"yanks[{i}]: {y.name} {y.version or y.filename} is yanked twice")
        yanked.add((y.name, y.version, y.filename))
    statuses = tuple(
        _status(_object(item, f"project_statuses[{i}]"), f"project_statuses[{i}]")
        for i, item in enumerate(_list(doc, "project_statuses"))
    )
    if len({s.name for s in statuses}) != len(statuses):
        raise InvalidBundle("project_statuses names a project twice")
    return Manifest(
        repository=name,
        version=number,
        created=_time(doc, "created", "the manifest"),
        packages=packages,
        yanks=yanks,
        statuses=statuses,
        generator=_optional_text(doc, "generator", "the manifest") or "",
    )


def one_name_per_file(packages: Iterable[PackageEntry]) -> str | None:
    """As uploads (and PyPI): the same bytes under two filenames (`x-1.0-...` and
    `x-1.0.0-...`) is one file too many; says which, or None."""
    named: dict[str, str] = {}
    for p in packages:
        if (other := named.setdefault(p.sha256, p.filename)) != p.filename:
            return f"{other!r} and {p.filename!r} are the same file (sha256 {p.sha256})"
    return None


def one_sdist_per_release(packages: Iterable[PackageEntry]) -> str | None:
    """As uploads (and PyPI): one sdist per release (`x-1.0.tar.gz` beside `x-1.0.0.tar.gz`
    or `x-1.0.zip` leaves installers two sources to pick from); says which, or None."""
    releases: dict[tuple[str, Version | str], PackageEntry] = {}
    for p in packages:
        if not p.is_sdist:
            continue
        key = (p.name, release_of(p.version))
        if (other := releases.setdefault(key, p)) is not p and other.sha256 != p.sha256:
            return (
                f"{other.filename!r} and {p.filename!r} are two sdists of {p.name} {p.version};"
                " a release has one"
            )
    return None


def _package(item: Mapping[str, Any], where: str) -> PackageEntry:
    filename = _text(item, "filename", where)
    where = f"{where} ({filename!r})"
    if not offerable(filename) or filename.startswith(".") or len(filename) > MAX_NAME:
        raise InvalidBundle(f"{where}: not a filename")
    try:
        info = parse_filename(filename)
    except InvalidFilename as exc:
        raise InvalidBundle(f"{where}: {exc}") from None
    if not filename.endswith((".whl", ".tar.gz", ".zip")):
        raise InvalidBundle(f"{where}: only wheels and sdists (.tar.gz, .zip) are imported")
    name = _text(item, "name", where)
    if name != info.name:
        raise InvalidBundle(f"{where}: name {name!r} is not the filename's ({info.name!r})")
    if item.get("path") != file_path(filename):
        raise InvalidBundle(f"{where}: path must be {file_path(filename)!r}")
    yanked = item.get("yanked")
    if not isinstance(yanked, bool):
        raise InvalidBundle(f"{where}: yanked must be true or false")
    metadata = None
    if (found := item.get("metadata")) is not None:
        meta = _object(found, f"{where}.metadata")
        metadata = BundleFile(
            metadata_path(filename), _digest(meta, f"{where}.metadata"), _size(meta, where)
        )
        if meta.get("path") != metadata.path:
            raise InvalidBundle(f"{where}: metadata.path must be {metadata.path!r}")
    origin = item.get("origin", "upload")
    if origin not in ORIGINS:
        raise InvalidBundle(f"{where}: origin must be one of {', '.join(ORIGINS)}")
    version = _text(item, "version", where)
    if not version or len(version) > MAX_NAME:
        raise InvalidBundle(f"{where}: version {version!r} is not a version")
    return PackageEntry(
        filename=filename,
        name=name,
        version=version,
        sha256=_digest(item, where),
        size=_size(item, where),
        upload_time=_time(item, "upload_time", where),
        requires_python=_optional_text(item, "requires_python", where),
        yanked=yanked,
        yanked_reason=_optional_text(item, "yanked_reason", where),
        metadata=metadata,
        uploaded_by=_optional_text(item, "uploaded_by", where, limit=MAX_NAME),
        origin=origin,
    )


def _yank(item: Mapping[str, Any], where: str) -> YankEntry:
    name = _project(item, where)
    version = _optional_text(item, "version", where)
    filename = _optional_text(item, "filename", where, limit=MAX_NAME)
    if (version is None) == (filename is None):
        raise InvalidBundle(f"{where}: give a version or a filename (one of them)")
    if version is not None:
        if (parsed := parse_version(version)) is None:
            raise InvalidBundle(f"{where}: {version!r} is not a version (PEP 440)")
        version = str(parsed)  # normalized, as the catalog keeps a yank's version
        if len(version) > MAX_NAME:
            raise InvalidBundle(f"{where}: version is longer than {MAX_NAME} characters")
    if filename is not None:
        try:
            owner = parse_filename(filename).name
        except InvalidFilename as exc:
            raise InvalidBundle(f"{where}: {exc}") from None
        if owner != name:
            raise InvalidBundle(f"{where}: {filename!r} is not a file of {name!r}")
    return YankEntry(name, version, filename, _optional_text(item, "reason", where))


def _status(item: Mapping[str, Any], where: str) -> StatusEntry:
    name = _project(item, where)
    status = _text(item, "status", where)
    if status not in PROJECT_STATUSES:
        raise InvalidBundle(f"{where}: status must be one of {', '.join(PROJECT_STATUSES)}")
    return StatusEntry(name, status, _optional_text(item, "reason", where))


def _project(item: Mapping[str, Any], where: str) -> str:
    name = _text(item, "name", where)
    if len(name) > MAX_NAME:
        raise InvalidBundle(f"{where}: name is longer than {MAX_NAME} characters")
    if canonicalize_name(name) != name or not name:
        raise InvalidBundle(f"{where}: {name!r} is not a normalized project name")
    return name


def _object(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise InvalidBundle(f"{where} must be a JSON object")
    return value


def _list(doc: Mapping[str, Any], key: str) -> list[Any]:
    value = doc.get(key, [])
    if not isinstance(value, list):
        raise InvalidBundle(f"{key} must be a list")
    return value


def _text(item: Mapping[str, Any], key: str, where: str) -> str:
    value = item.get(key)
    if not isinstance(value, str):
        raise InvalidBundle(f"{where}: {key} must be a string")
    return value


def _optional_text(
    item: Mapping[str, Any], key: str, where: str, *, limit: int | None = None
) -> str | None:
    """A string or None; with `limit`, of at most that many characters (the catalog's column)."""
    value = item.get(key)
    if value is not None and not isinstance(value, str):
        raise InvalidBundle(f"{where}: {key} must be a string or null")
    if value is not None and limit is not None and len(value) > limit:
        raise InvalidBundle(f"{where}: {key} is longer than {limit} characters")
    return value


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _digest(item: Mapping[str, Any], where: str) -> str:
    value = item.get("sha256")
    if not isinstance(value, str) or not is_hex_digest(value) or value != value.lower():
        raise InvalidBundle(f"{where}: sha256 must be 64 lowercase hex digits")
    return value


def _size(item: Mapping[str, Any], where: str) -> int:
    value = item.get("size")
    if not _is_int(value) or value < 0:
        raise InvalidBundle(f"{where}: size must be a whole number of bytes")
    return value


def _time(item: Mapping[str, Any], key: str, where: str) -> datetime:
    text = _text(item, key, where)
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidBundle(f"{where}: {key} {text!r} is not an ISO 8601 time") from None
    if value.tzinfo is None:
        raise InvalidBundle(f"{where}: {key} {text!r} has no time zone")
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+14:00 is before the first UTC time there is
        raise InvalidBundle(f"{where}: {key} {text!r} is out of range in UTC") from None


# The archive against its manifest.

COMPRESSIONS = {  # how a compressed file begins; a bundle is never compressed
    b"\x1f\x8b": "gzip",
    b"BZh": "bzip2",
    b"\xfd7zXZ\x00": "xz",
    b"\x28\xb5\x2f\xfd": "zstd",
    b"PK\x03\x04": "zip",
}


def compression(head: bytes) -> str | None:
    """The compression a file beginning with `head` (6 bytes) uses, or None: a bundle is a plain
    tar, read as stored, so a small file never stands for gigabytes."""
    return next((kind for magic, kind in COMPRESSIONS.items() if head.startswith(magic)), None)


@dataclass(frozen=True)
class Member:
    """What the archive's index says of one member."""

    name: str
    regular: bool  # a plain file: not a link, folder or device, nor sparse (holes not held)
    size: int


def member_problems(members: Iterable[Member], manifest: Manifest) -> list[str]:
    """What is wrong with the archive's members: a file the manifest lists that is missing,
    twice, not a plain file or of another size; a member the manifest does not list."""
    expected = manifest.files()
    problems: list[str] = []
    seen: set[str] = set()
    manifests = 0
    for m in members:
        if m.name == MANIFEST:
            manifests += 1
            continue
        if m.name in seen:
            problems.append(f"{m.name!r} is in the archive twice")
            continue
        seen.add(m.name)
        wanted = expected.get(m.name)
        if wanted is None:
            problems.append(f"{m.name!r} is not listed in the manifest")
        elif not m.regular:
            problems.append(f"{m.name!r} is not a plain file")
        elif m.size != wanted.size:
            problems.append(f"{m.name!r} has {m.size} bytes, the manifest says {wanted.size}")
    problems += [f"{path!r} is missing" for path in sorted(set(expected) - seen)]
    if manifests != 1:
        problems.append(f"the archive holds {manifests} {MANIFEST} members, not one")
    return problems


def digest_problem(wanted: BundleFile, sha256: str, size: int) -> str | None:
    """Why the bytes read for `wanted` are not its bytes, or None."""
    if size != wanted.size:
        return f"{wanted.path!r} has {size} bytes, the manifest says {wanted.size}"
    if sha256 != wanted.sha256:
        return f"{wanted.path!r} has sha256 {sha256}, the manifest says {wanted.sha256}"
    return None
