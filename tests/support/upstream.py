"""A fake upstream package index (PyPI-shaped) served over real HTTP on 127.0.0.1.

It is written independently of ``proxy`` (do not import from there) so that it can catch bugs
in the proxy's parsers. Two werkzeug servers run in daemon threads, each on its own port:

* the **index** server: ``/simple/`` and ``/simple/<project>/`` (PEP 503 HTML / PEP 691 JSON,
  API version 1.1 with PEP 700 ``versions``/``size``/``upload-time``);
* the **files** server (like files.pythonhosted.org): ``/files/<sha256[:16]>/<filename>`` and,
  for files added with ``metadata=True``, ``<that url>.metadata`` (PEP 658 / PEP 714).

Usage::

    with Upstream() as up:
        up.add_file("demo", build_wheel(tmp_path, "demo", "1.0"), metadata=True)
        requests.get(up.index_url + "demo/", timeout=5)
        assert up.requests_for("/files/", server="files")

Content negotiation (index pages): the Accept header's q-values decide between
``application/vnd.pypi.simple.v1+json``, ``application/vnd.pypi.simple.v1+html`` and
``text/html`` (``...simple.latest+json/html`` are aliases of v1). Ties, a missing Accept header,
``*/*`` or nothing acceptable all give ``text/html`` (as PyPI does). ``?format=<media type>``
overrides the header. Pages carry ``ETag`` and ``Vary: Accept`` and answer ``If-None-Match``
with 304. Like PyPI's CDN, pages are sent gzip-encoded to a client that accepts gzip
(``gzip_pages``). Project names that are not normalized (``/simple/Foo.Bar/``) and URLs missing the
trailing slash redirect 301 to ``/simple/foo-bar/``; unknown projects give 404.

Fault knobs are plain attributes, read once at the start of each request, so they can be
flipped from the test thread at any time (see :class:`Upstream`).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import html
import io
import itertools
import json
import re
import socket
import sys
import tarfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal
from urllib.parse import quote

from packaging.version import InvalidVersion, Version
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

__all__ = [
    "HTML_V1",
    "JSON_V1",
    "TEXT_HTML",
    "RequestRecord",
    "Upstream",
    "UpstreamFile",
    "normalize_project",
]

JSON_V1 = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
TEXT_HTML = "text/html"
_ALIASES = {
    "application/vnd.pypi.simple.latest+json": JSON_V1,
    "application/vnd.pypi.simple.latest+html": HTML_V1,
}
# Tie-break order (earlier wins on equal quality), like warehouse.
_HTML_OFFERS = (TEXT_HTML, HTML_V1)
_ALL_OFFERS = (TEXT_HTML, HTML_V1, JSON_V1)

API_VERSION = "1.1"

_HOST = "127.0.0.1"
_FLIP = bytes(255 - i for i in range(256))  # XOR 0xFF: same length, every byte differs


def corrupted(data: bytes) -> bytes:
    """What a file's GETs send under ``corrupt_files``: every byte XOR 0xFF."""
    return data.translate(_FLIP)


_JOIN_TIMEOUT = 5.0

# Linux lets us keep a bound, non-listening "placeholder" socket on each port for the whole
# life of the Upstream (SO_REUSEPORT): while down() no one can steal the port, connections are
# refused at once, and up() can always re-listen on the same port.
_USE_REUSEPORT = sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def normalize_project(name: str) -> str:
    """PEP 503 normalized project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass
class RequestRecord:
    """One request seen by the upstream.

    ``server`` is ``"index"`` or ``"files"`` (the server that received it; in
    ``relative_urls`` mode file downloads hit the index server). ``headers`` has lower-case
    names. ``status`` is the answer's status code (``None`` while the request is still being
    delayed by the ``delay`` knob).
    """

    server: str
    method: str
    path: str
    query: str
    headers: dict[str, str]
    status: int | None = None

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass
class UpstreamFile:
    """A registered distribution file (returned by :meth:`Upstream.add_file`)."""

    project: str  # normalized project name
    filename: str
    data: bytes
    sha256: str
    version: str
    requires_python: str | None = None
    yanked: str | bool = False
    metadata: bytes | None = None  # PEP 658 metadata served when not None
    upload_time: str | None = None

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def metadata_sha256(self) -> str | None:
        return None if self.metadata is None else hashlib.sha256(self.metadata).hexdigest()

    @property
    def path(self) -> str:
        """URL path of the file (same on the files server and, in relative mode, the index)."""
        return f"/files/{self.sha256[:16]}/{quote(self.filename)}"


@dataclass
class _Project:
    display_name: str
    files: list[UpstreamFile] = field(default_factory=list)


class _QuietHandler(WSGIRequestHandler):
    """Request handler that does not log every request to stderr."""

    def log(self, type: str, message: str, *args: Any) -> None:
        pass


class _Listener:
    """One HTTP server on a fixed port that can be taken down and brought back up."""

    def __init__(self, name: str, app: Callable[..., Any]) -> None:
        self.name = name
        self.app = app
        self.port = 0
        self._placeholder: socket.socket | None = None
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    def _new_socket(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if _USE_REUSEPORT:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        return sock

    def reserve(self) -> None:
        """Pick the port (and, on Linux, hold it with a non-listening placeholder)."""
        if not _USE_REUSEPORT:
            return  # port chosen by the first listen()
        for _ in range(20):
            sock = self._new_socket()
            try:
                sock.bind((_HOST, 0))
                port = sock.getsockname()[1]
                if not _port_is_listening(port):
                    self._placeholder, self.port = sock, port
                    return
            except BaseException:
                sock.close()
                raise
            sock.close()
        raise RuntimeError("could not reserve a free port")

    @property
    def is_up(self) -> bool:
        return self._server is not None

    def listen(self) -> None:
        if self._server is not None:
            return
        sock = self._new_socket()
        try:
            deadline = time.monotonic() + _JOIN_TIMEOUT
            while True:
                try:
                    sock.bind((_HOST, self.port))
                    break
                except OSError:
                    # Only reachable without SO_REUSEPORT (port briefly still busy).
                    if self.port == 0 or time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            sock.listen(128)
            self.port = sock.getsockname()[1]
            # werkzeug dups the fd; our copy is closed below.
            server = make_server(
                _HOST,
                self.port,
                self.app,
                threaded=True,
                request_handler=_QuietHandler,
                fd=sock.fileno(),
            )
        finally:
            sock.close()
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"upstream-{self.name}-{self.port}",
            daemon=True,
        )
        thread.start()
        self._server, self._thread = server, thread

    def unlisten(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        if thread is not None:
            thread.join(_JOIN_TIMEOUT)
        server.server_close()

    def close(self) -> None:
        self.unlisten()
        if self._placeholder is not None:
            self._placeholder.close()
            self._placeholder = None


def _port_is_listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        return probe.connect_ex((_HOST, port)) == 0


def _parse_accept(header: str) -> list[tuple[str, float]]:
    ranges: list[tuple[str, float]] = []
    for part in header.split(","):
        media, *params = part.split(";")
        media = media.strip().lower()
        if not media:
            continue
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value.strip())
                except ValueError:
                    quality = 0.0
        ranges.append((_ALIASES.get(media, media), quality))
    return ranges


def _quality(offer: str, ranges: list[tuple[str, float]]) -> float:
    """q of the most specific range matching ``offer`` (0 when none matches)."""
    best_specificity, best_q = -1, 0.0
    main = offer.split("/")[0]
    for media, quality in ranges:
        if media == offer:
            specificity = 2
        elif media == f"{main}/*":
            specificity = 1
        elif media == "*/*":
            specificity = 0
        else:
            continue
        if specificity > best_specificity:
            best_specificity, best_q = specificity, quality
    return best_q


def negotiate(accept: str | None, *, json_enabled: bool = True) -> str:
    """Pick the response media type for an Accept header (see module docstring)."""
    offers = _ALL_OFFERS if json_enabled else _HTML_OFFERS
    if not accept or not accept.strip():
        return TEXT_HTML
    ranges = _parse_accept(accept)
    chosen, chosen_q = TEXT_HTML, 0.0
    for offer in offers:
        quality = _quality(offer, ranges)
        if quality > chosen_q:
            chosen, chosen_q = offer, quality
    return chosen


def _version_from_filename(filename: str) -> str:
    if filename.endswith(".whl"):
        return filename.split("-")[1]
    for ext in (".tar.gz", ".zip", ".tar.bz2", ".tgz"):
        if filename.endswith(ext):
            return filename[: -len(ext)].rsplit("-", 1)[1]
    raise ValueError(f"cannot tell the version of {filename!r}; pass version=")


def _sort_versions(versions: Iterable[str]) -> list[str]:
    def key(v: str) -> tuple[int, Any]:
        try:
            return (0, Version(v))
        except InvalidVersion:
            return (1, v)

    return sorted(set(versions), key=key)


def extract_metadata(filename: str, data: bytes) -> bytes:
    """Core metadata of a wheel (``.dist-info/METADATA``) or sdist (``PKG-INFO``)."""
    if filename.endswith(".whl"):
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            for name in zf.namelist():
                parts = name.split("/")
                if len(parts) == 2 and parts[0].endswith(".dist-info") and parts[1] == "METADATA":
                    return zf.read(name)
    elif filename.endswith(".tar.gz"):
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for member in tar.getmembers():
                parts = member.name.split("/")
                if len(parts) == 2 and parts[1] == "PKG-INFO":
                    extracted = tar.extractfile(member)
                    if extracted is not None:
                        with extracted:
                            return extracted.read()
    raise ValueError(f"no core metadata found in {filename!r}")


class _Tracked:
    """WSGI response iterable that reports when the server is done with it."""

    def __init__(self, inner: Iterable[bytes], done: Callable[[], None]) -> None:
        self._inner = inner
        self._done = done

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._inner)

    def close(self) -> None:
        try:
            close = getattr(self._inner, "close", None)
            if close is not None:
                close()
        finally:
            self._done()


class Upstream:
    """Fake PyPI: an index server and a files server on 127.0.0.1 (see module docstring).

    Construction options (also plain attributes, changeable at run time):

    ``json_enabled`` (default True)
        False: never serve PEP 691 JSON, only HTML (to test the proxy's HTML fallback).
    ``relative_urls`` (default False)
        True: file links in pages are relative (``../../files/...``, in HTML and JSON, and the
        project list links are ``<name>/``) and files are served by the *index* server under
        ``/files/``; the files server is then unused.

    Fault knobs (plain attributes; :meth:`reset_faults` restores them all):

    ``fail_status: int | None``
        Every request in ``fault_scope`` is answered with this status (e.g. 500, 503) and a
        short text body.
    ``fail_times: int | None``
        With ``fail_status``: only the next N matching requests fail, after which
        ``fail_status`` clears itself (to test retries). None = fail until cleared.
    ``delay: float``
        Seconds to sleep before answering each request in ``fault_scope`` (to provoke client
        timeouts). The request is logged (status None) before the sleep.
    ``fault_scope: "all" | "index" | "files"``
        Which requests ``fail_status`` and ``delay`` apply to: "index" = ``/simple/...`` pages,
        "files" = distribution files and ``.metadata`` (whichever server serves them).
    ``reset_files: bool``
        File GETs (dists and ``.metadata``) send the full ``Content-Length`` and the first half
        of the bytes, then the server closes the connection (requests raises
        ``ChunkedEncodingError``: "IncompleteRead"). HEAD is unaffected.
    ``corrupt_files: bool``
        File GETs (whole, or a range) send the advertised length but different bytes (each byte
        XOR 0xFF), so the sha256 does not match the one advertised in the index.
    ``slow_files: float``
        File GETs send headers at once, then the body in ``chunk_size``-byte chunks (default
        1024), sleeping this many seconds before each chunk: a download takes about
        ``slow_files * ceil(size / chunk_size)`` seconds (use to make concurrent downloads
        overlap).

    ``overlong_files: int``
        File GETs announce a ``Content-Length`` this many bytes short of the file, then send the
        whole file: the upstream sends more bytes than it announced (an HTTP client reading the
        announced length gets a truncated file, whose sha256 does not match the index's).
        0 (the default) announces the true length. HEAD is unaffected.

    ``endless_files: bool``
        File GETs announce no ``Content-Length`` (the body is chunked) and, after the file's
        bytes, send junk without end (64 KiB every 10 ms) until the client hangs up or the
        upstream stops: a body longer than the size the index lists.

    ``held_files: dict[str, threading.Event]``
        File GETs of these filenames send headers and the first half of the bytes, then wait
        until the file's event is set (or the upstream stops) to send the rest: a download in
        flight for as long as a test needs (to kill the server in the middle of a sync).

    ``reset_files``, ``corrupt_files``, ``slow_files``, ``overlong_files`` and ``endless_files``
    apply to GETs of distribution files and ``.metadata`` files alike; they can be combined.

    Other attributes:

    ``page_headers: dict[str, str]``
        Extra headers added to every index page (e.g. ``{"Cache-Control": "max-age=600"}``).
    ``unhashed_metadata: bool`` (default False)
        Pages mark a file's PEP 658 metadata available without its hash (JSON
        ``"core-metadata": true``, HTML ``data-core-metadata="true"``), as PEP 714 allows.
    ``gzip_pages: bool`` (default True)
        Index pages (project pages and the project list) go gzip-encoded to a request whose
        ``Accept-Encoding`` accepts gzip, as PyPI's CDN sends them; False: always as they are.
    ``statuses: dict[str, tuple[str, str]]``
        PEP 792 project status markers by normalized name, ``(status, reason)``: JSON
        ``project-status`` and HTML ``pypi:project-status(-reason)`` metas (api-version 1.4).
    ``serials: dict[str, int]``
        PyPI's ``_last-serial`` by normalized name, in a JSON page's ``meta``.
    ``chunk_size: int``
        Chunk size for ``slow_files`` (not touched by :meth:`reset_faults`).
    ``ranges: bool`` (default True)
        Answer a file GET with one ``Range`` with 206 and those bytes (416 when unsatisfiable),
        as PyPI's CDN does; False: ignore Range (200, the whole file).
    ``errors: list[BaseException]``
        Exceptions raised inside the fake itself (answered 500); should stay empty.

    Every response carries ``Connection: close`` (werkzeug's dev server has no keep-alive).

    :meth:`down` / :meth:`up` stop and restart both listeners on the same ports: while down,
    connections are refused immediately (ECONNREFUSED); requests already being answered are
    allowed to finish.

    Sleeps (``delay``, ``slow_files``) are cut short by :meth:`stop`, which waits (bounded,
    5 s) for in-flight requests before returning.
    """

    def __init__(self, *, json_enabled: bool = True, relative_urls: bool = False) -> None:
        self.json_enabled = json_enabled
        self.relative_urls = relative_urls
        self.page_headers: dict[str, str] = {}
        self.gzip_pages = True
        self.unhashed_metadata = False
        #: PEP 792 project status markers by normalized name: (status, reason).
        self.statuses: dict[str, tuple[str, str]] = {}
        self.serials: dict[str, int] = {}
        self.chunk_size = 1024
        self.ranges = True
        self.fail_status: int | None = None
        self.fail_times: int | None = None
        self.delay = 0.0
        self.fault_scope: Literal["all", "index", "files"] = "all"
        self.reset_files = False
        self.corrupt_files = False
        self.slow_files = 0.0
        self.overlong_files = 0
        self.endless_files = False
        self.held_files: dict[str, threading.Event] = {}
        #: Exceptions raised by the fake itself while answering (should stay empty).
        self.errors: list[BaseException] = []

        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._active = 0
        self._stopping = threading.Event()
        self._projects: dict[str, _Project] = {}
        self._files_by_path: dict[str, UpstreamFile] = {}
        self._log: list[RequestRecord] = []
        self._index = _Listener("index", self._make_app("index"))
        self._files = _Listener("files", self._make_app("files"))
        self._started = False

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> Upstream:
        if self._started:
            return self
        self._stopping.clear()
        try:
            for listener in (self._index, self._files):
                listener.reserve()
                listener.listen()
        except BaseException:
            self._index.close()
            self._files.close()
            raise
        self._started = True
        return self

    def stop(self) -> None:
        """Shut both servers down, wait (bounded) for in-flight requests, free the ports."""
        self._stopping.set()
        self._index.close()
        self._files.close()
        with self._idle:
            self._idle.wait_for(lambda: self._active == 0, timeout=_JOIN_TIMEOUT)
        self._started = False

    def __enter__(self) -> Upstream:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def down(self) -> None:
        """Stop listening on both ports: new connections are refused until :meth:`up`."""
        self._index.unlisten()
        self._files.unlisten()

    def up(self) -> None:
        """Listen again on the same ports after :meth:`down`."""
        self._index.listen()
        self._files.listen()

    @property
    def is_up(self) -> bool:
        return self._index.is_up

    def reset_faults(self) -> None:
        """Turn every fault knob off."""
        self.fail_status = None
        self.fail_times = None
        self.delay = 0.0
        self.fault_scope = "all"
        self.reset_files = False
        self.corrupt_files = False
        self.slow_files = 0.0
        self.overlong_files = 0
        self.endless_files = False
        self.held_files = {}

    # ---------------------------------------------------------------- URLs

    @property
    def index_port(self) -> int:
        return self._index.port

    @property
    def files_port(self) -> int:
        return self._files.port

    @property
    def root_url(self) -> str:
        """``http://127.0.0.1:<index port>/``"""
        return f"http://{_HOST}:{self._index.port}/"

    @property
    def index_url(self) -> str:
        """``http://127.0.0.1:<index port>/simple/`` (give this to pip / the proxy)."""
        return self.root_url + "simple/"

    @property
    def files_root_url(self) -> str:
        """``http://127.0.0.1:<files port>/``"""
        return f"http://{_HOST}:{self._files.port}/"

    def project_url(self, project: str) -> str:
        return f"{self.index_url}{normalize_project(project)}/"

    def file_url(self, file: UpstreamFile | str) -> str:
        """Absolute URL where the file is served (honours ``relative_urls``)."""
        f = self._lookup_file(file)
        root = self.root_url if self.relative_urls else self.files_root_url
        return root + f.path.lstrip("/")

    def metadata_url(self, file: UpstreamFile | str) -> str:
        return self.file_url(file) + ".metadata"

    # ---------------------------------------------------------------- content

    def add_file(
        self,
        project: str,
        path: Path,
        *,
        requires_python: str | None = None,
        yanked: str | bool = False,
        metadata: bool = False,
        upload_time: str | None = None,
        version: str | None = None,
    ) -> UpstreamFile:
        """Register ``path`` (read now) under ``project``; return its :class:`UpstreamFile`.

        ``requires_python`` is what the index advertises (None = HTML attribute absent, JSON
        null); it is NOT read from the file's metadata, so pass it explicitly.
        ``yanked``: False, True (yanked, no reason) or a reason string (PEP 592).
        ``metadata=True``: serve PEP 658 ``<file url>.metadata`` (the wheel's METADATA or the
        sdist's PKG-INFO) and advertise its sha256 as ``core-metadata`` and
        ``dist-info-metadata``. ``upload_time``: PEP 700 string such as
        ``"2024-01-02T03:04:05.000000Z"`` (None = omitted). ``version`` defaults to the one in
        the file name. Adding a file name already present in the project replaces it.
        """
        data = Path(path).read_bytes()
        filename = Path(path).name
        f = UpstreamFile(
            project=normalize_project(project),
            filename=filename,
            data=data,
            sha256=hashlib.sha256(data).hexdigest(),
            version=version or _version_from_filename(filename),
            requires_python=requires_python,
            yanked=yanked,
            metadata=extract_metadata(filename, data) if metadata else None,
            upload_time=upload_time,
        )
        with self._lock:
            proj = self._projects.setdefault(f.project, _Project(project))
            for old in [o for o in proj.files if o.filename == filename]:
                proj.files.remove(old)
                self._files_by_path.pop(old.path, None)
            proj.files.append(f)
            self._files_by_path[f.path] = f
        return f

    def remove_file(self, filename: str) -> None:
        """Unlist and stop serving a file (the project page stays, maybe empty)."""
        f = self._lookup_file(filename)
        with self._lock:
            self._projects[f.project].files.remove(f)
            self._files_by_path.pop(f.path, None)

    def files_for(self, project: str) -> list[UpstreamFile]:
        with self._lock:
            proj = self._projects.get(normalize_project(project))
            return list(proj.files) if proj else []

    def _lookup_file(self, file: UpstreamFile | str) -> UpstreamFile:
        if isinstance(file, UpstreamFile):
            return file
        with self._lock:
            for proj in self._projects.values():
                for f in proj.files:
                    if f.filename == file:
                        return f
        raise KeyError(file)

    # ---------------------------------------------------------------- request log

    @property
    def log(self) -> list[RequestRecord]:
        """Snapshot of all requests so far, oldest first."""
        with self._lock:
            return list(self._log)

    def requests_for(
        self,
        path_substring: str = "",
        *,
        server: str | None = None,
        method: str | None = None,
    ) -> list[RequestRecord]:
        """Logged requests whose path contains ``path_substring`` (optionally filtered)."""
        return [
            r
            for r in self.log
            if path_substring in r.path
            and (server is None or r.server == server)
            and (method is None or r.method == method)
        ]

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()

    # ---------------------------------------------------------------- WSGI

    def _make_app(self, server_name: str) -> Callable[..., Any]:
        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            return self._handle(server_name, environ, start_response)

        return app

    def _done(self) -> None:
        with self._idle:
            self._active -= 1
            self._idle.notify_all()

    def _handle(
        self, server_name: str, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Any:
        with self._lock:
            self._active += 1
        try:
            request = Request(environ)
            record = RequestRecord(
                server=server_name,
                method=request.method,
                path=request.path,
                query=request.query_string.decode("latin-1"),
                headers={k.lower(): v for k, v in request.headers.items()},
            )
            with self._lock:
                self._log.append(record)
            try:
                response = self._respond(server_name, request, environ)
            except Exception as exc:  # a bug in this fake: answer 500, keep it for the test
                self.errors.append(exc)
                response = Response("upstream fake error\n", status=500, mimetype="text/plain")
            record.status = response.status_code
            return _Tracked(response(environ, start_response), self._done)
        except BaseException:
            self._done()
            raise

    def _in_scope(self, kind: str) -> bool:
        scope = self.fault_scope
        return scope == "all" or scope == kind

    def _respond(self, server_name: str, request: Request, environ: dict[str, Any]) -> Response:
        path = request.path
        kind = "files" if path.startswith("/files/") else "index"
        if self._in_scope(kind):
            delay = self.delay
            if delay > 0:
                self._stopping.wait(delay)
            status = self._take_failure()
            if status is not None:
                return Response(f"upstream fault: {status}\n", status=status, mimetype="text/plain")
        if request.method not in ("GET", "HEAD"):
            return Response("method not allowed\n", status=405, headers={"Allow": "GET, HEAD"})
        if server_name == "files" or (self.relative_urls and kind == "files"):
            if kind != "files":
                return _not_found()
            return self._serve_file(request, environ)
        return self._serve_index(request)

    def _take_failure(self) -> int | None:
        with self._lock:
            status = self.fail_status
            if status is None:
                return None
            if self.fail_times is not None:
                self.fail_times -= 1
                if self.fail_times <= 0:
                    self.fail_status = None
                    self.fail_times = None
            return status

    # ---------------------------------------------------------------- files

    def _serve_file(self, request: Request, environ: dict[str, Any]) -> Response:
        path = request.path
        is_metadata = path.endswith(".metadata")
        lookup = path[: -len(".metadata")] if is_metadata else path
        with self._lock:
            f = self._files_by_path.get(quote(lookup))
        if f is None or (is_metadata and f.metadata is None):
            return _not_found()
        data = f.metadata if is_metadata and f.metadata is not None else f.data
        headers = {
            "Content-Length": str(len(data)),
            "ETag": f'"{hashlib.sha256(data).hexdigest()[:32]}"',
        }
        mimetype = "text/plain" if is_metadata else "application/octet-stream"
        if request.method == "HEAD":
            # body None: werkzeug would otherwise reset Content-Length to 0
            return Response(None, status=200, mimetype=mimetype, headers=headers)
        sent = corrupted(data) if self.corrupt_files else data
        if self.ranges and (ranged := _ranged(request, sent, headers)) is not None:
            return ranged
        overlong = self.overlong_files
        if overlong > 0:  # announce fewer bytes than the body below sends
            headers["Content-Length"] = str(max(0, len(data) - overlong))
        body = self._file_body(
            environ,
            sent,
            reset=self.reset_files,
            slow=self.slow_files,
            chunk_size=max(1, self.chunk_size),
        )
        if self.endless_files:
            del headers["Content-Length"]
            body = itertools.chain(body, self._junk())
        if (hold := self.held_files.get(f.filename)) is not None:
            body = self._held(body, hold)
        return Response(body, status=200, mimetype=mimetype, headers=headers)

    def _file_body(
        self,
        environ: dict[str, Any],
        data: bytes,
        *,
        reset: bool,
        slow: float,
        chunk_size: int,
    ) -> Iterator[bytes]:
        send = data[: len(data) // 2] if reset else data
        step = chunk_size if slow > 0 else max(1, len(send))
        yield b""  # makes werkzeug send the status line and headers now
        for start in range(0, len(send), step):
            if slow > 0 and self._stopping.wait(slow):
                raise ConnectionAbortedError("upstream stopping")
            yield send[start : start + step]
        if reset:
            sock = environ.get("werkzeug.socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            # werkzeug treats ConnectionError as "client went away" and just closes.
            raise ConnectionAbortedError("upstream fault: reset_files")

    def _held(self, body: Iterator[bytes], hold: threading.Event) -> Iterator[bytes]:
        """`body`'s first half (after the headers), then the rest once `hold` is set."""
        data = b"".join(body)
        yield b""
        yield data[: len(data) // 2]
        deadline = time.monotonic() + 300  # bounded, as every wait here
        while not hold.wait(0.05):
            if self._stopping.is_set() or time.monotonic() > deadline:
                raise ConnectionAbortedError("upstream stopping")
        yield data[len(data) // 2 :]

    def _junk(self) -> Iterator[bytes]:
        """Bytes without end, 64 KiB every 10 ms, until the upstream stops."""
        while not self._stopping.wait(0.01):
            yield b"x" * 65536
        raise ConnectionAbortedError("upstream stopping")

    # ---------------------------------------------------------------- index pages

    def _serve_index(self, request: Request) -> Response:
        path = request.path
        query = request.query_string.decode("latin-1")
        suffix = f"?{query}" if query else ""
        if path == "/simple":
            return _redirect("/simple/" + suffix)
        if not path.startswith("/simple/"):
            return _not_found()
        rest = path[len("/simple/") :]
        fmt = request.args.get("format")
        accept = fmt if fmt else request.headers.get("Accept")
        media = negotiate(accept, json_enabled=self.json_enabled)
        if rest == "":
            body = self._render_list(media)
        else:
            name = rest[:-1] if rest.endswith("/") else rest
            if not name or "/" in name:
                return _not_found()
            normalized = normalize_project(name)
            if name != normalized or not rest.endswith("/"):
                return _redirect(f"/simple/{normalized}/{suffix}")
            with self._lock:
                proj = self._projects.get(normalized)
                files = list(proj.files) if proj else None
            if files is None:
                return _not_found()
            body = self._render_project(normalized, files, media)
        return self._page(request, body, media)

    def _page(self, request: Request, body: bytes, media: str) -> Response:
        content_type = f"{media}; charset=utf-8" if media == TEXT_HTML else media
        etag = '"' + hashlib.sha256(content_type.encode() + b"\0" + body).hexdigest()[:32] + '"'
        headers = {"ETag": etag, "Vary": "Accept, Accept-Encoding", **self.page_headers}
        if _etag_matches(request.headers.get("If-None-Match"), etag):
            return Response(status=304, headers=headers)
        if self.gzip_pages and request.accept_encodings.quality("gzip") > 0:
            body = gzip.compress(body, mtime=0)
            headers["Content-Encoding"] = "gzip"
        response = Response(body, status=200, headers=headers)
        response.headers["Content-Type"] = content_type
        return response

    def _render_list(self, media: str) -> bytes:
        with self._lock:
            projects = sorted((name, proj.display_name) for name, proj in self._projects.items())
        if media == JSON_V1:
            doc = {
                "meta": {"api-version": API_VERSION},
                "projects": [{"name": display} for _name, display in projects],
            }
            return json.dumps(doc, indent=1).encode("utf-8")
        links = []
        for name, display in projects:
            href = f"{name}/" if self.relative_urls else f"/simple/{name}/"
            links.append(f'    <a href="{html.escape(href)}">{html.escape(display)}</a><br/>')
        return _html_doc("Simple index", "Simple index", links)

    def _href(self, f: UpstreamFile) -> str:
        if self.relative_urls:
            return "../.." + f.path
        return self.files_root_url.rstrip("/") + f.path

    def _render_project(self, name: str, files: list[UpstreamFile], media: str) -> bytes:
        if media == JSON_V1:
            entries = []
            for f in files:
                digest = f.metadata_sha256
                meta: dict[str, str] | bool = {"sha256": digest} if digest else False
                if digest and self.unhashed_metadata:
                    meta = True
                entry: dict[str, Any] = {
                    "filename": f.filename,
                    "url": self._href(f),
                    "hashes": {"sha256": f.sha256},
                    "requires-python": f.requires_python,
                    "yanked": f.yanked,
                    "core-metadata": meta,
                    "dist-info-metadata": meta,
                    "size": f.size,
                }
                if f.upload_time is not None:
                    entry["upload-time"] = f.upload_time
                entries.append(entry)
            page_meta: dict[str, Any] = {"api-version": API_VERSION}
            if (serial := self.serials.get(name)) is not None:
                page_meta["_last-serial"] = serial
            doc = {
                "meta": page_meta,
                "name": name,
                "files": entries,
                "versions": _sort_versions(f.version for f in files),
            }
            if (status := self.statuses.get(name)) is not None:
                page_meta["api-version"] = "1.4"
                doc["project-status"] = {"status": status[0], "reason": status[1]}
            return json.dumps(doc, indent=1).encode("utf-8")
        links = []
        for f in files:
            attrs = [f'href="{html.escape(self._href(f) + "#sha256=" + f.sha256)}"']
            if f.requires_python is not None:
                attrs.append(f'data-requires-python="{html.escape(f.requires_python)}"')
            if f.yanked is not False:
                reason = "" if f.yanked is True else str(f.yanked)
                attrs.append(f'data-yanked="{html.escape(reason)}"')
            if f.metadata_sha256:
                value = "true" if self.unhashed_metadata else f"sha256={f.metadata_sha256}"
                attrs.append(f'data-core-metadata="{value}"')
                attrs.append(f'data-dist-info-metadata="{value}"')
            links.append(f"    <a {' '.join(attrs)}>{html.escape(f.filename)}</a><br/>")
        head = []
        if (status := self.statuses.get(name)) is not None:
            head.append(f'    <meta name="pypi:project-status" content="{status[0]}">')
            head.append(
                f'    <meta name="pypi:project-status-reason" content="{html.escape(status[1])}">'
            )
        return _html_doc(f"Links for {name}", f"Links for {name}", links, head)


def _html_doc(title: str, heading: str, links: list[str], head: list[str] | None = None) -> bytes:
    version = "1.4" if head else API_VERSION
    lines = [
        "<!DOCTYPE html>",
        "<html>",
        "  <head>",
        f'    <meta name="pypi:repository-version" content="{version}">',
        *(head or []),
        f"    <title>{html.escape(title)}</title>",
        "  </head>",
        "  <body>",
        f"    <h1>{html.escape(heading)}</h1>",
        *links,
        "  </body>",
        "</html>",
    ]
    return ("\n".join(lines) + "\n").encode("utf-8")


def _etag_matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*":
            return True
        if candidate.startswith("W/"):
            candidate = candidate[2:]
        if candidate == etag:
            return True
    return False


def _not_found() -> Response:
    return Response("not found\n", status=404, mimetype="text/plain")


def _redirect(location: str) -> Response:
    return Response("", status=301, headers={"Location": location})


def _ranged(request: Request, data: bytes, headers: dict[str, str]) -> Response | None:
    """The 206 (or 416) answer to a Range of one range, or None to send the whole file."""
    asked = request.range
    if asked is None or len(asked.ranges) != 1:
        return None
    found = asked.range_for_length(len(data))
    if found is None:
        return Response(status=416, headers={"Content-Range": f"bytes */{len(data)}"})
    start, stop = found
    part = {
        **headers,
        "Content-Length": str(stop - start),
        "Content-Range": f"bytes {start}-{stop - 1}/{len(data)}",
    }
    return Response(data[start:stop], status=206, mimetype="application/octet-stream", headers=part)
