"""A repository's package blocklist (Pulp python's, >= 3.30.2): entries that keep packages out
of the repository's new versions - by project name (every version), name and version, or exact
filename. Not the distributions' `blocklist` (an egress policy of what a distribution serves,
core.policy): this one governs what enters a repository.

Pure: entries and packages are plain values. Names compare PEP 503-normalized, versions by
PEP 440 equality (`1.0` blocks `1.0.0`), filenames exactly.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from packaging.utils import canonicalize_name

from pullthrough.core.filenames import parse_version

# Pulp's messages
BOTH = "Exactly one of 'name' or 'filename' must be provided."
VERSION_WITH_FILENAME = "'version' cannot be used with 'filename'."
VERSION_WITHOUT_NAME = "'version' requires 'name' to be provided."
REJECTED = "Blocklisted packages cannot be added to this repository: {}"


class PackagesBlocked(ValueError):
    """Packages an entry of the repository's blocklist names (the whole change is refused)."""

    def __init__(self, filenames: Iterable[str]) -> None:
        self.filenames = sorted(filenames)
        super().__init__(REJECTED.format(", ".join(self.filenames)))


@dataclass(frozen=True)
class Entry:
    name: str | None = None  # normalized
    version: str | None = None
    filename: str | None = None


class PackageLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def filename(self) -> str: ...


P = TypeVar("P", bound=PackageLike)


def entry_problem(name: str | None, version: str | None, filename: str | None) -> str | None:
    """What is wrong with an entry of these fields (Pulp's message), or None."""
    if version is not None and filename is not None:
        return VERSION_WITH_FILENAME
    if version is not None and name is None:
        return VERSION_WITHOUT_NAME
    if (name is None) == (filename is None):
        return BOTH
    return None


def _same_version(a: str, b: str) -> bool:
    """PEP 440 equality; a legacy (or unreadable) version compares as written."""
    va, vb = parse_version(a), parse_version(b)
    return va == vb if va is not None and vb is not None else a == b


def blocks(entry: Entry, *, name: str, version: str, filename: str) -> bool:
    """Whether the entry keeps out the package of this name, version and filename."""
    if entry.filename is not None:
        return entry.filename == filename
    if entry.name is None or canonicalize_name(entry.name) != canonicalize_name(name):
        return False
    return entry.version is None or _same_version(entry.version, version)


def blocked(entries: Iterable[Entry], packages: Iterable[P]) -> list[P]:
    """The packages some entry blocks (as `blocks` says), in their order. The entries are
    looked up by filename and by normalized name, not each tried on each package: a sync's
    70,000 files against a long blocklist."""
    filenames: set[str] = set()
    by_name: dict[str, list[Entry]] = {}
    for e in entries:
        if e.filename is not None:
            filenames.add(e.filename)
        elif e.name is not None:
            by_name.setdefault(canonicalize_name(e.name), []).append(e)
    out = []
    for p in packages:
        named = by_name.get(canonicalize_name(p.name), ()) if by_name else ()
        if p.filename in filenames or any(
            blocks(e, name=p.name, version=p.version, filename=p.filename) for e in named
        ):
            out.append(p)
    return out
