"""Caches of copies the server can make again (parsed upstream pages, the renderings the workers
share, the refusal counts): a damaged one is discarded, not a server that cannot start."""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import diskcache

from pullthrough.storage.locks import LockDir

log = logging.getLogger(__name__)
RESET_WAIT_SECONDS = 300.0


def disposable_cache(directory: Path, locks: LockDir, **settings: Any) -> diskcache.Cache:
    """The diskcache in `directory`; if its SQLite file is damaged (not a database, or a
    malformed one: a disk error, a copy cut short), it is removed and made anew, by one process
    at a time (the others, waiting, open the new one). A database that is only busy or cannot
    be read now (sqlite3.OperationalError: locked, an I/O error) is not discarded."""
    if (cache := _opened(directory, settings)) is not None:
        return cache
    with locks.named(f"reset_{directory.name}").held(RESET_WAIT_SECONDS):
        if (cache := _opened(directory, settings)) is not None:  # made anew meanwhile
            return cache
        log.warning("%s is damaged: its copies are discarded and made anew", directory)
        aside = directory.with_name(f"{directory.name}.damaged-{os.getpid()}")
        directory.rename(aside)
        shutil.rmtree(aside, ignore_errors=True)
        return diskcache.Cache(str(directory), **settings)


def _opened(directory: Path, settings: dict[str, Any]) -> diskcache.Cache | None:
    """The diskcache in `directory`, or None if its database is damaged."""
    try:
        return diskcache.Cache(str(directory), **settings)
    except sqlite3.OperationalError:  # a DatabaseError too, but not a damaged one: raised
        raise
    except sqlite3.DatabaseError as exc:
        log.info("%s cannot be opened: %s", directory, exc)
        return None
