"""Upgrades in place, and releases side by side on one catalog.

A catalog a newer release has migrated (its `alembic_version` names a migration this code does
not have) stands for a node started by an older release after a newer one upgraded the shared
catalog: a rolling upgrade of a cluster, or a downgrade of one host.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from pullthrough.config import load_settings
from pullthrough.services.container import prepare_data
from support.api import with_auth
from support.faults import kill_worker, workers
from support.servers import Server, config_text, free_port, wait_until
from support.tools import clean_env
from support.upstream import Upstream

pytestmark = pytest.mark.e2e

NEWER = "0099"  # a migration of a release after this one


def migrated_by_a_newer_release(data_dir: Path) -> None:
    """What a newer release's start leaves in the catalog: its own migration as the newest."""
    with sqlite3.connect(data_dir / "catalog.sqlite3") as db:
        db.execute("CREATE TABLE newer_release_things (id INTEGER PRIMARY KEY)")
        db.execute("UPDATE alembic_version SET version_num = ?", (NEWER,))


def test_a_catalog_a_newer_release_migrated_is_refused_at_start_with_why(tmp_path: Path) -> None:
    """Started on a catalog a newer release upgraded, `pullthrough serve` stops at once with one
    line saying so and what to do - not a traceback - and leaves the catalog as it found it."""
    config = tmp_path / "pullthrough.toml"
    config.write_text(config_text(f"http://127.0.0.1:{free_port()}/", tmp_path / "data"))
    prepare_data(load_settings(config, environ={}))
    migrated_by_a_newer_release(tmp_path / "data")

    proc = subprocess.run(
        [sys.executable, "-m", "pullthrough.cli", "serve", "--config", str(config)]
        + ["--bind", f"127.0.0.1:{free_port()}", "--workers", "1"],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )

    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert f"the catalog is at migration {NEWER}" in proc.stderr
    assert "a newer release" in proc.stderr
    with sqlite3.connect(tmp_path / "data" / "catalog.sqlite3") as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [(NEWER,)]


def test_a_worker_restarted_after_a_newer_node_migrated_the_catalog_keeps_its_node_up(
    upstream: Upstream, gunicorn_server: Callable[..., Server], tmp_path: Path
) -> None:
    """During a rolling upgrade the first node of the new release migrates the shared catalog
    while the old nodes serve. A worker an old node starts then (one killed, timed out, out of
    memory) goes on as that node's other workers do: gunicorn stops a whole server whose worker
    fails to boot, and the old node would drop every request it had until it is replaced."""
    server = gunicorn_server(with_auth(config_text(upstream.index_url, tmp_path / "data")))
    page = f"{server.url}/pypi/main/simple/shelf-reader/"
    assert requests.get(page, timeout=30).status_code == 200
    master = server.pid
    assert master is not None
    before = workers(master)
    migrated_by_a_newer_release(server.data_dir)

    kill_worker(master, before[0])
    assert wait_until(lambda: len(set(workers(master)) - set(before)) == 1, timeout=15)
    time.sleep(5)  # its replacement has booted, or failed to (gunicorn acts on that at once)

    assert len(workers(master)) == 2, "the server stopped: its new worker failed to boot"
    for _ in range(6):
        assert requests.get(page, timeout=30).status_code == 200
    assert "a newer node has upgraded it" in (tmp_path / "server-0.log").read_text()
