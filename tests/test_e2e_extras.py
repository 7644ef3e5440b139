"""The PyPI JSON API, token auth, remote headers, and a standalone `pullthrough worker`."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from lxml import html

from support.packages import build_sdist, build_wheel
from support.servers import Server, config_text, wait_until
from support.tools import clean_env
from support.upstream import Upstream

pytestmark = pytest.mark.e2e
PASSWORD = "extras-admin"
AUTH = ("admin", PASSWORD)
V3 = "/pulp/api/v3/"


def with_auth(text: str, **extra: str) -> str:
    lines = "".join(f'{k} = "{v}"\n' for k, v in extra.items())
    return text + f'[auth]\nadmin_password = "{PASSWORD}"\n{lines}'


def upload_to_new_index(proxy: Server, name: str, paths: list[Path]) -> None:
    """A repository and a distribution of that name serving it (base path `name`), the files
    uploaded to it as twine does."""
    repo = requests.post(
        proxy.url + V3 + "repositories/python/python/", json={"name": name}, auth=AUTH, timeout=10
    ).json()
    requests.post(
        proxy.url + V3 + "distributions/python/pypi/",
        json={"name": name, "base_path": name, "repository": repo["pulp_href"]},
        auth=AUTH, timeout=10,
    ).raise_for_status()  # fmt: skip
    for path in paths:
        with open(path, "rb") as fh:
            requests.post(
                f"{proxy.url}/pypi/{name}/legacy/", data={":action": "file_upload"},
                files={"content": (path.name, fh)}, auth=AUTH, timeout=10,
            ).raise_for_status()  # fmt: skip


def test_pypi_json_api_for_local_and_pull_through_projects(
    upstream: Upstream, live_server: Callable[..., Server], tmp_path: Path
) -> None:
    upstream.serials["shelf-reader"] = 20145137
    proxy = live_server(with_auth(config_text(upstream.index_url, tmp_path / "d")))
    # Pull-through: the upstream's files, latest non-yanked final release shown.
    answer = requests.get(f"{proxy.url}/pypi/main/pypi/shelf-reader/json", timeout=10)
    data = answer.json()
    # The upstream's serial, in the document and in pypi.org's header (mirroring tools read it).
    assert data["last_serial"] == 20145137
    assert answer.headers["X-PyPI-Last-Serial"] == "20145137"
    # Readable from a browser's scripts (micropip in Pyodide reads it), as pypi.org's.
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    assert answer.headers["Access-Control-Expose-Headers"] == "X-PyPI-Last-Serial"
    assert data["info"]["name"] == "shelf-reader" and data["info"]["version"] == "0.2"
    assert sorted(data["releases"]) == ["0.1", "0.2", "0.3", "0.4rc1"]
    assert data["releases"]["0.3"][0]["yanked"] is True
    assert data["releases"]["0.3"][0]["yanked_reason"] == "broken"
    wheel = next(f for f in data["urls"] if f["packagetype"] == "bdist_wheel")
    assert wheel["url"] == f"{proxy.url}/pulp/content/main/shelf_reader-0.2-py3-none-any.whl"
    body = requests.get(wheel["url"], timeout=10).content
    assert len(body) == wheel["size"] and wheel["digests"]["sha256"]
    one = requests.get(f"{proxy.url}/pypi/main/pypi/shelf-reader/0.1/json", timeout=10).json()
    assert one["info"]["version"] == "0.1" and "releases" not in one
    missing = requests.get(f"{proxy.url}/pypi/main/pypi/shelf-reader/9.9/json", timeout=10)
    assert missing.status_code == 404
    moved = requests.get(
        f"{proxy.url}/pypi/main/pypi/Shelf_Reader/json?x=1", timeout=10, allow_redirects=False
    )  # sent on with its query, as the simple pages are
    assert moved.status_code == 301
    assert moved.headers["Location"].endswith("/pypi/main/pypi/shelf-reader/json?x=1")
    for slash, where in [
        ("Shelf_Reader/json/", "/pypi/main/pypi/shelf-reader/json"),
        ("shelf-reader/0.1/json/?x=1", "/pypi/main/pypi/shelf-reader/0.1/json?x=1"),
    ]:  # a trailing slash, as some clients write it: sent on, as pypi.org does
        moved = requests.get(
            f"{proxy.url}/pypi/main/pypi/{slash}", timeout=10, allow_redirects=False
        )
        assert moved.status_code == 301 and moved.headers["Location"].endswith(where)

    # Local: metadata from the uploaded file fills `info`.
    path = build_wheel(tmp_path / "w", "acme-json", "3.1", requires_dist=["shelf-reader>=0.1"])
    upload_to_new_index(proxy, "r", [path])
    local = requests.get(f"{proxy.url}/pypi/r/pypi/acme-json/json", timeout=10).json()
    assert local["info"]["version"] == "3.1"
    assert local["info"]["requires_dist"] == ["shelf-reader>=0.1"]
    assert [f["filename"] for f in local["urls"]] == [path.name]


def _releases(url: str) -> dict[str, list[str]]:
    data = requests.get(url + "json", timeout=10).json()
    return {v: [f["filename"] for f in fs] for v, fs in data["releases"].items()}


def _urls(url: str, version: str) -> list[str]:
    answer = requests.get(f"{url}{version}/json", timeout=10)
    assert answer.status_code == 200, version
    return [f["filename"] for f in answer.json()["urls"]]


def test_pypi_json_api_keys_a_release_by_the_version_the_index_gives(
    upstream: Upstream, live_server: Callable[..., Server], tmp_path: Path
) -> None:
    """PyPI keeps old releases' versions as uploaded (setuptools 0.6c11, pytz 2004d): one
    release, under that name, holds every file, whichever spelling a client asks for."""
    w = tmp_path / "w"
    sdist = build_sdist(w, "oldver", "0.6c11", requires_dist=["attrs"])
    wheel = build_wheel(w, "oldver", "0.6rc11")
    upstream.add_file("oldver", sdist)
    upstream.add_file("oldver", wheel, version="0.6c11")  # PEP 700 `versions`: ["0.6c11"]
    upstream.add_file("legacy", build_sdist(w, "legacy", "2004d"))
    upstream.add_file("legacy", build_wheel(w, "legacy", "1.0"))
    proxy = live_server(with_auth(config_text(upstream.index_url, tmp_path / "d")))
    oldver = f"{proxy.url}/pypi/main/pypi/oldver/"
    assert _releases(oldver) == {"0.6c11": [sdist.name, wheel.name]}
    for asked in ("0.6c11", "0.6rc11", "0.6.0rc11"):
        assert _urls(oldver, asked) == [sdist.name, wheel.name]
    legacy = f"{proxy.url}/pypi/main/pypi/legacy/"
    assert _releases(legacy) == {
        "1.0": ["legacy-1.0-py3-none-any.whl"],
        "2004d": ["legacy-2004d.tar.gz"],
    }
    assert _urls(legacy, "2004d") == ["legacy-2004d.tar.gz"]
    assert requests.get(legacy + "json", timeout=10).json()["info"]["version"] == "1.0"

    # Uploaded: the version as the files' names write it (the local page has no `versions`).
    wheel_up = build_wheel(tmp_path / "up", "oldver", "0.6c11", requires_dist=["attrs"])
    upload_to_new_index(proxy, "r", [sdist, wheel_up])
    local = f"{proxy.url}/pypi/r/pypi/oldver/"
    both = ["oldver-0.6c11-py3-none-any.whl", sdist.name]
    assert _releases(local) == {"0.6c11": both}
    assert _urls(local, "0.6rc11") == both
    info = requests.get(local + "json", timeout=10).json()["info"]
    assert (info["version"], info["requires_dist"]) == ("0.6c11", ["attrs"])  # its metadata


def test_pypi_json_api_links_lead_to_the_project_page(
    upstream: Upstream, live_server: Callable[..., Server], tmp_path: Path
) -> None:
    """pypi.org's info links name its project and release pages; ours, the page for people."""
    proxy = live_server(with_auth(config_text(upstream.index_url, tmp_path / "d")))
    page = f"{proxy.url}/pypi/main/project/shelf-reader/"
    for asked, version in (("", "0.2"), ("0.1/", "0.1"), ("0.4.0rc1/", "0.4rc1")):
        url = f"{proxy.url}/pypi/main/pypi/shelf-reader/{asked}json"
        info = requests.get(url, timeout=10).json()["info"]
        assert info["package_url"] == info["project_url"] == page
        for key in ("package_url", "project_url", "release_url"):
            assert requests.get(info[key], timeout=10).status_code == 200, (key, info[key])
        # release_url: the page, at the heading of the release's files.
        at, _, anchor = info["release_url"].partition("#")
        assert at == page
        doc: html.HtmlElement = html.document_fromstring(requests.get(at, timeout=10).content)
        assert [h.text for h in doc.xpath("//*[@id=$id]", id=anchor)] == [version]


def test_token_auth_and_remote_headers(
    upstream: Upstream, live_server: Callable[..., Server], tmp_path: Path
) -> None:
    text = with_auth(
        config_text(upstream.index_url, tmp_path / "d", headers={"X-Team": "infra"}),
        admin_token="tok-123",
    )
    proxy = live_server(text)
    ok = requests.get(proxy.url + V3 + "repositories/python/python/", timeout=10,
                      headers={"Authorization": "Token tok-123"})  # fmt: skip
    assert ok.status_code == 200
    bad = requests.get(proxy.url + V3 + "repositories/python/python/", timeout=10,
                       headers={"Authorization": "Token tok-124"})  # fmt: skip
    assert bad.status_code == 401
    assert requests.get(proxy.index() + "shelf-reader/", timeout=10).status_code == 200
    sent = upstream.requests_for("/simple/shelf-reader/", server="index")
    assert sent and sent[-1].header("x-team") == "infra"


def test_a_standalone_worker_runs_the_tasks(
    upstream: Upstream, live_server: Callable[..., Server], tmp_path: Path
) -> None:
    """With the embedded worker off, `pullthrough worker` (a separate process) syncs."""
    text = with_auth(config_text(upstream.index_url, tmp_path / "d")).replace(
        "[server]\n", "[server]\nembedded_worker = false\n"
    )
    config = tmp_path / "worker.toml"
    config.write_text(text)
    proxy = live_server(text)
    api = requests.Session()
    api.auth = AUTH
    remote = api.post(proxy.url + V3 + "remotes/python/python/", timeout=10, json={
        "name": "bar", "url": upstream.index_url, "includes": ["meta-lib"], "policy": "immediate",
    }).json()  # fmt: skip
    repo = api.post(
        proxy.url + V3 + "repositories/python/python/", json={"name": "w"}, timeout=10
    ).json()
    task = api.post(
        repo["pulp_href"].join([proxy.url, "sync/"]),
        json={"remote": remote["pulp_href"]},
        timeout=10,
    ).json()["task"]
    time.sleep(1.5)
    assert api.get(proxy.url + task, timeout=10).json()["state"] == "waiting"  # no worker yet

    worker = subprocess.Popen(
        [sys.executable, "-m", "pullthrough.cli", "worker", "--config", str(config)],
        env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert wait_until(
            lambda: api.get(proxy.url + task, timeout=10).json()["state"] == "completed", 30
        )
        done = api.get(proxy.url + task, timeout=10).json()
        assert done["created_resources"] == [repo["pulp_href"] + "versions/1/"]
        ran_by = api.get(proxy.url + done["worker"], timeout=10).json()
        assert str(worker.pid) in ran_by["name"]
    finally:
        worker.terminate()
        worker.wait(timeout=20)
    assert worker.returncode == 0
    api.close()
