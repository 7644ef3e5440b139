"""The hot path: warm simple project pages answered below Flask.

A page this process has rendered and still holds fresh is sent straight from its memo, skipping
Flask's request context, routing and response objects (about 6 us of the app's CPU per request;
gunicorn's own work is most of the rest); so is a page another worker rendered (web.shared).
Anything else - a cold or expired page, a query string, a non-normalized name, an unknown base path -
falls through to the Flask app unchanged, which renders the memo this path then serves.
Each answer here costs one counter increment (pullthrough_http_requests_total, kind page).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, cast

from pullthrough.services.metrics import PAGE, Metrics
from pullthrough.services.registry import Registry
from pullthrough.web.common import etag_matches
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
            rendered = found.encoded(accepts_gzip(environ.get("HTTP_ACCEPT_ENCODING")))
            if etag_matches(environ.get("HTTP_IF_NONE_MATCH"), rendered.etag):
                start_response("304 Not Modified", list(rendered.headers_304))
                self._counted_304.inc()
                return []
            start_response("200 OK", list(rendered.headers))
            self._counted_200.inc()
            return [rendered.body]
        return self.app(environ, start_response)

    def _lookup(self, environ: dict[str, Any]) -> Rendered | None:
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
        return cast(Rendered | None, view.renders.get(fmt))
