"""The simple repository API's data: one project's files and the list of projects (PEP 503/691)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from packaging.version import Version


@dataclass(frozen=True, slots=True)
class DistFile:
    """One file on a project page, with every field PEP 503/592/658/691/700/714/740 can carry."""

    filename: str
    url: str  # absolute, without the hash fragment
    hashes: Mapping[str, str] = field(default_factory=dict)
    requires_python: str | None = None
    yanked: bool | str = False  # a string is the yank reason (PEP 592)
    core_metadata: bool | Mapping[str, str] = False  # PEP 658/714: True or the metadata's hashes
    size: int | None = None
    upload_time: str | None = None  # ISO 8601 as the upstream gave it
    gpg_sig: bool | None = None
    provenance: str | None = None  # PEP 740 provenance URL

    @property
    def sha256(self) -> str | None:
        return self.hashes.get("sha256")

    def with_url(self, url: str) -> DistFile:
        return replace(self, url=url)


@dataclass(frozen=True, slots=True)
class ProjectPage:
    name: str
    files: tuple[DistFile, ...]
    versions: tuple[str, ...] | None = None  # PEP 700; None when the upstream did not say
    last_serial: int | None = None


@dataclass(frozen=True, slots=True)
class ProjectList:
    names: tuple[str, ...]


def file_versions(page: ProjectPage) -> dict[str, Version]:
    """Each file's version, from its filename (files without a valid version are left out)."""
    from proxy.core.filenames import InvalidFilename, parse_filename

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
