"""Helpers for tests that run the proxy as a real server."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

PROXY_UA = "pullthrough/"  # the User-Agent prefix the proxy sends upstream
# The ways to start a server (the gunicorn_server fixture's `start`): `pullthrough serve`, and
# gunicorn run directly with the shipped configuration, `gunicorn -c deploy/gunicorn.conf.py`
# with the config file named by PULLTHROUGH_CONFIG (as README.md's Deploy says)
STARTS = ("serve", "gunicorn")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def serving(
    handler: type[BaseHTTPRequestHandler], tls: ssl.SSLContext | None = None
) -> Iterator[str]:
    """A server on 127.0.0.1 for the block: its URL (https:// with `tls`)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def wait_ready(url: str, proc: subprocess.Popen[bytes] | None = None, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if requests.get(url, timeout=2).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"server not ready at {url}")


def config_text(upstream_url: str, data_dir: Path, **overrides: object) -> str:
    """A one-remote, one-distribution (base path `main`) config; `overrides` replace or add
    `cache.*` keys (prefixed `cache_`) and remote keys (everything else), as TOML values."""
    cache: dict[str, object] = {"index_ttl": "10m"}
    remote: dict[str, object] = {
        "name": "up",
        "url": upstream_url,
        "connect_timeout": 2,
        "sock_read_timeout": 3,
        "max_retries": 1,
    }
    for key, value in overrides.items():
        if key.startswith("cache_"):
            cache[key.removeprefix("cache_")] = value
        else:
            remote[key] = value

    def toml(value: object) -> str:
        if isinstance(value, dict):  # an inline table
            return "{" + ", ".join(f"{json.dumps(k)} = {toml(v)}" for k, v in value.items()) + "}"
        return json.dumps(value)

    def table(values: dict[str, object]) -> str:
        return "".join(f"{k} = {toml(v)}\n" for k, v in values.items())

    return (
        f'[server]\ndata_dir = "{data_dir}"\n[cache]\n{table(cache)}'
        f"[[remotes]]\n{table(remote)}"
        '[[distributions]]\nname = "main"\nbase_path = "main"\nremote = "up"\n'
    )


@dataclass
class Server:
    url: str  # http://127.0.0.1:PORT
    data_dir: Path
    pid: int | None = None  # gunicorn's master process (None: in this process)

    def index(self, base_path: str = "main") -> str:
        return f"{self.url}/pypi/{base_path}/simple/"

    def json_page(self, base_path: str, project: str) -> dict[str, Any]:
        """The project's page in PEP 691 JSON (it must be there: 200)."""
        with requests.get(
            f"{self.index(base_path)}{project}/",
            headers={"Accept": "application/vnd.pypi.simple.v1+json"},
            timeout=30,
        ) as resp:
            assert resp.status_code == 200, resp.text
            page: dict[str, Any] = resp.json()
        return page

    def page_files(self, base_path: str, project: str) -> set[str]:
        """The filenames the project's page offers."""
        return {f["filename"] for f in self.json_page(base_path, project)["files"]}


def stored_files(data_dir: Path) -> list[Path]:
    """Files visible in the artifact store (not temporary ones)."""
    root = data_dir / "artifacts"
    return sorted(p for p in root.glob("??/??/*") if p.is_file())


def temporary_files(data_dir: Path) -> list[str]:
    """Files being downloaded or stored right now: the store's temporary folder (local disk
    and S3 alike)."""
    return sorted(p.name for p in (data_dir / "artifacts" / ".tmp").glob("*"))


def _being_written(path: Path) -> bool:
    """Whether a process holds the temporary file's lock (the store locks its temporary files
    while they are open; a dead process's are left unlocked, for clean-up)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # and with it the lock, if taken
    return False


def settle(data_dir: Path, timeout: float = 10.0) -> bool:
    """Wait until no file is being stored: a small file is stored just after its first client
    has every byte, so a test looking at the store right after a download waits for this."""
    tmp = data_dir / "artifacts" / ".tmp"
    return wait_until(lambda: not any(_being_written(p) for p in tmp.glob("*")), timeout)


def wait_until(
    predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.02
) -> bool:
    """Poll `predicate` until it is true or `timeout` seconds pass; returns its last value."""
    deadline = time.monotonic() + timeout
    while not (ok := bool(predicate())) and time.monotonic() < deadline:
        time.sleep(interval)
    return ok
