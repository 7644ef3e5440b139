"""The simple repository API (PEP 503 HTML, PEP 691 JSON) at /pypi/<base_path>/simple/."""

from __future__ import annotations

from typing import cast

from flask import Blueprint, Response, request
from werkzeug.wrappers import Response as BaseResponse

from pullthrough.core import simple_html, simple_json
from pullthrough.core.models import project_versions
from pullthrough.core.names import normalize_project
from pullthrough.services.distribution import Distribution, ListView, PageView
from pullthrough.web.common import distribution, moved_to, services, shared_renders
from pullthrough.web.negotiation import ACCEPTABLE, CONTENT_TYPES, Format, choose_format
from pullthrough.web.rendered import Rendered, rendered, respond

bp = Blueprint("simple", __name__)


def _format() -> Format | None:
    return choose_format(request.headers.get("Accept"), request.args.get("format"))


def _not_acceptable() -> Response:
    message = "Not acceptable; this index serves: " + ", ".join(ACCEPTABLE) + "\n"
    return Response(message, status=406, mimetype="text/plain")


def _content_prefix(dist: Distribution) -> str:
    """File links relative to /pypi/<base_path>/simple/<project>/, so they stay on this host and
    under whatever path prefix a reverse proxy adds."""
    depth = 3 + dist.base_path.count("/")
    return "../" * (depth + 1) + f"pulp/content/{dist.base_path}/"


def _rendered(
    body: bytes, fmt: Format, stale: bool, dist: Distribution, max_age: float
) -> Rendered:
    """`max_age`: how long clients may keep it."""
    return rendered(body, CONTENT_TYPES[fmt], stale=stale, max_age=max_age, private=dist.private)


def render_page(view: PageView, dist: Distribution, fmt: Format, project: str) -> Rendered:
    """The page in `fmt`, rendered once per view (memoized on it, and shared with the other
    workers)."""
    if (done := view.renders.get(fmt)) is None:
        prefix = _content_prefix(dist)
        if fmt is Format.V1_JSON:
            body = simple_json.render_project_page(view.page, prefix, project_versions(view.page))
        else:
            body = simple_html.render_project_page(view.page, prefix)
        done = view.renders[fmt] = _rendered(body, fmt, view.stale, dist, dist.client_ttl(view))
        services().metrics.renders.inc()
        shared_renders().put(dist, project, fmt, view.expires_at, done)
    return cast(Rendered, done)


def _render_list(view: ListView, dist: Distribution, fmt: Format) -> Rendered:
    if (done := view.renders.get(fmt)) is None:
        if fmt is Format.V1_JSON:
            body = simple_json.render_project_list(view.names)
        else:
            body = simple_html.render_project_list(view.names, "")
        done = view.renders[fmt] = _rendered(body, fmt, view.stale, dist, dist.ttl)
    return cast(Rendered, done)


@bp.get("/pypi/<path:base_path>/simple/")
def project_list(base_path: str) -> Response:
    dist = distribution(base_path)
    if (fmt := _format()) is None:
        return _not_acceptable()
    view = dist.projects()
    return respond(_render_list(view, dist, fmt), view.expires_at)


@bp.get("/pypi/<path:base_path>/simple/<project>/")
def project_page(base_path: str, project: str) -> BaseResponse:
    dist = distribution(base_path)
    name = normalize_project(project)
    if name != project:
        return moved_to(".project_page", base_path=dist.base_path, project=name)
    if (fmt := _format()) is None:
        return _not_acceptable()
    view = dist.project(name)
    return respond(render_page(view, dist, fmt, name), view.expires_at)


@bp.get("/pulp/content/<path:base_path>/simple/")
@bp.get("/pulp/content/<path:base_path>/simple/<project>/")
def published_index(base_path: str, project: str | None = None) -> BaseResponse:
    """Where Pulp's python plugin publishes a distribution's simple index, in its content app:
    pip.conf files and guides written for Pulp name it. A 301 to the same page here, asked as
    the index's own pages are (a private distribution's only by its readers)."""
    dist = distribution(base_path)
    if project is None:
        return moved_to(".project_list", base_path=dist.base_path)
    return moved_to(".project_page", base_path=dist.base_path, project=normalize_project(project))
