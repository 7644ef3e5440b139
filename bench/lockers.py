"""(g) lockers (issue 12, goals 4 and 2): a cold `poetry lock` that reads wheels by range, and a
cold `uv pip install --no-cache` of projects with big pages; each straight against the upstream
nginx and through a freshly started pullthrough (empty data dir), best of the reps.

Its own upstream (one nginx, access log with each request's method, status, bytes sent, Range
and user agent):
- poetry's set: LOCK_PROJECTS, each with a tiny 1.0.0 wheel and a big 1.1.0 wheel (6-16 MiB of
  incompressible stored bytes, dist-info at the end as in real wheels) whose METADATA names its
  dependencies. Their pages are HTML with `#sha256=` links and no PEP 658 metadata, so poetry
  reads each wheel it picks by range (`Range: bytes=-10000`: the zip index and dist-info).
- uv's set: UV_BIG projects with pages of UV_BIG_VERSIONS versions x 21 wheels (5 CPython
  versions x 4 platforms, and py3-none-any), like boto3's or sqlalchemy's, and UV_SMALL small
  projects; PEP 691 JSON (`index.json`) and HTML, with core-metadata, requires-python, sizes,
  and absolute file URLs (PyPI's pages link to another host; pullthrough takes those as they are).
  Only the newest version's files exist (tiny valid wheels with their `.metadata`): uv fetches
  no other; the older entries carry made-up digests.

Each tool runs with a scratch HOME, XDG folders, cache and config, no keyring, its own
environment variables dropped, and HTTP(S)_PROXY at a dead loopback port (NO_PROXY=127.0.0.1).
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import HOST, VENV_BIN, BenchError, child_env, http_get, log
from bench.procfs import own_cpu_seconds, system_busy_seconds, tree_cpu_seconds
from bench.report import fmt, goal, ratio, table
from bench.servers import (
    BASE_PATH,
    NGINX_CONF,
    Procs,
    Server,
    free_port,
    start_pullthrough,
    wait_http,
)
from bench.upstream import HUGE_PLATFORMS, HUGE_PYTHONS, write_wheel

GOAL_POETRY_VS_UPSTREAM = 1.2
GOAL_UV_VS_UPSTREAM = 1.3
TIMEOUT = 300.0  # seconds, for each tool's run
SETTLE_SECONDS = 30.0  # at most, waiting for pullthrough's whole-file fetches after a lock
BUSY_WARNING = 15.0  # other %: above it the section warns that the figures are noisy

# poetry's set: name -> (MiB of the 1.1.0 wheel, its dependencies); the project needs the roots
LOCK_PROJECTS: dict[str, tuple[int, tuple[str, ...]]] = {
    "ptlock-a": (12, ("ptlock-b>=1.0", "ptlock-c")),
    "ptlock-b": (8, ("ptlock-d",)),
    "ptlock-c": (16, ()),
    "ptlock-d": (6, ()),
    "ptlock-e": (14, ("ptlock-f",)),
    "ptlock-f": (10, ()),
}
LOCK_ROOTS = ("ptlock-a", "ptlock-e")
LOCK_VERSION = "1.1.0"  # what the lock must pick
# uv's set
UV_BIG = 5
UV_SMALL = 5
UV_BIG_VERSIONS = 100
UV_SMALL_VERSIONS = 3
UV_TAGS = (
    *(f"{py}-{py}-{plat}" for py in HUGE_PYTHONS for plat in HUGE_PLATFORMS),
    "py3-none-any",
)

POETRY = "poetry lock"
UV = "uv pip install"
STRAIGHT = "upstream (nginx)"
COLD = "pullthrough (cold)"
WARM = "pullthrough (warm, ref.)"

# tab-separated: method, status, bytes sent, Range, user agent, URI
ACCESS_LOG = """\
    log_format lockers '$request_method\t$status\t$body_bytes_sent\t$http_range\t\
$http_user_agent\t$request_uri';
    access_log {prefix}/access.log lockers;
"""


# --------------------------------------------------------------------------- results


@dataclass
class Traffic:
    """Wheel GETs in the upstream's access log (or answered by pullthrough): ranges (206) and
    whole files (200), their counts and bytes."""

    ranged: int = 0
    ranged_bytes: int = 0
    whole: int = 0
    whole_bytes: int = 0

    def describe(self) -> str:
        return (
            f"{self.ranged} range GETs ({self.ranged_bytes / 1024:.0f} KiB), "
            f"{self.whole} whole-file GETs ({self.whole_bytes / 2**20:.1f} MiB)"
        )


@dataclass
class Timed:
    """A tool's run: its seconds, and the CPU the rest of the machine used meanwhile (all CPUs'
    busy time less the tool's and the servers'), in % of one CPU."""

    seconds: float
    other_pct: float


@dataclass
class Served:
    """File answers pullthrough counted (its metrics): 206s, 200s, bytes of both."""

    ranged: int
    whole: int
    sent_bytes: int

    def describe(self) -> str:
        return (
            f"{self.ranged} ranges (206), {self.whole} whole files (200), "
            f"{self.sent_bytes / 1024:.0f} KiB in all"
        )


@dataclass
class LockerResults:
    skipped: str = ""
    reps: int = 0
    # tool -> index -> seconds per rep
    times: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    wheel_bytes: int = 0  # the big wheels poetry reads, summed
    # the last rep's traffic: what poetry asked the upstream for (straight); what pullthrough
    # asked it for during the lock and once its fetches were done; what pullthrough answered
    poetry_straight: Traffic | None = None
    poetry_during: Traffic | None = None
    poetry_after: Traffic | None = None
    poetry_served: Served | None = None  # from pullthrough's metrics
    settle_s: float | None = None  # lock end -> every whole-file fetch done
    uv_files: int = 0  # files on each big page
    uv_page_bytes: dict[str, int] = field(default_factory=dict)  # one big page: html, json
    uv_upstream_gets: dict[str, int] = field(default_factory=dict)  # last rep: index -> GETs
    server_cpu: dict[str, list[float]] = field(default_factory=dict)  # tool -> pullthrough's
    # CPU seconds (gunicorn master and workers) over each cold run
    # tool -> index -> other % per rep (Timed.other_pct)
    other: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, tool: str, index: str, timed: Timed) -> None:
        self.times.setdefault(tool, {}).setdefault(index, []).append(timed.seconds)
        self.other.setdefault(tool, {}).setdefault(index, []).append(timed.other_pct)

    def ratio(self, tool: str) -> float | None:
        runs = self.times.get(tool, {})
        straight, cold = runs.get(STRAIGHT), runs.get(COLD)
        return ratio(min(cold) if cold else None, min(straight) if straight else None)


# --------------------------------------------------------------------------- the upstream


@dataclass
class LockUpstream:
    root: Path
    wheels: dict[str, Path] = field(default_factory=dict)  # poetry's 1.1.0 wheels by project
    uv_projects: list[str] = field(default_factory=list)


def _metadata(project: str, version: str, requires: tuple[str, ...]) -> bytes:
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {project}",
        f"Version: {version}",
        "Summary: pullthrough benchmark package (lockers)",
        "Requires-Python: >=3.8",
        *(f"Requires-Dist: {r}" for r in requires),
    ]
    return ("\n".join(lines) + "\n").encode()


def _wheel(
    dest: Path, project: str, version: str, requires: tuple[str, ...], payload: bytes, tag: str
) -> tuple[Path, bytes]:
    """A valid wheel: __init__.py, payload (stored), METADATA, WHEEL, RECORD; and its METADATA."""
    dist = project.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    metadata = _metadata(project, version, requires)
    pure = "true" if tag == "py3-none-any" else "false"
    wheel = f"Wheel-Version: 1.0\nGenerator: pullthrough-bench\nRoot-Is-Purelib: {pure}\n"
    entries = [(f"{dist}/__init__.py", f'__version__ = "{version}"\n'.encode(), 0)]
    if payload:
        entries.append((f"{dist}/payload.bin", payload, zipfile.ZIP_STORED))
    entries += [
        (f"{info}/METADATA", metadata, zipfile.ZIP_DEFLATED),
        (f"{info}/WHEEL", f"{wheel}Tag: {tag}\n".encode(), zipfile.ZIP_DEFLATED),
    ]
    return write_wheel(dest, project, version, entries, tag), metadata


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _html_page(project: str, links: list[str]) -> str:
    return (
        "<!DOCTYPE html>\n<html>\n  <head>\n"
        '    <meta name="pypi:repository-version" content="1.1">\n'
        f"    <title>Links for {project}</title>\n  </head>\n  <body>\n"
        f"    <h1>Links for {project}</h1>\n" + "\n".join(links) + "\n  </body>\n</html>\n"
    )


def build_lockers_upstream(root: Path, files_url: str) -> LockUpstream:
    """Both sets' files and pages under root (files/, packages/, simple/); files_url: where
    root is served, for uv's set's absolute file URLs (PyPI's pages link to another host)."""
    up = LockUpstream(root)
    files = root / "files"
    files.mkdir(parents=True)
    simple = root / "simple"
    noise = os.urandom(max(mib for mib, _ in LOCK_PROJECTS.values()) * 2**20)
    for project, (mib, requires) in LOCK_PROJECTS.items():
        links = []
        for version, size in (("1.0.0", 0), (LOCK_VERSION, mib * 2**20)):
            payload = project.encode() + noise[:size] if size else b""
            path, _ = _wheel(files, project, version, requires, payload, "py3-none-any")
            if size:
                up.wheels[project] = path
            links.append(
                f'    <a href="../../files/{path.name}#sha256={_sha(path.read_bytes())}" '
                f'data-requires-python="&gt;=3.8">{path.name}</a><br />'
            )
        (simple / project).mkdir(parents=True)
        (simple / project / "index.html").write_text(_html_page(project, links))
    big = [f"ptuvbig-{i}" for i in range(UV_BIG)]
    small = [f"ptuvsmall-{i}" for i in range(UV_SMALL)]
    for project in [*big, *small]:
        versions = UV_BIG_VERSIONS if project in big else UV_SMALL_VERSIONS
        tags = UV_TAGS if project in big else ("py3-none-any",)
        _uv_project(root, files_url, project, versions, tags)
    up.uv_projects = [*big, *small]
    names = [*LOCK_PROJECTS, *up.uv_projects]
    (simple / "index.html").write_text(
        "<!DOCTYPE html>\n<html><body>\n"
        + "".join(f'<a href="{n}/">{n}</a><br/>\n' for n in names)
        + "</body></html>\n"
    )
    return up


def _uv_project(
    root: Path, files_url: str, project: str, n_versions: int, tags: tuple[str, ...]
) -> None:
    """A PyPI-like page (HTML and PEP 691 JSON) of n_versions x tags wheels, linked by absolute
    URLs under files_url; only the newest version's files exist (with their .metadata), at
    PyPI-like paths."""
    dist = project.replace("-", "_")
    entries: list[dict[str, object]] = []
    links: list[str] = []
    versions = [f"{1 + v // 100}.{v // 10 % 10}.{v % 10}" for v in range(n_versions)]
    for v, version in enumerate(versions):
        newest = v == n_versions - 1
        meta = _metadata(project, version, ())
        meta_sha = _sha(meta)
        for i, tag in enumerate(tags):
            name = f"{dist}-{version}-{tag}.whl"
            blake = hashlib.blake2b(name.encode(), digest_size=32).hexdigest()
            rel = f"packages/{blake[:2]}/{blake[2:4]}/{blake[4:]}"
            if newest:
                folder = root / rel
                folder.mkdir(parents=True)
                path, meta = _wheel(folder, project, version, (), b"", tag)
                (folder / f"{name}.metadata").write_bytes(meta)
                data = path.read_bytes()
                sha, size = _sha(data), len(data)
            else:  # listed only: never fetched
                sha, size = _sha(name.encode()), 700 + i
            uploaded = f"20{15 + v // 25}-{1 + v % 12:02d}-{1 + v % 28:02d}T{i:02d}:17:42Z"
            entries.append(
                {
                    "core-metadata": {"sha256": meta_sha},
                    "data-dist-info-metadata": {"sha256": meta_sha},
                    "filename": name,
                    "hashes": {"sha256": sha},
                    "requires-python": ">=3.8",
                    "size": size,
                    "upload-time": uploaded,
                    "url": f"{files_url}/{rel}/{name}",
                    "yanked": False,
                }
            )
            links.append(
                f'    <a href="{files_url}/{rel}/{name}#sha256={sha}" '
                f'data-requires-python="{html.escape(">=3.8")}" '
                f'data-dist-info-metadata="sha256={meta_sha}" '
                f'data-core-metadata="sha256={meta_sha}">{name}</a><br />'
            )
    page = root / "simple" / project
    page.mkdir(parents=True)
    (page / "index.html").write_text(_html_page(project, links))
    doc = {
        "meta": {"_last-serial": 1, "api-version": "1.1"},
        "name": project,
        "files": entries,
        "versions": versions,
    }
    (page / "index.json").write_text(json.dumps(doc, separators=(",", ":")))


def start_upstream(procs: Procs, nginx: str, root: Path, work: Path, port: int) -> Server:
    """nginx (1 worker) serving root on port, with ACCESS_LOG, in work/nginx-lockers-upstream."""
    name = "nginx-lockers-upstream"
    prefix = work / name
    (prefix / "tmp").mkdir(parents=True)
    conf = prefix / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(
            workers=1,
            user_line="user root;" if os.geteuid() == 0 else "",
            prefix=prefix,
            logging=ACCESS_LOG.format(prefix=prefix),
            host=HOST,
            port=port,
            root=root,
        )
    )
    errors = prefix / "error.log"
    proc = procs.start(name, [nginx, "-p", str(prefix), "-e", str(errors), "-c", str(conf)],
                       prefix / "stdout.log")  # fmt: skip
    wait_http(f"http://{HOST}:{port}/simple/", proc, errors, timeout=15)
    return Server(name, port, proc, prefix, errors)


class AccessLog:
    """The upstream's access log (ACCESS_LOG's format) since the last mark()."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def mark(self) -> None:
        self.offset = self.path.stat().st_size if self.path.exists() else 0

    def rows(self) -> list[list[str]]:
        if not self.path.exists():
            return []
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            text = f.read().decode(errors="replace")
        return [ln.split("\t") for ln in text.splitlines() if ln.count("\t") >= 5]

    def wheels(self) -> Traffic:
        """GETs of wheels: 206 (ranges) and 200 (whole files)."""
        out = Traffic()
        for method, status, sent, _range, _agent, uri in self.rows():
            if method != "GET" or not uri.endswith(".whl"):
                continue
            if status == "206":
                out.ranged += 1
                out.ranged_bytes += int(sent)
            elif status == "200":
                out.whole += 1
                out.whole_bytes += int(sent)
        return out

    def gets(self) -> int:
        return sum(1 for row in self.rows() if row[0] == "GET")


# --------------------------------------------------------------------------- the tools


def _env(home: Path, drop: tuple[str, ...], dead_proxy: str, **extra: str) -> dict[str, str]:
    base = child_env("PULLTHROUGH_", loopback=True)
    env = {k: v for k, v in base.items() if not k.startswith(drop)}
    proxies = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")
    return {
        **env,
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
        **{name: dead_proxy for name in proxies},
        **{name.lower(): dead_proxy for name in proxies},
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        "NO_COLOR": "1",
        **extra,
    }


def _run(
    argv: list[str], env: dict[str, str], cwd: Path, what: str, servers: tuple[int, ...]
) -> Timed:
    """The tool's run, timed; servers: the pids whose process trees' CPU is not "other"."""
    busy, mine = system_busy_seconds(), own_cpu_seconds()
    theirs = sum(tree_cpu_seconds(pid) for pid in servers)
    t0 = time.perf_counter()
    r = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True,
                       timeout=TIMEOUT, stdin=subprocess.DEVNULL, check=False)  # fmt: skip
    elapsed = time.perf_counter() - t0
    theirs = sum(tree_cpu_seconds(pid) for pid in servers) - theirs
    other = system_busy_seconds() - busy - (own_cpu_seconds() - mine) - theirs
    if r.returncode != 0:
        out = (r.stdout + r.stderr).strip().splitlines()
        raise BenchError(f"{what} failed ({r.returncode}):\n" + "\n".join(out[-15:]))
    return Timed(elapsed, max(0.0, other) / elapsed * 100)


def poetry_lock(
    index_url: str, folder: Path, up: LockUpstream, dead_proxy: str, servers: tuple[int, ...]
) -> Timed:
    """Seconds of a cold `poetry lock` (fresh cache and config) of a project needing LOCK_ROOTS
    from index_url (its only, primary source); the lock checked: every project at LOCK_VERSION
    with the upstream's digest."""
    project = folder / "project"
    project.mkdir(parents=True)
    deps = ", ".join(f'"{d}"' for d in LOCK_ROOTS)
    (project / "pyproject.toml").write_text(
        f'[project]\nname = "ptlock-app"\nversion = "0.1.0"\nrequires-python = ">=3.11"\n'
        f"dependencies = [{deps}]\n\n[tool.poetry]\npackage-mode = false\n\n"
        f'[[tool.poetry.source]]\nname = "bench"\nurl = "{index_url}"\npriority = "primary"\n'
    )
    home = folder / "home"
    env = _env(
        home,
        ("POETRY_", "XDG_", "VIRTUAL_ENV", "CONDA_"),
        dead_proxy,
        POETRY_CONFIG_DIR=str(home / "poetry-config"),
        POETRY_CACHE_DIR=str(home / "poetry-cache"),
        POETRY_DATA_DIR=str(home / "poetry-data"),
        POETRY_KEYRING_ENABLED="false",
        POETRY_NO_INTERACTION="1",
        POETRY_VIRTUALENVS_USE_POETRY_PYTHON="true",
        POETRY_VIRTUALENVS_IN_PROJECT="true",
        POETRY_REQUESTS_TIMEOUT="60",
    )
    argv = [str(VENV_BIN / "poetry"), "--no-interaction", "--no-ansi", "lock"]
    timed = _run(argv, env, project, f"poetry lock via {index_url}", servers)
    lock = tomllib.loads((project / "poetry.lock").read_text())
    got = {
        p["name"]: (p["version"], sorted(f["hash"] for f in p["files"])) for p in lock["package"]
    }
    want = {
        p: (LOCK_VERSION, [f"sha256:{_sha(path.read_bytes())}"]) for p, path in up.wheels.items()
    }
    if got != want:
        raise BenchError(f"poetry lock via {index_url}: locked {got}, not {want}")
    return timed


def uv_install(
    index_url: str, folder: Path, projects: list[str], dead_proxy: str, servers: tuple[int, ...]
) -> Timed:
    """Seconds of `uv pip install --no-cache` of projects from index_url into an empty venv
    (made first, untimed); checked: every project installed at its newest version."""
    folder.mkdir(parents=True)
    venv = folder / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=60, capture_output=True)  # fmt: skip
    home = folder / "home"
    env = _env(
        home,
        ("UV_", "XDG_", "VIRTUAL_ENV", "CONDA_", "PIP_"),
        dead_proxy,
        UV_NO_CONFIG="1",
        UV_CACHE_DIR=str(home / "uv-cache"),
        UV_PYTHON_DOWNLOADS="never",
        UV_NO_PROGRESS="1",
    )
    argv = [str(VENV_BIN / "uv"), "pip", "install", "--no-cache", "--python",
            str(venv / "bin" / "python"), "--index-url", index_url, *projects]  # fmt: skip
    timed = _run(argv, env, folder, f"uv pip install via {index_url}", servers)
    installed = {p.name.split("-")[0] for p in venv.glob("lib/python3*/site-packages/*.dist-info")}
    want = {p.replace("-", "_") for p in projects}
    if installed != want:
        raise BenchError(f"uv pip install via {index_url}: installed {installed}, not {want}")
    return timed


# --------------------------------------------------------------------------- running it


def _served(server: Server) -> Served:
    """Wheel answers pullthrough counted (its /metrics): 206s, 200s, and the file bytes sent."""
    status, _, body = http_get(f"{server.url}/metrics")
    if status != 200:
        raise BenchError(f"{server.url}/metrics: HTTP {status}")
    text = body.decode()

    def value(pattern: str) -> float:
        return sum(float(v) for v in re.findall(pattern + r"\s+([0-9.e+]+)$", text, re.M))

    return Served(
        int(value(r'pullthrough_http_requests_total\{code="206",kind="file"\}')),
        int(value(r'pullthrough_http_requests_total\{code="200",kind="file"\}')),
        int(value(r"pullthrough_file_bytes_served_total")),
    )


def run_lockers(
    procs: Procs, nginx: str, work: Path, reps: int, workers: int, threads: int,
    res: LockerResults,
) -> None:  # fmt: skip
    """(g): the upstream, then per rep: poetry straight, poetry through a fresh pullthrough,
    uv straight, uv through a fresh pullthrough."""
    for tool in ("poetry", "uv"):
        if not (VENV_BIN / tool).exists():
            raise BenchError(f"{VENV_BIN / tool} is missing (the `test` extra installs it)")
    res.reps = reps
    log("(g) building the lockers' upstream")
    t0 = time.perf_counter()
    port = free_port()  # the uv pages' absolute links name it
    up = build_lockers_upstream(work / "lockers-upstream", f"http://{HOST}:{port}")
    res.wheel_bytes = sum(p.stat().st_size for p in up.wheels.values())
    page = up.root / "simple" / up.uv_projects[0]
    res.uv_page_bytes = {ext: (page / f"index.{ext}").stat().st_size for ext in ("html", "json")}
    res.uv_files = len(json.loads((page / "index.json").read_text())["files"])
    log(f"(g) built in {time.perf_counter() - t0:.1f}s")
    upstream = start_upstream(procs, nginx, up.root, work, port)
    access = AccessLog(upstream.home / "access.log")
    upstream_url = f"{upstream.url}/simple/"
    dead = f"http://{HOST}:{free_port()}"
    runs = work / "lockers"
    ups = (upstream.pid,)
    log("(g) warm-up: poetry lock and uv pip install straight (untimed)")
    poetry_lock(upstream_url, runs / "poetry-warmup", up, dead, ups)
    uv_install(upstream_url, runs / "uv-warmup", up.uv_projects, dead, ups)
    tools: dict[str, Callable[[str, Path, tuple[int, ...]], Timed]] = {
        POETRY: lambda index, folder, pids: poetry_lock(index, folder, up, dead, pids),
        UV: lambda index, folder, pids: uv_install(index, folder, up.uv_projects, dead, pids),
    }
    for rep in range(reps):
        last = rep == reps - 1
        for tool, run in tools.items():
            slug = tool.split()[0]
            log(f"(g) rep {rep + 1}/{reps}: {tool}, upstream")
            access.mark()
            res.add(tool, STRAIGHT, run(upstream_url, runs / f"{slug}-up-{rep}", ups))
            if last and tool == POETRY:
                res.poetry_straight = access.wheels()
            if last and tool == UV:
                res.uv_upstream_gets[STRAIGHT] = access.gets()
            log(f"(g) rep {rep + 1}/{reps}: {tool}, fresh pullthrough (then warm)")
            server = start_pullthrough(
                procs, work, f"pullthrough-{slug}-{rep}", upstream_url, workers, threads
            )
            try:
                index = f"{server.url}/pypi/{BASE_PATH}/simple/"
                pids = (upstream.pid, server.pid)
                access.mark()
                cpu = tree_cpu_seconds(server.pid)
                res.add(tool, COLD, run(index, runs / f"{slug}-pt-{rep}", pids))
                res.server_cpu.setdefault(tool, []).append(tree_cpu_seconds(server.pid) - cpu)
                if last and tool == POETRY:
                    res.poetry_during = access.wheels()
                    res.poetry_served = _served(server)
                if last and tool == UV:
                    res.uv_upstream_gets[COLD] = access.gets()
                if tool == POETRY:  # its whole-file fetches for the cache, before the warm run
                    settled = _settle(access, len(up.wheels))
                    if last:
                        res.settle_s, res.poetry_after = settled, access.wheels()
                res.add(tool, WARM, run(index, runs / f"{slug}-pt-warm-{rep}", pids))
            finally:
                procs.stop_one(server.proc)
    procs.stop_one(upstream.proc)
    shutil.rmtree(runs, ignore_errors=True)


def _settle(access: AccessLog, wheels: int) -> float | None:
    """Seconds until the upstream has sent `wheels` whole files (pullthrough's fetches for its
    cache, alongside the ranges), at most SETTLE_SECONDS; None if they did not all come."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < SETTLE_SECONDS:
        if access.wheels().whole >= wheels:
            return time.monotonic() - t0
        time.sleep(0.1)
    return None


def run_lockers_safely(
    procs: Procs, nginx: str, work: Path, quick: bool, workers: int, threads: int,
    res: LockerResults,
) -> None:  # fmt: skip
    try:
        run_lockers(procs, nginx, work, 1 if quick else 3, workers, threads, res)
    except (BenchError, OSError, subprocess.SubprocessError, tomllib.TOMLDecodeError) as exc:
        log(f"(g) failed: {exc}")
        res.notes.append(f"(g) aborted: {exc}")


# --------------------------------------------------------------------------- report


def _times_table(res: LockerResults, tool: str) -> None:
    runs = res.times.get(tool, {})
    straight = runs.get(STRAIGHT)
    best_up = min(straight) if straight else None
    other = res.other.get(tool, {})
    rows = [
        [name, fmt(min(t), ".2f"), " ".join(f"{x:.2f}" for x in t),
         fmt(ratio(min(t), best_up), ".2f"), fmt(max(other.get(name, [0.0])))]
        for name, t in runs.items()
    ]  # fmt: skip
    if rows:
        print(table(["index", "best s", "all runs s", "vs upstream", "other % (max)"], rows))
    else:
        print("  not measured (see Notes)")
    busiest = max((max(o) for o in other.values() if o), default=0.0)
    if busiest > BUSY_WARNING:
        print(
            f"  WARNING: other processes took up to {busiest:.0f}% CPU during these runs: the "
            "figures are noisy; rerun on a quiet machine."
        )
    if cpu := res.server_cpu.get(tool):
        print(
            "  pullthrough's CPU over each cold run (master and workers): "
            + " ".join(f"{c:.2f}" for c in cpu)
            + " s"
        )


def print_lockers_section(res: LockerResults) -> None:
    print()
    if res.skipped:
        print(f"(g) lockers: skipped ({res.skipped})")
        return
    sizes = ", ".join(f"{LOCK_PROJECTS[p][0]}" for p in LOCK_PROJECTS)
    print(
        f"(g) lockers: cold `poetry lock` of {len(LOCK_PROJECTS)} projects (wheels of {sizes} "
        f"MiB = {res.wheel_bytes / 2**20:.0f} MiB; HTML pages without PEP 658 metadata, so "
        f"poetry reads wheels by range), best of {res.reps}"
    )
    _times_table(res, POETRY)
    if res.poetry_straight is not None:
        print(f"  straight, poetry asked the upstream for: {res.poetry_straight.describe()}")
    if res.poetry_served is not None:
        print(f"  through pullthrough, poetry got:         {res.poetry_served.describe()}")
    if res.poetry_during is not None:
        print(f"  pullthrough asked the upstream, during the lock: {res.poetry_during.describe()}")
    if res.poetry_after is not None:
        settled = "not within 30 s" if res.settle_s is None else f"{res.settle_s:.1f}s later"
        print(f"    and once its fetches for the cache were done ({settled}): "
              f"{res.poetry_after.describe()}")  # fmt: skip
    print()
    print(
        f"(g) lockers: cold `uv pip install --no-cache` of {UV_BIG + UV_SMALL} projects into an "
        f"empty venv ({UV_BIG} with pages of {res.uv_files:,} files: JSON "
        f"{res.uv_page_bytes.get('json', 0) / 1e6:.1f} MB, HTML "
        f"{res.uv_page_bytes.get('html', 0) / 1e6:.1f} MB; core-metadata advertised), "
        f"best of {res.reps}"
    )
    _times_table(res, UV)
    if res.uv_upstream_gets:
        gets = ", ".join(f"{k} {v}" for k, v in res.uv_upstream_gets.items())
        print(f"  upstream GETs in the last rep: {gets}")
    served = res.poetry_served
    if served is not None and served.whole:
        res.notes.append(
            f"(g) through pullthrough poetry got {served.whole} whole wheels, not only ranges"
        )
    for note in res.notes:
        print(f"  - {note}")


def print_lockers_goals(res: LockerResults) -> None:
    r = res.ratio(POETRY)
    goal(
        f"(g) cold poetry lock <= {GOAL_POETRY_VS_UPSTREAM:g}x straight",
        None if r is None else r <= GOAL_POETRY_VS_UPSTREAM,
        f"x{fmt(r, '.2f')}",
    )
    r = res.ratio(UV)
    goal(
        f"(g) cold uv pip install, big pages <= {GOAL_UV_VS_UPSTREAM:g}x straight",
        None if r is None else r <= GOAL_UV_VS_UPSTREAM,
        f"x{fmt(r, '.2f')}",
    )


def print_lockers_report(res: LockerResults, total: float) -> None:
    """`bench/run.py --lockers-only`: (g) alone, with its goal lines and notes."""
    print()
    print("pullthrough benchmark - (g) lockers only")
    print_lockers_section(res)
    print()
    print("Goals")
    print_lockers_goals(res)
    print()
    print(f"total {total:.0f}s")
