"""Upgrades in place, and releases side by side on one catalog.

An old data folder is built here as the old release left it, not by running that release (its
code is in git's history only, and starting it costs more than this whole test): the catalog is
migrated to the old release's last migration, and the rows that release wrote are inserted into
the tables as they were then (reflected from the database, so no column of today's models is
filled in), with the values it wrote (read from a data folder the old release made: uploads,
pull-through copies, a token, labels); its files are where it stored them, its cache ledger in
the format it wrote (unchanged since). Then today's server starts on it.

A catalog a newer release has migrated (its `alembic_version` names a migration this code does
not have) stands for a node started by an older release after a newer one upgraded the shared
catalog: a rolling upgrade of a cluster, or a downgrade of one host.
"""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import diskcache
import pytest
import requests
from alembic import command
from sqlalchemy import MetaData, insert

from pullthrough.catalog.db import alembic_config, database_url, make_engine
from pullthrough.config import load_settings
from pullthrough.core.models import DistFile
from pullthrough.services.container import prepare_data
from pullthrough.services.remote_pages import copy_key
from pullthrough.storage.ledger import CacheLedger
from support.api import Api, legacy_upload, with_auth
from support.faults import gone, kill_worker, workers
from support.packages import build_wheel
from support.servers import STARTS, Server, config_text, free_port, stored_files, wait_until
from support.tools import clean_env, run_pip
from support.upstream import Upstream, extract_metadata

pytestmark = pytest.mark.e2e

NEWER = "0099"  # a migration of a release after this one


def stop_server(server: Server) -> None:
    """Stop a server of `gunicorn_server` (SIGTERM: as a service manager does) and wait for it."""
    pid = server.pid
    assert pid is not None
    os.kill(pid, signal.SIGTERM)
    assert wait_until(lambda: gone(pid), timeout=30), "the server did not stop"


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
    # its replacement got past the catalog's check (a boot takes seconds more under load: a
    # fixed wait read the log before it), then has booted, or failed to (gunicorn acts at once)
    log = tmp_path / "server-0.log"
    assert wait_until(lambda: "a newer node has upgraded it" in log.read_text(), timeout=60)
    time.sleep(2)

    assert len(workers(master)) == 2, "the server stopped: its new worker failed to boot"
    for _ in range(6):
        assert requests.get(page, timeout=30).status_code == 200


OLD = "0013"  # before artifacts, content labels, chunked uploads, repository blocklists (0014-0018)
OLD_TOKEN = "pt_0123456789abc.an-old-release-made-this-secret"
CREATED = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def _old_package(path: Path, *, origin: str, uploaded_by: str | None) -> dict[str, Any]:
    """A package row as release 0013 wrote it (an upload's or a pull-through copy's)."""
    name, version = path.name.split("-")[:2]
    data = path.read_bytes()
    metadata = extract_metadata(path.name, data)
    return {
        "id": str(uuid.uuid4()),
        "filename": path.name,
        "name": name.replace("_", "-"),
        "version": version,
        "packagetype": "bdist_wheel",
        "python_version": "py3",
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "requires_python": None,
        "metadata_json": {"name": name.replace("_", "-"), "version": version,
                          "metadata_version": "2.1", "summary": None, "requires_dist": [],
                          "requires_python": None, "classifiers": [], "project_urls": {}},
        "metadata_sha256": hashlib.sha256(metadata).hexdigest() if origin == "upload" else None,
        "yanked": False,
        "yanked_reason": None,
        "upload_time": CREATED,
        "origin": origin,
        "pulp_created": CREATED,
        "remote_url": None,
        "remote_id": None,
        "policy": "immediate",
        "uploaded_by": uploaded_by,
    }  # fmt: skip


def _store(data_dir: Path, data: bytes) -> None:
    sha = hashlib.sha256(data).hexdigest()
    path = data_dir / "artifacts" / sha[:2] / sha[2:4] / sha
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def old_data_dir(data_dir: Path, uploaded: Path, orphan: Path, cached: Path) -> dict[str, str]:
    """A data folder as release 0013 left it: a repository `corp` (labelled) whose version 1
    holds `uploaded`, a private distribution of it, `orphan` uploaded into no repository,
    `cached` a pull-through copy (in the cache ledger), a token reading corp. Its ids."""
    data_dir.mkdir(parents=True)
    engine = make_engine(database_url("", data_dir))
    try:
        command.upgrade(alembic_config(engine), OLD)
        old = MetaData()
        old.reflect(engine)
        repo, dist = str(uuid.uuid4()), str(uuid.uuid4())
        packages = [
            _old_package(uploaded, origin="upload", uploaded_by="admin"),
            _old_package(orphan, origin="upload", uploaded_by="admin"),
            _old_package(cached, origin="cache", uploaded_by=None),
        ]
        with engine.begin() as conn:
            conn.execute(
                insert(old.tables["repositories"]).values(
                    id=repo,
                    name="corp",
                    description=None,
                    retain_repo_versions=None,
                    remote_id=None,
                    autopublish=False,
                    pulp_labels={"team": "a"},
                    latest_number=1,
                    pulp_created=CREATED,
                    pulp_last_updated=CREATED,
                )
            )
            conn.execute(
                insert(old.tables["repository_versions"]),
                [
                    {
                        "id": str(uuid.uuid4()),
                        "repository_id": repo,
                        "number": n,
                        "base_number": n - 1 if n else None,
                        "pulp_created": CREATED,
                    }
                    for n in (0, 1)
                ],
            )
            conn.execute(insert(old.tables["packages"]), packages)
            conn.execute(
                insert(old.tables["repository_content"]).values(
                    repository_id=repo,
                    package_id=packages[0]["id"],
                    version_added=1,
                    version_removed=None,
                )
            )
            conn.execute(
                insert(old.tables["distributions"]).values(
                    id=dist,
                    name="corp",
                    base_path="corp",
                    repository_id=repo,
                    repository_version_id=None,
                    remote_id=None,
                    allow_uploads=True,
                    hidden=False,
                    merge_remote=False,
                    pulp_labels={},
                    pulp_created=CREATED,
                    pulp_last_updated=CREATED,
                    publication_id=None,
                    blocklist=[],
                    block_malicious=True,
                    hold_advisories=False,
                    private=True,
                    configured={},
                )
            )
            conn.execute(insert(old.tables["api_tokens"]).values(
                id=str(uuid.uuid4()), name="ci", key=OLD_TOKEN.partition(".")[0],
                digest=hashlib.sha256(OLD_TOKEN.encode()).hexdigest(),
                scopes=["read:corp", "upload:corp"], expires_at=None, revoked_at=None,
                pulp_created=CREATED))  # fmt: skip
    finally:
        engine.dispose()
    for path in (uploaded, orphan, cached):
        _store(data_dir, path.read_bytes())
    for path in (uploaded, orphan):  # an upload's PEP 658 metadata
        _store(data_dir, extract_metadata(path.name, path.read_bytes()))
    ledger = CacheLedger(data_dir / "ledger", max_size=0)
    try:
        ledger.record(packages[2]["sha256"], packages[2]["size"])
    finally:
        ledger.close()
    return {"repository": repo, "orphan": packages[1]["sha256"], "cached": packages[2]["sha256"]}


def _cache_metrics(url: str) -> dict[str, float]:
    text = requests.get(f"{url}/metrics", timeout=30).text
    return {
        name: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        for name in ("pullthrough_cache_size_bytes", "pullthrough_cache_files")
        if line.startswith(name + " ")
    }


@pytest.mark.slow
def test_a_data_folder_of_release_0013_serves_and_works_after_the_upgrade(
    upstream: Upstream, gunicorn_server: Callable[..., Server], tmp_path: Path
) -> None:
    """Today's server on a data folder release 0013 left (SQLite, local disk): the upload, the
    cached copy and the token still work for pip and the API, the cache counts what it did, and
    what came since works on the old rows - labels on old content, a repository blocklist on an
    old repository, uploads, orphan cleanup."""
    cached = next(
        p for p in upstream.files_for("shelf-reader") if p.filename.endswith("0.2-py3-none-any.whl")
    )
    (tmp_path / cached.filename).write_bytes(cached.data)
    uploaded = build_wheel(tmp_path / "dist", "corp-lib", "1.0")
    ids = old_data_dir(
        tmp_path / "data",
        uploaded,
        build_wheel(tmp_path / "dist", "orphan-lib", "1.0"),
        tmp_path / cached.filename,
    )
    server = gunicorn_server(with_auth(config_text(upstream.index_url, tmp_path / "data")))
    api = Api(server.url)

    reader = server.url.replace("http://", f"http://__token__:{OLD_TOKEN}@")
    for index, project in ((f"{reader}/pypi/corp/simple/", "corp-lib==1.0"),
                           (server.index(), "shelf-reader==0.2")):  # fmt: skip
        run_pip(["download", "--no-deps", "-d", str(tmp_path / "got"), "--index-url", index,
                 project])  # fmt: skip
    assert not upstream.requests_for("/files/", server="files"), "the cached copy was not used"
    assert requests.get(f"{server.url}/pypi/corp/simple/", timeout=30).status_code == 401
    assert _cache_metrics(server.url) == {
        "pullthrough_cache_size_bytes": len(cached.data),
        "pullthrough_cache_files": 1,
    }

    shown = {p["filename"]: p for p in api.packages()}
    assert set(shown) == {uploaded.name, "orphan_lib-1.0-py3-none-any.whl", cached.filename}
    assert shown[uploaded.name]["pulp_labels"] == {}
    assert shown[uploaded.name]["uploaded_by"] == "admin"
    api.call(
        "POST", shown[uploaded.name]["pulp_href"] + "set_label/", json={"key": "qa", "value": "ok"}
    )
    assert api.packages(pulp_label_select="qa=ok")[0]["filename"] == uploaded.name
    repo = api.get(f"repositories/python/python/{ids['repository']}/")
    assert repo["pulp_labels"] == {"team": "a"}
    api.call("POST", repo["pulp_href"] + "blocklist_entries/", json={"name": "banned"})
    newer = build_wheel(tmp_path / "dist", "corp-lib", "1.1")
    with newer.open("rb") as fh:
        resp = requests.post(f"{server.url}/pypi/corp/legacy/", data={":action": "file_upload"},
                             files={"content": (newer.name, fh)}, auth=("__token__", OLD_TOKEN),
                             timeout=30)  # fmt: skip
    assert resp.status_code == 200, resp.text
    assert api.filenames(api.latest(repo)) == {uploaded.name, newer.name}

    api.run("POST", "orphans/cleanup/", json={"orphan_protection_time": 0})
    left = {p["filename"] for p in api.packages()}
    assert "orphan_lib-1.0-py3-none-any.whl" not in left
    assert {uploaded.name, newer.name} <= left
    stored = {p.name for p in stored_files(server.data_dir)}
    assert ids["orphan"] not in stored
    assert hashlib.sha256(uploaded.read_bytes()).hexdigest() in stored


@pytest.mark.slow
@pytest.mark.parametrize("start", STARTS)
def test_a_page_an_older_release_rendered_is_rendered_again_after_the_upgrade(
    gunicorn_server: Callable[..., Server], tmp_path: Path, start: str
) -> None:
    """A repository's page rendering, shared by the workers, stays valid until the catalog
    changes; one an older release made must not outlive it: release aa94a6a's JSON page named
    an upload as its METADATA spells it (`Corp_Lib`), and after the upgrade to a release that
    normalizes it (PEP 691) the old rendering went on being sent until the next upload. The
    older release's entry is made here by editing this release's rendering into its bytes (the
    entry's format is the same)."""
    text = with_auth(
        f'[server]\ndata_dir = "{tmp_path / "data"}"\n'
        '[[distributions]]\nname = "corp"\nbase_path = "corp"\n'
    )
    server = gunicorn_server(text, start=start)
    api = Api(server.url)
    repo = api.repository("corp")
    corp = api.one("distributions/python/pypi/", name="corp")
    api.run(
        "PATCH", corp["pulp_href"], json={"repository": repo["pulp_href"], "allow_uploads": True}
    )
    assert legacy_upload(server.url, "corp", build_wheel(tmp_path, "Corp_Lib", "1.0")).ok
    assert server.json_page("corp", "corp-lib")["name"] == "corp-lib"
    key = "corp\0corp-lib\0v1+json"
    renders = diskcache.Cache(str(tmp_path / "data" / "renders"))
    try:
        assert wait_until(lambda: renders.get(key) is not None)
        stop_server(server)
        generation, expires_at, done = renders.get(key)
        older = done.body.replace(b'"name":"corp-lib"', b'"name":"Corp_Lib"')
        assert older != done.body
        renders.set(key, (generation, expires_at, replace(done, body=older, variants={})))
    finally:
        renders.close()

    upgraded = gunicorn_server(text, start=start)
    assert upgraded.json_page("corp", "corp-lib")["name"] == "corp-lib"


@pytest.mark.slow
def test_an_upstream_page_an_older_release_read_is_read_again_after_the_upgrade(
    upstream: Upstream, gunicorn_server: Callable[..., Server], tmp_path: Path
) -> None:
    """The copy of an upstream page kept in the data folder holds what the release that read it
    made of it, and a revalidation answered 304 (the upstream's page unchanged, most pages of
    PyPI) kept that for good: release aa94a6a offered an HTML page's 'Back to index' link as a
    file (a 404 at our end), and after the upgrade to a release that does not, the link stayed
    on the page. Its first revalidation after the upgrade now asks for the page whole. The
    older release's copy is made here from this release's, with that link added (the copy's
    format is the same)."""
    text = with_auth(config_text(upstream.index_url, tmp_path / "data", cache_index_ttl="1s"))
    server = gunicorn_server(text)
    files = server.page_files("main", "shelf-reader")
    key = copy_key("page", upstream.project_url("shelf-reader"))
    pages = diskcache.Cache(str(tmp_path / "data" / "pages"))
    try:
        assert wait_until(lambda: pages.get(key) is not None)
        stop_server(server)
        copy = pages.get(key)
        link = DistFile("Back to index", upstream.index_url)
        older = replace(copy.value, files=(*copy.value.files, link))
        pages.set(key, replace(copy, value=older, read_by="an older release"))
    finally:
        pages.close()

    upgraded = gunicorn_server(text)
    time.sleep(1.5)  # past the copy's TTL: it is revalidated
    upstream.clear_log()
    assert upgraded.page_files("main", "shelf-reader") == files
    asked = upstream.requests_for("/simple/shelf-reader/")
    assert asked and all(r.header("If-None-Match") is None for r in asked)  # whole
