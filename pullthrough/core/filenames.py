"""What a distribution filename says: project, version, package type, platforms."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass

from packaging.tags import Tag, parse_tag
from packaging.utils import (
    NormalizedName,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

# Legacy distribution formats PyPI still lists, by suffix (longest first), with Pulp's packagetype.
_LEGACY_SUFFIXES = (
    (".tar.bz2", "sdist"),
    (".tar.xz", "sdist"),
    (".tar.Z", "sdist"),
    (".tgz", "sdist"),
    (".tbz", "sdist"),
    (".tar", "sdist"),
    (".egg", "bdist_egg"),
    (".exe", "bdist_wininst"),
    (".msi", "bdist_msi"),
    (".rpm", "bdist_rpm"),
    (".dmg", "bdist_dmg"),
)
PACKAGE_TYPES = frozenset({"sdist", "bdist_wheel", *(kind for _, kind in _LEGACY_SUFFIXES)})
DIST_SUFFIXES = (".whl", ".tar.gz", ".zip", *(suffix for suffix, _ in _LEGACY_SUFFIXES))
PLATFORMS = frozenset({"windows", "macos", "linux", "freebsd"})


class InvalidFilename(ValueError):
    """A filename that is not a Python distribution file."""


@dataclass(frozen=True, slots=True)
class FileInfo:
    name: NormalizedName
    version: Version | None  # None: the filename's version is not a valid PEP 440 version
    version_text: str  # the version as the filename writes it (`0.6c11`, not `0.6rc11`)
    packagetype: str
    platforms: frozenset[str]  # empty: platform independent (or unknown)


_NOT_IN_NAMES = r"\x00-\x1f\x7f/\\"  # control characters and path separators
_UNOFFERABLE = re.compile(f"[{_NOT_IN_NAMES}]")
# The ASCII ones, for `bytes.translate`
_NOT_IN_ASCII_NAMES = bytes(c for c in range(128) if _UNOFFERABLE.match(chr(c)))


def offerable(filename: str) -> bool:
    """A name a page may offer a file under: not empty, no path separator, control character or
    surrounding space (an upstream's `<a href="\x01">` names no file, and HTML could not carry
    such a name back unchanged)."""
    return filename == filename.strip() != "" and _UNOFFERABLE.search(filename) is None


def all_offerable(filenames: Iterable[str]) -> bool:
    """`all(map(offerable, filenames))`, a few passes over the names at once (a big page's
    4,000): none in `_NOT_IN_NAMES` in them all (ASCII ones: what `translate` deletes), none
    empty or changed by `strip` - half the time of one match of them all as lines."""
    names = list(filenames)
    try:
        joined = "".join(names)
    except TypeError:  # not str
        return False
    if joined.isascii():
        ascii_names = joined.encode()
        clean = len(ascii_names.translate(None, _NOT_IN_ASCII_NAMES)) == len(ascii_names)
    else:
        clean = _UNOFFERABLE.search(joined) is None
    return clean and "" not in names and list(map(str.strip, names)) == names


def platform_of_tag(platform_tag: str) -> str | None:
    """Map a wheel or egg platform tag to windows/macos/linux/freebsd (None for 'any' and others)."""
    tag = platform_tag.lower()
    if tag.startswith("win"):
        return "windows"
    if tag.startswith("macosx"):
        return "macos"
    if "linux" in tag:
        return "linux"
    if tag.startswith("freebsd"):
        return "freebsd"
    return None


def parse_version(text: str) -> Version | None:
    """The PEP 440 version, or None for a legacy version string."""
    try:
        return Version(text)
    except ValueError:  # InvalidVersion, or digits past int()'s limit (4300)
        return None


def release_of(version: str) -> Version | str:
    """What names a release: its PEP 440 version (`1.0` and `1.0.0` are one), else the text."""
    return parse_version(version) or version


@functools.lru_cache(maxsize=8192)
def parse_filename(filename: str, project: str | None = None) -> FileInfo:
    """Parse a distribution filename; `project` helps split legacy names like `foo-bar-1.0.egg`.

    Remembered (FileInfo is immutable; a refusal is not remembered): one page's filenames are
    read by its filters, the policy's screening, the blocklist and the PEP 700 versions, each
    in turn. 8,192 names, at about 0.7 KB each, hold a page of boto3's size. A wheel's name is
    read in its two parts, each remembered too (`_wheel`)."""
    if "/" in filename or "\\" in filename or filename in ("", ".", ".."):
        raise InvalidFilename(f"Invalid distribution filename: {filename!r}")
    if filename.endswith(".whl"):
        name, version, platforms = _wheel(filename)
        text = filename.split("-", 2)[1]  # packaging's reading: a wheel's name has no dash
        return FileInfo(name, version, text, "bdist_wheel", platforms)
    if filename.endswith((".tar.gz", ".zip")):
        stem = filename.removesuffix(".tar.gz").removesuffix(".zip")
        try:
            name, version = parse_sdist_filename(filename)
        except ValueError:  # InvalidSdistFilename, InvalidVersion, int() limit
            return _legacy(filename, stem, "sdist", project)
        text = stem.rpartition("-")[2]  # packaging's reading: the name may have dashes
        return FileInfo(name, version, text, "sdist", frozenset())
    for suffix, kind in _LEGACY_SUFFIXES:
        if filename.endswith(suffix):
            return _legacy(filename, filename[: -len(suffix)], kind, project)
    raise InvalidFilename(f"Invalid distribution filename (unknown file type): {filename!r}")


def _wheel(filename: str) -> tuple[NormalizedName, Version, frozenset[str]]:
    """packaging's parse of a wheel's name, in its two parts: `name-version[-build]`, which a
    version's 20 wheels share, and `python-abi-platform`, which a page's wheels share a few
    ways. A 4,000-wheel page's first reading took 100 ms, half of it in building tags;
    packaging still checks every part. Raises InvalidFilename with packaging's message."""
    parts = filename[:-4].rsplit("-", 3)  # name-version[-build], python, abi, platform
    stem, tags = parts[0], "-".join(parts[1:])
    try:
        name, version = _wheel_stem(stem)
        return name, version, _wheel_platforms(tags)
    except ValueError:
        pass
    try:  # packaging's message, about the whole name
        name, version, _build, parsed = parse_wheel_filename(filename)
    except ValueError as exc:  # InvalidWheelFilename, InvalidVersion, int() limit
        raise InvalidFilename(str(exc)) from None
    return name, version, _platforms_of(parsed)


@functools.lru_cache(maxsize=4096)
def _wheel_stem(stem: str) -> tuple[NormalizedName, Version]:
    """The project and version of `stem`: packaging's reading of `<stem>-py3-none-any.whl`,
    which has as many parts as the wheel's own name when the stem is one (ValueError if not)."""
    name, version, _build, _tags = parse_wheel_filename(f"{stem}-py3-none-any.whl")
    return name, version


@functools.lru_cache(maxsize=1024)
def _wheel_platforms(tags: str) -> frozenset[str]:
    """The platforms of a wheel's `python-abi-platform` (ValueError if it is no tag set)."""
    return _platforms_of(parse_tag(tags))


def _platforms_of(tags: Iterable[Tag]) -> frozenset[str]:
    return frozenset(p for p in (platform_of_tag(t.platform) for t in tags) if p)


def _legacy(filename: str, stem: str, kind: str, project: str | None) -> FileInfo:
    """Split `name-version[-pyX.Y[-platform]]` using the project name when it is known."""
    if project is not None:
        wanted = canonicalize_name(project)
        parts = stem.split("-")
        for cut in range(1, len(parts)):
            if canonicalize_name("-".join(parts[:cut])) == wanted:
                rest = parts[cut:]
                break
        else:
            raise InvalidFilename(f"Filename {filename!r} does not belong to project {project!r}")
    else:
        name_part, sep, version_part = stem.partition("-")
        if not sep:
            raise InvalidFilename(f"Invalid distribution filename (no version): {filename!r}")
        wanted, rest = canonicalize_name(name_part), version_part.split("-")
    platforms: frozenset[str] = frozenset()
    if kind in ("bdist_wininst", "bdist_msi"):
        platforms = frozenset({"windows"})
    elif kind == "bdist_egg" and len(rest) >= 3:
        platform = platform_of_tag(rest[2])
        platforms = frozenset({platform}) if platform else frozenset()
    version_text = rest[0]
    if kind in ("bdist_wininst", "bdist_msi", "bdist_dumb"):
        version_text = version_text.split(".win")[0].split(".linux")[0]
    return FileInfo(wanted, parse_version(version_text), version_text, kind, platforms)


# What one distribution file is, whatever its name's spelling (see `file_identity`).
FileIdentity = tuple[NormalizedName, tuple[object, ...]]


@functools.lru_cache(maxsize=4096)
def file_identity(filename: str) -> FileIdentity | None:
    """The project and what else names one file, as packaging reads it: a wheel's version,
    build tag and tag set (PEP 427: `PyYAML-6.0-py3-none-any.whl` is
    `pyyaml-6.0.0-py3-none-any.whl`), an sdist's version and archive format (`.tar.gz` and
    `.zip` are two files). None for a name packaging cannot read (legacy formats, odd names):
    such a name is only itself."""
    try:
        if filename.endswith(".whl"):
            name, version, build, tags = parse_wheel_filename(filename)
            return name, ("bdist_wheel", version, build, tags)
        if filename.endswith((".tar.gz", ".zip")):
            name, version = parse_sdist_filename(filename)
            return name, ("sdist", version, filename.endswith(".zip"))
    except ValueError:  # InvalidWheelFilename, InvalidSdistFilename, InvalidVersion
        pass
    return None


MAX_CANDIDATES = 3  # project pages one file request may look at: a bound on its upstream work


@functools.lru_cache(maxsize=1024)  # asked at every file request; packaging's parse: ~20 us
def project_candidates(filename: str) -> tuple[NormalizedName, ...]:
    """Project names a file request may belong to, most likely first: the name a wheel or
    sdist filename gives, else (legacy and odd names) a valid project name followed by a part
    that starts like a version - at most MAX_CANDIDATES, however many dashes the name has."""
    if filename.endswith((".whl", ".tar.gz", ".zip")):
        try:
            parsed = parse_filename(filename).name
            return (parsed,) if _VALID_NAME.fullmatch(parsed) else ()
        except InvalidFilename:
            pass
    stem = filename.rsplit(".", 1)[0].removesuffix(".tar")
    parts = stem.split("-")
    found: list[NormalizedName] = []
    for cut in range(len(parts) - 1, 0, -1):
        name = "-".join(parts[:cut])
        if parts[cut][:1].isdigit() and _VALID_NAME.fullmatch(name):
            found.append(canonicalize_name(name))
            if len(found) == MAX_CANDIDATES:
                break
    return tuple(found)


_VALID_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?")


def python_version(filename: str, packagetype: str) -> str:
    """PyPI's `python_version`: "source" for sdists, a wheel's python tag(s), an egg's X.Y."""
    if packagetype == "sdist":
        return "source"
    parts = filename.rsplit(".", 1)[0].split("-")
    if packagetype == "bdist_wheel" and len(parts) in (5, 6):
        return parts[-3]
    if packagetype == "bdist_egg" and len(parts) >= 3 and parts[2].startswith("py"):
        return parts[2].removeprefix("py")
    return "any"
