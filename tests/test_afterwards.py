"""Background work a request gives (services.later) starts once its answer is sent
(web.afterwards): pickling a big page for the other workers holds the interpreter for ms the
request's own rendering would otherwise wait for."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from pullthrough.services.later import Later
from pullthrough.web.afterwards import Afterwards


class FileWrapper(list[bytes]):
    """What a server's `wsgi.file_wrapper` makes (gunicorn's sends it by sendfile)."""


class FailingClose(list[bytes]):
    def close(self) -> None:
        raise OSError("the download's clean-up failed")


def app_giving(
    later: Later, job: Callable[[], object] | None, body: Iterable[bytes] | Exception
) -> Any:
    """A WSGI app that gives `job` to `later` (as a page fetch does), then answers `body`, or
    raises it if it is an exception."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if job is not None:
            later.run(job)
        if isinstance(body, Exception):
            raise body
        start_response("200 OK", [])
        return body

    return app


def start_response(status: str, headers: list[tuple[str, str]]) -> None:
    assert status == "200 OK"


def test_jobs_a_request_gives_start_once_its_answer_is_sent() -> None:
    later, ran = Later(), threading.Event()
    body = Afterwards(app_giving(later, ran.set, [b"the answer"]), later)({}, start_response)
    chunks = iter(body)
    assert next(chunks) == b"the answer"  # the server writes it...
    assert later.wait()  # ...everything handed over so far is done...
    assert not ran.is_set()  # ...and the request's job is not among it: held
    assert list(chunks) == []  # the server asks for more: the answer is out
    assert later.wait() and ran.is_set()


def test_a_streamed_download_hands_its_jobs_over_at_its_second_chunk() -> None:
    """A file streamed from the upstream after a page fetch: the page is written for the
    other workers while the download goes on, not after its last byte."""
    later, ran = Later(), threading.Event()
    streamed = (chunk for chunk in (b"one", b"two", b"three"))
    chunks = iter(Afterwards(app_giving(later, ran.set, streamed), later)({}, start_response))
    assert next(chunks) == b"one"
    assert later.wait() and not ran.is_set()
    assert next(chunks) == b"two"
    assert later.wait() and ran.is_set()


def test_a_request_that_fails_hands_its_jobs_over() -> None:
    later, ran = Later(), threading.Event()
    app = app_giving(later, ran.set, RuntimeError("the app failed"))
    with pytest.raises(RuntimeError):
        Afterwards(app, later)({}, start_response)
    assert later.wait() and ran.is_set()


def test_a_body_whose_close_fails_still_hands_its_jobs_over() -> None:
    later, ran = Later(), threading.Event()
    body = Afterwards(app_giving(later, ran.set, FailingClose([b"x"])), later)({}, start_response)
    with pytest.raises(OSError):
        body.close()  # type: ignore[attr-defined]
    assert later.wait() and ran.is_set()


def test_a_request_that_gives_no_jobs_keeps_its_body_as_it_is() -> None:
    later = Later()
    sent = FileWrapper([b"file"])
    assert Afterwards(app_giving(later, None, sent), later)({}, start_response) is sent
    seen: list[int] = []
    later.run(lambda: seen.append(1))  # not held outside a request
    assert later.wait() and seen == [1]


def test_a_file_the_server_sends_itself_keeps_its_wrapper() -> None:
    """A stored file whose request fetched a page: gunicorn's sendfile is kept (the body is
    its `wsgi.file_wrapper`), and the page's job is handed over at once."""
    later, ran = Later(), threading.Event()
    sent = FileWrapper([b"file"])
    app = Afterwards(app_giving(later, ran.set, sent), later)
    assert app({"wsgi.file_wrapper": FileWrapper}, start_response) is sent
    assert later.wait() and ran.is_set()
    # PEP 3333 lets a server's file wrapper be any callable, not only a class
    made_by_a_function: dict[str, Any] = {"wsgi.file_wrapper": lambda f: FileWrapper([f])}
    assert b"".join(app(made_by_a_function, start_response)) == b"file"


def test_without_a_background_thread_jobs_run_at_once() -> None:
    later, seen = Later(background=False), []
    with later.held() as jobs:
        later.run(lambda: seen.append(1))
    assert seen == [1] and jobs == []
