"""Counts every process shares (diskcache in the data folder): what each distribution refused
and why, for the status endpoint."""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

import diskcache

from pullthrough.core.policy import BLOCKED, HELD, QUARANTINE

log = logging.getLogger(__name__)
KINDS = (HELD, BLOCKED, QUARANTINE)  # answers refused (403): policy, blocklist, quarantine
COUNTERS: dict[str, Any] = {"eviction_policy": "none", "statistics": False}


class Counters:
    def __init__(self, cache: diskcache.Cache) -> None:
        """The counts in `cache`, a diskcache opened with COUNTERS' settings."""
        self.cache = cache

    def add(self, base_path: str, what: str, count: int = 1) -> None:
        try:
            self.cache.incr(("count", base_path, what), count)
        except (OSError, sqlite3.Error) as exc:  # a count is not worth failing an answer for
            log.warning("could not count %s for %s: %s", what, base_path, exc)

    def of(self, base_path: str) -> dict[str, int]:
        return {what: int(self.cache.get(("count", base_path, what), 0)) for what in KINDS}

    def close(self) -> None:
        self.cache.close()
