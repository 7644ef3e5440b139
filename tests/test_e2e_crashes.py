"""A server killed outright (SIGKILL of every process: a power cut, the OOM killer) in the middle
of a long operation, then started again on the same data folder: its task does not stay
`running`, the repository has no version with a file missing, the store holds only complete
files and nothing left behind for good, and the operation run again completes.

(A single worker killed while it runs a sync: `test_e2e_sync.py`; killed during a download or
an upload: `test_e2e_fault_suite.py`.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from pullthrough.storage.locks import LockDir, stored_bytes
from support.api import Api, with_auth
from support.faults import big_wheel, kill_server, sound_store
from support.packages import build_wheel
from support.servers import Server, config_text, stored_files, temporary_files, wait_until
from support.tools import clean_env, run
from support.upstream import Upstream, UpstreamFile

pytestmark = pytest.mark.e2e

DEAD_AFTER = 2.5  # seconds a silent worker is presumed dead (the default is 30)
MIB = 1024 * 1024
FAST_REAPER = f"[tasks]\nheartbeat = 0.2\nworker_timeout = {DEAD_AFTER}\n"


def shelf_files(upstream: Upstream) -> dict[str, UpstreamFile]:
    """The upstream's shelf-reader files a remote's `shelf-reader<0.3` takes, by filename."""
    return {f.filename: f for f in upstream.files_for("shelf-reader") if f.version < "0.3"}


def unrecorded(api: Api, server: Server) -> set[str]:
    """Stored files (each checked complete) that no catalogued package has as its file or
    its metadata."""
    packages = api.packages()
    recorded = {p["sha256"] for p in packages} | {p["metadata_sha256"] for p in packages}
    return sound_store(server.data_dir) - recorded


def pullthrough(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "-m", "pullthrough.cli", *args], clean_env(), cwd, 120)


def catalogued(api: Api) -> dict[str, str]:
    """Every package the catalog lists: filename -> sha256."""
    return {p["filename"]: p["sha256"] for p in api.packages()}


HELD = "shelf_reader-0.2-py3-none-any.whl"  # the file a held sync waits for


def sync_held_at_last_file(
    api: Api, proxy: Server, upstream: Upstream, **remote_options: Any
) -> tuple[dict[str, Any], dict[str, Any], str, threading.Event]:
    """A sync (immediate, `shelf-reader<0.3`) of a new repository, held once it has stored
    every file but HELD, whose download has started: (the repository, the remote, the task,
    the event that lets the upstream send HELD)."""
    wanted = shelf_files(upstream)
    repo = api.repository("synced")
    remote = api.remote(
        "src",
        upstream.index_url,
        policy="immediate",
        includes=["shelf-reader<0.3"],
        **remote_options,
    )
    hold = threading.Event()
    upstream.held_files[HELD] = hold
    task = api.start("POST", repo["pulp_href"] + "sync/", json={"remote": remote["pulp_href"]})
    others = {f.sha256 for name, f in wanted.items() if name != HELD}
    assert wait_until(
        lambda: upstream.requests_for(wanted[HELD].path) and sound_store(proxy.data_dir) >= others,
        timeout=20,
    ), (api.get(task), sound_store(proxy.data_dir))
    return repo, remote, task, hold


@pytest.mark.slow
def test_a_server_killed_in_the_middle_of_a_sync_leaves_nothing_behind(
    gunicorn_server: Callable[..., Server], upstream: Upstream, tmp_path: Path
) -> None:
    """Two files of a sync are stored, the third is half downloaded when every process of the
    server is killed. Started again: the task is failed, no version was made, nothing is
    catalogued, the half download is gone; the sync run again (of the one file still wanted)
    completes; the files the killed sync stored and nothing records are the cache's, so its
    size limit takes them back (they are not kept for good)."""
    wanted = shelf_files(upstream)
    text = with_auth(config_text(upstream.index_url, tmp_path / "data", cache_max_size=1)) + (
        FAST_REAPER
    )
    proxy = gunicorn_server(text, workers=1)
    api = Api(proxy.url)
    repo, remote, task, hold = sync_held_at_last_file(
        api, proxy, upstream, max_retries=0, connect_timeout=2, sock_read_timeout=30
    )
    assert temporary_files(proxy.data_dir)  # the held file's download, in flight

    kill_server(proxy)
    hold.set()
    proxy = gunicorn_server(text, workers=1)
    api = Api(proxy.url)

    done = api.wait(task, timeout=DEAD_AFTER + 20)
    assert done["state"] == "failed" and "stopped responding" in done["error"]["description"]
    assert api.latest(repo).endswith("/versions/0/")
    assert catalogued(api) == {}
    assert wanted[HELD].sha256 not in sound_store(proxy.data_dir)  # only complete files
    assert wait_until(lambda: temporary_files(proxy.data_dir) == [], timeout=10), temporary_files(
        proxy.data_dir
    )

    # The sync again, of the one file still wanted: it completes, with that file
    api.call("PATCH", remote["pulp_href"], json={"includes": ["shelf-reader==0.2"]})
    again = api.wait(
        api.start("POST", repo["pulp_href"] + "sync/", json={"remote": remote["pulp_href"]})
    )
    assert again["state"] == "completed", again
    assert api.filenames(api.latest(repo)) == {HELD}
    # What the killed sync stored are artifacts no content uses: orphan cleanup takes them,
    # and their files, back (here with no protection time); the repository's file stays.
    assert unrecorded(api, proxy)
    cleanup = api.wait(
        api.start("POST", "/pulp/api/v3/orphans/cleanup/", json={"orphan_protection_time": 0})
    )
    assert cleanup["state"] == "completed", cleanup
    assert not unrecorded(api, proxy), unrecorded(api, proxy)
    assert wanted[HELD].sha256 in sound_store(proxy.data_dir)


def test_the_files_a_sync_stored_are_not_evicted_before_it_records_them(
    gunicorn_server: Callable[..., Server], upstream: Upstream, tmp_path: Path
) -> None:
    """A sync stores its files as it downloads them and records them at its end. Meanwhile
    a client caches a file over the cache's limit: the eviction that makes room takes none of
    the sync's files (they are the sync's artifacts, not the cache's), so none is fetched
    twice, and the cache's own copies are not evicted for files that stop counting once the
    sync records them."""
    wanted = shelf_files(upstream)
    text = with_auth(config_text(upstream.index_url, tmp_path / "data", cache_max_size=1))
    proxy = gunicorn_server(text, workers=1)
    api = Api(proxy.url)
    repo, _, task, hold = sync_held_at_last_file(api, proxy, upstream)
    others = {f.sha256 for name, f in wanted.items() if name != HELD}

    meta = upstream.files_for("meta-lib")[0]  # cached over the 1-byte limit: eviction runs
    with requests.get(f"{proxy.url}/pulp/content/main/{meta.filename}", timeout=15) as resp:
        assert resp.status_code == 200 and resp.content == meta.data
    assert wait_until(lambda: meta.sha256 not in sound_store(proxy.data_dir), timeout=10)
    assert sound_store(proxy.data_dir) >= others  # the sync's: not evicted

    hold.set()
    done = api.wait(task, timeout=60)
    assert done["state"] == "completed", done
    assert api.filenames(api.latest(repo)) == set(wanted)
    for f in wanted.values():  # each downloaded once: none evicted and fetched again
        assert len(upstream.requests_for(f.path)) == 1, f.filename


@pytest.mark.slow
def test_an_import_killed_in_the_middle_leaves_nothing_behind(
    live_server: Callable[..., Server], upstream: Upstream, tmp_path: Path
) -> None:
    """`pullthrough import` of a bundle of four 16 MiB wheels is killed (SIGKILL) once it has
    stored the first: nothing is catalogued, the store holds only complete files, and those it
    stored are artifacts no content uses (or, killed between storing one and recording its
    artifact, the cache's): orphan cleanup and the cache's size limit take them back. The
    import run again completes."""
    source = live_server(with_auth(config_text(upstream.index_url, tmp_path / "a")))
    api_a = Api(source.url)
    corp = api_a.repository("corp")
    wheels = [big_wheel(tmp_path / "wheels", f"big-{i}", "1.0", 16 * MIB, seed=i) for i in range(4)]
    for wheel in wheels:
        api_a.upload(wheel, corp)
    config_a = tmp_path / "a.toml"
    config_a.write_text(with_auth(config_text(upstream.index_url, tmp_path / "a")))
    bundle = tmp_path / "corp.tar"
    done = pullthrough(
        tmp_path, "export", "--repository", "corp", "--config", str(config_a), str(bundle)
    )
    assert done.returncode == 0, done.stderr

    config_b = tmp_path / "b.toml"
    config_b.write_text(
        with_auth(config_text(upstream.index_url, tmp_path / "b", cache_max_size=1))
    )
    importing = subprocess.Popen(
        [sys.executable, "-m", "pullthrough.cli", "import", str(bundle), "--config", str(config_b)],
        env=clean_env(),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_until(lambda: stored_files(tmp_path / "b"), timeout=60, interval=0.005)
        assert importing.poll() is None, "the import ended before it could be killed"
        os.kill(importing.pid, signal.SIGKILL)
    finally:
        importing.kill()
        importing.wait(timeout=15)

    target = live_server(config_b.read_text())
    api = Api(target.url)
    assert catalogued(api) == {}
    assert sound_store(target.data_dir)  # what it stored is complete
    meta = upstream.files_for("meta-lib")[0]
    assert requests.get(target.index() + "meta-lib/", timeout=15).status_code == 200
    with requests.get(f"{target.url}/pulp/content/main/{meta.filename}", timeout=15) as resp:
        assert resp.status_code == 200 and resp.content == meta.data
    cleanup = api.wait(
        api.start("POST", "/pulp/api/v3/orphans/cleanup/", json={"orphan_protection_time": 0})
    )
    assert cleanup["state"] == "completed", cleanup
    assert wait_until(lambda: not unrecorded(api, target), timeout=10), unrecorded(api, target)

    done = pullthrough(tmp_path, "import", str(bundle), "--config", str(config_b))
    assert done.returncode == 0, done.stderr
    assert set(catalogued(api)) == {w.name for w in wheels}
    assert not unrecorded(api, target)


@pytest.mark.slow
def test_a_server_killed_in_the_middle_of_an_orphan_cleanup_leaves_nothing_behind(
    gunicorn_server: Callable[..., Server], upstream: Upstream, tmp_path: Path
) -> None:
    """Orphan cleanup deletes two uploaded packages in no repository, then removes their files,
    each under its bytes' lock; a writer of the same bytes (this test) holds them, and the
    server is killed meanwhile. Started again: the task is failed, the packages are gone, and
    their files, recorded by nothing, are the cache's - its size limit takes them back."""
    text = with_auth(config_text(upstream.index_url, tmp_path / "data", cache_max_size=1))
    proxy = gunicorn_server(text + FAST_REAPER, workers=1)
    api = Api(proxy.url)
    uploaded = [build_wheel(tmp_path / "up", f"loose-{i}", "1.0") for i in range(2)]
    for wheel in uploaded:
        api.upload(wheel)
    shas = set(catalogued(api).values())
    assert len(shas) == 2 and shas <= sound_store(proxy.data_dir)
    locks = LockDir(proxy.data_dir / "locks")
    held = [stored_bytes(locks, sha) for sha in sorted(shas)]
    try:
        for lock in held:
            assert lock.acquire(timeout=5)
        task = api.start("POST", "orphans/cleanup/", json={"orphan_protection_time": 0})
        assert wait_until(lambda: not catalogued(api), timeout=15)  # committed; files next
        kill_server(proxy)
    finally:
        for lock in held:
            lock.release()
        locks.close()

    proxy = gunicorn_server(text + FAST_REAPER, workers=1)
    api = Api(proxy.url)
    done = api.wait(task, timeout=DEAD_AFTER + 20)
    assert done["state"] == "failed" and "stopped responding" in done["error"]["description"]
    assert catalogued(api) == {}
    meta = upstream.files_for("meta-lib")[0]
    assert requests.get(proxy.index() + "meta-lib/", timeout=15).status_code == 200
    with requests.get(f"{proxy.url}/pulp/content/main/{meta.filename}", timeout=15) as resp:
        assert resp.status_code == 200 and resp.content == meta.data
    assert wait_until(lambda: not unrecorded(api, proxy), timeout=10), unrecorded(api, proxy)
