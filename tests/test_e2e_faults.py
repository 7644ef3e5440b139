"""A broken or slow upstream never corrupts the cache, and clients get clear errors."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from support.servers import Server, config_text, settle, stored_files, temporary_files
from support.upstream import Upstream, UpstreamFile

pytestmark = pytest.mark.e2e
JSON = "application/vnd.pypi.simple.v1+json"
STALE = "X-Pullthrough-Stale"


def wheel_of(
    upstream: Upstream, project: str = "shelf-reader", version: str = "0.2"
) -> UpstreamFile:
    return next(
        f for f in upstream.files_for(project) if f.filename.endswith(f"{version}-py3-none-any.whl")
    )


def fetch(url: str) -> tuple[int | None, bytes]:
    """Status and body as a client sees them; None when the transfer broke off."""
    try:
        with requests.get(url, timeout=15) as resp:
            return resp.status_code, resp.content
    except requests.RequestException:
        return None, b""


def test_upstream_timeout_is_a_504(
    upstream: Upstream, live_server: Callable[..., Server], tmp_path: Path
) -> None:
    proxy = live_server(
        config_text(upstream.index_url, tmp_path / "d", sock_read_timeout=0.5, max_retries=0)
    )
    upstream.delay = 2
    started = time.monotonic()
    resp = requests.get(proxy.index() + "shelf-reader/", timeout=15)
    assert resp.status_code == 504 and "timed out" in resp.text
    assert time.monotonic() - started < 2


def test_upstream_500_is_a_502_after_bounded_retries(
    upstream: Upstream, live_server: Callable[..., Server], tmp_path: Path
) -> None:
    proxy = live_server(config_text(upstream.index_url, tmp_path / "d"))
    upstream.fail_status = 500
    resp = requests.get(proxy.index() + "shelf-reader/", timeout=15)
    assert resp.status_code == 502 and "500" in resp.text
    assert len(upstream.requests_for("/simple/shelf-reader/")) == 2  # max_retries = 1

    upstream.fail_status, upstream.fail_times = 503, 1  # one failure, then a retry succeeds
    assert requests.get(proxy.index() + "winonly/", timeout=15).status_code == 200


def test_requests_waiting_for_a_download_that_times_out_share_its_504(
    upstream: Upstream, live_server: Callable[..., Server], tmp_path: Path
) -> None:
    """Requests for a cold file wait for the one download of it; when that download fails,
    they answer with its error at once rather than each try the upstream again in turn: with
    an upstream that accepts connections and never answers, the last of N clients waited N
    read timeouts, and the upstream was asked N times."""
    proxy = live_server(
        config_text(upstream.index_url, tmp_path / "d", sock_read_timeout=1, max_retries=0)
    )
    wheel = wheel_of(upstream)
    assert requests.get(proxy.index() + "shelf-reader/", timeout=15).status_code == 200
    upstream.delay, upstream.fault_scope = 30, "files"  # the upstream never answers for files
    url = f"{proxy.url}/pulp/content/main/{wheel.filename}"
    started = time.monotonic()
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: fetch(url)[0], range(6)))
    assert answers == [504] * 6
    assert time.monotonic() - started < 4  # one read timeout (1 s), not six in turn
    assert len(upstream.requests_for(wheel.path, server="files")) == 1

    upstream.reset_faults()  # a request that comes after the failure tries again
    assert fetch(url) == (200, wheel.data)


@pytest.mark.parametrize("fault", ["reset_files", "corrupt_files"])
def test_broken_download_leaves_nothing_and_the_next_request_heals(
    upstream: Upstream, live_server: Callable[..., Server], tmp_path: Path, fault: str
) -> None:
    proxy = live_server(config_text(upstream.index_url, tmp_path / "d"))
    wheel = wheel_of(upstream)
    url = f"{proxy.url}/pulp/content/main/{wheel.filename}"
    requests.get(proxy.index() + "shelf-reader/", timeout=10).raise_for_status()
    setattr(upstream, fault, True)
    status, body = fetch(url)
    assert body != wheel.data  # the client never receives a complete, bad file
    assert status in (None, 200, 502)
    assert stored_files(proxy.data_dir) == [] and temporary_files(proxy.data_dir) == []

    setattr(upstream, fault, False)
    status, body = fetch(url)
    assert status == 200 and body == wheel.data
    assert settle(proxy.data_dir)
    assert [p.name for p in stored_files(proxy.data_dir)] == [wheel.sha256]


def test_upstream_down_after_caching_serves_stale_copies(
    upstream: Upstream, live_server: Callable[..., Server], tmp_path: Path
) -> None:
    proxy = live_server(config_text(upstream.index_url, tmp_path / "d", cache_index_ttl="1s"))
    wheel = wheel_of(upstream)
    file_url = f"{proxy.url}/pulp/content/main/{wheel.filename}"
    assert requests.get(proxy.index() + "shelf-reader/", timeout=10).status_code == 200
    assert fetch(file_url) == (200, wheel.data)

    upstream.down()
    time.sleep(1.2)  # past the TTL: the proxy must try the upstream, fail, and fall back
    page = requests.get(proxy.index() + "shelf-reader/", headers={"Accept": JSON}, timeout=15)
    assert page.status_code == 200 and page.headers[STALE] == "true"
    assert wheel.filename in {f["filename"] for f in page.json()["files"]}
    with requests.get(file_url, timeout=15) as resp:
        assert resp.status_code == 200 and resp.content == wheel.data
    uncached = requests.get(proxy.index() + "meta-lib/", timeout=15)
    assert uncached.status_code == 502 and "unreachable" in uncached.text
