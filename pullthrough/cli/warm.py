"""`pullthrough warm`: fetch every file a lock file or requirements file names through a
distribution, so the cache holds them before anyone installs (or the upstream goes away).

It asks the server as pip would: the project's page (PEP 691 JSON), then each file, `--jobs` at
a time, checking each file's sha256 against the page and the pin. Resuming needs no state of
its own: a HEAD request first asks the server whether it holds the file (it answers a stored
file with its sha256 as the ETag), and a file already held is not downloaded again - so a
killed run, run again, fetches only the rest. `--into-repository` then adds the packages the
cache recorded to a repository (a new version), which takes them out of the cache's reach.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote

import requests

from pullthrough import __version__
from pullthrough.api import kinds
from pullthrough.cli.client import REQUEST_TIMEOUT, Client, CliError
from pullthrough.cli.tree import Tree
from pullthrough.core.links import without_userinfo
from pullthrough.core.lockfiles import FORMATS, Chosen, LockFileError, Wanted, choose, parse
from pullthrough.core.models import DistFile

MAX_INCLUDE_DEPTH = 10  # `-r` inside `-r` ...
CATALOG_WAIT = 30.0  # seconds: a cached file's package is recorded just after it is stored
USER_AGENT = f"pullthrough-warm/{__version__}"


# ---- reading the files ----------------------------------------------------------------------


def read_wanted(paths: Sequence[str], fmt: str | None) -> tuple[list[Wanted], list[str]]:
    """Everything the files name (requirements files' `-r` includes followed), and notes on
    what was skipped."""
    wanted: list[Wanted] = []
    notes: list[str] = []
    seen: set[Path] = set()

    def read(path: Path, depth: int) -> None:
        resolved = path.resolve()
        if resolved in seen:
            return
        seen.add(resolved)
        try:
            text = path.read_text(encoding="utf-8-sig")  # a BOM (Notepad) is not text
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise CliError(f"Could not read {path}: {reason}.") from None
        try:
            parsed = parse(str(path), text, fmt if depth == 0 else "requirements")
        except LockFileError as exc:
            raise CliError(str(exc)) from None
        wanted.extend(parsed.wanted)
        notes.extend(parsed.notes)
        for include in parsed.includes:
            if depth >= MAX_INCLUDE_DEPTH:
                raise CliError(f"{path}: requirements files nested more than 10 deep.")
            read(path.parent / include, depth + 1)

    for name in paths:
        read(Path(name), 0)
    return wanted, notes


# ---- progress -------------------------------------------------------------------------------


@dataclass
class Tally:
    """What happened so far; drawn as one line on a terminal, redrawn as files finish."""

    total: int
    stream: TextIO | None  # None: no bar (not a terminal)
    fetched: int = 0
    cached: int = 0
    failed: int = 0
    bytes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, outcome: str, size: int = 0) -> None:
        with self.lock:
            setattr(self, outcome, getattr(self, outcome) + 1)
            self.bytes += size
            self.draw()

    def draw(self) -> None:
        if self.stream is None:
            return
        done = self.fetched + self.cached + self.failed
        filled = int(30 * done / self.total) if self.total else 30
        line = (
            f"\rwarming [{'#' * filled}{'.' * (30 - filled)}] {done}/{self.total}"
            f" ({self.cached} cached, {self.failed} failed)"
        )
        self.stream.write(line.ljust(78))
        self.stream.flush()

    def finish(self) -> None:
        if self.stream is not None:
            self.stream.write("\n")
            self.stream.flush()


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    amount = float(n)
    for unit in ("KiB", "MiB", "GiB"):
        amount /= 1024
        if amount < 1024 or unit == "GiB":
            return f"{amount:.1f} {unit}"
    raise AssertionError("unreachable")


# ---- fetching -------------------------------------------------------------------------------


class Fetcher:
    """Pages and files over one requests session per thread (a session is not thread-safe)."""

    def __init__(self, client: Client, base_path: str) -> None:
        self.client = client
        self.index = f"{client.base_url}/pypi/{base_path}/simple/"
        self.local = threading.local()
        self.stop = threading.Event()

    @property
    def session(self) -> requests.Session:
        session: requests.Session | None = getattr(self.local, "session", None)
        if session is None:
            session = self.local.session = self.client.new_session()
            session.headers["User-Agent"] = USER_AGENT
        return session

    def page(self, project: str) -> tuple[DistFile, ...]:
        # the page parsers (and lxml) load when a page is read, not when the CLI starts
        from pullthrough.core.simple_html import InvalidPage
        from pullthrough.core.simple_json import CONTENT_TYPE, parse_project_page

        url = f"{self.index}{quote(project)}/"
        try:
            with self.session.get(
                url, headers={"Accept": CONTENT_TYPE}, timeout=REQUEST_TIMEOUT
            ) as resp:
                if resp.status_code != 200:
                    shown = without_userinfo(url)
                    raise CliError(f"{project}: the index answered {_status(resp)} for {shown}")
                return parse_project_page(resp.content, resp.url, project).files
        except requests.RequestException as exc:
            shown = without_userinfo(url)
            raise CliError(f"{project}: could not get {shown} ({type(exc).__name__})") from None
        except InvalidPage as exc:
            raise CliError(f"{project}: {exc}") from None

    def held(self, chosen: Chosen) -> bool:
        """Whether the server holds the file already: HEAD answers a stored file with its
        sha256 as the ETag (and never starts a download)."""
        expected = chosen.file.sha256 or chosen.pinned
        try:
            with self.session.head(
                chosen.file.url, timeout=REQUEST_TIMEOUT, allow_redirects=False
            ) as resp:
                etag = _etag(resp)
        except requests.RequestException:
            return False  # the GET will say what is wrong
        return resp.status_code == 200 and bool(etag) and etag == (expected or etag)

    def fetch(self, chosen: Chosen) -> tuple[int, bool]:
        """GET the file, hash what arrives; its size, and whether the server sent it from its
        store (a stored file's answer carries its sha256 as the ETag, a download's none): a
        file another run has just fetched is stored while its last bytes go out, so the HEAD
        before may have missed it. Raises CliError naming the file."""
        f = chosen.file
        digest, size = hashlib.sha256(), 0
        try:
            with self.session.get(f.url, stream=True, timeout=REQUEST_TIMEOUT) as resp:
                if resp.status_code != 200:
                    raise CliError(f"{f.filename}: the server answered {_status(resp)}")
                for block in resp.iter_content(1 << 16):
                    if self.stop.is_set():
                        raise CliError(f"{f.filename}: interrupted")
                    digest.update(block)
                    size += len(block)
                etag = _etag(resp)
        except requests.RequestException as exc:
            raise CliError(f"{f.filename}: download failed ({type(exc).__name__})") from None
        got = digest.hexdigest()
        for expected, whose in ((f.sha256, "the index's"), (chosen.pinned, chosen.origin + "'s")):
            if expected and got != expected:
                raise CliError(
                    f"{f.filename}: sha256 {got} of the bytes received is not {whose} {expected}"
                )
        return size, etag == got

    def metadata(self, chosen: Chosen) -> None:
        """GET the file's PEP 658 metadata when the page offers it: pip and uv read it before
        the file, and the server keeps the upstream's copy like a file (small: always asked
        for; the server answers from its store when it has it)."""
        f = chosen.file
        if not f.core_metadata:
            return
        name = f.filename + ".metadata"
        try:
            with self.session.get(f.url + ".metadata", timeout=REQUEST_TIMEOUT) as resp:
                if resp.status_code != 200:
                    raise CliError(f"{name}: the server answered {_status(resp)}")
                got = hashlib.sha256(resp.content).hexdigest()
        except requests.RequestException as exc:
            raise CliError(f"{name}: download failed ({type(exc).__name__})") from None
        hashes = f.core_metadata if isinstance(f.core_metadata, Mapping) else {}
        if hashes.get("sha256") and got != hashes["sha256"]:
            raise CliError(f"{name}: sha256 {got} is not the index's {hashes['sha256']}")


def _etag(resp: requests.Response) -> str:
    return resp.headers.get("ETag", "").removeprefix("W/").strip('"')


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _status(resp: requests.Response) -> str:
    body = resp.text.strip().splitlines()
    reason = f": {body[0][:200]}" if body and len(body[0]) < 500 else ""
    return f"HTTP {resp.status_code}{reason}"


def _run_all(
    jobs: int, work: Sequence[Any], task: Callable[[Any], Any], stop: threading.Event
) -> Iterator[tuple[Any, Future[Any]]]:
    """`task(item)` for every item, `jobs` at a time; (item, its future) as each finishes."""
    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="warm")
    try:
        futures = {pool.submit(task, item): item for item in work}
        for future in as_completed(futures):
            yield futures[future], future
    finally:
        stop.set()  # an interrupted run: running downloads stop at their next block
        pool.shutdown(wait=True, cancel_futures=True)


# ---- the command ----------------------------------------------------------------------------


def warm(client: Client, args: argparse.Namespace) -> None:
    wanted, notes = read_wanted(args.files, args.format)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    base_path = args.base_path or client.find(kinds.DISTRIBUTION, args.distribution)["base_path"]
    repository = (
        client.find(kinds.REPOSITORY, args.into_repository) if args.into_repository else None
    )
    fetcher = Fetcher(client, base_path)
    errors: list[str] = []

    by_project: dict[str, list[Wanted]] = {}
    for want in wanted:
        by_project.setdefault(want.project, []).append(want)
    chosen: dict[str, Chosen] = {}
    for project, future in _run_all(args.jobs, sorted(by_project), fetcher.page, fetcher.stop):
        try:
            files = future.result()
        except CliError as exc:
            errors.append(str(exc))
            continue
        picked, problems = choose(project, by_project[project], files)
        errors += problems
        for c in picked:
            if c.file.filename not in chosen or (c.pinned and not chosen[c.file.filename].pinned):
                chosen[c.file.filename] = c
    fetcher.stop.clear()

    todo = sorted(chosen.values(), key=lambda c: c.file.filename)
    tally = Tally(len(todo), sys.stderr if sys.stderr.isatty() else None)
    tally.draw()

    def one(c: Chosen) -> tuple[str, int]:
        outcome, size = "cached", 0
        if not fetcher.held(c):
            got, from_store = fetcher.fetch(c)
            if not from_store:
                outcome, size = "fetched", got
        fetcher.metadata(c)
        return outcome, size

    failures: list[str] = []
    try:
        for _, future in _run_all(args.jobs, todo, one, fetcher.stop):
            try:
                outcome, size = future.result()
            except CliError as exc:
                failures.append(str(exc))
                tally.count("failed")
                continue
            tally.count(outcome, size)
    finally:
        tally.finish()
    errors += failures
    print(
        f"{_count(len(todo), 'file')} of {_count(len(by_project), 'project')}"
        f" through {base_path!r}: "
        f"{tally.fetched} fetched ({_size(tally.bytes)}), {tally.cached} already cached, "
        f"{len(errors)} errors",
        flush=True,
    )
    for error in errors:
        print(f"Error: {error}", file=sys.stderr)
    if errors:
        raise CliError(f"{len(errors)} of the files named could not be warmed.")
    if repository is not None:
        promote(client, repository, todo)


def promote(client: Client, repository: dict[str, Any], files: Sequence[Chosen]) -> None:
    """Add the packages the cache recorded for `files` to the repository (one new version)."""
    hrefs = []
    for c in files:
        sha256 = c.file.sha256 or c.pinned
        params = {"filename": c.file.filename, "offset": 0, "limit": 1}
        if sha256:
            params["sha256"] = sha256
        deadline = time.monotonic() + CATALOG_WAIT
        while not (found := client.page(kinds.CONTENT, params)):
            if time.monotonic() >= deadline:
                raise CliError(f"{c.file.filename}: the server recorded no package for it.")
            time.sleep(0.2)
        hrefs.append(found[0]["pulp_href"])
    result = client.modify(repository, hrefs, [], None)
    number = result.get("number") if isinstance(result, dict) else None
    where = f"version {number}" if number is not None else "no new version: already there"
    print(f"{len(hrefs)} packages in repository {repository['name']!r} ({where})", flush=True)


def _jobs(value: str) -> int:
    number = int(value)
    if not 1 <= number <= 64:
        raise argparse.ArgumentTypeError("must be 1 to 64")
    return number


def add_commands(tree: Tree) -> None:
    parser = tree.verb(
        "warm",
        "fetch every file a lock or requirements file names into the cache",
        warm,
    )
    parser.description = (
        "Fetch through a distribution every file that requirements files (name==1.0, with or\n"
        "without --hash pins; other specifiers take the newest matching version), uv.lock,\n"
        "pylock.toml (PEP 751) or poetry.lock name, checking their sha256 (and the PEP 658\n"
        "metadata files pip and uv read). Files the server holds already are not fetched\n"
        "again: run an interrupted run again to finish it."
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="requirements or lock files")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--distribution", metavar="NAME", help="the distribution to fetch through")
    where.add_argument(
        "--base-path", metavar="PATH", help="or its base path (no API lookup: a token will do)"
    )
    parser.add_argument(
        "--jobs", type=_jobs, default=8, metavar="N", help="files fetched at a time (8)"
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        help="the files' format (default: from the name: uv.lock, poetry.lock, pylock*.toml,"
        " else requirements)",
    )
    parser.add_argument(
        "--into-repository",
        metavar="NAME",
        help="then add the fetched packages to this repository (a new version)",
    )
