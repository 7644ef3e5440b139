"""Starting and stopping the servers: nginx, pullthrough (`pullthrough serve`), proxpi, and
gunicorn running the reference apps (`gunicorn-constant`, `relay-floor`).

Every process runs in its own process group, on a free port of 127.0.0.1, and is waited for
(bounded) until it answers HTTP; Procs stops them all on exit, error, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from bench.common import HOST, PULLTHROUGH, BenchError, child_env, http_get
from bench.procfs import tree_cpu_seconds

BASE_PATH = "bench"  # the base path of pullthrough's distribution of the upstream


class Procs:
    """Every process the benchmark starts, each in its own process group.

    As a context manager: SIGTERM raises SystemExit inside it, and leaving it stops them all.
    """

    def __init__(self) -> None:
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self._old_term: Callable[[int, FrameType | None], Any] | int | None = None

    def __enter__(self) -> Procs:
        def on_term(signum: int, frame: FrameType | None) -> None:
            raise SystemExit(128 + signum)

        self._old_term = signal.signal(signal.SIGTERM, on_term)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_all()
        signal.signal(signal.SIGTERM, self._old_term)

    def start(
        self,
        name: str,
        argv: list[str],
        logfile: Path,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        out = open(logfile, "ab")  # noqa: SIM115 - closed by the child's lifetime / gc
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=cwd,
                env=env,
            )
        finally:
            out.close()
        self.procs.append((name, proc))
        return proc

    def stop_one(self, proc: subprocess.Popen[bytes], timeout: float = 8.0) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout)
        # The group may outlive its leader (workers); make sure it is gone.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(2)
        self.procs = [(n, p) for n, p in self.procs if p is not proc]

    def stop_named(self, *names: str) -> None:
        for name, proc in list(self.procs):
            if name in names:
                self.stop_one(proc)

    def stop_all(self) -> None:
        for _name, proc in list(reversed(self.procs)):
            self.stop_one(proc)


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    home: Path  # its folder in the work dir
    logfile: Path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def tail(path: Path, n: int = 25) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join("    " + line for line in lines[-n:])


def wait_http(
    url: str, proc: subprocess.Popen[bytes], logfile: Path, timeout: float = 40.0
) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{url}: server exited with {proc.returncode}\n{tail(logfile)}")
        try:
            status, _, _ = http_get(url, timeout=3)
            if status < 500:
                return
            last = f"HTTP {status}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.1)
    raise BenchError(f"{url}: not ready after {timeout:.0f}s ({last})\n{tail(logfile)}")


def wait_idle(root: int, timeout: float = 6.0) -> None:
    """Wait (bounded) until a server tree stops burning CPU: its workers booted, or the
    background work of its last request done."""
    deadline = time.monotonic() + timeout
    last = tree_cpu_seconds(root)
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = tree_cpu_seconds(root)
        if now - last <= 0.02:
            return
        last = now


def log_problems(logfile: Path, limit: int = 5) -> list[str]:
    """Lines of a server log that look like trouble."""
    try:
        lines = logfile.read_text(errors="replace").splitlines()
    except OSError:
        return []
    bad = [ln.strip() for ln in lines if re.search(r"ERROR|CRITICAL|Traceback|WARNING", ln)]
    return bad[:limit] + ([f"... {len(bad) - limit} more"] if len(bad) > limit else [])


def server_log_notes(work: Path, pattern: str, limit: int) -> list[str]:
    """Notes of the trouble in the server logs work/<pattern> (e.g. "pt-*/server.log")."""
    return [
        f"{logfile.parent.name} log: {line}"
        for logfile in sorted(work.glob(pattern))
        for line in log_problems(logfile, limit)
    ]


# --------------------------------------------------------------------------- nginx


NGINX_CONF = """\
worker_processes {workers};
{user_line}
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
{logging}    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    absolute_redirect off;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    types {{
        text/html html;
        application/vnd.pypi.simple.v1+json json;
        application/octet-stream whl;
    }}
    default_type application/octet-stream;
    # PEP 691: a folder's index.json (where there is one) to a client whose Accept names it
    map $http_accept $index_ext {{
        default html;
        "~application/vnd[.]pypi[.]simple[.]v1[+]json" json;
    }}
    server {{
        listen {host}:{port};
        root {root};
        index index.$index_ext index.html;
    }}
}}
"""

# The access log the sync benchmark counts (statuses, keep-alive), with ETag / Last-Modified
# spelled out (nginx's defaults, made explicit: the re-sync relies on them).
NGINX_ACCESS_LOG = """\
    log_format status '$status $connection_requests $request_uri';
    access_log {prefix}/access.log status;
    etag on;
    if_modified_since exact;
"""


def start_nginx(
    procs: Procs,
    nginx: str,
    name: str,
    root: Path,
    work: Path,
    workers: int,
    access_log: bool = False,
    ready_path: str = "",
) -> Server:
    """nginx serving root's files statically, in work/<name>; access_log: home/access.log."""
    prefix = work / name
    (prefix / "tmp").mkdir(parents=True)
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(
            workers=workers,
            # as root nginx would switch to www-data, which cannot read a 0700 temp dir
            user_line="user root;" if os.geteuid() == 0 else "",
            prefix=prefix,
            logging=(
                NGINX_ACCESS_LOG.format(prefix=prefix) if access_log else "    access_log off;\n"
            ),
            host=HOST,
            port=port,
            root=root,
        )
    )
    errors = prefix / "error.log"
    argv = [nginx, "-p", str(prefix), "-e", str(errors), "-c", str(conf)]
    proc = procs.start(name, argv, prefix / "stdout.log")
    wait_http(f"http://{HOST}:{port}/{ready_path}", proc, errors, timeout=15)
    return Server(name, port, proc, prefix, errors)


class NginxLog:
    """Counts of statuses in an access log (NGINX_ACCESS_LOG's format) since the last mark()."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def mark(self) -> None:
        self.offset = self.path.stat().st_size if self.path.exists() else 0

    def counts(self) -> dict[str, int]:
        """HTTP status -> requests, and "conns": the connections they came on (new ones)."""
        out: dict[str, int] = {"conns": 0}
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            for line in f.read().decode(errors="replace").splitlines():
                status, nth, _uri = (line.split(" ", 2) + ["", ""])[:3]
                out[status] = out.get(status, 0) + 1
                out["conns"] += nth == "1"
        return out


def check_revalidation(url: str) -> str:
    """The upstream sends ETag and Last-Modified, and answers 304 to either validator."""
    status, headers, _ = http_get(url)
    etag, modified = headers.get("etag"), headers.get("last-modified")
    if status != 200 or not etag or not modified:
        raise BenchError(f"{url}: HTTP {status}, ETag {etag!r}, Last-Modified {modified!r}")
    s1, _, _ = http_get(url, {"If-None-Match": etag})
    s2, _, _ = http_get(url, {"If-Modified-Since": modified})
    if (s1, s2) != (304, 304):
        raise BenchError(f"{url}: conditional GETs answered {s1} (ETag), {s2} (date), not 304")
    return f"ETag {etag}, Last-Modified {modified}: 304 to both"


# --------------------------------------------------------------------------- the proxies


def start_pullthrough(
    procs: Procs,
    work: Path,
    name: str,
    upstream_url: str,
    workers: int,
    threads: int,
    extra_config: str = "",
    *,
    remote_config: str = "",
) -> Server:
    """`pullthrough serve` with an empty data dir in work/<name>, the upstream at BASE_PATH.
    extra_config is appended after the distribution's keys (its own keys, then more tables);
    remote_config goes in the remote's table (its keys)."""
    home = work / name
    home.mkdir()
    port = free_port()
    config = home / "pullthrough.toml"
    config.write_text(
        f"""[server]
data_dir = "{home / "data"}"
workers = {workers}
threads = {threads}

[cache]
max_size = "5GB"
index_ttl = "10m"

[[remotes]]
name = "up"
url = "{upstream_url}"
{remote_config}
[[distributions]]
name = "bench"
base_path = "{BASE_PATH}"
remote = "up"
"""
        + extra_config
    )
    logfile = home / "server.log"
    proc = procs.start(
        name,
        [str(PULLTHROUGH), "serve", "--config", str(config), "--bind", f"{HOST}:{port}"],
        logfile,
        cwd=home,
        env=child_env("PULLTHROUGH_"),
    )
    wait_http(f"http://{HOST}:{port}/pulp/api/v3/status/", proc, logfile)
    wait_idle(proc.pid)
    return Server(name, port, proc, home, logfile)


_OPTION_CACHE: dict[tuple[str, str], bool] = {}


def _has_option(program: Path, option: str) -> bool:
    key = (str(program), option)
    if key not in _OPTION_CACHE:
        r = subprocess.run(
            [str(program), "--help"], capture_output=True, text=True, timeout=60, check=False
        )
        _OPTION_CACHE[key] = option in r.stdout
    return _OPTION_CACHE[key]


def start_proxpi(
    procs: Procs,
    bin_dir: Path,
    work: Path,
    name: str,
    upstream_url: str,
    workers: int,
    threads: int,
) -> Server:
    """proxpi under gunicorn (pullthrough's settings) with an empty cache in work/<name>."""
    home = work / name
    (home / "cache").mkdir(parents=True)
    port = free_port()
    logfile = home / "server.log"
    env = child_env(
        "PROXPI_",
        loopback=True,
        PROXPI_INDEX_URL=upstream_url,
        PROXPI_CACHE_DIR=str(home / "cache"),
        PROXPI_INDEX_TTL="600",
        PROXPI_LOGGING_LEVEL="WARNING",
    )
    argv = [
        str(bin_dir / "gunicorn"),
        "--bind",
        f"{HOST}:{port}",
        "--workers",
        str(workers),
        "--threads",
        str(threads),
        "--worker-class",
        "gthread",
        "--keep-alive",
        "30",  # as pullthrough's gunicorn config
        "proxpi.server:app",
    ]
    if _has_option(bin_dir / "gunicorn", "--no-control-socket"):
        argv.insert(1, "--no-control-socket")  # gunicorn >= 24: one shared socket per user
    proc = procs.start(name, argv, logfile, cwd=home, env=env)
    wait_http(f"http://{HOST}:{port}/health", proc, logfile)
    wait_idle(proc.pid)
    return Server(name, port, proc, home, logfile)


CONSTANT_APP = """\
from pathlib import Path

HERE = Path(__file__).parent
PAGES = {{fmt: (HERE / name).read_bytes() for fmt, name in {pages!r}.items()}}


def app(environ, start_response):
    fmt = "json" if "json" in environ.get("HTTP_ACCEPT", "") else "html"
    body = PAGES[fmt]
    start_response("200 OK", [("Content-Type", "text/html"), ("Content-Length", str(len(body)))])
    return [body]
"""


def start_gunicorn_constant(
    procs: Procs, work: Path, name: str, pages: dict[str, Path], workers: int, threads: int
) -> Server:
    """gunicorn with pullthrough's gunicorn settings (worker class, threads, keep-alive) serving the
    very page bytes from memory with a five-line WSGI app: the floor of any app under it.
    `pages`: "html" / "json" -> the file whose bytes it sends."""
    home = work / name
    home.mkdir()
    for fmt, path in pages.items():
        os.link(path, home / f"{fmt}.page")
    names = {fmt: f"{fmt}.page" for fmt in pages}
    (home / "constant_app.py").write_text(CONSTANT_APP.format(pages=names))
    return start_gunicorn_app(procs, home, name, "constant_app:app", "/", workers, threads)


RELAY_APP = """\
import requests

UPSTREAM = {upstream!r}  # a simple index root; the request's path is appended to it
SESSION = requests.Session()  # one per worker (imported after the fork), as pullthrough's
SESSION.trust_env = False  # as pullthrough's client: no proxy settings from the environment


def app(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path == "/health":  # readiness, answered here: the upstream is not contacted
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]
    accept = environ.get("HTTP_ACCEPT")
    headers = {{"Accept": accept}} if accept else {{}}
    url = UPSTREAM + path.lstrip("/")
    with SESSION.get(url, headers=headers, timeout=120, stream=True) as resp:
        # the whole page before answering, read as pullthrough reads it (256 KiB at a time;
        # requests' `.content` reads 10 KiB at a time, which takes twice as long)
        body = b"".join(resp.raw.stream(256 * 1024, decode_content=False))
    sent = [("Content-Type", resp.headers.get("Content-Type", "application/octet-stream"))]
    if "Content-Encoding" in resp.headers:  # the bytes as they came (nginx here sends no gzip)
        sent.append(("Content-Encoding", resp.headers["Content-Encoding"]))
    sent.append(("Content-Length", str(len(body))))
    start_response(f"{{resp.status_code}} {{resp.reason}}", sent)
    return [body]
"""


def start_relay_floor(
    procs: Procs, work: Path, name: str, upstream_url: str, workers: int, threads: int
) -> Server:
    """gunicorn with pullthrough's worker settings running a WSGI app that, per request, GETs
    the same path under upstream_url (a simple index root) with `requests` (one Session per
    worker, the client's Accept header passed on), reads the whole body and answers those bytes
    with the upstream's Content-Type: the floor of any Python proxy that fetches a page whole
    before answering. It keeps nothing, so every GET is cold; its readiness path (`/health`)
    does not touch the upstream, so its connection pool starts empty. Its URL for a project
    page is `<url>/<project>/`."""
    home = work / name
    home.mkdir()
    (home / "relay_app.py").write_text(RELAY_APP.format(upstream=upstream_url))
    return start_gunicorn_app(procs, home, name, "relay_app:app", "/health", workers, threads)


def start_gunicorn_app(
    procs: Procs, home: Path, name: str, app: str, ready_path: str, workers: int, threads: int
) -> Server:
    """The venv's gunicorn with pullthrough's own settings (its config module: worker class,
    keep-alive 30 s, no control socket), `workers` x `threads`, running `app` (module:callable)
    from home; ready once ready_path answers and its workers have booted."""
    port = free_port()
    logfile = home / "server.log"
    argv = [str(PULLTHROUGH.parent / "gunicorn"), "-c", "python:pullthrough.gunicorn_conf"]
    argv += ["--bind", f"{HOST}:{port}", "--workers", str(workers), "--threads", str(threads), app]
    proc = procs.start(name, argv, logfile, cwd=home, env=child_env("PULLTHROUGH_"))
    wait_http(f"http://{HOST}:{port}{ready_path}", proc, logfile)
    wait_idle(proc.pid)
    return Server(name, port, proc, home, logfile)
