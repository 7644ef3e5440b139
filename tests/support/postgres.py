"""A throwaway PostgreSQL server for tests, run with the machine's server binaries (the Debian
`postgresql` package, installed when missing: support.debian).

    with postgres_server(tmp_path) as url:  # postgresql+psycopg://postgres@127.0.0.1:PORT/pullthrough_test
        ...

The cluster listens on 127.0.0.1 only (trust auth, no Unix socket), on a free port, with durability
turned off for speed; it is stopped and its directory removed on exit, whatever happened. As root,
the server runs as the `postgres` OS user (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from sqlalchemy import create_engine, make_url, text

from support.debian import Unavailable, ensure
from support.servers import free_port

PG_ROOT = Path("/usr/lib/postgresql")
SERVER_USER = "postgres"
DATABASE = "pullthrough_test"
START_TIMEOUT = 30  # seconds, for pg_ctl -w; the subprocess gets a little more

# Appended to postgresql.conf: loopback only, and speed over durability (the data is thrown away).
SETTINGS = """
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
fsync = off
synchronous_commit = off
full_page_writes = off
wal_level = minimal
max_wal_senders = 0
shared_buffers = 32MB
max_connections = 150
"""
HBA = "host all all 127.0.0.1/32 trust\n"


class PostgresError(RuntimeError):
    pass


def _bin_dir() -> Path | None:
    """The newest /usr/lib/postgresql/<version>/bin that has initdb and pg_ctl."""

    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in path.name.split("."))

    found = [
        d / "bin"
        for d in PG_ROOT.glob("*")
        if d.name.replace(".", "").isdigit()
        and (d / "bin" / "initdb").is_file()
        and (d / "bin" / "pg_ctl").is_file()
    ]
    return max(found, key=lambda b: version(b.parent), default=None)


def _as_root() -> bool:
    return os.geteuid() == 0


def postgres_available() -> str | None:
    """None if `postgres_server` can run here, else why not. The server binaries (initdb,
    pg_ctl under /usr/lib/postgresql/*/bin) come from the Debian package, installed when missing
    (support.debian)."""
    try:
        ensure("postgresql", _bin_dir)
    except Unavailable as exc:
        return str(exc)
    if _as_root():
        try:
            pwd.getpwnam(SERVER_USER)
        except KeyError:
            return f"running as root, and there is no `{SERVER_USER}` OS user to run the server as"
        if shutil.which("runuser") is None:
            return "running as root, and `runuser` (util-linux) is missing"
    return None


def _env() -> dict[str, str]:
    """This environment without libpq's PG* variables, which would redirect the client tools."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


def _run(cmd: list[str], *, timeout: float, cwd: Path, as_server_user: bool = True) -> str:
    if as_server_user and _as_root():
        cmd = ["runuser", "-u", SERVER_USER, "--", *cmd]
    proc = subprocess.run(
        cmd,
        cwd=cwd,
        env=_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise PostgresError(
            f"{' '.join(cmd)} exited with {proc.returncode}:\n{proc.stdout}{proc.stderr}"
        )
    return proc.stdout


def _usable_by_server_user(directory: Path) -> bool:
    """Whether the server user can reach `directory` (every parent must be searchable)."""
    if not _as_root():
        return True
    try:
        _run(["test", "-x", str(directory)], timeout=10, cwd=Path("/"))
    except PostgresError:
        return False
    return True


def _make_base(tmp_dir: Path) -> Path:
    """A fresh directory the server user can enter: under `tmp_dir` if it can reach that (not the
    case for root's pytest tmp_path, /tmp/pytest-of-root being 0700), else under the system temp
    directory."""
    parent = tmp_dir if _usable_by_server_user(tmp_dir) else None
    base = Path(tempfile.mkdtemp(prefix="postgres-", dir=parent))
    base.chmod(0o755)
    return base


def _stop(bin_dir: Path, data: Path, cwd: Path) -> None:
    """Stop the server if it runs: pg_ctl stop -m immediate, else SIGKILL to the postmaster."""
    pid_file = data / "postmaster.pid"
    if not pid_file.exists():
        return
    try:
        _run(
            [str(bin_dir / "pg_ctl"), "stop", "-D", str(data), "-m", "immediate", "-w", "-t", "30"],
            timeout=40,
            cwd=cwd,
        )
    except (PostgresError, subprocess.TimeoutExpired):
        with suppress(OSError, ValueError, IndexError):
            os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)


@contextmanager
def postgres_server(tmp_dir: Path) -> Iterator[str]:
    """Run a throwaway PostgreSQL cluster; yield a SQLAlchemy URL to its empty database
    `pullthrough_test` (user `postgres`, no password, 127.0.0.1)."""
    reason = postgres_available()
    if reason is not None:
        raise PostgresError(reason)
    bin_dir = _bin_dir()
    assert bin_dir is not None
    base = _make_base(tmp_dir)
    data = base / "data"
    try:
        data.mkdir(mode=0o700)
        if _as_root():
            user = pwd.getpwnam(SERVER_USER)
            os.chown(data, user.pw_uid, user.pw_gid)
        initdb = [str(bin_dir / "initdb"), "-D", str(data), "-U", SERVER_USER, "--auth=trust"]
        _run(initdb + ["--no-locale", "--encoding=UTF8", "--no-sync"], timeout=120, cwd=base)
        # Opened for append/truncate, the files keep their owner (the server user).
        with (data / "postgresql.conf").open("a") as f:
            f.write(SETTINGS)
        (data / "pg_hba.conf").write_text(HBA)

        log = data / "server.log"
        for attempt in range(3):  # another process may take the free port before the server does
            port = free_port()
            start = [str(bin_dir / "pg_ctl"), "start", "-D", str(data), "-l", str(log)]
            try:
                _run(
                    start + ["-o", f"-p {port}", "-w", "-t", str(START_TIMEOUT)],
                    timeout=START_TIMEOUT + 10,
                    cwd=base,
                )
                break
            except PostgresError as e:
                server_log = log.read_text() if log.exists() else ""
                if attempt < 2 and "already in use" in server_log:
                    log.unlink()
                    continue
                raise PostgresError(f"{e}\nserver log:\n{server_log}") from None

        createdb = [str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port)]
        _run(createdb + ["-U", SERVER_USER, DATABASE], timeout=30, cwd=base, as_server_user=False)
        yield f"postgresql+psycopg://{SERVER_USER}@127.0.0.1:{port}/{DATABASE}"
    finally:
        try:
            _stop(bin_dir, data, base)
        finally:
            shutil.rmtree(base, ignore_errors=True)


@contextmanager
def private_database(server_url: str, *, timezone: str | None = None) -> Iterator[str]:
    """A fresh database on the session's PostgreSQL server (its sessions in `timezone` if given:
    a server set to local time), dropped afterwards; yields its URL."""
    name = f"db_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
            if timezone is not None:
                conn.execute(text(f"ALTER DATABASE \"{name}\" SET timezone TO '{timezone}'"))
        try:
            yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
