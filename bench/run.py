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
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # to import the `bench` package

from bench.common import BenchError, find_link, http_get, log
from bench.load import Loader, Target, measure, pip_download
from bench.report import print_run_report
from bench.results import RunResults
from bench.servers import (
    BASE_PATH,
    Procs,
    Server,
    server_log_notes,
    start_nginx,
    start_proxpi,
    start_pullthrough,
)
from bench.tools import ensure_proxpi, ensure_tools, pullthrough_available
from bench.upstream import BIG_PROJECT, PAGE_PROJECT, Upstream, build_upstream

ACCEPT_HTML = "text/html"
# What pip (>= 22.2) sends: JSON preferred, HTML accepted.
ACCEPT_PIP = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
    "text/html; q=0.01"
)
FORMATS = {"html": ACCEPT_HTML, "json(pip)": ACCEPT_PIP}  # the formats of (a)


@dataclass
class Plan:
    """What to run, from the command line."""

    seconds: float  # per load run
    rounds: int
    warmup: float
    pip_reps: int
    workers: int  # gunicorn's, both proxies
    threads: int
    wrk: str | None  # None: the Python load loop
    wrk_files: bool  # (b) with wrk too
    pullthrough: bool
    proxpi_bin: Path | None


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
    ap.add_argument("--python-load", action="store_true", help="use the Python loop, not wrk")
    ap.add_argument("--wrk-files", action="store_true", help="(b) with wrk, not the Python loop")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    return ap.parse_args()


def main() -> int:
    args = parse_args()
    t_start = time.monotonic()
    nginx, wrk = ensure_tools(want_wrk=True)
    if args.python_load:
        wrk = None
    proxpi_bin = None if args.no_proxpi else ensure_proxpi()
    have_pt, why = (False, "--no-pullthrough") if args.no_pullthrough else pullthrough_available()
    if not have_pt:
        log(f"pullthrough unavailable: {why}")
    plan = Plan(
        seconds=args.seconds or (1.0 if args.quick else 4.0),
        rounds=args.rounds or (2 if args.quick else 3),
        warmup=1.0,
        pip_reps=1 if args.quick else 3,
        workers=args.workers,
        threads=args.threads,
        wrk=wrk,
        wrk_files=args.wrk_files,
        pullthrough=have_pt,
        proxpi_bin=proxpi_bin,
    )

    work = Path(tempfile.mkdtemp(prefix="pullthrough-bench-"))
    res = RunResults()
    if not have_pt:
        res.notes.append(f"pullthrough not measured: {why}")
    if proxpi_bin is None:
        res.notes.append("proxpi not measured: not installed")
    rc = 0
    try:
        with Procs() as procs:
            run_all(procs, nginx, work, plan, res)
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

    print_run_report(
        res,
        plan.seconds,
        plan.rounds,
        wrk is not None,
        bool(wrk and args.wrk_files),
        time.monotonic() - t_start,
        plan.pip_reps,
    )
    return rc


def run_all(procs: Procs, nginx: str, work: Path, plan: Plan, res: RunResults) -> None:
    """(a), (b) and (c), in that order, against one upstream."""
    log(f"building the upstream in {work}")
    up = build_upstream(work / "upstream")
    upstream = start_nginx(procs, nginx, "nginx-upstream", up.root, work, 1)
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
    loader = Loader(plan.wrk, work)
    measure(res.notes, "(a)", res.pages, loader, cases, 8, plan.seconds, plan.warmup, plan.rounds)

    # ---- (b) warm file download, 4 connections
    file_targets: dict[str, tuple[str, int]] = {}
    if pt is not None:
        try:
            file_targets["pullthrough"] = (warm_big_file(pt, up, res.notes), pt.pid)
        except (BenchError, OSError) as exc:
            res.notes.append(f"(b) pullthrough failed: {exc}")
    file_targets["nginx-static"] = (f"{static.url}/{up.big_file}", static.pid)
    cases = {(srv, "file"): Target(url, {}, pid) for srv, (url, pid) in file_targets.items()}
    # wrk reads 8 KiB at a time and would cap both servers alike: a Python client that
    # reads 1 MiB at a time gets more out of the two shared CPUs.
    file_loader = Loader(None if not plan.wrk_files else plan.wrk, work)
    measure(
        res.notes, "(b)", res.files, file_loader, cases, 4, plan.seconds, plan.warmup, plan.rounds
    )

    # The warm servers are done: stop them so they do not share the CPU with (c).
    procs.stop_named("pullthrough-warm", "proxpi-warm", "nginx-static")

    # ---- (c) cold pip download of the 25 projects
    cold_pip_downloads(procs, work, up, upstream_url, plan, pt is not None, res)


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


def warm_big_file(pt: Server, up: Upstream, notes: list[str]) -> str:
    """Fetch the big file once through pullthrough (checked, timed in a note); its URL."""
    big_digest = hashlib.sha256(up.files[up.big_file].read_bytes()).hexdigest()
    page_url = f"{pt.url}/pypi/{BASE_PATH}/simple/{BIG_PROJECT}/"
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
    notes.append(
        f"(b) pullthrough's first (cold) fetch of the big file: "
        f"{cold:.2f}s, {len(body) / 1e6 / cold:.0f} MB/s"
    )
    return file_url


def cold_pip_downloads(
    procs: Procs,
    work: Path,
    up: Upstream,
    upstream_url: str,
    plan: Plan,
    with_pullthrough: bool,
    res: RunResults,
) -> None:
    """(c): pip from the upstream, a fresh pullthrough (then warm) and a fresh proxpi, per rep."""
    log("(c) pip warm-up run (imports, page cache)")
    pip_download(upstream_url, up.projects[:1], work / "pip-warmup")
    for rep in range(plan.pip_reps):
        log(f"(c) rep {rep + 1}/{plan.pip_reps}: upstream")
        res.pip.setdefault("upstream (nginx)", []).append(
            pip_download(upstream_url, up.projects, work / f"pip-up-{rep}")
        )
        if with_pullthrough:
            log(f"(c) rep {rep + 1}/{plan.pip_reps}: fresh pullthrough")
            try:
                server = start_pullthrough(
                    procs,
                    work,
                    f"pullthrough-cold-{rep}",
                    upstream_url,
                    plan.workers,
                    plan.threads,
                )
                index = f"{server.url}/pypi/{BASE_PATH}/simple/"
                res.pip.setdefault("pullthrough (cold)", []).append(
                    pip_download(index, up.projects, work / f"pip-pt-{rep}")
                )
                # For reference: the same again, now that this instance has it all.
                res.pip.setdefault("pullthrough (warm, ref.)", []).append(
                    pip_download(index, up.projects, work / f"pip-ptw-{rep}")
                )
                procs.stop_one(server.proc)
            except (BenchError, subprocess.SubprocessError) as exc:
                res.notes.append(f"(c) pullthrough rep {rep + 1}: {exc}")
        if plan.proxpi_bin:
            log(f"(c) rep {rep + 1}/{plan.pip_reps}: fresh proxpi")
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


if __name__ == "__main__":
    sys.exit(main())
