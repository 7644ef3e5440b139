"""Exclusive locks: across processes and threads alike, and within one process by key.

A download's lock is one byte of a shared file, locked with an open file description lock
(Linux's F_OFD_SETLK): each taking opens the file anew, so two takings conflict whether they
come from two threads or two gunicorn workers, and a killed process's locks go with it. Every
key has a byte of its own (a 62-bit hash of it): a download never waits for an unrelated one (a
fixed set of shared stripes made a small file wait 14 s behind another's slow download), and no
file is created or removed per download (a lock file of its own took 0.2-0.6 ms of a cold
file's answer here). Without OFD locks a key has a lock file of its own (fcntl.flock, which
conflicts between open file descriptions too), removed when its lock is released; a waiter that
locked a file removed meanwhile sees that and opens the new one. A job's named lock (setup,
eviction) is a flock'd file kept in place.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import struct
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Generic, Protocol, TypeVar

_POLL_SECONDS = 0.02
# Open file description locks, and `struct flock`'s layout for them (64-bit Linux).
OFD_LOCKS = sys.platform == "linux" and hasattr(fcntl, "F_OFD_SETLK") and sys.maxsize > 2**32
_FLOCK = struct.Struct("hhqqi4x")  # l_type, l_whence, l_start, l_len, l_pid (0 for OFD locks)


class LockTimeout(TimeoutError):
    pass


class Lock(ABC):
    @abstractmethod
    def acquire(self, *, timeout: float, blocking: bool = True) -> bool:
        """Take the lock; False if not blocking and it is held; LockTimeout after `timeout` s."""

    @abstractmethod
    def release(self) -> None: ...

    @contextmanager
    def held(self, timeout: float) -> Iterator[None]:
        """`with lock.held(timeout):` - acquired for the block, released after it."""
        self.acquire(timeout=timeout)
        try:
            yield
        finally:
            self.release()

    @contextmanager
    def if_free(self) -> Iterator[bool]:
        """`with lock.if_free() as taken:` - acquired for the block only if it is free now
        (`taken`; a holder is at work on the same thing), then released."""
        taken = self.acquire(timeout=0, blocking=False)
        try:
            yield taken
        finally:
            if taken:
                self.release()


class Locks(Protocol):
    """Locks by key: this host's (LockDir), or every node's (coordination.AdvisoryLocks)."""

    def lock(self, key: str) -> Lock: ...
    def named(self, name: str) -> Lock: ...
    def close(self) -> None: ...


STORED_WAIT_SECONDS = 60.0  # the most a write of bytes waits for a removal of the same


def stored_bytes(locks: Locks, sha256: str) -> Lock:
    """The lock of a file's bytes in the store (named by sha256), whatever put them there or
    takes them away. Who writes them holds it until they are recorded (the cache ledger, an
    upload's catalog entry); who removes them (eviction, orphan cleanup) while it checks that
    nothing records them and removes them. Without it, a removal racing a new write of the
    same bytes left records of bytes no longer stored."""
    return locks.lock(f"sha256:{sha256}")


def _poll(attempt: Callable[[], bool], *, timeout: float, blocking: bool, name: str) -> bool:
    """Call `attempt` until it takes a lock: once, unless blocking; LockTimeout after
    `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not attempt():
        if not blocking:
            return False
        if time.monotonic() >= deadline:
            raise LockTimeout(f"lock {name} held for over {timeout:.0f}s")
        time.sleep(_POLL_SECONDS)
    return True


class FileLock(Lock):
    def __init__(
        self, path: Path, *, remove_when_released: bool = False, shared: bool = False
    ) -> None:
        self.path = path
        self.remove_when_released = remove_when_released
        # shared: any number of holders at once, none while an exclusive one holds it
        self._mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        self._fd: int | None = None

    def acquire(self, *, timeout: float, blocking: bool = True) -> bool:
        return _poll(self._take, timeout=timeout, blocking=blocking, name=self.path.name)

    def _take(self) -> bool:
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, self._mode | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            if self._is_current(fd):
                self._fd = fd
                return True
            os.close(fd)  # its holder removed it on release: take the one at the path now

    def _is_current(self, fd: int) -> bool:
        try:
            return os.fstat(fd).st_ino == os.stat(self.path).st_ino
        except FileNotFoundError:
            return False

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            if self.remove_when_released:
                self.path.unlink(missing_ok=True)  # still ours: nobody else holds it now
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


class ByteLock(Lock):
    """One byte of a shared file, locked through an open file description of its own."""

    def __init__(self, path: Path, offset: int) -> None:
        self.path = path
        self.offset = offset
        self._request = _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, offset, 1, 0)
        self._fd: int | None = None

    def acquire(self, *, timeout: float, blocking: bool = True) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        name = f"{self.offset:x} of {self.path.name}"
        try:
            taken = _poll(lambda: self._take(fd), timeout=timeout, blocking=blocking, name=name)
        except BaseException:
            os.close(fd)
            raise
        if taken:
            self._fd = fd
        else:
            os.close(fd)
        return taken

    def _take(self, fd: int) -> bool:
        try:
            fcntl.fcntl(fd, fcntl.F_OFD_SETLK, self._request)
        except (BlockingIOError, PermissionError):  # EAGAIN or EACCES: held
            return False
        return True

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # the description's locks go with it


class LockDir:
    def __init__(self, directory: Path, *, byte_locks: bool = OFD_LOCKS) -> None:
        self.directory = directory
        self.byte_locks = byte_locks
        self._keys = directory / "keys"  # the keys' lock files, without byte locks
        (directory if byte_locks else self._keys).mkdir(parents=True, exist_ok=True)

    def lock(self, key: str) -> Lock:
        """The lock of one of many keys (a download's URL): a byte of its own in `keys.lock`,
        or a file of its own in `keys/`."""
        digest = hashlib.sha256(key.encode()).digest()
        if self.byte_locks:
            return ByteLock(self.directory / "keys.lock", int.from_bytes(digest[:8]) >> 2)
        return FileLock(self._keys / f"{digest.hex()[:40]}.lock", remove_when_released=True)

    def named(self, name: str, *, shared: bool = False) -> FileLock:
        """A lock of its own for one job (setup, eviction), kept in place; `shared`: taken
        shared (a resource in use), which keeps the exclusive taking out."""
        if not name.isidentifier():
            raise ValueError(f"a lock name must be an identifier, got {name!r}")
        return FileLock(self.directory / f"{name}.lock", shared=shared)

    def close(self) -> None:
        pass  # nothing held open


K = TypeVar("K", bound=Hashable)


class KeyedLocks(Generic[K]):
    """One in-process lock per key, made when first wanted and dropped when nobody holds or
    waits for it: a stalled page blocks only the requests for that page. A plain
    threading.Lock, which another thread than the taker may release (`enter`/`leave`)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[K, tuple[threading.Lock, int]] = {}

    def enter(self, key: K) -> threading.Lock:
        """The key's lock, counted as wanted until `leave`; the caller takes and releases it."""
        with self._guard:
            lock, users = self._locks.get(key) or (threading.Lock(), 0)
            self._locks[key] = (lock, users + 1)
            return lock

    def leave(self, key: K) -> None:
        """The key's lock no longer wanted by one caller: dropped once nobody wants it."""
        with self._guard:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    @contextmanager
    def holding(self, key: K) -> Iterator[None]:
        """Hold the key's lock for the block."""
        lock = self.enter(key)
        lock.acquire()
        try:
            yield
        finally:
            lock.release()
            self.leave(key)

    def __len__(self) -> int:
        with self._guard:
            return len(self._locks)
