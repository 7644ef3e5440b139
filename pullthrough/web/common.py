"""Helpers the blueprints share: the services, distribution lookup, conditional responses."""

from __future__ import annotations

import hashlib

from flask import Response, abort, current_app, request

from pullthrough.services.distribution import Distribution, NotFound
from pullthrough.services.wiring import Services

STALE_HEADER = "X-Pullthrough-Stale"  # set when the upstream failed and a cached copy is served


def services() -> Services:
    return current_app.extensions["pullthrough"]


def distribution(base_path: str) -> Distribution:
    dist = services().registry.get(base_path.strip("/"))
    if dist is None:
        raise NotFound(f"No distribution with base path {base_path!r}")
    return dist


def require_admin() -> None:
    """401 (with a Basic challenge) unless the request carries the admin's credentials."""
    if not services().auth.allows(request.headers.get("Authorization")):
        challenge = Response(
            "Authentication required\n",
            status=401,
            mimetype="text/plain",
            headers={"WWW-Authenticate": 'Basic realm="pullthrough"'},
        )
        abort(challenge)


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
