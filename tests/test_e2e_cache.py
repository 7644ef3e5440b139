"""The cache's size limit: least recently used files go first, never cutting a transfer short."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest
import requests

from support.servers import Server, config_text, stored_files, wait_until
from support.upstream import Upstream

pytestmark = pytest.mark.e2e


def payload_wheel(tmp_path: Path, name: str, size: int) -> Path:
    path = tmp_path / f"{name}-1.0-py3-none-any.whl"
    seed = hashlib.sha256(name.encode()).digest()
    path.write_bytes((seed * (size // len(seed) + 1))[:size])
    return path


def test_least_recently_used_files_are_evicted_over_the_limit(
    upstream: Upstream, live_server: Callable[..., Server], tmp_path: Path
) -> None:
    wheels = {n: payload_wheel(tmp_path, n, 100_000) for n in ("aaa", "bbb", "ccc", "ddd")}
    for name, path in wheels.items():
        upstream.add_file(name, path)
    proxy = live_server(config_text(upstream.index_url, tmp_path / "d", cache_max_size="250KB"))

    def url(name: str) -> str:
        return f"{proxy.url}/pulp/content/main/{wheels[name].name}"

    def sha(name: str) -> str:
        return hashlib.sha256(wheels[name].read_bytes()).hexdigest()

    def get(name: str) -> bytes:
        return requests.get(url(name), timeout=10).content

    def stored() -> set[str]:
        return {p.name for p in stored_files(proxy.data_dir)}

    def status() -> dict[str, Any]:
        return cast(
            dict[str, Any], requests.get(f"{proxy.url}/pulp/api/v3/status/", timeout=10).json()
        )

    assert get("aaa") == wheels["aaa"].read_bytes()
    assert get("bbb") == wheels["bbb"].read_bytes()
    # A file is stored, and its use recorded, just after its client has the last byte.
    assert wait_until(lambda: status()["cache"]["files"] == 2)
    get("aaa")  # a cache hit: "aaa" is now more recently used than "bbb"
    get("ccc")  # 300 KB > 250 KB: evict down to 225 KB

    # Bookkeeping and eviction run once the client has its last byte.
    assert wait_until(lambda: stored() == {sha("aaa"), sha("ccc")}), {
        n: sha(n) in stored() for n in wheels
    }

    # Uses are recorded at most once a minute per file, so "aaa" is now the oldest; a slow
    # reader holds it open while the next download evicts it.
    reader = requests.get(url("aaa"), timeout=10, stream=True)
    first = reader.raw.read(1000)
    get("ddd")
    assert wait_until(lambda: stored() == {sha("ccc"), sha("ddd")}), stored()
    rest = reader.raw.read()
    reader.close()
    assert first + rest == wheels["aaa"].read_bytes()  # the transfer in flight was not cut

    # An eviction removes a file, then its record: a moment apart
    expected = {"size": 200_000, "max_size": 250_000, "files": 2}
    assert wait_until(lambda: status()["cache"] == expected), status()
    # An evicted file is simply fetched again.
    assert requests.get(url("aaa"), timeout=10).content == wheels["aaa"].read_bytes()
    assert len(upstream.requests_for(wheels["aaa"].name, server="files", method="GET")) == 2


def test_invalid_configuration_stops_the_server_at_start(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[cache]\nmax_size = "a lot"\n')
    proc = subprocess.run(
        [sys.executable, "-m", "pullthrough.cli", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert "cache.max_size: expected a size like '20GB'" in proc.stderr


def test_a_client_of_a_file_being_downloaded_gets_its_bytes_as_they_come(
    upstream: Upstream, live_server: Callable[..., Server], tmp_path: Path
) -> None:
    """A second client of a big cold file (in the worker that fetches it) gets its bytes as
    the one download brings them, not nothing until the file is stored: pip gives up on a
    server silent for 15 s, so a download longer than that failed every other client."""
    path = payload_wheel(tmp_path, "slowbig", 2 * 2**20)
    upstream.add_file("slowbig", path)
    proxy = live_server(config_text(upstream.index_url, tmp_path / "d"))
    upstream.chunk_size, upstream.slow_files = 64 * 1024, 0.15  # 32 chunks: about 5 s
    url = f"{proxy.url}/pulp/content/main/{path.name}"
    first = requests.get(url, timeout=60, stream=True)
    try:
        assert first.status_code == 200
        second = requests.get(url, timeout=(5, 2))  # gives up after 2 s without a byte
        assert second.status_code == 200 and second.content == path.read_bytes()
        assert first.raw.read() == path.read_bytes()
    finally:
        first.close()
    assert len(upstream.requests_for(path.name, server="files", method="GET")) == 1


def test_a_stalled_first_client_does_not_hold_up_the_next(
    upstream: Upstream, live_server: Callable[..., Server], tmp_path: Path
) -> None:
    """The first request for an uncached file starts the download; it proceeds at the upstream's
    pace even when that client stops reading, so others get the file without waiting for it."""
    path = payload_wheel(tmp_path, "huge", 24 * 2**20)  # more than socket buffers can absorb
    upstream.add_file("huge", path)
    proxy = live_server(config_text(upstream.index_url, tmp_path / "d"))
    url = f"{proxy.url}/pulp/content/main/{path.name}"
    stalled = requests.get(url, timeout=60, stream=True)
    assert len(stalled.raw.read(4096)) == 4096  # ...and then reads nothing more
    try:
        started = time.monotonic()
        second = requests.get(url, timeout=60)
        assert second.status_code == 200 and second.content == path.read_bytes()
        assert time.monotonic() - started < 20
    finally:
        stalled.close()
    assert len(upstream.requests_for(path.name, server="files", method="GET")) == 1
