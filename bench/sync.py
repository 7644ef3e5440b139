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
it starts is stopped on exit, also on error, Ctrl-C or SIGTERM. It shares bench/run.py's
modules (processes, nginx, wheels, tables). See bench/README.md.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # to import the `bench` package

from bench.common import BenchError, log
from bench.procfs import tree_status_kib
from bench.report import print_sync_report
from bench.results import Case, ManyResult, SyncResults
from bench.servers import NginxLog, Procs, check_revalidation, server_log_notes, start_nginx
from bench.sync_api import (
    REMOTES,
    REPOSITORIES,
    changed_projects,
    create,
    run_sync,
    start_server,
)
from bench.tools import ensure_tools, pullthrough_available
from bench.upstream import build_many, build_small

SMALL_CASES = [  # (1): label, policy, download_concurrency (None: unset, the server's 4)
    ("immediate c=1", "immediate", 1),
    ("immediate c=4", "immediate", 4),
    ("immediate c=10", "immediate", 10),
    ("on_demand", "on_demand", None),
    ("streamed", "streamed", None),
]


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
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
    return ap.parse_args()


def main() -> int:
    args = parse_args()
    n_small = args.projects or (30 if args.quick else 60)
    n_versions = 5
    n_many = args.many or 5000
    reps = args.reps or (1 if args.quick else 3)
    t_start = time.monotonic()

    ok, why = pullthrough_available()
    if not ok:
        log(f"pullthrough unavailable: {why}")
        return 2
    try:
        nginx, _ = ensure_tools(want_wrk=False)
    except BenchError as exc:
        log(str(exc))
        return 2

    work = Path(tempfile.mkdtemp(prefix="pullthrough-bench-sync-"))
    res = SyncResults(small_projects=n_small)
    res.many.projects = n_many
    rc = 0
    try:
        with Procs() as procs:
            run_all(
                procs,
                nginx,
                work,
                res,
                n_versions,
                reps,
                args.many_concurrency,
                many_timeout=60 if args.quick else 120,
            )
    except BenchError as exc:
        log(f"FAILED: {exc}")
        res.notes.append(f"run aborted: {exc}")
        rc = 2
    finally:
        res.notes += server_log_notes(work, "pt-*/server.log", limit=3)
        errors = work / "nginx-upstream" / "error.log"
        if errors.exists() and errors.read_text(errors="replace").strip():
            res.notes.append(f"nginx error.log: {errors.read_text(errors='replace')[-300:]}")
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    print_sync_report(res, n_versions, reps, time.monotonic() - t_start)
    failed = [c for c in res.cases if c.state != "completed"]
    for many in (res.many.first, res.many.again):  # the first sync and the re-sync of (2)/(3)
        if many is None or many.state != "completed":
            failed.append(many or Case("(2)", "on_demand", None))
    return rc or (1 if failed else 0)


def run_all(
    procs: Procs,
    nginx: str,
    work: Path,
    res: SyncResults,
    n_versions: int,
    reps: int,
    many_concurrency: int | None,
    many_timeout: float,
) -> None:
    """The upstreams, then (1) case by case, rep by rep, then (2) and (3)."""
    up = work / "upstream"
    t0 = time.perf_counter()
    projects, res.small_files, res.small_bytes = build_small(
        up / "small", res.small_projects, n_versions
    )
    build_many(up / "many", res.many.projects)
    log(f"built the upstreams in {work} ({time.perf_counter() - t0:.1f}s)")
    upstream = start_nginx(
        procs, nginx, "nginx-upstream", up, work, 1, access_log=True, ready_path="small/simple/"
    )
    small_url = f"{upstream.url}/small/simple/"
    many_url = f"{upstream.url}/many/simple/"
    res.notes.append(
        "upstream nginx, page ptmany-0000: " + check_revalidation(f"{many_url}ptmany-0000/")
    )
    nginx_log = NginxLog(upstream.home / "access.log")
    for rep in range(reps):  # interleaved: a slow moment of the machine hits every case
        for label, policy, concurrency in SMALL_CASES:
            case = Case(label, policy, concurrency)
            res.cases.append(case)
            try:
                small_case(procs, work, small_url, nginx_log, projects, case, rep)
            except BenchError as exc:
                case.state, case.error = "error", str(exc)
                log(f"(1) {case.label}: {exc}")
    try:
        many_case(procs, work, many_url, nginx_log, res.many, many_concurrency, many_timeout)
    except BenchError as exc:
        res.notes.append(f"(2)/(3) aborted: {exc}")
        log(f"(2)/(3): {exc}")


def small_case(
    procs: Procs,
    work: Path,
    url: str,
    nginx_log: NginxLog,
    projects: list[str],
    case: Case,
    rep: int,
) -> None:
    """(1): one sync of the small upstream into a freshly started server."""
    name = f"pt-{case.label.replace(' ', '-').replace('=', '')}-{rep}"
    server = start_server(procs, work, name, url)
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
    procs: Procs,
    work: Path,
    url: str,
    nginx_log: NginxLog,
    res: ManyResult,
    concurrency: int | None,
    timeout: float,
) -> None:
    """(2) and (3): the big upstream synced on_demand, then again (no change), one server."""
    server = start_server(procs, work, "pt-many", url)
    try:
        res.boot_kib = tree_status_kib(server.pid, "VmHWM")
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
        res.after_first_kib = tree_status_kib(server.pid, "VmHWM")
        res.changed_first = changed_projects(task) or res.changed_first
        log(f"(2) {res.first.state} in {res.first.task_s:.2f}s, changed {res.changed_first}")
        if res.first.state != "completed":
            return

        res.again = Case("no-change re-sync", "on_demand", concurrency)
        log("(3) no-change re-sync")
        nginx_log.mark()
        task = run_sync(server, repo, remote, res.again, timeout)
        res.again.upstream = nginx_log.counts()
        res.after_again_kib = tree_status_kib(server.pid, "VmHWM")
        res.rss_after_kib = tree_status_kib(server.pid, "VmRSS")
        res.changed_again = changed_projects(task) or res.changed_again
        log(f"(3) {res.again.state} in {res.again.task_s:.2f}s, changed {res.changed_again}")
    finally:
        procs.stop_one(server.proc)


if __name__ == "__main__":
    sys.exit(main())
