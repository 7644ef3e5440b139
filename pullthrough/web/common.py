"""Helpers the blueprints share: the services, distribution lookup, conditional responses."""

from __future__ import annotations

import hashlib
from typing import cast

from flask import current_app, request

from pullthrough.services.container import EXTENSION, Services
from pullthrough.services.distribution import Distribution, NotFound

STALE_HEADER = "X-Pullthrough-Stale"  # set when the upstream failed and a cached copy is served


def services() -> Services:
    return cast(Services, current_app.extensions[EXTENSION])


def distribution(base_path: str) -> Distribution:
    dist = services().registry.get(base_path.strip("/"))
    if dist is None:
        raise NotFound(f"No distribution with base path {base_path!r}")
    return dist


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
