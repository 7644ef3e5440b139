"""The reliability fault suite: killed workers, a stopped server, trickling and lying upstreams,
a crowd of cold requests and a crowd of warm ones, all against the server under gunicorn.

Each case checks three things: the client gets a clear error or the right bytes; nothing corrupt
or partial becomes visible (the store holds only complete, hash-correct files; the catalog lists
nothing of a failed transfer); and the next request works.

(A worker killed while it runs a sync task: `test_e2e_sync.py`.)
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from support.api import PASSWORD, Api, with_auth
from support.faults import (
    Download,
    Posting,
    big_wheel,
    connect_to_worker,
    every_worker_accepting,
    gone,
    gunicorn_master,
    kill_worker,
    listening,
    multipart,
    parent_of,
    rss_kib,
    sound_store,
    worker_holding,
    workers,
)
from support.servers import Server, config_text, settle, temporary_files, wait_until
from support.tools import clean_env
from support.upstream import JSON_V1, Upstream, UpstreamFile, corrupted

pytestmark = pytest.mark.e2e

GRACEFUL_TIMEOUT = 30.0  # pullthrough/gunicorn_conf.py
KIB, MIB = 1024, 1024 * 1024
HOLD_BACK = 256 * KIB  # the proxy holds back a download's last 256 KiB until it is verified


def port_of(server: Server) -> int:
    return int(server.url.rsplit(":", 1)[1])


def content_url(server: Server, filename: str, base_path: str = "main") -> str:
    return f"{server.url}/pulp/content/{base_path}/{filename}"


def fetch(url: str, timeout: float = 30) -> tuple[int | None, bytes]:
    """Status and body as a client sees them; None when the transfer broke off."""
    try:
        with requests.get(url, timeout=timeout) as resp:
            return resp.status_code, resp.content
    except requests.RequestException:
        return None, b""


def small_wheel(upstream: Upstream) -> UpstreamFile:
    return next(
        f
        for f in upstream.files_for("shelf-reader")
        if f.filename == "shelf_reader-0.2-py3-none-any.whl"
    )


def add_big(upstream: Upstream, tmp_path: Path, size: int, name: str = "big-lib") -> UpstreamFile:
    """A wheel of about `size` random bytes, served by the upstream."""
    return upstream.add_file(name, big_wheel(tmp_path / "big", name, "1.0", size))


def file_gets(upstream: Upstream, wanted: UpstreamFile) -> int:
    """How many times the upstream was asked for the file's bytes."""
    return sum(r.path == wanted.path for r in upstream.requests_for(method="GET"))


def catalog_sha(api: Api, filename: str) -> list[str]:
    """The sha256 of each package of this filename the catalog lists."""
    return [p["sha256"] for p in api.packages(filename=filename)]


def start_proxy(
    gunicorn_server: Callable[..., Server], upstream: Upstream, tmp_path: Path, **overrides: object
) -> tuple[str, Server, Api]:
    text = with_auth(config_text(upstream.index_url, tmp_path / "data", **overrides))
    proxy = gunicorn_server(text)
    return text, proxy, Api(proxy.url)


def twine_upload(url: str, path: Path) -> None:
    cmd = [sys.executable, "-m", "twine", "upload", "--repository-url", url, "-u", "admin"]
    cmd += ["-p", PASSWORD, "--non-interactive", "--disable-progress-bar", str(path)]
    proc = subprocess.run(
        cmd,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert proc.returncode == 0, f"twine failed\n{proc.stdout}\n{proc.stderr}"


def expect_healed(proxy: Server, api: Api, wanted: UpstreamFile, base_path: str = "main") -> None:
    """The next request gets the right bytes, stored once, complete, and catalogued."""
    status, body = fetch(content_url(proxy, wanted.filename, base_path))
    assert status == 200 and body == wanted.data, (status, len(body), wanted.size)
    assert settle(proxy.data_dir) and wanted.sha256 in sound_store(proxy.data_dir)
    assert wait_until(lambda: catalog_sha(api, wanted.filename) == [wanted.sha256], timeout=10)


# ---- kill -9 of a worker ---------------------------------------------------------------------


def test_a_killed_worker_cuts_its_cold_download_off_and_leaves_nothing(
    gunicorn_server: Callable[..., Server], upstream: Upstream, tmp_path: Path
) -> None:
    """The client of the killed worker is cut off; a client of the other worker that was waiting
    for that download gets the file whole (its worker fetches it); so does the next request."""
    big = add_big(upstream, tmp_path, 2 * MIB)
    _, proxy, api = start_proxy(gunicorn_server, upstream, tmp_path)
    master = gunicorn_master(proxy)
    upstream.chunk_size, upstream.slow_files = 64 * KIB, 0.15  # 32 chunks: about 5 s
    url = content_url(proxy, big.filename)

    with Download(url) as download:
        progress = download.chunks()
        assert next(progress, 0) > 0, (download.status, download.ended)  # bytes are flowing
        assert download.status == 200 and download.length == big.size
        victim = worker_holding(master, download.server_port, download.local_port)
        assert victim is not None
        with connect_to_worker(master, url, avoid=victim) as waiter:
            waiter.send_request()
            time.sleep(1.0)  # it waits for the download in flight
            assert sound_store(proxy.data_dir) == set() and download.ended is None
            kill_worker(master, victim)
            upstream.slow_files = 0
            for _ in progress:  # bounded: each read times out after 15 s
                pass
            waiter.read_all()

    body = bytes(download.body)
    assert download.ended in ("eof", "reset"), download.ended  # cut off, not complete
    assert len(body) < big.size and big.data.startswith(body)  # and no wrong byte
    assert waiter.status == 200 and waiter.ended == "complete", (waiter.status, waiter.ended)
    assert bytes(waiter.body) == big.data
    assert file_gets(upstream, big) == 2  # the killed worker's, then the waiter's
    assert wait_until(lambda: sound_store(proxy.data_dir) == {big.sha256}, 10)  # stored alongside
    # the master replaces the worker; the next request is served the file from the store
    assert wait_until(lambda: len(workers(master)) == 2 and victim not in workers(master), 15)
    expect_healed(proxy, api, big)
    assert file_gets(upstream, big) == 2


def test_a_client_of_another_worker_gets_a_big_cold_file_as_it_comes(
    gunicorn_server: Callable[..., Server], upstream: Upstream, tmp_path: Path
) -> None:
    """A client whose worker is not the one fetching a big cold file gets its bytes as the one
    download brings them, not nothing until the file is stored (pip gives up on a server silent
    for 15 s); both clients get the file whole, fetched once."""
    big = add_big(upstream, tmp_path, 2 * MIB)
    _, proxy, api = start_proxy(gunicorn_server, upstream, tmp_path)
    master = gunicorn_master(proxy)
    url = content_url(proxy, big.filename)
    every_worker_accepting(master, url)
    upstream.chunk_size, upstream.slow_files = 64 * KIB, 0.25  # 32 chunks: about 8 s

    with Download(url) as first:
        progress = first.chunks()
        assert next(progress, 0) > 0, (first.status, first.ended)  # bytes are flowing
        fetcher = worker_holding(master, first.server_port, first.local_port)
        assert fetcher is not None
        with connect_to_worker(master, url, avoid=fetcher) as second:
            asked = time.monotonic()
            second.send_request()
            assert next(second.chunks(), 0) > 0, (second.status, second.ended)
            first_byte = time.monotonic()
            second.read_all()
            done = time.monotonic()
            first.read_all()

    # its first bytes came well before its last, which wait for the end of the download
    assert first_byte - asked < (done - asked) / 2, (first_byte - asked, done - asked)
    assert done - first_byte > 1.0, done - first_byte
    for client in (first, second):
        assert client.status == 200 and client.ended == "complete", (client.status, client.ended)
        assert bytes(client.body) == big.data
    assert file_gets(upstream, big) == 1
    assert wait_until(lambda: sound_store(proxy.data_dir) == {big.sha256}, 10)
    assert wait_until(lambda: catalog_sha(api, big.filename) == [big.sha256], timeout=10)


def test_a_client_of_another_worker_never_gets_a_corrupt_cold_file_whole(
    gunicorn_server: Callable[..., Server], upstream: Upstream, tmp_path: Path
) -> None:
    """The client of a worker following another's download of a big file gets its bytes as they
    come, but the last ones only once it has checked them itself: a body that fails the index's
    sha256 is cut short there too (after one try of its own), and nothing is kept."""
    big = add_big(upstream, tmp_path, 2 * MIB)
    _, proxy, api = start_proxy(gunicorn_server, upstream, tmp_path)
    master = gunicorn_master(proxy)
    url = content_url(proxy, big.filename)
    every_worker_accepting(master, url)
    upstream.chunk_size, upstream.slow_files = 64 * KIB, 0.1  # about 3 s
    upstream.corrupt_files = True

    with Download(url) as first:
        assert next(first.chunks(), 0) > 0, (first.status, first.ended)
        fetcher = worker_holding(master, first.server_port, first.local_port)
        assert fetcher is not None
        with connect_to_worker(master, url, avoid=fetcher) as second:
            second.send_request()
            second.read_all()
            first.read_all()

    for client in (first, second):
        assert client.status == 200 and client.ended in ("eof", "reset"), (
            client.ended,
            client.status,
        )
        assert client.length == big.size and len(client.body) <= big.size - HOLD_BACK
    assert file_gets(upstream, big) == 2  # the fetcher's, then the follower's own try
    assert settle(proxy.data_dir) and sound_store(proxy.data_dir) == set()
    assert catalog_sha(api, big.filename) == []

    upstream.reset_faults()
    expect_healed(proxy, api, big)


def test_a_killed_worker_keeps_nothing_of_the_upload_it_was_receiving(
    gunicorn_server: Callable[..., Server], upstream: Upstream, tmp_path: Path
) -> None:
    """An 8 MiB wheel posted as twine does, but trickled so that the worker is still reading
    the body when it is killed: no answer, nothing in the catalog, store or repository; then
    twine uploads the same file."""
    _, proxy, api = start_proxy(gunicorn_server, upstream, tmp_path)
    repo = api.repository("corp")
    api.distribution("corp", repository=repo["pulp_href"])
    master = gunicorn_master(proxy)
    wheel = big_wheel(tmp_path / "dists", "big-upload", "1.0", 8 * MIB, seed=1)
    data = wheel.read_bytes()
    sha256 = hashlib.sha256(data).hexdigest()
    fields = {
        ":action": "file_upload",
        "protocol_version": "1",
        "metadata_version": "2.1",
        "name": "big-upload",
        "version": "1.0",
        "filetype": "bdist_wheel",
        "pyversion": "py3",
        "sha256_digest": sha256,
    }
    content_type, body = multipart(fields, "content", wheel.name, data)
    basic = base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
    headers = {"Content-Type": content_type, "Authorization": f"Basic {basic}"}

    with Posting(proxy.url + "/pypi/corp/legacy/", body, headers) as post:
        for _ in range(48):  # 3 MiB of the body's 8, trickled: the upload is in flight
            assert post.send_some(64 * KIB), post.broken
            time.sleep(0.01)
        assert wait_until(
            lambda: worker_holding(master, post.server_port, post.local_port) is not None, 5
        )
        victim = worker_holding(master, post.server_port, post.local_port)
        assert victim is not None
        kill_worker(master, victim)
        for _ in range(200):  # the rest, until the connection is found broken
            if not post.send_some(64 * KIB):
                break
        answer = post.answer()

    assert answer == b"", answer[:200]  # no answer at all, certainly no success
    assert catalog_sha(api, wheel.name) == []
    assert api.latest(repo).endswith("/versions/0/")
    assert sound_store(proxy.data_dir) == set() and temporary_files(proxy.data_dir) == []

    # a re-upload (twine, as users do) then works
    assert wait_until(lambda: len(workers(master)) == 2 and victim not in workers(master), 15)
    twine_upload(proxy.url + "/pypi/corp/legacy/", wheel)
    assert catalog_sha(api, wheel.name) == [sha256]
    assert api.latest(repo).endswith("/versions/1/")
    assert api.filenames(api.latest(repo)) == {wheel.name}
    assert sha256 in sound_store(proxy.data_dir)
    assert fetch(content_url(proxy, wheel.name, "corp")) == (200, data)


# ---- SIGTERM of the master -------------------------------------------------------------------


@dataclass(frozen=True)
class Pace:
    chunk_size: int
    seconds: float  # before each chunk


@pytest.mark.slow
@pytest.mark.parametrize(
    "pace",
    [Pace(64 * KIB, 0.1), Pace(128 * KIB, 2.0)],
    ids=["download-ends-within-grace", "download-outlasts-grace"],
)
def test_sigterm_during_a_cold_download_stops_in_time_and_leaves_nothing_partial(
    gunicorn_server: Callable[..., Server], upstream: Upstream, tmp_path: Path, pace: Pace
) -> None:
    big = add_big(upstream, tmp_path, 4 * MIB)  # 64 chunks (about 6 s), or 32 (about 64 s)
    outlasts = pace.seconds * -(-big.size // pace.chunk_size) > GRACEFUL_TIMEOUT + 10
    text, proxy, _ = start_proxy(gunicorn_server, upstream, tmp_path)
    master = gunicorn_master(proxy)
    pool = workers(master)
    upstream.chunk_size, upstream.slow_files = pace.chunk_size, pace.seconds

    with Download(content_url(proxy, big.filename), timeout=20) as download:
        progress = download.chunks()
        assert next(progress, 0) > 0, (download.status, download.ended)
        assert parent_of(master) == os.getpid()  # our own server
        signaled = time.monotonic()
        os.kill(master, signal.SIGTERM)
        for _ in progress:  # bounded: each read times out after 20 s
            pass
        assert wait_until(lambda: gone(master), timeout=GRACEFUL_TIMEOUT + 15, interval=0.05)
        stopped_after = time.monotonic() - signaled

    assert stopped_after <= GRACEFUL_TIMEOUT + 5, stopped_after
    assert all(gone(pid) for pid in pool) and not listening(port_of(proxy))
    body = bytes(download.body)
    if outlasts:  # cut off at the end of the grace period, without a wrong byte
        assert download.ended in ("eof", "reset"), download.ended
        assert len(body) < big.size and big.data.startswith(body)
        assert sound_store(proxy.data_dir) == set()
    else:  # a graceful stop finishes what is in flight
        assert download.ended == "complete" and body == big.data
        assert sound_store(proxy.data_dir) == {big.sha256}

    # restarted on the same data folder: only complete files, and the file served right
    upstream.slow_files = 0
    again = gunicorn_server(text)
    assert again.data_dir == proxy.data_dir
    assert sound_store(again.data_dir) <= {big.sha256}
    expect_healed(again, Api(again.url), big)


# ---- upstreams that trickle or lie -----------------------------------------------------------


@dataclass(frozen=True)
class Trickle:
    size: int  # 0: the small wheel of the wheelhouse (834 bytes)
    chunk_size: int
    seconds: float


@pytest.mark.parametrize(
    "trickle",
    [Trickle(0, 3, 0.005), Trickle(0, 420, 2.0), Trickle(384 * KIB, 1 * KIB, 0.003)],
    ids=["3-bytes-at-a-time", "pauses-near-the-read-timeout", "streamed-1-KiB-at-a-time"],
)
def test_a_trickling_upstream_gives_the_right_bytes(
    gunicorn_server: Callable[..., Server], upstream: Upstream, tmp_path: Path, trickle: Trickle
) -> None:
    wanted = add_big(upstream, tmp_path, trickle.size) if trickle.size else small_wheel(upstream)
    # sock_read_timeout 3 s (config_text): every pause is shorter, the whole transfer is not
    _, proxy, api = start_proxy(gunicorn_server, upstream, tmp_path)
    upstream.chunk_size, upstream.slow_files = trickle.chunk_size, trickle.seconds
    started = time.monotonic()
    status, body = fetch(content_url(proxy, wanted.filename), timeout=60)
    assert status == 200 and body == wanted.data, (status, len(body), wanted.size)
    assert time.monotonic() - started > 1.0  # it did trickle
    assert settle(proxy.data_dir) and sound_store(proxy.data_dir) == {wanted.sha256}
    assert file_gets(upstream, wanted) == 1
    upstream.slow_files = 0
    expect_healed(proxy, api, wanted)  # now from the store
    assert file_gets(upstream, wanted) == 1


@pytest.mark.parametrize("size", [0, 1 * MIB], ids=["small", "large"])
@pytest.mark.parametrize("fault", ["overlong_files", "corrupt_files"])
def test_an_upstream_sending_other_bytes_than_promised_is_a_clean_error(
    gunicorn_server: Callable[..., Server],
    upstream: Upstream,
    tmp_path: Path,
    fault: str,
    size: int,
) -> None:
    """`overlong_files`: more bytes than its Content-Length announced; `corrupt_files`: a body
    that fails the index's sha256. A small file is a 502; a large one is cut short."""
    wanted = add_big(upstream, tmp_path, size) if size else small_wheel(upstream)
    _, proxy, api = start_proxy(gunicorn_server, upstream, tmp_path)
    if size > HOLD_BACK:  # at a pace that has the proxy answer (200) before the end
        upstream.chunk_size, upstream.slow_files = 64 * KIB, 0.1
    setattr(upstream, fault, 100 if fault == "overlong_files" else True)

    with Download(content_url(proxy, wanted.filename)) as download:
        download.read_all()
    body = bytes(download.body)
    if size <= HOLD_BACK:
        assert download.status == 502 and download.ended == "complete", download
        assert b"upstream" in body.lower() and len(body) < 2000, body
    else:
        assert download.status == 200 and download.ended in ("eof", "reset"), download.ended
        assert download.length is not None and len(body) < download.length
        assert len(body) < wanted.size
    assert sound_store(proxy.data_dir) == set()
    assert catalog_sha(api, wanted.filename) == []
    assert temporary_files(proxy.data_dir) == []  # a failed download removes its temporary file

    upstream.reset_faults()  # the upstream is fixed
    expect_healed(proxy, api, wanted)


@pytest.mark.parametrize("size", [0, 1 * MIB], ids=["small", "large"])
def test_an_upstream_sending_past_the_listed_size_is_cut_off_at_once(
    gunicorn_server: Callable[..., Server], upstream: Upstream, tmp_path: Path, size: int
) -> None:
    """No Content-Length, and other bytes than the file, without end: the index's size is all
    that bounds the body. The client's Content-Length is that size, so the proxy must not send
    the last HOLD_BACK bytes of it unverified (a complete answer of bad bytes); the download is
    given up as soon as it goes past the size, keeping nothing and no lock."""
    wanted = add_big(upstream, tmp_path, size) if size else small_wheel(upstream)
    _, proxy, api = start_proxy(gunicorn_server, upstream, tmp_path)
    if size > HOLD_BACK:  # at a pace that has the proxy answer (200) before the end
        upstream.chunk_size, upstream.slow_files = 64 * KIB, 0.02
    upstream.corrupt_files = upstream.endless_files = True

    with Download(content_url(proxy, wanted.filename), total=20) as download:
        download.read_all()
    body = bytes(download.body)
    if size <= HOLD_BACK:
        assert download.status == 502 and download.ended == "complete", download
        assert b"more than the" in body, body
    else:
        assert download.status == 200 and download.length == wanted.size, download.headers
        assert download.ended in ("eof", "reset"), download.ended
        assert len(body) <= wanted.size - HOLD_BACK
    # the upstream is still sending: the proxy hung up on it and removed its temporary file
    assert wait_until(lambda: temporary_files(proxy.data_dir) == [], timeout=5)
    assert sound_store(proxy.data_dir) == set()
    assert catalog_sha(api, wanted.filename) == []

    upstream.reset_faults()  # the upstream is fixed; nothing waits for the endless download
    expect_healed(proxy, api, wanted)


@pytest.mark.parametrize("size", [0, 1 * MIB], ids=["small", "large"])
def test_no_range_of_a_corrupt_cold_file_makes_it_whole(
    gunicorn_server: Callable[..., Server], upstream: Upstream, tmp_path: Path, size: int
) -> None:
    """An upstream whose bytes fail the index's sha256, whole and by range alike. A download
    cut short, then resumed from where it stopped (pip, `curl -C -`), must not end up whole:
    the resumed range takes in the held-back bytes, so it waits for the verification and fails,
    as do the whole file by range and the held-back tail. A range short of them still comes
    straight from the upstream (a part no digest can check), so lockers read wheels' ends at
    the upstream's pace."""
    wanted = add_big(upstream, tmp_path, size) if size else small_wheel(upstream)
    _, proxy, api = start_proxy(gunicorn_server, upstream, tmp_path)
    url = content_url(proxy, wanted.filename)
    if size > HOLD_BACK:  # at a pace that has the proxy answer (200) before the end
        upstream.chunk_size, upstream.slow_files = 64 * KIB, 0.05
    upstream.corrupt_files = True
    bad = corrupted(wanted.data)

    with Download(url) as download:
        download.read_all()
    got = bytes(download.body) if download.status == 200 else b""
    assert len(got) < wanted.size and bad.startswith(got)
    for asked in (f"bytes={len(got)}-", "bytes=0-", f"bytes=-{HOLD_BACK}"):
        rest = requests.get(url, headers={"Range": asked}, timeout=60)
        assert rest.status_code == 502, (asked, rest.status_code, len(rest.content))
        assert wanted.sha256.encode() in rest.content, rest.content  # the digest it fails
    if size > HOLD_BACK:
        upstream.slow_files = 0.0
        head = requests.get(url, headers={"Range": "bytes=0-99"}, timeout=10)
        assert (head.status_code, head.content) == (206, bad[:100])
        ranged = [
            r.header("range") for r in upstream.requests_for(wanted.filename) if r.header("range")
        ]
        assert ranged == ["bytes=0-99"]  # asked of the upstream: the others were not relayed
    assert settle(proxy.data_dir) and sound_store(proxy.data_dir) == set()
    assert catalog_sha(api, wanted.filename) == []

    upstream.reset_faults()  # the upstream is fixed
    expect_healed(proxy, api, wanted)


@pytest.mark.slow
@pytest.mark.parametrize("size", [0, 1 * MIB], ids=["small", "large"])
def test_an_upstream_cutting_off_a_cold_file_fails_every_reader_and_keeps_nothing(
    gunicorn_server: Callable[..., Server], upstream: Upstream, tmp_path: Path, size: int
) -> None:
    """One client's worker fetches, the others (of either worker) tail its download; the
    upstream sends the full length, half the bytes, then closes. No client may take what it
    got for the file (a 200 read to its end); nothing is stored; the next request, the
    upstream mended, gets it whole."""
    wanted = add_big(upstream, tmp_path, size) if size else small_wheel(upstream)
    _, proxy, api = start_proxy(gunicorn_server, upstream, tmp_path, max_retries=0)
    upstream.chunk_size = 64 * KIB if size else 100
    upstream.slow_files, upstream.reset_files = 0.2, True  # about 1.6 s, then cut off
    url = content_url(proxy, wanted.filename)

    with Download(url) as first:
        assert wait_until(lambda: file_gets(upstream, wanted) == 1, 5)
        others = [Download(url) for _ in range(3)]  # while its download runs
        try:
            for client in (first, *others):
                client.read_all()
        finally:
            for client in others:
                client.close()

    for client in (first, *others):
        whole = client.status == 200 and client.ended == "complete"
        assert not whole, (client.status, client.ended, len(client.body), client.headers)
        if client.status == 200:  # cut short, without a wrong byte
            assert wanted.data.startswith(bytes(client.body))
    assert settle(proxy.data_dir)
    assert sound_store(proxy.data_dir) == set() and temporary_files(proxy.data_dir) == []
    assert catalog_sha(api, wanted.filename) == []

    upstream.reset_faults()
    expect_healed(proxy, api, wanted)


# ---- crowds ----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1 * MIB], ids=["small", "large"])
def test_fifty_concurrent_cold_requests_make_one_upstream_download(
    gunicorn_server: Callable[..., Server], upstream: Upstream, tmp_path: Path, size: int
) -> None:
    wanted = add_big(upstream, tmp_path, size) if size else small_wheel(upstream)
    _, proxy, api = start_proxy(gunicorn_server, upstream, tmp_path)
    upstream.chunk_size = 64 * KIB if size else 100
    upstream.slow_files = 0.05  # a second or so: every request arrives while it runs
    clients = 50
    barrier = threading.Barrier(clients, timeout=30)

    def one(_: int) -> tuple[int | None, bytes]:
        barrier.wait()
        return fetch(content_url(proxy, wanted.filename), timeout=60)

    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(one, range(clients)))

    assert [status for status, _ in results] == [200] * clients
    assert sum(body == wanted.data for _, body in results) == clients
    assert file_gets(upstream, wanted) == 1
    assert settle(proxy.data_dir) and sound_store(proxy.data_dir) == {wanted.sha256}
    assert wait_until(lambda: catalog_sha(api, wanted.filename) == [wanted.sha256], timeout=10)


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: int = 0
    errors: int = 0
    samples: list[str] = field(default_factory=list)  # the first few errors

    def error(self, what: str) -> None:
        with self.lock:
            self.errors += 1
            if len(self.samples) < 10:
                self.samples.append(what)


@pytest.mark.slow
def test_two_hundred_clients_on_warm_pages_see_no_error_and_flat_memory(
    gunicorn_server: Callable[..., Server], upstream: Upstream, tmp_path: Path
) -> None:
    wheel = small_wheel(upstream)
    _, proxy, _ = start_proxy(gunicorn_server, upstream, tmp_path)
    master = gunicorn_master(proxy)
    pool = workers(master)
    page = "/pypi/main/simple/shelf-reader/"
    targets = [  # path, Accept
        (page, JSON_V1),
        (page, "text/html"),
        (f"/pulp/content/main/{wheel.filename}", "*/*"),
    ]
    expected = []
    for path, accept in targets:  # warm: every worker renders or opens each at least once
        bodies = set()
        for _ in range(20):
            resp = requests.get(proxy.url + path, headers={"Accept": accept}, timeout=15)
            assert resp.status_code == 200, resp.text
            bodies.add(resp.content)
        assert len(bodies) == 1, f"{path} {accept}: {len(bodies)} different bodies"
        expected.append(bodies.pop())
    assert expected[2] == wheel.data

    stop = threading.Event()
    tally = Tally()

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port_of(proxy), timeout=15)
        done = 0
        try:
            while not stop.is_set():
                for (path, accept), body in zip(targets, expected, strict=True):
                    try:
                        conn.request("GET", path, headers={"Accept": accept})
                        resp = conn.getresponse()
                        got = resp.read()
                        if resp.status != 200 or got != body:
                            tally.error(f"{path} {accept}: {resp.status}, {len(got)} bytes")
                        if resp.will_close:
                            tally.error(f"{path} {accept}: the server closes the connection")
                            conn.close()
                        done += 1
                    except (OSError, http.client.HTTPException) as exc:
                        tally.error(f"{path} {accept}: {exc!r}")
                        conn.close()  # reconnects on the next request
        finally:
            conn.close()
            with tally.lock:
                tally.requests += done

    threads = [threading.Thread(target=client, name=f"client-{i}") for i in range(200)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(3.0)  # warm-up under load
        warm = {pid: rss_kib(pid) for pid in pool}
        fds_warm = {pid: len(os.listdir(f"/proc/{pid}/fd")) for pid in pool}
        time.sleep(10.0)
        end = {pid: rss_kib(pid) for pid in pool}
        fds_end = {pid: len(os.listdir(f"/proc/{pid}/fd")) for pid in pool}
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)

    assert tally.errors == 0, (tally.errors, tally.samples)
    assert tally.requests > 2000, tally.requests  # it did hammer
    assert workers(master) == pool  # no worker died or was replaced
    for pid in pool:
        assert end[pid] - warm[pid] <= 20 * 1024, (pid, warm[pid], end[pid])
        assert fds_end[pid] - fds_warm[pid] <= 100, (pid, fds_warm[pid], fds_end[pid])
    print(f"\n{tally.requests} requests; RSS KiB warm {warm} end {end}; fds {fds_warm} {fds_end}")


# ---- damaged shared caches -----------------------------------------------------------------


@pytest.mark.parametrize("damage", ["truncated", "overwritten"])
def test_a_damaged_page_or_render_cache_does_not_stop_a_restart(
    gunicorn_server: Callable[..., Server], upstream: Upstream, tmp_path: Path, damage: str
) -> None:
    """The parsed pages (`data_dir/pages`) and the renderings the workers share
    (`data_dir/renders`) are copies the server can make again: a damaged SQLite file of either
    (a disk error, a copy cut short) is discarded at start-up, not a server that cannot start."""
    wanted = small_wheel(upstream)
    text, proxy, _ = start_proxy(gunicorn_server, upstream, tmp_path)
    assert wanted.filename in proxy.page_files("main", "shelf-reader")
    assert fetch(content_url(proxy, wanted.filename)) == (200, wanted.data)
    assert settle(proxy.data_dir)
    master = gunicorn_master(proxy)
    assert parent_of(master) == os.getpid()  # our own server
    os.kill(master, signal.SIGTERM)
    assert wait_until(lambda: gone(master), timeout=GRACEFUL_TIMEOUT + 15, interval=0.05)

    for name in ("pages", "renders"):
        db = proxy.data_dir / name / "cache.db"
        assert db.exists(), db
        with db.open("r+b") as damaged:
            if damage == "truncated":
                damaged.truncate(db.stat().st_size // 3)
            else:
                damaged.write(b"\xde\xad\xbe\xef" * 1024)

    again = gunicorn_server(text)  # starts, with the copies made anew
    assert wanted.filename in again.page_files("main", "shelf-reader")
    assert fetch(content_url(again, wanted.filename)) == (200, wanted.data)
    upstream.down()  # the cached file is still served from the store
    assert fetch(content_url(again, wanted.filename)) == (200, wanted.data)
