#!/usr/bin/env python3
"""Loopback benchmark of pullthrough against proxpi, nginx and a straight upstream.

Run from the repository root:  .venv/bin/python bench/run.py [--quick]

It builds a PEP 503 upstream index of small generated wheels (served by nginx), then measures
in one run:
  (a) warm project page: requests/s and server CPU per request, 8 keep-alive connections
      (wrk), for pullthrough, proxpi and nginx serving the same page bytes as a static file,
      and for pullthrough behind the nginx front users deploy (deploy/nginx.conf, its cache);
  (b) warm file download MB/s with 4 connections, pullthrough vs nginx serving the same bytes;
  (c) a cold `pip download --no-deps` of 25 projects through a freshly started pullthrough
      (empty data dir) vs straight from the upstream (and, for reference, a fresh proxpi);
      for reference too, the same projects' files in bursts of 10 GETs at once, cold and warm;
  (d) files on S3 (SeaweedFS, started here) vs local disk: (b)'s warm download and (c)'s cold
      pip download with pullthrough's files in a bucket, and the big file's first fetch through
      a fresh server on each (`--no-s3` skips it; skipped if `weed` is missing);
  (e) a big project page (4,000 files, 2.5 MB as PEP 691 JSON): its first GET through a freshly
      started pullthrough vs straight from the upstream, HTML and JSON (for reference, also
      through a bare relay of the upstream's bytes and a fresh proxpi); and warm, its bytes and
      time with and without gzip.
  (f) memory (bench/memory.py): the workers' RSS after 100,000 warm requests and after 1,000
      cold projects (quick: 20,000 and 300), and what a 700,000-name project list costs each
      worker (`--no-memory` skips it, `--memory-only` runs it alone).
  (g) lockers (bench/lockers.py): a cold `poetry lock` that reads big wheels by range, and a cold
      `uv pip install --no-cache` of 10 projects with big pages, straight vs through a fresh
      pullthrough (`--no-lockers` skips it, `--lockers-only` runs it alone).
  (h) egress screening (bench/egress.py): the big page's and a 100,000-name project list's first
      GETs through a fresh server with no screening and through one with an allow-list, a
      freeze, a 1,000-entry blocklist and OSV advisories (`--no-egress` skips it,
      `--egress-only` runs it alone).

Everything listens on 127.0.0.1 only; every loop is bounded in count and time; all processes
it starts are stopped on exit, also on error or Ctrl-C. See bench/README.md.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import http.client
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # to import the `bench` package

from bench.common import BenchError, WrongFormat, find_link, http_get, log, split_url, timed_page
from bench.egress import print_egress_section, run_egress
from bench.front import front_cases, print_front_goals, print_front_section, start_front
from bench.load import PARALLEL_FILES, Loader, Target, measure, pip_download
from bench.lockers import (
    LockerResults,
    print_lockers_goals,
    print_lockers_report,
    print_lockers_section,
    run_lockers_safely,
)
from bench.memory import (
    MemoryResults,
    memory_plan,
    print_memory_goals,
    print_memory_report,
    print_memory_section,
    run_safely,
)
from bench.report import print_notes, print_run_report
from bench.results import RunResults
from bench.s3 import Seaweed, seaweed_available, start_seaweed
from bench.servers import (
    BASE_PATH,
    Procs,
    Server,
    server_log_notes,
    start_gunicorn_constant,
    start_nginx,
    start_proxpi,
    start_pullthrough,
    start_relay_floor,
)
from bench.tools import ensure_proxpi, ensure_tools, pullthrough_available
from bench.upstream import (
    BIG_PROJECT,
    BIG_SIZE,
    HUGE_PROJECT,
    PAGE_PROJECT,
    Upstream,
    build_upstream,
)

ACCEPT_HTML = "text/html"
# What pip (>= 22.2) sends: JSON preferred, HTML accepted.
ACCEPT_PIP = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
    "text/html; q=0.01"
)
FORMATS = {"html": ACCEPT_HTML, "json(pip)": ACCEPT_PIP}  # the formats of (a)
S3_WARM = "pullthrough-s3"  # (d)'s warm server, a case of (b)'s rounds
BIG_PAGE_UPSTREAM_GETS = 5  # (e): the upstream's time is the best of these, per rep and format
BIG_PAGE_WARM_GETS = 20  # (e): timed warm GETs per format and encoding (quick: 10)


@dataclass
class Plan:
    """What to run, from the command line."""

    seconds: float  # per load run
    rounds: int
    warmup: float
    pip_reps: int  # also (e)'s reps
    warm_gets: int  # (e)
    workers: int  # gunicorn's, both proxies
    threads: int
    wrk: str | None  # None: the Python load loop
    wrk_files: bool  # (b) with wrk too
    pullthrough: bool
    proxpi_bin: Path | None
    s3: bool  # (d)
    egress: bool  # (h)


def parse_args() -> argparse.Namespace:
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
    ap.add_argument("--no-s3", action="store_true", help="skip (d), files on S3 vs local disk")
    ap.add_argument("--python-load", action="store_true", help="use the Python loop, not wrk")
    ap.add_argument("--wrk-files", action="store_true", help="(b) with wrk, not the Python loop")
    ap.add_argument("--no-memory", action="store_true", help="skip (f), worker memory")
    ap.add_argument("--memory-only", action="store_true", help="run (f) alone (~1 min)")
    ap.add_argument("--no-lockers", action="store_true", help="skip (g), poetry and uv")
    ap.add_argument("--lockers-only", action="store_true", help="run (g) alone")
    ap.add_argument("--no-egress", action="store_true", help="skip (h), egress screening")
    ap.add_argument("--egress-only", action="store_true", help="run (h) alone (~2 min)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    return ap.parse_args()


def main() -> int:
    args = parse_args()
    t_start = time.monotonic()
    nginx, wrk = ensure_tools(want_wrk=True)
    if args.python_load:
        wrk = None
    alone = args.memory_only or args.lockers_only or args.egress_only
    proxpi_bin = None if args.no_proxpi or alone else ensure_proxpi()
    have_pt, why = (False, "--no-pullthrough") if args.no_pullthrough else pullthrough_available()
    if not have_pt:
        log(f"pullthrough unavailable: {why}")
    if args.no_s3:
        s3_why = "--no-s3"
    elif not have_pt:
        s3_why = f"pullthrough unavailable ({why})"
    else:
        s3_why = seaweed_available() or ""
    if s3_why:
        log(f"(d) files on S3 skipped: {s3_why}")
    plan = Plan(
        seconds=args.seconds or (1.0 if args.quick else 4.0),
        rounds=args.rounds or (2 if args.quick else 3),
        warmup=1.0,
        pip_reps=1 if args.quick else 3,
        warm_gets=BIG_PAGE_WARM_GETS // 2 if args.quick else BIG_PAGE_WARM_GETS,
        workers=args.workers,
        threads=args.threads,
        wrk=wrk,
        wrk_files=args.wrk_files,
        pullthrough=have_pt,
        proxpi_bin=proxpi_bin,
        s3=not s3_why,
        egress=not args.no_egress and have_pt,
    )

    work = Path(tempfile.mkdtemp(prefix="pullthrough-bench-"))
    res = RunResults()
    mem = MemoryResults(
        skipped="--no-memory" if args.no_memory else ("" if have_pt else f"pullthrough: {why}")
    )
    lockers = LockerResults(
        skipped="--no-lockers" if args.no_lockers else ("" if have_pt else f"pullthrough: {why}")
    )
    res.s3.skipped = s3_why
    res.big.skipped = "" if have_pt else f"pullthrough unavailable ({why})"
    res.egress.skipped = (
        "--no-egress" if args.no_egress else "" if have_pt else f"pullthrough unavailable ({why})"
    )
    if not have_pt:
        res.notes.append(f"pullthrough not measured: {why}")
    if proxpi_bin is None and not alone:
        res.notes.append("proxpi not measured: not installed")
    rc = 0
    try:
        # `later` holds SeaweedFS, started after (a); both stop it all on exit or SIGTERM.
        with Procs() as procs, ExitStack() as later:
            if not alone:
                run_all(procs, later, nginx, work, plan, res)
            elif args.egress_only and plan.egress:
                up, upstream = start_upstream(procs, nginx, work)
                run_egress(
                    procs, work, up, upstream.url, FORMATS, plan.pip_reps, plan.workers,
                    plan.threads, res,
                )  # fmt: skip
            if not args.no_memory and (not alone or args.memory_only) and have_pt:  # (f)
                mem_plan = memory_plan(args.quick, plan.workers, plan.threads, wrk)
                run_safely(procs, nginx, work, mem_plan, mem)
            if not args.no_lockers and (not alone or args.lockers_only) and have_pt:  # (g)
                run_lockers_safely(
                    procs, nginx, work, args.quick, plan.workers, plan.threads, lockers
                )
    except BenchError as exc:
        log(f"FAILED: {exc}")
        res.notes.append(f"run aborted: {exc}")
        rc = 2
    finally:
        res.notes += server_log_notes(work, "pullthrough-*/server.log", limit=5)
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    if args.memory_only:
        mem.notes += res.notes
        print_memory_report(mem, time.monotonic() - t_start)
        return rc
    if args.lockers_only:
        lockers.notes += res.notes
        print_lockers_report(lockers, time.monotonic() - t_start)
        return rc
    if args.egress_only:
        print_egress_section(res)
        print_notes(res.notes)
        return rc
    print_run_report(
        res,
        plan.seconds,
        plan.rounds,
        wrk is not None,
        bool(wrk and args.wrk_files),
        time.monotonic() - t_start,
        plan.pip_reps,
        [
            (lambda: print_front_section(res), lambda: print_front_goals(res)),
            (lambda: print_memory_section(mem), lambda: print_memory_goals(mem)),
            (lambda: print_lockers_section(lockers), lambda: print_lockers_goals(lockers)),
            (lambda: print_egress_section(res), lambda: None),  # no goal: figures to compare
        ],
    )
    return rc


def run_all(
    procs: Procs, later: ExitStack, nginx: str, work: Path, plan: Plan, res: RunResults
) -> None:
    """(a), (b), (c) and (e), in that order, against one upstream; (d) within (b) and (c).

    later: where SeaweedFS is started for (d), after (a).
    """
    up, upstream = start_upstream(procs, nginx, work)
    upstream_url = f"{upstream.url}/simple/"

    # ---- servers for (a) and (b)
    page_targets: dict[str, tuple[str, int]] = {}  # server -> (page URL, pid)
    page_bytes: dict[str, bytes] = {}  # format -> the first proxy's answer
    pt = None
    if plan.pullthrough:
        try:
            pt = start_pullthrough(
                procs, work, "pullthrough-warm", upstream_url, plan.workers, plan.threads
            )
            url = f"{pt.url}/pypi/{BASE_PATH}/simple/{PAGE_PROJECT}/"
            get_page("pullthrough", url, page_bytes)
            page_targets["pullthrough"] = (url, pt.pid)
        except BenchError as exc:
            res.notes.append(f"pullthrough (warm) failed: {exc}")
            log(str(exc))
            pt = None
    if plan.proxpi_bin:
        try:
            px = start_proxpi(
                procs,
                plan.proxpi_bin,
                work,
                "proxpi-warm",
                upstream_url,
                plan.workers,
                plan.threads,
            )
            url = f"{px.url}/index/{PAGE_PROJECT}/"
            get_page("proxpi", url, page_bytes)
            page_targets["proxpi"] = (url, px.pid)
        except BenchError as exc:
            res.notes.append(f"proxpi failed: {exc}")
    static, static_pages = start_static(procs, nginx, work, up, page_bytes, plan.workers, res)

    # ---- (a) warm simple pages, 8 connections, interleaved rounds
    cases = {}
    for fmt_name, accept in FORMATS.items():
        for server, (url, pid) in page_targets.items():
            cases[(server, fmt_name)] = Target(url, {"Accept": accept}, pid)
        static_url = f"{static.url}/{static_pages[fmt_name]}"
        cases[("nginx-static", fmt_name)] = Target(static_url, {"Accept": accept}, static.pid)
    try:  # gunicorn's own cost per request: the same bytes from a constant WSGI app
        pages = {fmt[:4]: work / "static" / static_pages[fmt] for fmt in FORMATS}
        floor = start_gunicorn_constant(
            procs, work, "gunicorn-constant", pages, plan.workers, plan.threads
        )
        for fmt_name, accept in FORMATS.items():
            cases[("gunicorn-constant", fmt_name)] = Target(
                floor.url, {"Accept": accept}, floor.pid
            )
    except BenchError as exc:
        res.notes.append(f"(a) gunicorn-constant: {exc}")
    front = None
    if pt is not None:  # the same page through deploy/nginx.conf (issue 12, goal 6)
        try:
            front = start_front(later, nginx, work, pt)
            cases.update(front_cases(front, pt, page_targets["pullthrough"][0], FORMATS))
        except BenchError as exc:
            res.notes.append(f"(a) nginx front: {exc}")
    loader = Loader(plan.wrk, work)
    measure(res.notes, "(a)", res.pages, loader, cases, 8, plan.seconds, plan.warmup, plan.rounds)
    if front is not None:
        front.stop()

    # ---- (b) warm file download, 4 connections; (d)'s server with files on S3 in its rounds
    seaweed = start_s3(later, work, res) if plan.s3 else None
    file_targets: dict[str, Target] = {}
    if pt is not None:
        try:
            url = warm_big_file(pt, up, res.notes, "(b) pullthrough's")
            file_targets["pullthrough"] = Target(url, {}, pt.pid)
        except (BenchError, OSError) as exc:
            res.notes.append(f"(b) pullthrough failed: {exc}")
    if seaweed is not None:
        try:
            s3pt = start_pullthrough(
                procs,
                work,
                "pullthrough-s3-warm",
                upstream_url,
                plan.workers,
                plan.threads,
                seaweed.storage_config("warm"),
            )
            url = warm_big_file(s3pt, up, res.notes, "(d) pullthrough on S3:")
            file_targets[S3_WARM] = Target(url, {}, s3pt.pid, (seaweed.pid,))
        except (BenchError, OSError) as exc:
            res.notes.append(f"(d) pullthrough on S3 (warm) failed: {exc}")
    file_targets["nginx-static"] = Target(f"{static.url}/{up.big_file}", {}, static.pid)
    cases = {(srv, "file"): target for srv, target in file_targets.items()}
    # wrk reads 8 KiB at a time and would cap both servers alike: a Python client that
    # reads 1 MiB at a time gets more out of the two shared CPUs.
    file_loader = Loader(None if not plan.wrk_files else plan.wrk, work)
    measure(
        res.notes, "(b)", res.files, file_loader, cases, 4, plan.seconds, plan.warmup, plan.rounds
    )
    res.s3.warm = res.files.pop((S3_WARM, "file"), None)

    # The warm servers are done: stop them so they do not share the CPU with (c).
    procs.stop_named(
        "pullthrough-warm",
        "pullthrough-s3-warm",
        "proxpi-warm",
        "nginx-static",
        "gunicorn-constant",
    )

    # ---- (c) cold pip download of the 25 projects; (d)'s cold runs in the same reps
    cold_runs(procs, work, up, upstream_url, plan, pt is not None, seaweed, res)

    # ---- (e) the big project page: cold through fresh servers, then warm with and without gzip
    if plan.pullthrough:
        big_page_runs(procs, work, up, upstream_url, plan, res)

    # ---- (h) the big page and a big project list with and without the egress screening
    if plan.egress:
        run_egress(
            procs, work, up, upstream.url, FORMATS, plan.pip_reps, plan.workers, plan.threads, res
        )


def start_upstream(procs: Procs, nginx: str, work: Path) -> tuple[Upstream, Server]:
    """The upstream of (a)-(e) and (h), built in work/upstream, served by one nginx worker."""
    log(f"building the upstream in {work}")
    up = build_upstream(work / "upstream")
    return up, start_nginx(procs, nginx, "nginx-upstream", up.root, work, 1)


def get_page(name: str, url: str, page_bytes: dict[str, bytes]) -> None:
    """GET a proxy's warm page in each format (200, with the files); keep the first answers."""
    for fmt_name, accept in FORMATS.items():
        status, headers, body = http_get(url, {"Accept": accept})
        if status != 200:
            raise BenchError(f"{url} ({fmt_name}): HTTP {status}: {body[:300]!r}")
        if f"{PAGE_PROJECT.replace('-', '_')}-1.0.0".encode() not in body:
            raise BenchError(f"{url} ({fmt_name}): the page lacks the files")
        page_bytes.setdefault(fmt_name, body)
        log(f"{name} {fmt_name}: {len(body)} B, {headers.get('content-type')}")


def start_static(
    procs: Procs,
    nginx: str,
    work: Path,
    up: Upstream,
    page_bytes: dict[str, bytes],
    workers: int,
    res: RunResults,
) -> tuple[Server, dict[str, str]]:
    """nginx serving the proxies' page bytes and the big file; and format -> page file name."""
    static = work / "static"
    static.mkdir()
    for fmt_name in FORMATS:
        body = page_bytes.get(fmt_name)
        if body is None:  # neither proxy answered: the upstream's bytes
            body = (up.root / "simple" / PAGE_PROJECT / "index.html").read_bytes()
        res.page_sizes[fmt_name] = len(body)
        ext = "json" if fmt_name.startswith("json") and body.lstrip()[:1] == b"{" else "html"
        (static / f"page-{fmt_name[:4]}.{ext}").write_bytes(body)
    os.link(up.files[up.big_file], static / up.big_file)
    server = start_nginx(procs, nginx, "nginx-static", static, work, workers)
    return server, {f: next(static.glob(f"page-{f[:4]}.*")).name for f in FORMATS}


def start_s3(later: ExitStack, work: Path, res: RunResults) -> Seaweed | None:
    """SeaweedFS for (d), stopped when `later` closes; None (and why, in res) if it failed."""
    try:
        return start_seaweed(later, work)
    except BenchError as exc:
        log(str(exc))
        res.s3.skipped = f"SeaweedFS failed: {exc}"
        res.notes.append(f"(d) not measured: {exc}")
        return None


def big_file_url(index_url: str, up: Upstream) -> str:
    """The big file's URL, from its project page under index_url (a simple index root)."""
    page_url = f"{index_url}{BIG_PROJECT}/"
    status, _, page = http_get(page_url, {"Accept": ACCEPT_HTML})
    if status != 200:
        raise BenchError(f"{page_url}: HTTP {status}")
    return find_link(page, page_url, up.big_file)


def timed_fetch(url: str, digest: str) -> float:
    """Seconds a GET of url takes on a new connection; its bytes checked against digest."""
    t0 = time.perf_counter()
    status, _, body = http_get(url, timeout=120)
    elapsed = time.perf_counter() - t0
    if status != 200 or hashlib.sha256(body).hexdigest() != digest:
        raise BenchError(f"{url}: HTTP {status}, {len(body)} B, wrong bytes")
    return elapsed


def big_digest(up: Upstream) -> str:
    return hashlib.sha256(up.files[up.big_file].read_bytes()).hexdigest()


def warm_big_file(pt: Server, up: Upstream, notes: list[str], who: str) -> str:
    """Fetch the big file once through pullthrough (checked, timed in a note); its URL."""
    file_url = big_file_url(f"{pt.url}/pypi/{BASE_PATH}/simple/", up)
    log(f"warming {file_url}")
    cold = timed_fetch(file_url, big_digest(up))
    notes.append(
        f"{who} first (cold) fetch of the big file: {cold:.2f}s, {BIG_SIZE / 1e6 / cold:.0f} MB/s"
    )
    return file_url


def fresh_pip(
    procs: Procs,
    work: Path,
    name: str,
    upstream_url: str,
    up: Upstream,
    plan: Plan,
    extra_config: str = "",
) -> tuple[float, float]:
    """A freshly started pullthrough (empty data dir): pip download cold, then again (warm)."""
    server = start_pullthrough(
        procs, work, name, upstream_url, plan.workers, plan.threads, extra_config
    )
    try:
        index = f"{server.url}/pypi/{BASE_PATH}/simple/"
        cold = pip_download(index, up.projects, work / f"pip-{name}")
        # For reference: the same again, now that this instance has it all.
        warm = pip_download(index, up.projects, work / f"pip-{name}-warm")
    finally:
        procs.stop_one(server.proc)
    return cold, warm


def parallel_files(
    procs: Procs, work: Path, name: str, upstream_url: str, up: Upstream, plan: Plan
) -> dict[str, float]:
    """(c), for reference: the small projects' files in bursts of PARALLEL_FILES GETs at once (new
    connections), straight from the upstream, then through a freshly started pullthrough
    (pages fetched first, untimed): cold, then warm. Median seconds of a burst, per source."""
    names = sorted(fn for fn in up.files if fn != up.big_file)
    digests = {fn: hashlib.sha256(up.files[fn].read_bytes()).hexdigest() for fn in names}
    files_root = upstream_url.removesuffix("simple/") + "files/"

    def bursts(url_of: Callable[[str], str]) -> float:
        walls = []
        with ThreadPoolExecutor(PARALLEL_FILES) as pool:
            for start in range(0, len(names), PARALLEL_FILES):
                group = names[start : start + PARALLEL_FILES]
                t0 = time.perf_counter()
                list(pool.map(lambda fn: timed_fetch(url_of(fn), digests[fn]), group))
                walls.append(time.perf_counter() - t0)
        return statistics.median(walls)

    measured = {"upstream (nginx)": bursts(lambda fn: files_root + fn)}
    server = start_pullthrough(procs, work, name, upstream_url, plan.workers, plan.threads)
    try:
        for project in up.projects:
            status, _, _ = http_get(f"{server.url}/pypi/{BASE_PATH}/simple/{project}/")
            if status != 200:
                raise BenchError(f"{project}'s page through pullthrough: HTTP {status}")
        content = f"{server.url}/pulp/content/{BASE_PATH}/"
        measured["pullthrough (cold)"] = bursts(lambda fn: content + fn)
        measured["pullthrough (warm, ref.)"] = bursts(lambda fn: content + fn)
    finally:
        procs.stop_one(server.proc)
    return measured


def first_fetch(
    procs: Procs,
    work: Path,
    name: str,
    upstream_url: str,
    up: Upstream,
    plan: Plan,
    extra_config: str = "",
) -> float:
    """Seconds of the big file's first GET through a freshly started pullthrough (empty data
    dir; its project page is fetched first, untimed)."""
    digest = big_digest(up)
    server = start_pullthrough(
        procs, work, name, upstream_url, plan.workers, plan.threads, extra_config
    )
    try:
        return timed_fetch(big_file_url(f"{server.url}/pypi/{BASE_PATH}/simple/", up), digest)
    finally:
        procs.stop_one(server.proc)


def cold_runs(
    procs: Procs,
    work: Path,
    up: Upstream,
    upstream_url: str,
    plan: Plan,
    with_pullthrough: bool,
    seaweed: Seaweed | None,
    res: RunResults,
) -> None:
    """(c) and (d)'s cold half, per rep: pip from the upstream, a fresh pullthrough (then warm),
    a fresh pullthrough on S3 (then warm) and a fresh proxpi; then the big file's first fetch
    through a fresh pullthrough on local disk and on S3, and straight from the upstream."""
    log("(c) pip warm-up run (imports, page cache)")
    pip_download(upstream_url, up.projects[:1], work / "pip-warmup")
    reps = plan.pip_reps
    for rep in range(reps):
        log(f"(c) rep {rep + 1}/{reps}: upstream")
        res.pip.setdefault("upstream (nginx)", []).append(
            pip_download(upstream_url, up.projects, work / f"pip-up-{rep}")
        )
        if with_pullthrough:
            log(f"(c) rep {rep + 1}/{reps}: fresh pullthrough")
            try:
                cold, warm = fresh_pip(
                    procs, work, f"pullthrough-cold-{rep}", upstream_url, up, plan
                )
                res.pip.setdefault("pullthrough (cold)", []).append(cold)
                res.pip.setdefault("pullthrough (warm, ref.)", []).append(warm)
            except (BenchError, subprocess.SubprocessError) as exc:
                res.notes.append(f"(c) pullthrough rep {rep + 1}: {exc}")
            log(
                f"(c) rep {rep + 1}/{reps}: {PARALLEL_FILES} files at once, upstream and fresh pullthrough"
            )
            try:
                found = parallel_files(
                    procs, work, f"pullthrough-parallel-{rep}", upstream_url, up, plan
                )
                for source, seconds in found.items():
                    res.parallel.setdefault(source, []).append(seconds)
            except (BenchError, OSError) as exc:
                res.notes.append(f"(c) {PARALLEL_FILES} files at once, rep {rep + 1}: {exc}")
        if seaweed is not None:
            log(f"(d) rep {rep + 1}/{reps}: fresh pullthrough on S3 (new bucket)")
            try:
                storage = seaweed.storage_config(f"cold-pip-{rep}")
                cold, warm = fresh_pip(
                    procs, work, f"pullthrough-s3-cold-{rep}", upstream_url, up, plan, storage
                )
                res.s3.pip.setdefault("cold", []).append(cold)
                res.s3.pip.setdefault("warm", []).append(warm)
            except (BenchError, subprocess.SubprocessError) as exc:
                res.notes.append(f"(d) pip, pullthrough on S3, rep {rep + 1}: {exc}")
        if plan.proxpi_bin:
            log(f"(c) rep {rep + 1}/{reps}: fresh proxpi")
            try:
                server = start_proxpi(
                    procs,
                    plan.proxpi_bin,
                    work,
                    f"proxpi-cold-{rep}",
                    upstream_url,
                    plan.workers,
                    plan.threads,
                )
                res.pip.setdefault("proxpi (cold, ref.)", []).append(
                    pip_download(f"{server.url}/index/", up.projects, work / f"pip-px-{rep}")
                )
                procs.stop_one(server.proc)
            except (BenchError, subprocess.SubprocessError) as exc:
                res.notes.append(f"(c) proxpi rep {rep + 1}: {exc}")
        if seaweed is not None:
            first_fetches(procs, work, up, upstream_url, plan, seaweed, rep, res)


def first_fetches(
    procs: Procs,
    work: Path,
    up: Upstream,
    upstream_url: str,
    plan: Plan,
    seaweed: Seaweed,
    rep: int,
    res: RunResults,
) -> None:
    """(d): one rep of the big file's first fetch: straight from the upstream, and through a
    fresh pullthrough on local disk and on S3 (a new bucket)."""
    log(f"(d) rep {rep + 1}/{plan.pip_reps}: the big file's first fetch, upstream, local, S3")
    runs: dict[str, Callable[[], float]] = {
        "upstream (nginx)": lambda: timed_fetch(big_file_url(upstream_url, up), big_digest(up)),
        "local disk": lambda: first_fetch(
            procs, work, f"pullthrough-first-{rep}", upstream_url, up, plan
        ),
        "S3": lambda: first_fetch(
            procs,
            work,
            f"pullthrough-s3-first-{rep}",
            upstream_url,
            up,
            plan,
            seaweed.storage_config(f"cold-file-{rep}"),
        ),
    }
    for name, run in runs.items():
        try:
            res.s3.first_fetch.setdefault(name, []).append(run())
        except (BenchError, OSError) as exc:
            res.notes.append(f"(d) first fetch, {name}, rep {rep + 1}: {exc}")


# --------------------------------------------------------------------------- (e)


def big_page_runs(
    procs: Procs, work: Path, up: Upstream, upstream_url: str, plan: Plan, res: RunResults
) -> None:
    """(e): per rep and format, the upstream's big page straight (best of a few GETs), then its
    first GET through a freshly started pullthrough, and for reference through a fresh relay
    floor and proxpi (`cold_references`); on the last pullthrough, warm GETs with and without
    gzip (`warm_encodings`)."""
    big = res.big
    big.files = up.huge_files
    up_url = f"{upstream_url}{HUGE_PROJECT}/"
    no_proxpi: set[str] = set()  # the formats proxpi answers in the other format
    for rep in range(plan.pip_reps):
        for n, (fmt_name, accept) in enumerate(FORMATS.items()):
            headers = {"Accept": accept}
            log(f"(e) rep {rep + 1}/{plan.pip_reps}: the big page ({fmt_name}), upstream, cold")
            try:
                runs = [
                    timed_page(up_url, headers, big.files) for _ in range(BIG_PAGE_UPSTREAM_GETS)
                ]
                big.upstream.setdefault(fmt_name, []).append(min(t for t, _ in runs))
                big.upstream_sizes[fmt_name] = len(runs[0][1])
                server = start_pullthrough(
                    procs,
                    work,
                    f"pullthrough-bigpage-{rep}-{n}",
                    upstream_url,
                    plan.workers,
                    plan.threads,
                )
                try:
                    url = f"{server.url}/pypi/{BASE_PATH}/simple/{HUGE_PROJECT}/"
                    big.cold.setdefault(fmt_name, []).append(timed_page(url, headers, big.files)[0])
                    if rep == plan.pip_reps - 1 and n == len(FORMATS) - 1:
                        warm_encodings(url, plan.warm_gets, res)
                finally:
                    procs.stop_one(server.proc)
            except (BenchError, OSError, ValueError) as exc:
                res.notes.append(f"(e) {fmt_name}, rep {rep + 1}: {exc}")
            cold_references(procs, work, upstream_url, plan, rep, n, no_proxpi, res)


def first_page_get(
    procs: Procs, server: Server, url: str, headers: dict[str, str], files: int
) -> float:
    """Seconds of the first GET of a page (`timed_page`) through a freshly started server,
    which is stopped after it (also when the GET fails)."""
    try:
        return timed_page(url, headers, files)[0]
    finally:
        procs.stop_one(server.proc)


def cold_references(
    procs: Procs,
    work: Path,
    upstream_url: str,
    plan: Plan,
    rep: int,
    n: int,  # the format's index in FORMATS
    no_proxpi: set[str],
    res: RunResults,
) -> None:
    """(e), for reference: the big page's first GET in one format, timed as pullthrough's,
    through a freshly started relay floor (it keeps nothing, but gets a new server per rep and
    format all the same, as pullthrough does, so that no upstream connection an earlier GET left
    open is reused) and through a freshly started proxpi (unless not installed). A format
    proxpi answers in the other format is noted once and left out from then on (no_proxpi)."""
    fmt_name, accept = list(FORMATS.items())[n]
    big, headers = res.big, {"Accept": accept}
    log(f"(e) rep {rep + 1}/{plan.pip_reps}: the big page ({fmt_name}), relay-floor and proxpi")
    try:
        relay = start_relay_floor(
            procs, work, f"relay-floor-{rep}-{n}", upstream_url, plan.workers, plan.threads
        )
        url = f"{relay.url}/{HUGE_PROJECT}/"
        big.relay.setdefault(fmt_name, []).append(
            first_page_get(procs, relay, url, headers, big.files)
        )
    except (BenchError, OSError, ValueError) as exc:
        res.notes.append(f"(e) relay-floor {fmt_name}, rep {rep + 1}: {exc}")
    if plan.proxpi_bin is None or fmt_name in no_proxpi:
        return
    try:
        px = start_proxpi(
            procs,
            plan.proxpi_bin,
            work,
            f"proxpi-bigpage-{rep}-{n}",
            upstream_url,
            plan.workers,
            plan.threads,
        )
        url = f"{px.url}/index/{HUGE_PROJECT}/"
        big.proxpi.setdefault(fmt_name, []).append(
            first_page_get(procs, px, url, headers, big.files)
        )
    except WrongFormat as exc:
        no_proxpi.add(fmt_name)
        res.notes.append(f"(e) proxpi does not serve {fmt_name}, left out: {exc}")
    except (BenchError, OSError, ValueError) as exc:
        res.notes.append(f"(e) proxpi {fmt_name}, rep {rep + 1}: {exc}")


def keepalive_get(
    conn: http.client.HTTPConnection, path: str, accept: str, encoding: str
) -> tuple[float, bytes]:
    """Seconds of a GET on an open connection, and the body as sent (checked: 200, encoded as
    asked)."""
    t0 = time.perf_counter()
    conn.request("GET", path, headers={"Accept": accept, "Accept-Encoding": encoding})
    resp = conn.getresponse()
    body = resp.read()
    elapsed = time.perf_counter() - t0
    sent = resp.getheader("Content-Encoding", "identity")
    if resp.status != 200 or sent != encoding:
        raise BenchError(f"{path} ({accept}, {encoding}): HTTP {resp.status}, {sent}")
    return elapsed, body


def warm_encodings(url: str, gets: int, res: RunResults) -> None:
    """(e), warm: per format, on one keep-alive connection (so one worker, which has rendered
    the page after the warm-up GETs): the first gzip GET (it compresses), then `gets` GETs with
    and without `Accept-Encoding: gzip`, alternating; the bodies' sizes as sent."""
    big = res.big
    big.warm_requests = gets
    host, port, path = split_url(url)
    for fmt_name, accept in FORMATS.items():
        log(f"(e) warm {fmt_name}: identity vs gzip, {gets} GETs each")
        conn = http.client.HTTPConnection(host, port, timeout=60)
        try:
            # warm-up: the page rendered in this connection's worker
            plain = [keepalive_get(conn, path, accept, "identity") for _ in range(3)][-1][1]
            big.first_gzip[fmt_name], packed = keepalive_get(conn, path, accept, "gzip")
            if gzip.decompress(packed) != plain:
                raise BenchError(f"{url} ({fmt_name}): the gzip body is not the page")
            times: dict[str, list[float]] = {"identity": [], "gzip": []}
            for _ in range(gets):
                for encoding, spent in times.items():
                    spent.append(keepalive_get(conn, path, accept, encoding)[0])
            for encoding, spent in times.items():
                big.warm[(fmt_name, encoding)] = statistics.median(spent)
            big.sizes[(fmt_name, "identity")] = len(plain)
            big.sizes[(fmt_name, "gzip")] = len(packed)
        finally:
            conn.close()


if __name__ == "__main__":
    sys.exit(main())
