"""Build the services for a Settings: one place that knows the data folder's layout."""

from __future__ import annotations

from dataclasses import dataclass

import diskcache

from proxy.config import Settings
from proxy.core.filters import FilterSpec
from proxy.services.distribution import Distribution
from proxy.services.pullthrough import PullThrough
from proxy.services.remote_pages import RemotePages
from proxy.storage.ledger import CacheLedger
from proxy.storage.locks import LockDir
from proxy.storage.store import ArtifactStore
from proxy.upstream.client import UpstreamClient


@dataclass
class Services:
    settings: Settings
    store: ArtifactStore
    ledger: CacheLedger
    pages_cache: diskcache.Cache
    clients: dict[str, UpstreamClient]  # by remote name
    distributions: dict[str, Distribution]  # by base path
    pullthrough: PullThrough

    def close(self) -> None:
        for client in self.clients.values():
            client.close()
        self.pages_cache.close()
        self.ledger.close()


def build_services(settings: Settings) -> Services:
    data = settings.server.data_dir
    data.mkdir(parents=True, exist_ok=True)
    store = ArtifactStore(data / "artifacts")
    ledger = CacheLedger(data / "ledger", max_size=settings.cache.max_size)
    locks = LockDir(data / "locks")
    # Parsed upstream pages; diskcache keeps large values (PyPI's project list) in files.
    pages_cache = diskcache.Cache(
        str(data / "pages"), eviction_policy="least-recently-used", size_limit=2 * 2**30
    )
    clients = {r.name: UpstreamClient(r) for r in settings.remotes}
    distributions: dict[str, Distribution] = {}
    dist_clients: dict[str, UpstreamClient] = {}
    for dist in settings.distributions:
        remote = settings.remote(dist.remote) if dist.remote else None
        pages = None
        if remote is not None:
            dist_clients[dist.base_path] = clients[remote.name]
            pages = RemotePages(clients[remote.name], pages_cache, ttl=settings.cache.index_ttl)
        distributions[dist.base_path] = Distribution(
            dist, filters=remote.filters if remote else FilterSpec(), pages=pages
        )
    return Services(
        settings=settings,
        store=store,
        ledger=ledger,
        pages_cache=pages_cache,
        clients=clients,
        distributions=distributions,
        pullthrough=PullThrough(store, ledger, locks, dist_clients),
    )
