"""What every part of the benchmarks uses: paths, the loopback address, log(), BenchError, GETs."""

from __future__ import annotations

import html
import http.client
import json
import os
import re
import sys
import time
from pathlib import Path
from urllib.parse import urljoin, urlsplit

BENCH_DIR = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent
PULLTHROUGH = VENV_BIN / "pullthrough"
PROXPI_VENV = BENCH_DIR / ".venvs" / "proxpi"
HOST = "127.0.0.1"


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class BenchError(RuntimeError):
    pass


def child_env(drop_prefix: str, loopback: bool = False, **extra: str) -> dict[str, str]:
    """This process's environment without drop_prefix* variables, for a child process.

    loopback: also without proxy settings, and NO_PROXY for 127.0.0.1; extra: set on top.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop_prefix)}
    if loopback:
        for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy"):
            env.pop(var, None)
        env["NO_PROXY"] = "127.0.0.1,localhost"
    env.update(extra)
    return env


def split_url(url: str) -> tuple[str, int, str]:
    """(host, port, path with its query) of an http:// URL."""
    parts = urlsplit(url)
    return (
        parts.hostname or HOST,
        parts.port or 80,
        parts.path + (f"?{parts.query}" if parts.query else ""),
    )


def http_get(
    url: str, headers: dict[str, str] | None = None, timeout: float = 30.0
) -> tuple[int, dict[str, str], bytes]:
    host, port, path = split_url(url)
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path or "/", headers=headers or {})
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
    finally:
        conn.close()


def find_link(page: bytes, page_url: str, filename: str) -> str:
    """The absolute URL (without #fragment) of the page's link to filename."""
    for href in re.findall(rb'href="([^"]+)"', page):
        url = urljoin(page_url, html.unescape(href.decode()))
        if urlsplit(url).path.rsplit("/", 1)[-1] == filename:
            return url.split("#", 1)[0]
    raise BenchError(f"{page_url}: no link to {filename}")


def listed(body: bytes, key: str = "files") -> int:
    """The entries a simple page lists: its PEP 691 JSON's `key` list ("files" on a project
    page, "projects" on the project list), or its HTML's links."""
    if body.lstrip()[:1] == b"{":
        return len(json.loads(body)[key])
    return body.count(b"</a>")


class WrongFormat(BenchError):
    """A server answered a page in a format other than the one asked for (HTML for JSON)."""


def timed_page(
    url: str, headers: dict[str, str], entries: int, key: str = "files"
) -> tuple[float, bytes]:
    """Seconds a GET of a simple page takes on a new connection, and its body (checked: 200,
    the format asked for, `entries` entries listed)."""
    t0 = time.perf_counter()
    status, got, body = http_get(url, headers, timeout=120)
    elapsed = time.perf_counter() - t0
    if status != 200:
        raise BenchError(f"{url}: HTTP {status}, {got.get('content-type')}: {body[:200]!r}")
    if ("json" in got.get("content-type", "")) != ("json" in headers["Accept"]):
        raise WrongFormat(f"{url}: {got.get('content-type')} to Accept: {headers['Accept']}")
    if (found := listed(body, key)) != entries:
        raise BenchError(f"{url}: {found:,} entries listed, not {entries:,}")
    return elapsed, body
