"""Renderings every worker sends: a project page one gunicorn worker has rendered (and gzipped)
is kept on disk, so the other workers answer it from their first request instead of reading,
screening, rendering and compressing the page again (a 4,000-file page: tens of ms).

An entry is valid while the catalog is unchanged (the generation the distribution was built
under) and until the page view it came from expires - the rules the worker that rendered it
follows for its own memo. Private distributions are never shared (their readers are checked
on every request, in Flask). Each process keeps what it read in memory, so a page costs one
disk read per process and expiry.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import cast

import diskcache
from cachetools import LRUCache

from pullthrough.services.distribution import Distribution
from pullthrough.services.later import Later
from pullthrough.web.negotiation import Format
from pullthrough.web.rendered import Rendered

log = logging.getLogger(__name__)
Entry = tuple[bytes | None, float, Rendered]  # (catalog generation, expires at, rendering)


class SharedRenders:
    def __init__(
        self,
        cache: diskcache.Cache,
        *,
        clock: Callable[[], float] = time.time,
        memory: int = 64 * 2**20,  # bytes of renderings read kept per process
        later: Later | None = None,  # where renderings are written (default: at once)
    ) -> None:
        self.cache = cache
        self.clock = clock
        self.later = later or Later(background=False)
        self._read: LRUCache[str, Entry] = LRUCache(maxsize=memory, getsizeof=_size)
        self._lock = threading.Lock()

    def get(self, dist: Distribution, project: str, fmt: Format) -> tuple[Rendered, float] | None:
        """Another worker's rendering of the page, if still valid, and when it expires; never
        for a private one."""
        if dist.private:
            return None
        key = _key(dist, project, fmt)
        with self._lock:
            entry = self._read.get(key)
        if entry is None or not self._valid(entry, dist):
            try:
                entry = cast(Entry | None, self.cache.get(key))
            except (OSError, sqlite3.Error) as exc:
                log.warning("shared renderings unreadable: %s", exc)
                return None
            if entry is None or not self._valid(entry, dist):
                return None
            with self._lock, contextlib.suppress(ValueError):  # larger than the memo: not kept
                self._read[key] = entry
        return entry[2], entry[1]

    def put(
        self, dist: Distribution, project: str, fmt: Format, expires_at: float, done: Rendered
    ) -> None:
        """Share a page this worker rendered, with its gzip form, compressed and written on the
        background thread (services.later), not in the time of the request that rendered it."""
        if not dist.private and expires_at > self.clock():
            entry = (dist.generation, expires_at, done)
            self.later.run(functools.partial(self._write, _key(dist, project, fmt), entry))

    def _write(self, key: str, entry: Entry) -> None:
        if (seconds := entry[1] - self.clock()) <= 0:
            return
        entry[2].encoded(gzip_ok=True)
        try:
            self.cache.set(key, entry, seconds)
        except (OSError, sqlite3.Error) as exc:  # a full disk: the others render it themselves
            log.warning("could not share a rendering: %s", exc)

    def _valid(self, entry: Entry, dist: Distribution) -> bool:
        return entry[0] == dist.generation and self.clock() < entry[1]


def _size(entry: Entry) -> int:
    done = entry[2]
    return len(done.body) + sum(len(v.body) for v in done.variants.values())


def _key(dist: Distribution, project: str, fmt: Format) -> str:
    return f"{dist.base_path}\0{project}\0{fmt.value}"
