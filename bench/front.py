"""(a) through the nginx front users deploy (issue 12, goal 6): deploy/nginx.conf, page cache
included, run by Debian's nginx in front of (a)'s warm pullthrough, loaded like (a)'s other
cases in the same interleaved rounds, next to nginx serving the same bytes as static files.

The front is the tests' own launcher, tests/support/nginx.py (`NginxFront`: the deploy site in
the frame of Debian's /etc/nginx/nginx.conf, 2 workers, only the listen address, the upstream
address and the log and cache paths changed), so the benchmark runs that very file. It puts
tests/ on sys.path as bench/s3.py does.
"""

from __future__ import annotations

import sys
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the `support` package

from bench.common import BenchError, http_get, log, split_url
from bench.load import Target
from bench.report import fmt, goal, ratio, table
from bench.results import RunResults
from bench.servers import Server
from support.nginx import NginxFront

__all__ = [
    "FRONT",
    "GOAL_FRONT_VS_STATIC",
    "front_cases",
    "print_front_goals",
    "print_front_section",
    "start_front",
]

FRONT = "pullthrough+nginx-front"  # the server name of its rows in (a)
GOAL_FRONT_VS_STATIC = 0.5  # of nginx's static req/s on the same page bytes


def start_front(stack: ExitStack, nginx: str, work: Path, pt: Server) -> NginxFront:
    """The deploy front in work/nginx-front before `pt`, stopped when `stack` closes."""
    log("(a) starting nginx with deploy/nginx.conf in front of pullthrough")
    try:
        return stack.enter_context(NginxFront(nginx, work / "nginx-front", pt.port))
    except (RuntimeError, OSError) as exc:
        raise BenchError(f"the nginx front did not start: {exc}") from exc


def front_cases(
    front: NginxFront, pt: Server, page_url: str, formats: dict[str, str]
) -> dict[tuple[str, str], Target]:
    """(a)'s cases through the front, per format: its page URL on nginx, nginx's pid (the
    server), pullthrough's (what it relies on: a page per entry and second). Checked first: 200,
    and the second GET answered from nginx's cache."""
    _, _, path = split_url(page_url)
    url = front.url + path
    assert front.proc is not None
    cases = {}
    for fmt_name, accept in formats.items():
        statuses = []
        for _ in range(2):
            status, headers, _body = http_get(url, {"Accept": accept})
            if status != 200:
                raise BenchError(f"{url} ({fmt_name}) through the front: HTTP {status}")
            statuses.append(headers.get("x-cache-status", "(none)"))
        if statuses[-1] != "HIT":
            raise BenchError(f"{url} ({fmt_name}): not from nginx's cache: {statuses}")
        cases[(FRONT, fmt_name)] = Target(url, {"Accept": accept}, front.proc.pid, (pt.pid,))
    return cases


def _ratios(res: RunResults) -> dict[str, float | None]:
    """Per format measured through the front: its req/s over nginx static's."""
    out = {}
    for (server, fmt_name), se in res.pages.items():
        if server == FRONT:
            static = res.pages.get(("nginx-static", fmt_name))
            out[fmt_name] = ratio(se.rps, static.rps if static else None)
    return out


def print_front_section(res: RunResults) -> None:
    """The front's rows of (a) against nginx static."""
    rows = []
    for (server, fmt_name), se in res.pages.items():
        if server != FRONT:
            continue
        static = res.pages.get(("nginx-static", fmt_name))
        r = ratio(se.rps, static.rps if static else None)
        n = sum(run.requests for run in se.runs)
        app_us = sum(run.backing_cpu_s for run in se.runs) / n * 1e6 if n else None
        rows.append(
            [fmt_name, fmt(se.rps), fmt(static.rps if static else None), fmt(r, ".2f"),
             fmt(se.p50_ms, ".2f"), fmt(se.cpu_us_per_req), fmt(app_us, ".1f"), str(se.errors)]
        )  # fmt: skip
    print()
    print(
        "(a) through the deploy nginx front (deploy/nginx.conf, page cache: 1 s, then asked "
        "of the app again), same rounds as (a)"
    )
    if rows:
        print(
            table(
                ["format", "req/s", "static req/s", "vs static", "p50 ms", "nginx CPU us/req",
                 "app CPU us/req", "errors"],
                rows,
            )
        )  # fmt: skip
    else:
        print("  not measured (see Notes)")


def print_front_goals(res: RunResults) -> None:
    """Goal 6's line: the worse format's ratio against GOAL_FRONT_VS_STATIC."""
    ratios = _ratios(res)
    measured = [r for r in ratios.values() if r is not None]
    goal(
        f"(a) via nginx front: req/s >= {GOAL_FRONT_VS_STATIC:.0%} of nginx static",
        None if len(measured) < 2 else min(measured) >= GOAL_FRONT_VS_STATIC,
        ", ".join(f"{k} x{fmt(r, '.2f')}" for k, r in ratios.items()) or "x n/a",
    )
