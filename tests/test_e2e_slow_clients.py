"""Slow clients do not freeze the server behind the nginx front users deploy (deploy/nginx.conf).

gunicorn's gthread worker (2 workers x 32 threads) gives a connection a thread from its first
byte to its last: 100 clients that drip their header (slowloris) or read a large file at 1 KiB/s
hold every thread, and normal requests hang. nginx, run here with the deploy file, takes in
whole requests before gunicorn sees them and reads whole answers at once, so while each attack
runs every normal request (a warm simple page, a cached small file, the status page) is
answered within 100 ms.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from support.nginx import NginxFront
from support.servers import Server, config_text, wait_until
from support.upstream import JSON_V1, Upstream

pytestmark = pytest.mark.e2e

HOST = "127.0.0.1"
ATTACKERS = 100
LIMIT = 0.100  # seconds: every normal request, while an attack runs
ROUNDS = 20  # of normal requests (one of each kind), one every INTERVAL seconds
INTERVAL = 0.4  # 20 rounds: about 8 s, well within nginx's client_header_timeout (15 s)
REQUEST_TIMEOUT = 2.0  # a normal request that takes this long has failed anyway
TICK = 1.0  # seconds between two steps of every slow client: one byte sent, or 1 KiB read
MAX_TICKS = 30  # a slow client's steps at most: the attacks end by themselves
BIG_SIZE = 3 * 2**20  # larger than what loopback socket buffers absorb with a 4 KiB window


# ------------------------------------------------------------------------------ slow clients


class SlowClients:
    """`count` connections to HOST:port, stepped once a second by one thread (at most
    MAX_TICKS times); :meth:`alive` counts those the server has neither closed nor answered."""

    def __init__(self, port: int, count: int) -> None:
        self.port = port
        self.count = count
        self.socks: list[socket.socket] = []
        self.closed: set[int] = set()  # indexes of connections the server closed or reset
        self.received = [b""] * count  # the start of what each connection got (1 KiB)
        self.bytes_in = [0] * count
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="slow-clients", daemon=True)

    def new_socket(self) -> socket.socket:
        return socket.socket(socket.AF_INET, socket.SOCK_STREAM)

    def opening(self, index: int, sock: socket.socket) -> None:
        """What a connection sends once connected."""

    def step(self, index: int, sock: socket.socket, tick: int) -> None:
        """One step of one connection; OSError when the server closed it."""

    def start(self) -> None:
        for index in range(self.count):
            sock = self.new_socket()
            self.socks.append(sock)  # closed by close(), whatever happens next
            sock.settimeout(5)
            sock.connect((HOST, self.port))
            self.opening(index, sock)
            sock.setblocking(False)
        self.thread.start()

    def _run(self) -> None:
        for tick in range(1, MAX_TICKS + 1):
            if self._stop.wait(TICK):
                return
            for index, sock in enumerate(self.socks):
                if index in self.closed:
                    continue
                try:
                    self.step(index, sock, tick)
                except OSError:
                    with self._lock:
                        self.closed.add(index)

    def read(self, index: int, sock: socket.socket, size: int) -> None:
        """Take up to `size` bytes if some have come; OSError when the server closed."""
        try:
            data = sock.recv(size)
        except BlockingIOError:
            return
        if not data:
            raise ConnectionAbortedError(errno.ECONNABORTED, "closed by the server")
        self.bytes_in[index] += len(data)
        if len(self.received[index]) < 1024:
            self.received[index] += data[:1024]

    def alive(self) -> int:
        """Connections open now: neither closed, reset nor given up on by the server."""
        with self._lock:
            closed = set(self.closed)
        count = 0
        for index, sock in enumerate(self.socks):
            if index in closed:
                continue
            try:
                count += bool(sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
            except BlockingIOError:
                count += 1  # nothing to read, not closed
            except OSError:
                pass
        return count

    def close(self) -> None:
        self._stop.set()
        if self.thread.is_alive():
            self.thread.join(timeout=10)
        for sock in self.socks:
            sock.close()


class Slowloris(SlowClients):
    """Each connection sends a request header one byte a second, never its end."""

    def __init__(self, port: int, count: int, path: str) -> None:
        super().__init__(port, count)
        padding = "a" * (MAX_TICKS + 100)  # longer than the attack lasts
        self.header = (
            f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUser-Agent: slowloris\r\n"
            f"X-Padding: {padding}\r\n\r\n"
        ).encode()
        self.sent = [0] * count

    def opening(self, index: int, sock: socket.socket) -> None:
        sock.sendall(self.header[:1])
        self.sent[index] = 1

    def step(self, index: int, sock: socket.socket, tick: int) -> None:
        self.read(index, sock, 4096)
        if self.received[index]:  # an answer (408, 400): the server gave up on it
            raise ConnectionAbortedError(errno.ECONNABORTED, "answered")
        if self.sent[index] < len(self.header) - 4:
            sock.send(self.header[self.sent[index] : self.sent[index] + 1])
            self.sent[index] += 1


class SlowReaders(SlowClients):
    """Each connection asks for `path` and reads its answer at 1 KiB a second."""

    def __init__(self, port: int, count: int, path: str) -> None:
        super().__init__(port, count)
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUser-Agent: slow-reader\r\n"
            "Connection: close\r\n\r\n"
        ).encode()

    def new_socket(self) -> socket.socket:
        sock = super().new_socket()
        # A small window, set before connecting: the sender's writes block at once instead of
        # filling megabytes of loopback socket buffers.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        return sock

    def opening(self, index: int, sock: socket.socket) -> None:
        sock.sendall(self.request)

    def step(self, index: int, sock: socket.socket, tick: int) -> None:
        self.read(index, sock, 1024)

    def answered(self) -> int:
        """Connections that have the status line and headers of a 200 answer."""
        return sum(r.startswith(b"HTTP/1.1 200 ") and b"\r\n\r\n" in r for r in self.received)


# ------------------------------------------------------------------------------ normal requests


@dataclass
class Samples:
    """Seconds each normal request took, by kind; failures as messages."""

    times: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def slow(self, limit: float) -> dict[str, list[str]]:
        over = {k: [f"{t * 1000:.0f}ms" for t in ts if t >= limit] for k, ts in self.times.items()}
        return {k: v for k, v in over.items() if v}

    def summary(self) -> str:
        parts = [
            f"{kind}: n={len(ts)} p50={statistics.median(ts) * 1000:.1f}ms"
            f" max={max(ts) * 1000:.1f}ms"
            for kind, ts in self.times.items()
            if ts
        ]
        if self.errors:
            parts.append(f"{len(self.errors)} failed, first: {self.errors[0]}")
        return "; ".join(parts)


Normal = tuple[str, str, dict[str, str]]  # kind, path, headers


def sample(port: int, normal: Sequence[Normal], rounds: int, interval: float) -> Samples:
    """`rounds` rounds, one every `interval` seconds, of each normal GET on a new connection,
    timed to the last byte of the answer."""
    out = Samples({kind: [] for kind, _, _ in normal})
    start = time.monotonic()
    for index in range(rounds):
        delay = start + index * interval - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        for kind, path, headers in normal:
            began = time.perf_counter()
            conn = http.client.HTTPConnection(HOST, port, timeout=REQUEST_TIMEOUT)
            try:
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    out.errors.append(f"{kind}: HTTP {response.status}")
            except (OSError, http.client.HTTPException) as exc:
                out.errors.append(f"{kind}: {exc!r}")
            finally:
                conn.close()
                out.times[kind].append(time.perf_counter() - began)
    return out


# ------------------------------------------------------------------------------ the front


@dataclass
class Front:
    port: int  # nginx's
    page: str
    big: str  # the large cached file's path
    normal: list[Normal]


@pytest.fixture
def front(
    upstream: Upstream,
    gunicorn_server: Callable[..., Server],
    nginx: str,
    tmp_path: Path,
) -> Iterator[Front]:
    """`pullthrough serve` (2 workers x 32 threads) behind nginx running deploy/nginx.conf,
    with a warm page, a cached small file and a cached 3 MiB file."""
    big = tmp_path / "bigpkg-1.0-py3-none-any.whl"
    seed = hashlib.sha256(b"bigpkg").digest()
    big.write_bytes((seed * (BIG_SIZE // len(seed) + 1))[:BIG_SIZE])
    upstream.add_file("bigpkg", big)
    small = next(f for f in upstream.files_for("shelf-reader") if f.filename.endswith(".whl"))
    server = gunicorn_server(config_text(upstream.index_url, tmp_path / "data"))
    gunicorn_port = urlsplit(server.url).port
    assert gunicorn_port is not None
    with NginxFront(nginx, tmp_path / "nginx", gunicorn_port) as proxy:
        page = "/pypi/main/simple/shelf-reader/"
        pip_like = {"Accept": JSON_V1, "Accept-Encoding": "gzip, deflate"}
        normal: list[Normal] = [
            ("page", page, pip_like),
            ("small file", f"/pulp/content/main/{small.filename}", {}),
            ("status", "/pulp/api/v3/status/", {"Accept-Encoding": "gzip, deflate"}),
        ]
        warm = sample(proxy.port, normal, 2, 0)  # the page memo in both workers, likely
        assert not warm.errors, warm.errors
        conn = http.client.HTTPConnection(HOST, proxy.port, timeout=30)
        try:
            conn.request("GET", f"/pulp/content/main/{big.name}")
            response = conn.getresponse()
            body = response.read()
        finally:
            conn.close()
        assert response.status == 200
        assert body == big.read_bytes()  # cached from now on
        yield Front(proxy.port, page, f"/pulp/content/main/{big.name}", normal)


def check_fast(samples: Samples, what: str) -> None:
    print(f"\n{what}: {samples.summary()}")  # shown with -rA or -s
    assert not samples.errors, f"{what}: {samples.summary()}"
    assert all(len(ts) == ROUNDS for ts in samples.times.values())
    assert not samples.slow(LIMIT), f"{what}, over {LIMIT * 1000:.0f} ms: {samples.slow(LIMIT)}"


# ------------------------------------------------------------------------------ the tests


@pytest.mark.slow
def test_slowloris_connections_leave_normal_requests_fast(front: Front) -> None:
    attack = Slowloris(front.port, ATTACKERS, front.page)
    try:
        attack.start()
        assert wait_until(lambda: attack.alive() == ATTACKERS, timeout=2)
        during = sample(front.port, front.normal, ROUNDS, INTERVAL)
        alive, sent = attack.alive(), min(attack.sent)
    finally:
        attack.close()
    assert not attack.thread.is_alive()
    check_fast(during, f"{ATTACKERS} slowloris connections")
    # The attack lasted: every connection was still open and still dripping its header.
    assert alive == ATTACKERS
    assert int(ROUNDS * INTERVAL) - 2 <= sent < len(attack.header) - 4, sent
    check_fast(sample(front.port, front.normal, ROUNDS, 0.02), "afterwards")


@pytest.mark.slow
def test_slow_readers_of_a_large_file_leave_normal_requests_fast(front: Front) -> None:
    readers = SlowReaders(front.port, ATTACKERS, front.big)
    try:
        readers.start()
        assert wait_until(lambda: readers.answered() == ATTACKERS, timeout=5), readers.answered()
        during = sample(front.port, front.normal, ROUNDS, INTERVAL)
        alive, got = readers.alive(), list(readers.bytes_in)
    finally:
        readers.close()
    assert not readers.thread.is_alive()
    check_fast(during, f"{ATTACKERS} readers of a {BIG_SIZE >> 20} MiB file at 1 KiB/s")
    # The attack lasted: every reader was still reading, at 1 KiB a second.
    assert alive == ATTACKERS
    seconds = ROUNDS * INTERVAL
    assert all(1024 * (seconds - 2) <= n <= 1024 * (seconds + 4) for n in got), (min(got), max(got))
    check_fast(sample(front.port, front.normal, ROUNDS, 0.02), "afterwards")
