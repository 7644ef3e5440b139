"""Headless Chromium from its command line: a page's DOM after it loaded, and screenshots.

No driver, no extra Python package: each call is one `chromium --headless` run with a fresh
profile, bounded by a timeout.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from lxml import html

from support.debian import ensure

TIMEOUT = 60.0  # one page load, including the browser's start (about 2 s)
_FLAGS = [
    "--headless",
    "--no-sandbox",  # tests run as root in containers
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-proxy-server",  # the servers are on loopback
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def ensure_chromium() -> str:
    """The browser; the Debian package is installed when missing (support.debian). Raises
    support.debian.Unavailable with the reason otherwise."""
    return ensure("chromium", chromium_path)


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess[bytes]:
    browser = ensure_chromium()
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        proc = subprocess.run(
            [browser, *_FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    if proc.returncode != 0:
        raise AssertionError(
            f"chromium failed ({proc.returncode}): {args}\n{proc.stderr.decode(errors='replace')}"
        )
    return proc


def dump_dom(url: str, *, timeout: float = TIMEOUT) -> html.HtmlElement:
    """The page's DOM as the browser built it, parsed."""
    proc = _run(["--dump-dom", url], timeout)
    assert proc.stdout.strip(), f"chromium printed no DOM for {url}"
    return html.document_fromstring(proc.stdout)


def screenshot(url: str, path: Path, *, size: str = "1200,900", timeout: float = TIMEOUT) -> Path:
    """A PNG of the page as a 1200x900 window shows it."""
    _run([f"--screenshot={path}", f"--window-size={size}", url], timeout)
    return path


def with_class(node: html.HtmlElement, tag: str, css_class: str) -> list[html.HtmlElement]:
    """The `tag` elements under `node` that carry `css_class` (lxml without cssselect)."""
    found: list[html.HtmlElement] = node.xpath(
        f".//{tag}[contains(concat(' ', normalize-space(@class), ' '), ' {css_class} ')]"
    )
    return found


def text_of(node: html.HtmlElement) -> str:
    """The element's whole text, whitespace collapsed."""
    return " ".join(node.text_content().split())
