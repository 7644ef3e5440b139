"""PEP 691 content negotiation for simple pages: pure, tested without a server."""

from __future__ import annotations

from enum import Enum
from functools import lru_cache

from werkzeug.datastructures import MIMEAccept
from werkzeug.http import parse_accept_header


class Format(Enum):
    HTML = "html"  # served as text/html, what legacy clients asked for
    V1_HTML = "v1+html"
    V1_JSON = "v1+json"


# Server preference on ties: HTML first, as PyPI answers `*/*` and a missing Accept header.
_OFFERS = {
    "text/html": Format.HTML,
    "application/vnd.pypi.simple.v1+html": Format.V1_HTML,
    "application/vnd.pypi.simple.v1+json": Format.V1_JSON,
    "application/vnd.pypi.simple.latest+html": Format.V1_HTML,
    "application/vnd.pypi.simple.latest+json": Format.V1_JSON,
}
ACCEPTABLE = tuple(_OFFERS)

CONTENT_TYPES = {
    Format.HTML: "text/html; charset=utf-8",
    Format.V1_HTML: "application/vnd.pypi.simple.v1+html",
    Format.V1_JSON: "application/vnd.pypi.simple.v1+json",
}


@lru_cache(maxsize=512)  # clients send few distinct Accept headers; parsing is per request
def choose_format(accept: str | None, format_param: str | None = None) -> Format | None:
    """The format to answer in, or None when nothing the client accepts can be served (406).

    `?format=<content type>` overrides the Accept header, as on PyPI.
    """
    if format_param:
        # An unencoded `+` in a query string arrives as a space.
        return _OFFERS.get(format_param.strip().lower().replace(" ", "+"))
    if not accept or not accept.strip():
        return Format.HTML
    # Parameters other than q (`; charset=utf-8`) are answered as if absent: werkzeug would
    # match them only against offers with the same parameters, and ours have none.
    parsed = parse_accept_header(accept, MIMEAccept)
    bare = MIMEAccept([(value.split(";", 1)[0].strip(), q) for value, q in parsed])
    match = bare.best_match(ACCEPTABLE)
    return _OFFERS[match] if match else None
