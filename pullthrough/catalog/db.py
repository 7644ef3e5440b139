"""Engine and sessions: SQLite in the data folder by default, or a PostgreSQL URL.

SQLite runs in WAL mode. A transaction that may write starts with BEGIN IMMEDIATE: writers from
several gunicorn workers queue on the busy timeout instead of failing on a lock upgrade. A
read-only one (`Catalog.reading`) starts with a plain BEGIN and takes no write lock: it reads the
last committed state while a writer works (a sync's big commit), and holds up no writer.

One-time setup (`prepare`: the journal mode, the migrations) runs once, under a lock, before a
process uses the catalog. Switching a database into WAL mode needs a lock that SQLite's busy
timeout does not wait for, so it must never happen on every connect: a worker connecting while
another writes would fail at boot ("database is locked").
"""

from __future__ import annotations

import logging
import sqlite3
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, TypeVar, cast

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Engine, Insert, Table, create_engine, event, inspect, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import DeclarativeBase, ORMExecuteState, Session, sessionmaker

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"
BUSY_TIMEOUT_MS = 60_000  # how long a statement waits for another process's write lock
BOOT_RETRY_SECONDS = 120.0  # how long start-up keeps retrying a catalog that stays busy
T = TypeVar("T")
READ_ONLY = "pullthrough_read_only"  # the execution option of `Catalog.reading`'s connections
# SQLite's lower() folds ASCII letters only: this one folds every script's, as Python does
SQLITE_LOWER = "pullthrough_lower"
IN_BATCH = 500  # values in one IN (...): well within every database's bound-parameter limit


def in_batches(values: Sequence[T]) -> Iterator[Sequence[T]]:
    """`values` IN_BATCH at a time, for IN (...) lists of any length."""
    for start in range(0, len(values), IN_BATCH):
        yield values[start : start + IN_BATCH]


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


def database_url(configured: str, data_dir: Path) -> str:
    return configured or f"sqlite:///{(data_dir / 'catalog.sqlite3').resolve()}"


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}
        )

        @event.listens_for(engine, "connect")
        def _sqlite_settings(dbapi_connection: Any, _record: Any) -> None:
            # Per-connection settings only: none of these takes a lock.
            dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
            cursor = dbapi_connection.cursor()
            cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            # LIKE compares case as PostgreSQL's does: `name__contains` is Pulp's case-sensitive
            # filter on either catalog (`__icontains` lowers both sides).
            cursor.execute("PRAGMA case_sensitive_like=ON")
            cursor.close()
            dbapi_connection.create_function(SQLITE_LOWER, 1, _lower, deterministic=True)

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            reading = conn.get_execution_options().get(READ_ONLY)
            conn.exec_driver_sql("BEGIN" if reading else "BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


@contextmanager
def exclusive(engine: Engine, name: str, local: AbstractContextManager[object]) -> Iterator[None]:
    """Run a block in one process at a time: `local` (a lock on this host) always, and on
    PostgreSQL also a session advisory lock, so nodes on other hosts wait too."""
    with local:
        if engine.dialect.name != "postgresql":
            yield
            return
        key = zlib.crc32(f"pullthrough:{name}".encode())
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                conn.commit()


def retry_busy(work: Callable[[], T], *, seconds: float = BOOT_RETRY_SECONDS) -> T:
    """Run `work`, again and again while the database says it is locked (another process
    holds it longer than the busy timeout, or a lock SQLite does not wait for)."""
    deadline = time.monotonic() + seconds
    pause = 0.05
    while True:
        try:
            return work()
        except (OperationalError, sqlite3.OperationalError) as exc:
            busy = "locked" in str(exc) or "busy" in str(exc)
            if not busy or time.monotonic() >= deadline:
                raise
            log.warning("the catalog is busy at start-up; trying again: %s", exc)
            time.sleep(pause)
            pause = min(pause * 2, 2.0)


class NewerCatalog(Exception):
    """The catalog names a migration this code does not have: a newer release has upgraded it.
    This release would misread what it stores in the new shape, and write what that release
    misreads: it does not start on it."""

    def __init__(self, revision: str, head: str) -> None:
        super().__init__(
            f"the catalog is at migration {revision}, which this release (migrations up to"
            f" {head}) does not have: a newer release has upgraded it. Start that release, or"
            " a newer one, on it (or restore the catalog from before the upgrade)"
        )


def prepare(engine: Engine, *, newer_in_use: bool = False) -> None:
    """The database's one-time setup: the journal mode, then the migrations. Call it under
    `exclusive`; it is a no-op on a catalog that is already set up. A catalog a newer release
    has upgraded is refused (NewerCatalog), unless `newer_in_use`: see `migrate`."""
    if engine.dialect.name == "sqlite":
        raw = engine.raw_connection()  # outside any transaction: the switch needs that
        try:
            cursor = raw.cursor()
            if cursor.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()
        finally:
            raw.close()
    migrate(engine, newer_in_use=newer_in_use)


def migrate(engine: Engine, *, newer_in_use: bool = False) -> None:
    """Bring the schema to the newest migration. A catalog at a migration this code does not
    have (a newer release's) is refused with NewerCatalog; with `newer_in_use` (a new worker of
    a node that started on the catalog before a newer node upgraded it: a rolling upgrade) it
    is used as it is, as that node's other workers go on using it, with a warning."""
    if pending(engine, newer_in_use=newer_in_use):
        log.info("migrating the catalog to its newest migration")
        command.upgrade(alembic_config(engine), "head")


def pending(engine: Engine, *, newer_in_use: bool = False) -> bool:
    """Whether the catalog has migrations of this code to run (one read, no lock). A newer
    release's catalog: NewerCatalog, or with `newer_in_use` a warning and False (`migrate`)."""
    script = ScriptDirectory.from_config(alembic_config(engine))
    head = script.get_current_head()
    assert head is not None
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    if current == head:
        return False
    if current is not None and not _known(script, current):
        if not newer_in_use:
            raise NewerCatalog(current, head)
        log.warning(
            "the catalog is at migration %s, which this release (migrations up to %s) does not"
            " have: a newer node has upgraded it since this node started. This worker goes on"
            " as the node's others do; replace the node with the newer release",
            current,
            head,
        )
        return False
    return True


def _known(script: ScriptDirectory, revision: str) -> bool:
    try:
        script.get_revision(revision)
    except CommandError:
        return False
    return True


class Catalog:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._inserts: dict[str, Insert] = {}  # by table: `add_new`'s statements
        # One snapshot per read, as SQLite's read transaction is: a list's count and its rows
        # agree while writers commit (PostgreSQL's default gives each statement its own).
        snapshot = {"isolation_level": "REPEATABLE READ"} if engine.dialect.name != "sqlite" else {}
        readers = engine.execution_options(**{READ_ONLY: True}, **snapshot)
        self._readers = sessionmaker(readers, expire_on_commit=False)
        event.listen(self._readers, "before_flush", _refuse_changes)
        event.listen(self._readers, "do_orm_execute", _refuse_statements)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed when the block ends, rolled back on an exception."""
        with self._sessions() as session, session.begin():
            yield session

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A read-only transaction, for what requests read: on SQLite it neither waits for a
        writer nor holds one up. A change made in it is refused (RuntimeError)."""
        with self._readers() as session, session.begin():
            yield session

    def add_new(self, row: DeclarativeBase) -> None:
        """Insert a new object's row in one statement unless a unique column already holds one
        of its values (a row another worker added): about 0.3 ms, where looking first and
        adding through the ORM takes about 1 (once per file a cold request fetches). The
        object itself stays outside any session; columns it leaves unset or None get their
        defaults."""
        values = {
            attr.columns[0].key: value
            for attr in inspect(type(row)).column_attrs
            if (value := getattr(row, attr.key)) is not None
        }
        with self.engine.begin() as conn:
            conn.execute(self._insert_new(cast(Table, row.__table__)), values)

    def _insert_new(self, table: Table) -> Insert:
        if (statement := self._inserts.get(table.name)) is None:
            dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
            statement = self._inserts[table.name] = dialect.insert(table).on_conflict_do_nothing()
        return statement

    def close(self) -> None:
        self.engine.dispose()


def _refuse_changes(session: Session, _context: Any, _instances: Any) -> None:
    if session.new or session.dirty or session.deleted:
        raise RuntimeError("a change in a read-only catalog transaction (Catalog.reading)")


def _refuse_statements(state: ORMExecuteState) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        raise RuntimeError("a write in a read-only catalog transaction (Catalog.reading)")
