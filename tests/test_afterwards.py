"""Background work a request gives (services.later) starts once its answer is sent
(web.afterwards): pickling a big page for the other workers holds the interpreter for ms the
request's own rendering would otherwise wait for."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

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


def test_jobs_a_request_gives_start_once_its_answer_is_closed() -> None:
    later, ran = Later(), threading.Event()
    body = Afterwards(app_giving(later, [ran.set]), later)({}, start_response)
    assert b"".join(body) == b"the answer"
    assert later.wait()  # everything handed over so far is done...
    assert not ran.is_set()  # ...and the request's job is not among it: held
    body.close()  # type: ignore[attr-defined]  # the server has sent the answer
    assert later.wait()
    assert ran.is_set()


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


def test_jobs_left_held_are_handed_over_at_the_next_hold() -> None:
    """A thread that never took its jobs (a request that died oddly) loses none of them."""
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
