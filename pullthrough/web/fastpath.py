"""The hot paths: warm simple project pages, and stored files, answered below Flask.

A page this process has rendered and still holds fresh is sent straight from its memo, skipping
Flask's request context, routing and response objects (about 6 us of the app's CPU per request;
gunicorn's own work is most of the rest); so is a page another worker rendered (web.shared).
Anything else - a cold or expired page, a query string, a non-normalized name, an unknown base path -
falls through to the Flask app unchanged, which renders the memo this path then serves.
Each answer here costs one counter increment (pullthrough_http_requests_total, kind page).

A file of a public distribution's project whose page this process holds fresh, stored on local
disk, asked for whole (GET, no Range, no If-*) is sent the same way, with the very headers the
Flask path gives it (web.content); its use is recorded and counted as there. Everything else -
HEAD, ranges, conditions, metadata, a file not stored yet, held by the policy or of a page not
held fresh, a private distribution, files in S3 or sent by an nginx front - goes to Flask.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, cast

from werkzeug.wsgi import wrap_file

from pullthrough.core.filenames import project_candidates
from pullthrough.services.metrics import FILE, PAGE, Metrics
from pullthrough.services.pullthrough import LEDGER_ERRORS, PullThrough, StoredFile
from pullthrough.services.registry import Registry
from pullthrough.web.common import etag_matches
from pullthrough.web.content import stored_headers, unconditional
from pullthrough.web.negotiation import choose_format
from pullthrough.web.rendered import Rendered, accepts_gzip
from pullthrough.web.shared import SharedRenders

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class WarmPages:
    def __init__(
        self, app: WSGIApp, registry: Registry, metrics: Metrics, shared: SharedRenders
    ) -> None:
        self.app = app
        self.registry = registry
        self.shared = shared
        self._counted_200 = metrics.requests.labels(PAGE, "200")  # bound once: one inc each
        self._counted_304 = metrics.requests.labels(PAGE, "304")

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        if (found := self._lookup(environ)) is not None:
            done, expires_at = found
            rendered = done.encoded(accepts_gzip(environ.get("HTTP_ACCEPT_ENCODING")))
            if etag_matches(environ.get("HTTP_IF_NONE_MATCH"), rendered.etag):
                start_response("304 Not Modified", rendered.until(expires_at, not_modified=True))
                self._counted_304.inc()
                return []
            start_response("200 OK", rendered.until(expires_at))
            self._counted_200.inc()
            return [rendered.body]
        return self.app(environ, start_response)

    def _lookup(self, environ: dict[str, Any]) -> tuple[Rendered, float] | None:
        """The page's rendering and when its time here ends."""
        path: str = environ.get("PATH_INFO", "")
        if (
            environ.get("REQUEST_METHOD") != "GET"
            or environ.get("QUERY_STRING")
            or not path.startswith("/pypi/")
            or not path.endswith("/")
        ):
            return None
        base_path, sep, project = path[6:-1].rpartition("/simple/")
        if not sep or not project or "/" in project:
            return None
        dist = self.registry.get(base_path)
        fmt = choose_format(environ.get("HTTP_ACCEPT"))
        if dist is None or dist.private or fmt is None:  # private: Flask checks the reader
            return None
        if (view := dist.fresh_view(project)) is None:
            return self.shared.get(dist, project, fmt)  # another worker's rendering
        done = view.renders.get(fmt)
        return None if done is None else (cast(Rendered, done), view.expires_at)


CONTENT = "/pulp/content/"


class WarmFiles:
    def __init__(
        self, app: WSGIApp, registry: Registry, metrics: Metrics, pullthrough: PullThrough
    ) -> None:
        self.app = app
        self.registry = registry
        self.pullthrough = pullthrough
        self._counted = metrics.requests.labels(FILE, "200")
        self._bytes = metrics.file_bytes

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        if (stored := self._lookup(environ)) is not None:
            start_response("200 OK", stored_headers(stored))
            self._counted.inc()
            self._bytes.inc(stored.size)
            return wrap_file(environ, stored.file)  # gunicorn's: sendfile
        return self.app(environ, start_response)

    def _lookup(self, environ: dict[str, Any]) -> StoredFile | None:
        path: str = environ.get("PATH_INFO", "")
        if (
            environ.get("REQUEST_METHOD") != "GET"
            or environ.get("QUERY_STRING")
            or not path.startswith(CONTENT)
            or not unconditional(environ)
        ):
            return None
        base_path, _, filename = path[len(CONTENT) :].rpartition("/")
        dist = self.registry.get(base_path)
        if dist is None or dist.private or filename.endswith(".metadata"):
            return None
        for project in project_candidates(filename):
            if (view := dist.fresh_view(project)) is None or filename in view.held:
                return None  # Flask looks the page up, or says why the file is held
            if (entry := view.files.get(filename)) is not None:
                try:
                    return self.pullthrough.open_stored(dist, entry, view)
                except LEDGER_ERRORS:  # OSError too
                    return None  # Flask's error handling says what is wrong
        return None
