"""The gunicorn worker `pullthrough serve` runs (pullthrough.gunicorn_worker.KeepAliveWorker):
requests on a kept-alive connection, back to back, pipelined or after a pause, are answered in
order on that connection; neither a thread waiting for its connection's next request nor clients
that always pipeline keep a new connection waiting; a stop answers the last request with
`Connection: close`; its threads wait less for the GIL, and what its app holds once loaded is
out of the garbage collector's walks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from pullthrough.gunicorn_worker import (
    GIL_SWITCH_INTERVAL,
    NEXT_REQUEST_WAIT,
    PREPARED_THREADS,
    may_wait,
)
from support.servers import Server, config_text, free_port, wait_ready, wait_until
from support.tools import clean_env
from support.upstream import Upstream

pytestmark = pytest.mark.e2e

STATUS = "/pulp/api/v3/status/"


class Connection:
    """One kept-alive HTTP/1.1 connection, read by hand: answers are parsed by Content-Length, so
    pipelined answers and a closed connection show as they are."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.buf = b""

    def send(self, *paths: str) -> None:
        self.sock.sendall(
            b"".join(f"GET {p} HTTP/1.1\r\nHost: test\r\n\r\n".encode() for p in paths)
        )

    def answer(self) -> tuple[int, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self.buf:
            self._more()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
        length = int(headers["content-length"])
        while len(self.buf) < length:
            self._more()
        body, self.buf = self.buf[:length], self.buf[length:]
        return int(status_line.split()[1]), headers, body

    def closed(self) -> bool:
        """Whether the server closed the connection (and sent nothing more)."""
        return not self.buf and self.sock.recv(1) == b""

    def _more(self) -> None:
        chunk = self.sock.recv(65536)
        assert chunk, "the server closed the connection"
        self.buf += chunk

    def close(self) -> None:
        self.sock.close()


def serve(
    gunicorn_server: Callable[..., Server], upstream: Upstream, tmp_path: Path, threads: int
) -> Server:
    text = config_text(upstream.index_url, tmp_path / "data").replace(
        "[server]\n", f"[server]\nthreads = {threads}\n"
    )
    return gunicorn_server(text, workers=1)


def test_requests_back_to_back_pipelined_and_after_a_pause_are_answered_in_order(
    gunicorn_server: Callable[..., Server], upstream: Upstream, tmp_path: Path
) -> None:
    server = serve(gunicorn_server, upstream, tmp_path, threads=4)
    page = "/pypi/main/simple/shelf-reader/"
    conn = Connection(server.url)
    try:
        conn.send(page)
        status, _, first = conn.answer()
        assert status == 200 and b"<a " in first
        for _ in range(200):  # back to back: each sent as soon as the one before is read
            conn.send(STATUS)
            status, headers, body = conn.answer()
            assert status == 200 and headers.get("connection") != "close", body
        conn.send(page, STATUS, "/pypi/main/simple/not-a-project/")  # pipelined, one write
        assert [conn.answer()[0] for _ in range(3)] == [200, 200, 404]
        time.sleep(NEXT_REQUEST_WAIT * 50)  # past the wait: the connection is back in the poller
        conn.send(page)
        assert conn.answer()[2] == first
    finally:
        conn.close()
    log = (tmp_path / "server-0.log").read_text()
    assert "Using worker: pullthrough.gunicorn_worker.KeepAliveWorker" in log


def test_a_thread_waiting_for_its_next_request_keeps_no_connection_waiting(
    gunicorn_server: Callable[..., Server], upstream: Upstream, tmp_path: Path
) -> None:
    """Two threads: connections that were just answered and stay open do not hold them."""
    server = serve(gunicorn_server, upstream, tmp_path, threads=2)
    idle = [Connection(server.url) for _ in range(4)]
    try:
        for conn in idle:
            conn.send(STATUS)
            assert conn.answer()[0] == 200
        worst = 0.0
        for _ in range(20):
            fresh = Connection(server.url)
            started = time.monotonic()
            fresh.send(STATUS)
            assert fresh.answer()[0] == 200
            worst = max(worst, time.monotonic() - started)
            fresh.close()
        assert worst < 0.5, f"a new connection waited {worst:.3f} s"
        for conn in idle:  # still kept alive, and answered
            conn.send(STATUS)
            assert conn.answer()[0] == 200
    finally:
        for conn in idle:
            conn.close()


def test_clients_that_pipeline_without_pause_keep_no_connection_waiting(
    gunicorn_server: Callable[..., Server], upstream: Upstream, tmp_path: Path
) -> None:
    """Two threads, two clients that always have requests sent ahead: a thread whose parser
    holds the next request's bytes still leaves the pool to others past half of it."""
    server = serve(gunicorn_server, upstream, tmp_path, threads=2)
    stop = threading.Event()
    answered = [0, 0]

    def pipeline(i: int) -> None:
        conn = Connection(server.url)
        sent = 0
        deadline = time.monotonic() + 30

        def read() -> None:
            while (not stop.is_set() or answered[i] < sent) and time.monotonic() < deadline:
                assert conn.answer()[0] == 200
                answered[i] += 1

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            while not stop.is_set() and time.monotonic() < deadline:
                if sent - answered[i] < 200:
                    conn.send(*[STATUS] * 50)  # 49 bytes each: reads rarely end between two
                    sent += 50
                else:
                    time.sleep(0.001)
            reader.join(timeout=15)
        finally:
            conn.close()

    clients = [threading.Thread(target=pipeline, args=(i,), daemon=True) for i in (0, 1)]
    for client in clients:
        client.start()
    try:
        assert wait_until(lambda: min(answered) >= 100, timeout=10), answered
        fresh = Connection(server.url)
        try:
            started = time.monotonic()
            fresh.send(STATUS)
            assert fresh.answer()[0] == 200  # a socket timeout (10 s) if it never comes
            waited = time.monotonic() - started
        finally:
            fresh.close()
    finally:
        stop.set()
        for client in clients:
            client.join(timeout=20)
    assert waited < 1.0, f"a new connection waited {waited:.3f} s"


def test_a_stop_closes_a_busy_connection_after_its_answer(
    gunicorn_server: Callable[..., Server], upstream: Upstream, tmp_path: Path
) -> None:
    server = serve(gunicorn_server, upstream, tmp_path, threads=4)
    assert server.pid is not None
    conn = Connection(server.url)
    try:
        conn.send(STATUS)
        assert conn.answer()[0] == 200
        deadline = time.monotonic() + 20
        stopped_at = None
        headers: dict[str, str] = {}
        while time.monotonic() < deadline:  # back to back until the server says close
            conn.send(STATUS)
            status, headers, _ = conn.answer()
            assert status == 200
            if headers.get("connection") == "close":
                break
            if stopped_at is None:
                stopped_at = time.monotonic()
                os.kill(server.pid, signal.SIGTERM)
        assert headers.get("connection") == "close"
        assert stopped_at is not None and time.monotonic() - stopped_at < 5
        assert conn.closed()
    finally:
        conn.close()


def test_a_thread_waits_only_while_half_the_pool_is_free() -> None:
    assert may_wait(1, 32) and may_wait(16, 32)
    assert not may_wait(17, 32)
    assert may_wait(1, 2) and not may_wait(2, 2)
    assert not may_wait(1, 1)  # one thread never waits: the next connection would


# A stand-in for pullthrough's app: what it holds from its loading on, and what the worker it
# runs in says of the GIL and of those objects.
@contextmanager
def probe_served(tmp_path: Path, app_source: str) -> Iterator[str]:
    """gunicorn with `pullthrough serve`'s settings and worker (one), running the app of
    `app_source` as `probe:app`: its URL while it runs."""
    (tmp_path / "probe.py").write_text(app_source)
    port = free_port()
    env = clean_env(PULLTHROUGH_BIND=f"127.0.0.1:{port}", PULLTHROUGH_WORKERS="1")
    command = [sys.executable, "-m", "gunicorn", "-c", "python:pullthrough.gunicorn_conf"]
    with open(tmp_path / "gunicorn.log", "wb") as log:
        proc = subprocess.Popen([*command, "probe:app"], cwd=tmp_path, env=env, stderr=log)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_ready(url, proc)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


PROBE_APP = """
import gc, sys

HELD = [[] for _ in range(5000)]


def app(environ, start_response):
    walked = {id(o) for generation in range(3) for o in gc.get_objects(generation)}
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{sys.getswitchinterval()} {sum(id(h) in walked for h in HELD)}".encode()]
"""


def test_a_worker_hands_the_gil_on_sooner_and_keeps_its_app_out_of_the_collectors_walks(
    tmp_path: Path,
) -> None:
    """gunicorn with `pullthrough serve`'s settings and worker, running a probe app: its
    threads wait at most GIL_SWITCH_INTERVAL for the GIL (Python's default is longer), and what
    the app holds once loaded is frozen, so no full collection during a request walks it."""
    with probe_served(tmp_path, PROBE_APP) as url:
        interval, walked = requests.get(url, timeout=10).text.split()
    assert float(interval) == GIL_SWITCH_INTERVAL < sys.getswitchinterval()
    assert walked == "0"


# A stand-in for pullthrough's app with a `prepare_thread`: which threads ran it, and whether
# the thread answering is one of them.
PREPARING_APP = """
import threading
import time

PREPARED = set()


class App:
    def prepare_thread(self):
        time.sleep(0.05)  # a connection or two
        PREPARED.add(threading.get_ident())

    def __call__(self, environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [f"{len(PREPARED)} {threading.get_ident() in PREPARED}".encode()]


app = App()
"""


def test_a_worker_starts_threads_its_app_prepared_before_the_first_request(
    tmp_path: Path,
) -> None:
    """gunicorn with `pullthrough serve`'s settings and worker, running a probe app that has a
    `prepare_thread`: before its worker answers, PREPARED_THREADS threads of its pool have
    run it, each its own, and requests are answered on them (not each on a new thread)."""
    with probe_served(tmp_path, PREPARING_APP) as url:
        answers = {requests.get(url, timeout=10).text for _ in range(5)}
    assert answers == {f"{PREPARED_THREADS} True"}
