"""A change signal for every process on this host: a token rewritten on each catalog change.

Workers compare it on each request and rebuild their view of distributions when it differs, so
an upload through one worker is visible through all at once. Each process keeps the file mapped
and reads the token from memory (no syscall: a pread per request cost ~5% of a warm file's CPU,
the GIL let go and taken again around it); a change rewrites it in place with a token of the
same length, which every process's shared mapping shows at once. A read racing a write can at
worst see a mix of both tokens: that only causes one extra rebuild, never a missed change.
Across hosts (PostgreSQL) a row takes its place: services.coordination.SharedGeneration.
"""

from __future__ import annotations

import mmap
import os
import uuid
from pathlib import Path
from typing import Protocol

TOKEN_BYTES = 32


class ChangeSignal(Protocol):
    """This host's Generation, or every node's (services.coordination.SharedGeneration)."""

    def read(self) -> bytes: ...
    def bump(self) -> None: ...
    def close(self) -> None: ...


class Generation:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if len(os.pread(self._fd, TOKEN_BYTES, 0)) != TOKEN_BYTES:
            self.bump()
        self._map = mmap.mmap(self._fd, TOKEN_BYTES, mmap.MAP_SHARED, mmap.PROT_READ)

    def read(self) -> bytes:
        return self._map[:TOKEN_BYTES]

    def bump(self) -> None:
        os.pwrite(self._fd, uuid.uuid4().hex.encode(), 0)

    def close(self) -> None:
        self._map.close()
        os.close(self._fd)
