"""PyPI's JSON API: `/pypi/<project>/json` and `/pypi/<project>/<version>/json`, like pypi.org's."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from packaging.version import Version

from pullthrough.core.filenames import parse_version, python_version, release_of
from pullthrough.core.metadata import PackageMetadata
from pullthrough.core.times import read_utc


class UnknownVersion(KeyError):
    """A version the project has neither files nor a release for (a KeyError, so a LookupError)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class ReleaseFile:
    """One file of a release, with what the JSON API shows about it."""

    filename: str
    version: str  # as the filename writes it (`0.6c11`), a legacy version's text included
    packagetype: str
    sha256: str
    size: int | None
    requires_python: str | None
    yanked: bool
    yanked_reason: str | None
    upload_time: str | None  # ISO 8601 as stored
    url: str
    md5: str | None = None
    blake2b_256: str | None = None


def sort_versions(versions: Sequence[str]) -> list[str]:
    """Distinct versions, oldest first by PEP 440; invalid versions last, sorted as strings."""
    distinct = set(versions)
    valid = sorted((v for v in distinct if parse_version(v) is not None), key=_version_key)
    return valid + sorted(v for v in distinct if parse_version(v) is None)


def _version_key(version: str) -> tuple[Version, str]:
    return Version(version), version  # the string orders equal versions ("1.0", "1.0.0")


def _releases(
    files: Sequence[ReleaseFile], versions: Sequence[str] | None = None
) -> dict[str, list[ReleaseFile]]:
    """Each release with all its files, oldest first, as pypi.org keys them: one release per
    PEP 440 version however its files spell it (`0.6c11` is `0.6rc11`), or per legacy version
    string. Its key is the name the index gives it: its PEP 700 `versions` entry, else the
    version as its first file's name writes it (pypi.org keeps the version as uploaded).

    `versions` adds releases without files."""
    names: dict[Version | str, str] = {}
    for listed in versions or ():
        names.setdefault(release_of(listed), listed)
    of_file = [release_of(f.version) for f in files]
    for f, release in zip(files, of_file, strict=True):
        names.setdefault(release, f.version)
    found: dict[str, list[ReleaseFile]] = {v: [] for v in sort_versions(list(names.values()))}
    for f, release in zip(files, of_file, strict=True):
        found[names[release]].append(f)
    return found


def render_project(
    name: str,
    files: Sequence[ReleaseFile],
    metadata: PackageMetadata | None,
    *,
    version: str | None = None,
    versions: Sequence[str] | None = None,
    page_url: Callable[[str | None], str] | None = None,
    last_serial: int | None = None,
) -> dict[str, Any]:
    """The JSON API document for `name`, showing `version` or else the latest release.

    `metadata` describes the shown version; `versions` adds releases without files;
    `last_serial` is the index's (PyPI's `_last-serial`, which mirrors compare), 0 unknown.
    `page_url(None)` is the project's page for people and `page_url(version)` a release's
    place on it: `info`'s package_url, project_url and release_url (null without it).
    """
    by_version = _releases(files, versions)
    ordered = list(by_version)
    shown = _find(version, ordered, name) if version is not None else _latest(by_version)
    shown_files = by_version.get(shown, []) if shown is not None else []
    data: dict[str, Any] = {
        "info": _info(name, shown, shown_files, metadata, page_url),
        "last_serial": last_serial or 0,
    }
    if version is None:
        data["releases"] = {v: [_file(f) for f in fs] for v, fs in by_version.items()}
    data["urls"] = [_file(f) for f in shown_files]
    data["vulnerabilities"] = []
    return data


def _find(version: str, ordered: list[str], project: str) -> str:
    """The release `version` names: the same string, else an equal PEP 440 version."""
    if version in ordered:
        return version
    wanted = parse_version(version)
    for candidate in ordered:
        if wanted is not None and parse_version(candidate) == wanted:
            return candidate
    raise UnknownVersion(f"Project {project!r} has no version {version!r}")


def _latest(by_version: dict[str, list[ReleaseFile]]) -> str | None:
    """pypi.org's choice: the latest final release with an unyanked file, else the latest
    prerelease with one, else as if nothing were yanked: the latest final release, else the
    latest release of all."""
    valid = [v for v in by_version if parse_version(v) is not None]
    live = [v for v in valid if any(not f.yanked for f in by_version[v])]
    final = [v for v in valid if not Version(v).is_prerelease]
    final_live = [v for v in live if not Version(v).is_prerelease]
    for pool in (final_live, live, final, valid, list(by_version)):
        if pool:
            return pool[-1]
    return None


def _info(
    name: str,
    version: str | None,
    files: list[ReleaseFile],
    meta: PackageMetadata | None,
    page_url: Callable[[str | None], str] | None,
) -> dict[str, Any]:
    yanked = bool(files) and all(f.yanked for f in files)
    reason = next((f.yanked_reason for f in files if f.yanked_reason), None) if yanked else None
    requires_python = next((f.requires_python for f in files if f.requires_python), None)
    project_url = page_url(None) if page_url is not None else None
    release_url = page_url(version) if page_url is not None and version is not None else None
    info: dict[str, Any] = {
        "author": None,
        "author_email": None,
        "bugtrack_url": None,  # this and downloads: pypi.org's deprecated keys, still sent
        "classifiers": [],
        "description": None,
        "description_content_type": None,
        "docs_url": None,  # documentation hosted by the index: never here
        "download_url": None,
        "downloads": {"last_day": -1, "last_month": -1, "last_week": -1},
        "dynamic": None,
        "home_page": None,
        "keywords": None,
        "license": None,
        "license_expression": None,
        "license_files": None,
        "maintainer": None,
        "maintainer_email": None,
        "name": name,
        "package_url": project_url,
        "platform": None,
        "project_url": project_url,
        "project_urls": None,
        "provides_extra": None,
        "release_url": release_url,
        "requires_dist": None,
        "requires_python": requires_python,
        "summary": None,
        "version": version,
        "yanked": yanked,
        "yanked_reason": reason,
    }
    if meta is None:
        return info
    urls: dict[str, str] = {}
    if meta.home_page:
        urls["Homepage"] = meta.home_page
    if meta.download_url:
        urls["Download"] = meta.download_url
    urls.update(meta.project_urls)
    info.update(
        author=meta.author,
        author_email=meta.author_email,
        classifiers=list(meta.classifiers),
        description=meta.description,
        description_content_type=meta.description_content_type,
        download_url=meta.download_url,
        dynamic=list(meta.dynamic) or None,
        home_page=meta.home_page,
        keywords=meta.keywords,
        license=meta.license,
        license_expression=meta.license_expression,
        license_files=list(meta.license_files) or None,
        maintainer=meta.maintainer,
        maintainer_email=meta.maintainer_email,
        name=meta.name,
        platform=", ".join(meta.platforms) or None,
        project_urls=urls or None,
        provides_extra=list(meta.provides_extra) or None,
        requires_dist=list(meta.requires_dist) or None,
        requires_python=meta.requires_python or requires_python,
        summary=meta.summary,
    )
    return info


def _file(f: ReleaseFile) -> dict[str, Any]:
    digests = {"sha256": f.sha256}
    if f.md5:
        digests["md5"] = f.md5
    if f.blake2b_256:
        digests["blake2b_256"] = f.blake2b_256
    upload_time, upload_time_iso = _times(f.upload_time)
    return {
        "comment_text": "",
        "digests": digests,
        "downloads": -1,
        "filename": f.filename,
        "has_sig": False,
        "md5_digest": f.md5,
        "packagetype": f.packagetype,
        "python_version": python_version(f.filename, f.packagetype),
        "requires_python": f.requires_python,
        "size": f.size,
        "upload_time": upload_time,
        "upload_time_iso_8601": upload_time_iso,
        "url": f.url,
        "yanked": f.yanked,
        "yanked_reason": f.yanked_reason,
    }


def _times(stored: str | None) -> tuple[str | None, str | None]:
    """(`YYYY-MM-DDTHH:MM:SS`, ISO 8601 with a Z) in UTC; naive times are taken as UTC."""
    if not stored:
        return None, None
    try:
        when = read_utc(stored)
    except ValueError:  # not a time, or one that leaves the calendar in UTC
        return None, stored
    naive = when.replace(tzinfo=None)
    return naive.isoformat(timespec="seconds"), naive.isoformat() + "Z"
