"""File downloads and PEP 658 metadata at /pulp/content/<base_path>/<filename>."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any, BinaryIO

from flask import Blueprint, Response, request
from werkzeug.exceptions import RequestedRangeNotSatisfiable
from werkzeug.http import parse_etags, parse_range_header
from werkzeug.wsgi import FileWrapper, wrap_file

from pullthrough.services.distribution import Distribution
from pullthrough.services.pullthrough import RangedFile, Span, StoredFile, StreamedFile
from pullthrough.storage.store import (
    ArtifactStore,
    ReadFrom,
    cache_control,
    from_start,
    shard,
)
from pullthrough.upstream.client import RangeNotSatisfiable
from pullthrough.web.common import (
    STALE_HEADER,
    distribution,
    etag_matches,
    etag_of,
    not_modified,
    services,
)

bp = Blueprint("content", __name__)

_IMMUTABLE, _PRIVATE_IMMUTABLE = cache_control(), cache_control(private=True)
# What a request may make a stored file's answer partial (206, 416) or empty (304, 412) with
_CONDITIONS = (
    "HTTP_RANGE",
    "HTTP_IF_RANGE",
    "HTTP_IF_NONE_MATCH",
    "HTTP_IF_MATCH",
    "HTTP_IF_MODIFIED_SINCE",
    "HTTP_IF_UNMODIFIED_SINCE",
)


def suffix_range_in_bounds(header: str | None, size: int) -> str | None:
    """RFC 9110 14.1.2: a suffix range longer than the representation selects all of it
    (werkzeug answers 416 instead), so `bytes=-N` with N >= size becomes `bytes=0-`."""
    if header is None or size == 0:
        return header
    unit, _, spec = header.partition("=")
    spec = spec.strip()
    suffix = unit.strip().lower() == "bytes" and spec.startswith("-") and spec[1:].isdigit()
    return "bytes=0-" if suffix and int(spec[1:]) >= size else header


def _etag(sha256: str) -> str:
    return f'"{sha256}"'


def stored_headers(stored: StoredFile) -> list[tuple[str, str]]:
    """The headers of a stored file's whole answer; its sha256 is the ETag (HEAD answers it so:
    `pullthrough warm` tells a stored file by it)."""
    headers = [
        ("Content-Type", "application/octet-stream"),
        ("Content-Length", str(stored.size)),
        ("ETag", _etag(stored.sha256)),
        ("Cache-Control", _IMMUTABLE),
        ("Accept-Ranges", "bytes"),
    ]
    if stored.stale:
        headers.append((STALE_HEADER, "true"))
    return headers


def unconditional(environ: dict[str, Any]) -> bool:
    """Whether a request asks for the whole file whatever it is (no Range, no If-*)."""
    return not any(header in environ for header in _CONDITIONS)


PRECONDITION_FAILED = "Precondition Failed: If-Match names another ETag than this file's\n"


def _precondition(environ: dict[str, Any], sha256: str) -> int | None:
    """RFC 9110 13.2.2 for a stored file (a strong ETag, no Last-Modified), before any Range:
    If-Match naming another ETag is a 412, then If-None-Match naming it a 304; else None."""
    if (if_match := environ.get("HTTP_IF_MATCH")) is not None and not parse_etags(
        if_match
    ).contains(sha256):
        return 412
    return 304 if etag_matches(environ.get("HTTP_IF_NONE_MATCH"), _etag(sha256)) else None


def _usable_range(environ: dict[str, Any]) -> str | None:
    """The Range header a stored file's answer heeds: GET's only, and one range of bytes; a
    server ignores others (RFC 9110 14.2: an unknown unit; several ranges, which we do not send
    as multipart) and answers the whole file, rather than werkzeug's 416."""
    asked = environ.get("HTTP_RANGE")
    if asked is None or environ["REQUEST_METHOD"] != "GET":
        return None
    parsed = parse_range_header(asked)
    usable = parsed is not None and parsed.units == "bytes" and len(parsed.ranges) == 1
    return asked if usable else None


def _heeded_range(environ: dict[str, Any], sha256: str) -> str | None:
    """The usable Range of a stored file's answer, unless If-Range names anything but the
    file's ETag (RFC 9110 13.1.5: a strong match; a date matches no file without a
    Last-Modified): then the whole file is sent."""
    if_range = environ.get("HTTP_IF_RANGE")
    return _usable_range(environ) if if_range in (None, _etag(sha256)) else None


def _sends_from(environ: dict[str, Any], sha256: str, size: int) -> int | None:
    """Where the bytes a stored file's answer sends start: 0 for the whole file (a 200), the
    range's start for a 206, None for an answer without them (a 412, a 304, a 416). The file's
    open asks this once it has the file's sha256 and size, so that an object store's GET
    starts there before the answer is committed; the answer follows the same rules."""
    if _precondition(environ, sha256) is not None:
        return None
    if (asked := _heeded_range(environ, sha256)) is None:
        return 0
    taken = range_span(asked)(size)
    return None if taken is None else taken[0]


def _read_from(environ: dict[str, Any]) -> ReadFrom:
    """Where a GET's answer sends a stored file's bytes from: its start when nothing may
    change the answer (on an object store one GET, without a HEAD first), else as
    `_sends_from` decides."""
    return from_start if unconditional(environ) else functools.partial(_sends_from, environ)


def _unsent(stored: StoredFile) -> Response | None:
    """The 412 or 304 a stored file's conditional request gets (RFC 9110 13.2.2), whether the
    file would be sent from here or by redirect; None when it is to be sent."""
    environ = request.environ
    if unconditional(environ) or (status := _precondition(environ, stored.sha256)) is None:
        return None
    stored.file.close()  # neither answer carries the file
    resp = (
        Response(PRECONDITION_FAILED, status=412, mimetype="text/plain")
        if status == 412
        else Response(status=304)
    )
    resp.headers["ETag"] = _etag(stored.sha256)
    resp.headers["Cache-Control"] = _IMMUTABLE
    if stored.stale:
        resp.headers[STALE_HEADER] = "true"
    return resp


def _stored_response(stored: StoredFile) -> Response:
    if (unsent := _unsent(stored)) is not None:
        return unsent
    environ = request.environ
    conditional = not unconditional(environ)
    resp = Response(_body(stored.file), headers=stored_headers(stored), direct_passthrough=True)
    if not conditional:
        return resp  # all make_conditional would add is a Date, which gunicorn sends
    # The conditions are decided here, as in _sends_from; werkzeug only cuts the range it is
    # given (its own checks would come after the Range, against RFC 9110's order, and would
    # take a weak If-Range for a match).
    decided = {name: value for name, value in environ.items() if name not in _CONDITIONS}
    if (asked := _heeded_range(environ, stored.sha256)) is not None:
        decided["HTTP_RANGE"] = suffix_range_in_bounds(asked, stored.size)
    try:
        resp.make_conditional(decided, accept_ranges=True, complete_length=stored.size)
    except RequestedRangeNotSatisfiable:
        stored.file.close()  # the 416 carries no body: the file must not wait for the collector
        raise
    return resp  # make_conditional changed it in place (its annotation says werkzeug's type)


# Set by the nginx front (only) when it asks again for a file it did not find where an
# X-Accel-Redirect sent it: the answer then sends the file itself.
SEND_HERE = "X-Pullthrough-Send-Here"


def _accelerated(stored: StoredFile) -> Response | None:
    """With `server.accel_redirect` and files on local disk: the answer that has the nginx front
    send the stored file itself (Range and HEAD included), or None to send it here. Access has
    been checked and the use recorded by then."""
    svc = services()
    prefix = svc.settings.server.accel_redirect
    if not prefix or not isinstance(svc.store, ArtifactStore):
        return None
    if request.headers.get(SEND_HERE):  # nginx did not find the file (evicted meanwhile)
        return None
    stored.file.close()
    resp = Response(mimetype="application/octet-stream")
    resp.headers["X-Accel-Redirect"] = prefix + shard(stored.sha256)
    resp.headers["Cache-Control"] = _IMMUTABLE
    if stored.stale:
        resp.headers[STALE_HEADER] = "true"
    if request.method == "GET" and request.environ.get("HTTP_RANGE") is None:
        svc.metrics.file_bytes.inc(stored.size)  # ranges nginx sends are not counted
    return resp


def _body(file: BinaryIO) -> Iterable[bytes]:
    """A local file through the server's file wrapper (gunicorn's sends it with sendfile); an
    object store's stream through werkzeug's, which can seek - a Range then starts its GET at
    the range, where gunicorn's would read and drop every byte before it - in 1 MiB writes
    (8 KiB ones cost more CPU than the bytes)."""
    try:
        file.fileno()
    except (OSError, AttributeError):
        return FileWrapper(file, buffer_size=1024 * 1024)
    return wrap_file(request.environ, file)


def _streamed_response(streamed: StreamedFile | RangedFile) -> Response:
    resp = Response(streamed, mimetype="application/octet-stream", direct_passthrough=True)
    if isinstance(streamed, RangedFile):
        resp.status_code = 206
        total = "*" if streamed.total is None else str(streamed.total)
        resp.headers["Content-Range"] = f"bytes {streamed.start}-{streamed.end}/{total}"
        resp.content_length = streamed.end - streamed.start + 1
    elif streamed.size is not None:
        resp.content_length = streamed.size
    resp.headers["Accept-Ranges"] = "bytes"
    resp.headers["Cache-Control"] = _IMMUTABLE
    if streamed.stale:
        resp.headers[STALE_HEADER] = "true"
    return resp


def range_span(asked: str) -> Span:
    """The bytes (start, stop) a Range header takes of a file of a given size, as a stored
    file's answer would cut them (a suffix longer than the file: all of it); None when it takes
    none."""

    def span(size: int) -> tuple[int, int] | None:
        in_bounds = parse_range_header(suffix_range_in_bounds(asked, size))
        return None if in_bounds is None else in_bounds.range_for_length(size)

    return span


def _one_range() -> tuple[str, Span] | None:
    """The Range header of a GET asking for one range of bytes (and no If-Range, which only a
    stored file's ETag could satisfy), with the bytes it takes of a file of a given size; else
    None: the whole file is sent."""
    if "If-Range" in request.headers or (asked := _usable_range(request.environ)) is None:
        return None
    return asked, range_span(asked)


@bp.route("/pulp/content/<path:base_path>/<filename>", methods=["GET", "HEAD"])
def content(base_path: str, filename: str) -> Response:
    dist = distribution(base_path)
    resp = _answer(dist, filename)
    if dist.private and resp.headers.get("Cache-Control") == _IMMUTABLE:
        resp.headers["Cache-Control"] = _PRIVATE_IMMUTABLE
    return resp


def _answer(dist: Distribution, filename: str) -> Response:
    pullthrough = services().pullthrough
    if filename.endswith(".metadata"):
        data, stale = pullthrough.metadata(dist, filename.removesuffix(".metadata"))
        etag = etag_of(data)
        headers = {"ETag": etag, "Cache-Control": _IMMUTABLE}
        if stale:
            headers[STALE_HEADER] = "true"
        if not_modified(etag):
            return Response(status=304, headers=headers)
        return Response(data, mimetype="application/octet-stream", headers=headers)
    if request.method == "HEAD":
        return _head(pullthrough.peek(dist, filename))
    # A stored file's bytes are asked of an object store at its open, from where the answer
    # sends them, before the answer is committed (a file evicted by another node meanwhile is
    # then still sent whole) - none for a redirect.
    read_from = None if services().store.redirects else _read_from(request.environ)
    opened: StoredFile | StreamedFile | RangedFile | None = None
    if (asked := _one_range()) is not None:  # e.g. a locker reading a wheel's index
        try:
            opened = pullthrough.open_range(dist, filename, *asked, read_from=read_from)
        except RangeNotSatisfiable as exc:  # the upstream's 416, for a file not stored yet
            raise RequestedRangeNotSatisfiable(length=exc.total) from None
    opened = opened or pullthrough.open(dist, filename, read_from=read_from)
    if isinstance(opened, StoredFile):
        return (
            _redirected(opened, filename, dist.private)
            or _accelerated(opened)
            or _stored_response(opened)
        )
    return _streamed_response(opened)


def _redirected(stored: StoredFile, filename: str, private: bool) -> Response | None:
    """With `storage.s3_redirect`: the 302 to a presigned URL of the stored file, or the 304 or
    412 its conditions make of the answer, decided as when it is sent from here (a client that
    holds the file does not download it again), with the same stale marker; else None. A
    private distribution's file is sent by the object store as private: no shared cache keeps
    it past the URL's expiry."""
    store = services().store
    if not store.redirects:
        return None
    if (unsent := _unsent(stored)) is not None:
        return unsent
    url = store.redirect_url(stored.sha256, filename, private=private)
    if url is None:
        return None
    stored.file.close()  # the object store sends it (Range included)
    resp = Response(status=302, headers={"Location": url, "Cache-Control": "no-store"})
    if stored.stale:
        resp.headers[STALE_HEADER] = "true"
    return resp


def _head(found: StoredFile | int | None) -> Response:
    """HEAD answers from the store or the index entry; it never starts a download."""
    if isinstance(found, StoredFile):
        return _accelerated(found) or _stored_response(found)
    resp = Response(mimetype="application/octet-stream")
    if found is None:  # no size on the index: no length (RFC 9110 8.6), rather than werkzeug's 0
        resp.automatically_set_content_length = False
    else:
        resp.content_length = found
    resp.headers["Accept-Ranges"] = "bytes"  # a range of it is answered before it is stored
    return resp
