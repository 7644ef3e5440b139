"""Fixtures for end-to-end tests: packages built here, a real upstream index on loopback, and the
proxy as a real server (gunicorn, or a threaded werkzeug server for fault tests)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

import pytest
from flask import Flask
from pytest_httpserver import HTTPServer
from werkzeug.serving import BaseWSGIServer, make_server

from pullthrough.app import create_app
from pullthrough.config import Settings, load_settings
from support.browser import ensure_chromium
from support.debian import Unavailable
from support.nginx import ensure_nginx
from support.packages import build_sdist, build_wheel
from support.postgres import postgres_available, postgres_server
from support.seaweed import S3Server, seaweed_available, seaweed_server
from support.servers import Server, free_port, wait_ready
from support.tools import clean_env
from support.upstream import Upstream


class FileOptions(TypedDict, total=False):
    """Keyword arguments for :meth:`Upstream.add_file`."""

    requires_python: str | None
    yanked: str | bool
    metadata: bool
    upload_time: str | None


@dataclass(frozen=True)
class Wheelhouse:
    """The packages every upstream in these tests serves."""

    files: dict[str, list[tuple[Path, FileOptions]]]


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Wheelhouse:
    out = tmp_path_factory.mktemp("wheelhouse")
    files: dict[str, list[tuple[Path, FileOptions]]] = {
        "shelf-reader": [
            (build_wheel(out, "shelf-reader", "0.1"), {"upload_time": "2020-01-01T00:00:00Z"}),
            (build_sdist(out, "shelf-reader", "0.1"), {"upload_time": "2020-01-01T00:00:00Z"}),
            (build_wheel(out, "shelf-reader", "0.2"), {"upload_time": "2021-01-01T00:00:00Z"}),
            (
                build_wheel(out, "shelf-reader", "0.3", requires_python=">=3.8"),
                {
                    "yanked": "broken",
                    "requires_python": ">=3.8",
                    "upload_time": "2022-01-01T00:00:00Z",
                },
            ),
            (build_wheel(out, "shelf-reader", "0.4rc1"), {"upload_time": "2023-01-01T00:00:00Z"}),
        ],
        "winonly": [
            (build_wheel(out, "winonly", "1.0", platform_tag="win_amd64"), {}),
            (build_sdist(out, "winonly", "1.0"), {}),
        ],
        "app-with-dep": [
            (
                build_wheel(out, "app-with-dep", "1.0", requires_dist=["shelf-reader>=0.1"]),
                {"metadata": True},
            ),
        ],
        "meta-lib": [(build_wheel(out, "meta-lib", "2.0"), {"metadata": True})],
    }
    return Wheelhouse(files)


def fill(upstream: Upstream, wheelhouse: Wheelhouse) -> Upstream:
    for project, entries in wheelhouse.files.items():
        for path, options in entries:
            upstream.add_file(project, path, **options)
    return upstream


def _required(what: str, missing: str | None) -> None:
    """Skip a test whose program is missing (`missing` says why) - except on CI (CI set), where
    that fails: CI installs everything the tests need."""
    if missing is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must test against {what}: {missing}")
        pytest.skip(missing)


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A SQLAlchemy URL to an empty database on a PostgreSQL server started for this session.
    Its server binaries are installed when missing (support.debian); skipped where that cannot
    be done, except on CI (CI set), where that fails."""
    _required("PostgreSQL", postgres_available())
    with postgres_server(tmp_path_factory.mktemp("postgres")) as url:
        yield url


def _program(what: str, ensure: Callable[[], str]) -> str:
    """A program from Debian's packages, its path (support.debian installs it when missing, as
    root); skipped where it cannot be had, except on CI (CI set), where that fails."""
    try:
        return ensure()
    except Unavailable as exc:
        _required(what, str(exc))
        raise


@pytest.fixture(scope="session")
def nginx() -> str:
    """Debian's nginx: its path."""
    return _program("nginx", ensure_nginx)


@pytest.fixture(scope="session")
def chromium() -> str:
    """Headless Chromium (support.browser): its path."""
    return _program("Chromium", ensure_chromium)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """An S3 server (SeaweedFS, support.seaweed) started for this session, one per xdist worker;
    tests share it, so each uses buckets of its own. Skipped where `weed` is missing, except on
    CI (CI set), where that fails."""
    _required("an S3 server", seaweed_available())
    with seaweed_server(tmp_path_factory.mktemp("seaweed")) as server:
        yield server


@pytest.fixture
def scripted() -> Iterator[HTTPServer]:
    """An index on 127.0.0.1 that answers as the test says (pytest-httpserver), and notes what
    it was asked (`log`). It is also a forward proxy: a remote whose proxy_url it is sends every
    request to it, so that URLs at literal or made-up addresses reach it, and only it."""
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    yield server
    if server.is_running():
        server.stop()


@pytest.fixture
def upstream(wheelhouse: Wheelhouse) -> Iterator[Upstream]:
    with Upstream() as up:
        yield fill(up, wheelhouse)


# The gunicorn configuration the README gives for running gunicorn directly
SHIPPED_GUNICORN_CONF = Path(__file__).resolve().parent.parent / "deploy" / "gunicorn.conf.py"


@pytest.fixture
def gunicorn_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start `pullthrough serve` (gunicorn, 2 workers) with a config file, or with
    `start="gunicorn"` gunicorn run directly with the shipped configuration (support.servers
    STARTS); stopped at teardown."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(text: str, *, workers: int = 2, start: str = "serve") -> Server:
        config = tmp_path / f"pullthrough-{len(procs)}.toml"
        config.write_text(text)
        port = free_port()
        log = open(tmp_path / f"server-{len(procs)}.log", "wb")  # noqa: SIM115
        if start == "serve":
            command = ["-m", "pullthrough.cli", "serve", "--config", str(config)]
            command += ["--bind", f"127.0.0.1:{port}", "--workers", str(workers)]
            env = clean_env()
        else:
            assert start == "gunicorn", start
            command = ["-m", "gunicorn", "-c", str(SHIPPED_GUNICORN_CONF)]
            env = clean_env(
                PULLTHROUGH_CONFIG=str(config),
                PULLTHROUGH_BIND=f"127.0.0.1:{port}",
                PULLTHROUGH_WORKERS=str(workers),
            )
        proc = subprocess.Popen(
            [sys.executable, *command],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
        log.close()
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        wait_ready(url + "/pulp/api/v3/status/", proc)
        data_dir = Path(load_settings(config, environ={}).server.data_dir)
        return Server(url, data_dir, proc.pid)

    yield start
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """The app in a threaded werkzeug server in this process (fast; for fault tests)."""
    running: list[tuple[BaseWSGIServer, threading.Thread, Flask]] = []

    def start(settings: Settings | str) -> Server:
        if isinstance(settings, str):
            config = tmp_path / f"live-{len(running)}.toml"
            config.write_text(settings)
            settings = load_settings(config, environ={})
        app = create_app(settings)
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        running.append((server, thread, app))
        return Server(f"http://127.0.0.1:{server.server_port}", settings.server.data_dir)

    yield start
    for server, thread, app in running:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        app.extensions["pullthrough"].close()


SERVER_FIXTURES = {"gunicorn_server", "live_server"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """End-to-end tests are named and marked alike: exactly the tests of `test_e2e_*.py` files
    carry the `e2e` mark, and every test that starts a server of ours is one of them."""
    wrong = []
    for item in items:
        named = item.path.name.startswith("test_e2e_")
        marked = item.get_closest_marker("e2e") is not None
        serves = bool(SERVER_FIXTURES & set(getattr(item, "fixturenames", ())))
        if named != marked or (serves and not named):
            wrong.append(item.nodeid)
    if wrong:
        raise pytest.UsageError(
            "end-to-end tests live in test_e2e_*.py files marked e2e: " + ", ".join(wrong)
        )
