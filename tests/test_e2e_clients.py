"""Real pip and uv against the proxy running under gunicorn, with a real upstream on loopback."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import requests

from support.packages import sha256_of
from support.servers import PROXY_UA, Server, config_text, settle, stored_files
from support.tools import clean_env, make_venv, run_pip
from support.upstream import Upstream

if TYPE_CHECKING:
    from conftest import Wheelhouse

pytestmark = pytest.mark.e2e


def versions_in(python: Path, *modules: str) -> list[str]:
    code = "; ".join(f"import {m}; print({m}.__version__)" for m in modules)
    out = subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    return out.stdout.split()


def assert_only_the_proxy_reached_upstream(upstream: Upstream) -> None:
    agents = {rec.header("user-agent") or "" for rec in upstream.log}
    assert agents and all(a.startswith(PROXY_UA) for a in agents), agents


def test_pip_install_resolves_dependencies_through_the_proxy(
    upstream: Upstream,
    wheelhouse: Wheelhouse,
    gunicorn_server: Callable[..., Server],
    tmp_path: Path,
) -> None:
    server = gunicorn_server(config_text(upstream.index_url, tmp_path / "data"))
    python = make_venv(tmp_path / "venv")
    run_pip(["install", "--index-url", server.index(), "app-with-dep"], python=python)

    # 0.3 is yanked and 0.4rc1 a prerelease: pip must have seen both flags through the proxy.
    assert versions_in(python, "app_with_dep", "shelf_reader") == ["1.0", "0.2"]
    assert_only_the_proxy_reached_upstream(upstream)
    assert upstream.requests_for("shelf_reader-0.2-py3-none-any.whl", server="files")
    assert upstream.requests_for("app_with_dep-1.0-py3-none-any.whl.metadata", server="files")
    assert settle(server.data_dir)  # the last file is stored just after pip has it
    stored = {p.name for p in stored_files(server.data_dir)}
    wanted = {
        sha256_of(path)
        for project in ("app-with-dep", "shelf-reader")
        for path, _ in wheelhouse.files[project]
        if path.name in ("app_with_dep-1.0-py3-none-any.whl", "shelf_reader-0.2-py3-none-any.whl")
    }
    assert len(wanted) == 2 and wanted <= stored


@pytest.mark.slow
def test_pip_download_and_sdist_install_then_served_from_cache_with_upstream_down(
    upstream: Upstream,
    wheelhouse: Wheelhouse,
    gunicorn_server: Callable[..., Server],
    tmp_path: Path,
) -> None:
    server = gunicorn_server(config_text(upstream.index_url, tmp_path / "data"))
    dest = tmp_path / "dl"
    run_pip(
        ["download", "--no-deps", "--index-url", server.index(), "-d", str(dest)]
        + ["shelf-reader==0.1", "--no-binary", ":all:"]
    )
    (sdist,) = dest.iterdir()
    original = next(p for p, _ in wheelhouse.files["shelf-reader"] if p.name == sdist.name)
    assert sdist.read_bytes() == original.read_bytes()

    python = make_venv(tmp_path / "venv")
    run_pip(["install", "--index-url", server.index(), "shelf-reader==0.2"], python=python)
    assert versions_in(python, "shelf_reader") == ["0.2"]

    # winonly has a windows-only wheel and an sdist: pip on linux must build the sdist.
    run_pip(["install", "--index-url", server.index(), "winonly"], python=python)
    assert versions_in(python, "winonly") == ["1.0"]
    assert upstream.requests_for("winonly-1.0.tar.gz", server="files")
    assert not upstream.requests_for("win_amd64", server="files")

    upstream.down()  # pages are within their TTL and the files are cached
    python2 = make_venv(tmp_path / "venv2")
    run_pip(["install", "--index-url", server.index(), "shelf-reader==0.2"], python=python2)
    assert versions_in(python2, "shelf_reader") == ["0.2"]
    failed = run_pip(
        ["install", "--index-url", server.index(), "meta-lib"], python=python2, check=False
    )
    assert failed.returncode != 0  # never cached: the proxy cannot invent it


def test_uv_pip_install_and_exclude_newer(
    upstream: Upstream, gunicorn_server: Callable[..., Server], tmp_path: Path
) -> None:
    server = gunicorn_server(config_text(upstream.index_url, tmp_path / "data"))
    python = make_venv(tmp_path / "venv")
    uv = [sys.executable, "-m", "uv", "pip", "install", "--python", str(python)]
    uv += ["--index-url", server.index(), "--cache-dir", str(tmp_path / "uvcache")]
    env = clean_env()
    subprocess.run(uv + ["shelf-reader"], env=env, check=True, timeout=60, capture_output=True)
    assert versions_in(python, "shelf_reader") == ["0.2"]

    # upload-time from the upstream reaches uv: only 0.1 was uploaded before mid-2020.
    cmd = uv + ["--reinstall", "--exclude-newer", "2020-06-01T00:00:00Z", "shelf-reader"]
    subprocess.run(cmd, env=env, check=True, timeout=60, capture_output=True)
    assert versions_in(python, "shelf_reader") == ["0.1"]
    assert_only_the_proxy_reached_upstream(upstream)


def test_concurrent_requests_for_one_uncached_file_download_it_once(
    upstream: Upstream, gunicorn_server: Callable[..., Server], tmp_path: Path
) -> None:
    big = tmp_path / "big-1.0-py3-none-any.whl"
    big.write_bytes(hashlib.sha256(b"seed").digest() * 65536)  # 2 MiB
    upstream.add_file("big", big)
    upstream.chunk_size = 64 * 1024
    upstream.slow_files = 0.03  # ~1 s per download, so the requests overlap
    server = gunicorn_server(config_text(upstream.index_url, tmp_path / "data"), workers=2)
    requests.get(server.index() + "big/", timeout=10).raise_for_status()
    url = f"{server.url}/pulp/content/main/{big.name}"

    def fetch(_: int) -> str:
        # a fresh connection each time, so gunicorn spreads them over both workers
        with requests.get(url, timeout=60, headers={"Connection": "close"}) as resp:
            resp.raise_for_status()
            return hashlib.sha256(resp.content).hexdigest()

    with ThreadPoolExecutor(8) as pool:
        digests = list(pool.map(fetch, range(8)))
    assert digests == [sha256_of(big)] * 8
    downloads = upstream.requests_for(big.name, server="files", method="GET")
    assert len(downloads) == 1, downloads
