"""Sync from a remote, publications and orphan cleanup (as in Pulp's python plugin), end to end:
a real upstream on loopback, the proxy as a real server, background tasks polled over the API."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from support.api import Api, report, with_auth
from support.packages import build_wheel
from support.servers import Server, config_text, stored_files, wait_until
from support.tools import make_venv, run_pip
from support.upstream import Upstream

pytestmark = pytest.mark.e2e

WHL_01 = "shelf_reader-0.1-py3-none-any.whl"
SDIST_01 = "shelf_reader-0.1.tar.gz"
WHL_02 = "shelf_reader-0.2-py3-none-any.whl"
WHL_03 = "shelf_reader-0.3-py3-none-any.whl"  # yanked upstream, requires-python >=3.8
WHL_RC = "shelf_reader-0.4rc1-py3-none-any.whl"
WIN_WHL = "winonly-1.0-py3-none-win_amd64.whl"
WIN_SDIST = "winonly-1.0.tar.gz"
APP_WHL = "app_with_dep-1.0-py3-none-any.whl"
META_WHL = "meta_lib-2.0-py3-none-any.whl"  # upstream serves PEP 658 metadata for it


def start(
    live_server: Callable[..., Server], upstream: Upstream, tmp_path: Path
) -> tuple[Server, Api]:
    proxy = live_server(with_auth(config_text(upstream.index_url, tmp_path / "data")))
    return proxy, Api(proxy.url)


def make_remote(
    api: Api, upstream: Upstream, name: str = "src", **fields: object
) -> dict[str, Any]:
    fields.setdefault("policy", "immediate")
    return api.remote(
        name, upstream.index_url, max_retries=0, connect_timeout=2, sock_read_timeout=5, **fields
    )


def downloaded(upstream: Upstream) -> list[str]:
    """Names of the files GET from the upstream's files server, in order."""
    return [
        r.path.rsplit("/", 1)[1]
        for r in upstream.requests_for("/files/", server="files", method="GET")
    ]


def sha(upstream: Upstream, filename: str) -> str:
    return next(
        f.sha256
        for project in ("shelf-reader", "winonly", "app-with-dep", "meta-lib")
        for f in upstream.files_for(project)
        if f.filename == filename
    )


def stored(proxy: Server) -> set[str]:
    return {p.name for p in stored_files(proxy.data_dir)}


def get(url: str, **kwargs: Any) -> requests.Response:
    with requests.get(url, timeout=30, **kwargs) as resp:
        _ = resp.content
    return resp


def version_number(href: str) -> int:
    return int(href.rstrip("/").rsplit("/", 1)[1])


# ---- immediate sync and the remote's filters --------------------------------------------------


def test_immediate_sync_holds_and_downloads_exactly_the_included_files(
    upstream: Upstream, live_server: Callable[..., Server], tmp_path: Path
) -> None:
    proxy, api = start(live_server, upstream, tmp_path)
    repo = api.repository("synced")
    remote = make_remote(api, upstream, includes=["shelf-reader<0.3"])
    before = stored(proxy)

    task = api.sync(repo, remote)

    assert task["state"] == "completed", task
    expected = {WHL_01, SDIST_01, WHL_02}
    assert task["created_resources"] == [repo["pulp_href"] + "versions/1/"]
    assert api.latest(repo) == repo["pulp_href"] + "versions/1/"
    assert api.filenames(task["created_resources"][0]) == expected
    assert sorted(downloaded(upstream)) == sorted(expected)  # each once, nothing else
    assert {sha(upstream, f) for f in expected} <= stored(proxy) - before
    packages = {p["filename"]: p for p in api.packages(repository_version=api.latest(repo))}
    assert all(p["origin"] == "sync" for p in packages.values())
    assert all(p["sha256"] == sha(upstream, name) for name, p in packages.items())
    assert report(task, "sync.downloading.artifacts")["done"] == 3
    assert report(task, "sync.downloading.metadata")["done"] == 1
    assert report(task, "sync.associating.content")["done"] == 3
    changed = report(task, "sync.changed_projects")
    assert (changed["done"], changed["total"]) == (1, 1)
    assert {r["state"] for r in task["progress_reports"]} == {"completed"}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        pytest.param(
            {"includes": ["shelf-reader"]}, {WHL_01, SDIST_01, WHL_02, WHL_03}, id="no-prereleases"
        ),
        pytest.param(
            {"includes": ["shelf-reader"], "prereleases": True},
            {WHL_01, SDIST_01, WHL_02, WHL_03, WHL_RC},
            id="prereleases",
        ),
        pytest.param(
            {"includes": ["shelf-reader<0.3"], "package_types": ["bdist_wheel"]},
            {WHL_01, WHL_02},
            id="package-types",
        ),
        pytest.param(
            {"includes": ["winonly"], "exclude_platforms": ["windows"]},
            {WIN_SDIST},
            id="exclude-platforms",
        ),
        pytest.param(
            {"includes": ["shelf-reader<0.3"], "keep_latest_packages": 1},
            {WHL_02},
            id="keep-latest",
        ),
        pytest.param(
            {"includes": ["shelf-reader"], "excludes": ["shelf-reader==0.1"]},
            {WHL_02, WHL_03},
            id="excludes-specifier",
        ),
        pytest.param(
            {"excludes": ["winonly", "shelf-reader>=0.2"]},
            {WHL_01, SDIST_01, APP_WHL, META_WHL},
            id="whole-list-minus-excludes",
        ),
    ],
)
def test_sync_applies_the_remote_filters(
    upstream: Upstream,
    live_server: Callable[..., Server],
    tmp_path: Path,
    fields: dict[str, Any],
    expected: set[str],
) -> None:
    proxy, api = start(live_server, upstream, tmp_path)
    repo = api.repository("synced")
    remote = make_remote(api, upstream, **fields)

    task = api.sync(repo, remote)

    assert task["state"] == "completed", task
    assert api.filenames(api.latest(repo)) == expected
    assert sorted(downloaded(upstream)) == sorted(expected)
    assert {sha(upstream, f) for f in expected} <= stored(proxy)
    listed = upstream.requests_for("/simple/", server="index", method="GET")
    asked_for_the_list = any(r.path == "/simple/" for r in listed)
    assert asked_for_the_list == ("includes" not in fields)


def test_resync_without_upstream_change_makes_no_version(
    upstream: Upstream, live_server: Callable[..., Server], tmp_path: Path
) -> None:
    proxy, api = start(live_server, upstream, tmp_path)
    repo = api.repository("synced")
    remote = make_remote(api, upstream, includes=["shelf-reader<0.3"])
    first = api.sync(repo, remote)
    assert first["state"] == "completed", first
    v1 = api.latest(repo)
    upstream.clear_log()

    again = api.sync(repo, remote)

    assert again["state"] == "completed", again
    assert again["created_resources"] == []
    assert report(again, "sync.changed_projects")["done"] == 0
    assert api.latest(repo) == v1
    assert downloaded(upstream) == []

    new = upstream.add_file("shelf-reader", build_wheel(tmp_path / "up", "shelf-reader", "0.2.1"))
    upstream.clear_log()
    third = api.sync(repo, remote)

    assert third["state"] == "completed", third
    assert third["created_resources"] == [repo["pulp_href"] + "versions/2/"]
    assert report(third, "sync.changed_projects")["done"] == 1
    assert api.filenames(third["created_resources"][0]) == {WHL_01, SDIST_01, WHL_02, new.filename}
    assert downloaded(upstream) == [new.filename]  # only the new file
    assert new.sha256 in stored(proxy)


def test_mirror_drops_what_the_remote_dropped_additive_keeps_it(
    upstream: Upstream, live_server: Callable[..., Server], tmp_path: Path
) -> None:
    _, api = start(live_server, upstream, tmp_path)
    repo = api.repository("synced")
    remote = make_remote(api, upstream, includes=["shelf-reader<0.3"])
    assert api.sync(repo, remote)["state"] == "completed"
    v1 = api.latest(repo)

    upstream.remove_file(SDIST_01)
    additive = api.sync(repo, remote)
    assert additive["state"] == "completed", additive
    assert additive["created_resources"] == []
    assert api.filenames(api.latest(repo)) == {WHL_01, SDIST_01, WHL_02}

    mirrored = api.sync(repo, remote, mirror=True)
    assert mirrored["state"] == "completed", mirrored
    assert mirrored["created_resources"] == [repo["pulp_href"] + "versions/2/"]
    assert api.filenames(api.latest(repo)) == {WHL_01, WHL_02}
    assert api.filenames(v1) == {WHL_01, SDIST_01, WHL_02}  # versions are immutable

    # A mirror sync also takes out what was not synced from this remote at all.
    extra = build_wheel(tmp_path / "ours", "private-thing", "1.0")
    api.upload(extra, repo)
    assert api.filenames(api.latest(repo)) == {WHL_01, WHL_02, extra.name}
    assert api.sync(repo, remote, mirror=True)["state"] == "completed"
    assert api.filenames(api.latest(repo)) == {WHL_01, WHL_02}


# ---- download policies --------------------------------------------------------------------------


def test_on_demand_fetches_a_file_once_then_serves_it_without_the_upstream(
    upstream: Upstream, live_server: Callable[..., Server], tmp_path: Path
) -> None:
    proxy, api = start(live_server, upstream, tmp_path)
    repo = api.repository("lazy")
    remote = make_remote(api, upstream, policy="on_demand", includes=["shelf-reader<0.3"])
    task = api.sync(repo, remote)
    assert task["state"] == "completed", task
    assert downloaded(upstream) == []
    assert api.filenames(api.latest(repo)) == {WHL_01, SDIST_01, WHL_02}
    api.distribution("lazy", repository=repo["pulp_href"])
    assert proxy.page_files("lazy", "shelf-reader") == {WHL_01, SDIST_01, WHL_02}
    assert downloaded(upstream) == []
    index = f"{proxy.url}/pypi/lazy/simple/"

    run_pip(["download", "--no-deps", "-d", str(tmp_path / "dl"), "-i", index, "shelf-reader"])

    assert (
        sha(upstream, WHL_02) == hashlib.sha256((tmp_path / "dl" / WHL_02).read_bytes()).hexdigest()
    )
    assert downloaded(upstream) == [WHL_02]
    assert sha(upstream, WHL_02) in stored(proxy)

    upstream.down()
    target = tmp_path / "target"
    run_pip(["install", "--no-deps", "--target", str(target), "-i", index, "shelf-reader==0.2"])
    assert '__version__ = "0.2"' in (target / "shelf_reader" / "__init__.py").read_text()
    assert downloaded(upstream) == [WHL_02]


def test_streamed_fetches_every_time_and_keeps_nothing(
    upstream: Upstream, live_server: Callable[..., Server], tmp_path: Path
) -> None:
    proxy, api = start(live_server, upstream, tmp_path)
    repo = api.repository("streamed")
    remote = make_remote(api, upstream, policy="streamed", includes=["shelf-reader==0.2"])
    assert api.sync(repo, remote)["state"] == "completed"
    assert downloaded(upstream) == []
    api.distribution("streamed", repository=repo["pulp_href"])
    assert proxy.page_files("streamed", "shelf-reader") == {WHL_02}
    wheel = next(f for f in upstream.files_for("shelf-reader") if f.filename == WHL_02)

    for _ in range(2):
        got = get(f"{proxy.url}/pulp/content/streamed/{WHL_02}")
        assert got.status_code == 200 and got.content == wheel.data

    assert downloaded(upstream) == [WHL_02, WHL_02]
    assert wheel.sha256 not in stored(proxy)


def test_pip_installs_from_an_immediate_synced_repository_with_the_upstream_down(
    upstream: Upstream, live_server: Callable[..., Server], tmp_path: Path
) -> None:
    proxy, api = start(live_server, upstream, tmp_path)
    repo = api.repository("offline")
    remote = make_remote(api, upstream, includes=["app-with-dep", "shelf-reader<0.3"])
    assert api.sync(repo, remote)["state"] == "completed"
    api.distribution("offline", repository=repo["pulp_href"])
    upstream.down()
    upstream.clear_log()

    python = make_venv(tmp_path / "venv")
    run_pip(
        ["install", "--index-url", f"{proxy.url}/pypi/offline/simple/", "app-with-dep"],
        python=python,
    )

    out = subprocess.run(
        [str(python), "-c", "import app_with_dep, shelf_reader as s; print(s.__version__)"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    assert out.stdout.strip() == "0.2"
    assert upstream.log == []


# ---- failed syncs -------------------------------------------------------------------------------


def assert_failed_without_version(api: Api, repo: dict[str, Any], task: dict[str, Any]) -> str:
    assert task["state"] == "failed", task
    assert task["created_resources"] == []
    assert api.latest(repo).endswith("/versions/0/")
    assert api.get(repo["versions_href"])["count"] == 1
    description: str = task["error"]["description"]
    return description


def test_a_project_missing_upstream_fails_the_sync(
    upstream: Upstream, live_server: Callable[..., Server], tmp_path: Path
) -> None:
    _, api = start(live_server, upstream, tmp_path)
    repo = api.repository("synced")
    remote = make_remote(api, upstream, includes=["shelf-reader<0.3", "no-such-project"])

    error = assert_failed_without_version(api, repo, api.sync(repo, remote))

    assert "no-such-project" in error
    assert api.packages(filename=WHL_02) == []  # nothing recorded either


def test_a_corrupt_download_fails_the_sync_and_stores_nothing(
    upstream: Upstream, live_server: Callable[..., Server], tmp_path: Path
) -> None:
    proxy, api = start(live_server, upstream, tmp_path)
    repo = api.repository("synced")
    remote = make_remote(api, upstream, includes=["shelf-reader<0.3"])
    before = stored(proxy)
    upstream.corrupt_files = True

    error = assert_failed_without_version(api, repo, api.sync(repo, remote))

    assert "mismatch" in error and "sha256" in error
    assert stored(proxy) == before
    assert api.packages(filename=WHL_02) == []

    upstream.corrupt_files = False  # the next sync succeeds
    task = api.sync(repo, remote)
    assert task["state"] == "completed", task
    assert api.filenames(api.latest(repo)) == {WHL_01, SDIST_01, WHL_02}


@pytest.mark.parametrize("includes", [["shelf-reader"], []], ids=["listed", "whole-index"])
def test_an_unreachable_upstream_fails_the_sync(
    upstream: Upstream, live_server: Callable[..., Server], tmp_path: Path, includes: list[str]
) -> None:
    _, api = start(live_server, upstream, tmp_path)
    repo = api.repository("synced")
    remote = make_remote(api, upstream, includes=includes)
    upstream.down()

    assert_failed_without_version(api, repo, api.sync(repo, remote))


# ---- publications -------------------------------------------------------------------------------

COMPARED = ("hashes", "requires-python", "yanked", "size")


def test_a_publication_serves_its_version_while_the_repository_moves_on(
    upstream: Upstream, live_server: Callable[..., Server], tmp_path: Path
) -> None:
    proxy, api = start(live_server, upstream, tmp_path)
    repo = api.repository("pub")
    remote = make_remote(api, upstream, includes=["shelf-reader<=0.3", "meta-lib"])
    assert api.sync(repo, remote)["state"] == "completed"
    v1 = api.latest(repo)
    task = api.run("POST", "publications/python/pypi/", json={"repository_version": v1})
    publication = api.get(task["created_resources"][0])
    assert task["result"]["pulp_href"] == publication["pulp_href"]
    assert publication["repository_version"] == v1
    api.distribution("pinned", publication=publication["pulp_href"])
    assert api.get(publication["pulp_href"])["distributions"] == [
        api.one("distributions/python/pypi/", name="pinned")["pulp_href"]
    ]

    # The repository moves on: an upload, and a sync of more.
    later = build_wheel(tmp_path / "ours", "shelf-reader", "0.5")
    api.upload(later, repo)
    upstream.add_file("shelf-reader", build_wheel(tmp_path / "up", "shelf-reader", "0.2.5"))
    assert api.sync(repo, remote)["state"] == "completed"
    assert version_number(api.latest(repo)) == 3

    assert proxy.page_files("pinned", "shelf-reader") == {WHL_01, SDIST_01, WHL_02, WHL_03}
    assert get(f"{proxy.url}/pulp/content/pinned/{later.name}").status_code == 404
    got = get(f"{proxy.url}/pulp/content/pinned/{WHL_02}")
    assert got.status_code == 200 and hashlib.sha256(got.content).hexdigest() == sha(
        upstream, WHL_02
    )

    w03 = {f["filename"]: f for f in proxy.json_page("pinned", "shelf-reader")["files"]}[WHL_03]
    assert w03["requires-python"] == ">=3.8"
    assert w03["hashes"] == {"sha256": sha(upstream, WHL_03)}
    meta_upstream = upstream.files_for("meta-lib")[0].metadata_sha256
    meta = proxy.json_page("pinned", "meta-lib")["files"][0]
    assert meta["core-metadata"] == {"sha256": meta_upstream}
    metadata = get(f"{proxy.url}/pulp/content/pinned/{META_WHL}.metadata")
    assert metadata.status_code == 200
    assert hashlib.sha256(metadata.content).hexdigest() == meta_upstream
    html = get(f"{proxy.url}/pypi/pinned/simple/shelf-reader/", headers={"Accept": "text/html"})
    assert html.status_code == 200
    assert f"#sha256={sha(upstream, WHL_03)}" in html.text
    assert 'data-requires-python="&gt;=3.8"' in html.text
    assert later.name not in html.text
    meta_html = get(f"{proxy.url}/pypi/pinned/simple/meta-lib/", headers={"Accept": "text/html"})
    assert f'data-core-metadata="sha256={meta_upstream}"' in meta_html.text

    # Its pages carry what the live (pull-through) pages of the same files carry.
    for project in ("shelf-reader", "meta-lib"):
        live = {f["filename"]: f for f in proxy.json_page("main", project)["files"]}
        pinned = {f["filename"]: f for f in proxy.json_page("pinned", project)["files"]}
        for name, entry in pinned.items():
            mine = {k: entry.get(k) for k in COMPARED}
            assert mine == {k: live[name].get(k) for k in COMPARED}, name


def test_autopublish_and_switching_a_distribution_back_to_the_latest_version(
    upstream: Upstream, live_server: Callable[..., Server], tmp_path: Path
) -> None:
    proxy, api = start(live_server, upstream, tmp_path)
    repo = api.repository("auto")
    remote = make_remote(api, upstream, includes=["shelf-reader<0.3"])
    assert api.sync(repo, remote)["state"] == "completed"  # version 1, before autopublish
    first = api.get(
        api.run("POST", "publications/python/pypi/", json={"repository": repo["pulp_href"]})[
            "created_resources"
        ][0]
    )
    assert first["repository_version"] == repo["pulp_href"] + "versions/1/"
    dist = api.distribution("auto", publication=first["pulp_href"])

    api.run("PATCH", repo["pulp_href"], json={"autopublish": True})
    extra = build_wheel(tmp_path / "ours", "shelf-reader", "0.9")
    api.upload(extra, repo)  # version 2
    upstream.add_file("shelf-reader", build_wheel(tmp_path / "up", "shelf-reader", "0.2.1"))
    assert api.sync(repo, remote)["state"] == "completed"  # version 3
    whl_021 = "shelf_reader-0.2.1-py3-none-any.whl"
    removed = api.one("content/python/packages/", filename=SDIST_01)["pulp_href"]
    api.run("POST", repo["pulp_href"] + "modify/", json={"remove_content_units": [removed]})
    assert version_number(api.latest(repo)) == 4

    publications = api.all("publications/python/pypi/", repository=repo["pulp_href"])
    assert sorted(version_number(p["repository_version"]) for p in publications) == [1, 2, 3, 4]
    assert api.all("publications/python/pypi/", repository_version=api.latest(repo))
    # The distribution still serves the first publication.
    assert proxy.page_files("auto", "shelf-reader") == {WHL_01, SDIST_01, WHL_02}

    api.run(
        "PATCH",
        dist["pulp_href"],
        json={"repository": repo["pulp_href"], "publication": None, "repository_version": None},
    )
    now_serving = api.get(dist["pulp_href"])
    assert (now_serving["publication"], now_serving["repository"]) == (None, repo["pulp_href"])
    assert proxy.page_files("auto", "shelf-reader") == {WHL_01, WHL_02, whl_021, extra.name}

    # And it follows the repository from then on.
    newer = build_wheel(tmp_path / "ours", "shelf-reader", "1.0")
    api.upload(newer, repo)
    assert newer.name in proxy.page_files("auto", "shelf-reader")


# ---- orphan cleanup -----------------------------------------------------------------------------


def test_orphan_cleanup_removes_content_in_no_version_and_its_file(
    upstream: Upstream, live_server: Callable[..., Server], tmp_path: Path
) -> None:
    proxy, api = start(live_server, upstream, tmp_path)
    repo = api.repository("kept")
    ours = tmp_path / "ours"
    orphan = build_wheel(ours, "lonely", "1.0")
    in_repo = build_wheel(ours, "held", "1.0")
    dropped = build_wheel(ours, "held", "2.0")  # removed from the latest version only
    orphan_sha = hashlib.sha256(orphan.read_bytes()).hexdigest()
    api.upload(orphan)
    api.upload(in_repo, repo)
    api.upload(dropped, repo)
    dropped_href = api.one("content/python/packages/", filename=dropped.name)["pulp_href"]
    api.run("POST", repo["pulp_href"] + "modify/", json={"remove_content_units": [dropped_href]})
    assert api.filenames(api.latest(repo)) == {in_repo.name}
    orphan_package = api.one("content/python/packages/", filename=orphan.name)
    assert orphan_package["metadata_sha256"]
    # A pull-through cache file (content in no repository, but the cache's to manage).
    cached = get(f"{proxy.url}/pulp/content/main/{WHL_02}")
    assert cached.status_code == 200
    assert wait_until(lambda: len(api.packages(filename=WHL_02)) == 1)
    assert orphan_sha in stored(proxy) and orphan_package["metadata_sha256"] in stored(proxy)

    # The default protection time keeps a fresh orphan.
    task = api.run("POST", "orphans/cleanup/", json={})
    assert len(api.packages(filename=orphan.name)) == 1
    assert orphan_sha in stored(proxy)

    task = api.run("POST", "orphans/cleanup/", json={"orphan_protection_time": 0})

    assert report(task, "clean-up.content")["done"] == 1
    assert api.packages(filename=orphan.name) == []
    assert orphan_sha not in stored(proxy)
    assert orphan_package["metadata_sha256"] not in stored(proxy)
    for survivor in (in_repo, dropped):
        assert len(api.packages(filename=survivor.name)) == 1
        assert hashlib.sha256(survivor.read_bytes()).hexdigest() in stored(proxy)
    assert api.one("content/python/packages/", filename=WHL_02)["origin"] == "cache"
    assert sha(upstream, WHL_02) in stored(proxy)
    api.distribution("kept", repository=repo["pulp_href"])
    got = get(f"{proxy.url}/pulp/content/kept/{in_repo.name}")
    assert got.status_code == 200 and got.content == in_repo.read_bytes()


# ---- tasks --------------------------------------------------------------------------------------


def test_canceling_waiting_running_and_finished_tasks(
    upstream: Upstream, live_server: Callable[..., Server], tmp_path: Path
) -> None:
    _, api = start(live_server, upstream, tmp_path)
    repo = api.repository("slow")
    other = api.repository("queued")
    remote = make_remote(api, upstream, includes=["shelf-reader==0.2"])
    upstream.chunk_size, upstream.slow_files = 100, 0.15  # about 1.5 s for the wheel

    running = api.start("POST", repo["pulp_href"] + "sync/", json={"remote": remote["pulp_href"]})
    assert wait_until(lambda: api.get(running)["state"] == "running", timeout=10)
    waiting = api.start("POST", other["pulp_href"] + "sync/", json={"remote": remote["pulp_href"]})
    assert api.get(waiting)["state"] == "waiting"  # the one worker is busy
    assert waiting in {t["pulp_href"] for t in api.all("tasks/", state="waiting")}

    answer = api.request("PATCH", waiting, json={"state": "canceled"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["state"] == "canceled"
    assert waiting not in {t["pulp_href"] for t in api.all("tasks/", state="waiting")}
    assert waiting in {t["pulp_href"] for t in api.all("tasks/", state="canceled")}

    answer = api.request("PATCH", running, json={"state": "canceled"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["state"] == "canceling"
    assert api.wait(running)["state"] == "canceled"
    assert api.get(waiting)["state"] == "canceled"  # never run
    assert api.latest(repo).endswith("/versions/0/")
    assert api.latest(other).endswith("/versions/0/")
    upstream.slow_files = 0.0

    finished = api.sync(repo, remote)
    assert finished["state"] == "completed"
    for href in (finished["pulp_href"], waiting):
        answer = api.request("PATCH", href, json={"state": "canceled"})
        assert answer.status_code == 409, answer.text
    assert api.get(finished["pulp_href"])["state"] == "completed"
    assert api.request("PATCH", waiting, json={"state": "running"}).status_code == 400


# ---- worker failures (gunicorn, real processes) --------------------------------------------------

FAST_DEAD_AFTER = 2.5  # seconds; the real default is 30


FAST_REAPER = f"[tasks]\nheartbeat = 0.2\nworker_timeout = {FAST_DEAD_AFTER}\n"  # a tenth


def _ppid(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def slow_sync(
    gunicorn_server: Callable[..., Server],
    upstream: Upstream,
    tmp_path: Path,
    seconds_per_chunk: float,
) -> tuple[Api, dict[str, Any], str]:
    text = with_auth(config_text(upstream.index_url, tmp_path / "data")) + FAST_REAPER
    proxy = gunicorn_server(text)
    api = Api(proxy.url)
    repo = api.repository("slow")
    remote = make_remote(api, upstream, includes=["shelf-reader==0.2"])
    upstream.chunk_size, upstream.slow_files = 100, seconds_per_chunk  # 10 chunks
    task = api.start("POST", repo["pulp_href"] + "sync/", json={"remote": remote["pulp_href"]})
    assert wait_until(
        lambda: api.get(task)["state"] == "running" and downloaded(upstream), timeout=15
    )
    return api, repo, task


def test_a_killed_worker_leaves_its_task_failed(
    gunicorn_server: Callable[..., Server], upstream: Upstream, tmp_path: Path
) -> None:
    api, repo, task = slow_sync(gunicorn_server, upstream, tmp_path, 1.0)
    running = api.get(task)
    assert running["state"] == "running", running
    worker = api.get(running["worker"])  # the worker running it, by its href
    assert worker["current_task"] == task
    pid = int(worker["name"].rsplit("-", 2)[1])
    # Only ever a gunicorn worker we started: a child of the master, itself our child.
    assert pid != os.getpid() and _ppid(_ppid(pid)) == os.getpid()

    os.kill(pid, signal.SIGKILL)

    done = api.wait(task, timeout=FAST_DEAD_AFTER + 15)
    assert done["state"] == "failed", done
    assert "stopped responding" in done["error"]["description"]
    assert worker["name"] in done["error"]["description"]
    assert api.latest(repo).endswith("/versions/0/")


def test_a_long_task_on_a_live_worker_is_not_failed(
    gunicorn_server: Callable[..., Server], upstream: Upstream, tmp_path: Path
) -> None:
    """A sync longer than the reaper's limit on a worker that is alive and well must complete;
    another process's reaper must not declare it failed meanwhile."""
    api, repo, task = slow_sync(gunicorn_server, upstream, tmp_path, 0.6)  # about 6 s

    states = ["running"]  # every state a client polling the task sees, in order
    deadline = time.monotonic() + 20
    while states[-1] != "completed" and time.monotonic() < deadline:
        time.sleep(0.1)
        if (state := api.get(task)["state"]) != states[-1]:
            states.append(state)

    assert states == ["running", "completed"], api.get(task)
    final = api.get(task)
    assert final["error"] is None
    assert final["created_resources"] == [repo["pulp_href"] + "versions/1/"]
