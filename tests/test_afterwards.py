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


def app_giving(later: Later, jobs: list[Callable[[], object]]) -> Any:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        for job in jobs:
            later.run(job)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"the answer"]

    return app


def start_response(status: str, headers: list[tuple[str, str]]) -> None:
    assert status == "200 OK"


def test_jobs_a_request_gives_start_once_its_answer_is_sent() -> None:
    later, ran = Later(), threading.Event()
    body = Afterwards(app_giving(later, [ran.set]), later)({}, start_response)
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

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        later.run(ran.set)
        start_response("200 OK", [])
        return (chunk for chunk in (b"one", b"two", b"three"))

    chunks = iter(Afterwards(app, later)({}, start_response))
    assert next(chunks) == b"one"
    assert later.wait() and not ran.is_set()
    assert next(chunks) == b"two"
    assert later.wait() and ran.is_set()


def test_a_request_that_fails_hands_its_jobs_over() -> None:
    later, ran = Later(), threading.Event()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        later.run(ran.set)
        raise RuntimeError("the app failed")

    with pytest.raises(RuntimeError):
        Afterwards(app, later)({}, start_response)
    assert later.wait() and ran.is_set()
    assert later.take() == []  # nothing left held


def test_a_body_whose_close_fails_still_hands_its_jobs_over() -> None:
    later, ran = Later(), threading.Event()

    class Body(list[bytes]):
        def close(self) -> None:
            raise OSError("the download's clean-up failed")

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        later.run(ran.set)
        start_response("200 OK", [])
        return Body([b"x"])

    body = Afterwards(app, later)({}, start_response)
    with pytest.raises(OSError):
        body.close()  # type: ignore[attr-defined]
    assert later.wait() and ran.is_set()


def test_a_request_that_gives_no_jobs_keeps_its_body_as_it_is() -> None:
    later = Later()
    sent: list[bytes] = []

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        start_response("200 OK", [])
        return sent

    assert Afterwards(app, later)({}, start_response) is sent  # a file keeps its sendfile
    seen: list[int] = []
    later.run(lambda: seen.append(1))  # not held outside a request
    assert later.wait() and seen == [1]


def test_a_file_the_server_sends_itself_keeps_its_wrapper() -> None:
    """A stored file whose request fetched a page: gunicorn's sendfile is kept (the body is
    its `wsgi.file_wrapper`), and the page's job is handed over at once."""
    later, ran = Later(), threading.Event()

    class FileWrapper(list[bytes]):
        pass

    sent = FileWrapper([b"file"])

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        later.run(ran.set)
        start_response("200 OK", [])
        return sent

    environ = {"wsgi.file_wrapper": FileWrapper}
    assert Afterwards(app, later)(environ, start_response) is sent
    assert later.wait() and ran.is_set()
    # PEP 3333 lets a server's file wrapper be any callable, not only a class
    made_by_a_function: dict[str, Any] = {"wsgi.file_wrapper": lambda f: FileWrapper([f])}
    assert b"".join(Afterwards(app, later)(made_by_a_function, start_response)) == b"file"


def test_jobs_left_held_are_handed_over_at_the_next_hold() -> None:
    """A thread that never took its jobs (a caller that held them and stopped) loses none."""
    later, ran = Later(), threading.Event()
    later.hold()
    later.run(ran.set)
    assert later.wait() and not ran.is_set()
    later.hold()
    assert later.wait() and ran.is_set()
    assert later.take() == []


def test_without_a_background_thread_jobs_run_at_once() -> None:
    later, seen = Later(background=False), []
    later.hold()
    later.run(lambda: seen.append(1))
    assert seen == [1] and later.take() == []
