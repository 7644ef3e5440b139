"""Cross-process, cross-thread exclusive locks on striped lock files (fcntl.flock).

flock locks belong to an open file description, so two opens of the same file conflict whether they
come from two threads or two gunicorn workers. A fixed number of stripes keeps the lock directory
bounded; two keys sharing a stripe only wait for each other, never deadlock (one lock per holder).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

STRIPES = 4096
_POLL_SECONDS = 0.02


class LockTimeout(TimeoutError):
    pass


class FileLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self, *, timeout: float, blocking: bool = True) -> bool:
        """Take the lock; False if not blocking and it is held; LockTimeout after `timeout` s."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self._fd = fd
                return True
            except BlockingIOError:
                if not blocking:
                    os.close(fd)
                    return False
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise LockTimeout(
                        f"lock {self.path.name} held for over {timeout:.0f}s"
                    ) from None
                time.sleep(_POLL_SECONDS)

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    @contextmanager
    def held(self, timeout: float) -> Iterator[None]:
        """`with lock.held(timeout):` - acquired for the block, released after it."""
        self.acquire(timeout=timeout)
        try:
            yield
        finally:
            self.release()


class LockDir:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def lock(self, key: str) -> FileLock:
        """The lock of one of many keys (a download's URL): striped over a bounded set of files."""
        stripe = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % STRIPES
        return FileLock(self.directory / f"{stripe:04x}.lock")

    def named(self, name: str) -> FileLock:
        """A lock of its own for one job (setup, eviction): never shared with a download's."""
        if not name.isidentifier():
            raise ValueError(f"a lock name must be an identifier, got {name!r}")
        return FileLock(self.directory / f"{name}.lock")
