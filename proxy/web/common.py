"""Helpers the blueprints share: the services, distribution lookup, conditional responses."""

from __future__ import annotations

import hashlib

from flask import current_app, request

from proxy.services.distribution import Distribution, NotFound
from proxy.services.wiring import Services

STALE_HEADER = "X-Pullthrough-Stale"  # set when the upstream failed and a cached copy is served


def services() -> Services:
    return current_app.extensions["pullthrough"]


def distribution(base_path: str) -> Distribution:
    dist = services().distributions.get(base_path.strip("/"))
    if dist is None:
        raise NotFound(f"No distribution with base path {base_path!r}")
    return dist


def etag_of(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def not_modified(etag: str) -> bool:
    """True when the client's If-None-Match names this ETag (or *)."""
    header = request.headers.get("If-None-Match")
    if not header:
        return False
    tags = {t.strip().removeprefix("W/") for t in header.split(",")}
    return etag in tags or "*" in tags
