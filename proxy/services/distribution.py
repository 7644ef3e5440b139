"""What one distribution (a base path) shows: its remote's pages through the remote's filters.

Resolved pages are kept in memory per process until their TTL runs out, so a warm request costs a
dictionary lookup; the web layer memoizes its renderings on the view itself.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cachetools import LRUCache
from packaging.utils import NormalizedName

from proxy.config import DistributionSettings
from proxy.core.filenames import project_candidates
from proxy.core.filters import FilterSpec
from proxy.core.models import DistFile, ProjectList, ProjectPage
from proxy.services.remote_pages import RemotePages

STALE_RETRY_SECONDS = 10.0  # how soon to try the upstream again after serving a stale copy


class NotFound(LookupError):
    """No such project or file here; the message says which."""


@dataclass(eq=False)
class PageView:
    page: ProjectPage  # filtered
    expires_at: float
    stale: bool
    files: dict[str, DistFile]
    renders: dict[object, object] = field(default_factory=dict)  # the web layer's memo


@dataclass(eq=False)
class ListView:
    names: tuple[str, ...]
    expires_at: float
    stale: bool
    renders: dict[object, object] = field(default_factory=dict)


class Distribution:
    def __init__(
        self,
        settings: DistributionSettings,
        *,
        filters: FilterSpec,
        pages: RemotePages | None,
        clock: Callable[[], float] = time.time,
        memory_pages: int = 4096,
    ) -> None:
        self.name = settings.name
        self.base_path = settings.base_path
        self.filters = filters
        self.pages = pages
        self.clock = clock
        self._views: LRUCache[str, PageView] = LRUCache(maxsize=memory_pages)
        self._list: ListView | None = None
        self._lock = threading.Lock()

    def _expiry(self, fetched_at: float, stale: bool) -> float:
        if stale:
            return self.clock() + STALE_RETRY_SECONDS
        return fetched_at + (self.pages.ttl if self.pages else math.inf)

    def fresh_view(self, name: str) -> PageView | None:
        """The project's view if this process holds a fresh one; never any I/O (the hot path)."""
        with self._lock:
            view = self._views.get(name)
        return view if view is not None and self.clock() < view.expires_at else None

    def project(self, name: NormalizedName) -> PageView:
        """The project's page; raises NotFound, or UpstreamError when nothing is cached."""
        if (view := self.fresh_view(name)) is not None:
            return view
        if self.pages is None or not self.filters.allows_project(name):
            raise NotFound(f"Project {name!r} not found in distribution {self.base_path!r}")
        cached = self.pages.project(name)
        if not isinstance(cached.value, ProjectPage):
            raise NotFound(f"Project {name!r} not found in distribution {self.base_path!r}")
        page = self.filters.filter_page(cached.value)
        if not page.files and cached.value.files:
            raise NotFound(f"No file of project {name!r} passes the filters of {self.base_path!r}")
        view = PageView(
            page,
            self._expiry(cached.fetched_at, cached.stale),
            cached.stale,
            {f.filename: f for f in page.files},
        )
        with self._lock:
            self._views[name] = view
        return view

    def projects(self) -> ListView:
        view = self._list
        if view is not None and self.clock() < view.expires_at:
            return view
        names = self.filters.listed_names()
        if names is not None:
            view = ListView(tuple(names), math.inf, False)
        elif self.pages is None:
            view = ListView((), math.inf, False)
        else:
            cached = self.pages.project_list()
            upstream = cached.value.names if isinstance(cached.value, ProjectList) else ()
            if not self.filters.is_trivial:
                upstream = tuple(self.filters.filter_names(upstream))
            view = ListView(upstream, self._expiry(cached.fetched_at, cached.stale), cached.stale)
        self._list = view
        return view

    def find_file(self, filename: str) -> tuple[DistFile, PageView]:
        """The file's entry on its project's (filtered) page: a file the page would not list
        cannot be fetched by asking for it directly."""
        for candidate in project_candidates(filename):
            try:
                view = self.project(candidate)
            except NotFound:
                continue
            if (entry := view.files.get(filename)) is not None:
                return entry, view
        raise NotFound(f"File {filename!r} not found in distribution {self.base_path!r}")
