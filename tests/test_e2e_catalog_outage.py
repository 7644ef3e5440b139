"""The PostgreSQL catalog out of reach: requests that need it get 503 with Retry-After (which
clients and a front's proxy_next_upstream retry), not 500; service resumes when it is back."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, make_url, text

from support.api import PASSWORD, with_auth
from support.postgres import private_database
from support.servers import Server, config_text, wait_until
from support.upstream import Upstream

pytestmark = pytest.mark.e2e

WHEEL = "shelf_reader-0.2-py3-none-any.whl"


@pytest.fixture
def database(postgres_url: str) -> Iterator[str]:
    with private_database(postgres_url) as url:
        yield url


def _connections(admin_url: str, name: str, *, allowed: bool) -> None:
    """Let clients connect to database `name`, or refuse them and end the open sessions (as
    a stopped server does, for this database only)."""
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allowed).lower()}'))
            if not allowed:
                ended = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"
                conn.execute(text(ended), {"n": name})
    finally:
        admin.dispose()


def test_an_unreachable_catalog_is_a_503_with_retry_after(
    upstream: Upstream,
    postgres_url: str,
    database: str,
    live_server: Callable[..., Server],
    tmp_path: Path,
) -> None:
    text_ = config_text(upstream.index_url, tmp_path / "d")
    text_ = text_.replace("[server]\n", f'[server]\ndatabase_url = "{database}"\n', 1)
    server = live_server(with_auth(text_))
    auth = ("admin", PASSWORD)
    urls = {
        "cold file": f"{server.url}/pulp/content/main/{WHEEL}",
        "REST API": f"{server.url}/pulp/api/v3/remotes/python/python/",
        "status": f"{server.url}/pulp/api/v3/status/",
    }
    assert requests.get(urls["REST API"], auth=auth, timeout=30).status_code == 200
    name = make_url(database).database
    assert name
    _connections(postgres_url, name, allowed=False)
    try:
        for what, url in urls.items():
            resp = requests.get(url, auth=auth, timeout=30)
            assert resp.status_code == 503, (what, resp.status_code, resp.text[:200])
            assert resp.headers["Retry-After"] == "10", what
            assert "catalog" in resp.text, what
    finally:
        _connections(postgres_url, name, allowed=True)
    for what, url in urls.items():
        assert requests.get(url, auth=auth, timeout=30).status_code == 200, what


def _children(pid: int) -> list[int]:
    """A process's children (gunicorn's workers, of its master), from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def test_a_worker_replaced_during_an_outage_does_not_stop_the_server(
    upstream: Upstream,
    postgres_url: str,
    database: str,
    gunicorn_server: Callable[..., Server],
    tmp_path: Path,
) -> None:
    """A gunicorn worker that dies while the catalog is out of reach (killed, timed out, out of
    memory) is replaced by one that waits for the catalog: the server goes on (503 meanwhile)
    and serves again once the catalog is back, without a restart. gunicorn stops the whole
    server when a worker fails to boot."""
    text_ = config_text(upstream.index_url, tmp_path / "d")
    text_ = text_.replace("[server]\n", f'[server]\ndatabase_url = "{database}"\n', 1)
    server = gunicorn_server(with_auth(text_))
    url = f"{server.url}/pulp/content/main/{WHEEL}"
    master = server.pid
    assert master is not None
    workers = _children(master)
    assert len(workers) == 2
    name = make_url(database).database
    assert name
    _connections(postgres_url, name, allowed=False)
    try:
        os.kill(workers[0], signal.SIGKILL)
        assert wait_until(lambda: len(set(_children(master)) - set(workers)) == 1)
        # its replacement starts (1-2 s here) and finds no catalog; gunicorn acts at once on a
        # worker that fails to start
        time.sleep(6)
        with requests.get(url, timeout=30) as resp:
            assert resp.status_code == 503, resp.text[:200]
    finally:
        _connections(postgres_url, name, allowed=True)

    def served() -> bool:
        try:
            return all(requests.get(url, timeout=30).status_code == 200 for _ in range(6))
        except requests.ConnectionError:  # the server has stopped
            return False

    assert wait_until(served, timeout=15)
    assert len(_children(master)) == 2
