"""What one distribution (a base path) shows: its remote's pages through the remote's filters.

Resolved pages are kept in memory per process until their TTL runs out, so a warm request costs a
dictionary lookup; the web layer memoizes its renderings on the view itself.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from cachetools import LRUCache
from packaging.utils import NormalizedName, canonicalize_name

from pullthrough.core.advisories import Advisory, refusals
from pullthrough.core.filenames import parse_filename, project_candidates
from pullthrough.core.filters import FilterSpec
from pullthrough.core.models import DistFile, ProjectList, ProjectPage
from pullthrough.core.policy import (
    AUDIT,
    NO_BLOCKLIST,
    NO_POLICY,
    Blocklist,
    Hold,
    Policy,
    quarantined,
    screen,
    without,
)
from pullthrough.core.yanks import Yank, apply_yanks
from pullthrough.services.local_content import LocalContent
from pullthrough.services.remote_pages import RemotePages
from pullthrough.upstream.client import UpstreamClient, UpstreamError

log = logging.getLogger(__name__)
STALE_RETRY_SECONDS = 10.0  # how soon to try the upstream again after serving a stale copy
# Local pages are rebuilt whenever the catalog changes (the registry drops this object); the
# expiry only bounds how long a page of another process's change could be missed.
LOCAL_SECONDS = 300.0


class NotFound(LookupError):
    """No such project or file here; the message says which."""


class Held(LookupError):
    """A file the remote's policy holds back (403); says why and until when."""

    def __init__(self, filename: str, hold: Hold) -> None:
        super().__init__(hold.message(filename))
        self.hold = hold


@dataclass(eq=False)
class PageView:
    page: ProjectPage  # filtered, and screened by the remote's policy
    expires_at: float
    stale: bool
    files: dict[str, DistFile]
    renders: dict[object, object] = field(default_factory=dict)  # the web layer's memo
    held: dict[str, Hold] = field(default_factory=dict)  # filename -> why the policy holds it


@dataclass(eq=False)
class ListView:
    names: tuple[str, ...]
    expires_at: float
    stale: bool
    renders: dict[object, object] = field(default_factory=dict)


class Distribution:
    """A base path: its repository's content first, then its remote's (through the filters)."""

    def __init__(
        self,
        name: str,
        base_path: str,
        *,
        filters: FilterSpec,
        pages: RemotePages | None,
        policy: Policy = NO_POLICY,
        blocklist: Blocklist = NO_BLOCKLIST,
        local: LocalContent | None = None,
        merge_remote: bool = False,
        allow_uploads: bool = False,
        repository_id: str | None = None,  # where uploads go (None: pinned or no repository)
        hidden: bool = False,
        yanks: Mapping[str, Sequence[Yank]] | None = None,  # project -> this base path's yanks
        advisories: Callable[[NormalizedName], Sequence[Advisory]] = lambda _: (),
        block_malicious: bool = True,
        hold_advisories: bool = False,
        private: bool = False,
        clock: Callable[[], float] = time.time,
        memory_pages: int = 4096,
    ) -> None:
        self.name = name
        self.base_path = base_path
        self.filters = filters
        self.policy = policy
        self.blocklist = blocklist
        self.pages = pages
        self.local = local
        self.merge_remote = merge_remote
        self.allow_uploads = allow_uploads
        self.repository_id = repository_id
        self.hidden = hidden
        self.yanks = yanks or {}
        self.advisories = advisories
        self.block_malicious = block_malicious
        self.hold_advisories = hold_advisories
        self.private = private
        self.clock = clock
        self._views: LRUCache[str, PageView] = LRUCache(maxsize=memory_pages)
        self._list: ListView | None = None
        self._lock = threading.Lock()

    def origin(self, entry: DistFile) -> tuple[UpstreamClient | None, bool]:
        """Where to fetch a file this distribution lists but the store lacks, and whether to
        keep it: on-demand repository content from its remote, else the distribution's remote."""
        if self.local is not None and (origin := self.local.origin(entry.filename)) is not None:
            return origin.client, origin.keep
        return (self.pages.client if self.pages else None), True

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
        local = self.local.project(name) if self.local else None
        if local is not None and not (self.merge_remote and self.pages):
            # A project we hold shadows the upstream's (dependency-confusion guard).
            view = PageView(local, self.clock() + LOCAL_SECONDS, False, _by_filename(local))
        else:
            view = self._remote_view(name, local)
        refused = refusals(
            view.page,
            self.advisories(name),
            block_malicious=self.block_malicious,
            hold_advisories=self.hold_advisories,
        )
        refused.update(self.blocklist.refused(view.page))
        refused.update(quarantined(view.page))
        if refused:
            page = without(view.page, refused)
            held = {**view.held, **refused}
            view = PageView(page, view.expires_at, view.stale, _by_filename(page), held=held)
        if yanks := self.yanks.get(name):
            page = apply_yanks(view.page, yanks)
            view = PageView(page, view.expires_at, view.stale, _by_filename(page), held=view.held)
        with self._lock:
            self._views[name] = view
        return view

    def _remote_view(self, name: NormalizedName, local: ProjectPage | None) -> PageView:
        missing = NotFound(f"Project {name!r} not found in distribution {self.base_path!r}")
        if self.pages is None or not self.filters.allows_project(name):
            if local is not None:
                return PageView(local, self.clock() + LOCAL_SECONDS, False, _by_filename(local))
            raise missing
        try:
            cached = self.pages.project(name)
        except UpstreamError:
            if local is None:
                raise
            return PageView(local, self.clock() + STALE_RETRY_SECONDS, True, _by_filename(local))
        remote = cached.value if isinstance(cached.value, ProjectPage) else None
        page = self.filters.filter_page(remote) if remote is not None else None
        expires = self._expiry(cached.fetched_at, cached.stale)
        held: dict[str, Hold] = {}
        if page is not None and self.policy.active:
            now = datetime.fromtimestamp(self.clock(), UTC)
            screened = screen(self.policy, page, now)
            if screened.held and self.policy.mode == AUDIT:
                for filename, hold in screened.held.items():
                    log.info("audit: %s would be held: %s", filename, hold.reason)
            page = screened.page
            held = {} if self.policy.mode == AUDIT else screened.held
            if screened.matures_at is not None:  # the page changes then: not a moment later
                expires = min(expires, screened.matures_at.timestamp())
        if page is not None and (refused := quarantined(page)):  # upstream's files only
            page, held = without(page, refused), {**held, **refused}
        if local is not None:
            page = _merge(local, page)
        elif remote is None:
            raise missing
        assert page is not None
        if local is None and not page.files and remote is not None and remote.files and not held:
            raise NotFound(f"No file of project {name!r} passes the filters of {self.base_path!r}")
        return PageView(page, expires, cached.stale, _by_filename(page), held=held)

    def projects(self) -> ListView:
        view = self._list
        if view is not None and self.clock() < view.expires_at:
            return view
        local = self.local.names() if self.local else []
        names = self.filters.listed_names()
        if names is not None:
            view = ListView(_union(local, names), math.inf, False)
        elif self.pages is None:
            view = ListView(tuple(local), math.inf, False)
        else:
            cached = self.pages.project_list()
            upstream = cached.value.names if isinstance(cached.value, ProjectList) else ()
            if not self.filters.is_trivial:
                upstream = tuple(self.filters.filter_names(upstream))
            expires = self._expiry(cached.fetched_at, cached.stale)
            view = ListView(_union(local, upstream), expires, cached.stale)
        self._list = view
        return view

    def upload_refusal(self, filename: str) -> Hold | None:
        """Why an upload of this file is refused here (blocklist, malicious-package advisory),
        or None. Raises InvalidFilename."""
        info = parse_filename(filename)
        if hold := self.blocklist.hold_for(info.name, info.version, filename):
            return hold
        page = ProjectPage(info.name, (DistFile(filename, ""),))
        found = refusals(
            page,
            self.advisories(info.name),
            block_malicious=self.block_malicious,
            hold_advisories=False,
        )
        return found.get(filename)

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
            if (hold := view.held.get(filename)) is not None:
                raise Held(filename, hold)
        raise NotFound(f"File {filename!r} not found in distribution {self.base_path!r}")


def _by_filename(page: ProjectPage) -> dict[str, DistFile]:
    return {f.filename: f for f in page.files}


def _merge(local: ProjectPage, remote: ProjectPage | None) -> ProjectPage:
    """Local files, then the remote's files of other names (local wins on a filename)."""
    if remote is None:
        return local
    have = {f.filename for f in local.files}
    files = local.files + tuple(f for f in remote.files if f.filename not in have)
    return replace(local, files=files)  # the local project's status governs


def _union(local: list[str], upstream: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    if not local:
        return tuple(upstream)
    seen = {canonicalize_name(n) for n in upstream}
    return tuple(upstream) + tuple(n for n in local if n not in seen)
