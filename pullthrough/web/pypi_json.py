"""PyPI's JSON API: /pypi/<base_path>/pypi/<project>/json and .../<version>/json."""

from __future__ import annotations

import dataclasses
import functools
import re
from typing import Any, cast

from flask import Blueprint, request, url_for
from packaging.utils import NormalizedName
from sqlalchemy import select
from werkzeug.wrappers import Response as BaseResponse

from pullthrough.catalog.models import Package
from pullthrough.core import jsontext
from pullthrough.core.advisories import vulnerabilities
from pullthrough.core.filenames import InvalidFilename, parse_filename, parse_version
from pullthrough.core.metadata import PackageMetadata
from pullthrough.core.names import normalize_project
from pullthrough.core.pypi_json import ReleaseFile, UnknownVersion, render_project
from pullthrough.services.distribution import Distribution, NotFound, PageView
from pullthrough.web.common import distribution, moved_to, readable, services
from pullthrough.web.page_models import version_anchor
from pullthrough.web.rendered import Rendered, rendered, respond

bp = Blueprint("pypi_json", __name__)
_FIELDS = {f.name for f in dataclasses.fields(PackageMetadata)}


def _release_files(view: PageView, name: str, file_root: str) -> list[ReleaseFile]:
    files = []
    for f in view.page.files:
        try:
            info = parse_filename(f.filename, name)
        except InvalidFilename:
            continue
        files.append(
            ReleaseFile(
                filename=f.filename,
                version=info.version_text,
                packagetype=info.packagetype,
                sha256=f.sha256 or "",
                size=f.size,
                requires_python=f.requires_python,
                yanked=bool(f.yanked),
                yanked_reason=f.yanked if isinstance(f.yanked, str) else None,
                upload_time=f.upload_time,
                url=file_root + f.filename,
                md5=f.hashes.get("md5"),
            )
        )
    return files


def _metadata(sha256s: list[str]) -> PackageMetadata | None:
    """The core metadata we hold for one of these files (uploaded, synced or cached), found by
    content: a file of another index under the same name is not this one."""
    if not sha256s:
        return None
    with services().catalog.reading() as session:
        package = session.scalar(select(Package).where(Package.sha256.in_(sha256s)).limit(1))
    if package is None or not package.metadata_json.get("name"):
        return None
    values: dict[str, Any] = {k: v for k, v in package.metadata_json.items() if k in _FIELDS}
    for key, value in values.items():
        if isinstance(value, list):
            values[key] = tuple(value)
    return PackageMetadata(**values)


def _page_url(base_path: str, name: str, version: str | None) -> str:
    """What pypi.org's project and release pages are to its JSON API: here the project's page
    for people (web.pages), and a release's heading on it."""
    page = url_for("pages.project_page", base_path=base_path, name=name, _external=True)
    return page if version is None else f"{page}#{version_anchor(version)}"


@bp.get("/pypi/<path:base_path>/pypi/<project>/json")
@bp.get("/pypi/<path:base_path>/pypi/<project>/<version>/json")
def project_json(base_path: str, project: str, version: str | None = None) -> BaseResponse:
    dist = distribution(base_path)
    name = normalize_project(project)
    if name != project:
        return moved_to(".project_json", base_path=dist.base_path, project=name, version=version)
    view = dist.project(name)
    key = ("pypi-json", request.host_url, version)  # its URLs name the host asked
    if (done := view.renders.get(key)) is None:
        done, complete = _render(dist, view, name, version)
        # Kept with the page only when it cannot change before the page does (the metadata of
        # a file cached meanwhile would), and for a few hosts and versions (both are the
        # client's to choose: an unbounded memo would be theirs to fill).
        kept = sum(1 for k in view.renders if isinstance(k, tuple) and k[0] == "pypi-json")
        if complete and kept < MEMO_ANSWERS:
            view.renders[key] = done
    return respond(cast(Rendered, done), view.expires_at)


_WITH_SLASH = re.compile(r"(?P<base_path>.+)/pypi/(?P<project>[^/]+)(?:/(?P<version>[^/]+))?/json")


def moved_from_slash(path: str) -> BaseResponse | None:
    """The API's URL written with a trailing slash, as some clients do (`path` is what the
    pages' `/pypi/<path>/` route took, no distribution's base path): 301 to the URL without
    it, as pypi.org; None for any other path. Not a route of its own: with one, a distribution
    at `team/pypi` would lose its project `json` (`/pypi/team/pypi/simple/json/`)."""
    if (found := _WITH_SLASH.fullmatch(path)) is None:
        return None
    if readable(found["base_path"]) is None:  # a private one's only to its readers
        return None
    names = {**found.groupdict(), "project": normalize_project(found["project"])}
    return moved_to("pypi_json.project_json", **names)


def _no_release(name: str, held: int) -> str:
    why = f" ({held} file{'s' if held != 1 else ''} held or refused here)" if held else ""
    return f"Project {name!r} has no release{why}"


def _cors(dist: Distribution) -> list[tuple[str, str]]:
    """pypi.org's headers that let any site's scripts read the answer (micropip in Pyodide
    does): not a private distribution's."""
    if dist.private:
        return []
    return [
        ("Access-Control-Allow-Origin", "*"),
        ("Access-Control-Allow-Methods", "GET"),
        ("Access-Control-Expose-Headers", "X-PyPI-Last-Serial"),
    ]


MEMO_ANSWERS = 8  # JSON API answers kept per page view


def _render(
    dist: Distribution, view: PageView, name: NormalizedName, version: str | None
) -> tuple[Rendered, bool]:
    files = _release_files(view, name, f"{request.host_url}pulp/content/{dist.base_path}/")
    page_url = functools.partial(_page_url, dist.base_path, name)
    versions = view.page.versions
    try:
        shown = render_project(view.page.name, files, None, version=version, versions=versions)
        wanted = shown["info"]["version"]
        if wanted is None:  # no release at all: pypi.org's 404, not an `info` without a version
            raise NotFound(_no_release(name, len(view.held)))
        # The release's files, however their names spell its version (`0.6c11`, `0.6rc11`),
        # whose copy this distribution would be served: not another remote's (its metadata
        # is what an index gave that remote for its credentials)
        pullthrough = services().pullthrough
        entries = [view.files.get(f["filename"]) for f in shown["urls"]]
        sha256s = [
            e.sha256
            for e in entries
            if e is not None and e.sha256 and pullthrough.servable_sha(dist, e, view)
        ]
        metadata = _metadata(sha256s)
        body = render_project(
            view.page.name,
            files,
            metadata,
            version=version,
            versions=versions,
            page_url=page_url,
            last_serial=view.page.last_serial,
        )
    except UnknownVersion:
        raise NotFound(f"Project {name!r} has no version {version!r}") from None
    if (release := parse_version(wanted or "")) is not None:  # the release the answer is about
        body["vulnerabilities"] = vulnerabilities(dist.advisories(name), name, release)
    answer = rendered(
        jsontext.dumps(body),
        "application/json",
        stale=view.stale,
        max_age=dist.client_ttl(view),
        private=dist.private,
        extra=[("X-PyPI-Last-Serial", str(body["last_serial"])), *_cors(dist)],
    )
    return answer, metadata is not None
