"""The programs the tests need from Debian's packages (nginx, chromium, postgresql): found where
the package puts them and, as root with apt-get (a fresh container, CI), installed when missing,
so that the README's test command alone runs every test on a fresh Debian machine.

    nginx = ensure("nginx", find_nginx)  # its path, or Unavailable saying why not

One apt-get at a time across this machine's test processes (pytest-xdist); `apt-get update`
only when an install fails (package lists missing in a fresh container, or stale).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from support.tools import run

APT_TIMEOUT = 240  # seconds, for each apt-get run
LOCK_TIMEOUT = 600  # seconds to wait for another test process's apt-get
T = TypeVar("T")


class Unavailable(RuntimeError):
    """A program is not installed here and could not be installed (the message says why)."""


def ensure(package: str, find: Callable[[], T | None]) -> T:
    """What `find` finds of the Debian package, installing the package first when it finds
    nothing (as root with apt-get). Raises Unavailable with the reason otherwise."""
    found = find()
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise Unavailable(
            f"the Debian package `{package}` is not installed and cannot be installed here "
            "(that needs root and apt-get): install it (.ci/run does)"
        )
    with _install_lock(package):
        found = find()  # another test process may have installed it meanwhile
        reason = None if found else _apt_install(package)
    found = find()
    if found:
        return found
    raise Unavailable(reason or f"apt-get installed `{package}`, but the tests do not find it")


@contextlib.contextmanager
def _install_lock(package: str) -> Iterator[None]:
    path = Path(tempfile.gettempdir()) / "pullthrough-tests-apt-get.lock"
    with open(path, "w") as handle:
        deadline = time.monotonic() + LOCK_TIMEOUT
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise Unavailable(
                        f"another process held {path} for {LOCK_TIMEOUT} s "
                        f"(apt-get install {package})"
                    ) from None
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _apt_install(package: str) -> str | None:
    """apt-get install the package; None, or why it failed."""
    install = ("install", "-y", "-q", "--no-install-recommends", package)
    done = _apt_get(*install)
    if done.returncode != 0:
        _apt_get("update", "-q")
        done = _apt_get(*install)
    if done.returncode == 0:
        return None
    return f"`apt-get {' '.join(install)}` failed ({done.returncode}): {done.stderr.strip()[-500:]}"


def _apt_get(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        return run(["apt-get", *args], env, timeout=APT_TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        return subprocess.CompletedProcess(exc.cmd, -1, "", f"timed out after {APT_TIMEOUT} s")
