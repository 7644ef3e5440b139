"""Helpers for fault tests against a real gunicorn server: its processes (found through /proc,
only ever among our own children), which worker holds a client's connection, their memory; big
random wheels; raw HTTP clients that read or send a body a piece at a time.

Linux only (/proc). Everything is bounded in time; nothing here signals a process that is not a
gunicorn worker (or master) started by this test process.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .sdist_backend import (
    expand_tags,
    filename_version,
    import_name_for,
    metadata_text,
    normalize_dist_name,
    write_wheel,
)
from .servers import Server, stored_files

__all__ = [
    "Download",
    "Posting",
    "big_wheel",
    "children",
    "connect_to_worker",
    "every_worker_accepting",
    "gone",
    "gunicorn_master",
    "kill_server",
    "kill_worker",
    "listening",
    "multipart",
    "parent_of",
    "rss_kib",
    "sound_store",
    "worker_holding",
    "workers",
]


# ---- processes ------------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state first), or None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat.rsplit(")", 1)[1].split()


def parent_of(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return None if fields is None else int(fields[1])


def gone(pid: int) -> bool:
    """The process has exited (a zombie waiting to be reaped counts as gone)."""
    fields = _stat_fields(pid)
    return fields is None or fields[0] in ("Z", "X")


def children(pid: int) -> list[int]:
    """Live processes whose parent is `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and parent_of(int(entry.name)) == pid and not gone(int(entry.name)):
            found.append(int(entry.name))
    return sorted(found)


def _environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


def gunicorn_master(server: Server) -> int:
    """The pid of the gunicorn master serving `server`: a child of this process (`pullthrough
    serve` execs gunicorn) bound to the server's address."""
    bind = server.url.removeprefix("http://")
    masters = [
        pid for pid in children(os.getpid()) if _environ(pid).get("PULLTHROUGH_BIND") == bind
    ]
    assert len(masters) == 1, (bind, masters)
    return masters[0]


def workers(master: int) -> list[int]:
    """The master's live worker processes."""
    return children(master)


def kill_worker(master: int, pid: int, sig: int = signal.SIGKILL) -> None:
    """Signal a worker, after checking it is one: a child of a master that is our own child."""
    assert parent_of(master) == os.getpid(), f"{master} is not a process this test started"
    assert pid != master and parent_of(pid) == master, f"{pid} is not a worker of {master}"
    os.kill(pid, sig)


def kill_server(server: Server, timeout: float = 15.0) -> None:
    """SIGKILL every process of a gunicorn server of ours, the master first (so that it starts
    no worker in their place), as a power cut or the OOM killer would; returns once all are
    gone (the master, our child, is a zombie until the fixture reaps it)."""
    master = gunicorn_master(server)
    pool = workers(master)
    assert parent_of(master) == os.getpid(), f"{master} is not a process this test started"
    os.kill(master, signal.SIGKILL)
    for pid in pool:  # its workers a moment ago: dying with it, or orphaned
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while not all(gone(pid) for pid in [master, *pool]):
        assert time.monotonic() < deadline, "the server's processes did not die"
        time.sleep(0.05)


def rss_kib(pid: int) -> int:
    """Resident memory of a process (VmRSS), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


# ---- sockets --------------------------------------------------------------------------------


def _tcp_table() -> dict[int, tuple[int, int]]:
    """inode -> (local port, remote port) of every IPv4 TCP socket (this network namespace)."""
    table = {}
    lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    for line in lines:
        parts = line.split()
        local, remote, inode = parts[1], parts[2], int(parts[9])
        table[inode] = (int(local.rsplit(":", 1)[1], 16), int(remote.rsplit(":", 1)[1], 16))
    return table


def _socket_inodes(pid: int) -> set[int]:
    inodes: set[int] = set()
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return inodes
    for fd in fds:
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def worker_holding(master: int, server_port: int, client_port: int) -> int | None:
    """The worker whose accepted connection comes from our socket on `client_port`."""
    table = _tcp_table()
    for pid in workers(master):
        for inode in _socket_inodes(pid):
            if table.get(inode) == (server_port, client_port):
                return pid
    return None


def listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1.0)
        return probe.connect_ex(("127.0.0.1", port)) == 0


# ---- files ----------------------------------------------------------------------------------


def big_wheel(out_dir: Path, name: str, version: str, size: int, *, seed: int = 0) -> Path:
    """A valid wheel of about `size` bytes (mostly a random, incompressible payload)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    dist, fversion = normalize_dist_name(name), filename_version(version)
    package = import_name_for(name)
    files = {
        f"{package}/__init__.py": f'__version__ = "{version}"\n'.encode(),
        f"{package}/payload.bin": random.Random(seed).randbytes(size),
    }
    path = out_dir / f"{dist}-{fversion}-py3-none-any.whl"
    metadata = metadata_text(name, version).encode()
    write_wheel(
        path, files, f"{dist}-{fversion}.dist-info", metadata, expand_tags("py3", "none", "any")
    )
    return path


def sound_store(data_dir: Path) -> set[str]:
    """The names of the files visible in the store, after checking that each one is complete:
    its bytes hash to its name."""
    names = set()
    for path in stored_files(data_dir):
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        assert digest.hexdigest() == path.name, f"{path} is not what its name says"
        names.add(path.name)
    return names


def multipart(
    fields: dict[str, str], file_field: str, filename: str, data: bytes
) -> tuple[str, bytes]:
    """A multipart/form-data body (as twine sends): its Content-Type and bytes."""
    boundary = uuid.uuid4().hex
    parts = []
    for key, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
        )
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; '
        f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
        + data
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return f"multipart/form-data; boundary={boundary}", b"".join(parts)


# ---- a raw client that reads a response a piece at a time ------------------------------------


@dataclass
class Download:
    """A GET over a plain socket (so its local port is known), read as it comes (each read
    within `timeout`, the whole response within `total` seconds).

    `status`, `headers` once the head has arrived; `body` so far; `ended` with how it ended:
    "complete" (Content-Length bytes), "eof" (closed early), "reset", "timeout".
    """

    url: str
    timeout: float = 15.0  # for each read
    send: bool = True  # False: connect only; `send_request()` later
    total: float = 120.0  # for the whole response
    sock: socket.socket = field(init=False)
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)
    ended: str | None = None
    _buffer: bytearray = field(default_factory=bytearray)

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.total
        rest = self.url.removeprefix("http://")
        hostport, _, path = rest.partition("/")
        host, _, port = hostport.partition(":")
        self.server_port = int(port)
        self.sock = socket.create_connection((host, self.server_port), timeout=self.timeout)
        # HTTP/1.0: never chunked, so the body is the bytes after the head, as sent.
        self._request = f"GET /{path} HTTP/1.0\r\nHost: {hostport}\r\n\r\n".encode()
        if self.send:
            self.send_request()

    def send_request(self) -> None:
        self.sock.sendall(self._request)

    @property
    def local_port(self) -> int:
        port: int = self.sock.getsockname()[1]
        return port

    @property
    def length(self) -> int | None:
        value = self.headers.get("content-length")
        return int(value) if value is not None else None

    def _recv(self) -> bytes | None:
        """Some bytes; b"" at EOF; None when the read ended otherwise (ended says how)."""
        if time.monotonic() > self._deadline:
            self.ended = "timeout"
            return None
        try:
            return self.sock.recv(1 << 16)
        except TimeoutError:
            self.ended = "timeout"
        except ConnectionResetError:
            self.ended = "reset"
        return None

    def read_head(self) -> None:
        while b"\r\n\r\n" not in self._buffer:
            data = self._recv()
            if not data:
                self.ended = self.ended or "eof"
                return
            self._buffer += data
        head, _, rest = bytes(self._buffer).partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        for line in lines[1:]:
            key, _, value = line.partition(":")
            self.headers[key.strip().lower()] = value.strip()
        self.body += rest

    def chunks(self) -> Iterator[int]:
        """Read on; yields the body's length after each piece, until the response ends."""
        if self.status is None and self.ended is None:
            self.read_head()
        while self.ended is None:
            if self.length is not None and len(self.body) >= self.length:
                self.ended = "complete"
                break
            data = self._recv()
            if data is None:
                break
            if not data:
                self.ended = "complete" if self.length is None else "eof"
                break
            self.body += data
            yield len(self.body)

    def read_all(self) -> None:
        for _ in self.chunks():
            pass

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Download:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Posting:
    """A POST over a plain socket whose body is sent a piece at a time (`send_some`), so the
    request stays in flight as long as the test wants; `answer()` reads what comes back."""

    def __init__(
        self, url: str, body: bytes, headers: dict[str, str], *, timeout: float = 15.0
    ) -> None:
        rest = url.removeprefix("http://")
        hostport, _, path = rest.partition("/")
        host, _, port = hostport.partition(":")
        self.server_port = int(port)
        self.body = body
        self.sent = 0
        self.broken: OSError | None = None  # the error that stopped the sending, if any
        self.sock = socket.create_connection((host, self.server_port), timeout=timeout)
        head = [f"POST /{path} HTTP/1.1", f"Host: {hostport}", f"Content-Length: {len(body)}"]
        head += [f"{key}: {value}" for key, value in headers.items()]
        self.sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))

    @property
    def local_port(self) -> int:
        port: int = self.sock.getsockname()[1]
        return port

    def send_some(self, size: int) -> bool:
        """Send the next `size` bytes of the body; False once the connection broke."""
        if self.broken is not None:
            return False
        piece = self.body[self.sent : self.sent + size]
        try:
            self.sock.sendall(piece)
        except OSError as exc:
            self.broken = exc
            return False
        self.sent += len(piece)
        return True

    def answer(self) -> bytes:
        """Everything the server sends back until it closes (or a read error/timeout)."""
        data = bytearray()
        deadline = time.monotonic() + 60.0
        while time.monotonic() < deadline:
            try:
                piece = self.sock.recv(1 << 16)
            except OSError:
                break
            if not piece:
                break
            data += piece
            if b"\r\n\r\n" in data and len(data) > 1 << 20:
                break
        return bytes(data)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Posting:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect_to_worker(
    master: int, url: str, avoid: int, *, attempts: int = 40, rounds: int = 3
) -> Download:
    """A Download of `url`, request not sent yet, on a connection that a worker other than
    `avoid` accepted: several connections are opened at once, one is kept; up to `rounds`
    rounds of `attempts` (bounded, 5 s each: workers race for each connection, and one busy
    streaming may still win a whole round)."""
    held: dict[int | None, int] = {}
    for _ in range(rounds):
        opened = [Download(url, send=False) for _ in range(attempts)]
        chosen: Download | None = None
        try:
            deadline = time.monotonic() + 5.0
            while chosen is None and time.monotonic() < deadline:
                for download in opened:
                    pid = worker_holding(master, download.server_port, download.local_port)
                    if pid is not None and pid != avoid:
                        chosen = download
                        break
                else:
                    time.sleep(0.05)
            for download in opened if chosen is None else ():  # for the failure's message
                pid = worker_holding(master, download.server_port, download.local_port)
                held[pid] = held.get(pid, 0) + 1
        finally:
            for download in opened:
                if download is not chosen:
                    download.close()
        if chosen is not None:
            return chosen
    raise AssertionError(
        f"no connection was accepted by a worker other than {avoid}: held by pid {held}"
    )


def every_worker_accepting(master: int, url: str, count: int = 2, timeout: float = 60.0) -> None:
    """Wait until the master's `count` workers each accept a connection to `url`'s server: they
    boot apart, the last one slowly on a busy machine (bounded: `timeout` seconds)."""
    deadline = time.monotonic() + timeout
    while len(pids := workers(master)) != count:
        assert time.monotonic() < deadline, f"{len(pids)} workers, not {count}"
        time.sleep(0.1)
    for avoid in pids:
        while True:
            try:
                connect_to_worker(master, url, avoid=avoid).close()
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
