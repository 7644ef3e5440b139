"""Content-addressed artifact stores: files named by sha256, written atomically, hash-verified.

Every store writes through a local temporary file (hashed as it grows, so a download can be
tailed while it arrives) and publishes it under its sha256 only once verified: on local disk by
a rename, on S3 (storage.s3) by an upload, which an object store makes visible only complete.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import hashlib
import os
import shutil
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol, cast

from pullthrough.core.digests import COMPUTED
from pullthrough.core.models import is_hex_digest


# Hash algorithms an index or an uploader may name (PEP 503 allows any hashlib algorithm with a
# stable name; twine sends blake2b with a 256-bit digest as `blake2_256`).
class Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...
    def hexdigest(self) -> str: ...
    def copy(self) -> Hasher: ...


_ALGORITHMS: dict[str, Callable[[], Hasher]] = {
    **{a: functools.partial(hashlib.new, a) for a in ("md5", "sha1", "sha224", "sha256")},
    **{a: functools.partial(hashlib.new, a) for a in ("sha384", "sha512", "blake2b", "blake2s")},
    "blake2_256": functools.partial(hashlib.blake2b, digest_size=32),
}


class HashMismatch(ValueError):
    """Downloaded bytes do not match the digest the index promised."""


class StorageFull(OSError):
    """No room left for a file (507 for our clients); nothing partial is kept."""


class StorageUnavailable(OSError):
    """The object store cannot be reached or fails (503 for our clients); nothing is lost."""


# Where the bytes of a file about to be sent start, given its sha256 (its ETag, which a
# conditional request's answer depends on) and its size (None: it sends none).
ReadFrom = Callable[[str, int], int | None]


def from_start(sha256: str, size: int) -> int | None:
    """ReadFrom of a whole file."""
    return 0


class Digests:
    """The digests of bytes as they come (sha256 always), and those they must match."""

    def __init__(self, expected: Mapping[str, str]) -> None:
        self.expected = {a: v.lower() for a, v in expected.items() if a in _ALGORITHMS}
        self.hashers: dict[str, Hasher] = {a: _ALGORITHMS[a]() for a in self.expected}
        self.hashers.setdefault("sha256", hashlib.sha256())

    def update(self, data: bytes) -> None:
        for h in self.hashers.values():
            h.update(data)

    def verify(self) -> None:
        """Raise HashMismatch unless every promised digest matches the bytes so far."""
        for algo, value in self.expected.items():
            actual = self.hashers[algo].hexdigest()
            if actual != value:
                raise HashMismatch(f"{algo} mismatch: expected {value}, got {actual}")

    def copy(self) -> Digests:
        """The same digests, going on apart from these."""
        copied = Digests({})
        copied.expected = self.expected
        copied.hashers = {a: h.copy() for a, h in self.hashers.items()}
        return copied


@dataclass
class Opened:
    """A stored file, open for reading (seekable: Range requests), and its size."""

    file: BinaryIO
    size: int


@contextmanager
def _room() -> Iterator[None]:
    """A full disk (or quota) as StorageFull; other I/O errors as they are."""
    try:
        yield
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT) and not isinstance(exc, StorageFull):
            raise StorageFull(exc.errno, "no space left for the file store") from exc
        raise


def locked_temporary(directory: Path, mode: str = "wb") -> tuple[BinaryIO, Path]:
    """A new temporary file, locked while it is open: `remove_abandoned` takes only files
    whose lock it can get, so a file in use is never removed, and one left by a dead process
    is. Named after this process (`<pid>.<start>-...`: its pid and when it started, as a pid
    is given out again): one found unlocked whose process is gone is removed at once, not
    after the grace for a file created and not locked yet."""
    pid = os.getpid()
    started = _own_start(pid)
    prefix = f"{pid}-" if started is None else f"{pid}.{started}-"
    fd, name = tempfile.mkstemp(dir=directory, prefix=prefix, suffix=".partial")
    fcntl.flock(fd, fcntl.LOCK_EX)
    return cast(BinaryIO, os.fdopen(fd, mode)), Path(name)


def being_written(file: BinaryIO) -> bool:
    """Whether a temporary file (locked_temporary) that `file` reads is still open for its
    writer: not once it is complete and put in place, given up, or its process is dead."""
    try:
        fcntl.flock(file.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    fcntl.flock(file.fileno(), fcntl.LOCK_UN)
    return False


def _creator_gone(name: str) -> bool:
    """Whether the process that made a temporary file (`<pid>.<start>-...`, see
    locked_temporary) is no longer running on this host: no process has its pid, or one that
    started at another time (the pid given out again: a container restarted counts from 1
    again), or a dead one (_process). False when the name does not say (an older file, or only
    a pid that is running)."""
    head, _, _ = name.partition("-")
    pid_text, _, started = head.partition(".")
    if not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return started not in ("", _own_start(pid))
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's: running, but maybe not the file's maker
        pass
    if (found := _process(pid)) is None:  # gone meanwhile, or no /proc: as signal 0 said
        return False
    state, since = found
    return state == "Z" or started not in ("", since)


@functools.cache
def _own_start(pid: int) -> str | None:
    """When this process (of pid `pid`: a forked one reads its own) started, as _process."""
    found = _process("self")
    return None if found is None else found[1]


def _process(pid: int | str) -> tuple[str, str] | None:
    """A process's state and start (/proc/<pid>/stat: its third and 22nd fields, the start in
    clock ticks since boot), or None if it cannot be read. State Z is a dead process not yet
    reaped: a killed worker whose parent died with it waits for init to reap it, which in a
    container without an init that reaps (Docker without --init) may be never; signal 0 still
    finds it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()  # after the command, which may hold spaces
    return (fields[0], fields[19]) if len(fields) > 19 else None


def cache_control(*, private: bool = False) -> str:
    """The Cache-Control of a stored file's answer, the server's or the object store's: a file
    never changes under its name, so clients and proxies may keep it - a private
    distribution's, its readers only (no shared cache: RFC 9111 5.2.2.7)."""
    return f"{'private, ' if private else ''}max-age=31536000, immutable"


def shard(sha256: str) -> str:
    """`ab/cd/<sha256>`: where a file lives below a store's root."""
    if not is_hex_digest(sha256):  # never a path or key of someone's choosing
        raise ValueError(f"not a sha256 hex digest: {sha256[:80]!r}")
    return f"{sha256[:2]}/{sha256[2:4]}/{sha256}"


@dataclass(frozen=True)
class Unfinished:
    """A write of a file's bytes the store began and that was never finished nor given up (an
    object store's multipart upload: its parts are kept, listed nowhere, until it is aborted)."""

    sha256: str
    key: str
    upload_id: str


@dataclass(frozen=True)
class DiskUsage:
    total: int
    used: int
    free: int


class BlobStore(ABC):
    """What every backend offers; temporary files in `tmp`, on local disk."""

    redirects = False  # whether redirect_url gives URLs (then no bytes are sent from here)

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.remove_abandoned()

    @abstractmethod
    def open(self, sha256: str, *, read_from: ReadFrom | None = None) -> Opened | None:
        """The file, open, or None. Once open, it stays readable even if evicted meanwhile:
        `read_from` says where the bytes to send start, if any (an object store starts its GET
        there now, before the answer is committed); None when none may be sent (HEAD)."""

    @abstractmethod
    def has(self, sha256: str) -> bool: ...

    @abstractmethod
    def written_at(self, sha256: str) -> float | None:
        """When the file was last written (epoch seconds), or None if it is not stored."""

    @abstractmethod
    def delete(self, sha256: str) -> int:
        """Remove a file; returns the bytes freed (0 if it was not there)."""

    @abstractmethod
    def files(self) -> Iterator[tuple[str, float]]:
        """Every file stored under the store's names (`ab/cd/<sha256>`), with when it was
        written (epoch seconds, by the store's clock), for orphan cleanup's look for files
        nothing records."""

    @abstractmethod
    def local_path(self, sha256: str) -> AbstractContextManager[Path]:
        """A local path of the file for the length of the block (for reading archives);
        FileNotFoundError if it is not stored."""

    @abstractmethod
    def publish(self, tmp_path: Path, sha256: str) -> None:
        """Make a complete, verified temporary file visible under its sha256 (it is consumed)."""

    def redirect_url(self, sha256: str, filename: str, *, private: bool = False) -> str | None:
        """A URL clients may fetch the file from directly, or None to stream it ourselves;
        `private`: its answer is for that client only (no shared cache may keep it)."""
        return None

    def disk_usage(self) -> DiskUsage | None:
        """The filesystem the files are on (bytes), or None when they are on none this host
        can measure (an object store: the local data folder's disk holds none of them)."""
        return None

    def unfinished(self) -> list[Unfinished]:
        """The writes begun under the store's own names and never finished (the bytes a killed
        process was storing): on local disk none, as a temporary file is the whole write
        (remove_abandoned)."""
        return []

    def abort(self, write: Unfinished) -> None:
        """Give up an unfinished write, freeing what it holds (already done: nothing)."""
        raise NotImplementedError(f"{type(self).__name__} lists no unfinished writes")

    def remove_abandoned(self, *, grace: float = 60.0) -> int:
        """Remove the temporary files of writers that are gone (a killed process leaves its
        download behind: never visible, only disk space). A writer holds a lock on its file
        while it writes, so a file whose lock can be taken has no writer; files younger than
        `grace` seconds are left alone (a writer may be between creating and locking it),
        unless the process that created it is gone: a server killed and started again at once
        (systemd's restart) leaves nothing behind until its next start. Returns how many were
        removed."""
        removed = 0
        cutoff = time.time() - grace
        for path in self.tmp.glob("*.partial"):
            try:
                if path.stat().st_mtime > cutoff and not _creator_gone(path.name):
                    continue
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # being written
            finally:
                os.close(fd)
            path.unlink(missing_ok=True)
            removed += 1
        return removed

    def writer(
        self, expected: Mapping[str, str] | None = None, *, artifact: bool = False
    ) -> ArtifactWriter:
        """A writer checking `expected` digests; `artifact`: computing every digest an
        artifact has too (core.digests.COMPUTED, as Pulp computes them), for artifact_digests."""
        writer = ArtifactWriter(self, expected or {})
        if artifact:
            for algorithm in COMPUTED:
                writer.hashers.setdefault(algorithm, _ALGORITHMS[algorithm]())
        return writer

    def put_bytes(self, data: bytes, expected: Mapping[str, str] | None = None) -> str:
        with self.writer(expected) as w:
            w.write(data)
            return w.commit()


class ArtifactStore(BlobStore):
    """Local disk: `root/ab/cd/<sha256>`; temporary files in `root/.tmp` (the same filesystem,
    so publishing is a rename)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._root_text = str(root)
        super().__init__(root / ".tmp")

    def disk_usage(self) -> DiskUsage:
        total, used, free = shutil.disk_usage(self.root)
        return DiskUsage(total, used, free)

    def path(self, sha256: str) -> Path:
        return self.root / shard(sha256)

    def open(self, sha256: str, *, read_from: ReadFrom | None = None) -> Opened | None:
        try:  # a text path: a Path built per request cost a tenth of a warm file's CPU
            fh = open(f"{self._root_text}/{shard(sha256)}", "rb")  # noqa: SIM115 - the caller's to close
        except FileNotFoundError:
            return None
        return Opened(fh, os.fstat(fh.fileno()).st_size)

    def local_path(self, sha256: str) -> AbstractContextManager[Path]:
        path = self.path(sha256)
        if not path.is_file():
            raise FileNotFoundError(f"{sha256} is not stored")
        return nullcontext(path)

    def publish(self, tmp_path: Path, sha256: str) -> None:
        with _room():
            final = self.path(sha256)
            final.parent.mkdir(parents=True, exist_ok=True)
            # Readable by the server's group too (mkstemp's 0600 is its user's alone): an nginx
            # front in that group sends files itself (server.accel_redirect).
            os.chmod(tmp_path, 0o640)
            os.replace(tmp_path, final)

    def has(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def written_at(self, sha256: str) -> float | None:
        try:
            return self.path(sha256).stat().st_mtime  # publish replaces: a new file each time
        except FileNotFoundError:
            return None

    def files(self) -> Iterator[tuple[str, float]]:
        for path in self.root.glob("*/*/*"):
            if not is_hex_digest(sha256 := path.name) or self.path(sha256) != path:
                continue  # not a name of ours (the temporary folder's files)
            try:
                yield sha256, path.stat().st_mtime
            except FileNotFoundError:  # removed meanwhile
                continue

    def delete(self, sha256: str) -> int:
        """Remove a file; returns the bytes freed (0 if it was not there)."""
        path = self.path(sha256)
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return 0
        return size


class ArtifactWriter:
    """Write to a temporary file while hashing; `commit()` verifies and renames into place.

    Leaving the `with` block without a commit removes the temporary file: nothing half-written or
    unverified is ever visible under its sha256 name.
    """

    def __init__(self, store: BlobStore, expected: Mapping[str, str]) -> None:
        self.store = store
        self.digests = Digests(expected)
        self.expected, self.hashers = self.digests.expected, self.digests.hashers
        self.file, self.tmp_path = locked_temporary(store.tmp)
        self.size = 0
        self.sha256: str | None = None

    def artifact_digests(self) -> dict[str, str]:
        """The digests of an artifact of the bytes written (a writer made with `artifact`)."""
        return {a: self.hashers[a].hexdigest() for a in COMPUTED}

    def write(self, chunk: bytes) -> None:
        with _room():
            self.file.write(chunk)
        self.digests.update(chunk)
        self.size += len(chunk)

    def flush(self) -> None:
        """Written through to the file (readers tail it); StorageFull when the disk is."""
        with _room():
            self.file.flush()

    def verify(self) -> None:
        """Raise HashMismatch unless every promised digest matches what was written."""
        self.digests.verify()
        self.flush()

    def digest(self) -> str:
        """The sha256 of what was written so far."""
        return self.hashers["sha256"].hexdigest()

    def commit(self) -> str:
        """Verify every promised digest, then move the file into place; returns its sha256."""
        self.flush()
        self.verify()
        sha256 = self.digest()
        with _room():
            os.fsync(self.file.fileno())
        # Published while still open, so still locked: never taken for an abandoned file.
        self.store.publish(self.tmp_path, sha256)
        self.file.close()
        self.sha256 = sha256
        return sha256

    def abort(self) -> None:
        if not self.file.closed:
            self.file.close()
        self.tmp_path.unlink(missing_ok=True)

    def __enter__(self) -> ArtifactWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.sha256 is None:
            self.abort()
