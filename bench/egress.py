"""(h) the egress setup: what a corporate proxy's screening costs the pages it builds.

(e)'s upstream, read through an index of its own, egress/simple/: the upstream's projects plus
LIST_NAMES generated names (a project list of real size), each real project's folder a link to
its folder in simple/ (and egress/packages/ a link to packages/, for the big page's relative
links). Per rep and format, two freshly started servers (empty data dirs):
  - plain: no filter, policy, blocklist or advisory;
  - egress: an allow-list (ALLOWED names, a pattern, the big project from a version on) and
    excludes, a freeze (exclude_newer), a BLOCKLIST_SIZE-entry blocklist, and OSV advisories
    (ADVISORIES records, BIG_ADVISORIES on the big page, one malicious) imported with
    `pullthrough advisories import` and held with hold_advisories.
Through each: the big page's first GET, then the project list's first GET, new connections.
A warm page is sent from its rendering, so screening costs only where a page is built: these.

Each answer is checked: the big page lists exactly the files the rules leave and the list
exactly the names, both counted here from the upstream's own files by the rules as stated in
this module (packaging's versions and specifiers, fnmatch for the patterns), not by pullthrough.
"""

from __future__ import annotations

import fnmatch
import functools
import json
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from bench.common import PULLTHROUGH, BenchError, child_env, log, timed_page
from bench.report import fmt, ratio, table
from bench.results import RunResults
from bench.servers import BASE_PATH, Procs, start_pullthrough
from bench.upstream import HUGE_PROJECT, Upstream

__all__ = ["print_egress_section", "run_egress"]

ROOT = "egress"  # this case's index is <ROOT>/simple/ on the upstream
LIST_NAMES = 100_000  # generated names on its project list
ALLOWED = 500  # of them on the allow-list, by name
EXCLUDED = 100  # of those, excluded again
BLOCKLIST_SIZE = 1_000
ADVISORIES = 180
BIG_ADVISORIES = 80  # of them on the big project (half as ranges, half as version lists)
ALLOWED_PATTERN = "ptbench-0*"  # the upstream's small projects ptbench-00..09; not the big one
BIG_FROM = "1.0.5"  # the big project is allowed from this version on
BIG_EXCLUDED = "1.0.8"
BIG_BLOCKED = ("==1.1.1", ">=1.3.0,<1.3.5")  # the big project's blocklist entries by version
FREEZE = "2021-01-01T00:00:00Z"  # exclude_newer: holds the big project's 50 newest versions
SETUPS = ("plain", "egress")  # EgressResults' setups


def _name(i: int) -> str:
    return f"ptegress-{i:06d}"


ALLOWED_NAMES = [_name(i * (LIST_NAMES // ALLOWED)) for i in range(ALLOWED)]

_ALLOWED, _EXCLUDED = frozenset(ALLOWED_NAMES), frozenset(ALLOWED_NAMES[:EXCLUDED])


@dataclass(frozen=True)
class Screen:
    """The egress setup's rules, as written to the server's configuration and the advisories'
    folder, and what they leave of the big page and the list (`expected`)."""

    versions: tuple[str, ...]  # the big project's, oldest first
    blocked_file: str  # one of its files, on the blocklist by filename

    @property
    def advised(self) -> tuple[list[str], list[str], str]:
        """The big project's versions the advisories affect: by range, by version list, and
        the one a malicious-package record names (three disjoint sets)."""
        ranged = [self.versions[10 + 3 * k] for k in range(BIG_ADVISORIES // 2)]
        listed = [self.versions[11 + 3 * k] for k in range(BIG_ADVISORIES // 2)]
        return ranged, listed, self.versions[12]

    def remote_config(self) -> str:
        includes = [*ALLOWED_NAMES, ALLOWED_PATTERN, f"{HUGE_PROJECT}>={BIG_FROM}"]
        excludes = [*ALLOWED_NAMES[:EXCLUDED], f"{HUGE_PROJECT}=={BIG_EXCLUDED}"]
        return (
            f"includes = {json.dumps(includes)}\nexcludes = {json.dumps(excludes)}\n"
            f'exclude_newer = "{FREEZE}"\n'
        )

    def distribution_config(self) -> str:
        others = BLOCKLIST_SIZE - len(BIG_BLOCKED) - 1
        forms = ("evil-{i}", "typo{i}-*", "lib{i}==1.{i}", "lib{i}-1.0-py3-none-any.whl")
        entries = [forms[i % len(forms)].format(i=i) for i in range(others)]
        entries += [f"{HUGE_PROJECT}{spec}" for spec in BIG_BLOCKED] + [self.blocked_file]
        return f"blocklist = {json.dumps(entries)}\nhold_advisories = true\n"

    def write_advisories(self, folder: Path) -> None:
        """ADVISORIES OSV records: BIG_ADVISORIES on the big project (each affects one of its
        versions), one malicious-package record naming one more, the rest on listed names."""
        folder.mkdir()
        ranged, listed, malicious = self.advised
        after = dict(zip(self.versions, self.versions[1:], strict=False))
        affected: list[tuple[str, str, dict[str, object]]] = []
        for v in ranged:
            events = [{"introduced": v}, {"fixed": after[v]}]
            affected.append(
                ("PYSEC", HUGE_PROJECT, {"ranges": [{"type": "ECOSYSTEM", "events": events}]})
            )
        affected += [("PYSEC", HUGE_PROJECT, {"versions": [v]}) for v in listed]
        affected.append(("MAL", HUGE_PROJECT, {"versions": [malicious]}))
        for i in range(ADVISORIES - len(affected)):
            events = [{"introduced": "0"}, {"fixed": f"1.{i}"}]
            affected.append(("PYSEC", _name(i * 37), {"ranges": [{"type": "ECOSYSTEM", "events": events}]}))  # fmt: skip
        for n, (kind, project, which) in enumerate(affected):
            record = {
                "schema_version": "1.6.0",
                "id": f"{kind}-BENCH-{n:04d}",
                "modified": "2026-01-01T00:00:00Z",
                "summary": "benchmark advisory",
                "affected": [{"package": {"ecosystem": "PyPI", "name": project}, **which}],
            }
            (folder / f"{kind}-BENCH-{n:04d}.json").write_text(json.dumps(record))

    @functools.cached_property
    def refused(self) -> frozenset[Version]:
        """The big project's versions an advisory or its exclude refuses."""
        ranged, listed, malicious = self.advised
        return frozenset(Version(v) for v in (*ranged, *listed, malicious, BIG_EXCLUDED))

    def leaves(self, filename: str, uploaded: str) -> bool:
        """The egress setup offers this file of the big page."""
        version = Version(filename.split("-")[1])
        return (
            version >= Version(BIG_FROM)
            and version not in self.refused
            and not any(version in SpecifierSet(spec) for spec in BIG_BLOCKED)
            and filename != self.blocked_file
            and datetime.fromisoformat(uploaded) <= datetime.fromisoformat(FREEZE)
        )

    def listed(self, name: str) -> bool:
        """The egress setup's project list names this upstream project."""
        return (
            name in _ALLOWED or fnmatch.fnmatchcase(name, ALLOWED_PATTERN) or name == HUGE_PROJECT
        ) and name not in _EXCLUDED


@dataclass(frozen=True)
class EgressUpstream:
    url: str  # the upstream's egress/simple/
    names: tuple[str, ...]  # on its project list
    big_page: tuple[tuple[str, str], ...]  # the big page's (filename, upload-time)
    screen: Screen

    def expected(self, setup: str) -> tuple[int, int]:
        """(files on the big page, names on the list) for a setup."""
        if setup == "plain":
            return len(self.big_page), len(self.names)
        files = sum(self.screen.leaves(f, t) for f, t in self.big_page)
        return files, sum(map(self.screen.listed, self.names))


def build_egress_root(up: Upstream, upstream_base: str) -> EgressUpstream:
    """up.root/egress/simple/: a PEP 503 index listing the upstream's projects and LIST_NAMES
    more; each real project a link to its folder in simple/ (nginx follows it)."""
    simple, root = up.root / "simple", up.root / ROOT / "simple"
    root.mkdir(parents=True)
    (up.root / ROOT / "packages").symlink_to(up.root / "packages", target_is_directory=True)
    real = sorted(p.name for p in simple.iterdir() if (p / "index.html").exists())
    for name in real:
        (root / name).symlink_to(simple / name, target_is_directory=True)
    names = (*real, *(_name(i) for i in range(LIST_NAMES)))
    links = "".join(f'<a href="{n}/">{n}</a>\n' for n in names)
    (root / "index.html").write_text(f"<!DOCTYPE html>\n<html><body>\n{links}</body></html>\n")
    doc = json.loads((simple / HUGE_PROJECT / "index.json").read_bytes())
    big_page = tuple((f["filename"], f["upload-time"]) for f in doc["files"])
    versions = tuple(doc["versions"])
    blocked_file = next(f for f, _ in big_page if f.split("-")[1] == versions[140])
    return EgressUpstream(
        f"{upstream_base}/{ROOT}/simple/", names, big_page, Screen(versions, blocked_file)
    )


def run_egress(
    procs: Procs,
    work: Path,
    up: Upstream,
    upstream_base: str,
    formats: dict[str, str],
    reps: int,
    workers: int,
    threads: int,
    run: RunResults,
) -> None:
    """(h): per rep and format, plain then egress, each through a fresh server; failures go
    to the run's notes."""
    res = run.egress
    log(f"(h) building the egress root ({LIST_NAMES:,} names)")
    eg = build_egress_root(up, upstream_base)
    advisories = work / "egress-advisories"
    eg.screen.write_advisories(advisories)
    for setup in SETUPS:
        res.big_files[setup], res.list_names[setup] = eg.expected(setup)
    for rep in range(reps):
        for n, (fmt_name, accept) in enumerate(formats.items()):
            for setup in SETUPS:
                log(f"(h) rep {rep + 1}/{reps}: {setup}, {fmt_name}")
                try:
                    egress = setup == "egress"
                    server = start_pullthrough(
                        procs,
                        work,
                        f"pullthrough-{setup}-{rep}-{n}",
                        eg.url,
                        workers,
                        threads,
                        eg.screen.distribution_config() if egress else "",
                        remote_config=eg.screen.remote_config() if egress else "",
                    )
                    try:
                        if egress:
                            _import(server.home / "pullthrough.toml", advisories)
                        base = f"{server.url}/pypi/{BASE_PATH}/simple/"
                        for page, url, key, expected in (
                            ("big page", f"{base}{HUGE_PROJECT}/", "files", res.big_files[setup]),
                            ("list", base, "projects", res.list_names[setup]),
                        ):
                            took = timed_page(url, {"Accept": accept}, expected, key)[0]
                            res.cold.setdefault((setup, page, fmt_name), []).append(took)
                    finally:
                        procs.stop_one(server.proc)
                except (BenchError, OSError, ValueError) as exc:
                    run.notes.append(f"(h) {setup} {fmt_name}, rep {rep + 1}: {exc}")


def _import(config: Path, folder: Path) -> None:
    argv = [str(PULLTHROUGH), "advisories", "import", str(folder), "--config", str(config)]
    done = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=child_env("PULLTHROUGH_"),
    )
    if done.returncode != 0:
        raise BenchError(f"advisories import: exit {done.returncode}: {done.stderr[-500:]}")


def print_egress_section(run: RunResults) -> None:
    res = run.egress
    print()
    print(
        f"(h) egress screening: first GETs through freshly started servers, best of the reps; "
        f"egress = an allow-list of {ALLOWED} names and a pattern, a freeze, a "
        f"{BLOCKLIST_SIZE:,}-entry blocklist, {ADVISORIES} OSV advisories ({BIG_ADVISORIES + 1} "
        f"on the big page) held; the list has {LIST_NAMES:,} names more"
    )
    if res.skipped:
        print(f"  skipped: {res.skipped}")
        return
    counts = ", ".join(
        f"{s}: {res.big_files.get(s, 0):,} files, {res.list_names.get(s, 0):,} names"
        for s in SETUPS
    )
    print(f"  what each offers ({counts})")
    rows = []
    for page, fmt_name in dict.fromkeys((p, f) for (_, p, f) in res.cold):
        plain, egress = (res.cold.get((s, page, fmt_name)) for s in SETUPS)
        best = [min(runs) if runs else None for runs in (plain, egress)]
        rows.append(
            [page, fmt_name, fmt(best[0] and best[0] * 1e3, ".1f"),
             fmt(best[1] and best[1] * 1e3, ".1f"), fmt(ratio(best[1], best[0]), ".2f"),
             " ".join(f"{t * 1e3:.0f}" for t in plain or ()),
             " ".join(f"{t * 1e3:.0f}" for t in egress or ())]
        )  # fmt: skip
    if rows:
        print(
            table(
                ["page", "format", "plain ms", "egress ms", "egress/plain", "plain runs",
                 "egress runs"],
                rows,
            )
        )  # fmt: skip
