"""Build the services for a Settings: one place that knows the data folder's layout."""

from __future__ import annotations

from dataclasses import dataclass, field

import diskcache

from proxy.catalog.db import Catalog, database_url, make_engine, migrate
from proxy.catalog.generation import Generation
from proxy.config import Settings
from proxy.services import orphans, sync  # noqa: F401 - they declare background tasks
from proxy.services.auth import Authenticator, admin_password
from proxy.services.cached_content import CachedContent
from proxy.services.pullthrough import PullThrough
from proxy.services.registry import Registry, sync_config
from proxy.services.uploads import Uploads
from proxy.services.worker import TaskWorker
from proxy.storage.ledger import CacheLedger
from proxy.storage.locks import LockDir
from proxy.storage.store import ArtifactStore


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


def build_services(settings: Settings) -> Services:
    data = settings.server.data_dir
    data.mkdir(parents=True, exist_ok=True)
    store = ArtifactStore(data / "artifacts")
    ledger = CacheLedger(data / "ledger", max_size=settings.cache.max_size)
    locks = LockDir(data / "locks")
    engine = make_engine(database_url(settings.server.database_url, data))
    migrate(engine, locks)
    catalog = Catalog(engine)
    generation = Generation(data / "catalog.generation")
    lock = locks.lock("config-sync")
    lock.acquire(timeout=120)
    try:
        if sync_config(catalog, settings):
            generation.bump()
    finally:
        lock.release()
    # Parsed upstream pages; diskcache keeps large values (PyPI's project list) in files.
    pages_cache = diskcache.Cache(
        str(data / "pages"), eviction_policy="least-recently-used", size_limit=2 * 2**30
    )
    registry = Registry(
        catalog, generation, pages_cache, ttl=settings.cache.index_ttl, tls_dir=data / "tls"
    )
    events = CachedContent(catalog, store)
    password, _ = admin_password(settings.auth, data)
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
