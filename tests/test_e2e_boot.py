"""Start-up: any number of processes opening a new or existing catalog at once all come up.

The one-time setup (journal mode, migrations, configured remotes, the admin password) runs once
under a lock; a process that finds the catalog busy waits and retries instead of dying.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from pullthrough.config import load_settings
from pullthrough.services.container import build_services
from support.servers import Server, config_text, free_port
from support.tools import clean_env

pytestmark = pytest.mark.e2e

PROCESSES = 6
TIMEOUT = 120  # seconds for every process of a round

BOOT = textwrap.dedent(
    """
    import os, sys, time
    from pullthrough.catalog.models import Repository
    from pullthrough.config import load_settings
    from pullthrough.services.container import build_services

    config, ready, name = sys.argv[1], sys.argv[2], sys.argv[3]
    settings = load_settings(config, environ={})
    open(f"{ready}/{name}.ready", "w").close()  # imported: waiting for the others
    while not os.path.exists(f"{ready}/go"):  # then all open the catalog at once
        time.sleep(0.001)
    services = build_services(settings)
    with services.catalog.session() as session:
        session.add(Repository(name=name))
    services.close()
    """
)


def boot_together(
    config: Path, count: int, meanwhile: Callable[[], None] = lambda: None
) -> list[subprocess.CompletedProcess[str]]:
    """Start `count` processes, let them open the catalog at the same moment once all have
    imported the package, then run `meanwhile` while they start up; their results."""
    ready = config.parent / f"{config.stem}-ready"
    ready.mkdir()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", BOOT, str(config), str(ready), f"boot-{i}"],
            env=clean_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(count)
    ]
    deadline = time.monotonic() + TIMEOUT
    while len(list(ready.glob("*.ready"))) < count and time.monotonic() < deadline:
        if any(proc.poll() is not None for proc in procs):
            break  # one died before it was ready: its error is reported below
        time.sleep(0.01)
    (ready / "go").touch()
    meanwhile()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=TIMEOUT)
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return results


def repository_names(config: Path) -> set[str]:
    services = build_services(load_settings(config, environ={}))
    try:
        with services.catalog.session() as session:
            from pullthrough.catalog.models import Repository

            return set(
                session.scalars(Repository.__table__.select().with_only_columns(Repository.name))
            )
    finally:
        services.close()


def write_config(tmp_path: Path, name: str) -> Path:
    config = tmp_path / f"{name}.toml"
    config.write_text(config_text("http://127.0.0.1:9/", tmp_path / name))
    return config


@pytest.mark.parametrize("round", range(3))
def test_processes_opening_a_new_catalog_at_once_all_start(tmp_path: Path, round: int) -> None:
    config = write_config(tmp_path, f"fresh-{round}")
    results = boot_together(config, PROCESSES)
    failed = [r.stderr[-2000:] for r in results if r.returncode != 0]
    assert failed == []
    assert repository_names(config) == {f"boot-{i}" for i in range(PROCESSES)}


def test_a_busy_catalog_at_start_is_waited_for(tmp_path: Path) -> None:
    """A catalog that is not in WAL mode (restored from a backup, say) while another program
    writes to it: switching the journal mode fails at once without waiting, whatever the busy
    timeout; the processes starting then retry until the writer is done."""
    config = write_config(tmp_path, "restored")
    build_services(load_settings(config, environ={})).close()
    path = tmp_path / "restored" / "catalog.sqlite3"
    with sqlite3.connect(path, isolation_level=None) as conn:
        assert conn.execute("PRAGMA journal_mode=DELETE").fetchone() == ("delete",)
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("CREATE TABLE backup_marker (x)")

    def write_for_a_while() -> None:  # the processes are starting now
        time.sleep(2.0)
        writer.execute("COMMIT")

    try:
        results = boot_together(config, 4, write_for_a_while)
    finally:
        writer.close()
    failed = [r.stderr[-2000:] for r in results if r.returncode != 0]
    assert failed == []
    assert any("busy at start-up" in r.stderr for r in results)  # they did meet the writer
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert repository_names(config) == {f"boot-{i}" for i in range(4)}


@pytest.mark.slow
def test_serve_with_four_workers_on_a_new_data_folder_starts_every_worker(
    gunicorn_server: Callable[..., Server], tmp_path: Path
) -> None:
    for round in range(3):
        server = gunicorn_server(
            config_text(f"http://127.0.0.1:{free_port()}/", tmp_path / f"data-{round}"), workers=4
        )
        deadline = time.monotonic() + 30
        online: list[object] = []
        while len(online) < 4 and time.monotonic() < deadline:
            status = requests.get(f"{server.url}/pulp/api/v3/status/", timeout=10).json()
            online = status["online_workers"]
            time.sleep(0.2)
        assert len(online) == 4, online
