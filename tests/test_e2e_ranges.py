"""Range requests for files not cached yet, as lockers send them to read a wheel's index (its
end): answered with those bytes from the upstream at once, while the whole file is fetched
into the cache alongside (one download); HEAD and 200s say `Accept-Ranges: bytes`."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from support.faults import big_wheel
from support.packages import build_wheel
from support.servers import Server, config_text, stored_files, wait_until
from support.tools import clean_env, make_venv
from support.upstream import Upstream, corrupted

pytestmark = pytest.mark.e2e
WHEEL = "shelf_reader-0.2-py3-none-any.whl"
OTHER = "shelf_reader-0.1-py3-none-any.whl"


def data_of(upstream: Upstream, filename: str) -> bytes:
    (found,) = [f.data for f in upstream.files_for("shelf-reader") if f.filename == filename]
    return found


def full_gets(upstream: Upstream, filename: str) -> int:
    return sum(
        1
        for r in upstream.requests_for(filename, server="files")
        if r.method == "GET" and not r.header("range")
    )


def test_a_range_of_a_file_not_cached_comes_at_once_and_the_file_is_cached(
    upstream: Upstream, gunicorn_server: Callable[..., Server], tmp_path: Path
) -> None:
    server = gunicorn_server(config_text(upstream.index_url, tmp_path / "data"))
    url = f"{server.url}/pulp/content/main/{WHEEL}"
    data = data_of(upstream, WHEEL)
    size = len(data)

    head = requests.head(url, timeout=10)
    assert head.headers["Accept-Ranges"] == "bytes"
    assert int(head.headers["Content-Length"]) == size
    assert not upstream.requests_for(WHEEL, server="files")  # HEAD starts no download

    tail = requests.get(url, headers={"Range": "bytes=-22"}, timeout=10)  # the end record
    assert tail.status_code == 206
    assert tail.content == data[-22:]
    assert tail.headers["Content-Range"] == f"bytes {size - 22}-{size - 1}/{size}"
    ranged = [r for r in upstream.requests_for(WHEEL, server="files") if r.header("range")]
    assert [r.header("range") for r in ranged] == ["bytes=-22"]

    middle = requests.get(url, headers={"Range": "bytes=10-19"}, timeout=10)
    assert (middle.status_code, middle.content) == (206, data[10:20])
    # the whole file was fetched alongside, once, and stored
    wait_until(lambda: len(stored_files(server.data_dir)) == 1, timeout=10)
    assert full_gets(upstream, WHEEL) == 1
    upstream.clear_log()
    again = requests.get(url, headers={"Range": "bytes=-22"}, timeout=10)
    assert (again.status_code, again.content) == (206, data[-22:])
    whole = requests.get(url, timeout=10)
    assert (whole.content, whole.headers["Accept-Ranges"]) == (data, "bytes")
    assert not upstream.requests_for(WHEEL, server="files")  # from the cache now


def test_without_ranges_upstream_the_whole_file_is_sent(
    upstream: Upstream, gunicorn_server: Callable[..., Server], tmp_path: Path
) -> None:
    server = gunicorn_server(config_text(upstream.index_url, tmp_path / "data"))
    url = f"{server.url}/pulp/content/main/{OTHER}"
    data = data_of(upstream, OTHER)
    upstream.ranges = False  # an upstream that ignores Range
    answer = requests.get(url, headers={"Range": "bytes=0-9"}, timeout=10)
    # the file through the cache as usual: whole (200), or that range once it is stored (206)
    expected = {200: data, 206: data[:10]}
    assert answer.content == expected[answer.status_code]
    assert answer.headers["Accept-Ranges"] == "bytes"
    assert full_gets(upstream, OTHER) == 1
    # several ranges at once: the whole file too (a server may ignore Range)
    upstream.ranges = True
    url = f"{server.url}/pulp/content/main/{WHEEL}"
    many = requests.get(url, headers={"Range": "bytes=0-1,5-6"}, timeout=10)
    assert (many.status_code, many.content) == (200, data_of(upstream, WHEEL))


def test_a_range_beyond_a_file_not_cached_is_416_with_its_size(
    upstream: Upstream, gunicorn_server: Callable[..., Server], tmp_path: Path
) -> None:
    server = gunicorn_server(config_text(upstream.index_url, tmp_path / "data"))
    url = f"{server.url}/pulp/content/main/{WHEEL}"
    size = len(data_of(upstream, WHEEL))
    beyond = requests.get(url, headers={"Range": f"bytes={size + 10}-"}, timeout=10)
    assert beyond.status_code == 416, beyond.text[:300]
    assert beyond.headers["Content-Range"] == f"bytes */{size}"
    # not a range that could be relayed: the file was fetched and verified, the store answered
    assert not [r for r in upstream.requests_for(WHEEL, server="files") if r.header("range")]
    assert full_gets(upstream, WHEEL) == 1
    # stored now, the same range gets the same answer
    assert wait_until(lambda: len(stored_files(server.data_dir)) == 1, timeout=10)
    again = requests.get(url, headers={"Range": f"bytes={size + 10}-"}, timeout=10)
    assert (again.status_code, again.headers["Content-Range"]) == (416, f"bytes */{size}")


def test_uv_installs_a_cold_wheel_an_html_index_gives_no_size_of(
    gunicorn_server: Callable[..., Server], tmp_path: Path
) -> None:
    """An index without PEP 700 sizes (HTML only) nor PEP 658 metadata: uv asks HEAD for the
    wheel's length to read its end by range. A file not stored yet has no known length: HEAD
    leaves Content-Length out (RFC 9110 8.6) rather than saying 0, which uv read as an empty
    zip ("unable to locate the end of central directory record")."""
    with Upstream(json_enabled=False) as html_only:
        wanted = html_only.add_file("cold-lib", build_wheel(tmp_path / "wheels", "cold-lib", "1.0"))
        server = gunicorn_server(config_text(html_only.index_url, tmp_path / "data"))
        url = f"{server.url}/pulp/content/main/{wanted.filename}"
        head = requests.head(url, timeout=10)
        assert head.status_code == 200 and head.headers["Accept-Ranges"] == "bytes"
        assert "Content-Length" not in head.headers, head.headers
        assert not html_only.requests_for(wanted.filename, server="files")  # still not fetched

        python = make_venv(tmp_path / "venv")
        uv = [sys.executable, "-m", "uv", "pip", "install", "--python", str(python)]
        uv += ["--index-url", server.index(), "--cache-dir", str(tmp_path / "uvcache"), "cold-lib"]
        done = subprocess.run(uv, env=clean_env(), timeout=60, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert list(python.parent.parent.glob("lib/python3*/site-packages/cold_lib-1.0.dist-info"))
        assert html_only.requests_for(wanted.filename, server="files")  # through the proxy
        stored = requests.head(url, timeout=10)
        assert int(stored.headers["Content-Length"]) == wanted.size  # known once stored


def test_without_a_size_on_the_index_the_upstreams_total_places_the_guard(
    gunicorn_server: Callable[..., Server], tmp_path: Path
) -> None:
    """An HTML-only index gives no sizes: a locker's read of a wheel's end still comes straight
    from the upstream, placed by the total its 206 states; the whole file by range waits for
    the verified file. An upstream whose bytes fail the hash shows which is which: the end
    comes as it sent it (no part can be checked), the whole file is a 502."""
    with Upstream(json_enabled=False) as html_only:
        big = html_only.add_file("big-lib", big_wheel(tmp_path / "big", "big-lib", "1.0", 2**20))
        server = gunicorn_server(config_text(html_only.index_url, tmp_path / "data"))
        url = f"{server.url}/pulp/content/main/{big.filename}"
        html_only.corrupt_files = True
        bad = corrupted(big.data)

        tail = requests.get(url, headers={"Range": "bytes=-10000"}, timeout=10)
        assert (tail.status_code, tail.content) == (206, bad[-10000:])
        asked = [
            r.header("range") for r in html_only.requests_for(big.filename) if r.header("range")
        ]
        assert asked == ["bytes=-10000"]
        whole = requests.get(url, headers={"Range": "bytes=0-"}, timeout=30)
        assert whole.status_code == 502 and big.sha256 in whole.text, whole.text[:300]
        assert stored_files(server.data_dir) == []

        html_only.reset_faults()
        whole = requests.get(url, headers={"Range": "bytes=0-"}, timeout=30)
        assert (whole.status_code, whole.content) == (206, big.data)
        assert wait_until(lambda: len(stored_files(server.data_dir)) == 1, timeout=10)
