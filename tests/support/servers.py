"""Helpers for tests that run the proxy as a real server."""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import requests

PROXY_UA = "pullthrough/"  # the User-Agent prefix the proxy sends upstream


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def config_text(
    upstream_url: str, data_dir: Path, *, remote_extra: str = "", cache: str = ""
) -> str:
    return f"""
[server]
data_dir = "{data_dir}"
[cache]
index_ttl = "10m"
{cache}
[[remotes]]
name = "up"
url = "{upstream_url}"
connect_timeout = 2
sock_read_timeout = 3
max_retries = 1
{remote_extra}
[[distributions]]
name = "main"
base_path = "main"
remote = "up"
"""


@dataclass
class Server:
    url: str  # http://127.0.0.1:PORT
    data_dir: Path

    def index(self, base_path: str = "main") -> str:
        return f"{self.url}/pypi/{base_path}/simple/"


def stored_files(data_dir: Path) -> list[Path]:
    """Files visible in the artifact store (not temporary ones)."""
    root = data_dir / "artifacts"
    return sorted(p for p in root.glob("??/??/*") if p.is_file())
