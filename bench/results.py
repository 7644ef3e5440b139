"""The records the benchmarks fill while they measure, and bench/report.py prints."""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.load import Series

# --------------------------------------------------------------------------- bench/run.py


@dataclass
class S3Results:
    """(d): pullthrough with its files on S3. The local-disk and nginx figures it is compared
    with are (b)'s and (c)'s, measured in the same rounds and reps."""

    skipped: str = ""  # why (d) did not run
    warm: Series | None = None  # the big file's download, 4 connections (within (b)'s rounds)
    # the big file's first fetch through a fresh server, seconds per rep: "upstream (nginx)"
    # (straight), "local disk", "S3"
    first_fetch: dict[str, list[float]] = field(default_factory=dict)
    pip: dict[str, list[float]] = field(default_factory=dict)  # "cold", "warm" (fresh S3 server)


@dataclass
class BigPageResults:
    """(e): the big project page (HUGE_PROJECT), per format ("html", "json(pip)")."""

    skipped: str = ""  # why (e) did not run
    files: int = 0  # files on the page
    upstream_sizes: dict[str, int] = field(default_factory=dict)  # the upstream's page, bytes
    # seconds per rep: the upstream's page straight (best of a few GETs, new connections), and
    # the first GET through a freshly started pullthrough (empty data dir), new connection
    upstream: dict[str, list[float]] = field(default_factory=dict)
    cold: dict[str, list[float]] = field(default_factory=dict)
    # for reference, the same first GET, each through its own freshly started server: the
    # relay floor (gunicorn + requests, the upstream's bytes relayed whole) and proxpi
    relay: dict[str, list[float]] = field(default_factory=dict)
    proxpi: dict[str, list[float]] = field(default_factory=dict)
    # warm, one keep-alive connection: (format, "identity" | "gzip") -> body bytes as sent,
    # and the median seconds of a GET
    sizes: dict[tuple[str, str], int] = field(default_factory=dict)
    warm: dict[tuple[str, str], float] = field(default_factory=dict)
    first_gzip: dict[str, float] = field(default_factory=dict)  # seconds: it compresses
    warm_requests: int = 0  # timed GETs per (format, encoding)


@dataclass
class EgressResults:
    """(h), bench/egress.py: per setup ("plain", "egress") what it offers, and first GETs."""

    skipped: str = ""  # why (h) did not run
    big_files: dict[str, int] = field(default_factory=dict)  # setup -> files its page lists
    list_names: dict[str, int] = field(default_factory=dict)  # setup -> names on its list
    # (setup, page, format) -> seconds of the first GET, per rep; page: "big page" | "list"
    cold: dict[tuple[str, str, str], list[float]] = field(default_factory=dict)


@dataclass
class RunResults:
    pages: dict[tuple[str, str], Series] = field(default_factory=dict)  # (server, format)
    page_sizes: dict[str, int] = field(default_factory=dict)
    files: dict[tuple[str, str], Series] = field(default_factory=dict)  # (server, "file")
    pip: dict[str, list[float]] = field(default_factory=dict)
    # (c), for reference: median seconds of a burst of parallel cold files, per source and rep
    parallel: dict[str, list[float]] = field(default_factory=dict)
    s3: S3Results = field(default_factory=S3Results)
    big: BigPageResults = field(default_factory=BigPageResults)
    egress: EgressResults = field(default_factory=EgressResults)
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- bench/sync.py


@dataclass
class Case:
    """One sync task and what it took."""

    label: str
    policy: str
    concurrency: int | None
    files: int = 0  # files in the new version
    downloaded: int = 0  # files the task downloaded
    task_s: float = float("nan")  # started_at -> finished_at, from the task
    wall_s: float = float("nan")  # POST sync/ -> `completed` seen by polling
    cpu_s: float = float("nan")  # the server's process tree, over wall_s
    worker: str = ""  # the task's worker (`<host>-<pid>-<thread>`)
    upstream: dict[str, int] = field(default_factory=dict)  # HTTP status -> count; "conns"
    state: str = "not run"
    error: str = ""


@dataclass
class ManyResult:
    projects: int = 0
    first: Case | None = None
    again: Case | None = None
    changed_first: str = "n/a"
    changed_again: str = "n/a"
    boot_kib: dict[str, int] = field(default_factory=dict)  # worker -> VmHWM after boot
    after_first_kib: dict[str, int] = field(default_factory=dict)
    after_again_kib: dict[str, int] = field(default_factory=dict)
    rss_after_kib: dict[str, int] = field(default_factory=dict)


@dataclass
class SyncResults:
    small_projects: int = 0
    small_files: int = 0
    small_bytes: int = 0
    cases: list[Case] = field(default_factory=list)
    many: ManyResult = field(default_factory=ManyResult)
    notes: list[str] = field(default_factory=list)
