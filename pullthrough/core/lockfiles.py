"""What a requirements file or a lock file names, and which files of a project page that is.

`pullthrough warm` reads requirements files (pip's format, `--hash` pins optional), `uv.lock`,
`pylock.toml` (PEP 751) and `poetry.lock`. Each becomes a list of `Wanted`: a project and either
one exact file (lock files name their files) or a version specifier (requirements files), with
the sha256 the file pins. `choose` then picks those files from the distribution's project page.
Environment markers are ignored: everything a lock names is wanted, whatever platform it is for.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from pullthrough.core.filenames import InvalidFilename, parse_filename
from pullthrough.core.models import DistFile, is_hex_digest

FORMATS = ("requirements", "uv.lock", "pylock.toml", "poetry.lock")


class LockFileError(ValueError):
    """A file that cannot be read as the format it claims; the message names the file."""


@dataclass(frozen=True, slots=True)
class Wanted:
    """One thing to fetch: `filename` exactly (lock files), or the files of the newest version
    `specifier` allows (requirements files; all of them, or only the one with `sha256`)."""

    project: NormalizedName
    specifier: str = ""  # "==1.0", ">=2,<3", "" (any version)
    filename: str | None = None
    sha256: str | None = None  # the pin, lowercase hex
    origin: str = ""  # where it was named, for messages: "uv.lock", "requirements.txt:3"


@dataclass
class Parsed:
    wanted: list[Wanted] = field(default_factory=list)
    includes: list[str] = field(default_factory=list)  # `-r FILE` of a requirements file
    notes: list[str] = field(default_factory=list)  # what was skipped, and why


@dataclass(frozen=True, slots=True)
class Chosen:
    """A file of the page to fetch; `pinned`: the sha256 the lock or requirements file gave."""

    file: DistFile
    pinned: str | None
    origin: str


def detect_format(path_name: str, text: str) -> str:
    """The format of a file, from its name (uv.lock, poetry.lock, pylock[.NAME].toml), else
    from its content (TOML with the keys each lock format has), else requirements."""
    name = PurePosixPath(path_name.replace("\\", "/")).name.lower()
    if name == "uv.lock":
        return "uv.lock"
    if name == "poetry.lock":
        return "poetry.lock"
    if re.fullmatch(r"pylock(\.[^.]+)?\.toml", name):
        return "pylock.toml"
    if name.endswith((".lock", ".toml")):
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError:
            return "requirements"
        if "lock-version" in data and "packages" in data:
            return "pylock.toml"
        if isinstance(data.get("metadata"), dict) and "content-hash" in data["metadata"]:
            return "poetry.lock"
        if "package" in data and "version" in data:
            return "uv.lock"
    return "requirements"


def parse(path_name: str, text: str, fmt: str | None = None) -> Parsed:
    """Parse a file of any supported format (`fmt`: one of FORMATS; detected when None)."""
    fmt = fmt or detect_format(path_name, text)
    if fmt == "requirements":
        return parse_requirements(text, path_name)
    data = _toml(text, path_name)
    if fmt == "uv.lock":
        return parse_uv_lock(data, path_name)
    if fmt == "pylock.toml":
        return parse_pylock(data, path_name)
    if fmt == "poetry.lock":
        return parse_poetry_lock(data, path_name)
    raise LockFileError(f"{path_name}: unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


def _toml(text: str, origin: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LockFileError(f"{origin} is not valid TOML: {exc}") from None


# ---- requirements files ---------------------------------------------------------------------

_COMMENT = re.compile(r"(^|\s+)#.*$")
_SKIPPED_OPTIONS = ("-e", "--editable")
_INCLUDE_OPTIONS = ("-r", "--requirement")
_HASH = re.compile(r"--hash(?:=|\s+)(\S+)")


def _logical_lines(text: str) -> Iterable[tuple[int, str]]:
    """pip's reading: comments dropped, `\\`-continued lines joined; (first line number, line)."""
    buffer, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = _COMMENT.sub("", raw)
        if not buffer:
            start = number
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        buffer += line
        if buffer.strip():
            yield start, buffer.strip()
        buffer = ""
    if buffer.strip():
        yield start, buffer.strip()


def parse_requirements(text: str, origin: str) -> Parsed:
    """`name==1.0 --hash=sha256:...`, `name>=1,<2`, `name`; `-r FILE` is reported as an include
    (the caller reads it); `-c` constraints and other options (`--index-url`, ...) are ignored;
    editable, URL and path requirements are skipped with a note."""
    parsed = Parsed()
    for number, line in _logical_lines(text):
        where = f"{origin}:{number}"
        tokens = line.split()
        if tokens[0].startswith("-"):
            if len(tokens[0]) > 2 and tokens[0][1] != "-":  # -rfile.txt, as pip reads it too
                option, value = tokens[0][:2], tokens[0][2:]
            else:
                option, _, value = tokens[0].partition("=")
                value = value or (tokens[1] if len(tokens) > 1 else "")
            if option in _INCLUDE_OPTIONS and value:
                parsed.includes.append(value)
            elif option in _SKIPPED_OPTIONS:
                parsed.notes.append(f"{where}: skipped an editable requirement ({value})")
            continue  # -c, --index-url, --pre, ...: nothing to fetch
        cut = next((i for i, t in enumerate(tokens) if t.startswith("-")), len(tokens))
        requirement_text, options = " ".join(tokens[:cut]), " ".join(tokens[cut:])
        try:
            requirement = Requirement(requirement_text)
        except InvalidRequirement as exc:
            if "/" in requirement_text or requirement_text.startswith("."):
                parsed.notes.append(f"{where}: skipped a path or URL ({requirement_text})")
                continue
            raise LockFileError(f"{where}: not a requirement: {exc}") from None
        if requirement.url:
            parsed.notes.append(f"{where}: skipped a URL requirement ({requirement.name})")
            continue
        project = canonicalize_name(requirement.name)
        specifier = str(requirement.specifier)
        hashes = _requirement_hashes(_HASH.findall(options), where, parsed.notes)
        if hashes:
            parsed.wanted += [Wanted(project, specifier, None, h, where) for h in hashes]
        else:
            parsed.wanted.append(Wanted(project, specifier, None, None, where))
    return parsed


def _requirement_hashes(values: Sequence[str], where: str, notes: list[str]) -> list[str]:
    hashes = []
    for value in values:
        algorithm, _, digest = value.partition(":")
        algorithm, digest = algorithm.lower(), digest.lower()
        if algorithm != "sha256":
            notes.append(f"{where}: only sha256 hashes are checked, not {algorithm}")
            continue
        if not is_hex_digest(digest):
            raise LockFileError(f"{where}: not a sha256 digest: {value!r}")
        hashes.append(digest)
    return hashes


# ---- lock files -----------------------------------------------------------------------------


def _filename_of(entry: Mapping[str, Any]) -> str | None:
    """A lock entry's filename: its `name`/`file`/`filename`, else the last part of its `url`
    or `path` (the URL points at whatever index it was locked against: only the name counts)."""
    for key in ("name", "file", "filename"):
        if isinstance(entry.get(key), str) and entry[key]:
            return str(entry[key])
    for key in ("url", "path"):
        value = entry.get(key)
        if isinstance(value, str) and value:
            path = urlsplit(value).path if key == "url" else value
            name = unquote(path.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1])
            if name:
                return name
    return None


def _prefixed_sha256(value: object, where: str) -> str | None:
    """`sha256:<hex>` (uv.lock, poetry.lock) -> hex; other algorithms -> None."""
    if not isinstance(value, str) or not value:
        return None
    algorithm, _, digest = value.partition(":")
    if algorithm.lower() != "sha256":
        return None
    if not is_hex_digest(digest.lower()):
        raise LockFileError(f"{where}: not a sha256 digest: {value!r}")
    return digest.lower()


def _table_sha256(hashes: object, where: str) -> str | None:
    """PEP 751's `hashes = {sha256 = "<hex>"}` -> hex."""
    if not isinstance(hashes, Mapping) or "sha256" not in hashes:
        return None
    digest = str(hashes["sha256"]).lower()
    if not is_hex_digest(digest):
        raise LockFileError(f"{where}: not a sha256 digest: {hashes['sha256']!r}")
    return digest


def _packages(data: Mapping[str, Any], key: str, origin: str) -> list[Mapping[str, Any]]:
    packages = data.get(key, [])
    if not isinstance(packages, list) or not all(isinstance(p, Mapping) for p in packages):
        raise LockFileError(f"{origin}: `{key}` must be an array of tables")
    return packages


def _project(package: Mapping[str, Any], origin: str) -> tuple[NormalizedName, str]:
    name, version = package.get("name"), package.get("version")
    if not isinstance(name, str) or not name:
        raise LockFileError(f"{origin}: a package without a name")
    return canonicalize_name(name), f"=={version}" if isinstance(version, str) else ""


def _entries(value: object) -> list[Mapping[str, Any]]:
    if isinstance(value, Mapping):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, Mapping)]
    return []


def parse_uv_lock(data: Mapping[str, Any], origin: str) -> Parsed:
    """uv.lock: `[[package]]` with `source = {registry = ...}`, `sdist = {url, hash}` and
    `wheels = [{url, hash}]`. The project itself (virtual, editable) and git, URL and path
    sources are not on any index: skipped."""
    parsed = Parsed()
    for package in _packages(data, "package", origin):
        project, specifier = _project(package, origin)
        source = package.get("source")
        if not isinstance(source, Mapping) or "registry" not in source:
            kind = next(iter(source), "unknown") if isinstance(source, Mapping) else "unknown"
            if kind not in ("virtual", "editable", "directory"):
                parsed.notes.append(f"{origin}: skipped {project} (a {kind} source)")
            continue
        where = f"{origin} ({project} {package.get('version', '')})".replace(" )", ")")
        for entry in _entries(package.get("sdist")) + _entries(package.get("wheels")):
            filename = _filename_of(entry)
            if filename is None:
                raise LockFileError(f"{where}: a file without a url")
            sha256 = _prefixed_sha256(entry.get("hash"), where)
            parsed.wanted.append(Wanted(project, specifier, filename, sha256, where))
    return parsed


def parse_pylock(data: Mapping[str, Any], origin: str) -> Parsed:
    """PEP 751 pylock.toml: `[[packages]]` with `sdist = {name?, url, hashes}` and
    `wheels = [{name?, url, hashes}]`; `vcs`, `directory` and `archive` packages are skipped."""
    if not isinstance(data.get("lock-version"), str):
        raise LockFileError(f"{origin}: not a PEP 751 lock file (no lock-version)")
    if not data["lock-version"].startswith("1."):
        raise LockFileError(f"{origin}: lock-version {data['lock-version']} is not supported")
    parsed = Parsed()
    for package in _packages(data, "packages", origin):
        project, specifier = _project(package, origin)
        kind = next((k for k in ("vcs", "directory", "archive") if k in package), None)
        if kind is not None:
            parsed.notes.append(f"{origin}: skipped {project} (a {kind} package)")
            continue
        where = f"{origin} ({project} {package.get('version', '')})".replace(" )", ")")
        for entry in _entries(package.get("sdist")) + _entries(package.get("wheels")):
            filename = _filename_of(entry)
            if filename is None:
                raise LockFileError(f"{where}: a file without a name, url or path")
            sha256 = _table_sha256(entry.get("hashes"), where)
            parsed.wanted.append(Wanted(project, specifier, filename, sha256, where))
    return parsed


def parse_poetry_lock(data: Mapping[str, Any], origin: str) -> Parsed:
    """poetry.lock: `[[package]]` with `files = [{file, hash}]` (lock-version 2), or the files
    under `[metadata.files]` (lock-version 1); git, directory, file and url sources skipped."""
    parsed = Parsed()
    metadata = data.get("metadata")
    old_files = metadata.get("files", {}) if isinstance(metadata, Mapping) else {}
    for package in _packages(data, "package", origin):
        project, specifier = _project(package, origin)
        source = package.get("source")
        kind = source.get("type") if isinstance(source, Mapping) else None
        if kind in ("git", "directory", "file", "url"):
            parsed.notes.append(f"{origin}: skipped {project} (a {kind} source)")
            continue
        where = f"{origin} ({project} {package.get('version', '')})".replace(" )", ")")
        files = package.get("files")
        if files is None and isinstance(old_files, Mapping):
            files = old_files.get(package["name"], old_files.get(project, []))
        for entry in _entries(files):
            filename = _filename_of(entry)
            if filename is None:
                raise LockFileError(f"{where}: a file without a name")
            sha256 = _prefixed_sha256(entry.get("hash"), where)
            parsed.wanted.append(Wanted(project, specifier, filename, sha256, where))
    return parsed


# ---- choosing files of a page ---------------------------------------------------------------


def _version(f: DistFile, project: str) -> Version | None:
    try:
        return parse_filename(f.filename, project).version
    except InvalidFilename:
        return None


def _exact(specifier: SpecifierSet) -> bool:
    """`==1.0` (or `===1.0`): a pin, which may name a yanked or pre-release version (PEP 592)."""
    specs = list(specifier)
    return len(specs) == 1 and specs[0].operator in ("==", "===") and "*" not in specs[0].version


def choose(
    project: str, wanted: Sequence[Wanted], files: Sequence[DistFile]
) -> tuple[list[Chosen], list[str]]:
    """The page's files each `Wanted` names, and an error message for each one that names
    nothing on the page (or a file whose sha256 differs from the page's). One `Chosen` per
    filename (a pinned one before an unpinned one)."""
    chosen: dict[str, Chosen] = {}
    errors: list[str] = []

    def take(f: DistFile, want: Wanted) -> None:
        if want.sha256 and f.sha256 and want.sha256 != f.sha256:
            errors.append(
                f"{f.filename}: {want.origin} pins sha256 {want.sha256}, the index has {f.sha256}"
            )
            return
        if f.filename not in chosen or (want.sha256 and not chosen[f.filename].pinned):
            chosen[f.filename] = Chosen(f, want.sha256, want.origin)

    by_name = {f.filename: f for f in files}
    for want in wanted:
        if want.filename is not None:
            found = by_name.get(want.filename)
            if found is None:
                errors.append(f"{want.filename}: not on the index's page for {project}")
            else:
                take(found, want)
            continue
        try:
            specifier = SpecifierSet(want.specifier)
        except InvalidSpecifier:
            errors.append(f"{want.origin}: invalid version specifier {want.specifier!r}")
            continue
        candidates = _candidates(project, specifier, files)
        label = f"{project}{want.specifier}"
        if not candidates:
            errors.append(f"{want.origin}: no version of {label} on the index")
            continue
        if want.sha256 is not None:
            matching = [f for f in candidates if f.sha256 == want.sha256]
            if not matching:
                version = _version(candidates[0], project)
                errors.append(
                    f"{want.origin}: no file of {project} {version} has sha256 {want.sha256}"
                )
            candidates = matching
        for f in candidates:
            take(f, want)
    return list(chosen.values()), errors


def _candidates(project: str, specifier: SpecifierSet, files: Sequence[DistFile]) -> list[DistFile]:
    """The files of the newest version `specifier` allows: for a pin (`==`), that version's
    files, yanked or not; otherwise the newest version with files not yanked (pre-releases only
    when the specifier names one), and only those files."""
    exact = _exact(specifier)
    prereleases = exact or bool(specifier.prereleases)
    usable: dict[Version, list[DistFile]] = {}
    for f in files:
        version = _version(f, project)
        if version is None or (f.yanked and not exact):
            continue
        if specifier.contains(version, prereleases=prereleases):
            usable.setdefault(version, []).append(f)
    return usable[max(usable)] if usable else []
