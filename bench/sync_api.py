"""pullthrough's REST API (the Pulp-style one) as the sync benchmark drives it.

A server with an admin password; POST a remote and a repository, POST <repository>sync/, poll
the task every 50 ms (bounded) until it is final.
"""

from __future__ import annotations

import base64
import http.client
import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.common import HOST, BenchError
from bench.procfs import tree_cpu_seconds
from bench.results import Case
from bench.servers import Procs, Server, start_pullthrough

ADMIN_PASSWORD = "bench-sync-secret"
API = "/pulp/api/v3/"
REMOTES = API + "remotes/python/python/"
REPOSITORIES = API + "repositories/python/python/"
WORKERS = 2
THREADS = 32
FINAL_STATES = ("completed", "failed", "canceled", "skipped")


def start_server(procs: Procs, work: Path, name: str, upstream_url: str) -> Server:
    """pullthrough (WORKERS x THREADS, an empty data dir) with the API's admin password set."""
    auth = f'[auth]\nadmin_password = "{ADMIN_PASSWORD}"\n'
    return start_pullthrough(procs, work, name, upstream_url, WORKERS, THREADS, extra_config=auth)


def api(
    server: Server,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    timeout: float = 30.0,
) -> tuple[int, Any]:
    """HTTP status and decoded JSON (or the start of the raw answer) of an API call as admin."""
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


def create(server: Server, path: str, body: dict[str, Any]) -> str:
    """POST a new object (remote, repository); its pulp_href."""
    status, data = api(server, "POST", path, body)
    if status != 201:
        raise BenchError(f"POST {path} {body.get('name')!r}: HTTP {status}: {data}")
    href: str = data["pulp_href"]
    return href


def _ts(value: str | None) -> float | None:
    if not value:
        return None
    return datetime.fromisoformat(value.removesuffix("Z")).timestamp()


def progress_report(task: dict[str, Any], code: str) -> dict[str, Any] | None:
    """The task's progress report of that code (e.g. "sync.changed_projects"), if any."""
    reports: list[dict[str, Any]] = task.get("progress_reports") or []
    return next((r for r in reports if r.get("code") == code), None)


def run_sync(server: Server, repo: str, remote: str, case: Case, timeout: float) -> dict[str, Any]:
    """POST sync/, poll the task (every 50 ms, bounded) and fill case; the last task JSON."""
    cpu0 = tree_cpu_seconds(server.pid)
    t0 = time.perf_counter()
    status, data = api(server, "POST", f"{repo}sync/", {"remote": remote})
    if status != 202:
        raise BenchError(f"POST {repo}sync/: HTTP {status}: {data}")
    task_href = data["task"]
    deadline = time.monotonic() + timeout
    task: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status, task = api(server, "GET", task_href)
        if status != 200:
            raise BenchError(f"GET {task_href}: HTTP {status}: {task}")
        if task["state"] in FINAL_STATES:
            break
        if server.proc.poll() is not None:
            raise BenchError(f"{server.name} exited with {server.proc.returncode}")
        time.sleep(0.05)
    case.wall_s = time.perf_counter() - t0
    case.cpu_s = tree_cpu_seconds(server.pid) - cpu0
    case.state = task.get("state", "?")
    case.worker = str(task.get("worker") or "")
    if case.state not in FINAL_STATES:
        case.state = f"{case.state} after {timeout:.0f}s"
        api(server, "PATCH", task_href, {"state": "canceled"})
    started, finished = _ts(task.get("started_at")), _ts(task.get("finished_at"))
    if started is not None and finished is not None:
        case.task_s = finished - started
    if task.get("error"):
        case.error = json.dumps(task["error"])[:600]
    assoc = progress_report(task, "sync.associating.content")
    case.files = assoc["done"] if assoc else 0
    arts = progress_report(task, "sync.downloading.artifacts")
    case.downloaded = arts["done"] if arts else 0
    return task


def changed_projects(task: dict[str, Any]) -> str | None:
    """ "done/total" of the task's sync.changed_projects report, if it has one."""
    changed = progress_report(task, "sync.changed_projects")
    return f"{changed['done']}/{changed['total']}" if changed else None


def sync_worker_pid(worker: str) -> str:
    """The pid in a task's worker name, `<host>-<pid>-<thread>`."""
    parts = worker.rsplit("-", 2)
    return parts[1] if len(parts) == 3 and parts[1].isdigit() else ""
