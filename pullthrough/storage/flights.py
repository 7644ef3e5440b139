"""Downloads under way on this host, by URL: the temporary file each is written to, so that a
request in another process (another gunicorn worker) sends its bytes as they come rather than
nothing until the file is stored.

A notice is a hint, never trusted for the bytes: a reader tails the file it names only while
its writer has it open (store.being_written), and checks what it sends against the file's
digests. One left behind (a killed process) names a file gone or unlocked, and is not followed.
Posting or withdrawing one never fails a download: it only spares others a wait.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Notice:
    name: str  # the temporary file's, in the store's temporary folder
    size: int | None  # the bytes it will hold, when known (its answer's Content-Length)


class Flights:
    def __init__(self, directory: Path, tmp: Path) -> None:
        """Notices in `directory` of downloads into the temporary folder `tmp`; those that
        killed processes left (their file gone) are removed."""
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.remove_stale(tmp)

    def remove_stale(self, tmp: Path, *, grace: float = 60.0) -> int:
        """Remove the notices whose temporary file is gone (a process killed while it
        downloaded; the store removes its file, store.remove_abandoned), and half-written ones
        older than `grace` seconds. Returns how many were removed."""
        removed = 0
        cutoff = time.time() - grace
        for path in self.directory.iterdir():
            try:
                if path.suffix == ".new":
                    gone = path.stat().st_mtime < cutoff
                else:
                    try:
                        raw = json.loads(path.read_text())
                    except ValueError:
                        raw = None  # not a notice of ours: written whole, never half
                    name = raw.get("name") if isinstance(raw, dict) else None
                    gone = not isinstance(name, str) or not (tmp / Path(name).name).exists()
                if gone:
                    path.unlink(missing_ok=True)
                    removed += 1
            except OSError as exc:  # removed meanwhile (its download ended), or unreadable
                log.debug("a download's notice left alone: %s", exc)
        return removed

    def _path(self, url: str) -> Path:
        return self.directory / f"{hashlib.sha256(url.encode()).hexdigest()}.json"

    def post(self, url: str, tmp_path: Path, size: int | None) -> None:
        """Say that `url` is being downloaded into `tmp_path` (the notice written whole, then
        put in place: a reader never sees half of one)."""
        text = json.dumps({"url": url, "name": tmp_path.name, "size": size})
        try:
            fd, name = tempfile.mkstemp(dir=self.directory, suffix=".new")
            try:
                with os.fdopen(fd, "w") as out:
                    out.write(text)
                os.replace(name, self._path(url))
            except BaseException:
                Path(name).unlink(missing_ok=True)
                raise
        except OSError as exc:
            log.warning("could not post a download for other workers to follow: %s", exc)

    def withdraw(self, url: str, tmp_path: Path) -> None:
        """The download of `url` into `tmp_path` is over: its notice goes, unless a later
        download's has replaced it."""
        found = self.find(url)
        if found is not None and found.name == tmp_path.name:
            try:
                self._path(url).unlink(missing_ok=True)
            except OSError as exc:
                log.warning("could not withdraw a download's notice: %s", exc)

    def find(self, url: str) -> Notice | None:
        """Where `url` is being downloaded, if a notice says so."""
        try:
            raw = json.loads(self._path(url).read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(raw, dict) or raw.get("url") != url:
            return None
        name, size = raw.get("name"), raw.get("size")
        if not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
            return None
        if size is not None and (not isinstance(size, int) or size < 0):
            return None
        return Notice(name, size)
