"""Caches of copies the server can make again (parsed upstream pages, the renderings the workers
share, the refusal counts): a damaged one is discarded, not a server that cannot start. The
finding and setting aside of a damaged diskcache serve the cache ledger too (which is kept and
rebuilt: services.ledger_rebuild)."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sqlite3
import time
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
    if (cache := opened(directory, settings)) is not None:
        return cache
    with locks.named(f"reset_{directory.name}").held(RESET_WAIT_SECONDS):
        if (cache := opened(directory, settings)) is not None:  # made anew meanwhile
            return cache
        log.warning("%s is damaged: its copies are discarded and made anew", directory)
        shutil.rmtree(set_aside(directory), ignore_errors=True)
        return diskcache.Cache(str(directory), **settings)


def opened(
    directory: Path, settings: dict[str, Any], *, check: bool = False
) -> diskcache.Cache | None:
    """The diskcache in `directory`, or None if its database is damaged. `check`: every page
    of it read (SQLite's quick_check: one read of the file), for a cache whose damage must
    be found at start-up, not at the first read of a damaged page."""
    try:
        cache = diskcache.Cache(str(directory), **settings)
    except sqlite3.OperationalError:  # a DatabaseError too, but not a damaged one: raised
        raise
    except sqlite3.DatabaseError as exc:
        log.info("%s cannot be opened: %s", directory, exc)
        return None
    if check and (damage := _damage(directory)) is not None:
        log.info("%s is damaged: %s", directory, damage)
        cache.close()
        return None
    return cache


def _damage(directory: Path) -> str | None:
    """What SQLite's quick_check finds wrong with a diskcache's database, or None."""
    with contextlib.closing(sqlite3.connect(directory / diskcache.core.DBNAME, timeout=60)) as db:
        try:
            found = [str(row[0]) for row in db.execute("PRAGMA quick_check")]
        except sqlite3.OperationalError:  # busy, or unreadable now: not damage
            raise
        except sqlite3.DatabaseError as exc:
            return str(exc)
    return None if found == ["ok"] else "; ".join(found[:5])


def set_aside(directory: Path) -> Path:
    """Rename a damaged cache's folder beside it, out of the way of a new one (with its
    SQLite journal files: they belong to that database); returns where it went."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    aside = directory.with_name(f"{directory.name}.damaged-{stamp}-{os.getpid()}")
    directory.rename(aside)
    return aside
