"""Work after the answer: the background jobs (services.later) a request to the Flask app gives
start once its answer is sent, so that they do not share the interpreter with its rendering.

The memo's fast path (web.fastpath) gives no jobs and is not wrapped; a request that gave none,
or whose body is the server's file wrapper (a stored file, after a page fetch), returns its body
untouched, so a file keeps gunicorn's sendfile.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.wsgi import ClosingIterator

from pullthrough.services.later import Later
from pullthrough.web.fastpath import WSGIApp


class Afterwards:
    def __init__(self, app: WSGIApp, later: Later) -> None:
        self.app = app
        self.later = later

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        self.later.hold()
        try:
            body = self.app(environ, start_response)
        finally:
            jobs = self.later.take()
        if not jobs:
            return body
        wrapper = environ.get("wsgi.file_wrapper")
        if wrapper is not None and isinstance(body, wrapper):
            self._hand_over(jobs)  # sent by sendfile: not worth losing it to wait
        else:
            body = ClosingIterator(body, functools.partial(self._hand_over, jobs))
        return body

    def _hand_over(self, jobs: list[Callable[[], object]]) -> None:
        for job in jobs:
            self.later.run(job)
