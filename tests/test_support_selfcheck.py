"""Self-checks for tests/support: the package builders and the fake upstream index."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import socket
import subprocess
import tarfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin

import pytest
import requests

from support.packages import build_sdist, build_wheel, sha256_of
from support.tools import make_venv, run_pip
from support.upstream import HTML_V1, JSON_V1, Upstream

TIMEOUT = 5
PIP_ACCEPT = f"{JSON_V1}, {HTML_V1}; q=0.1, text/html; q=0.01"


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.trust_env = False  # never send loopback traffic through a proxy
        yield session


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with Upstream() as up:
        yield up


def _record_hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def test_build_wheel_is_valid_and_reproducible(tmp_path: Path) -> None:
    path = build_wheel(
        tmp_path / "a",
        "My.Pkg",
        "1.0",
        requires_python=">=3.8",
        requires_dist=["foo>=1", 'bar; python_version < "4"'],
        python_tag="py2.py3",
    )
    assert path.name == "my_pkg-1.0-py2.py3-none-any.whl"
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        assert names == {
            "my_pkg/__init__.py",
            "my_pkg-1.0.dist-info/METADATA",
            "my_pkg-1.0.dist-info/WHEEL",
            "my_pkg-1.0.dist-info/RECORD",
        }
        assert zf.read("my_pkg/__init__.py") == b'__version__ = "1.0"\n'
        metadata = zf.read("my_pkg-1.0.dist-info/METADATA").decode()
        assert "Metadata-Version: 2.1\nName: My.Pkg\nVersion: 1.0\n" in metadata
        assert "Requires-Python: >=3.8\n" in metadata
        assert 'Requires-Dist: bar; python_version < "4"\n' in metadata
        wheel = zf.read("my_pkg-1.0.dist-info/WHEEL").decode()
        assert "Root-Is-Purelib: true" in wheel
        assert re.findall(r"^Tag: (.*)$", wheel, re.M) == ["py2-none-any", "py3-none-any"]
        record = zf.read("my_pkg-1.0.dist-info/RECORD").decode().splitlines()
        rows = {line.split(",")[0]: line.split(",")[1:] for line in record}
        assert rows["my_pkg-1.0.dist-info/RECORD"] == ["", ""]
        for name in names - {"my_pkg-1.0.dist-info/RECORD"}:
            data = zf.read(name)
            assert rows[name] == [_record_hash(data), str(len(data))]
    again = build_wheel(
        tmp_path / "b",
        "My.Pkg",
        "1.0",
        requires_python=">=3.8",
        requires_dist=["foo>=1", 'bar; python_version < "4"'],
        python_tag="py2.py3",
    )
    assert sha256_of(again) == sha256_of(path) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_sdist_layout_and_offline_install(tmp_path: Path) -> None:
    sdist = build_sdist(tmp_path / "dist", "Hello-World", "2.0", requires_python=">=3")
    assert sdist.name == "hello_world-2.0.tar.gz"
    with tarfile.open(sdist) as tar:
        assert set(tar.getnames()) == {
            "hello_world-2.0/PKG-INFO",
            "hello_world-2.0/pyproject.toml",
            "hello_world-2.0/backend.py",
            "hello_world-2.0/hello_world/__init__.py",
        }
    wheel = build_wheel(tmp_path / "dist", "other.pkg", "3.1")
    python = make_venv(tmp_path / "venv")
    run_pip(["install", "--no-index", str(sdist), str(wheel)], python=python)
    out = subprocess.run(
        [
            str(python),
            "-c",
            "import hello_world, other_pkg; print(hello_world.__version__, other_pkg.__version__)",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert out.stdout.split() == ["2.0", "3.1"]


def test_index_pages_json_and_html(
    tmp_path: Path, upstream: Upstream, http: requests.Session
) -> None:
    whl = upstream.add_file(
        "Demo.Pkg",
        build_wheel(tmp_path, "Demo.Pkg", "1.0"),
        requires_python=">=3.8,<4",
        metadata=True,
        upload_time="2024-01-02T03:04:05.000000Z",
    )
    sdist = upstream.add_file(
        "Demo.Pkg", build_sdist(tmp_path, "Demo.Pkg", "0.9"), yanked="broken <build>"
    )
    page = upstream.index_url + "demo-pkg/"

    r = http.get(page, headers={"Accept": PIP_ACCEPT}, timeout=TIMEOUT)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == JSON_V1
    doc = r.json()
    assert doc["meta"] == {"api-version": "1.1"}
    assert doc["name"] == "demo-pkg"
    assert doc["versions"] == ["0.9", "1.0"]
    first, second = doc["files"]
    assert first == {
        "filename": "demo_pkg-1.0-py3-none-any.whl",
        "url": upstream.file_url(whl),
        "hashes": {"sha256": whl.sha256},
        "requires-python": ">=3.8,<4",
        "yanked": False,
        "core-metadata": {"sha256": whl.metadata_sha256},
        "dist-info-metadata": {"sha256": whl.metadata_sha256},
        "size": whl.size,
        "upload-time": "2024-01-02T03:04:05.000000Z",
    }
    assert second["yanked"] == "broken <build>"
    assert second["core-metadata"] is False
    assert "upload-time" not in second
    assert first["url"].startswith(f"http://127.0.0.1:{upstream.files_port}/files/")

    # HTML: default for no Accept / */*, escaped attributes, hash fragments
    r = http.get(page, headers={"Accept": "*/*"}, timeout=TIMEOUT)
    assert r.headers["Content-Type"] == "text/html; charset=utf-8"
    text = r.text
    assert '<meta name="pypi:repository-version" content="1.1">' in text
    assert f'href="{upstream.file_url(whl)}#sha256={whl.sha256}"' in text
    assert 'data-requires-python="&gt;=3.8,&lt;4"' in text
    assert 'data-yanked="broken &lt;build&gt;"' in text
    assert f'data-core-metadata="sha256={whl.metadata_sha256}"' in text
    assert f'data-dist-info-metadata="sha256={whl.metadata_sha256}"' in text
    assert (
        http.get(page, headers={"Accept": HTML_V1}, timeout=TIMEOUT).headers["Content-Type"]
        == HTML_V1
    )

    # ETag / 304
    etag = r.headers["ETag"]
    r304 = http.get(page, headers={"Accept": "*/*", "If-None-Match": etag}, timeout=TIMEOUT)
    assert r304.status_code == 304 and r304.content == b""
    # the JSON variant has another ETag
    rj = http.get(page, headers={"Accept": JSON_V1, "If-None-Match": etag}, timeout=TIMEOUT)
    assert rj.status_code == 200

    # redirects and 404
    r = http.get(upstream.index_url + "Demo_Pkg/", allow_redirects=False, timeout=TIMEOUT)
    assert r.status_code == 301 and r.headers["Location"].endswith("/simple/demo-pkg/")
    r = http.get(upstream.index_url + "demo-pkg", allow_redirects=False, timeout=TIMEOUT)
    assert r.status_code == 301 and r.headers["Location"].endswith("/simple/demo-pkg/")
    assert http.get(upstream.index_url + "nope/", timeout=TIMEOUT).status_code == 404

    # project list
    r = http.get(upstream.index_url, headers={"Accept": JSON_V1}, timeout=TIMEOUT)
    assert r.json() == {"meta": {"api-version": "1.1"}, "projects": [{"name": "Demo.Pkg"}]}
    r = http.get(upstream.index_url, timeout=TIMEOUT)
    assert '<a href="/simple/demo-pkg/">Demo.Pkg</a>' in r.text

    # files: GET, HEAD, PEP 658 metadata
    r = http.get(upstream.file_url(whl), timeout=TIMEOUT)
    assert r.content == whl.data and r.headers["Content-Length"] == str(whl.size)
    r = http.head(upstream.file_url(sdist), timeout=TIMEOUT)
    assert r.status_code == 200 and r.headers["Content-Length"] == str(sdist.size)
    r = http.get(upstream.metadata_url(whl), timeout=TIMEOUT)
    assert hashlib.sha256(r.content).hexdigest() == whl.metadata_sha256
    assert b"Name: Demo.Pkg" in r.content
    assert http.get(upstream.metadata_url(sdist), timeout=TIMEOUT).status_code == 404

    # HTML only
    upstream.json_enabled = False
    r = http.get(page, headers={"Accept": PIP_ACCEPT}, timeout=TIMEOUT)
    assert r.headers["Content-Type"] == HTML_V1

    log = upstream.requests_for("/files/", server="files")
    assert [rec.method for rec in log] == ["GET", "HEAD", "GET", "GET"]
    assert all(rec.status in (200, 404) for rec in log)
    assert upstream.requests_for("/simple/demo-pkg/")[0].header("accept") == PIP_ACCEPT
    upstream.clear_log()
    assert upstream.log == []
    assert upstream.errors == []


def test_relative_urls_mode(tmp_path: Path, http: requests.Session) -> None:
    with Upstream(relative_urls=True) as up:
        f = up.add_file("rel", build_wheel(tmp_path, "rel", "1.0"))
        page = up.project_url("rel")
        html_text = http.get(page, timeout=TIMEOUT).text
        href = re.search(r'href="([^"]+)"', html_text)
        assert href is not None and href.group(1).startswith("../../files/")
        url = urljoin(page, href.group(1).split("#")[0])
        assert url == up.file_url(f) and url.startswith(up.root_url)
        assert http.get(url, timeout=TIMEOUT).content == f.data
        doc = http.get(page, headers={"Accept": JSON_V1}, timeout=TIMEOUT).json()
        assert urljoin(page, doc["files"][0]["url"]) == url
        assert '<a href="rel/">rel</a>' in http.get(up.index_url, timeout=TIMEOUT).text
        assert up.requests_for("/files/", server="index")
        assert not up.requests_for(server="files")


@pytest.mark.parametrize(
    ("options", "file_server"),
    [({}, "files"), ({"json_enabled": False, "relative_urls": True}, "index")],
    ids=["json-absolute", "html-relative"],
)
def test_pip_download_via_upstream(
    tmp_path: Path, options: dict[str, bool], file_server: str
) -> None:
    with Upstream(**options) as upstream:
        wheel = build_wheel(tmp_path / "src", "piptest", "1.0")
        f = upstream.add_file("piptest", wheel, metadata=True)
        upstream.add_file("piptest", build_wheel(tmp_path / "src", "piptest", "2.0"))
        dest = tmp_path / "dl"
        args = ["download", "--no-deps", "--index-url", upstream.index_url, "-d", str(dest)]
        run_pip([*args, "piptest==1.0"])
        assert sha256_of(dest / f.filename) == f.sha256
        # pip read the project page (JSON when offered), then fetched the PEP 658 metadata
        # and the wheel from the file server (the index server in relative mode)
        page = upstream.requests_for("/simple/piptest/", server="index")
        assert [r.status for r in page] == [200]
        assert JSON_V1 in (page[0].header("accept") or "")
        downloads = upstream.requests_for("/files/")
        assert [(r.server, r.method, r.path, r.status) for r in downloads] == [
            (file_server, "GET", f.path + ".metadata", 200),
            (file_server, "GET", f.path, 200),
        ]
        assert upstream.errors == []


def test_fault_knobs(tmp_path: Path, upstream: Upstream, http: requests.Session) -> None:
    f = upstream.add_file("faulty", build_wheel(tmp_path, "faulty", "1.0"))
    page, url = upstream.project_url("faulty"), upstream.file_url(f)

    upstream.fail_status = 503
    assert http.get(page, timeout=TIMEOUT).status_code == 503
    assert http.get(url, timeout=TIMEOUT).status_code == 503
    upstream.fail_status, upstream.fail_times = 500, 2
    codes = [http.get(page, timeout=TIMEOUT).status_code for _ in range(3)]
    assert codes == [500, 500, 200] and upstream.fail_status is None

    upstream.fail_status, upstream.fault_scope = 502, "files"
    assert http.get(page, timeout=TIMEOUT).status_code == 200
    assert http.get(url, timeout=TIMEOUT).status_code == 502
    upstream.reset_faults()

    upstream.delay = 1.0
    with pytest.raises(requests.exceptions.ReadTimeout):
        http.get(page, timeout=0.2)
    upstream.delay = 0

    upstream.corrupt_files = True
    r = http.get(url, timeout=TIMEOUT)
    assert len(r.content) == f.size and hashlib.sha256(r.content).hexdigest() != f.sha256
    upstream.corrupt_files = False

    upstream.reset_files = True
    broken = (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError)
    with pytest.raises(broken):
        http.get(url, timeout=TIMEOUT)
    with http.get(url, stream=True, timeout=TIMEOUT) as r:
        assert r.headers["Content-Length"] == str(f.size)
        got = io.BytesIO()
        with pytest.raises(broken):
            for chunk in r.iter_content(256):
                got.write(chunk)
        assert f.data[: f.size // 2].startswith(got.getvalue())
    # on the wire: full Content-Length announced, exactly the first half sent, then EOF
    with socket.create_connection(("127.0.0.1", upstream.files_port), timeout=TIMEOUT) as s:
        s.sendall(f"GET {f.path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        raw = b"".join(iter(lambda: s.recv(65536), b""))
    head, _, body = raw.partition(b"\r\n\r\n")
    assert f"Content-Length: {f.size}".encode() in head
    assert body == f.data[: f.size // 2]
    upstream.reset_files = False

    upstream.slow_files, upstream.chunk_size = 0.1, max(1, f.size // 3)
    start = time.monotonic()
    assert http.get(url, timeout=TIMEOUT).content == f.data
    assert time.monotonic() - start >= 0.3
    upstream.reset_faults()

    # down(): connections refused at once, on both ports; up(): same URLs work again
    upstream.down()
    for target in (page, url):
        start = time.monotonic()
        with pytest.raises(requests.exceptions.ConnectionError):
            http.get(target, timeout=TIMEOUT)
        assert time.monotonic() - start < 1.0
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", upstream.index_port)) != 0
    upstream.up()
    assert http.get(page, timeout=TIMEOUT).status_code == 200
    assert http.get(url, timeout=TIMEOUT).content == f.data
    assert upstream.errors == []
    assert (
        json.loads(http.get(page, headers={"Accept": JSON_V1}, timeout=TIMEOUT).content)["files"][
            0
        ]["filename"]
        == f.filename
    )


def test_stop_is_bounded_with_slow_download(tmp_path: Path, http: requests.Session) -> None:
    up = Upstream().start()
    try:
        f = up.add_file("slow", build_wheel(tmp_path, "slow", "1.0"))
        up.slow_files, up.chunk_size = 5.0, 64
        with http.get(up.file_url(f), stream=True, timeout=TIMEOUT) as r:
            assert r.status_code == 200
            start = time.monotonic()
            up.stop()
            assert time.monotonic() - start < 2.0
    finally:
        up.stop()
