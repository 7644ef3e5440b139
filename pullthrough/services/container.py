"""Build the services for a Settings: one place that knows the data folder's layout."""

from __future__ import annotations

from dataclasses import dataclass, field

import diskcache

from pullthrough.catalog.db import (
    Catalog,
    database_url,
    exclusive,
    make_engine,
    prepare,
    retry_busy,
)
from pullthrough.catalog.generation import Generation
from pullthrough.config import Settings
from pullthrough.services import orphans, sync  # noqa: F401 - they declare background tasks
from pullthrough.services.auth import Authenticator, admin_password
from pullthrough.services.cached_content import CachedContent
from pullthrough.services.pullthrough import PullThrough
from pullthrough.services.registry import Registry, sync_config
from pullthrough.services.uploads import Uploads
from pullthrough.services.worker import TaskWorker
from pullthrough.storage.ledger import CacheLedger
from pullthrough.storage.locks import LockDir
from pullthrough.storage.store import ArtifactStore


@dataclass
class Services:
    settings: Settings
    store: ArtifactStore
    ledger: CacheLedger
    locks: LockDir
    catalog: Catalog
    registry: Registry
    pages_cache: diskcache.Cache
    pullthrough: PullThrough
    uploads: Uploads
    auth: Authenticator
    workers: list[TaskWorker] = field(default_factory=list)  # run in this process

    def wake_workers(self) -> None:
        for worker in self.workers:
            worker.wakeup.set()

    def start_worker(self) -> TaskWorker:
        worker = TaskWorker(self)
        self.workers.append(worker)
        worker.start()
        return worker

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        for client in self.registry.clients():
            client.close()
        self.pages_cache.close()
        self.ledger.close()
        self.catalog.close()
        self.registry.generation.close()


def prepare_data(settings: Settings) -> tuple[str, bool]:
    """The one-time setup of a data folder and its catalog - the journal mode, migrations, the
    configured remotes and distributions, the admin password - done by whichever process gets
    here first while the others wait for it. `pullthrough serve` runs it before any worker
    starts; a worker runs it again and finds nothing left to do. Returns the admin password and
    whether it was generated just now."""
    data = settings.server.data_dir
    data.mkdir(parents=True, exist_ok=True)
    locks = LockDir(data / "locks")
    engine = make_engine(database_url(settings.server.database_url, data))
    catalog = Catalog(engine)
    generation = Generation(data / "catalog.generation")

    def setup() -> None:
        with exclusive(engine, "setup", locks.named("catalog_setup").held(timeout=300)):
            prepare(engine)
            if sync_config(catalog, settings):
                generation.bump()

    try:
        retry_busy(setup)
    finally:
        generation.close()
        catalog.close()
    return admin_password(settings.auth, data)


def build_services(settings: Settings) -> Services:
    password, _ = prepare_data(settings)
    data = settings.server.data_dir
    store = ArtifactStore(data / "artifacts")
    ledger = CacheLedger(data / "ledger", max_size=settings.cache.max_size)
    locks = LockDir(data / "locks")
    catalog = Catalog(make_engine(database_url(settings.server.database_url, data)))
    generation = Generation(data / "catalog.generation")
    # Parsed upstream pages; diskcache keeps large values (PyPI's project list) in files.
    pages_cache = diskcache.Cache(
        str(data / "pages"), eviction_policy="least-recently-used", size_limit=2 * 2**30
    )
    registry = Registry(
        catalog, generation, pages_cache, ttl=settings.cache.index_ttl, tls_dir=data / "tls"
    )
    events = CachedContent(catalog, store)
    return Services(
        settings=settings,
        store=store,
        ledger=ledger,
        locks=locks,
        catalog=catalog,
        registry=registry,
        pages_cache=pages_cache,
        pullthrough=PullThrough(store, ledger, locks, events),
        uploads=Uploads(catalog, store, ledger),
        auth=Authenticator(settings.auth.admin_username, password, settings.auth.admin_token),
    )
