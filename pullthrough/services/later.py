"""Work a request need not wait for: keeping what it fetched or rendered for the other workers
(the page cache, the shared renderings), done on one background thread per process, in order.

A cold 4,000-file page spends ~15 ms pickling, compressing and writing those copies; its client
does not wait for them. Nor does it share the interpreter with them: the jobs a request gives
are held until its answer is sent (`held`; web.afterwards), since pickling a big page
holds the GIL for ~8 ms that the request's own rendering would otherwise wait for. A process
that dies first loses only copies (fetched or rendered again later). When the backlog is long
(a storm of cold pages), a job runs in the caller's thread instead, so memory stays bounded.
"""

from __future__ import annotations

import functools
import logging
import os
import queue
import sqlite3
import threading
from collections.abc import Callable, Hashable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import diskcache

log = logging.getLogger(__name__)
BACKLOG = 64  # jobs waiting at most; each may hold a big page
Job = Callable[[], object]


class Later:
    def __init__(self, *, background: bool = True) -> None:
        """`background=False`: every job runs at once, in the caller's thread (tests, tools)."""
        self.background = background
        self._jobs: queue.Queue[Job] = queue.Queue(maxsize=BACKLOG)
        self._lock = threading.Lock()
        self._pid: int | None = None  # the process whose thread runs the jobs (gunicorn forks)
        self._held = threading.local()  # .jobs: this thread's, while it holds them

    def run(self, job: Job) -> None:
        """Do `job` soon, on the background thread (inside `held`, once given again); its
        exceptions are logged, not raised."""
        if self.background:
            if (held := getattr(self._held, "jobs", None)) is not None:
                held.append(job)
                return
            self._start()
            try:
                self._jobs.put_nowait(job)
                return
            except queue.Full:
                pass
        _guarded(job)

    @contextmanager
    def held(self) -> Iterator[list[Job]]:
        """The jobs this thread gives inside the block are kept in the list it yields, not run
        (a request's: until its answer is sent); the caller gives them to `run_all` then. A
        block that raises hands them over at once. Without a background thread, jobs run at
        once as always."""
        jobs: list[Job] = []
        if self.background:
            self._held.jobs = jobs
        try:
            yield jobs
        except BaseException:
            self._held.jobs = None
            self.run_all(jobs)
            raise
        finally:
            self._held.jobs = None

    def run_all(self, jobs: Iterable[Job]) -> None:
        for job in jobs:
            self.run(job)

    def wait(self, timeout: float = 10.0) -> bool:
        """Whether every job given so far is done within `timeout` seconds (tests)."""
        if not self.background:
            return True
        self._start()
        done = threading.Event()
        try:
            self._jobs.put(done.set, timeout=timeout)
        except queue.Full:
            return False
        return done.wait(timeout)

    def _start(self) -> None:
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid != os.getpid():
                self._jobs = queue.Queue(maxsize=BACKLOG)  # a forked child's own
                name = "pullthrough-later"
                threading.Thread(
                    target=self._work, args=(self._jobs,), name=name, daemon=True
                ).start()
                self._pid = os.getpid()

    @staticmethod
    def _work(jobs: queue.Queue[Job]) -> None:
        while True:
            _guarded(jobs.get())


def _guarded(job: Job) -> None:
    try:
        job()
    except Exception:
        log.exception("background work failed")


class WriteBehind:
    """A diskcache written on the `later` thread: `set` returns at once, and until the value is
    written this process reads its own copy (so a page fetched here is not fetched again, by
    this registry or the next one). A write that fails (a full disk) is logged: served, not
    kept."""

    def __init__(self, cache: diskcache.Cache, later: Later) -> None:
        self.cache = cache
        self.later = later
        self._unwritten: dict[Hashable, object] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any:
        with self._lock:
            if key in self._unwritten:
                return self._unwritten[key]
        return self.cache.get(key)

    def set(self, key: Hashable, value: object) -> None:
        with self._lock:
            self._unwritten[key] = value
        self.later.run(functools.partial(self._write, key, value))

    def _write(self, key: Hashable, value: object) -> None:
        try:
            self.cache.set(key, value)
        except (OSError, sqlite3.Error) as exc:
            log.warning("could not keep %r: %s", key, exc)
        finally:
            with self._lock:
                if self._unwritten.get(key) is value:
                    del self._unwritten[key]
