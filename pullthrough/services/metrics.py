"""Prometheus metrics: what the server counts, and the text a scrape of /metrics gets.

Under `pullthrough serve` every gunicorn worker writes its counts to files in
`data_dir/metrics` (prometheus_client's multiprocess mode, named by PROMETHEUS_MULTIPROC_DIR),
and a scrape, whichever worker answers it, adds them all up. Without that variable (an app built
in-process, as the tests do) the counts are this process's. Cache size and policy refusals are
read when scraped, from the ledger and the refusal counters every process shares.
"""

from __future__ import annotations

import copy
import logging
import os
import shutil
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError

from pullthrough.core.tasks import TASK_STATES
from pullthrough.services.counters import KINDS, Counters
from pullthrough.storage.ledger import Ledger
from pullthrough.upstream.client import UpstreamError, UpstreamRefused, UpstreamTimeout

log = logging.getLogger(__name__)
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client reads it when first imported
METRICS_DIR = "metrics"  # in data_dir

# The `kind` label of pullthrough_http_requests_total.
PAGE, PROJECT_LIST, FILE, METADATA = "page", "project_list", "file", "metadata"
JSON_API, UPLOAD, API, OTHER = "json_api", "upload", "api", "other"


def prepare_multiprocess_dir(data_dir: Path) -> Path:
    """An empty folder for the workers' metric files, made by `pullthrough serve` before gunicorn
    starts: the files of an earlier run belong to processes that are gone."""
    path = data_dir / METRICS_DIR
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


class Metrics:
    """The metrics of one app. With `multiprocess_dir` the values live in its files and are
    collected from there; without, in this object's registry."""

    def __init__(self, multiprocess_dir: str | None = None) -> None:
        self.multiprocess_dir = multiprocess_dir
        self.registry = CollectorRegistry()
        own = None if multiprocess_dir else self.registry
        self.requests = Counter(
            "pullthrough_http_requests",
            "HTTP requests answered, by route kind and status code",
            ["kind", "code"],
            registry=own,
        )
        self.cache_hits = Counter(
            "pullthrough_cache_hits", "File requests served from the store", registry=own
        )
        self.cache_misses = Counter(
            "pullthrough_cache_misses",
            "File requests that started a download from the upstream",
            registry=own,
        )
        self.cache_stale = Counter(
            "pullthrough_cache_stale",
            "File answers given from a stale page while the upstream failed",
            registry=own,
        )
        self.file_bytes = Counter(
            "pullthrough_file_bytes_served",
            "Bytes of file bodies answered (GET, 200 and 206)",
            registry=own,
        )
        self.downloads = Gauge(
            "pullthrough_upstream_downloads_in_flight",
            "File downloads from upstreams in progress",
            multiprocess_mode="livesum",
            registry=own,
        )
        self.upstream_errors = Counter(
            "pullthrough_upstream_errors",
            "Failed upstream requests, by remote and kind (timeout, refused, error)",
            ["remote", "kind"],
            registry=own,
        )
        self.upstream_seconds = Histogram(
            "pullthrough_upstream_request_seconds",
            "Upstream requests answered, by remote and kind: a page fetched whole, or a file"
            " until its headers",
            ["remote", "kind"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=own,
        )
        self.renders = Counter(
            "pullthrough_page_renders",
            "Project pages rendered (then sent from memory, by every worker, until they expire)",
            registry=own,
        )
        self.evictions = Counter(
            "pullthrough_cache_evictions",
            "Cached files evicted (least recently used, over cache.max_size)",
            registry=own,
        )
        self._at_scrape: list[Collector] = []
        self.shown_remotes: Callable[[], Iterable[str]] | None = None  # None: every remote

    def upstream_answered(self, remote: str, kind: str, seconds: float) -> None:
        self.upstream_seconds.labels(remote, kind).observe(seconds)

    def upstream_error(self, remote: str, exc: UpstreamError) -> None:
        kind = (
            "timeout"
            if isinstance(exc, UpstreamTimeout)
            else "refused"
            if isinstance(exc, UpstreamRefused)
            else "error"
        )
        self.upstream_errors.labels(remote, kind).inc()

    def read_at_scrape(self, collector: Collector) -> None:
        """Values shared by every process already (not per worker): read by the scrape."""
        self._at_scrape.append(collector)
        if self.multiprocess_dir is None:
            self.registry.register(collector)

    def exposition(self) -> bytes:
        """The scrape, naming no remote but the `shown_remotes` (those of the distributions
        anyone may learn of: a remote only a private or hidden one uses is not named)."""
        if self.multiprocess_dir is None:
            registry = self.registry
        else:
            registry = CollectorRegistry()
            MultiProcessCollector(registry, self.multiprocess_dir)  # type: ignore[no-untyped-call]
            for collector in self._at_scrape:
                registry.register(collector)
        if self.shown_remotes is None:
            return generate_latest(registry)
        return generate_latest(_OnlyRemotes(registry, set(self.shown_remotes())))


class _OnlyRemotes:
    """A registry's metrics without the samples labelled with a remote not in `shown`."""

    def __init__(self, registry: CollectorRegistry, shown: set[str]) -> None:
        self.registry = registry
        self.shown = shown | {""}  # "": a sample of no remote

    def collect(self) -> Iterable[Metric]:
        for metric in self.registry.collect():
            kept = [s for s in metric.samples if s.labels.get("remote", "") in self.shown]
            if len(kept) != len(metric.samples):
                metric = copy.copy(metric)
                metric.samples = kept
            yield metric


def from_environment() -> Metrics:
    return Metrics(os.environ.get(MULTIPROCESS_ENV) or None)


class CacheCollector(Collector):
    """The cache's size, limit and file count, from the ledger (shared by every worker)."""

    def __init__(self, ledger: Ledger, max_size: int) -> None:
        self.ledger = ledger
        self.max_size = max_size

    def collect(self) -> Iterable[Metric]:
        yield GaugeMetricFamily(
            "pullthrough_cache_limit_bytes",
            "The cache's size limit (cache.max_size)",
            self.max_size,
        )
        try:
            size, files = self.ledger.total(), self.ledger.count()
        except (OSError, sqlite3.Error, SQLAlchemyError) as exc:  # the rest is still worth a scrape
            log.warning("metrics: could not read the cache ledger: %s", exc)
            return
        yield GaugeMetricFamily(
            "pullthrough_cache_size_bytes", "Bytes of pull-through files cached", size
        )
        yield GaugeMetricFamily("pullthrough_cache_files", "Pull-through files cached", files)


class RefusalCollector(Collector):
    """Policy refusals (403) per distribution and reason: the status endpoint's counters. Like
    the status page, it leaves out hidden and private distributions."""

    def __init__(self, counters: Counters, shown: Callable[[], Iterable[str]]) -> None:
        self.counters = counters
        self.shown = shown

    def collect(self) -> Iterable[Metric]:
        family = CounterMetricFamily(
            "pullthrough_policy_refusals",
            "Answers refused (403) by policy, blocklist or quarantine",
            labels=["distribution", "reason"],
        )
        for base_path in sorted(self.shown()):
            counts = self.counters.of(base_path)
            for reason in KINDS:
                family.add_metric([base_path, reason], counts[reason])
        yield family


class TaskCollector(Collector):
    """Tasks by state, counted in the catalog (shared by every worker and node)."""

    def __init__(self, count: Callable[[], Mapping[str, int]]) -> None:
        self.count = count

    def collect(self) -> Iterable[Metric]:
        try:
            counts = self.count()
        except (OSError, sqlite3.Error, SQLAlchemyError) as exc:
            log.warning("metrics: could not count tasks: %s", exc)
            return
        family = GaugeMetricFamily(
            "pullthrough_tasks", "Tasks in the catalog, by state", labels=["state"]
        )
        for state in TASK_STATES:
            family.add_metric([state], counts.get(state, 0))
        yield family
