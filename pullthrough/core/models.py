"""The simple repository API's data: one project's files and the list of projects (PEP 503/691)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from packaging.version import Version

from pullthrough.core.filenames import InvalidFilename, parse_filename
from pullthrough.core.lines import every_line, lines_pattern

# hashlib algorithms an index may name, with their hex digest lengths.
_DIGEST_LENGTHS = {
    "md5": 32,
    "sha1": 40,
    "sha224": 56,
    "sha256": 64,
    "sha384": 96,
    "sha512": 128,
    "blake2b": 128,
    "blake2s": 64,
}
_HEX = re.compile("[0-9a-f]+")
_SHA256 = re.compile("[0-9a-f]{64}")
_SHA256_LINES = lines_pattern(_SHA256.pattern)


def is_hex_digest(value: str, algorithm: str = "sha256") -> bool:
    """A well-formed lowercase hex digest of `algorithm`."""
    return _DIGEST_LENGTHS.get(algorithm) == len(value) and _HEX.fullmatch(value) is not None


def one_sha256(raw: Mapping[Any, object]) -> bool:
    """PyPI's every entry: `{"sha256": <well-formed hex>}`, which cleaning leaves as it is."""
    return (
        len(raw) == 1
        and isinstance(value := raw.get("sha256"), str)
        and _SHA256.fullmatch(value) is not None
    )


def all_one_sha256(raws: Sequence[Mapping[Any, object]]) -> bool:
    """`all(map(one_sha256, raws))`, in one match for the digests (a big page's 4,000)."""
    if set(map(len, raws)) - {1}:
        return False
    return every_line(_SHA256_LINES, [raw.get("sha256") for raw in raws])  # None: no line


def clean_hashes(raw: Mapping[Any, object]) -> dict[str, str]:
    """An upstream's hashes, keeping only known algorithms with well-formed hex digests: a digest
    names a file in our store, so it must never be able to name anything else."""
    if one_sha256(raw):
        return {"sha256": str(raw["sha256"])}  # the fast path of a big page
    out = {}
    for algo, value in raw.items():
        algo, value = str(algo).lower(), str(value).lower()
        if is_hex_digest(value, algo):
            out[algo] = value
    return out


class DistFile(msgspec.Struct, frozen=True, gc=False):
    """One file on a project page, with every field PEP 503/592/658/691/700/714/740 can carry.

    A msgspec struct: a PEP 691 page decodes straight into these (its field names are the JSON
    keys), and one is built, pickled and read back several times faster than a frozen dataclass
    (a 4,000-file page). `gc=False`: it holds only strings, numbers and a dict of strings.
    """

    filename: str
    url: str  # absolute, without the hash fragment
    hashes: Mapping[str, str] = {}
    requires_python: str | None = msgspec.field(default=None, name="requires-python")
    yanked: bool | str = False  # a string is the yank reason (PEP 592)
    # PEP 658/714: True or the metadata's hashes
    core_metadata: bool | Mapping[str, str] = msgspec.field(default=False, name="core-metadata")
    size: Annotated[int, msgspec.Meta(ge=0)] | None = None
    upload_time: str | None = msgspec.field(default=None, name="upload-time")  # PEP 700 form, UTC
    gpg_sig: bool | None = msgspec.field(default=None, name="gpg-sig")
    provenance: str | None = None  # PEP 740 provenance URL

    @property
    def sha256(self) -> str | None:
        return self.hashes.get("sha256")

    def with_url(self, url: str) -> DistFile:
        return msgspec.structs.replace(self, url=url)


PROJECT_STATUSES = ACTIVE, ARCHIVED, QUARANTINED, DEPRECATED = (
    "active",
    "archived",
    "quarantined",
    "deprecated",
)  # PEP 792


@dataclass(frozen=True, slots=True)
class ProjectPage:
    name: str
    files: tuple[DistFile, ...]
    versions: tuple[str, ...] | None = None  # PEP 700; None when the upstream did not say
    last_serial: int | None = None
    status: str | None = None  # PEP 792; None: not said (active)
    status_reason: str | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled (the page cache) with its files as one msgpack blob: a 4,000-file page in
        ~1 ms instead of ~9, read back in ~2.5 ms instead of ~5-8. Files msgpack cannot carry
        (a lone surrogate, a size of 2**64 or more) are pickled one by one, as before."""
        rest = (self.versions, self.last_serial, self.status, self.status_reason)
        try:
            return _packed_page, (self.name, _FILES_OUT.encode(self.files), *rest)
        except (UnicodeEncodeError, OverflowError):
            return ProjectPage, (self.name, self.files, *rest)


_FILES_OUT = msgspec.msgpack.Encoder()
_FILES_IN = msgspec.msgpack.Decoder(tuple[DistFile, ...])


def _packed_page(name: str, files: bytes, *rest: Any) -> ProjectPage:
    return ProjectPage(name, _FILES_IN.decode(files), *rest)


def api_version(page: ProjectPage, *, json: bool = False) -> str:
    """The simple API version a page's fields need: 1.4 for a status (PEP 792), 1.3 for
    provenance (PEP 740), else 1.1 (size, upload-time, versions). PEP 700 makes each file's
    size mandatory in JSON from 1.1: a JSON page with a file of unknown size (an HTML-only
    upstream's) says 1.0, its other keys being ones a 1.0 client ignores."""
    if page.status is not None:
        return "1.4"
    if any(f.provenance for f in page.files):
        return "1.3"
    return "1.0" if json and any(f.size is None for f in page.files) else "1.1"


@dataclass(frozen=True, slots=True)
class ProjectList:
    names: tuple[str, ...]


def file_versions(page: ProjectPage) -> dict[str, Version]:
    """Each file's version, from its filename (files without a valid version are left out)."""
    found: dict[str, Version] = {}
    for f in page.files:
        try:
            version = parse_filename(f.filename, page.name).version
        except InvalidFilename:
            continue
        if version is not None:
            found[f.filename] = version
    return found


def project_versions(page: ProjectPage) -> list[str]:
    """PEP 700 `versions`: the upstream's list when it gave one, else the files' versions, sorted."""
    if page.versions is not None:
        return list(page.versions)
    return [str(v) for v in sorted(set(file_versions(page).values()))]
