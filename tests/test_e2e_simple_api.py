"""The simple API over HTTP: negotiation, redirects, ETags, fields, filters, files and metadata."""

from __future__ import annotations

import gzip
import hashlib
import io
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import requests
from flask import request
from pytest_httpserver import HTTPServer

from pullthrough.app import create_app
from pullthrough.config import load_settings
from support.packages import build_wheel
from support.servers import Server, config_text, settle, stored_files, wait_until
from support.tools import clean_env, make_venv, run_pip
from support.upstream import Upstream

if TYPE_CHECKING:
    from conftest import Wheelhouse

pytestmark = pytest.mark.e2e
JSON = "application/vnd.pypi.simple.v1+json"


@pytest.fixture
def proxy(upstream: Upstream, live_server: Callable[..., Server], tmp_path: Path) -> Server:
    return live_server(config_text(upstream.index_url, tmp_path / "data"))


def get(url: str, **headers: str) -> requests.Response:
    return requests.get(url, headers=headers, timeout=10, allow_redirects=False)


def test_negotiation_content_types_and_vary(proxy: Server) -> None:
    page = proxy.index() + "shelf-reader/"
    html = get(page)
    assert html.status_code == 200
    assert html.headers["Content-Type"] == "text/html; charset=utf-8"
    assert html.headers["Vary"] == "Accept, Accept-Encoding"
    data = get(page, Accept=f"{JSON}, text/html;q=0.1")
    assert data.headers["Content-Type"] == JSON
    assert data.json()["name"] == "shelf-reader"
    v1html = get(page, Accept="application/vnd.pypi.simple.v1+html")
    assert v1html.headers["Content-Type"] == "application/vnd.pypi.simple.v1+html"
    assert get(page + f"?format={JSON}", Accept="text/html").headers["Content-Type"] == JSON
    refused = get(page, Accept="application/xml")
    assert refused.status_code == 406 and JSON in refused.text


def test_warm_answers_match_the_first_rendering(proxy: Server) -> None:
    """The second request is served from the in-memory rendering (below Flask): same bytes,
    same headers."""
    page = proxy.index() + "shelf-reader/"
    for accept in ("text/html", JSON):
        first, warm = get(page, Accept=accept), get(page, Accept=accept)
        assert warm.content == first.content
        drop = {"Date", "Server", "Connection"}
        assert {k: v for k, v in warm.headers.items() if k not in drop} == {
            k: v for k, v in first.headers.items() if k not in drop
        }


def test_a_stored_file_is_sent_below_flask_with_the_same_answer(
    upstream: Upstream, tmp_path: Path
) -> None:
    """Once a file is stored and its page held fresh, a whole GET of it is answered below Flask
    (web.fastpath) with the headers and bytes Flask gives it, and counted as there; anything
    else about it still goes through Flask."""
    config = tmp_path / "pullthrough.toml"
    config.write_text(config_text(upstream.index_url, tmp_path / "data"))
    app = create_app(load_settings(config, environ={}))
    through_flask: list[str] = []
    app.before_request(lambda: through_flask.append(request.method + " " + request.full_path))
    client = app.test_client()

    def answer(method: str, url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
        with client.open(url, method=method, headers=headers) as resp:
            return resp.status_code, dict(resp.headers), resp.get_data()

    def counted() -> dict[str, float]:
        text = answer("GET", "/metrics")[2].decode()
        samples = (
            'pullthrough_http_requests_total{code="200",kind="file"}',
            "pullthrough_file_bytes_served_total",
            "pullthrough_cache_hits_total",
        )
        lines = dict(line.rsplit(" ", 1) for line in text.splitlines() if line[:1] != "#")
        return {s: float(lines[s]) for s in samples}

    try:
        url = "/pulp/content/main/shelf_reader-0.2-py3-none-any.whl"
        first = answer("GET", url)  # the page fetched, the file downloaded: Flask
        assert first[0] == 200
        assert wait_until(lambda: "ETag" in answer("HEAD", url)[1])  # stored just after
        _, stored_headers, _ = answer("HEAD", url)  # Flask's answer for the stored file
        seen, before = len(through_flask), counted()

        status, headers, body = answer("GET", url)
        assert through_flask[seen:] == ["GET /metrics?"]  # not the file: below Flask
        assert status == 200 and body == first[2]
        assert headers == stored_headers and headers["Content-Length"] == str(len(body))
        assert headers["ETag"] == f'"{hashlib.sha256(body).hexdigest()}"'
        after = counted()
        assert [after[k] - before[k] for k in before] == [1, len(body), 1]

        # the rest goes through Flask, as before
        seen = len(through_flask)
        part = answer("GET", url, Range="bytes=0-9")
        assert part[0] == 206 and part[2] == body[:10]
        assert answer("GET", url, **{"If-None-Match": headers["ETag"]})[0] == 304
        assert answer("GET", url + ".metadata")[0] == 200
        assert answer("GET", "/pulp/content/main/shelf_reader-9.9-py3-none-any.whl")[0] == 404
        assert len(through_flask) == seen + 4
    finally:
        app.extensions["pullthrough"].close()


def test_etag_and_conditional_requests(proxy: Server) -> None:
    page = proxy.index() + "shelf-reader/"
    first = get(page, Accept=JSON)
    etag = first.headers["ETag"]
    again = get(page, Accept=JSON, **{"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    html = get(page, **{"If-None-Match": etag})  # another representation, another tag
    assert html.status_code == 200 and html.headers["ETag"] != etag


def test_pages_and_json_api_are_sent_gzipped_to_who_takes_it(
    proxy: Server, upstream: Upstream, tmp_path: Path
) -> None:
    for i in range(30):  # a page big enough to be worth compressing
        upstream.add_file("many-files", build_wheel(tmp_path / "w", "many-files", f"1.{i}"))
    urls = {
        "html": (proxy.index() + "many-files/", "text/html"),
        "json": (proxy.index() + "many-files/", JSON),
        "json api": (f"{proxy.url}/pypi/main/pypi/many-files/json", "application/json"),
    }
    for what, (url, accept) in urls.items():
        plain = requests.get(
            url, headers={"Accept": accept, "Accept-Encoding": "identity"}, timeout=10
        )
        assert plain.status_code == 200 and "Content-Encoding" not in plain.headers, what
        for _ in range(2):  # rendered, then from the memo (below Flask for pages)
            raw = requests.get(
                url, headers={"Accept": accept, "Accept-Encoding": "gzip"}, stream=True, timeout=10
            )
            assert raw.headers["Content-Encoding"] == "gzip", what
            assert "Accept-Encoding" in raw.headers["Vary"], what
            wire = raw.raw.read(decode_content=False)
            assert int(raw.headers["Content-Length"]) == len(wire) < len(plain.content) / 3
            assert gzip.decompress(wire) == plain.content, what
            assert raw.headers["ETag"] != plain.headers["ETag"]
        again = get(
            url, Accept=accept, **{"Accept-Encoding": "gzip", "If-None-Match": raw.headers["ETag"]}
        )
        assert again.status_code == 304 and again.headers["ETag"] == raw.headers["ETag"], what
        other = get(
            url,
            Accept=accept,
            **{"Accept-Encoding": "identity", "If-None-Match": raw.headers["ETag"]},
        )
        assert other.status_code == 200 and other.content == plain.content, what


def test_non_normalized_names_redirect_and_bad_paths_are_clear(proxy: Server) -> None:
    moved = get(proxy.index() + "Shelf_Reader/?format=" + JSON)
    assert moved.status_code == 301
    assert moved.headers["Location"].endswith(f"/pypi/main/simple/shelf-reader/?format={JSON}")
    missing = get(proxy.index() + "no-such-project/")
    assert missing.status_code == 404 and "no-such-project" in missing.text
    no_dist = get(proxy.url + "/pypi/nowhere/simple/shelf-reader/")
    assert no_dist.status_code == 404 and "nowhere" in no_dist.text
    bad = get(proxy.index() + "-bad-name-/")
    assert bad.status_code == 400 and "Invalid project name" in bad.text


def test_pulps_published_index_url_leads_to_the_index(proxy: Server, tmp_path: Path) -> None:
    """A pip.conf written for Pulp names the index its python plugin publishes in the content
    app, /pulp/content/<base_path>/simple/: it leads to the index here (301, query kept), and
    pip installs through it."""
    content = f"{proxy.url}/pulp/content/main/simple/"
    listed = get(content + "?format=" + JSON)
    assert listed.status_code == 301
    assert listed.headers["Location"].endswith(f"/pypi/main/simple/?format={JSON}")
    page = get(content + "Shelf_Reader/")
    assert page.status_code == 301
    assert page.headers["Location"].endswith("/pypi/main/simple/shelf-reader/")
    assert get(f"{proxy.url}/pulp/content/nowhere/simple/").status_code == 404
    run_pip(["download", "--no-deps", "--dest", str(tmp_path / "got"), "--index-url", content,
             "shelf-reader==0.2"], timeout=120)  # fmt: skip
    assert [p.name for p in (tmp_path / "got").iterdir()] == ["shelf_reader-0.2-py3-none-any.whl"]


def test_every_upstream_field_is_carried(proxy: Server, upstream: Upstream) -> None:
    data = get(proxy.index() + "shelf-reader/", Accept=JSON).json()
    files = {f["filename"]: f for f in data["files"]}
    assert set(files) == {f.filename for f in upstream.files_for("shelf-reader")}
    yanked = files["shelf_reader-0.3-py3-none-any.whl"]
    assert yanked["yanked"] == "broken" and yanked["requires-python"] == ">=3.8"
    for f in upstream.files_for("shelf-reader"):
        ours = files[f.filename]
        assert ours["hashes"] == {"sha256": f.sha256}
        assert ours["size"] == f.size
        assert ours["upload-time"] == f.upload_time
        assert ours["url"].endswith(f"/pulp/content/main/{f.filename}")
    assert data["versions"] == ["0.1", "0.2", "0.3", "0.4rc1"]
    meta = get(proxy.index() + "app-with-dep/", Accept=JSON).json()["files"][0]
    (upstream_file,) = upstream.files_for("app-with-dep")
    assert meta["core-metadata"] == {"sha256": upstream_file.metadata_sha256}

    html = get(proxy.index() + "shelf-reader/").text
    assert 'data-yanked="broken"' in html and 'data-requires-python="&gt;=3.8"' in html


def test_html_only_upstream_works(
    wheelhouse: Wheelhouse, live_server: Callable[..., Server], tmp_path: Path
) -> None:
    from conftest import fill

    from support.upstream import Upstream

    with Upstream(json_enabled=False, relative_urls=True) as up:
        fill(up, wheelhouse)
        proxy = live_server(config_text(up.index_url, tmp_path / "data"))
        data = get(proxy.index() + "shelf-reader/", Accept=JSON).json()
        assert data["versions"] == ["0.1", "0.2", "0.3", "0.4rc1"]
        f = next(x for x in data["files"] if x["filename"] == "shelf_reader-0.2-py3-none-any.whl")
        body = get(proxy.url + "/pulp/content/main/" + f["filename"]).content
        assert hashlib.sha256(body).hexdigest() == f["hashes"]["sha256"]


def test_pip_and_uv_read_yanks_requires_python_and_times_as_from_the_upstream(
    live_server: Callable[..., Server], tmp_path: Path
) -> None:
    """A yanked file with a reason, one that needs a Python we lack, and an upload time an
    upstream wrote without a zone (`2020-01-01 00:00:00`): relayed as it came, uv refused the
    whole page ("failed to find offset component"); now both clients choose, warn and refuse
    as PEP 592 and 503 say."""
    out = tmp_path / "wheels"
    python = make_venv(tmp_path / "venv")
    with Upstream() as up:
        up.add_file("demo", build_wheel(out, "demo", "1.0"), upload_time="2020-01-01 00:00:00")
        up.add_file("demo", build_wheel(out, "demo", "2.0"), yanked='broken <b>&"x"')
        newer = build_wheel(out, "demo", "3.0", requires_python=">=3.99")
        up.add_file("demo", newer, requires_python=">=3.99")
        proxy = live_server(config_text(up.index_url, tmp_path / "data"))
        uv = [sys.executable, "-m", "uv", "pip", "install", "--dry-run", "--no-config"]
        uv += ["--python", str(python), "--index-url", proxy.index()]
        uv += ["--cache-dir", str(tmp_path / "uv")]

        def uv_install(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [*uv, *args], env=clean_env(), capture_output=True, text=True, timeout=60
            )

        def pip_install(spec: str) -> subprocess.CompletedProcess[str]:
            args = ["install", "--dry-run", "--index-url", proxy.index(), spec]
            return run_pip(args, python=python, check=False)

        chosen = uv_install("demo")
        assert chosen.returncode == 0 and "+ demo==1.0" in chosen.stderr, chosen.stderr
        early = uv_install("--exclude-newer", "2020-06-01T00:00:00Z", "demo==1.0")
        assert early.returncode == 0, early.stderr  # the time, read as UTC, reaches uv
        pinned = uv_install("demo==2.0")
        assert pinned.returncode == 0, pinned.stderr
        assert 'is yanked (reason: "broken <b>&"x"")' in pinned.stderr
        refused = uv_install("demo==3.0")
        assert refused.returncode != 0 and "Python>=3.99" in refused.stderr

        assert "Would install demo-1.0" in pip_install("demo").stdout
        yanked = pip_install("demo==2.0")
        assert 'Reason for being yanked: broken <b>&"x"' in yanked.stderr, yanked.stderr
        too_new = pip_install("demo==3.0")
        assert too_new.returncode != 0 and "Requires-Python >=3.99" in too_new.stderr


def test_an_upstream_page_of_a_major_version_we_do_not_know_is_an_error_not_relayed(
    scripted: HTTPServer, live_server: Callable[..., Server], tmp_path: Path
) -> None:
    """PEP 629: a client MUST fail hard on a major version above the one it knows. A 2.0 page
    read as 1.x and relayed as 1.x would tell pip and uv something the page does not say."""
    page = {"meta": {"api-version": "2.0"}, "name": "lib", "files": []}
    scripted.expect_request("/simple/lib/").respond_with_json(page, content_type=JSON)
    proxy = live_server(config_text(scripted.url_for("/simple/"), tmp_path / "data"))
    answer = get(proxy.index() + "lib/", Accept=JSON)
    assert answer.status_code == 502
    assert "simple API version 2.0; this server reads 1.x" in answer.text


def test_project_list_is_the_upstreams(proxy: Server) -> None:
    data = get(proxy.index(), Accept=JSON).json()
    assert {p["name"] for p in data["projects"]} >= {"shelf-reader", "winonly", "meta-lib"}
    assert 'href="shelf-reader/"' in get(proxy.index()).text


def test_filters_apply_to_pages_lists_and_direct_file_urls(
    upstream: Upstream, live_server: Callable[..., Server], tmp_path: Path
) -> None:
    text = config_text(
        upstream.index_url,
        tmp_path / "d",
        includes=["shelf-reader<0.3", "winonly", "app-*"],
        excludes=["app-with-dep"],
        exclude_platforms=["windows"],
    )
    proxy = live_server(text)
    files = [
        f["filename"] for f in get(proxy.index() + "shelf-reader/", Accept=JSON).json()["files"]
    ]
    assert sorted(files) == [
        "shelf_reader-0.1-py3-none-any.whl",
        "shelf_reader-0.1.tar.gz",
        "shelf_reader-0.2-py3-none-any.whl",
    ]
    winonly = get(proxy.index() + "winonly/", Accept=JSON).json()["files"]
    assert [f["filename"] for f in winonly] == ["winonly-1.0.tar.gz"]
    assert get(proxy.index() + "meta-lib/").status_code == 404  # not included
    assert get(proxy.index() + "app-with-dep/").status_code == 404  # excluded
    # A file the page does not list cannot be fetched by asking for it directly.
    direct = get(proxy.url + "/pulp/content/main/shelf_reader-0.3-py3-none-any.whl")
    assert direct.status_code == 404
    assert not upstream.requests_for("shelf_reader-0.3", server="files")
    names = {p["name"] for p in get(proxy.index(), Accept=JSON).json()["projects"]}
    assert names == {"shelf-reader", "winonly"}


def test_pep658_metadata_proxied_or_read_from_the_wheel(proxy: Server, upstream: Upstream) -> None:
    (app,) = upstream.files_for("app-with-dep")
    got = get(f"{proxy.url}/pulp/content/main/{app.filename}.metadata")
    assert got.status_code == 200 and got.content == app.metadata
    assert hashlib.sha256(got.content).hexdigest() == app.metadata_sha256

    wheel = next(
        f for f in upstream.files_for("shelf-reader") if f.filename.endswith("0.2-py3-none-any.whl")
    )
    got = get(f"{proxy.url}/pulp/content/main/{wheel.filename}.metadata")
    with zipfile.ZipFile(io.BytesIO(wheel.data)) as z:
        expected = z.read("shelf_reader-0.2.dist-info/METADATA")
    assert got.status_code == 200 and got.content == expected
    sdist = get(f"{proxy.url}/pulp/content/main/shelf_reader-0.1.tar.gz.metadata")
    assert sdist.status_code == 404


def test_head_and_range_on_cached_files(proxy: Server, upstream: Upstream) -> None:
    wheel = next(
        f for f in upstream.files_for("shelf-reader") if f.filename.endswith("0.2-py3-none-any.whl")
    )
    url = f"{proxy.url}/pulp/content/main/{wheel.filename}"
    head = requests.head(url, timeout=10)
    assert head.status_code == 200 and int(head.headers["Content-Length"]) == wheel.size
    assert not upstream.requests_for(wheel.filename, server="files")  # HEAD fetches nothing
    full = get(url)
    assert full.content == wheel.data
    assert settle(proxy.data_dir)  # stored just after the client has its last byte
    part = get(url, Range="bytes=10-19")
    assert part.status_code == 206 and part.content == wheel.data[10:20]
    assert part.headers["Content-Range"] == f"bytes 10-19/{wheel.size}"
    head = requests.head(url, timeout=10)
    assert (
        head.headers["Accept-Ranges"] == "bytes" and head.headers["ETag"].strip('"') == wheel.sha256
    )
    assert len(upstream.requests_for(wheel.filename, server="files", method="GET")) == 1


def test_status_reports_storage_cache_and_upstream(proxy: Server, upstream: Upstream) -> None:
    wheel = upstream.files_for("meta-lib")[0]
    get(f"{proxy.url}/pulp/content/main/{wheel.filename}")
    assert settle(proxy.data_dir)  # stored, and counted, just after the client has it
    assert wait_until(lambda: get(proxy.url + "/pulp/api/v3/status/").json()["cache"]["files"])
    status = get(proxy.url + "/pulp/api/v3/status/").json()
    assert status["cache"]["size"] == wheel.size and status["cache"]["files"] == 1
    assert status["remotes"] == [
        {
            "name": "up",
            "url": upstream.index_url,
            "reachable": True,
            "checked_at": status["remotes"][0]["checked_at"],
        }
    ]
    assert status["storage"]["free"] > 0
    assert [p.name for p in stored_files(proxy.data_dir)] == [wheel.sha256]
