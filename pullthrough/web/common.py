"""Helpers the blueprints share: the services, distribution lookup, conditional responses."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any, cast

from flask import Response, current_app, redirect, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from pullthrough.services.auth import TooManyFailures, Unauthorized
from pullthrough.services.container import EXTENSION, Services
from pullthrough.services.distribution import Distribution, NotFound

if TYPE_CHECKING:
    from pullthrough.web.shared import SharedRenders  # which imports this module

STALE_HEADER = "X-Pullthrough-Stale"  # set when the upstream failed and a cached copy is served


SHARED = "pullthrough.shared_renders"


def services() -> Services:
    return cast(Services, current_app.extensions[EXTENSION])


def shared_renders() -> SharedRenders:
    return cast("SharedRenders", current_app.extensions[SHARED])


def distribution(base_path: str, *, reading: bool = True) -> Distribution:
    """The distribution at `base_path`; a private one only to its readers (401/403)."""
    svc = services()
    dist = svc.registry.get(base_path.strip("/"))
    if dist is None:
        raise NotFound(f"No distribution with base path {base_path!r}")
    if reading and dist.private:
        svc.auth.require_reader(authorization(), address(), dist.base_path)
    return dist


def readable(base_path: str) -> Distribution | None:
    """The distribution at `base_path` if this request may read it; None for a missing one,
    and for a private one to anyone but its readers (wrong credentials included, counted as
    failures). For what a URL answers before any of the distribution's content - a redirect,
    a 405 - which must not tell others that a private distribution exists."""
    svc = services()
    dist = svc.registry.get(base_path.strip("/"))
    if dist is None or not dist.private:
        return dist
    try:
        principal = svc.auth.identify(authorization(), address())
    except (Unauthorized, TooManyFailures):
        return None
    return dist if principal is not None and principal.may_read(dist.base_path) else None


def authorization() -> str | None:
    return request.headers.get("Authorization")


def address() -> str:
    """The client's address (behind the nginx front: the one it saw)."""
    return services().auth.client_address(
        request.remote_addr, request.headers.get("X-Forwarded-For")
    )


def plain_with_reason(message: str, status: int) -> Response:
    """A text answer whose status line carries the message too, as PyPI's upload endpoint
    answers: twine shows only the status line unless run with --verbose."""
    phrase = "".join(c if " " <= c <= "~" else "?" for c in message.splitlines()[0])[:300]
    response = Response(message + "\n", mimetype="text/plain")
    response.status = f"{status} {phrase}"
    return response


def etag_of(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """True when an If-None-Match header names this ETag (or *)."""
    if not if_none_match:
        return False
    tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
    return etag in tags or "*" in tags


def not_modified(etag: str) -> bool:
    return etag_matches(request.headers.get("If-None-Match"), etag)


def moved_to(endpoint: str, **values: Any) -> BaseResponse:
    """301 to the URL of `endpoint` (a project's normalized name, PEP 503), query kept."""
    target = url_for(endpoint, **values)
    if request.query_string:
        target += "?" + request.query_string.decode("latin-1")
    return redirect(target, 301)
