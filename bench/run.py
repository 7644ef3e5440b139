#!/usr/bin/env python3
"""Loopback benchmark of pullthrough against proxpi, nginx and a straight upstream.

Run from the repository root:  .venv/bin/python bench/run.py [--quick]

It builds a PEP 503 upstream index of small generated wheels (served by nginx), then measures
in one run:
  (a) warm project page: requests/s and server CPU per request, 8 keep-alive connections
      (wrk), for pullthrough, proxpi and nginx serving the same page bytes as a static file;
  (b) warm file download MB/s with 4 connections, pullthrough vs nginx serving the same bytes;
  (c) a cold `pip download --no-deps` of 25 projects through a freshly started pullthrough
      (empty data dir) vs straight from the upstream (and, for reference, a fresh proxpi).

Everything listens on 127.0.0.1 only; every loop is bounded in count and time; all processes
it starts are stopped on exit, also on error or Ctrl-C. See bench/README.md.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import html
import http.client
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlsplit

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
VENV_BIN = Path(sys.executable).parent
PULLTHROUGH = VENV_BIN / "pullthrough"
PROXPI_VENV = BENCH_DIR / ".venvs" / "proxpi"
HOST = "127.0.0.1"
BASE_PATH = "bench"

N_PROJECTS = 25
PAGE_PROJECT = "ptbench-00"  # the warm page of (a): many versions, like a real project
PAGE_PROJECT_VERSIONS = 40
BIG_PROJECT = "ptbench-big"
BIG_SIZE = 32 * 2**20
SMALL_PAYLOAD = 48 * 1024  # incompressible bytes inside each small wheel

ACCEPT_HTML = "text/html"
# What pip (>= 22.2) sends: JSON preferred, HTML accepted.
ACCEPT_PIP = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
    "text/html; q=0.01"
)

GOAL_RPS_VS_PROXPI = 3.0
GOAL_CPU_US = 250.0
GOAL_MBS_VS_NGINX = 0.90
GOAL_PIP_VS_UPSTREAM = 1.2

CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class BenchError(RuntimeError):
    pass


# --------------------------------------------------------------------------- processes


class Procs:
    """Every process the benchmark starts, each in its own process group; stop() ends them all."""

    def __init__(self) -> None:
        self.procs: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, argv: list[str], logfile: Path, **kw) -> subprocess.Popen:
        out = open(logfile, "ab")  # noqa: SIM115 - closed by the child's lifetime / gc
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **kw,
            )
        finally:
            out.close()
        self.procs.append((name, proc))
        return proc

    def stop_one(self, proc: subprocess.Popen, timeout: float = 8.0) -> None:
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

    def stop_all(self) -> None:
        for _name, proc in list(reversed(self.procs)):
            self.stop_one(proc)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def tail(path: Path, n: int = 25) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join("    " + line for line in lines[-n:])


def http_get(
    url: str, headers: dict[str, str] | None = None, timeout: float = 30.0
) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    try:
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request("GET", path or "/", headers=headers or {})
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
    finally:
        conn.close()


def wait_http(url: str, proc: subprocess.Popen, logfile: Path, timeout: float = 40.0) -> None:
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


def tree_pids(root: int) -> list[int]:
    """root and all its descendants, from /proc/<pid>/stat's ppid field."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def tree_cpu_seconds(root: int) -> float:
    """utime + stime of a process tree (all threads included), from /proc/<pid>/stat."""
    ticks = 0
    for pid in tree_pids(root):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields_ = stat[stat.rindex(")") + 2 :].split()
        ticks += int(fields_[11]) + int(fields_[12])  # utime, stime (fields 14, 15)
    return ticks / CLK_TCK


def all_cpu_ticks() -> dict[int, tuple[str, int]]:
    """pid -> (command name, utime + stime ticks) for every process."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        rest = stat[stat.rindex(")") + 2 :].split()
        out[int(entry)] = (
            stat[stat.index("(") + 1 : stat.rindex(")")],
            int(rest[11]) + int(rest[12]),
        )
    return out


def wait_idle(root: int, timeout: float = 6.0) -> None:
    """Wait (bounded) until a freshly started server tree stops burning CPU (workers booted)."""
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


# --------------------------------------------------------------------------- tools


def _apt_install(packages: list[str]) -> bool:
    if not shutil.which("apt-get") or os.geteuid() != 0:
        return False
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]

    def install() -> bool:
        log(f"apt-get install {' '.join(packages)}")
        r = subprocess.run(cmd, env=env, capture_output=True, timeout=600, check=False)
        return r.returncode == 0

    if install():
        return True
    log("apt-get update (package lists missing or stale)")
    subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600)
    return install()


def find_nginx() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )


def ensure_tools() -> tuple[str, str | None]:
    missing = [pkg for pkg, ok in (("nginx", find_nginx()), ("wrk", shutil.which("wrk"))) if not ok]
    if missing and not _apt_install(missing):
        log(f"could not install {missing} with apt-get")
    nginx = find_nginx()
    if not nginx:
        raise BenchError("nginx is required (apt-get install nginx)")
    wrk = shutil.which("wrk")
    if not wrk:
        log("wrk unavailable: falling back to a Python load loop (it may be the bottleneck)")
    return nginx, wrk


def ensure_proxpi() -> Path | None:
    """proxpi and gunicorn in their own venv, bench/.venvs/proxpi; its bin dir, or None."""
    bin_dir = PROXPI_VENV / "bin"
    check = [str(bin_dir / "python"), "-c", "import proxpi.server, gunicorn"]
    env = dict(os.environ, PROXPI_INDEX_URL="http://127.0.0.1:9/simple/")
    if (bin_dir / "gunicorn").exists():
        r = subprocess.run(check, capture_output=True, timeout=60, env=env, check=False)
        if r.returncode == 0:
            return bin_dir
    log(f"installing proxpi into {PROXPI_VENV}")
    try:
        if not (bin_dir / "python").exists():
            subprocess.run(
                [sys.executable, "-m", "venv", str(PROXPI_VENV)], check=True, timeout=120
            )
        subprocess.run(
            [str(bin_dir / "python"), "-m", "pip", "install", "-q", "proxpi", "gunicorn"],
            check=True,
            timeout=600,
        )
        subprocess.run(check, check=True, capture_output=True, timeout=60, env=env)
    except (subprocess.SubprocessError, OSError) as exc:
        log(f"proxpi unavailable: {exc}")
        return None
    return bin_dir


def pullthrough_available() -> tuple[bool, str]:
    if not PULLTHROUGH.exists():
        return False, f"{PULLTHROUGH} missing"
    r = subprocess.run(
        [str(PULLTHROUGH), "serve", "--help"], capture_output=True, timeout=60, check=False
    )
    if r.returncode != 0:
        err = (r.stderr or r.stdout).decode(errors="replace").strip().splitlines()
        return False, f"`pullthrough serve --help` failed: {err[-1] if err else r.returncode}"
    return True, ""


# --------------------------------------------------------------------------- the upstream


@dataclass
class Upstream:
    root: Path
    projects: list[str] = field(default_factory=list)  # normalized names, pip's targets
    files: dict[str, Path] = field(default_factory=dict)  # filename -> path
    big_file: str = ""


def _record_hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def build_wheel(dest: Path, project: str, version: str, payload: bytes) -> Path:
    dist = project.replace("-", "_")
    name = f"{dist}-{version}-py3-none-any.whl"
    info = f"{dist}-{version}.dist-info"
    entries = [
        (f"{dist}/__init__.py", f'__version__ = "{version}"\n'.encode(), zipfile.ZIP_DEFLATED),
        (f"{dist}/payload.bin", payload, zipfile.ZIP_STORED),
        (
            f"{info}/METADATA",
            (
                f"Metadata-Version: 2.1\nName: {project}\nVersion: {version}\n"
                f"Summary: pullthrough benchmark package\nRequires-Python: >=3.8\n"
            ).encode(),
            zipfile.ZIP_DEFLATED,
        ),
        (
            f"{info}/WHEEL",
            b"Wheel-Version: 1.0\nGenerator: pullthrough-bench\nRoot-Is-Purelib: true\n"
            b"Tag: py3-none-any\n",
            zipfile.ZIP_DEFLATED,
        ),
    ]
    record = "".join(f"{p},{_record_hash(d)},{len(d)}\n" for p, d, _ in entries)
    record += f"{info}/RECORD,,\n"
    path = dest / name
    with zipfile.ZipFile(path, "w") as zf:
        for p, data, compress in entries:
            zf.writestr(zipfile.ZipInfo(p, (2024, 1, 1, 0, 0, 0)), data, compress_type=compress)
        zf.writestr(zipfile.ZipInfo(f"{info}/RECORD", (2024, 1, 1, 0, 0, 0)), record)
    return path


def build_upstream(root: Path) -> Upstream:
    """~25 small wheel projects + one big wheel, as static PEP 503 pages under root/simple."""
    up = Upstream(root)
    files_dir = root / "files"
    files_dir.mkdir(parents=True)
    rnd = os.urandom(SMALL_PAYLOAD)
    by_project: dict[str, list[str]] = {}
    for i in range(N_PROJECTS):
        project = f"ptbench-{i:02d}"
        n_versions = PAGE_PROJECT_VERSIONS if project == PAGE_PROJECT else 3
        versions = [f"{1 + v // 10}.{v % 10}.0" for v in range(n_versions)]
        for v in versions:
            payload = hashlib.sha256(f"{project}{v}".encode()).digest() + rnd
            path = build_wheel(files_dir, project, v, payload)
            up.files[path.name] = path
            by_project.setdefault(project, []).append(path.name)
        up.projects.append(project)
    # The big file: a valid wheel of incompressible bytes, stored (not deflated).
    big = build_wheel(files_dir, BIG_PROJECT, "1.0.0", os.urandom(BIG_SIZE))
    up.files[big.name] = big
    up.big_file = big.name
    by_project[BIG_PROJECT] = [big.name]

    simple = root / "simple"
    simple.mkdir()
    index_links = []
    for project, names in by_project.items():
        links = []
        for fn in names:
            digest = hashlib.sha256(up.files[fn].read_bytes()).hexdigest()
            links.append(
                f'    <a href="../../files/{fn}#sha256={digest}" '
                f'data-requires-python="{html.escape(">=3.8")}">{fn}</a><br/>'
            )
        page = (
            "<!DOCTYPE html>\n<html>\n  <head>\n"
            '    <meta name="pypi:repository-version" content="1.0">\n'
            f"    <title>Links for {project}</title>\n  </head>\n  <body>\n"
            f"    <h1>Links for {project}</h1>\n" + "\n".join(links) + "\n  </body>\n</html>\n"
        )
        (simple / project).mkdir()
        (simple / project / "index.html").write_text(page)
        index_links.append(f'    <a href="{project}/">{project}</a><br/>')
    (simple / "index.html").write_text(
        "<!DOCTYPE html>\n<html><head><title>Simple index</title></head><body>\n"
        + "\n".join(index_links)
        + "\n</body></html>\n"
    )
    return up


# --------------------------------------------------------------------------- servers


NGINX_CONF = """\
worker_processes {workers};
{user_line}
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
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
    server {{
        listen {host}:{port};
        root {root};
        index index.html;
    }}
}}
"""


def start_nginx(
    procs: Procs, nginx: str, name: str, root: Path, work: Path, workers: int
) -> tuple[int, subprocess.Popen]:
    prefix = work / f"nginx-{name}"
    (prefix / "tmp").mkdir(parents=True)
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(
            workers=workers,
            # as root nginx would switch to www-data, which cannot read a 0700 temp dir
            user_line="user root;" if os.geteuid() == 0 else "",
            prefix=prefix,
            host=HOST,
            port=port,
            root=root,
        )
    )
    logfile = prefix / "stdout.log"
    proc = procs.start(
        name, [nginx, "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(conf)], logfile
    )
    wait_http(f"http://{HOST}:{port}/", proc, prefix / "error.log", timeout=15)
    return port, proc


def start_pullthrough(
    procs: Procs,
    work: Path,
    name: str,
    upstream_url: str,
    workers: int,
    threads: int,
    extra_config: str = "",
) -> tuple[int, subprocess.Popen, Path]:
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

[[distributions]]
name = "bench"
base_path = "{BASE_PATH}"
remote = "up"
"""
        + extra_config
    )
    logfile = home / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULLTHROUGH_")}
    proc = procs.start(
        name,
        [str(PULLTHROUGH), "serve", "--config", str(config), "--bind", f"{HOST}:{port}"],
        logfile,
        cwd=home,
        env=env,
    )
    wait_http(f"http://{HOST}:{port}/pulp/api/v3/status/", proc, logfile)
    wait_idle(proc.pid)
    return port, proc, logfile


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
) -> tuple[int, subprocess.Popen, Path]:
    home = work / name
    (home / "cache").mkdir(parents=True)
    port = free_port()
    logfile = home / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROXPI_")}
    env.update(
        PROXPI_INDEX_URL=upstream_url,
        PROXPI_CACHE_DIR=str(home / "cache"),
        PROXPI_INDEX_TTL="600",
        PROXPI_LOGGING_LEVEL="WARNING",
        NO_PROXY="127.0.0.1,localhost",
    )
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy"):
        env.pop(var, None)
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
    return port, proc, logfile


# --------------------------------------------------------------------------- load


def system_busy_seconds() -> float:
    """CPU seconds all CPUs spent busy since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        cpu = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal ...
    return (sum(cpu[:8]) - cpu[3] - cpu[4]) / CLK_TCK


def own_cpu_seconds() -> float:
    """CPU of this process and its reaped children (wrk, or the Python load loop)."""
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


@dataclass
class Load:
    """One measured run."""

    requests: int
    bytes: int
    seconds: float
    errors: int
    p50_ms: float
    p99_ms: float
    cpu_s: float  # the server's process tree
    other_cpu_s: float  # everything else on the machine but the load generator
    other_detail: str = ""  # who that was, when it was a lot
    top_worker_share: float = 0.0  # the busiest worker process's share of the workers' CPU

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def mbps(self) -> float:
        return self.bytes / 1e6 / self.seconds if self.seconds else 0.0


@dataclass
class Series:
    """The rounds of one (server, case): medians of rates, totals of CPU."""

    runs: list[Load] = field(default_factory=list)

    def _median(self, attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in self.runs)

    @property
    def rps(self) -> float:
        return self._median("rps")

    @property
    def mbps(self) -> float:
        return self._median("mbps")

    @property
    def p50_ms(self) -> float:
        return self._median("p50_ms")

    @property
    def p99_ms(self) -> float:
        return self._median("p99_ms")

    @property
    def errors(self) -> int:
        return sum(r.errors for r in self.runs)

    @property
    def seconds(self) -> float:
        return sum(r.seconds for r in self.runs)

    @property
    def cpu_us_per_req(self) -> float:
        n = sum(r.requests for r in self.runs)
        return sum(r.cpu_s for r in self.runs) / n * 1e6 if n else float("nan")

    @property
    def cpu_pct(self) -> float:
        return sum(r.cpu_s for r in self.runs) / self.seconds * 100 if self.seconds else 0.0

    @property
    def other_pct(self) -> float:
        return sum(r.other_cpu_s for r in self.runs) / self.seconds * 100 if self.seconds else 0.0

    def spread(self, attr: str) -> str:
        values = [getattr(r, attr) for r in self.runs]
        mid = statistics.median(values)
        return f"+-{(max(values) - min(values)) / 2 / mid * 100:.0f}%" if mid else "n/a"


WRK_LUA = """\
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCHJSON {\\"requests\\":%d,\\"bytes\\":%d,\\"duration_us\\":%d,\\"errors\\":%d,"
    .. "\\"p50_us\\":%d,\\"p99_us\\":%d}\\n",
    summary.requests, summary.bytes, summary.duration,
    e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def run_wrk(
    wrk: str, lua: Path, url: str, headers: dict[str, str], conns: int, seconds: float
) -> tuple[int, int, float, int, float, float]:
    argv = [
        wrk,
        "-t",
        str(min(2, conns)),
        "-c",
        str(conns),
        "-d",
        f"{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(lua),
    ]
    for k, v in headers.items():
        argv += ["-H", f"{k}: {v}"]
    argv.append(url)
    r = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30, check=False)
    m = re.search(r"^BENCHJSON (.*)$", r.stdout, re.M)
    if r.returncode != 0 or not m:
        raise BenchError(f"wrk failed ({r.returncode}): {r.stdout[-500:]} {r.stderr[-500:]}")
    d = json.loads(m.group(1))
    return (
        d["requests"],
        d["bytes"],
        d["duration_us"] / 1e6,
        d["errors"],
        d["p50_us"] / 1e3,
        d["p99_us"] / 1e3,
    )


def run_pyload(
    url: str, headers: dict[str, str], conns: int, seconds: float, max_requests: int = 2_000_000
) -> tuple[int, int, float, int, float, float]:
    """Fallback load generator: keep-alive http.client threads, bounded in time and count."""
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    lock = threading.Lock()
    totals = {"requests": 0, "bytes": 0, "errors": 0}
    lat: list[float] = []
    deadline = time.monotonic() + seconds
    per_thread = max_requests // conns

    def worker() -> None:
        conn = None
        n = nbytes = errors = 0
        mine: list[float] = []
        buf = memoryview(bytearray(1 << 20))
        while time.monotonic() < deadline and n < per_thread:
            t0 = time.perf_counter()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
                conn.request("GET", path, headers=headers)
                resp = conn.getresponse()
                while got := resp.readinto(buf):
                    nbytes += got
                if resp.status >= 400:
                    errors += 1
                if resp.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException):
                errors += 1
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.01)
            n += 1
            if len(mine) < 100_000:
                mine.append(time.perf_counter() - t0)
        if conn is not None:
            conn.close()
        with lock:
            totals["requests"] += n
            totals["bytes"] += nbytes
            totals["errors"] += errors
            lat.extend(mine)

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 30)
    elapsed = time.monotonic() - t0
    lat.sort()
    p50 = lat[len(lat) // 2] * 1e3 if lat else float("nan")
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3 if lat else float("nan")
    return totals["requests"], totals["bytes"], elapsed, totals["errors"], p50, p99


class Loader:
    def __init__(self, wrk: str | None, work: Path) -> None:
        self.wrk = wrk
        self.lua = work / "report.lua"
        self.lua.write_text(WRK_LUA)

    def once(
        self, url: str, headers: dict[str, str], conns: int, seconds: float
    ) -> tuple[int, int, float, int, float, float]:
        if self.wrk:
            return run_wrk(self.wrk, self.lua, url, headers, conns, seconds)
        return run_pyload(url, headers, conns, seconds)

    def run(
        self, url: str, headers: dict[str, str], conns: int, seconds: float, server_pid: int
    ) -> Load:
        procs0 = all_cpu_ticks()
        cpu0, sys0, own0 = tree_cpu_seconds(server_pid), system_busy_seconds(), own_cpu_seconds()
        n, nbytes, secs, errors, p50, p99 = self.once(url, headers, conns, seconds)
        cpu = tree_cpu_seconds(server_pid) - cpu0
        other = system_busy_seconds() - sys0 - (own_cpu_seconds() - own0) - cpu
        # The kernel's network threads work for the benchmark's own traffic: not "other".
        procs1 = all_cpu_ticks()
        for pid, (comm, ticks) in procs1.items():
            if comm.startswith("ksoftirqd"):
                other -= (ticks - procs0.get(pid, (comm, 0))[1]) / CLK_TCK
        load = Load(n, nbytes, secs, errors, p50, p99, cpu, max(0.0, other))
        # How the work spread over the server's worker processes (all but the master).
        workers = [
            procs1[pid][1] - procs0.get(pid, ("", 0))[1]
            for pid in tree_pids(server_pid)
            if pid != server_pid and pid in procs1
        ]
        if len(workers) >= 2 and sum(workers) > 0:
            load.top_worker_share = max(workers) / sum(workers)
        if secs and other / secs > 0.10:  # say who else was busy
            skip = set(tree_pids(server_pid)) | {os.getpid()}
            busy = []
            for pid, (comm, ticks) in procs1.items():
                delta = (ticks - procs0.get(pid, (comm, 0))[1]) / CLK_TCK
                if (
                    pid not in skip
                    and comm != "wrk"
                    and not comm.startswith("ksoftirqd")
                    and delta / secs >= 0.02
                ):
                    busy.append((delta, f"{comm}[{pid}] {delta / secs * 100:.0f}%"))
            load.other_detail = ", ".join(d for _, d in sorted(busy, reverse=True)[:4])
        return load


def measure(
    res: Results,
    label: str,
    out: dict,
    loader: Loader,
    cases: dict[tuple[str, str], tuple[str, dict[str, str], int]],
    conns: int,
    seconds: float,
    warmup: float,
    rounds: int,
) -> None:
    """Warm each case up, then run `rounds` rounds, interleaving the cases within each round.

    cases: (server, case name) -> (url, request headers, server pid).
    """
    live = dict(cases)
    for key, (url, headers, _pid) in list(live.items()):
        log(f"{label} warm-up {key[0]} {key[1]}: {url}")
        try:
            loader.once(url, headers, conns, warmup)
        except (BenchError, subprocess.SubprocessError) as exc:
            res.notes.append(f"{label} {key[0]} {key[1]}: {exc}")
            del live[key]
    for rnd in range(rounds):
        for key, (url, headers, pid) in list(live.items()):
            log(f"{label} round {rnd + 1}/{rounds} {key[0]} {key[1]}")
            try:
                load = loader.run(url, headers, conns, seconds, pid)
            except (BenchError, subprocess.SubprocessError) as exc:
                res.notes.append(f"{label} {key[0]} {key[1]}: {exc}")
                del live[key]
                continue
            if load.errors:
                res.notes.append(f"{label} {key[0]} {key[1]}: {load.errors} errors in a run")
            if load.top_worker_share > 0.85:
                res.notes.append(
                    f"{label} {key[0]} {key[1]} round {rnd + 1}: lopsided - one worker process "
                    f"did {load.top_worker_share:.0%} of the work ({load.rps:.0f} req/s)"
                )
            if load.other_detail:
                res.notes.append(
                    f"{label} {key[0]} {key[1]} round {rnd + 1}: other CPU "
                    f"{load.other_cpu_s / load.seconds * 100:.0f}%: {load.other_detail}"
                )
            out.setdefault(key, Series()).runs.append(load)


# --------------------------------------------------------------------------- pip


def pip_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy"):
        env.pop(var, None)
    env.update(PIP_CONFIG_FILE="/dev/null", NO_PROXY="127.0.0.1,localhost")
    return env


def pip_download(index_url: str, projects: list[str], dest: Path, timeout: float = 150) -> float:
    dest.mkdir(parents=True)
    argv = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--isolated",
        "--no-cache-dir",
        "--disable-pip-version-check",
        "--timeout",
        "30",
        "--retries",
        "0",
        "--index-url",
        index_url,
        "-d",
        str(dest),
        *projects,
    ]
    t0 = time.perf_counter()
    r = subprocess.run(
        argv, env=pip_env(), capture_output=True, text=True, timeout=timeout, check=False
    )
    elapsed = time.perf_counter() - t0
    if r.returncode != 0:
        # -q hides pip's WARNING lines about the request that failed: keep those visible.
        warnings = [
            ln for ln in (r.stdout + r.stderr).splitlines() if "WARNING" in ln or "ERROR" in ln
        ]
        raise BenchError(f"pip download via {index_url} failed:\n" + "\n".join(warnings[-15:]))
    got = len(list(dest.glob("*.whl")))
    if got != len(projects):
        raise BenchError(f"pip download via {index_url}: {got} files, expected {len(projects)}")
    return elapsed


# --------------------------------------------------------------------------- the run


def find_link(page: bytes, page_url: str, filename: str) -> str:
    for href in re.findall(rb'href="([^"]+)"', page):
        url = urljoin(page_url, html.unescape(href.decode()))
        if urlsplit(url).path.rsplit("/", 1)[-1] == filename:
            return url.split("#", 1)[0]
    raise BenchError(f"{page_url}: no link to {filename}")


def fmt(x: float | None, spec: str = ".0f") -> str:
    if x is None or x != x:  # None or NaN
        return "n/a"
    return format(x, spec)


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not b or a != a or b != b:
        return None
    return a / b


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join(
        h.ljust(w) if i == 0 else h.rjust(w)
        for i, (h, w) in enumerate(zip(headers, widths, strict=True))
    )
    out = [line, "  ".join("-" * w for w in widths)]
    for r in rows:
        out.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
    return "\n".join(out)


@dataclass
class Results:
    pages: dict[tuple[str, str], Series] = field(default_factory=dict)  # (server, format)
    page_sizes: dict[str, int] = field(default_factory=dict)
    files: dict[tuple[str, str], Series] = field(default_factory=dict)  # (server, "file")
    pip: dict[str, list[float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="shorter runs (under ~1 minute)")
    ap.add_argument("--seconds", type=float, help="seconds per load run (default 4, quick 1)")
    ap.add_argument(
        "--rounds", type=int, help="interleaved rounds of (a), (b) (default 3, quick 2)"
    )
    ap.add_argument("--workers", type=int, default=2, help="gunicorn workers (both proxies)")
    ap.add_argument("--threads", type=int, default=32, help="threads per worker (both proxies)")
    ap.add_argument("--no-pullthrough", action="store_true", help="skip pullthrough's rows")
    ap.add_argument("--no-proxpi", action="store_true", help="skip proxpi's rows")
    ap.add_argument("--python-load", action="store_true", help="use the Python loop, not wrk")
    ap.add_argument("--wrk-files", action="store_true", help="(b) with wrk, not the Python loop")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()

    seconds = args.seconds or (1.0 if args.quick else 4.0)
    rounds = args.rounds or (2 if args.quick else 3)
    warmup = 1.0
    pip_reps = 1 if args.quick else 3
    t_start = time.monotonic()

    nginx, wrk = ensure_tools()
    if args.python_load:
        wrk = None
    proxpi_bin = None if args.no_proxpi else ensure_proxpi()
    have_pt, why = (False, "--no-pullthrough") if args.no_pullthrough else pullthrough_available()
    if not have_pt:
        log(f"pullthrough unavailable: {why}")

    work = Path(tempfile.mkdtemp(prefix="pullthrough-bench-"))
    procs = Procs()
    res = Results()
    if not have_pt:
        res.notes.append(f"pullthrough not measured: {why}")
    if proxpi_bin is None:
        res.notes.append("proxpi not measured: not installed")

    def on_term(signum, frame):
        raise SystemExit(128 + signum)

    old_term = signal.signal(signal.SIGTERM, on_term)
    rc = 0
    try:
        log(f"building the upstream in {work}")
        up = build_upstream(work / "upstream")
        up_port, _ = start_nginx(procs, nginx, "nginx-upstream", up.root, work, 1)
        upstream_url = f"http://{HOST}:{up_port}/simple/"
        loader = Loader(wrk, work)
        formats = {"html": ACCEPT_HTML, "json(pip)": ACCEPT_PIP}

        # ---- servers for (a) and (b)
        page_targets: dict[str, tuple[str, int]] = {}
        page_bytes: dict[str, bytes] = {}
        pt_port = None
        if have_pt:
            try:
                pt_port, pt_proc, _ = start_pullthrough(
                    procs, work, "pullthrough-warm", upstream_url, args.workers, args.threads
                )
                url = f"http://{HOST}:{pt_port}/pypi/{BASE_PATH}/simple/{PAGE_PROJECT}/"
                for fmt_name, accept in formats.items():
                    status, headers, body = http_get(url, {"Accept": accept})
                    if status != 200:
                        raise BenchError(f"{url} ({fmt_name}): HTTP {status}: {body[:300]!r}")
                    if f"{PAGE_PROJECT.replace('-', '_')}-1.0.0".encode() not in body:
                        raise BenchError(f"{url} ({fmt_name}): the page lacks the files")
                    page_bytes.setdefault(fmt_name, body)
                    log(f"pullthrough {fmt_name}: {len(body)} B, {headers.get('content-type')}")
                page_targets["pullthrough"] = (url, pt_proc.pid)
            except BenchError as exc:
                res.notes.append(f"pullthrough (warm) failed: {exc}")
                log(str(exc))
                have_pt = False
        if proxpi_bin:
            try:
                px_port, px_proc, _ = start_proxpi(
                    procs,
                    proxpi_bin,
                    work,
                    "proxpi-warm",
                    upstream_url,
                    args.workers,
                    args.threads,
                )
                url = f"http://{HOST}:{px_port}/index/{PAGE_PROJECT}/"
                for fmt_name, accept in formats.items():
                    status, _, body = http_get(url, {"Accept": accept})
                    if status != 200:
                        raise BenchError(f"{url}: HTTP {status}: {body[:300]!r}")
                    page_bytes.setdefault(fmt_name, body)
                page_targets["proxpi"] = (url, px_proc.pid)
            except BenchError as exc:
                res.notes.append(f"proxpi failed: {exc}")
        static = work / "static"
        static.mkdir()
        for fmt_name in formats:
            body = page_bytes.get(fmt_name)
            if body is None:  # neither proxy answered: the upstream's bytes
                body = (up.root / "simple" / PAGE_PROJECT / "index.html").read_bytes()
            res.page_sizes[fmt_name] = len(body)
            ext = "json" if fmt_name.startswith("json") and body.lstrip()[:1] == b"{" else "html"
            (static / f"page-{fmt_name[:4]}.{ext}").write_bytes(body)
        os.link(up.files[up.big_file], static / up.big_file)
        st_port, st_proc = start_nginx(procs, nginx, "nginx-static", static, work, args.workers)
        static_pages = {f: next(static.glob(f"page-{f[:4]}.*")).name for f in formats}

        # ---- (a) warm simple pages, 8 connections, interleaved rounds
        cases = {}
        for fmt_name, accept in formats.items():
            for server, (url, pid) in page_targets.items():
                cases[(server, fmt_name)] = (url, {"Accept": accept}, pid)
            static_url = f"http://{HOST}:{st_port}/{static_pages[fmt_name]}"
            cases[("nginx-static", fmt_name)] = (static_url, {"Accept": accept}, st_proc.pid)
        measure(res, "(a)", res.pages, loader, cases, 8, seconds, warmup, rounds)

        # ---- (b) warm file download, 4 connections
        file_targets: dict[str, tuple[str, int]] = {}
        big_digest = hashlib.sha256(up.files[up.big_file].read_bytes()).hexdigest()
        if have_pt and pt_port:
            try:
                page_url = f"http://{HOST}:{pt_port}/pypi/{BASE_PATH}/simple/{BIG_PROJECT}/"
                status, _, page = http_get(page_url, {"Accept": ACCEPT_HTML})
                if status != 200:
                    raise BenchError(f"{page_url}: HTTP {status}")
                file_url = find_link(page, page_url, up.big_file)
                log(f"(b) warming {file_url}")
                t0 = time.perf_counter()
                status, _, body = http_get(file_url, timeout=120)
                cold = time.perf_counter() - t0
                if status != 200 or hashlib.sha256(body).hexdigest() != big_digest:
                    raise BenchError(f"{file_url}: HTTP {status}, {len(body)} B, wrong bytes")
                res.notes.append(
                    f"(b) pullthrough's first (cold) fetch of the big file: "
                    f"{cold:.2f}s, {len(body) / 1e6 / cold:.0f} MB/s"
                )
                del body
                file_targets["pullthrough"] = (file_url, pt_proc.pid)
            except (BenchError, OSError) as exc:
                res.notes.append(f"(b) pullthrough failed: {exc}")
        file_targets["nginx-static"] = (f"http://{HOST}:{st_port}/{up.big_file}", st_proc.pid)
        cases = {(srv, "file"): (url, {}, pid) for srv, (url, pid) in file_targets.items()}
        # wrk reads 8 KiB at a time and would cap both servers alike: a Python client that
        # reads 1 MiB at a time gets more out of the two shared CPUs.
        file_loader = Loader(None if not args.wrk_files else wrk, work)
        measure(res, "(b)", res.files, file_loader, cases, 4, seconds, warmup, rounds)

        # The warm servers are done: stop them so they do not share the CPU with (c).
        for name, proc in list(procs.procs):
            if name in ("pullthrough-warm", "proxpi-warm", "nginx-static"):
                procs.stop_one(proc)

        # ---- (c) cold pip download of the 25 projects
        log("(c) pip warm-up run (imports, page cache)")
        pip_download(upstream_url, up.projects[:1], work / "pip-warmup")
        for rep in range(pip_reps):
            log(f"(c) rep {rep + 1}/{pip_reps}: upstream")
            res.pip.setdefault("upstream (nginx)", []).append(
                pip_download(upstream_url, up.projects, work / f"pip-up-{rep}")
            )
            if have_pt:
                log(f"(c) rep {rep + 1}/{pip_reps}: fresh pullthrough")
                try:
                    port, proc, _ = start_pullthrough(
                        procs,
                        work,
                        f"pullthrough-cold-{rep}",
                        upstream_url,
                        args.workers,
                        args.threads,
                    )
                    index = f"http://{HOST}:{port}/pypi/{BASE_PATH}/simple/"
                    res.pip.setdefault("pullthrough (cold)", []).append(
                        pip_download(index, up.projects, work / f"pip-pt-{rep}")
                    )
                    # For reference: the same again, now that this instance has it all.
                    res.pip.setdefault("pullthrough (warm, ref.)", []).append(
                        pip_download(index, up.projects, work / f"pip-ptw-{rep}")
                    )
                    procs.stop_one(proc)
                except (BenchError, subprocess.SubprocessError) as exc:
                    res.notes.append(f"(c) pullthrough rep {rep + 1}: {exc}")
            if proxpi_bin:
                log(f"(c) rep {rep + 1}/{pip_reps}: fresh proxpi")
                try:
                    port, proc, _ = start_proxpi(
                        procs,
                        proxpi_bin,
                        work,
                        f"proxpi-cold-{rep}",
                        upstream_url,
                        args.workers,
                        args.threads,
                    )
                    res.pip.setdefault("proxpi (cold, ref.)", []).append(
                        pip_download(
                            f"http://{HOST}:{port}/index/", up.projects, work / f"pip-px-{rep}"
                        )
                    )
                    procs.stop_one(proc)
                except (BenchError, subprocess.SubprocessError) as exc:
                    res.notes.append(f"(c) proxpi rep {rep + 1}: {exc}")
    except BenchError as exc:
        log(f"FAILED: {exc}")
        res.notes.append(f"run aborted: {exc}")
        rc = 2
    finally:
        procs.stop_all()
        signal.signal(signal.SIGTERM, old_term)
        for logfile in sorted(work.glob("pullthrough-*/server.log")):
            res.notes += [f"{logfile.parent.name} log: {ln}" for ln in log_problems(logfile)]
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    report(
        res,
        seconds,
        rounds,
        wrk is not None,
        bool(wrk and args.wrk_files),
        time.monotonic() - t_start,
        pip_reps,
    )
    return rc


def report(
    res: Results,
    seconds: float,
    rounds: int,
    used_wrk: bool,
    wrk_files: bool,
    total: float,
    pip_reps: int,
) -> None:
    tool = "wrk -t2" if used_wrk else "python load loop"
    print()
    print(
        f"pullthrough benchmark - loopback, {os.cpu_count()} CPUs, {tool}, "
        f"{rounds} x {seconds:g}s per case (median of rounds; CPU totals over rounds)"
    )
    print()
    sizes = ", ".join(f"{k} {v / 1024:.1f} KiB" for k, v in res.page_sizes.items())
    print(
        f"(a) warm project page '{PAGE_PROJECT}' ({PAGE_PROJECT_VERSIONS} files; {sizes}), "
        "8 keep-alive connections"
    )
    rows = []
    for (server, fmt_name), se in res.pages.items():
        ng = res.pages.get(("nginx-static", fmt_name))
        px = res.pages.get(("proxpi", fmt_name))
        rows.append(
            [server, fmt_name, fmt(se.rps), se.spread("rps"), fmt(se.p50_ms, ".2f"),
             fmt(se.p99_ms, ".2f"), fmt(se.cpu_us_per_req), fmt(se.cpu_pct),
             fmt(se.other_pct), fmt(ratio(se.rps, px.rps if px else None), ".2f"),
             fmt(ratio(se.rps, ng.rps if ng else None), ".3f"), str(se.errors)]
        )  # fmt: skip
    if rows:
        print(
            table(
                ["server", "format", "req/s", "spread", "p50 ms", "p99 ms", "CPU us/req",
                 "CPU %", "other %", "vs proxpi", "vs nginx", "errors"],
                rows,
            )
        )  # fmt: skip
    print()
    print(
        f"(b) warm file download ({BIG_SIZE / 2**20:.0f} MiB wheel), 4 keep-alive connections, "
        f"{'wrk' if wrk_files else 'Python client, 1 MiB reads'}"
    )
    rows = []
    ng_file = res.files.get(("nginx-static", "file"))
    for (server, _), se in res.files.items():
        rows.append(
            [server, fmt(se.mbps), se.spread("mbps"), fmt(se.rps, ".1f"), fmt(se.cpu_pct),
             fmt(se.other_pct), fmt(ratio(se.mbps, ng_file.mbps if ng_file else None), ".3f"),
             str(se.errors)]
        )  # fmt: skip
    if rows:
        print(
            table(
                ["server", "MB/s", "spread", "files/s", "CPU %", "other %", "vs nginx", "errors"],
                rows,
            )
        )
    print()
    print(f"(c) cold `pip download --no-deps` of {N_PROJECTS} projects, best of {pip_reps}")
    rows = []
    up_best = min(res.pip.get("upstream (nginx)", [float("nan")]))
    for name, times in res.pip.items():
        rows.append(
            [name, fmt(min(times), ".2f"), " ".join(f"{t:.2f}" for t in times),
             fmt(ratio(min(times), up_best), ".2f")]
        )  # fmt: skip
    if rows:
        print(table(["index", "best s", "all runs s", "vs upstream"], rows))
    print()
    print(
        "CPU % = the server's process tree (100 = one core); other % = the rest of the machine "
        "except the load generator (should be ~0)."
    )
    busiest = max((se.other_pct for se in [*res.pages.values(), *res.files.values()]), default=0)
    if busiest > 15:
        print(
            f"WARNING: other processes took up to {busiest:.0f}% CPU during the load runs "
            "(see Notes): the figures are noisy; rerun on a quiet machine."
        )
    print()
    print("Goals")

    def goal(label: str, ok: bool | None, detail: str) -> None:
        verdict = "n/a (not measured)" if ok is None else ("MET" if ok else "NOT MET")
        print(f"  {label:<52} {verdict:<8}  {detail}")

    for fmt_name in res.page_sizes:
        pt = res.pages.get(("pullthrough", fmt_name))
        px = res.pages.get(("proxpi", fmt_name))
        r = ratio(pt.rps if pt else None, px.rps if px else None)
        goal(
            f"(a) {fmt_name}: req/s >= {GOAL_RPS_VS_PROXPI:g}x proxpi",
            None if r is None else r >= GOAL_RPS_VS_PROXPI,
            f"x{fmt(r, '.2f')}",
        )
        cpu = pt.cpu_us_per_req if pt else None
        goal(
            f"(a) {fmt_name}: server CPU <= {GOAL_CPU_US:g} us/request",
            None if cpu is None else cpu <= GOAL_CPU_US,
            f"{fmt(cpu)} us",
        )
    pt_file = res.files.get(("pullthrough", "file"))
    r = ratio(pt_file.mbps if pt_file else None, ng_file.mbps if ng_file else None)
    goal(
        f"(b) download MB/s >= {GOAL_MBS_VS_NGINX:.0%} of nginx",
        None if r is None else r >= GOAL_MBS_VS_NGINX,
        f"{fmt(None if r is None else r * 100)}%",
    )
    pt_pip = res.pip.get("pullthrough (cold)")
    r = ratio(min(pt_pip) if pt_pip else None, up_best)
    goal(
        f"(c) cold pip download <= {GOAL_PIP_VS_UPSTREAM:g}x straight upstream",
        None if r is None else r <= GOAL_PIP_VS_UPSTREAM,
        f"x{fmt(r, '.2f')}",
    )
    if res.notes:
        print()
        print("Notes")
        for note in res.notes:
            print(f"  - {note}")
    print()
    print(f"total {total:.0f}s")


if __name__ == "__main__":
    sys.exit(main())
