"""Range requests for files not cached yet, as lockers send them to read a wheel's index (its
end): answered with those bytes from the upstream at once, while the whole file is fetched
into the cache alongside (one download); HEAD and 200s say `Accept-Ranges: bytes`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from support.servers import Server, config_text, stored_files, wait_until
from support.upstream import Upstream

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
    # the upstream was asked for that range (its answer decides), not for a whole file first
    ranged = [r for r in upstream.requests_for(WHEEL, server="files") if r.header("range")]
    assert [r.header("range") for r in ranged] == [f"bytes={size + 10}-"]
    # stored meanwhile or not, the same range gets the same answer
    assert wait_until(lambda: len(stored_files(server.data_dir)) == 1, timeout=10)
    again = requests.get(url, headers={"Range": f"bytes={size + 10}-"}, timeout=10)
    assert (again.status_code, again.headers["Content-Range"]) == (416, f"bytes */{size}")
