"""Every process's view of the distributions, rebuilt from the catalog when it changes."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import diskcache
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from pullthrough.catalog.db import Catalog
from pullthrough.catalog.generation import ChangeSignal
from pullthrough.catalog.models import Distribution as DistributionRow
from pullthrough.catalog.models import DistributionRemote, Publication, Remote
from pullthrough.catalog.models import Yank as YankRow
from pullthrough.config import RemoteSettings
from pullthrough.core.policy import Blocklist
from pullthrough.core.yanks import Yank
from pullthrough.services.advisories import Advisories
from pullthrough.services.distribution import Distribution, Source
from pullthrough.services.later import WriteBehind
from pullthrough.services.local_content import LocalContent, yank_of
from pullthrough.services.remote_pages import RemotePages
from pullthrough.upstream.client import Observer, UpstreamClient

log = logging.getLogger(__name__)


class Registry:
    def __init__(
        self,
        catalog: Catalog,
        generation: ChangeSignal,
        pages_cache: diskcache.Cache | WriteBehind,  # parsed upstream pages
        *,
        ttl: float,
        tls_dir: Path,
        advisories: Advisories,
        observer: Observer | None = None,  # metrics of upstream requests
    ) -> None:
        self.catalog = catalog
        self.observer = observer
        self.generation = generation
        self.pages_cache = pages_cache
        self.ttl = ttl
        self.tls_dir = tls_dir
        self.advisories = advisories
        self._token: bytes | None = None  # none read yet: the first request loads
        self._distributions: dict[str, Distribution] = {}
        # Per remote and configuration: its pages, with its client (and connection pool).
        self._remotes: dict[tuple[str, object], RemotePages] = {}
        self._lock = threading.Lock()
        self._remotes_lock = threading.Lock()  # used by requests too (on-demand files)

    def get(self, base_path: str) -> Distribution | None:
        return self.all().get(base_path)

    def all(self) -> dict[str, Distribution]:
        token = self.generation.read()
        if token != self._token:
            with self._lock:
                if token != self._token:
                    self._distributions = self._load(token)
                    self._token = token
        return self._distributions

    def shown(self) -> list[str]:
        """The base paths anyone may learn of (status, metrics): neither hidden nor private."""
        return [b for b, d in self.all().items() if not (d.hidden or d.private)]

    def changed(self) -> None:
        """Call after committing a catalog change: every process reloads on its next request."""
        self.generation.bump()

    def clients(self) -> list[UpstreamClient]:
        self.all()
        with self._remotes_lock:
            return [pages.client for pages in self._remotes.values()]

    def shown_clients(self) -> list[UpstreamClient]:
        """The remotes of the distributions anyone may learn of, by name: a remote only a
        private or hidden distribution uses is not named to everyone (status)."""
        found = {
            source.client.remote.name: source.client
            for base_path in self.shown()
            for source in self.all()[base_path].remotes
        }
        return [found[name] for name in sorted(found)]

    def _remote_pages(self, remote: Remote) -> RemotePages:
        """One per remote and configuration, kept across reloads (a page being fetched when the
        distributions are reloaded is not fetched again by the reloaded ones); an older
        configuration's client is closed."""
        key = (remote.id, remote.pulp_last_updated)
        with self._remotes_lock:
            if (pages := self._remotes.get(key)) is None:
                for old in [k for k in self._remotes if k[0] == remote.id]:
                    self._remotes.pop(old).client.close()
                settings = RemoteSettings.from_values(remote.name, remote.settings)
                client = UpstreamClient(settings, tls_dir=self.tls_dir, observer=self.observer)
                pages = self._remotes[key] = RemotePages(client, self.pages_cache, ttl=self.ttl)
        return pages

    def _local(self, repository_id: str, number: int) -> LocalContent:
        return LocalContent(self.catalog, repository_id, number, self._client_by_id)

    def _client_by_id(self, remote_id: str) -> UpstreamClient | None:
        """The client for on-demand content synced from this remote."""
        with self.catalog.reading() as session:
            remote = session.get(Remote, remote_id)
            return self._remote_pages(remote).client if remote is not None else None

    def _load(self, generation: bytes) -> dict[str, Distribution]:
        query = select(DistributionRow).options(
            selectinload(DistributionRow.remote),
            selectinload(DistributionRow.later_remotes).selectinload(DistributionRemote.remote),
            selectinload(DistributionRow.repository),
            selectinload(DistributionRow.repository_version),
            selectinload(DistributionRow.publication).selectinload(Publication.repository_version),
        )
        found: dict[str, Distribution] = {}
        advisories = self.advisories.lookup()  # imports bump the generation too
        with self.catalog.reading() as session:
            yanks: dict[str, dict[str, list[Yank]]] = {}
            for yank in session.scalars(
                select(YankRow).where(YankRow.distribution_id.is_not(None))
            ):
                assert yank.distribution_id is not None
                by_name = yanks.setdefault(yank.distribution_id, {})
                by_name.setdefault(yank.name, []).append(yank_of(yank))
            for row in session.scalars(query):
                sources = []
                for remote in row.remotes:
                    pages = self._remote_pages(remote)
                    settings = pages.client.remote
                    sources.append(Source(pages, settings.filters, settings.holds))
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
                    remotes=sources,
                    blocklist=Blocklist.parse(row.blocklist or ()),
                    local=local,
                    merge_remote=row.merge_remote,
                    allow_uploads=row.allow_uploads,
                    repository_id=upload_repo,
                    hidden=row.hidden,
                    yanks=yanks.get(row.id, {}),
                    advisories=advisories,
                    block_malicious=row.block_malicious,
                    hold_advisories=row.hold_advisories,
                    private=row.private,
                    generation=generation,
                )
        return found
