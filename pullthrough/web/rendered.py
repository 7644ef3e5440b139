"""Answers built once and sent many times: a page's body and headers, and its gzip form.

A rendering is memoized on its page view; the gzip form is made from it the first time a client
that accepts gzip asks (pip and uv always do), then kept with it: pages are compressed once per
rendering, never per request. Both forms carry `Vary: Accept, Accept-Encoding` and their own
ETag, so caches and conditional requests (304) keep them apart.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from flask import Response, request
from isal import igzip

from pullthrough.web.common import STALE_HEADER, etag_matches, etag_of

GZIP_MIN_BYTES = 1024  # below this, gzip saves less than its own header and the CPU it costs
# ISA-L's level 1: a 2.5 MB JSON page in 1.2 ms and 233 KB, where zlib's level 3 takes 7 ms
# for 256 KB (level 6: 19 ms, 231 KB); PyPI's 16 MB project list in 12 ms (zlib: 113 ms).
GZIP_LEVEL = 1


@dataclass(frozen=True, slots=True)
class Rendered:
    """An answer as sent: body and complete headers."""

    body: bytes
    etag: str
    headers: tuple[tuple[str, str], ...]  # for a 200
    headers_304: tuple[tuple[str, str], ...]
    variants: dict[str, Rendered] = field(default_factory=dict, compare=False)

    def encoded(self, gzip_ok: bool) -> Rendered:
        """The form to send: gzip-encoded (made once, then kept) if the client takes it."""
        if not gzip_ok or len(self.body) < GZIP_MIN_BYTES:
            return self
        if (done := self.variants.get("gzip")) is None:
            body = igzip.compress(self.body, compresslevel=GZIP_LEVEL, mtime=0)
            etag = self.etag[:-1] + '-gzip"'
            common = [(k, etag if k == "ETag" else v) for k, v in self.headers_304]
            full = [
                *((k, v) for k, v in self.headers if k == "Content-Type"),
                ("Content-Length", str(len(body))),
                ("Content-Encoding", "gzip"),
                *common,
            ]
            done = self.variants["gzip"] = Rendered(body, etag, tuple(full), tuple(common))
        return done

    def until(self, expires_at: float, *, not_modified: bool = False) -> list[tuple[str, str]]:
        """The headers to send now: Cache-Control's max-age at most what is left of the page's
        time here (until its revalidation, or a file's maturity), so no client or cache keeps
        the page longer than this server does."""
        headers = list(self.headers_304 if not_modified else self.headers)
        left = expires_at - time.time()  # inf: a repository's list, until the catalog changes
        for i in range(len(headers) - 1, -1, -1):  # among the last: `rendered` puts it there
            name, value = headers[i]
            if name == "Cache-Control":
                given, _, rest = value.partition(", ")  # max-age=N, public
                if int(given[8:]) > left:
                    headers[i] = (name, f"max-age={max(0, int(left))}, {rest}")
                break
        return headers


def rendered(
    body: bytes,
    content_type: str,
    *,
    stale: bool,
    max_age: float,
    private: bool = False,
    extra: Sequence[tuple[str, str]] = (),
) -> Rendered:
    """`private`: for its readers only - no shared cache may keep it (RFC 9111 3.5).
    `extra`: headers of this answer's own, sent with a 304 too."""
    etag = etag_of(body)
    vary = "Accept, Accept-Encoding, Authorization" if private else "Accept, Accept-Encoding"
    common = [
        ("ETag", etag),
        ("Vary", vary),
        ("Cache-Control", f"max-age={int(max_age)}, {'private' if private else 'public'}"),
    ]
    if stale:
        common.append((STALE_HEADER, "true"))
    common.extend(extra)
    full = [("Content-Type", content_type), ("Content-Length", str(len(body))), *common]
    return Rendered(body, etag, tuple(full), tuple(common))


@lru_cache(maxsize=256)  # clients send few distinct headers
def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether an Accept-Encoding header takes gzip (`gzip`, `*`; not with q=0)."""
    for part in (accept_encoding or "").split(","):
        coding, _, params = part.partition(";")
        if coding.strip().lower() not in ("gzip", "x-gzip", "*"):
            continue
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    return float(value) > 0
                except ValueError:
                    return False
        return True
    return False


def respond(done: Rendered, expires_at: float) -> Response:
    """The Flask answer: the form the client takes, or 304 when it has that form already; fresh
    for what is left of the page's time (`expires_at`)."""
    sent = done.encoded(accepts_gzip(request.headers.get("Accept-Encoding")))
    if etag_matches(request.headers.get("If-None-Match"), sent.etag):
        return Response(status=304, headers=sent.until(expires_at, not_modified=True))
    response = Response(sent.body, headers=sent.until(expires_at))
    response.direct_passthrough = True  # the headers are complete: no recomputation
    return response
