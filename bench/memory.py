"""(f) memory: the gunicorn workers' RSS under warm load and cold projects, and what a
PyPI-sized project list (700,000 names) costs each worker.

Its own upstream (one nginx): a few warm projects (20 versions each), `cold` projects of one
tiny wheel each, and a /simple/ root listing LIST_NAMES names (HTML, and PEP 691 JSON with
`_last-serial` per project like PyPI's, which nginx answers to pullthrough's Accept header).

1. One fresh pullthrough (the run's workers and threads): a warm-up load, then `requests`
   warm requests (wrk with a Lua mix: each warm project's page as HTML and as pip asks for it,
   JSON with gzip; a warm file GET; plus HEADs of the file from a Python client between
   chunks), then `cold` cold projects (each page once, on a new connection, 4 clients; every
   10th project also its file). Every worker's VmRSS (and RssAnon, RssFile) is read after the
   warm-up, between chunks and batches, at the end of each phase.
2. Another fresh pullthrough: `/pypi/bench/simple/` (the 700,000 names) on new connections
   until every worker has answered one (the worker is the one whose CPU time moved): per
   worker its RSS before and after, its first and a warm HTML GET, then its first and a warm
   JSON GET on the same connection.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import BenchError, find_link, http_get, log, split_url
from bench.load import WRK_LUA, run_wrk
from bench.procfs import status_kib, tree_cpu_seconds, tree_pids
from bench.report import fmt, goal, table
from bench.servers import BASE_PATH, Procs, Server, start_nginx, start_pullthrough, wait_idle
from bench.upstream import build_wheel, tiny_wheel, write_simple

GOAL_RSS_GROWTH = 0.10  # worker RSS within 10% of its value after the warm-up
FULL_REQUESTS = 100_000
FULL_COLD = 1_000
QUICK_REQUESTS = 20_000
QUICK_COLD = 300
LIST_NAMES = 700_000
WARM_PROJECTS = 4
WARM_VERSIONS = 20
COLD_CLIENTS = 4
COLD_BATCH = 100  # RSS read after each batch
COLD_FILE_EVERY = 10  # every 10th cold project: its file too
HEADS_PER_CHUNK = 200
WARM_CONNS = 8
WARM_SAMPLES = 5
WARM_MAX_SECONDS = 300.0  # the warm phase stops here even if short of its requests
LIST_ATTEMPTS = 10  # new connections tried until every worker has answered the list

ACCEPT_HTML = "text/html"
ACCEPT_PIP = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
    "text/html; q=0.01"
)

# wrk: cycles through the requests built in init() (the Host header is known only then)
WRK_MIX_LUA = """\
local reqs = {{}}
local n = 0
init = function(args)
{requests}
end
request = function()
  n = n + 1
  return reqs[(n - 1) % #reqs + 1]
end
"""


@dataclass
class MemoryPlan:
    requests: int  # warm requests (wrk + HEADs)
    cold: int  # cold projects
    full: bool  # the goal's own figures (not --quick)
    workers: int
    threads: int
    wrk: str | None  # None: the warm phase is skipped (it needs wrk's Lua mix)


@dataclass
class Sample:
    """The workers' memory at one point: pid -> (VmRSS, RssAnon, RssFile) in KiB; and their
    threads (gthread's pool grows on demand, and each thread brings its own stack, malloc arena
    and sqlite connections)."""

    label: str
    kib: dict[int, tuple[int, int, int]]
    threads: dict[int, int] = field(default_factory=dict)


@dataclass
class ListCost:
    """(f) 2: one worker's first answer of the 700,000-name list."""

    pid: int
    before_kib: int
    after_kib: int  # after its first and warm HTML GETs
    after_json_kib: int  # after its JSON GETs too
    hwm_kib: int  # VmHWM (peak) at the end
    anon_before_kib: int
    anon_after_kib: int
    first_s: float  # the first HTML GET in this worker
    warm_s: float
    json_first_s: float
    json_warm_s: float
    cpu_s: float  # the worker's CPU over its first HTML GET


@dataclass
class MemoryResults:
    skipped: str = ""
    plan: MemoryPlan | None = None
    warm_requests: int = 0
    warm_errors: int = 0
    warm_seconds: float = 0.0
    worker_cpu_share: dict[int, float] = field(default_factory=dict)  # over the warm phase
    cold_projects: int = 0
    cold_files: int = 0
    cold_errors: int = 0
    cold_seconds: float = 0.0
    samples: list[Sample] = field(default_factory=list)
    list_sizes: dict[str, int] = field(default_factory=dict)  # upstream's root, bytes
    list_costs: list[ListCost] = field(default_factory=list)
    list_rss_before: dict[int, int] = field(default_factory=dict)  # every worker at boot
    notes: list[str] = field(default_factory=list)

    def sample(self, label: str) -> Sample | None:
        return next((s for s in self.samples if s.label == label), None)


# --------------------------------------------------------------------------- the upstream


@dataclass
class MemUpstream:
    root: Path
    warm_projects: list[str]
    warm_file: str  # a warm project's file: the warm mix's GET and HEADs
    cold_projects: list[str]
    cold_files: dict[str, str]  # project -> its one file's name


def build_memory_upstream(root: Path, n_cold: int, n_names: int) -> MemUpstream:
    """Warm and cold projects as static pages, and the n_names-name root (HTML and JSON)."""
    files = root / "files"
    files.mkdir(parents=True)
    pages: dict[str, list[tuple[str, str]]] = {}
    warm = [f"ptmemwarm-{i}" for i in range(WARM_PROJECTS)]
    for project in warm:
        for v in range(WARM_VERSIONS):
            path = build_wheel(files, project, f"1.{v}.0", project.encode() * 16)
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            pages.setdefault(project, []).append((path.name, digest))
    cold = [f"ptmemcold-{i:04d}" for i in range(n_cold)]
    cold_files = {}
    for project in cold:
        path = tiny_wheel(files, project)
        pages[project] = [(path.name, hashlib.sha256(path.read_bytes()).hexdigest())]
        cold_files[project] = path.name
    write_simple(root, pages)  # writes a short simple/index.html: replaced below
    names = [*warm, *cold]
    names += [f"ptname-{i:06d}" for i in range(max(0, n_names - len(names)))]
    write_project_list(root / "simple", names)
    return MemUpstream(root, warm, pages[warm[0]][0][0], cold, cold_files)


def write_project_list(simple: Path, names: list[str]) -> None:
    """simple/index.html and simple/index.json as PyPI's root (absolute links, _last-serial)."""
    rows = "".join(f'    <a href="/simple/{n}/">{n}</a>\n' for n in names)
    (simple / "index.html").write_text(
        "<!DOCTYPE html>\n<html>\n  <head>\n"
        '    <meta name="pypi:repository-version" content="1.1">\n'
        "    <title>Simple index</title>\n  </head>\n  <body>\n" + rows + "  </body>\n</html>\n"
    )
    doc = {
        "meta": {"_last-serial": 30000000, "api-version": "1.1"},
        "projects": [{"_last-serial": 20000000 + i * 13, "name": n} for i, n in enumerate(names)],
    }
    (simple / "index.json").write_text(json.dumps(doc, separators=(",", ":")))


# --------------------------------------------------------------------------- /proc


def worker_pids(server: Server) -> list[int]:
    return sorted(p for p in tree_pids(server.pid) if p != server.pid)


def read_sample(server: Server, label: str) -> Sample:
    kib = {
        pid: (status_kib(pid, "VmRSS"), status_kib(pid, "RssAnon"), status_kib(pid, "RssFile"))
        for pid in worker_pids(server)
    }
    return Sample(label, kib, {pid: status_kib(pid, "Threads") for pid in kib})


def worker_cpu(server: Server) -> dict[int, float]:
    return {pid: tree_cpu_seconds(pid) for pid in worker_pids(server)}


def mib(kib: int) -> str:
    return f"{kib / 1024:.1f}"


# --------------------------------------------------------------------------- running it


def run_memory(procs: Procs, nginx: str, work: Path, plan: MemoryPlan, res: MemoryResults) -> None:
    """(f): its upstream, the warm and cold phases on one server, the list on another."""
    res.plan = plan
    log(f"(f) building the memory upstream ({plan.cold} cold projects, {LIST_NAMES:,} names)")
    up = build_memory_upstream(work / "memory-upstream", plan.cold, LIST_NAMES)
    for ext, key in (("html", "html"), ("json", "json")):
        res.list_sizes[key] = (up.root / "simple" / f"index.{ext}").stat().st_size
    upstream = start_nginx(procs, nginx, "nginx-memory-upstream", up.root, work, 1)
    upstream_url = f"{upstream.url}/simple/"
    server = start_pullthrough(
        procs, work, "pullthrough-memory", upstream_url, plan.workers, plan.threads
    )
    try:
        if plan.wrk is None:
            res.notes.append("(f) warm phase skipped: it needs wrk (its Lua request mix)")
        else:
            warm_phase(server, up, work, plan, res)
        cold_phase(server, up, plan, res)
    finally:
        procs.stop_one(server.proc)
    list_phase(procs, work, upstream_url, plan, res)
    procs.stop_one(upstream.proc)


def warm_targets(server: Server, up: MemUpstream) -> tuple[list[tuple[str, dict[str, str]]], str]:
    """The warm mix's requests (path, headers), checked once each; and the warm file's path."""
    simple = f"{server.url}/pypi/{BASE_PATH}/simple/"
    mix: list[tuple[str, dict[str, str]]] = []
    for project in up.warm_projects:
        url = f"{simple}{project}/"
        for headers in ({"Accept": ACCEPT_HTML}, {"Accept": ACCEPT_PIP, "Accept-Encoding": "gzip"}):
            status, _, body = http_get(url, headers)
            if status != 200 or not body:
                raise BenchError(f"(f) {url}: HTTP {status}")
            mix.append((split_url(url)[2], headers))
    page_url = f"{simple}{up.warm_projects[0]}/"
    _, _, page = http_get(page_url, {"Accept": ACCEPT_HTML})
    file_url = find_link(page, page_url, up.warm_file)
    status, _, body = http_get(file_url)
    if status != 200 or not body.startswith(b"PK"):
        raise BenchError(f"(f) {file_url}: HTTP {status}, {len(body)} B")
    file_path = split_url(file_url)[2]
    mix.append((file_path, {}))
    return mix, file_path


def write_mix_lua(path: Path, mix: list[tuple[str, dict[str, str]]]) -> None:
    lines = []
    for i, (req_path, headers) in enumerate(mix):
        hdrs = ", ".join(f'["{k}"] = "{v}"' for k, v in headers.items())
        lines.append(f'  reqs[{i + 1}] = wrk.format("GET", "{req_path}", {{{hdrs}}})')
    path.write_text(WRK_MIX_LUA.format(requests="\n".join(lines)) + WRK_LUA)


def heads(server: Server, path: str, count: int) -> int:
    """`count` HEADs of a file on one new keep-alive connection; the number that failed."""
    host, port, _ = split_url(server.url)
    conn = http.client.HTTPConnection(host, port, timeout=30)
    bad = 0
    try:
        for _ in range(count):
            conn.request("HEAD", path)
            resp = conn.getresponse()
            resp.read()
            bad += resp.status != 200 or not resp.getheader("Content-Length")
    finally:
        conn.close()
    return bad


def warm_phase(
    server: Server, up: MemUpstream, work: Path, plan: MemoryPlan, res: MemoryResults
) -> None:
    assert plan.wrk is not None
    mix, file_path = warm_targets(server, up)
    lua = work / "memory-mix.lua"
    write_mix_lua(lua, mix)
    url = server.url + "/"
    log("(f) warm-up: 3 s of the warm mix")
    first = run_wrk(plan.wrk, lua, url, {}, WARM_CONNS, 3)
    heads(server, file_path, HEADS_PER_CHUNK)
    res.samples.append(read_sample(server, "after warm-up"))
    cpu0 = worker_cpu(server)
    done, errors = 0, first.errors
    rate = max(100.0, first.requests / first.seconds) if first.seconds else 1000.0
    t0 = time.monotonic()
    chunk_n = 0
    while done < plan.requests and time.monotonic() - t0 < WARM_MAX_SECONDS:
        left = plan.requests - done
        # at least WARM_SAMPLES chunks, each read between them: the RSS trajectory
        seconds = max(2, min(10, round(left / rate), round(plan.requests / rate / WARM_SAMPLES)))
        counts = run_wrk(plan.wrk, lua, url, {}, WARM_CONNS, seconds)
        errors += counts.errors + heads(server, file_path, HEADS_PER_CHUNK)
        done += counts.requests + HEADS_PER_CHUNK
        rate = max(100.0, counts.requests / counts.seconds) if counts.seconds else rate
        chunk_n += 1
        res.samples.append(read_sample(server, f"warm {done:,}"))
        log(f"(f) warm: {done:,}/{plan.requests:,} requests ({rate:.0f} req/s), {errors} errors")
    res.warm_seconds = time.monotonic() - t0
    res.warm_requests, res.warm_errors = done, errors
    cpu1 = worker_cpu(server)
    spent = {pid: cpu1.get(pid, 0.0) - cpu0.get(pid, 0.0) for pid in cpu1}
    total = sum(spent.values())
    res.worker_cpu_share = {pid: s / total for pid, s in spent.items()} if total else {}
    res.samples[-1].label = "after warm"
    if done < plan.requests:
        res.notes.append(
            f"(f) warm phase stopped at {WARM_MAX_SECONDS:.0f}s with {done:,} of "
            f"{plan.requests:,} requests"
        )


def cold_one(server: Server, up: MemUpstream, i: int, project: str) -> tuple[int, int]:
    """A cold project's page on a new connection (every 10th: HTML and its file, else HTML
    and JSON alternating); (files fetched, errors)."""
    page_url = f"{server.url}/pypi/{BASE_PATH}/simple/{project}/"
    with_file = i % COLD_FILE_EVERY == 0
    accept = ACCEPT_HTML if with_file or i % 2 else ACCEPT_PIP
    try:
        status, _, body = http_get(page_url, {"Accept": accept}, timeout=60)
        if status != 200 or up.cold_files[project].encode() not in body:
            return 0, 1
        if not with_file:
            return 0, 0
        file_url = find_link(body, page_url, up.cold_files[project])
        status, _, data = http_get(file_url, timeout=60)
        return 1, int(status != 200 or not data.startswith(b"PK"))
    except (OSError, BenchError, http.client.HTTPException):
        return 0, 1


def cold_phase(server: Server, up: MemUpstream, plan: MemoryPlan, res: MemoryResults) -> None:
    if not res.samples:
        res.samples.append(read_sample(server, "before cold"))
    t0 = time.monotonic()
    batch = COLD_BATCH
    with ThreadPoolExecutor(COLD_CLIENTS) as pool:
        for start in range(0, len(up.cold_projects), batch):
            projects = up.cold_projects[start : start + batch]
            for files, errors in pool.map(
                lambda a: cold_one(server, up, a[0], a[1]),
                enumerate(projects, start),
            ):
                res.cold_files += files
                res.cold_errors += errors
            res.cold_projects += len(projects)
            res.samples.append(read_sample(server, f"cold {res.cold_projects:,}"))
            log(f"(f) cold: {res.cold_projects}/{len(up.cold_projects)} projects, "
                f"{res.cold_errors} errors")  # fmt: skip
            if res.cold_errors > 20:
                raise BenchError(f"(f) cold projects: {res.cold_errors} errors, stopped")
    res.cold_seconds = time.monotonic() - t0
    res.samples[-1].label = "after cold"


def list_get(conn: http.client.HTTPConnection, path: str, accept: str) -> tuple[float, bytes]:
    t0 = time.perf_counter()
    conn.request("GET", path, headers={"Accept": accept})
    resp = conn.getresponse()
    body = resp.read()
    elapsed = time.perf_counter() - t0
    if resp.status != 200:
        raise BenchError(f"(f) {path} ({accept}): HTTP {resp.status}: {body[:200]!r}")
    return elapsed, body


def check_list(body: bytes, is_json: bool) -> None:
    listed = body.count(b'"name"') if is_json else body.count(b"<a ")
    if listed != LIST_NAMES:
        raise BenchError(f"(f) the project list has {listed:,} names, not {LIST_NAMES:,}")


def list_phase(
    procs: Procs, work: Path, upstream_url: str, plan: MemoryPlan, res: MemoryResults
) -> None:
    """(f) 2: a fresh server; per worker, its first GETs of the 700,000-name list."""
    server = start_pullthrough(
        procs, work, "pullthrough-memory-list", upstream_url, plan.workers, plan.threads
    )
    try:
        pids = worker_pids(server)
        res.list_rss_before = {pid: status_kib(pid, "VmRSS") for pid in pids}
        anon_before = {pid: status_kib(pid, "RssAnon") for pid in pids}
        host, port, _ = split_url(server.url)
        path = f"/pypi/{BASE_PATH}/simple/"
        seen: set[int] = set()
        for attempt in range(LIST_ATTEMPTS):
            if seen >= set(pids):
                break
            log(f"(f) the {LIST_NAMES:,}-name list, new connection {attempt + 1}")
            conn = http.client.HTTPConnection(host, port, timeout=180)
            try:
                # The last GET's background work (storing the rendering for the other workers)
                # done first: the worker that answers is the one whose CPU moves most.
                wait_idle(server.proc.pid)
                cpu0 = worker_cpu(server)
                first, body = list_get(conn, path, ACCEPT_HTML)
                cpu1 = worker_cpu(server)
                check_list(body, False)
                moved = {pid: cpu1.get(pid, 0.0) - cpu0.get(pid, 0.0) for pid in pids}
                pid = max(moved, key=lambda p: moved[p])
                if pid in seen:
                    continue  # a worker that has it already: a warm GET, not its cost
                seen.add(pid)
                warm, _ = list_get(conn, path, ACCEPT_HTML)
                after = status_kib(pid, "VmRSS")
                anon_after = status_kib(pid, "RssAnon")
                json_first, body = list_get(conn, path, ACCEPT_PIP)
                check_list(body, True)
                json_warm, _ = list_get(conn, path, ACCEPT_PIP)
                res.list_costs.append(
                    ListCost(
                        pid,
                        res.list_rss_before[pid],
                        after,
                        status_kib(pid, "VmRSS"),
                        status_kib(pid, "VmHWM"),
                        anon_before[pid],
                        anon_after,
                        first,
                        warm,
                        json_first,
                        json_warm,
                        moved[pid],
                    )
                )
            finally:
                conn.close()
        if seen < set(pids):
            res.notes.append(
                f"(f) the list reached {len(seen)} of {len(pids)} workers in "
                f"{LIST_ATTEMPTS} new connections"
            )
    finally:
        procs.stop_one(server.proc)


def run_safely(procs: Procs, nginx: str, work: Path, plan: MemoryPlan, res: MemoryResults) -> None:
    try:
        run_memory(procs, nginx, work, plan, res)
    except (BenchError, OSError, http.client.HTTPException, subprocess.SubprocessError) as exc:
        log(f"(f) failed: {exc}")
        res.notes.append(f"(f) aborted: {exc}")


# --------------------------------------------------------------------------- report


def growth(base: Sample | None, later: Sample | None) -> dict[int, float]:
    """pid -> VmRSS growth as a fraction of base, for the workers in both samples."""
    if base is None or later is None:
        return {}
    return {
        pid: later.kib[pid][0] / base.kib[pid][0] - 1
        for pid in base.kib
        if pid in later.kib and base.kib[pid][0]
    }


def summed(later: Sample, earlier: Sample, field: int) -> int:
    """KiB the workers grew from earlier to later, summed (field 0: VmRSS, 1: RssAnon)."""
    return sum(k[field] - earlier.kib[p][field] for p, k in later.kib.items() if p in earlier.kib)


def print_cold_slope(res: MemoryResults, before: Sample, cold: Sample | None) -> None:
    """The cold projects' RSS, summed over the workers: the first batch (the cold code paths'
    first use in each worker, and their threads' first connections) apart from the rest, which
    is what each further cold project costs."""
    first = res.sample(f"cold {COLD_BATCH:,}")
    if cold is None or first is None or first is cold or res.cold_projects <= COLD_BATCH:
        return
    n = res.cold_projects - COLD_BATCH
    print(
        f"cold, summed over the workers: the first {COLD_BATCH} projects "
        f"+{mib(summed(first, before, 0))} MiB; the next {n:,} "
        f"{summed(cold, first, 0) / n:.1f} KiB each ({summed(cold, first, 1) / n:.1f} KiB "
        "anonymous)"
    )


def print_memory_section(res: MemoryResults) -> None:
    plan = res.plan
    print()
    print("(f) memory: gunicorn workers' RSS (VmRSS; RssAnon / RssFile) over warm and cold load")
    if res.skipped or plan is None:
        print(f"  skipped: {res.skipped or 'not run'}")
        return
    if not plan.full:
        print(
            f"  --quick: {plan.requests:,} warm requests and {plan.cold:,} cold projects; the "
            f"goal is set for {FULL_REQUESTS:,} and {FULL_COLD:,} (run without --quick)"
        )
    print(
        f"warm: {res.warm_requests:,} requests in {res.warm_seconds:.0f}s ({WARM_CONNS} "
        f"connections, wrk mix of {WARM_PROJECTS} projects' pages as HTML and as pip asks "
        f"(JSON, gzip), a file GET; {HEADS_PER_CHUNK} HEADs per chunk), {res.warm_errors} errors; "
        f"cold: {res.cold_projects:,} projects in {res.cold_seconds:.0f}s, "
        f"{res.cold_files} files, {res.cold_errors} errors"
    )
    base = res.sample("after warm-up") or res.sample("before cold")
    warm, cold = res.sample("after warm"), res.sample("after cold")
    if base is not None:
        rows = []
        g_warm, g_cold = growth(base, warm), growth(base, cold)
        for pid in base.kib:
            cells = [f"worker {pid}"]
            for s in (base, warm, cold):
                k = s.kib.get(pid) if s else None
                cells.append(f"{mib(k[0])} ({mib(k[1])}/{mib(k[2])})" if k else "n/a")
            cells += [
                fmt(g_warm[pid] * 100, "+.1f") if pid in g_warm else "n/a",
                fmt(g_cold[pid] * 100, "+.1f") if pid in g_cold else "n/a",
                fmt(res.worker_cpu_share[pid] * 100) if pid in res.worker_cpu_share else "n/a",
            ]
            rows.append(cells)
        print(
            table(
                ["MiB", "after warm-up", "after warm", "after cold", "warm %", "cold %",
                 "warm CPU share %"],
                rows,
            )
        )  # fmt: skip
        print("trajectory, VmRSS MiB per worker: " + "; ".join(
            f"{s.label}: " + "/".join(mib(k[0]) for k in s.kib.values()) for s in res.samples
        ))  # fmt: skip
        print("threads per worker: " + "; ".join(
            f"{s.label}: " + "/".join(str(n) for n in s.threads.values())
            for s in (base, warm, cold) if s is not None
        ))  # fmt: skip
        print_cold_slope(res, warm or base, cold)
    sizes = ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in res.list_sizes.items())
    print()
    print(
        f"the {LIST_NAMES:,}-name project list (`/pypi/{BASE_PATH}/simple/`; upstream's root "
        f"{sizes}), fresh server: per worker its first GETs, on a new connection"
    )
    if res.list_costs:
        rows = [
            [f"worker {c.pid}", mib(c.before_kib), mib(c.after_kib),
             f"+{mib(c.after_kib - c.before_kib)}", f"+{mib(c.anon_after_kib - c.anon_before_kib)}",
             mib(c.after_json_kib), mib(c.hwm_kib), f"{c.first_s * 1e3:.0f}",
             f"{c.cpu_s:.2f}", f"{c.warm_s * 1e3:.0f}", f"{c.json_first_s * 1e3:.0f}",
             f"{c.json_warm_s * 1e3:.0f}"]
            for c in res.list_costs
        ]  # fmt: skip
        print(
            table(
                ["MiB / ms", "RSS before", "after HTML", "cost", "anon cost", "after +JSON",
                 "peak (HWM)", "first HTML ms", "its CPU s", "warm HTML ms", "first JSON ms",
                 "warm JSON ms"],
                rows,
            )
        )  # fmt: skip
    res_notes = res.notes
    for note in res_notes:
        print(f"  - {note}")


def print_memory_goals(res: MemoryResults) -> None:
    plan = res.plan
    base = res.sample("after warm-up") or res.sample("before cold")
    tag = "" if plan is None or plan.full else " (quick: not the goal's counts)"
    for label, later, n in (
        ("warm requests", res.sample("after warm"), res.warm_requests),
        ("cold projects", res.sample("after cold"), res.cold_projects),
    ):
        g = growth(base, later)
        worst = max(g.values(), default=None)
        goal(
            f"(f) worker RSS within {GOAL_RSS_GROWTH:.0%} after {n:,} {label}",
            None if worst is None else worst <= GOAL_RSS_GROWTH,
            (", ".join(f"{v * 100:+.1f}%" for v in g.values()) or "n/a") + tag,
        )
    pids = set(res.list_rss_before)
    goal(
        f"(f) {LIST_NAMES:,}-name list: its cost per worker printed",
        None if not res.list_costs else {c.pid for c in res.list_costs} >= pids,
        ", ".join(f"+{(c.after_json_kib - c.before_kib) / 1024:.0f} MiB" for c in res.list_costs)
        or "n/a",
    )


def print_memory_report(res: MemoryResults, total: float) -> None:
    """`bench/run.py --memory-only`: (f) alone, with its goal lines."""
    print()
    print("pullthrough benchmark - (f) memory only")
    print_memory_section(res)
    print()
    print("Goals")
    print_memory_goals(res)
    print()
    print(f"total {total:.0f}s")


def memory_plan(quick: bool, workers: int, threads: int, wrk: str | None) -> MemoryPlan:
    return MemoryPlan(
        requests=QUICK_REQUESTS if quick else FULL_REQUESTS,
        cold=QUICK_COLD if quick else FULL_COLD,
        full=not quick,
        workers=workers,
        threads=threads,
        wrk=wrk,
    )
