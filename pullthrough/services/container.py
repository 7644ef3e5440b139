"""The services of one process, built from Settings: the one place that knows the data folder's
layout and which background tasks exist."""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Mapping
from copy import copy
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import diskcache
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from pullthrough.catalog.db import (
    Catalog,
    database_url,
    exclusive,
    make_engine,
    pending,
    prepare,
    retry_busy,
)
from pullthrough.catalog.generation import ChangeSignal, Generation
from pullthrough.catalog.models import Distribution, Remote, now
from pullthrough.config import DISTRIBUTION_FIELDS, ConfigError, Settings, StorageSettings
from pullthrough.core.access import overlaps
from pullthrough.core.fields import fingerprints, withdrawn
from pullthrough.core.remotes import UNSET, Unset, ordered
from pullthrough.services import audit, orphans, repair, sync, versions
from pullthrough.services.advisories import Advisories
from pullthrough.services.artifacts import Artifacts
from pullthrough.services.audit import CONFIG_ACTOR
from pullthrough.services.auth import Authenticator, FailureLimit, admin_password
from pullthrough.services.cached_content import CachedContent
from pullthrough.services.chunked_uploads import COMMIT, ChunkedUploads, commit_task
from pullthrough.services.coordination import (
    AdvisoryLocks,
    SharedGeneration,
    SharedLedger,
    adopt_local_ledger,
)
from pullthrough.services.counters import COUNTERS, Counters
from pullthrough.services.later import Later, WriteBehind
from pullthrough.services.ledger_rebuild import open_local_ledger, repair_local_ledger
from pullthrough.services.metrics import (
    CacheCollector,
    Metrics,
    RefusalCollector,
    TaskCollector,
    from_environment,
)
from pullthrough.services.pullthrough import PullThrough
from pullthrough.services.registry import Registry
from pullthrough.services.tasks import Handler, TaskWorker, count_by_state, purge_tasks
from pullthrough.services.uploads import Uploads
from pullthrough.storage.copies import disposable_cache
from pullthrough.storage.flights import Flights
from pullthrough.storage.ledger import Ledger
from pullthrough.storage.locks import LockDir, Locks
from pullthrough.storage.store import ArtifactStore, BlobStore

log = logging.getLogger(__name__)
SYNC = "pullthrough.tasks.sync"
ORPHAN_CLEANUP = "pullthrough.tasks.orphan_cleanup"
REPAIR = "pullthrough.tasks.repair"
DELETE_VERSION = "pullthrough.tasks.repository.delete_version"
PURGE_TASKS = "pullthrough.tasks.purge"
BACKGROUND_TASKS: Mapping[str, Handler] = {
    SYNC: sync.sync,
    ORPHAN_CLEANUP: orphans.orphan_cleanup,
    REPAIR: repair.repair,
    COMMIT: commit_task,
    DELETE_VERSION: versions.delete,
    PURGE_TASKS: purge_tasks,
}
EXTENSION = "pullthrough"  # the key of a Flask app's services in app.extensions


@dataclass
class Services:
    settings: Settings
    store: BlobStore
    ledger: Ledger
    locks: Locks
    catalog: Catalog
    registry: Registry
    advisories: Advisories
    pages_cache: diskcache.Cache
    renders_cache: diskcache.Cache  # rendered pages every worker may send (web.shared)
    pullthrough: PullThrough
    uploads: Uploads
    artifacts: Artifacts
    chunked_uploads: ChunkedUploads
    auth: Authenticator
    counters: Counters
    metrics: Metrics
    later: Later  # copies kept for the other workers, written after the answer
    workers: list[TaskWorker] = field(default_factory=list)  # run in this process
    # This node's clock, for what it decides alone (on PostgreSQL, times several nodes
    # compare are the catalog's: tasks.catalog_time)
    clock: Callable[[], datetime] = now

    def wake_workers(self) -> None:
        """A task was queued: this process's workers look now rather than at their next poll."""
        for worker in self.workers:
            worker.wakeup.set()

    def new_worker(self, name: str | None = None) -> TaskWorker:
        return TaskWorker(
            self,
            BACKGROUND_TASKS,
            heartbeat=self.settings.tasks.heartbeat,
            dead_after=self.settings.tasks.worker_timeout,
            name=name,
        )

    def start_worker(self) -> TaskWorker:
        worker = self.new_worker()
        self.workers.append(worker)
        worker.start()
        return worker

    def prepare_thread(self) -> None:
        """Open the calling thread's connections before a request needs them: diskcache keeps
        one per thread to each cache, and the catalog's pool starts empty. A new worker's first
        requests each ran on a new thread and paid for them (gunicorn_worker.prepare_threads)."""
        for cache in (self.pages_cache, self.renders_cache, self.counters.cache):
            cache.get("")
        self.ledger.tracks("")  # its caches on one host; the catalog in a cluster
        self.ledger.sha_for_url("")
        with self.catalog.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")

    def abort_abandoned_writes(self) -> None:
        """In the background (a start does not wait for the object store): abort the writes to
        the store that killed processes left unfinished (orphans.abort_abandoned_writes)."""

        def run() -> None:
            try:
                orphans.abort_abandoned_writes(self.store, self.locks)
            except Exception as exc:  # the catalog's locks away: the next start or cleanup
                log.warning("could not look for unfinished writes to the store: %s", exc)

        threading.Thread(target=run, name="pullthrough-unfinished", daemon=True).start()

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.pullthrough.close()
        for client in self.registry.clients():
            client.close()
        self.pages_cache.close()
        self.renders_cache.close()
        self.counters.close()
        self.ledger.close()
        self.locks.close()
        self.catalog.close()
        self.registry.generation.close()


def _shared(engine: Engine) -> bool:
    """Several nodes may share this catalog (PostgreSQL): they coordinate through it."""
    return engine.dialect.name == "postgresql"


def cache_coordination(engine: Engine, data: Path, max_size: int) -> tuple[Ledger, Locks]:
    """The cache ledger and the download locks: in the data folder for one host (checked,
    and rebuilt if damaged, by prepare_data), in PostgreSQL for every node of a cluster."""
    if _shared(engine):
        return SharedLedger(engine, max_size=max_size), AdvisoryLocks(engine.url)
    locks = LockDir(data / "locks")
    return open_local_ledger(data / "ledger", locks, max_size=max_size), locks


def change_signal(engine: Engine, data: Path) -> ChangeSignal:
    if _shared(engine):
        return SharedGeneration(engine)
    return Generation(data / "catalog.generation")


def make_store(storage: StorageSettings, data: Path) -> BlobStore:
    """The file store the settings name: the data folder's, or an S3 bucket (temporary files
    stay in the data folder either way)."""
    if storage.backend != "s3":
        return ArtifactStore(data / "artifacts")
    from pullthrough.storage.s3 import S3Location, S3Store  # boto3: only when used

    location = S3Location(
        endpoint_url=storage.s3_endpoint_url or None,
        bucket=storage.s3_bucket,
        region=storage.s3_region,
        prefix=storage.s3_prefix,
        access_key_id=storage.s3_access_key_id,
        secret_access_key=storage.s3_secret_access_key,
        addressing_style=storage.s3_addressing_style,
        redirect_seconds=storage.s3_redirect,
        public_endpoint_url=storage.s3_public_endpoint_url or None,
    )
    return S3Store(location, data / "artifacts" / ".tmp")


# A distribution's settings that are its own columns (its remotes are links to rows)
_DIST_SETTINGS = tuple(f for f in DISTRIBUTION_FIELDS if f.name not in ("remote", "remotes"))


def sync_config(catalog: Catalog, settings: Settings) -> bool:
    """Create or update the remotes and distributions the config file declares (by name), with
    the settings the file gives; what it does not give keeps what the API set, and what it gave
    at its last reading and gives no more goes back to its default unless the API changed it
    since (`withdrawn`). Returns whether anything changed. ConfigError, and nothing written,
    where a declared base path overlaps one the API gave another distribution."""
    changed = False
    with catalog.session() as session:
        remotes: dict[str, Remote] = {}
        for declared in settings.remotes:
            row = session.scalar(select(Remote).where(Remote.name == declared.name))
            values = declared.values()
            read = fingerprints({k: v for k, v in values.items() if k in declared.given})
            named = declared.given - (declared.embedded if row is not None else frozenset())
            given = {k: v for k, v in values.items() if k in named}
            dropped: set[str] = set()
            if row is None:
                row = Remote(name=declared.name, settings=given, configured=read)
                session.add(row)
            else:
                dropped = withdrawn(row.configured or {}, declared.given, row.settings)
                merged = {k: v for k, v in {**row.settings, **given}.items() if k not in dropped}
                if row.configured != read:
                    row.configured = read
                if merged == row.settings:
                    remotes[declared.name] = row
                    continue
                row.settings = merged
            changed = True
            detail = {**keys(given), **({"defaults": sorted(dropped)} if dropped else {})}
            audit.record(session, CONFIG_ACTOR, "remote_configured", declared.name, detail=detail)
            remotes[declared.name] = row
        session.flush()
        in_file: list[Distribution] = []
        # Nothing written before the base paths are checked (_apart): a lookup would write out
        # a distribution of the file at a base path the API gave, and fail on the catalog's
        # unique base path instead of saying what is wrong.
        with session.no_autoflush:
            for declared_dist in settings.distributions:
                dist = session.scalar(
                    select(Distribution).where(Distribution.name == declared_dist.name)
                )
                named = declared_dist.given - (declared_dist.embedded if dist else frozenset())
                wanted: dict[str, Any] = {
                    k: getattr(declared_dist, k) for k in named if k not in ("remote", "remotes")
                }
                first: Remote | Unset | None = UNSET
                if "remote" in named:
                    first = remotes[declared_dist.remote] if declared_dist.remote else None
                listed = (
                    [remotes[n] for n in declared_dist.remotes] if "remotes" in named else UNSET
                )
                if named & {"remote", "remotes"}:
                    wanted["remotes"] = ordered(dist.remotes if dist else [], first, listed)
                read = fingerprints(
                    {
                        f.name: getattr(declared_dist, f.name)
                        for f in _DIST_SETTINGS
                        if f.name in declared_dist.given
                    }
                )
                if dist is None:
                    dist = Distribution(name=declared_dist.name, configured=read)
                    session.add(dist)
                    in_file.append(dist)
                else:
                    in_file.append(dist)
                    current = {f.name: getattr(dist, f.name) for f in _DIST_SETTINGS}
                    dropped = withdrawn(dist.configured or {}, declared_dist.given, current)
                    wanted.update(
                        {f.name: copy(f.default) for f in _DIST_SETTINGS if f.name in dropped}
                    )
                    if dist.configured != read:
                        dist.configured = read
                    if all(getattr(dist, k) == v for k, v in wanted.items()):
                        continue
                for key, value in wanted.items():
                    setattr(dist, key, value)
                changed = True
                name = declared_dist.name
                audit.record(
                    session, CONFIG_ACTOR, "distribution_configured", name, detail=keys(wanted)
                )
            _apart(session, in_file)
    return changed


def _apart(session: Session, in_file: list[Distribution]) -> None:
    """The file's distributions' base paths overlap no other distribution's (the file's own
    are checked when it is read; the others are the API's), as the API checks its own."""
    names = {d.name for d in in_file}
    with session.no_autoflush:  # the others as stored; the file's as they are about to be
        rows = session.execute(select(Distribution.name, Distribution.base_path))
        others = [(name, path) for name, path in rows if name not in names]
    for i, dist in enumerate(in_file):
        for name, base_path in others:
            if overlaps(dist.base_path, base_path):
                raise ConfigError(
                    f"distributions[{i}].base_path: {dist.base_path!r} overlaps the base path"
                    f" {base_path!r} of distribution {name!r} (in the catalog, not in the file)"
                )


def keys(given: dict[str, Any]) -> dict[str, Any]:
    """What an audit event says of settings written: their names (values may be secrets)."""
    return {"settings": sorted(given)}


def prepare_data(settings: Settings, *, node_started: bool = False) -> tuple[str, bool]:
    """The one-time setup of a data folder and its catalog - the journal mode, migrations, a
    damaged cache ledger set aside and rebuilt, the configured remotes and distributions, the
    admin password - done by whichever process gets here first while the others wait for it.
    A node's setup (cli.server.start_node) runs it before any gunicorn worker starts. A worker
    of that node (`node_started`) only reads the catalog's migration (no lock: a worker started while the
    others serve waits for nobody, and never sets the ledger they have open aside); it does
    the setup only for migrations the catalog lacks (a release installed since, and the
    server reloaded), and uses a catalog a newer release upgraded since (db.migrate). Returns
    the admin password and whether it was generated just now."""
    data = settings.server.data_dir
    data.mkdir(parents=True, exist_ok=True)
    locks = LockDir(data / "locks")
    engine = make_engine(database_url(settings.server.database_url, data))
    catalog = Catalog(engine)

    def setup() -> None:
        with exclusive(engine, "setup", locks.named("catalog_setup").held(timeout=300)):
            prepare(engine, newer_in_use=node_started)
            if not _shared(engine):  # after the migrations: a rebuild reads the catalog
                repair_local_ledger(catalog, data / "ledger", locks)
            elif adopted := adopt_local_ledger(engine, data / "ledger"):
                log.info("the shared cache ledger adopted %d files cached before", adopted)
            generation = change_signal(engine, data)  # after the migrations: its table
            try:
                if sync_config(catalog, settings):
                    generation.bump()
            finally:
                generation.close()

    try:
        if not node_started or retry_busy(lambda: pending(engine, newer_in_use=True)):
            retry_busy(setup)
    finally:
        catalog.close()
    return admin_password(settings.auth, data)


# The pages and renderings the workers share go oldest-stored first: a page in use is stored
# again at each expiry anyway (also on a 304, or when the upstream fails and it is served
# stale; a sync's copy at each sync), and a read is then a plain SELECT (12 us here),
# where least-recently-used makes every read a write transaction (94 us, and behind other
# workers' writes).
SHARED_EVICTION = "least-recently-stored"


def renders_cache(data: Path, locks: LockDir) -> diskcache.Cache:
    """The page renderings the workers share (web.shared), in the data folder."""
    return disposable_cache(
        data / "renders", locks, eviction_policy=SHARED_EVICTION, size_limit=2**30
    )


def discard_renderings(data: Path) -> None:
    """At a server's start, before its workers: the renderings its last run shared go. A
    repository's page stays valid until the catalog changes, and that run may have been an
    older release, which rendered pages otherwise (before a fix to them): this one renders
    them again, once."""
    cache = renders_cache(data, LockDir(data / "locks"))
    try:
        cache.clear()
    finally:
        cache.close()


def build_services(settings: Settings, *, node_started: bool = False) -> Services:
    password, _ = prepare_data(settings, node_started=node_started)
    data = settings.server.data_dir
    store = make_store(settings.storage, data)
    catalog = Catalog(make_engine(database_url(settings.server.database_url, data)))
    ledger, locks = cache_coordination(catalog.engine, data, settings.cache.max_size)
    generation = change_signal(catalog.engine, data)
    # Parsed upstream pages; diskcache keeps large values (PyPI's project list) in files.
    copies = LockDir(data / "locks")  # a damaged cache of copies is made anew, one at a time
    pages_cache = disposable_cache(
        data / "pages", copies, eviction_policy=SHARED_EVICTION, size_limit=2 * 2**30
    )
    advisories = Advisories(catalog)
    metrics = from_environment()
    later = Later()
    registry = Registry(
        catalog,
        generation,
        WriteBehind(pages_cache, later),  # written once the page's answer is on its way
        ttl=settings.cache.index_ttl,
        tls_dir=data / "tls",
        advisories=advisories,
        observer=metrics,
    )
    counters = Counters(disposable_cache(data / "counters", copies, **COUNTERS))
    artifacts = Artifacts(catalog, store, ledger, locks)
    metrics.read_at_scrape(CacheCollector(ledger, settings.cache.max_size))
    metrics.read_at_scrape(RefusalCollector(counters, registry.shown))
    metrics.shown_remotes = lambda: [client.remote.name for client in registry.shown_clients()]
    metrics.read_at_scrape(TaskCollector(functools.partial(count_by_state, catalog)))
    return Services(
        settings=settings,
        store=store,
        ledger=ledger,
        locks=locks,
        catalog=catalog,
        registry=registry,
        advisories=advisories,
        pages_cache=pages_cache,
        renders_cache=renders_cache(data, copies),
        pullthrough=PullThrough(
            store,
            ledger,
            locks,
            CachedContent(
                catalog,
                drop=functools.partial(orphans.drop_unrecorded, catalog, ledger, locks, store),
            ),
            metrics=metrics,
            flights=Flights(data / "flights", store.tmp),
        ),
        uploads=Uploads(catalog, store, ledger, locks),
        artifacts=artifacts,
        chunked_uploads=ChunkedUploads(catalog, store, ledger, locks, artifacts),
        auth=Authenticator(
            catalog,
            settings.auth.admin_username,
            password,
            settings.auth.admin_token,
            FailureLimit(settings.auth.failure_burst, settings.auth.failure_window),
        ),
        counters=counters,
        metrics=metrics,
        later=later,
    )
