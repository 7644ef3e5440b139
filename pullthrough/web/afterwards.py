"""Work after the answer: the background jobs (services.later) a request to the Flask app gives
start once its answer is on its way, so that they do not share the interpreter with its
rendering.

The jobs are handed over when the server asks for the body's second chunk or closes it,
whichever comes first: a page (one chunk) is sent whole by then, and a streamed download does
not keep a page it fetched from the other workers until its last byte. A request that fails
hands its jobs over at once. The memo's fast path (web.fastpath) gives no jobs and is not
wrapped; a request that gave none, or whose body is the server's file wrapper (a stored file,
after a page fetch), returns its body untouched, so a file keeps gunicorn's sendfile.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from pullthrough.services.later import Job, Later
from pullthrough.web.fastpath import WSGIApp


class Afterwards:
    def __init__(self, app: WSGIApp, later: Later) -> None:
        self.app = app
        self.later = later

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        with self.later.held() as jobs:
            body = self.app(environ, start_response)
        if not jobs:
            return body
        wrapper = environ.get("wsgi.file_wrapper")
        if isinstance(wrapper, type) and isinstance(body, wrapper):
            self.later.run_all(jobs)  # sent by sendfile: not worth losing it to wait
            return body
        return _ThenHandOver(body, self.later, jobs)


class _ThenHandOver:
    """`body` as it is, then `jobs` to `later`: at the second chunk asked for, or at close."""

    def __init__(self, body: Iterable[bytes], later: Later, jobs: list[Job]) -> None:
        self._body = body
        self._chunks: Iterator[bytes] = iter(body)
        self._later = later
        self._jobs = jobs
        self._asked = 0

    def __iter__(self) -> _ThenHandOver:
        return self

    def __next__(self) -> bytes:
        self._asked += 1
        if self._asked == 2:
            self._release()
        return next(self._chunks)

    def close(self) -> None:
        try:
            if (close := getattr(self._body, "close", None)) is not None:
                close()
        finally:
            self._release()

    def _release(self) -> None:
        jobs, self._jobs = self._jobs, []
        self._later.run_all(jobs)
