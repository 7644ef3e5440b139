"""Every process's view of the distributions, rebuilt from the catalog when it changes."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import diskcache
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from pullthrough.catalog.db import Catalog
from pullthrough.catalog.generation import Generation
from pullthrough.catalog.models import Distribution as DistributionRow
from pullthrough.catalog.models import Publication, Remote
from pullthrough.config import Settings
from pullthrough.core.filters import FilterSpec
from pullthrough.services.distribution import Distribution
from pullthrough.services.local_content import LocalContent
from pullthrough.services.remote_pages import RemotePages
from pullthrough.services.remotes import row_values, settings_of
from pullthrough.upstream.client import UpstreamClient

log = logging.getLogger(__name__)


class Registry:
    def __init__(
        self,
        catalog: Catalog,
        generation: Generation,
        pages_cache: diskcache.Cache,
        *,
        ttl: float,
        tls_dir: Path,
    ) -> None:
        self.catalog = catalog
        self.generation = generation
        self.pages_cache = pages_cache
        self.ttl = ttl
        self.tls_dir = tls_dir
        self._token = b""
        self._distributions: dict[str, Distribution] = {}
        self._clients: dict[tuple[str, object], UpstreamClient] = {}
        self._lock = threading.Lock()

    def get(self, base_path: str) -> Distribution | None:
        return self.all().get(base_path)

    def all(self) -> dict[str, Distribution]:
        token = self.generation.read()
        if token != self._token:
            with self._lock:
                if token != self._token:
                    self._distributions = self._load()
                    self._token = token
        return self._distributions

    def changed(self) -> None:
        """Call after committing a catalog change: every process reloads on its next request."""
        self.generation.bump()

    def clients(self) -> list[UpstreamClient]:
        self.all()
        return list(self._clients.values())

    def _client(self, remote: Remote) -> UpstreamClient:
        # One client (and connection pool) per remote and configuration.
        key = (remote.id, remote.pulp_last_updated)
        if (client := self._clients.get(key)) is None:
            for old in [k for k in self._clients if k[0] == remote.id]:
                self._clients.pop(old).close()
            client = self._clients[key] = UpstreamClient(settings_of(remote, self.tls_dir))
        return client

    def _local(self, repository_id: str, number: int) -> LocalContent:
        return LocalContent(self.catalog, repository_id, number, self._client_by_id)

    def _client_by_id(self, remote_id: str) -> UpstreamClient | None:
        """The client for on-demand content synced from this remote."""
        with self.catalog.session() as session:
            remote = session.get(Remote, remote_id)
            return self._client(remote) if remote is not None else None

    def _load(self) -> dict[str, Distribution]:
        query = select(DistributionRow).options(
            selectinload(DistributionRow.remote),
            selectinload(DistributionRow.repository),
            selectinload(DistributionRow.repository_version),
            selectinload(DistributionRow.publication).selectinload(Publication.repository_version),
        )
        found: dict[str, Distribution] = {}
        with self.catalog.session() as session:
            for row in session.scalars(query):
                pages = None
                filters = FilterSpec()
                if row.remote is not None:
                    client = self._client(row.remote)
                    pages = RemotePages(client, self.pages_cache, ttl=self.ttl)
                    filters = client.remote.filters
                local = None
                upload_repo = None
                pinned = row.publication.repository_version if row.publication else None
                if pinned is not None or row.repository_version is not None:
                    version = pinned or row.repository_version
                    assert version is not None
                    local = self._local(version.repository_id, version.number)
                elif row.repository is not None:
                    repo = row.repository
                    local = self._local(repo.id, repo.latest_number)
                    upload_repo = repo.id
                found[row.base_path] = Distribution(
                    row.name,
                    row.base_path,
                    filters=filters,
                    pages=pages,
                    local=local,
                    merge_remote=row.merge_remote,
                    allow_uploads=row.allow_uploads,
                    repository_id=upload_repo,
                    hidden=row.hidden,
                )
        return found


def sync_config(catalog: Catalog, settings: Settings) -> bool:
    """Create or update the remotes and distributions the config file declares (by name);
    fields the file does not set keep what the API gave them. Returns whether anything changed."""
    changed = False
    with catalog.session() as session:
        remotes: dict[str, Remote] = {}
        for declared in settings.remotes:
            row = session.scalar(select(Remote).where(Remote.name == declared.name))
            values = row_values(declared)
            if row is None:
                row = Remote(name=declared.name, **values)
                session.add(row)
                changed = True
            elif any(getattr(row, k) != v for k, v in values.items()):
                for key, value in values.items():
                    setattr(row, key, value)
                changed = True
            remotes[declared.name] = row
        session.flush()
        for declared_dist in settings.distributions:
            dist = session.scalar(
                select(DistributionRow).where(DistributionRow.name == declared_dist.name)
            )
            remote_id = remotes[declared_dist.remote].id if declared_dist.remote else None
            if dist is None:
                session.add(
                    DistributionRow(
                        name=declared_dist.name,
                        base_path=declared_dist.base_path,
                        remote_id=remote_id,
                        allow_uploads=False,
                    )
                )
                changed = True
            else:
                # Only what the file declares; a remote set through the API stays when the file
                # names none.
                wanted = {"base_path": declared_dist.base_path}
                if remote_id is not None:
                    wanted["remote_id"] = remote_id
                if any(getattr(dist, k) != v for k, v in wanted.items()):
                    for key, value in wanted.items():
                        setattr(dist, key, value)
                    changed = True
    return changed
