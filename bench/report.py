"""What the benchmarks print: tables, ratios, goal lines (MET / NOT MET) and notes."""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable, Sequence

from bench.load import PARALLEL_FILES, Series
from bench.results import Case, RunResults, SyncResults
from bench.sync_api import THREADS, WORKERS, sync_worker_pid
from bench.upstream import BIG_SIZE, HUGE_PROJECT, N_PROJECTS, PAGE_PROJECT, PAGE_PROJECT_VERSIONS

GOAL_RPS_VS_PROXPI = 3.0
GOAL_CPU_US = 200.0  # issue 12, goal 5
GOAL_MBS_VS_NGINX = 0.90
GOAL_PIP_VS_UPSTREAM = 1.2
GOAL_BIG_PAGE_VS_UPSTREAM = 1.5


def fmt(x: float | None, spec: str = ".0f") -> str:
    if x is None or x != x:  # None or NaN
        return "n/a"
    return format(x, spec)


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not b or a != a or b != b:
        return None
    return a / b


def mib(kib: int | None) -> str:
    return "n/a" if not kib else f"{kib / 1024:.0f}"


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


def goal(label: str, ok: bool | None, detail: str) -> None:
    verdict = "n/a (not measured)" if ok is None else ("MET" if ok else "NOT MET")
    print(f"  {label:<52} {verdict:<8}  {detail}")


def print_notes(notes: list[str]) -> None:
    if notes:
        print()
        print("Notes")
        for note in notes:
            print(f"  - {note}")


# --------------------------------------------------------------------------- bench/run.py


def print_run_report(
    res: RunResults,
    seconds: float,
    rounds: int,
    used_wrk: bool,
    wrk_files: bool,
    total: float,
    pip_reps: int,
    extra: Sequence[tuple[Callable[[], None], Callable[[], None]]] = (),
) -> None:
    """extra: more sections, each (print its tables, print its goal lines)."""
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
    print_parallel_section(res)
    print_s3_section(res, pip_reps)
    print_big_page_section(res, pip_reps)
    for section, _ in extra:
        section()
    print()
    print(
        "CPU % = the server's process tree (100 = one core); other % = the rest of the machine "
        "except the load generator (should be ~0)."
    )
    loads = [*res.pages.values(), *res.files.values(), *([res.s3.warm] if res.s3.warm else [])]
    busiest = max((se.other_pct for se in loads), default=0)
    if busiest > 15:
        print(
            f"WARNING: other processes took up to {busiest:.0f}% CPU during the load runs "
            "(see Notes): the figures are noisy; rerun on a quiet machine."
        )
    print()
    print("Goals")
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
        floor = res.pages.get(("gunicorn-constant", fmt_name))
        under = (
            f" (gunicorn alone, a constant app: {fmt(floor.cpu_us_per_req)} us)" if floor else ""
        )
        goal(
            f"(a) {fmt_name}: server CPU <= {GOAL_CPU_US:g} us/request",
            None if cpu is None else cpu <= GOAL_CPU_US,
            f"{fmt(cpu)} us{under}",
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
    big_ratios = big_page_ratios(res, res.big.cold)
    relay_ratios = big_page_ratios(res, res.big.relay)
    worst = max((r for r in big_ratios.values() if r is not None), default=None)
    relay = ", ".join(f"{k} x{fmt(r, '.2f')}" for k, r in relay_ratios.items())
    goal(
        f"(e) cold big page <= {GOAL_BIG_PAGE_VS_UPSTREAM:g}x upstream",
        None
        if worst is None or None in big_ratios.values()
        else worst <= GOAL_BIG_PAGE_VS_UPSTREAM,
        (", ".join(f"{k} x{fmt(r, '.2f')}" for k, r in big_ratios.items()) or "x n/a")
        + (f" (a proxy that only relays the bytes: {relay})" if relay else ""),
    )
    for _, goals in extra:
        goals()
    print_notes(res.notes)
    print()
    print(f"total {total:.0f}s")


def print_parallel_section(res: RunResults) -> None:
    """(c)'s reference line: bursts of parallel cold files (no goal of its own)."""
    if not res.parallel:
        return
    print()
    print(f"(c) the small projects' files, {PARALLEL_FILES} GETs at once: median ms per burst")
    straight = res.parallel.get("upstream (nginx)")
    best_straight = min(straight) if straight else None
    rows = [
        [source, fmt(min(runs) * 1000, ".1f"), " ".join(f"{t * 1000:.1f}" for t in runs),
         fmt(ratio(min(runs), best_straight), ".2f")]
        for source, runs in res.parallel.items()
    ]  # fmt: skip
    print(table(["source", "best ms", "all runs ms", "vs upstream"], rows))


def print_s3_section(res: RunResults, pip_reps: int) -> None:
    """(d): pullthrough's files on S3 against local disk; local and nginx rows are (b)'s, (c)'s."""
    s3 = res.s3
    print()
    print(
        "(d) files on S3 (SeaweedFS `weed server` on 127.0.0.1, path-style, files streamed "
        "through pullthrough) vs local disk"
    )
    if s3.skipped:
        print(f"  skipped: {s3.skipped}")
        return
    local = res.files.get(("pullthrough", "file"))
    ng = res.files.get(("nginx-static", "file"))
    print(
        f"warm download of the {BIG_SIZE / 2**20:.0f} MiB wheel, 4 keep-alive connections, "
        "in (b)'s rounds (local disk and nginx: (b)'s rows)"
    )
    rows = []
    warm: list[tuple[str, Series | None]] = [
        ("pullthrough, local disk", local),
        ("pullthrough, S3", s3.warm),
        ("nginx-static", ng),
    ]
    for name, se in warm:
        if se is None:
            continue
        rows.append(
            [name, fmt(se.mbps), se.spread("mbps"), fmt(se.rps, ".1f"), fmt(se.cpu_pct),
             fmt(se.backing_pct) if se is s3.warm else "-", fmt(se.other_pct),
             fmt(ratio(se.mbps, local.mbps if local else None), ".3f"),
             fmt(ratio(se.mbps, ng.mbps if ng else None), ".3f"), str(se.errors)]
        )  # fmt: skip
    if rows:
        print(
            table(
                ["server", "MB/s", "spread", "files/s", "CPU %", "S3 server CPU %", "other %",
                 "vs local", "vs nginx", "errors"],
                rows,
            )
        )  # fmt: skip
    print()
    print(
        f"cold: freshly started servers (empty data dir, new empty bucket), best of {pip_reps}; "
        "the upstream straight for comparison"
    )
    cases = [
        (
            f"first fetch of the {BIG_SIZE / 2**20:.0f} MiB wheel",
            s3.first_fetch.get("upstream (nginx)"),
            s3.first_fetch.get("local disk"),
            s3.first_fetch.get("S3"),
        ),
        (
            f"pip download, {N_PROJECTS} projects",
            res.pip.get("upstream (nginx)"),
            res.pip.get("pullthrough (cold)"),
            s3.pip.get("cold"),
        ),
        (
            "the same pip again (warm, ref.)",
            res.pip.get("upstream (nginx)"),
            res.pip.get("pullthrough (warm, ref.)"),
            s3.pip.get("warm"),
        ),
    ]
    rows = []
    for name, up_runs, local_runs, s3_runs in cases:
        up_s, local_s, s3_s = (min(r) if r else None for r in (up_runs, local_runs, s3_runs))
        rows.append(
            [name, fmt(up_s, ".3f"), fmt(local_s, ".3f"), fmt(s3_s, ".3f"),
             fmt(ratio(s3_s, local_s), ".2f"), fmt(ratio(local_s, up_s), ".2f"),
             fmt(ratio(s3_s, up_s), ".2f"),
             " ".join(f"{t:.2f}" for t in local_runs or []) or "-",
             " ".join(f"{t:.2f}" for t in s3_runs or []) or "-"]
        )  # fmt: skip
    print(
        table(
            ["case (seconds)", "upstream", "local", "S3", "S3/local", "local vs up",
             "S3 vs up", "local runs", "S3 runs"],
            rows,
        )
    )  # fmt: skip


def big_page_ratios(res: RunResults, runs: dict[str, list[float]]) -> dict[str, float | None]:
    """(e): format -> a server's best cold time (runs: format -> seconds per rep) over the
    upstream's best; None for a format measured on one side only (so that a format whose
    every cold GET failed cannot leave the goal MET on the other's figure alone)."""
    up = res.big.upstream
    return {
        fmt_name: ratio(min(runs[fmt_name]), min(up[fmt_name]))
        if runs.get(fmt_name) and up.get(fmt_name)
        else None
        for fmt_name in dict.fromkeys([*up, *runs])
    }


def print_big_page_section(res: RunResults, reps: int) -> None:
    """(e): the big project page, cold against the upstream (pullthrough; for reference the
    relay floor and proxpi), and warm with and without gzip."""
    big = res.big
    print()
    sizes = ", ".join(f"{k} {v / 1e6:.2f} MB" for k, v in big.upstream_sizes.items())
    print(
        f"(e) big project page '{HUGE_PROJECT}' ({big.files} files; upstream's page {sizes or 'n/a'})"
    )
    if big.skipped:
        print(f"  skipped: {big.skipped}")
        return
    print(
        "cold: first GET through a freshly started server (pullthrough: empty data dir), new "
        f"connection, best of {reps}; upstream: the page straight from nginx, best of a few GETs "
        "per rep; relay-floor: gunicorn (pullthrough's settings) + requests, relaying the "
        "upstream's bytes whole"
    )
    rows = []
    for fmt_name in dict.fromkeys([*big.upstream, *big.cold, *big.relay, *big.proxpi]):
        up = big.upstream.get(fmt_name)
        up_s = min(up) if up else None
        servers = [
            ("upstream (nginx)", up),
            ("pullthrough (cold)", big.cold.get(fmt_name)),
            ("relay-floor", big.relay.get(fmt_name)),
            ("proxpi (cold)", big.proxpi.get(fmt_name)),
        ]
        for server, runs in servers:
            if not runs:
                continue
            rows.append(
                [fmt_name, server, fmt(min(runs) * 1e3, ".1f"),
                 fmt(ratio(min(runs), up_s), ".2f"), " ".join(f"{t * 1e3:.0f}" for t in runs)]
            )  # fmt: skip
    if rows:
        print(table(["format", "server", "best ms", "vs upstream", "all runs ms"], rows))
    if not big.sizes:
        return
    print()
    print(
        f"warm, one keep-alive connection: bytes as sent and the median of {big.warm_requests} "
        "GETs per encoding (alternating); first gzip = the first gzip GET, which compresses"
    )
    rows = []
    for fmt_name in big.first_gzip:
        plain, packed = big.sizes.get((fmt_name, "identity")), big.sizes.get((fmt_name, "gzip"))
        t_plain, t_packed = big.warm.get((fmt_name, "identity")), big.warm.get((fmt_name, "gzip"))
        rows.append(
            [fmt_name, fmt(plain, ",d") if plain else "n/a", fmt(packed, ",d") if packed else "n/a",
             fmt(ratio(packed, plain), ".3f"), fmt(t_plain and t_plain * 1e3, ".2f"),
             fmt(t_packed and t_packed * 1e3, ".2f"), fmt(ratio(t_packed, t_plain), ".2f"),
             fmt(big.first_gzip[fmt_name] * 1e3, ".1f")]
        )  # fmt: skip
    print(
        table(
            ["format", "identity B", "gzip B", "gzip/identity", "identity ms", "gzip ms",
             "time gzip/identity", "first gzip ms"],
            rows,
        )
    )  # fmt: skip


# --------------------------------------------------------------------------- bench/sync.py


def upstream_summary(counts: dict[str, int]) -> tuple[str, str]:
    """("200:5001 304:3", "5004/5004"): statuses, and requests/connections."""
    statuses = {k: v for k, v in counts.items() if k != "conns"}
    text = " ".join(f"{k}:{v}" for k, v in sorted(statuses.items())) or "-"
    return text, f"{sum(statuses.values())}/{counts.get('conns', 0)}"


def print_sync_report(res: SyncResults, n_versions: int, reps: int, total: float) -> None:
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
    for sync, changed in ((m.first, m.changed_first), (m.again, m.changed_again)):
        if sync is None:
            continue
        statuses, conns = upstream_summary(sync.upstream)
        rows.append(
            [sync.label, fmt(sync.task_s, ".2f"), fmt(sync.wall_s, ".2f"), fmt(sync.cpu_s, ".2f"),
             str(sync.files), changed, statuses, conns,
             f"pid {sync_worker_pid(sync.worker) or '?'}", sync.state]
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
    for case in [*res.cases, m.first, m.again]:
        if case is not None and case.error:
            res.notes.append(f"{case.label}: {case.error}")
    print_notes(res.notes)
    print()
    print(
        "task s = the task's started_at -> finished_at; wall s = POST sync/ -> `completed` seen "
        "by polling every 50 ms (includes queueing); server CPU s = gunicorn master + workers "
        "over wall s; files/s, MB/s = files downloaded / task s; "
        "req/conns = requests the upstream nginx served / TCP connections they came on."
    )
    print(f"total {total:.0f}s")
