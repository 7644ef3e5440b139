"""What the pages for people show, built from values: no Flask, no I/O (web/pages.py does that).

Each function takes what a page needs (names, a project page, counts) and returns plain
dataclasses that the templates in web/templates/ only lay out.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit

from packaging.utils import canonicalize_name, canonicalize_version
from packaging.version import Version
from prometheus_client.parser import text_string_to_metric_families

from pullthrough.core.filenames import InvalidFilename, parse_filename, parse_version
from pullthrough.core.models import DistFile, ProjectPage, file_versions
from pullthrough.core.policy import Hold
from pullthrough.core.times import read_utc, stamp

# Where a file comes from.
REPOSITORY = "repository"  # content of the distribution's repository (uploaded or synced)
CACHE = "cache"  # fetched from the upstream before: stored here
UPSTREAM = "upstream"  # not fetched yet: the first download goes to the upstream
SEARCH_LIMIT = 50  # results a search shows
OTHER = "other"  # the version group of files whose version cannot be read
MAX_VERSIONS = 100  # a project page shows the newest; ?all=1 shows every one


@dataclass(frozen=True)
class ClientSetup:
    """The lines to copy to use one distribution from pip, uv and poetry."""

    index_url: str
    pip_conf: str
    uv_command: str
    uv_toml: str
    poetry_command: str


def client_setup(root_url: str, base_path: str, name: str) -> ClientSetup:
    """`root_url`: the server's URL as the browser reached it (http://host:port/)."""
    index_url = f"{root_url.rstrip('/')}/pypi/{base_path}/simple/"
    source = "".join(c if c.isalnum() or c in "-_" else "-" for c in name) or "pullthrough"
    pip_lines = ["[global]", f"index-url = {index_url}"]
    split = urlsplit(index_url)
    if split.scheme == "http" and split.hostname not in ("localhost", "127.0.0.1", "::1"):
        pip_lines.append(f"trusted-host = {split.hostname}")  # pip ignores plain-http hosts else
    uv_toml = "\n".join(
        ["[[tool.uv.index]]", f"name = {json.dumps(source)}", f"url = {json.dumps(index_url)}"]
        + ["default = true"]
    )
    return ClientSetup(
        index_url=index_url,
        pip_conf="\n".join(pip_lines),
        uv_command=f"uv pip install --index-url {index_url} PACKAGE",
        uv_toml=uv_toml,
        poetry_command=f"poetry source add --priority=primary {source} {index_url}",
    )


def search_index(names: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """Each name with its normalized form, for `search` (made once per project list: PyPI's
    700,000 names take about 0.3 s to normalize)."""
    return tuple((canonicalize_name(name), name) for name in names)


def search(
    index: Iterable[tuple[str, str]], query: str, limit: int = SEARCH_LIMIT
) -> tuple[list[str], int]:
    """The names matching `query` (normalized, as a substring): the exact name first, then
    names starting with it, then the rest, each alphabetically; at most `limit` of them, and
    how many matched in all."""
    wanted = canonicalize_name(query.strip())
    if not wanted:
        return [], 0
    ranked: list[tuple[int, str, str]] = []
    for normal, name in index:
        if wanted not in normal:
            continue
        rank = 0 if normal == wanted else 1 if normal.startswith(wanted) else 2
        ranked.append((rank, normal, name))
    ranked.sort()
    return [name for _, _, name in ranked[:limit]], len(ranked)


def human_size(size: int | None) -> str:
    if size is None:
        return "?"
    if size < 1000:
        return f"{size} B"
    value = float(size)
    for unit in ("kB", "MB", "GB", "TB"):
        value /= 1000
        if value < 1000 or unit == "TB":
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class FileRow:
    filename: str
    size: int | None = None
    upload_time: str | None = None
    requires_python: str | None = None
    yanked: str | None = None  # None: not yanked; "": yanked without a reason
    held: str | None = None  # why the remote's policy (or a blocklist, quarantine) holds it
    source: str | None = None  # REPOSITORY, CACHE or UPSTREAM; None for a held file

    @property
    def size_text(self) -> str:
        return human_size(self.size)

    @property
    def uploaded_text(self) -> str:
        """The upload time in UTC to the minute ("2024-05-01 13:45"), else as given."""
        if not self.upload_time:
            return ""
        try:
            when = read_utc(self.upload_time)
        except ValueError:
            return self.upload_time
        return when.strftime("%Y-%m-%d %H:%M")


def version_anchor(version: str) -> str:
    """The id of a version's heading on the project page, so that a link (the JSON API's
    `release_url`) can lead to it: one for all the spellings of a PEP 440 version (`2.0` and
    `2.0.0`: the page's group may be named by a file, the link by the index's `versions`),
    else OTHER's."""
    parsed = parse_version(version)
    return f"v-{canonicalize_version(parsed) if parsed is not None else OTHER}"


@dataclass(frozen=True)
class VersionGroup:
    version: str  # the PEP 440 normal form, or OTHER
    files: list[FileRow]

    @property
    def anchor(self) -> str:
        return version_anchor(self.version)

    @property
    def yanked(self) -> bool:
        offered = [f for f in self.files if f.held is None]
        return bool(offered) and all(f.yanked is not None for f in offered)


@dataclass(frozen=True)
class ProjectModel:
    name: str
    versions: list[VersionGroup]
    status: str | None = None  # PEP 792
    status_reason: str | None = None
    stale: bool = False  # the upstream failed: an older copy of its page
    more_versions: int = 0  # older versions left out

    @property
    def file_count(self) -> int:
        return sum(len(g.files) for g in self.versions)


def hold_text(hold: Hold) -> str:
    until = f" (available from {stamp(hold.until)})" if hold.until is not None else ""
    return hold.reason + until


def project_model(
    page: ProjectPage,
    held: Mapping[str, Hold],
    source: Callable[[DistFile], str],
    *,
    stale: bool = False,
    max_versions: int | None = MAX_VERSIONS,
) -> ProjectModel:
    """The project's files grouped by version, newest first, held files with their reason; the
    newest `max_versions` only (None: all). `source` is asked only for the files shown."""
    versions = file_versions(page)
    # By release: Version("2.0") == Version("2.0.0"), one group named as its first file says.
    groups: dict[Version | None, list[DistFile | tuple[str, Hold]]] = {}
    labels: dict[Version | None, str] = {}

    def add(version: Version | None, item: DistFile | tuple[str, Hold]) -> None:
        labels.setdefault(version, str(version) if version is not None else OTHER)
        groups.setdefault(version, []).append(item)

    for f in page.files:
        add(versions.get(f.filename), f)
    for filename, hold in held.items():
        try:
            version = parse_filename(filename, page.name).version
        except InvalidFilename:
            version = None
        add(version, (filename, hold))

    def order(version: Version | None) -> tuple[int, Version]:
        return (1, version) if version is not None else (0, Version("0"))

    ordered = sorted(groups, key=order, reverse=True)
    shown = ordered if max_versions is None else ordered[:max_versions]

    def row(item: DistFile | tuple[str, Hold]) -> FileRow:
        if isinstance(item, tuple):
            return FileRow(item[0], held=hold_text(item[1]))
        yanked = None if item.yanked is False else ("" if item.yanked is True else str(item.yanked))
        return FileRow(
            item.filename,
            item.size,
            item.upload_time,
            item.requires_python,
            yanked,
            source=source(item),
        )

    return ProjectModel(
        page.name,
        [
            VersionGroup(labels[v], sorted((row(i) for i in groups[v]), key=lambda r: r.filename))
            for v in shown
        ],
        status=page.status,
        status_reason=page.status_reason,
        stale=stale,
        more_versions=len(ordered) - len(shown),
    )


# --- the status page


def counter_values(exposition: bytes) -> dict[str, list[tuple[dict[str, str], float]]]:
    """The `_total` samples of each counter in a Prometheus text exposition, by family name."""
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(exposition.decode("utf-8", "replace")):
        if family.type != "counter":
            continue
        for sample in family.samples:
            if sample.name.endswith("_total"):
                found.setdefault(family.name, []).append((dict(sample.labels), sample.value))
    return found


def counter_sum(counters: Mapping[str, list[tuple[dict[str, str], float]]], name: str) -> int:
    return int(sum(value for _, value in counters.get(name, ())))


@dataclass(frozen=True)
class RemoteHealth:
    name: str
    url: str
    reachable: bool
    checked_at: datetime
    errors: dict[str, int] = field(default_factory=dict)  # kind -> count, since the start


@dataclass(frozen=True)
class CacheUse:
    size: int
    limit: int
    files: int
    hits: int
    misses: int

    @property
    def percent(self) -> float:
        return 100.0 * self.size / self.limit if self.limit > 0 else 0.0

    @property
    def hit_ratio(self) -> float | None:
        """Of the file requests since the server started, the share the store answered."""
        total = self.hits + self.misses
        return self.hits / total if total else None


def upstream_errors(
    counters: Mapping[str, list[tuple[dict[str, str], float]]],
) -> dict[str, dict[str, int]]:
    """remote -> kind -> failed upstream requests."""
    out: dict[str, dict[str, int]] = {}
    for labels, value in counters.get("pullthrough_upstream_errors", ()):
        if value:
            by_kind = out.setdefault(labels.get("remote", "?"), {})
            by_kind[labels.get("kind", "?")] = by_kind.get(labels.get("kind", "?"), 0) + int(value)
    return out
