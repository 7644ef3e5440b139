"""Core metadata of a distribution file: METADATA of a wheel, PKG-INFO of an sdist."""

from __future__ import annotations

import lzma
import os
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from packaging.metadata import parse_email
from packaging.utils import InvalidName, NormalizedName, canonicalize_name
from packaging.version import Version

from pullthrough.core.filenames import InvalidFilename, parse_filename, parse_version

MAX_METADATA_SIZE = 10 * 1024 * 1024  # zip/gzip bomb guard for METADATA and PKG-INFO
# A tar.gz is walked whole (its one PKG-INFO), every byte inflated: at most this many times
# its own size (PyPI refuses archives past a ratio of 50), or EXPANDED_FLOOR for a small one.
MAX_EXPANSION = 50
EXPANDED_FLOOR = 256 * 1024 * 1024

# What corrupt or hostile archives raise while being read (besides our own errors).
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    NotImplementedError,  # unsupported compression method
    RuntimeError,  # encrypted entry
    UnicodeDecodeError,  # entry name flagged UTF-8 but is not
    EOFError,
    zlib.error,
    lzma.LZMAError,  # a corrupt LZMA-compressed entry
    OSError,
)
# ValueError: tarfile's parsing of damaged pax headers (GNU.sparse.map=a,b) fails in int().
_TAR_ERRORS = (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError, ValueError)


class InvalidDistribution(ValueError):
    """A distribution file whose core metadata cannot be read or does not fit its filename."""


@dataclass(frozen=True)
class PackageMetadata:
    """The core metadata fields an index shows, as written by the distribution's author."""

    name: str
    version: str
    metadata_version: str | None = None
    summary: str | None = None
    description: str | None = None
    description_content_type: str | None = None
    author: str | None = None
    author_email: str | None = None
    maintainer: str | None = None
    maintainer_email: str | None = None
    license: str | None = None
    license_expression: str | None = None  # PEP 639 (Metadata-Version 2.4), License's successor
    license_files: tuple[str, ...] = ()  # PEP 639: paths under the dist-info's licenses/
    keywords: str | None = None  # comma separated, as the metadata spec serializes them
    classifiers: tuple[str, ...] = ()
    home_page: str | None = None
    download_url: str | None = None
    project_urls: dict[str, str] = field(default_factory=dict, hash=False)
    requires_dist: tuple[str, ...] = ()
    requires_python: str | None = None
    provides_extra: tuple[str, ...] = ()
    platforms: tuple[str, ...] = ()
    dynamic: tuple[str, ...] = ()  # fields the sdist's build may still change (PEP 643)
    raw: bytes = b""  # the METADATA / PKG-INFO file itself (served as PEP 658 metadata)

    @property
    def normalized_name(self) -> NormalizedName:
        return canonicalize_name(self.name)


def parse_metadata(raw: bytes) -> PackageMetadata:
    """Parse METADATA / PKG-INFO leniently; only Name and Version must be valid."""
    fields, unparsed = parse_email(raw)
    name = fields.get("name")
    if name is None:
        problem = "a repeated or undecodable" if "name" in unparsed else "no"
        raise InvalidDistribution(f"Invalid metadata: {problem} Name field")
    try:
        canonicalize_name(name, validate=True)
    except InvalidName:
        raise InvalidDistribution(f"Invalid metadata: invalid Name {name!r}") from None
    version = fields.get("version")
    if version is None:
        problem = "a repeated or undecodable" if "version" in unparsed else "no"
        raise InvalidDistribution(f"Invalid metadata: {problem} Version field")
    try:
        Version(version)
    except ValueError:  # InvalidVersion, or digits past int()'s limit
        raise InvalidDistribution(f"Invalid metadata: invalid Version {version!r}") from None
    keywords = fields.get("keywords")
    return PackageMetadata(
        name=name,
        version=version,
        metadata_version=fields.get("metadata_version"),
        summary=fields.get("summary"),
        description=fields.get("description"),
        description_content_type=fields.get("description_content_type"),
        author=fields.get("author"),
        author_email=fields.get("author_email"),
        maintainer=fields.get("maintainer"),
        maintainer_email=fields.get("maintainer_email"),
        license=fields.get("license"),
        license_expression=fields.get("license_expression"),
        license_files=tuple(fields.get("license_files", ())),
        keywords=", ".join(keywords) if keywords is not None else None,
        classifiers=tuple(fields.get("classifiers", ())),
        home_page=fields.get("home_page"),
        download_url=fields.get("download_url"),
        project_urls=dict(fields.get("project_urls", {})),
        requires_dist=tuple(fields.get("requires_dist", ())),
        requires_python=fields.get("requires_python"),
        provides_extra=tuple(fields.get("provides_extra", ())),
        platforms=tuple(fields.get("platforms", ())),
        dynamic=tuple(fields.get("dynamic", ())),
        raw=raw,
    )


# What pip and uv resolve with: a build that may change one of these makes the sdist's PKG-INFO
# unfit to stand for the built distribution's metadata.
DEPENDENCY_FIELDS = frozenset({"requires-dist", "requires-python", "provides-extra"})


def serves_as_pep658(meta: PackageMetadata, packagetype: str) -> bool:
    """Whether a file's core metadata may be offered as its PEP 658 metadata, which installers
    trust instead of building: a wheel's always; an sdist's only from Metadata-Version 2.2 on
    (PEP 643: fields not declared Dynamic are final) and when no dependency field is Dynamic.
    An older PKG-INFO may simply leave its dependencies out."""
    if packagetype == "bdist_wheel":
        return True
    if packagetype != "sdist" or meta.metadata_version is None:
        return False
    try:
        if Version(meta.metadata_version) < Version("2.2"):
            return False
    except ValueError:  # InvalidVersion, or digits past int()'s limit
        return False
    return not {field.lower() for field in meta.dynamic} & DEPENDENCY_FIELDS


def read_metadata(path: Path, filename: str) -> PackageMetadata:
    """Read the core metadata of the wheel or sdist at `path`; `filename` gives its type."""
    if filename.endswith(".whl"):
        try:
            info = parse_filename(filename)
        except InvalidFilename as exc:
            raise InvalidDistribution(str(exc)) from None
        member, raw = _read_zip(path, filename, _is_wheel_metadata)
        dist_info = member.split("/")[0]
        name, _, version = dist_info.removesuffix(".dist-info").rpartition("-")
        if canonicalize_name(name) != info.name or parse_version(version) != info.version:
            raise InvalidDistribution(
                f"Invalid distribution {filename!r}: {dist_info} does not match the wheel's "
                "name and version"
            )
    elif filename.endswith(".zip"):
        _, raw = _read_zip(path, filename, _is_sdist_metadata)
    elif filename.endswith(".tar.gz"):
        raw = _read_tar(path, filename)
    else:
        raise InvalidDistribution(f"Unsupported distribution file type: {filename!r}")
    try:
        return parse_metadata(raw)
    except InvalidDistribution as exc:
        raise InvalidDistribution(f"Invalid distribution {filename!r}: {exc}") from None


def check_filename_matches(meta: PackageMetadata, filename: str) -> None:
    """Require the filename's project and version, as every reader takes them from the name
    alone (the page, the store, an upload token's scope), to be the metadata's: a name that
    only splits right with the metadata's help (`other-tool-5.0-x.tar.gz`, read elsewhere as
    project `other`) would be listed under a project its metadata does not name."""
    mismatch = InvalidDistribution(
        f"Filename {filename!r} does not match the metadata "
        f"(name {meta.name!r}, version {meta.version!r})"
    )
    try:
        info = parse_filename(filename)
    except InvalidFilename:
        raise mismatch from None
    if info.name != meta.normalized_name or info.version != Version(meta.version):
        raise mismatch


def _is_wheel_metadata(member: str) -> bool:
    """Whether `member` is a top-level `*.dist-info/METADATA`."""
    parts = member.split("/")
    return len(parts) == 2 and parts[0].endswith(".dist-info") and parts[1] == "METADATA"


def _is_sdist_metadata(member: str) -> bool:
    """Whether `member` is `<dir>/PKG-INFO`, exactly one directory level deep."""
    parts = member.split("/")
    return len(parts) == 2 and parts[0] not in ("", ".", "..") and parts[1] == "PKG-INFO"


def _kind(filename: str) -> str:
    return "METADATA" if filename.endswith(".whl") else "PKG-INFO"


def _require_one(found: list[str], filename: str) -> None:
    kind = _kind(filename)
    if not found:
        raise InvalidDistribution(f"Invalid distribution {filename!r}: no {kind} file")
    if len(found) > 1:
        names = ", ".join(found)
        raise InvalidDistribution(
            f"Invalid distribution {filename!r}: {len(found)} {kind} files ({names})"
        )


def _not_regular(member: str, filename: str) -> InvalidDistribution:
    return InvalidDistribution(f"Invalid distribution {filename!r}: {member} is not a regular file")


def _too_large(size: int, filename: str) -> InvalidDistribution:
    return InvalidDistribution(
        f"Invalid distribution {filename!r}: {_kind(filename)} is larger than "
        f"{MAX_METADATA_SIZE} bytes ({size} bytes)"
    )


def _read_capped(fh: IO[bytes], filename: str) -> bytes:
    data = fh.read(MAX_METADATA_SIZE + 1)
    if len(data) > MAX_METADATA_SIZE:
        raise _too_large(len(data), filename)
    return data


def _read_zip(path: Path, filename: str, wanted: Callable[[str], bool]) -> tuple[str, bytes]:
    """The name and bytes of the one member of the zip file at `path` that `wanted` selects."""
    with path.open("rb") as fh:
        try:
            with zipfile.ZipFile(fh) as zf:
                found = [info for info in zf.infolist() if wanted(info.filename)]
                _require_one([info.filename for info in found], filename)
                (info,) = found
                if stat.S_ISLNK(info.external_attr >> 16):  # a link's data is its target
                    raise _not_regular(info.filename, filename)
                if info.file_size > MAX_METADATA_SIZE:
                    raise _too_large(info.file_size, filename)
                with zf.open(info) as member:
                    return info.filename, _read_capped(member, filename)
        except _ZIP_ERRORS as exc:
            raise InvalidDistribution(
                f"Invalid distribution {filename!r}: not a readable zip file ({exc})"
            ) from None


def _read_tar(path: Path, filename: str) -> bytes:
    """The bytes of the `<dir>/PKG-INFO` member of the gzipped tar file at `path`. A member
    that would take the walk past MAX_EXPANSION times the file's size is refused before it is
    inflated: a 1 MB upload of a 1 GiB member of zeros took a worker 8 s, and the default
    upload limit's worth would take it hours."""
    with path.open("rb") as fh:
        limit = max(EXPANDED_FLOOR, MAX_EXPANSION * os.fstat(fh.fileno()).st_size)
        try:
            with tarfile.open(fileobj=fh, mode="r:gz") as tar:
                found = []
                while (member := tar.next()) is not None:
                    # tarfile keeps every header it reads (`members`), some 500 bytes each: an
                    # upload of 3 MB of empty members took a worker's memory 235 MB up
                    tar.members.clear()  # type: ignore[attr-defined]  # (not in typeshed)
                    if member.offset_data + member.size > limit:
                        raise InvalidDistribution(
                            f"Invalid distribution {filename!r}: it expands to more than "
                            f"{limit} bytes ({MAX_EXPANSION} times its size), as a "
                            "decompression bomb does"
                        )
                    if _is_sdist_metadata(member.name):
                        found.append(member)
                _require_one([member.name for member in found], filename)
                (member,) = found
                if not member.isreg():  # never follow symbolic or hard links
                    raise _not_regular(member.name, filename)
                if member.size > MAX_METADATA_SIZE:
                    raise _too_large(member.size, filename)
                extracted = tar.extractfile(member)
                if extracted is None:  # pragma: no cover - regular files always extract
                    raise _not_regular(member.name, filename)
                with extracted:
                    return _read_capped(extracted, filename)
        except InvalidDistribution:  # a ValueError too: ours, saying what is wrong
            raise
        except _TAR_ERRORS as exc:
            raise InvalidDistribution(
                f"Invalid distribution {filename!r}: not a readable tar.gz file ({exc})"
            ) from None
