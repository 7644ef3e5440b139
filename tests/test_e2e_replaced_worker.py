"""A worker gunicorn starts in place of one that died (killed, timed out, max_requests) while
its siblings serve: it does none of the data folder's one-time setup, which `pullthrough serve`
did before any worker started - no wait for the setup lock, no read of the whole cache ledger,
no damaged ledger set aside under the workers that have it open - and the temporary files its
siblings are writing stay where they are."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests

from support.api import Api, with_auth
from support.faults import gone, gunicorn_master, kill_worker, workers
from support.servers import STARTS, Server, config_text, settle, temporary_files, wait_until
from support.upstream import Upstream

pytestmark = pytest.mark.e2e

BOOT_SECONDS = 20.0  # a replacement worker is up within this (it takes about a second)


def online_pids(server: Server) -> set[int]:
    """The worker processes whose task worker is online (named `<host>-<pid>-<thread>`)."""
    with requests.get(f"{server.url}/pulp/api/v3/status/", timeout=10) as resp:
        assert resp.status_code == 200, resp.text
        names = [w["name"] for w in resp.json()["online_workers"]]
    return {int(name.rsplit("-", 2)[1]) for name in names}


def replace_worker(server: Server, victim: int) -> int:
    """SIGKILL one worker; the pid of the one the master starts in its place."""
    master = gunicorn_master(server)
    before = set(workers(master))
    kill_worker(master, victim)
    assert wait_until(lambda: gone(victim), timeout=5)
    assert wait_until(lambda: set(workers(master)) - before, timeout=10), workers(master)
    (new,) = set(workers(master)) - before
    return new


@contextmanager
def held(lock_file: Path) -> Iterator[None]:
    """Hold a lock of the data folder (LockDir.named: flock on its file), as a process that
    runs the job it guards would."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def ledger_files_open(pid: int) -> list[str]:
    """The cache ledger's database files the process has open."""
    found = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if "/ledger/" in target and target.endswith("cache.db"):
            found.append(target)
    return found


@pytest.mark.parametrize("start", STARTS)
def test_a_replaced_worker_does_not_wait_for_the_setup_lock(
    gunicorn_server: Callable[..., Server], upstream: Upstream, tmp_path: Path, start: str
) -> None:
    """The setup lock held (by `pullthrough worker` starting, an upgrade migrating, or just
    another worker reading a big ledger): a worker started in place of a dead one serves at
    once, rather than wait its turn to redo a setup that is done."""
    server = gunicorn_server(config_text(upstream.index_url, tmp_path / "data"), start=start)
    assert wait_until(lambda: len(online_pids(server)) == 2, timeout=BOOT_SECONDS)
    victim = workers(gunicorn_master(server))[0]
    with held(server.data_dir / "locks" / "catalog_setup.lock"):
        new = replace_worker(server, victim)
        assert wait_until(lambda: new in online_pids(server), timeout=BOOT_SECONDS), new


@pytest.mark.parametrize("start", STARTS)
def test_a_worker_started_on_a_ledger_damaged_meanwhile_sets_nothing_aside(
    gunicorn_server: Callable[..., Server], upstream: Upstream, tmp_path: Path, start: str
) -> None:
    """The ledger damaged while the server runs: a worker started then does not rename it
    aside and begin a new one, which the workers that have it open would never see (each would
    count the cache in a file of its own). It fails to start, and gunicorn stops the server;
    the next start (systemd's Restart=on-failure) sets the ledger aside and rebuilds it with no
    worker running."""
    data = tmp_path / "data"
    text = with_auth(config_text(upstream.index_url, data))
    server = gunicorn_server(text, start=start)
    wheel = upstream.files_for("shelf-reader")[0]
    with requests.get(f"{server.url}/pulp/content/main/{wheel.filename}", timeout=30) as resp:
        assert resp.status_code == 200
    # a copy's catalog record comes after its file and its ledger entry
    assert wait_until(lambda: Api(server.url).packages(filename=wheel.filename))
    master = gunicorn_master(server)
    siblings = workers(master)
    ledger = data / "ledger"
    with (ledger / "files" / "cache.db").open("r+b") as damaged:  # under the running workers
        damaged.write(b"\xde\xad\xbe\xef" * 1024)

    def set_aside() -> list[str]:
        return sorted(p.name for p in ledger.iterdir() if ".damaged-" in p.name)

    kill_worker(master, siblings[0])
    assert wait_until(lambda: gone(master) or set_aside(), timeout=30), workers(master)
    # no worker left with a ledger set aside open while another starts a new one
    assert set_aside() == [], ledger_files_open(siblings[1])
    log = (tmp_path / "server-0.log").read_text()
    assert "Worker failed to boot" in log, log[-3000:]

    again = gunicorn_server(text, start=start)
    assert [name.split(".")[0] for name in set_aside()] == ["files"], set_aside()
    status = requests.get(f"{again.url}/pulp/api/v3/status/", timeout=10).json()
    assert status["cache"]["files"] == 1, status["cache"]
    for pid in workers(gunicorn_master(again)):
        assert all(".damaged-" not in f for f in ledger_files_open(pid))


def test_a_replaced_worker_leaves_a_siblings_temporary_file_alone(
    gunicorn_server: Callable[..., Server], upstream: Upstream, tmp_path: Path
) -> None:
    """A worker's start removes the temporary files of writers that are gone (a killed
    worker's half download); one a sibling is writing, however old, stays, and its download
    completes."""
    data = tmp_path / "data"
    # the held download is not given up (sock_read_timeout) while the worker is replaced
    server = gunicorn_server(config_text(upstream.index_url, data, sock_read_timeout=60))
    assert wait_until(lambda: len(online_pids(server)) == 2, timeout=BOOT_SECONDS)
    wheel = upstream.files_for("shelf-reader")[0]
    hold = threading.Event()
    upstream.held_files[wheel.filename] = hold
    got: dict[str, Any] = {}

    def download() -> None:
        url = f"{server.url}/pulp/content/main/{wheel.filename}"
        with requests.get(url, timeout=60) as resp:
            got["status"], got["body"] = resp.status_code, resp.content

    client = threading.Thread(target=download, daemon=True)
    client.start()
    try:
        assert wait_until(lambda: temporary_files(data), timeout=15)
        (partial,) = temporary_files(data)
        writer = int(partial.split("-")[0].split(".")[0])
        path = data / "artifacts" / ".tmp" / partial
        old = time.time() - 600  # a long download: past the grace for new files
        os.utime(path, (old, old))
        (victim,) = set(workers(gunicorn_master(server))) - {writer}
        new = replace_worker(server, victim)
        assert wait_until(lambda: new in online_pids(server), timeout=BOOT_SECONDS), new
        assert path.exists()
    finally:
        hold.set()
        client.join(timeout=30)
    assert got.get("status") == 200 and got["body"] == wheel.data
    assert settle(data)
    stored = data / "artifacts" / wheel.sha256[:2] / wheel.sha256[2:4] / wheel.sha256
    assert stored.read_bytes() == wheel.data
