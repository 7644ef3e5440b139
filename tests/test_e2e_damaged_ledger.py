"""A damaged cache ledger (`data_dir/ledger`, which says which stored files are pull-through
copies the size limit may evict) at a restart: the server starts all the same, sets the
damaged files aside and rebuilds the ledger from the catalog - without ever making a file of
a repository evictable."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from support.api import Api, with_auth
from support.faults import gone, gunicorn_master, parent_of, sound_store
from support.packages import build_wheel
from support.servers import Server, config_text, settle, stored_files, wait_until
from support.tools import clean_env
from support.upstream import Upstream

pytestmark = pytest.mark.e2e

GRACEFUL_TIMEOUT = 30.0  # pullthrough/gunicorn_conf.py
WORKER_SECONDS = 30.0  # a task worker that starts is waiting for tasks well within this


def fetch(url: str) -> tuple[int, bytes]:
    with requests.get(url, timeout=30) as resp:
        return resp.status_code, resp.content


def status(server: Server) -> dict[str, Any]:
    with requests.get(f"{server.url}/pulp/api/v3/status/", timeout=10) as resp:
        assert resp.status_code == 200, resp.text
        body: dict[str, Any] = resp.json()
    return body


def stop(server: Server) -> None:
    master = gunicorn_master(server)
    assert parent_of(master) == os.getpid()  # our own server
    os.kill(master, signal.SIGTERM)
    assert wait_until(lambda: gone(master), timeout=GRACEFUL_TIMEOUT + 15, interval=0.05)


def damage(db: Path, how: str) -> None:
    """Damage a stopped server's SQLite file: cut short (once its journal is in it, as in a
    copy of the file alone), or its first pages overwritten."""
    if how == "truncated":
        with contextlib.closing(sqlite3.connect(db)) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert db.stat().st_size > 8192, db.stat()
    with db.open("r+b") as damaged:
        if how == "truncated":
            damaged.truncate(db.stat().st_size // 3)
        else:
            damaged.write(b"\xde\xad\xbe\xef" * 1024)


@pytest.mark.parametrize("how", ["truncated", "overwritten"])
def test_a_damaged_cache_ledger_is_set_aside_and_rebuilt_at_a_restart(
    gunicorn_server: Callable[..., Server], upstream: Upstream, tmp_path: Path, how: str
) -> None:
    data = tmp_path / "data"
    proxy = gunicorn_server(with_auth(config_text(upstream.index_url, data)))
    api = Api(proxy.url)
    files = {f.filename: f for f in upstream.files_for("shelf-reader")}
    cached = [files[n] for n in ("shelf_reader-0.1-py3-none-any.whl", "shelf_reader-0.1.tar.gz")]
    promoted = files["shelf_reader-0.2-py3-none-any.whl"]
    for wanted in [*cached, promoted]:
        assert fetch(f"{proxy.url}/pulp/content/main/{wanted.filename}") == (200, wanted.data)
    assert settle(data)
    assert wait_until(lambda: status(proxy)["cache"]["files"] == 3), status(proxy)["cache"]
    # A cached copy taken into a repository, and a private package uploaded into another: the
    # repositories' files, never the cache's
    kept = api.repository("kept")
    # a copy's catalog record comes after its file and its ledger entry
    assert wait_until(lambda: api.packages(filename=promoted.filename))
    (package,) = api.packages(filename=promoted.filename)
    api.run(
        "POST", kept["pulp_href"] + "modify/", json={"add_content_units": [package["pulp_href"]]}
    )
    private = api.repository("private")
    api.distribution("private", repository=private["pulp_href"])
    own = build_wheel(tmp_path / "own", "private-lib", "1.0", payload=os.urandom(20_000))
    api.upload(own, private)
    own_path = f"/pulp/content/private/{own.name}"
    assert fetch(proxy.url + own_path) == (200, own.read_bytes())
    cache_size = sum(f.size for f in cached)
    assert status(proxy)["cache"]["size"] == cache_size
    stop(proxy)

    ledger = data / "ledger"
    for name in ("files", "urls"):
        damage(ledger / name / "cache.db", how)
    # Restarted with a limit the cached copies are over (nothing is evicted before a new file)
    text = with_auth(config_text(upstream.index_url, data, cache_max_size="1KB"))
    again = gunicorn_server(text)
    log = (tmp_path / "server-1.log").read_text()
    warned = [line for line in log.splitlines() if "WARNING the cache ledger" in line]
    assert len(warned) == 3 and "set aside" in warned[0], log[-3000:]  # files, urls, rebuilt
    aside = sorted(p.name for p in ledger.iterdir() if p.name.startswith("files.damaged-"))
    assert len(aside) == 1, sorted(p.name for p in ledger.iterdir())
    assert (ledger / aside[0] / "cache.db").exists()  # kept for the operator, not deleted
    assert str(ledger / aside[0]) in log
    assert status(again)["cache"] == {"size": cache_size, "max_size": 1000, "files": 2}

    upstream.down()  # the cached files come from the store
    for wanted in [*cached, promoted]:
        assert fetch(f"{again.url}/pulp/content/main/{wanted.filename}") == (200, wanted.data)
    upstream.up()

    # A new file over the limit: the cache's copies go, the repositories' files stay
    new = files["shelf_reader-0.4rc1-py3-none-any.whl"]
    assert fetch(f"{again.url}/pulp/content/main/{new.filename}") == (200, new.data)
    assert settle(data)
    gone_copies = {f.sha256 for f in cached}
    assert wait_until(lambda: not gone_copies & {p.name for p in stored_files(data)}, timeout=15)
    # the new file (over the limit itself) goes in its turn, a moment after the old copies
    assert wait_until(lambda: status(again)["cache"]["size"] <= 1000, timeout=15)
    stored = sound_store(data)
    assert promoted.sha256 in stored
    upstream.down()
    assert fetch(again.url + own_path) == (200, own.read_bytes())
    assert fetch(f"{again.url}/pulp/content/main/{promoted.filename}") == (200, promoted.data)


def test_a_task_worker_started_under_a_running_server_sets_no_ledger_aside(
    gunicorn_server: Callable[..., Server], upstream: Upstream, tmp_path: Path
) -> None:
    """The ledger damaged while the server runs, and `pullthrough worker` started then: it does
    not rename the ledger aside and begin a new one under the server's workers, which have it
    open (they would go on counting the cache in the old file, and the size limit lose count of
    it); it says why it cannot start. The server serves its cached files all the same, and its
    next start sets the ledger aside and rebuilds it."""
    data = tmp_path / "data"
    text = with_auth(config_text(upstream.index_url, data))
    proxy = gunicorn_server(text)
    cached = upstream.files_for("shelf-reader")[:2]
    for wanted in cached:
        assert fetch(f"{proxy.url}/pulp/content/main/{wanted.filename}") == (200, wanted.data)
    assert settle(data)
    assert wait_until(lambda: status(proxy)["cache"]["files"] == 2), status(proxy)["cache"]
    # both workers up (one booting now would fail on the damaged ledger, and stop the server)
    assert wait_until(lambda: len(status(proxy)["online_workers"]) == 2, timeout=30)
    ledger = data / "ledger"
    with (ledger / "files" / "cache.db").open("r+b") as damaged:  # under the running workers
        damaged.write(b"\xde\xad\xbe\xef" * 1024)

    config = tmp_path / "pullthrough-0.toml"  # the server's (gunicorn_server's first)
    worker = subprocess.Popen(
        [sys.executable, "-m", "pullthrough.cli", "worker", "--config", str(config)],
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        _, err = worker.communicate(timeout=WORKER_SECONDS)
    except subprocess.TimeoutExpired:  # it started: waiting for tasks
        worker.terminate()
        _, err = worker.communicate(timeout=30)
    aside = sorted(p.name for p in ledger.iterdir() if ".damaged-" in p.name)
    assert aside == [], err[-3000:]
    assert worker.returncode == 1, err[-3000:]
    said = [line for line in err.splitlines() if line.startswith("pullthrough:")]
    assert len(said) == 1 and said[0].startswith("pullthrough: cannot start: "), err[-3000:]
    assert "Traceback" not in err

    upstream.down()  # the cached files come from the store
    for wanted in cached:
        assert fetch(f"{proxy.url}/pulp/content/main/{wanted.filename}") == (200, wanted.data)
    upstream.up()
    stop(proxy)
    again = gunicorn_server(text)
    aside = sorted(p.name for p in ledger.iterdir() if ".damaged-" in p.name)
    assert [name.split(".")[0] for name in aside] == ["files"], aside
    assert status(again)["cache"]["files"] == 2, status(again)["cache"]
