"""A change signal for every process on this host: a token rewritten on each catalog change.

Workers compare it on each request (one small file read) and rebuild their view of
distributions when it differs, so an upload through one worker is visible through all at once.
Across hosts (PostgreSQL scale-out) this file would need to be shared or replaced by polling.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path


class Generation:
    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.exists():
            self.bump()

    def read(self) -> str:
        try:
            return self.path.read_text()
        except FileNotFoundError:
            return ""

    def bump(self) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex}")
        tmp.write_text(uuid.uuid4().hex)
        os.replace(tmp, self.path)
