#!/usr/bin/env python3
"""Loopback benchmark of pullthrough's repository sync (the Pulp-style REST API).

Run from the repository root:  .venv/bin/python bench/sync.py [--quick]

It builds two static PEP 503 upstreams served by one nginx (with ETag/Last-Modified, 304s):
  (1) 60 projects x 5 versions of ~30-60 KB wheels, synced into a fresh pullthrough (empty data
      dir) per case: policy immediate with download_concurrency 1, 4 and 10, then on_demand and
      streamed;
  (2) 5,000 projects of one tiny wheel each, synced on_demand by a remote without includes
      (so the whole /simple/ list and every project page are read): time and the gunicorn
      workers' peak memory (VmHWM);
  (3) a no-change re-sync of (2): project pages revalidate with ETags (304s).

Everything listens on 127.0.0.1 only; every loop is bounded in count and time; every process
it starts is stopped on exit, also on error, Ctrl-C or SIGTERM. It reuses bench/run.py's
helpers (processes, nginx, wheels, tables). See bench/README.md.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import html
import http.client
import importlib.util
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent


def _load_run_module() -> Any:
    spec = importlib.util.spec_from_file_location("bench_run", BENCH_DIR / "run.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {BENCH_DIR / 'run.py'}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


br = _load_run_module()
HOST = br.HOST
PULLTHROUGH = br.PULLTHROUGH
log, fmt, table, BenchError = br.log, br.fmt, br.table, br.BenchError

ADMIN_PASSWORD = "bench-sync-secret"
API = "/pulp/api/v3/"
REMOTES = API + "remotes/python/python/"
REPOSITORIES = API + "repositories/python/python/"
WORKERS = 2
THREADS = 32

# bench/run.py's nginx, plus an access log of statuses (to count 200s and 304s) and ETag /
# Last-Modified spelled out (nginx's defaults, made explicit: the re-sync relies on them).
NGINX_CONF = br.NGINX_CONF.replace(
    "    access_log off;\n",
    "    log_format status '$status $connection_requests $request_uri';\n"
    "    access_log {prefix}/access.log status;\n"
    "    etag on;\n"
    "    if_modified_since exact;\n",
)
assert NGINX_CONF != br.NGINX_CONF, "bench/run.py's NGINX_CONF changed: update bench/sync.py"


@dataclass
class Case:
    label: str
    policy: str
    concurrency: int | None
    files: int = 0  # files in the new version
    downloaded: int = 0  # files the task downloaded
    task_s: float = float("nan")  # started_at -> finished_at, from the task
    wall_s: float = float("nan")  # POST sync/ -> `completed` seen by polling
    cpu_s: float = float("nan")  # the server's process tree, over wall_s
    worker: str = ""  # the task's worker (`<host>-<pid>-<thread>`)
    upstream: dict[str, int] = field(default_factory=dict)  # HTTP status -> count; "conns"
    state: str = "not run"
    error: str = ""


@dataclass
class ManyResult:
    projects: int = 0
    first: Case | None = None
    again: Case | None = None
    changed_first: str = "n/a"
    changed_again: str = "n/a"
    boot_kib: dict[str, int] = field(default_factory=dict)  # worker -> VmHWM after boot
    after_first_kib: dict[str, int] = field(default_factory=dict)
    after_again_kib: dict[str, int] = field(default_factory=dict)
    rss_after_kib: dict[str, int] = field(default_factory=dict)


@dataclass
class Results:
    small_projects: int = 0
    small_files: int = 0
    small_bytes: int = 0
    cases: list[Case] = field(default_factory=list)
    many: ManyResult = field(default_factory=ManyResult)
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- the upstreams


def write_simple(root: Path, pages: dict[str, list[tuple[str, str]]]) -> None:
    """root/simple/index.html and root/simple/<project>/index.html; links to ../../files/."""
    simple = root / "simple"
    simple.mkdir(parents=True)
    index_links = []
    for project, files in pages.items():
        links = "\n".join(
            f'    <a href="../../files/{fn}#sha256={digest}" '
            f'data-requires-python="{html.escape(">=3.8")}">{fn}</a><br/>'
            for fn, digest in files
        )
        (simple / project).mkdir()
        (simple / project / "index.html").write_text(
            "<!DOCTYPE html>\n<html>\n  <head>\n"
            '    <meta name="pypi:repository-version" content="1.0">\n'
            f"    <title>Links for {project}</title>\n  </head>\n  <body>\n"
            f"    <h1>Links for {project}</h1>\n{links}\n  </body>\n</html>\n"
        )
        index_links.append(f'    <a href="{project}/">{project}</a><br/>')
    (simple / "index.html").write_text(
        "<!DOCTYPE html>\n<html><head><title>Simple index</title></head><body>\n"
        + "\n".join(index_links)
        + "\n</body></html>\n"
    )


def build_small(root: Path, n_projects: int, n_versions: int) -> tuple[list[str], int, int]:
    """n_projects x n_versions valid wheels of 30-60 KB (incompressible payload)."""
    files_dir = root / "files"
    files_dir.mkdir(parents=True)
    rng = random.Random(1234)
    noise = os.urandom(64 * 1024)
    pages: dict[str, list[tuple[str, str]]] = {}
    total = 0
    for i in range(n_projects):
        project = f"ptsync-{i:03d}"
        for v in range(n_versions):
            version = f"1.{v}.0"
            size = rng.randint(30 * 1024, 58 * 1024)
            payload = hashlib.sha256(f"{project}{version}".encode()).digest() + noise[:size]
            path = br.build_wheel(files_dir, project, version, payload)
            data = path.read_bytes()
            total += len(data)
            pages.setdefault(project, []).append((path.name, hashlib.sha256(data).hexdigest()))
    write_simple(root, pages)
    return list(pages), n_projects * n_versions, total


def _tiny_wheel(files_dir: Path, project: str) -> tuple[str, str]:
    """A valid ~0.6 KB wheel, written straight (no compression, fixed timestamps)."""
    import zipfile

    dist = project.replace("-", "_")
    name = f"{dist}-1.0.0-py3-none-any.whl"
    info = f"{dist}-1.0.0.dist-info"
    entries = [
        (f"{dist}/__init__.py", b""),
        (f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {project}\nVersion: 1.0.0\n".encode()),
        (f"{info}/WHEEL", b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"),
    ]

    def rec(d: bytes) -> str:
        h = base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b"=").decode()
        return f"sha256={h}"

    record = "".join(f"{p},{rec(d)},{len(d)}\n" for p, d in entries) + f"{info}/RECORD,,\n"
    path = files_dir / name
    with zipfile.ZipFile(path, "w") as zf:
        for p, d in [*entries, (f"{info}/RECORD", record.encode())]:
            zf.writestr(zipfile.ZipInfo(p, (2024, 1, 1, 0, 0, 0)), d)
    return name, hashlib.sha256(path.read_bytes()).hexdigest()


def build_many(root: Path, n_projects: int) -> list[str]:
    files_dir = root / "files"
    files_dir.mkdir(parents=True)
    pages = {}
    for i in range(n_projects):
        project = f"ptmany-{i:04d}"
        pages[project] = [_tiny_wheel(files_dir, project)]
    write_simple(root, pages)
    return list(pages)


# --------------------------------------------------------------------------- servers


def start_nginx(procs: Any, nginx: str, root: Path, work: Path) -> tuple[int, Path]:
    prefix = work / "nginx-upstream"
    (prefix / "tmp").mkdir(parents=True)
    port = br.free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(
            workers=1,
            user_line="user root;" if os.geteuid() == 0 else "",
            prefix=prefix,
            host=HOST,
            port=port,
            root=root,
        )
    )
    argv = [nginx, "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(conf)]
    proc = procs.start("nginx-upstream", argv, prefix / "stdout.log")
    ready = f"http://{HOST}:{port}/small/simple/"
    br.wait_http(ready, proc, prefix / "error.log", timeout=15)
    return port, prefix / "access.log"


def check_revalidation(url: str) -> str:
    """The upstream sends ETag and Last-Modified, and answers 304 to either validator."""
    status, headers, _ = br.http_get(url)
    etag, modified = headers.get("etag"), headers.get("last-modified")
    if status != 200 or not etag or not modified:
        raise BenchError(f"{url}: HTTP {status}, ETag {etag!r}, Last-Modified {modified!r}")
    s1, _, _ = br.http_get(url, {"If-None-Match": etag})
    s2, _, _ = br.http_get(url, {"If-Modified-Since": modified})
    if (s1, s2) != (304, 304):
        raise BenchError(f"{url}: conditional GETs answered {s1} (ETag), {s2} (date), not 304")
    return f"ETag {etag}, Last-Modified {modified}: 304 to both"


class NginxLog:
    """Counts of statuses in the upstream's access log since the last mark()."""

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


def upstream_summary(counts: dict[str, int]) -> tuple[str, str]:
    """("200:5001 304:3", "5004/5004"): statuses, and requests/connections."""
    statuses = {k: v for k, v in counts.items() if k != "conns"}
    text = " ".join(f"{k}:{v}" for k, v in sorted(statuses.items())) or "-"
    return text, f"{sum(statuses.values())}/{counts.get('conns', 0)}"


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen
    logfile: Path


def start_pullthrough(procs: Any, work: Path, name: str, upstream_url: str) -> Server:
    auth = f'[auth]\nadmin_password = "{ADMIN_PASSWORD}"\n'
    port, proc, logfile = br.start_pullthrough(
        procs, work, name, upstream_url, WORKERS, THREADS, extra_config=auth
    )
    return Server(name, port, proc, logfile)


def api(
    server: Server, method: str, path: str, body: dict | None = None, timeout: float = 30.0
) -> tuple[int, Any]:
    token = base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()
    headers = {"Authorization": f"Basic {token}", "Accept": "application/json"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    conn = http.client.HTTPConnection(HOST, server.port, timeout=timeout)
    try:
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
    finally:
        conn.close()
    try:
        return resp.status, json.loads(raw) if raw else None
    except ValueError:
        return resp.status, raw[:500].decode(errors="replace")


def create(server: Server, path: str, body: dict) -> str:
    status, data = api(server, "POST", path, body)
    if status != 201:
        raise BenchError(f"POST {path} {body.get('name')!r}: HTTP {status}: {data}")
    return data["pulp_href"]


def _ts(value: str | None) -> float | None:
    if not value:
        return None
    return datetime.fromisoformat(value.removesuffix("Z")).timestamp()


def report_of(task: dict, code: str) -> dict | None:
    return next((r for r in task.get("progress_reports") or [] if r.get("code") == code), None)


def run_sync(server: Server, repo: str, remote: str, case: Case, timeout: float) -> dict:
    """POST sync/, poll the task (every 50 ms, bounded) and fill case; the last task JSON."""
    cpu0 = br.tree_cpu_seconds(server.proc.pid)
    t0 = time.perf_counter()
    status, data = api(server, "POST", f"{repo}sync/", {"remote": remote})
    if status != 202:
        raise BenchError(f"POST {repo}sync/: HTTP {status}: {data}")
    task_href = data["task"]
    deadline = time.monotonic() + timeout
    task: dict = {}
    while time.monotonic() < deadline:
        status, task = api(server, "GET", task_href)
        if status != 200:
            raise BenchError(f"GET {task_href}: HTTP {status}: {task}")
        if task["state"] in ("completed", "failed", "canceled", "skipped"):
            break
        if server.proc.poll() is not None:
            raise BenchError(f"{server.name} exited with {server.proc.returncode}")
        time.sleep(0.05)
    case.wall_s = time.perf_counter() - t0
    case.cpu_s = br.tree_cpu_seconds(server.proc.pid) - cpu0
    case.state = task.get("state", "?")
    case.worker = str(task.get("worker") or "")
    if case.state not in ("completed", "failed", "canceled", "skipped"):
        case.state = f"{case.state} after {timeout:.0f}s"
        api(server, "PATCH", task_href, {"state": "canceled"})
    started, finished = _ts(task.get("started_at")), _ts(task.get("finished_at"))
    if started is not None and finished is not None:
        case.task_s = finished - started
    if task.get("error"):
        case.error = json.dumps(task["error"])[:600]
    assoc = report_of(task, "sync.associating.content")
    case.files = assoc["done"] if assoc else 0
    arts = report_of(task, "sync.downloading.artifacts")
    case.downloaded = arts["done"] if arts else 0
    return task


# --------------------------------------------------------------------------- memory


def status_kib(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def worker_pids(server: Server) -> list[int]:
    return [p for p in br.tree_pids(server.proc.pid) if p != server.proc.pid]


def memory(server: Server, key: str) -> dict[str, int]:
    out = {"master": status_kib(server.proc.pid, key)}
    for pid in sorted(worker_pids(server)):
        out[str(pid)] = status_kib(pid, key)
    return out


def mib(kib: int | None) -> str:
    return "n/a" if not kib else f"{kib / 1024:.0f}"


# --------------------------------------------------------------------------- the runs


def small_case(
    procs: Any,
    work: Path,
    url: str,
    nginx_log: NginxLog,
    projects: list[str],
    case: Case,
    rep: int,
) -> None:
    name = f"pt-{case.label.replace(' ', '-').replace('=', '')}-{rep}"
    server = start_pullthrough(procs, work, name, url)
    try:
        body: dict[str, Any] = {
            "name": "sync-up",  # "up" is the config file's remote
            "url": url,
            "policy": case.policy,
            "includes": projects,
        }
        if case.concurrency is not None:
            body["download_concurrency"] = case.concurrency
        remote = create(server, REMOTES, body)
        repo = create(server, REPOSITORIES, {"name": "small"})
        log(f"(1) {case.label}: syncing (rep {rep + 1})")
        nginx_log.mark()
        run_sync(server, repo, remote, case, timeout=120)
        case.upstream = nginx_log.counts()
        log(f"(1) {case.label}: {case.state} in {case.task_s:.2f}s, {case.files} files")
    finally:
        procs.stop_one(server.proc)


def many_case(
    procs: Any,
    work: Path,
    url: str,
    nginx_log: NginxLog,
    res: ManyResult,
    concurrency: int | None,
    timeout: float,
) -> None:
    server = start_pullthrough(procs, work, "pt-many", url)
    try:
        res.boot_kib = memory(server, "VmHWM")
        body: dict[str, Any] = {"name": "many", "url": url, "policy": "on_demand"}
        if concurrency is not None:
            body["download_concurrency"] = concurrency
        remote = create(server, REMOTES, body)
        repo = create(server, REPOSITORIES, {"name": "many"})

        res.first = Case("first sync", "on_demand", concurrency)
        log(f"(2) on_demand sync of {res.projects} projects")
        nginx_log.mark()
        task = run_sync(server, repo, remote, res.first, timeout)
        res.first.upstream = nginx_log.counts()
        res.after_first_kib = memory(server, "VmHWM")
        changed = report_of(task, "sync.changed_projects")
        if changed:
            res.changed_first = f"{changed['done']}/{changed['total']}"
        log(f"(2) {res.first.state} in {res.first.task_s:.2f}s, changed {res.changed_first}")
        if res.first.state != "completed":
            return

        res.again = Case("no-change re-sync", "on_demand", concurrency)
        log("(3) no-change re-sync")
        nginx_log.mark()
        task = run_sync(server, repo, remote, res.again, timeout)
        res.again.upstream = nginx_log.counts()
        res.after_again_kib = memory(server, "VmHWM")
        res.rss_after_kib = memory(server, "VmRSS")
        changed = report_of(task, "sync.changed_projects")
        if changed:
            res.changed_again = f"{changed['done']}/{changed['total']}"
        log(f"(3) {res.again.state} in {res.again.task_s:.2f}s, changed {res.changed_again}")
    finally:
        procs.stop_one(server.proc)


def sync_worker_pid(worker: str) -> str:
    """The pid in a task's worker name, `<host>-<pid>-<thread>`."""
    parts = worker.rsplit("-", 2)
    return parts[1] if len(parts) == 3 and parts[1].isdigit() else ""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer files (about a minute)")
    ap.add_argument("--projects", type=int, help="projects of (1) (default 60; quick 30)")
    ap.add_argument("--many", type=int, help="projects of (2)/(3) (default 5000; quick 5000)")
    ap.add_argument(
        "--many-concurrency",
        type=int,
        help="download_concurrency of the (2)/(3) remote (default: unset, the server's 4)",
    )
    ap.add_argument("--reps", type=int, help="runs of each (1) case (default 3; quick 1)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    n_small = args.projects or (30 if args.quick else 60)
    n_versions = 5
    n_many = args.many or 5000
    reps = args.reps or (1 if args.quick else 3)
    t_start = time.monotonic()

    ok, why = br.pullthrough_available()
    if not ok:
        log(f"pullthrough unavailable: {why}")
        return 2
    nginx = br.find_nginx()
    if not nginx and br._apt_install(["nginx"]):
        nginx = br.find_nginx()
    if not nginx:
        log("nginx is required (apt-get install nginx)")
        return 2

    work = Path(tempfile.mkdtemp(prefix="pullthrough-bench-sync-"))
    procs = br.Procs()
    res = Results(small_projects=n_small)
    res.many.projects = n_many

    def on_term(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    old_term = signal.signal(signal.SIGTERM, on_term)
    rc = 0
    try:
        up = work / "upstream"
        t0 = time.perf_counter()
        projects, res.small_files, res.small_bytes = build_small(up / "small", n_small, n_versions)
        build_many(up / "many", n_many)
        log(f"built the upstreams in {work} ({time.perf_counter() - t0:.1f}s)")
        port, access_log = start_nginx(procs, nginx, up, work)
        small_url = f"http://{HOST}:{port}/small/simple/"
        many_url = f"http://{HOST}:{port}/many/simple/"
        res.notes.append(
            "upstream nginx, page ptmany-0000: " + check_revalidation(f"{many_url}ptmany-0000/")
        )

        nginx_log = NginxLog(access_log)
        specs = [
            ("immediate c=1", "immediate", 1),
            ("immediate c=4", "immediate", 4),
            ("immediate c=10", "immediate", 10),
            ("on_demand", "on_demand", None),
            ("streamed", "streamed", None),
        ]
        for rep in range(reps):  # interleaved: a slow moment of the machine hits every case
            for label, policy, concurrency in specs:
                case = Case(label, policy, concurrency)
                res.cases.append(case)
                try:
                    small_case(procs, work, small_url, nginx_log, projects, case, rep)
                except BenchError as exc:
                    case.state, case.error = "error", str(exc)
                    log(f"(1) {case.label}: {exc}")
        try:
            many_case(
                procs,
                work,
                many_url,
                nginx_log,
                res.many,
                args.many_concurrency,
                timeout=60 if args.quick else 120,
            )
        except BenchError as exc:
            res.notes.append(f"(2)/(3) aborted: {exc}")
            log(f"(2)/(3): {exc}")
    except BenchError as exc:
        log(f"FAILED: {exc}")
        res.notes.append(f"run aborted: {exc}")
        rc = 2
    finally:
        procs.stop_all()
        signal.signal(signal.SIGTERM, old_term)
        for logfile in sorted(work.glob("pt-*/server.log")):
            res.notes += [
                f"{logfile.parent.name} log: {ln}" for ln in br.log_problems(logfile, limit=3)
            ]
        errors = work / "nginx-upstream" / "error.log"
        if errors.exists() and errors.read_text(errors="replace").strip():
            res.notes.append(f"nginx error.log: {errors.read_text(errors='replace')[-300:]}")
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    report(res, n_versions, reps, time.monotonic() - t_start)
    failed = [c for c in res.cases if c.state != "completed"]
    if res.many.first is None or res.many.first.state != "completed":
        failed.append(res.many.first or Case("(2)", "on_demand", None))
    return rc or (1 if failed else 0)


def report(res: Results, n_versions: int, reps: int, total: float) -> None:
    print()
    print(
        f"pullthrough sync benchmark - loopback, {os.cpu_count()} CPUs, "
        f"{WORKERS} gunicorn workers x {THREADS} threads, nginx upstream (1 worker)"
    )
    print()
    print(
        f"(1) sync of {res.small_projects} projects x {n_versions} versions = {res.small_files} "
        f"wheels ({res.small_bytes / 2**20:.1f} MiB), fresh server per run, "
        f"median of {reps} run(s)"
    )
    groups: dict[str, list[Case]] = {}
    for c in res.cases:
        groups.setdefault(c.label, []).append(c)
    rows = []
    for label, runs in groups.items():
        good = [c for c in runs if c.state == "completed"]
        states = sorted({c.state for c in runs})
        if not good:
            rows.append([label, str(runs[0].concurrency or "(4)"), *["n/a"] * 8, ",".join(states)])
            continue
        task_s = statistics.median(c.task_s for c in good)
        downloaded = max(c.downloaded for c in good)
        rate = downloaded / task_s if downloaded and task_s else None
        mbs = rate * res.small_bytes / res.small_files / 1e6 if rate else None
        rows.append(
            [label, str(good[0].concurrency or "(4)"), fmt(task_s, ".2f"),
             " ".join(f"{c.task_s:.2f}" for c in good),
             fmt(statistics.median(c.wall_s for c in good), ".2f"),
             fmt(statistics.median(c.cpu_s for c in good), ".2f"),
             f"{good[0].files}/{downloaded}", fmt(rate, ".0f") if rate else "-",
             fmt(mbs, ".1f") if mbs else "-", upstream_summary(good[-1].upstream)[1],
             ",".join(states)]
        )  # fmt: skip
    print(
        table(
            ["case", "concurrency", "task s", "all runs s", "wall s", "server CPU s",
             "files/downloaded", "files/s", "MB/s", "upstream req/conns", "state"],
            rows,
        )
    )  # fmt: skip
    m = res.many
    print()
    print(
        f"(2)/(3) on_demand sync of {m.projects} projects (1 tiny wheel each), remote without "
        "includes (the whole /simple/ list + every page), download_concurrency "
        f"{(m.first.concurrency if m.first else None) or '(4)'}"
    )
    rows = []
    for c, changed in ((m.first, m.changed_first), (m.again, m.changed_again)):
        if c is None:
            continue
        statuses, conns = upstream_summary(c.upstream)
        rows.append(
            [c.label, fmt(c.task_s, ".2f"), fmt(c.wall_s, ".2f"), fmt(c.cpu_s, ".2f"),
             str(c.files), changed, statuses, conns, f"pid {sync_worker_pid(c.worker) or '?'}",
             c.state]
        )  # fmt: skip
    if rows:
        print(
            table(
                ["sync", "task s", "wall s", "server CPU s", "files", "changed projects",
                 "upstream HTTP", "req/conns", "ran on", "state"],
                rows,
            )
        )  # fmt: skip
    if m.boot_kib:
        print()
        rows = []
        for who in m.boot_kib:
            rows.append(
                ["master" if who == "master" else f"worker pid {who}", mib(m.boot_kib.get(who)),
                 mib(m.after_first_kib.get(who)), mib(m.after_again_kib.get(who)),
                 mib(m.rss_after_kib.get(who))]
            )  # fmt: skip
        print("server memory, MiB (VmHWM = the process's peak RSS since it started)")
        print(
            table(
                ["process", "VmHWM boot", "VmHWM after (2)", "VmHWM after (3)", "VmRSS end"],
                rows,
            )
        )
    for c in [*res.cases, m.first, m.again]:
        if c is not None and c.error:
            res.notes.append(f"{c.label}: {c.error}")
    if res.notes:
        print()
        print("Notes")
        for note in res.notes:
            print(f"  - {note}")
    print()
    print(
        "task s = the task's started_at -> finished_at; wall s = POST sync/ -> `completed` seen "
        "by polling every 50 ms (includes queueing); server CPU s = gunicorn master + workers "
        "over wall s; files/s, MB/s = files downloaded / task s; "
        "req/conns = requests the upstream nginx served / TCP connections they came on."
    )
    print(f"total {total:.0f}s")


if __name__ == "__main__":
    sys.exit(main())
