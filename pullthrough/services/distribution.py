"""What one distribution (a base path) shows: its repository's content, then its remotes' pages,
each through that remote's filters and policy. With several remotes, a project comes from the
first that has it (index priority, as uv's `first-index`): a later remote cannot shadow it.

Resolved pages are kept in memory per process until their TTL runs out, so a warm request costs a
dictionary lookup; the web layer memoizes its renderings on the view itself.
"""

from __future__ import annotations

import contextlib
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
    Blocklist,
    Hold,
    Policy,
    quarantined,
    screen,
    without,
)
from pullthrough.core.yanks import Yank, apply_yanks
from pullthrough.services.local_content import LocalContent
from pullthrough.services.remote_pages import STALE_RETRY_SECONDS, Cached, RemotePages
from pullthrough.upstream.client import UpstreamClient, UpstreamError

log = logging.getLogger(__name__)
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


@dataclass(frozen=True, eq=False)
class Source:
    """One of a distribution's remotes: its cached pages, its filters and its policy."""

    pages: RemotePages
    filters: FilterSpec
    policy: Policy

    @property
    def client(self) -> UpstreamClient:
        return self.pages.client


@dataclass(eq=False)
class PageView:
    page: ProjectPage  # filtered, and screened by the remote's policy
    expires_at: float
    stale: bool
    files: dict[str, DistFile]
    renders: dict[object, object] = field(default_factory=dict)  # the web layer's memo
    held: dict[str, Hold] = field(default_factory=dict)  # filename -> why the policy holds it
    source: Source | None = None  # the remote whose files the page lists (None: local only)
    local: bool = False  # it lists the repository's files, which an upload changes any time


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
        remotes: Sequence[Source] = (),
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
        generation: bytes | None = None,  # the catalog's, when the registry built it
        clock: Callable[[], float] = time.time,
        memory: int = 64 * 2**20,  # bytes (estimated) of page views kept in memory
    ) -> None:
        self.name = name
        self.base_path = base_path
        self.remotes = tuple(remotes)
        self.blocklist = blocklist
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
        self.generation = generation
        self._views: LRUCache[str, PageView] = LRUCache(maxsize=memory, getsizeof=_footprint)
        self._list: ListView | None = None
        self._lock = threading.Lock()

    @property
    def ttl(self) -> float:
        """How long clients may keep its pages: its remotes' shortest TTL (0: no remote)."""
        return min((r.pages.ttl for r in self.remotes), default=0)

    def client_ttl(self, view: PageView) -> float:
        """How long clients may keep this page: 0 when it lists the repository's files (an
        upload, a `modify`, a new version served change it at once, and uv keeps a page its
        max-age long, pip's cache too when asked), else the remotes' TTL."""
        return 0 if view.local else self.ttl

    def origin(self, entry: DistFile, view: PageView) -> tuple[UpstreamClient | None, bool]:
        """Where to fetch a file this distribution lists but the store lacks, and whether to
        keep it: on-demand repository content from its remote, else the remote whose page
        lists it."""
        if self.local is not None and (origin := self.local.origin(entry.filename)) is not None:
            return origin.client, origin.keep
        return (view.source.client if view.source else None), True

    def _expiry(self, source: Source, fetched_at: float, stale: bool) -> float:
        if stale:
            return self.clock() + STALE_RETRY_SECONDS
        return fetched_at + source.pages.ttl

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
        if local is not None and not (self.merge_remote and self.remotes):
            # A project we hold shadows the upstream's (dependency-confusion guard).
            expires = self.clock() + LOCAL_SECONDS
            view = PageView(local, expires, False, _by_filename(local), local=True)
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
            view = replace(view, page=page, files=_by_filename(page), held=held, renders={})
        if yanks := self.yanks.get(name):
            page = apply_yanks(view.page, yanks)
            view = replace(view, page=page, files=_by_filename(page), renders={})
        with self._lock, contextlib.suppress(ValueError):  # one larger than the memo: not kept
            self._views[name] = view
        return view

    def _remote_view(self, name: NormalizedName, local: ProjectPage | None) -> PageView:
        """The first remote's page that has the project (its filters allow the name and its
        upstream knows it), merged under the local page if there is one."""
        for source in self.remotes:
            if not source.filters.allows_project(name):
                continue
            try:
                cached = source.pages.project(name)
            except UpstreamError:
                # Unknown whether this remote has it: a later one must not answer instead.
                if local is None:
                    raise
                expires = self.clock() + STALE_RETRY_SECONDS
                return PageView(local, expires, True, _by_filename(local), local=True)
            if isinstance(cached.value, ProjectPage):
                return self._screened(source, cached, cached.value, name, local)
        if local is not None:
            expires = self.clock() + LOCAL_SECONDS
            return PageView(local, expires, False, _by_filename(local), local=True)
        raise NotFound(f"Project {name!r} not found in distribution {self.base_path!r}")

    def _screened(
        self,
        source: Source,
        cached: Cached,
        remote: ProjectPage,
        name: NormalizedName,
        local: ProjectPage | None,
    ) -> PageView:
        """A remote's page through that remote's filters and policy."""
        page = source.filters.filter_page(remote)
        expires = self._expiry(source, cached.fetched_at, cached.stale)
        held: dict[str, Hold] = {}
        policy = source.policy
        if policy.active:
            now = datetime.fromtimestamp(self.clock(), UTC)
            screened = screen(policy, page, now)
            if screened.held and policy.mode == AUDIT:
                for filename, hold in screened.held.items():
                    log.info("audit: %s would be held: %s", filename, hold.reason)
            page = screened.page
            held = {} if policy.mode == AUDIT else screened.held
            if screened.matures_at is not None:  # the page changes then: not a moment later
                expires = min(expires, screened.matures_at.timestamp())
        if refused := quarantined(page):  # upstream's files only
            page, held = without(page, refused), {**held, **refused}
        if local is not None:
            page = _merge(local, page)
        elif not page.files and remote.files and not held:
            raise NotFound(f"No file of project {name!r} passes the filters of {self.base_path!r}")
        files = _by_filename(page)
        return PageView(
            page, expires, cached.stale, files, held=held, source=source, local=local is not None
        )

    def projects(self) -> ListView:
        """Every remote's projects (each through its filters), then its repository's."""
        view = self._list
        if view is not None and self.clock() < view.expires_at:
            return view
        names: tuple[str, ...] = ()
        expires, stale = math.inf, False
        failed: list[UpstreamError] = []
        for source in self.remotes:
            listed = source.filters.listed_names()
            if listed is not None:  # an allow-list: no need to ask the upstream
                names = _union(names, listed)
                continue
            try:
                cached = source.pages.project_list()
            except UpstreamError as exc:
                # The other lists still help (the list only points at pages, which decide
                # what is served); this one is asked for again soon.
                failed.append(exc)
                log.warning(
                    "project list of remote %r left out: %s", source.client.remote.name, exc
                )
                expires, stale = min(expires, self.clock() + STALE_RETRY_SECONDS), True
                continue
            upstream = cached.value.names if isinstance(cached.value, ProjectList) else ()
            if not source.filters.is_trivial:
                upstream = tuple(source.filters.filter_names(upstream))
            names = _union(names, upstream)
            expires = min(expires, self._expiry(source, cached.fetched_at, cached.stale))
            stale = stale or cached.stale
        if failed and len(failed) == len(self.remotes) and self.local is None:
            raise failed[-1]
        if self.local is not None:
            names = _union(names, self.local.names())
        view = self._list = ListView(self.blocklist.unlisted(names), expires, stale)
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


def _footprint(view: PageView) -> int:
    """About what a page view holds in memory once rendered in both formats and gzipped:
    measured at 11 MiB for 4,000 files (parsed entries, HTML, JSON and gzip forms); at least
    12 KiB, so that the memo keeps at most about 5,000 small pages."""
    return 12 * 2**10 + 3 * 2**10 * len(view.page.files)


def _by_filename(page: ProjectPage) -> dict[str, DistFile]:
    return {f.filename: f for f in page.files}


def _merge(local: ProjectPage, remote: ProjectPage) -> ProjectPage:
    """Local files, then the remote's files of other names (local wins on a filename)."""
    have = {f.filename for f in local.files}
    files = local.files + tuple(f for f in remote.files if f.filename not in have)
    return replace(local, files=files)  # the local project's status governs


def _union(first: Sequence[str], then: Sequence[str]) -> tuple[str, ...]:
    """The names of `first`, then those of `then` that `first` lacks (by normalized name)."""
    if not first or not then:
        return tuple(first or then)
    seen = {canonicalize_name(n) for n in first}
    return tuple(first) + tuple(n for n in then if canonicalize_name(n) not in seen)
