"""Load generation and its measurements: wrk or a Python loop, rounds of runs, pip download timing.

A run's CPU figures come from /proc: the server's process tree, the processes it relies on (the
S3 server under pullthrough's files), and "other", the rest of the machine but the load generator.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from bench.common import BenchError, child_env, log, split_url
from bench.procfs import (
    CLK_TCK,
    all_cpu_ticks,
    own_cpu_seconds,
    system_busy_seconds,
    tree_cpu_seconds,
    tree_pids,
)

PARALLEL_FILES = 10  # (c)'s reference bursts: cold files asked for at once, as uv downloads


class Counts(NamedTuple):
    """What the load generator saw in one run."""

    requests: int
    bytes: int
    seconds: float
    errors: int
    p50_ms: float
    p99_ms: float


class Target(NamedTuple):
    """What one case loads: a URL, its request headers, and the server's (root) pid; `backing`:
    the root pids of what the server relies on (the S3 server), whose CPU is not "other"."""

    url: str
    headers: dict[str, str]
    pid: int
    backing: tuple[int, ...] = ()


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
    backing_cpu_s: float = 0.0  # the process trees the server relies on (Target.backing)
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
        return statistics.median(float(getattr(r, attr)) for r in self.runs)

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

    @property
    def backing_pct(self) -> float:
        return sum(r.backing_cpu_s for r in self.runs) / self.seconds * 100 if self.seconds else 0.0

    def spread(self, attr: str) -> str:
        values = [float(getattr(r, attr)) for r in self.runs]
        mid = statistics.median(values)
        return f"+-{(max(values) - min(values)) / 2 / mid * 100:.0f}%" if mid else "n/a"


# --------------------------------------------------------------------------- load generators


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
) -> Counts:
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
    return Counts(
        d["requests"],
        d["bytes"],
        d["duration_us"] / 1e6,
        d["errors"],
        d["p50_us"] / 1e3,
        d["p99_us"] / 1e3,
    )


def run_pyload(
    url: str, headers: dict[str, str], conns: int, seconds: float, max_requests: int = 2_000_000
) -> Counts:
    """Fallback load generator: keep-alive http.client threads, bounded in time and count."""
    host, port, path = split_url(url)
    lock = threading.Lock()
    totals = {"requests": 0, "bytes": 0, "errors": 0}
    lat: list[float] = []
    deadline = time.monotonic() + seconds
    per_thread = max_requests // conns

    def worker() -> None:
        conn: http.client.HTTPConnection | None = None
        n = nbytes = errors = 0
        mine: list[float] = []
        buf = memoryview(bytearray(1 << 20))
        while time.monotonic() < deadline and n < per_thread:
            t0 = time.perf_counter()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(host, port, timeout=10)
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
    return Counts(totals["requests"], totals["bytes"], elapsed, totals["errors"], p50, p99)


class Loader:
    """Load runs with wrk (its Lua report script in work/) or, wrk=None, the Python loop."""

    def __init__(self, wrk: str | None, work: Path) -> None:
        self.wrk = wrk
        self.lua = work / "report.lua"
        self.lua.write_text(WRK_LUA)

    def once(self, url: str, headers: dict[str, str], conns: int, seconds: float) -> Counts:
        if self.wrk:
            return run_wrk(self.wrk, self.lua, url, headers, conns, seconds)
        return run_pyload(url, headers, conns, seconds)

    def run(
        self,
        url: str,
        headers: dict[str, str],
        conns: int,
        seconds: float,
        server_pid: int,
        backing: tuple[int, ...] = (),
    ) -> Load:
        """One run, with the CPU the server tree, what it relies on (`backing`: root pids) and
        the rest of the machine used meanwhile."""
        procs0 = all_cpu_ticks()
        cpu0, sys0, own0 = tree_cpu_seconds(server_pid), system_busy_seconds(), own_cpu_seconds()
        back0 = sum(tree_cpu_seconds(pid) for pid in backing)
        n, nbytes, secs, errors, p50, p99 = self.once(url, headers, conns, seconds)
        cpu = tree_cpu_seconds(server_pid) - cpu0
        back = sum(tree_cpu_seconds(pid) for pid in backing) - back0
        other = system_busy_seconds() - sys0 - (own_cpu_seconds() - own0) - cpu - back
        # The kernel's network threads work for the benchmark's own traffic: not "other".
        procs1 = all_cpu_ticks()
        for pid, (comm, ticks) in procs1.items():
            if comm.startswith("ksoftirqd"):
                other -= (ticks - procs0.get(pid, (comm, 0))[1]) / CLK_TCK
        load = Load(n, nbytes, secs, errors, p50, p99, cpu, max(0.0, other), back)
        # How the work spread over the server's worker processes (all but the master).
        workers = [
            procs1[pid][1] - procs0.get(pid, ("", 0))[1]
            for pid in tree_pids(server_pid)
            if pid != server_pid and pid in procs1
        ]
        if len(workers) >= 2 and sum(workers) > 0:
            load.top_worker_share = max(workers) / sum(workers)
        if secs and other / secs > 0.10:  # say who else was busy
            skip = {os.getpid(), *tree_pids(server_pid)}
            skip.update(p for root in backing for p in tree_pids(root))
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
    notes: list[str],
    label: str,
    out: dict[tuple[str, str], Series],
    loader: Loader,
    cases: dict[tuple[str, str], Target],
    conns: int,
    seconds: float,
    warmup: float,
    rounds: int,
) -> None:
    """Warm each case up, then run `rounds` rounds, interleaving the cases within each round.

    cases: (server, case name) -> what to load; the series go to out, trouble to notes.
    """
    live = dict(cases)
    for key, target in list(live.items()):
        log(f"{label} warm-up {key[0]} {key[1]}: {target.url}")
        try:
            loader.once(target.url, target.headers, conns, warmup)
        except (BenchError, subprocess.SubprocessError) as exc:
            notes.append(f"{label} {key[0]} {key[1]}: {exc}")
            del live[key]
    for rnd in range(rounds):
        for key, target in list(live.items()):
            log(f"{label} round {rnd + 1}/{rounds} {key[0]} {key[1]}")
            try:
                load = loader.run(
                    target.url, target.headers, conns, seconds, target.pid, target.backing
                )
            except (BenchError, subprocess.SubprocessError) as exc:
                notes.append(f"{label} {key[0]} {key[1]}: {exc}")
                del live[key]
                continue
            if load.errors:
                notes.append(f"{label} {key[0]} {key[1]}: {load.errors} errors in a run")
            if load.top_worker_share > 0.85:
                notes.append(
                    f"{label} {key[0]} {key[1]} round {rnd + 1}: lopsided - one worker process "
                    f"did {load.top_worker_share:.0%} of the work ({load.rps:.0f} req/s)"
                )
            if load.other_detail:
                notes.append(
                    f"{label} {key[0]} {key[1]} round {rnd + 1}: other CPU "
                    f"{load.other_cpu_s / load.seconds * 100:.0f}%: {load.other_detail}"
                )
            out.setdefault(key, Series()).runs.append(load)


# --------------------------------------------------------------------------- pip


def pip_download(index_url: str, projects: list[str], dest: Path, timeout: float = 150) -> float:
    """Seconds `pip download --no-deps` of projects from index_url takes (isolated, no cache)."""
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
    env = child_env("PIP_", loopback=True, PIP_CONFIG_FILE="/dev/null")
    t0 = time.perf_counter()
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, check=False)
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
