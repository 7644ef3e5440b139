"""A remote's index pages, cached on disk for every worker, revalidated after the TTL.

When the upstream fails, the last good copy is served, however old, marked stale; when it does
not answer, the copy is served after `STALE_WAIT_SECONDS` while the revalidation goes on behind
(pip and uv give up on a request after 15 and 30 seconds: an upstream that accepts connections
and never answers costs a minute per try and retry).
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import cast

import diskcache

from pullthrough import core
from pullthrough.core import simple_html, simple_json
from pullthrough.core.models import ProjectList, ProjectPage
from pullthrough.services.later import WriteBehind
from pullthrough.storage.locks import KeyedLocks
from pullthrough.upstream.client import (
    Fetched,
    UpstreamClient,
    UpstreamError,
    UpstreamRefused,
    UpstreamTimeout,
    describe_url,
)

log = logging.getLogger(__name__)

STALE_RETRY_SECONDS = 10.0  # how soon to try the upstream again after serving a stale copy
STALE_WAIT_SECONDS = 5.0  # how long a request with a kept copy waits for its revalidation
MAX_REVALIDATIONS = 8  # revalidations going on behind at once, per remote and process


def _reader() -> str:
    """Who reads pages here: a digest of the code that parses them (core, and this module).
    A copy another build read - the release before an upgrade in place - keeps what that
    build made of the page, and a 304 would keep it for as long as the upstream's page does
    not change: its next revalidation asks for the page whole, so this build reads it."""
    digest = hashlib.sha256()
    for path in sorted(Path(core.__file__).parent.glob("*.py")) + [Path(__file__)]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


READER = _reader()


@dataclass(frozen=True, slots=True)
class Cached:
    """An upstream answer as we keep it: `value` is None when the upstream said 404."""

    value: ProjectPage | ProjectList | None
    fetched_at: float
    etag: str | None = None
    last_modified: str | None = None
    stale: bool = False
    read_by: str = ""  # the build that parsed it (READER); "" for one from before this field


def completed(copy: Cached) -> Cached:
    """A copy with every field: one an older build pickled, when Cached had fewer, comes back
    with those missing (reading one fails: slots have no class default), here given their
    defaults."""
    if all(hasattr(copy, f.name) for f in fields(Cached)):
        return copy
    return Cached(
        **{f.name: getattr(copy, f.name) for f in fields(Cached) if hasattr(copy, f.name)}
    )


def validators(copy: Cached | None) -> tuple[str | None, str | None]:
    """The ETag and Last-Modified to revalidate a kept copy with: none for a copy another build
    read (_reader), so the upstream sends the page whole and this build reads it."""
    if copy is None or copy.read_by != READER:
        return None, None
    return copy.etag, copy.last_modified


def is_json(fetched: Fetched) -> bool:
    """A PEP 691 page, whatever its Content-Type says: an HTML page never starts with `{`, and
    a JSON page labelled text/html or text/plain read as HTML would be a page with no files."""
    return "json" in fetched.content_type or fetched.body[:64].lstrip()[:1] == b"{"


def emptied(fetched: Fetched, value: ProjectPage | ProjectList, cached: Cached | None) -> bool:
    """An HTML project page with no files, where the kept copy had some, and that does not say
    it is an index page (PEP 629's `pypi:repository-version` meta, which PyPI's pages carry):
    a proxy's or CDN's error page answered 200, most likely, not a project whose every file was
    deleted; it is not taken for one. Without a kept copy, or with the meta, it is a page."""
    return (
        isinstance(value, ProjectPage)
        and not value.files
        and cached is not None
        and isinstance(cached.value, ProjectPage)
        and bool(cached.value.files)
        and not is_json(fetched)
        and b"pypi:repository-version" not in fetched.body.lower()
    )


def parse_page(fetched: Fetched, name: str, max_files: int) -> ProjectPage:
    """The project page, refused before parsing when it lists more than `max_files` files (a
    count of file entries in the bytes: parsing a million costs gigabytes)."""
    json = is_json(fetched)
    entries = fetched.body.count(b'"filename"') if json else fetched.body.lower().count(b"<a ")
    if entries > max_files:
        raise UpstreamRefused(
            f"refused: the upstream page {describe_url(fetched.url)} lists about {entries} files,"
            f" more than {max_files} (the remote's max_page_files)"
        )
    if json:
        return simple_json.parse_project_page(fetched.body, fetched.url, name)
    return simple_html.parse_project_page(fetched.body, fetched.url, name)


def parse_list(fetched: Fetched) -> ProjectList:
    if is_json(fetched):
        return simple_json.parse_project_list(fetched.body)
    return simple_html.parse_project_list(fetched.body)


def copy_key(*parts: str) -> str:
    """The key of a page's copy in the page cache, its last part the page's URL: text, which
    diskcache stores as it is (a tuple key is pickled, and the pickle optimized, at every look:
    ~50 us)."""
    return "\0".join(parts)


def _url_of(key: str) -> str:
    return describe_url(key.rpartition("\0")[2])


def keep_copy(cache: diskcache.Cache | WriteBehind, key: str, copy: Cached) -> None:
    """Store a page's copy under `key` (copy_key), fetched or stored again because in use (the
    cache evicts the oldest stored first). A full disk leaves it unkept: the page is served all
    the same."""
    try:
        cache.set(key, copy)
    except (OSError, sqlite3.Error) as exc:
        log.warning("could not keep the page %s: %s", _url_of(key), exc)


def kept_copy(cache: diskcache.Cache | WriteBehind, key: str) -> Cached | None:
    """The copy kept under `key` (copy_key), if this version can read it, with every field: one
    another version wrote (after a rollback) or a damaged one is no copy; it is fetched again
    and replaced."""
    try:
        copy = cast(Cached | None, cache.get(key))
        return None if copy is None else completed(copy)
    except (OSError, sqlite3.Error):
        raise
    except Exception as exc:  # unpickling runs the pickle's own code: any error may come
        log.warning("unreadable copy of %s in the page cache: %r", _url_of(key), exc)
        return None


class RemotePages:
    def __init__(
        self,
        client: UpstreamClient,
        cache: diskcache.Cache | WriteBehind,
        *,
        ttl: float,
        clock: Callable[[], float] = time.time,
        stale_wait: float = STALE_WAIT_SECONDS,
    ) -> None:
        self.client = client
        self.cache = cache
        self.ttl = ttl
        self.clock = clock
        self.stale_wait = stale_wait
        self._locks: KeyedLocks[str] = KeyedLocks()
        self._behind: dict[str, Future[Cached]] = {}  # revalidations going on, by URL
        self._behind_lock = threading.Lock()
        self._quiet_until = 0.0  # the upstream did not answer: copies are served until then

    def project(self, name: str) -> Cached:
        url = self.client.project_url(name)
        limit = self.client.remote.max_page_files
        return self._get(url, lambda fetched: parse_page(fetched, name, limit))

    def project_list(self) -> Cached:
        return self._get(self.client.root, parse_list)

    def _get(self, url: str, parse: Callable[[Fetched], ProjectPage | ProjectList]) -> Cached:
        key = copy_key("page", *self.client.seen_as, url)  # one index may show remotes apart
        cached = kept_copy(self.cache, key)
        if cached is not None and self.clock() - cached.fetched_at < self.ttl:
            return cached
        if cached is None:
            return self._revalidate(url, key, parse)  # nothing else to give: it is waited for
        if self.clock() < self._quiet_until:
            return replace(cached, stale=True)  # the upstream did not answer another page
        revalidation = self._behind_of(url, key, parse)
        if revalidation is None:  # as many going on as may: this one in the request's time
            return self._revalidate(url, key, parse)
        try:
            return revalidation.result(timeout=self.stale_wait)
        except FutureTimeout:
            pass
        self._quiet_until = self.clock() + STALE_RETRY_SECONDS
        log.warning(
            "serving a stale copy of %s: the upstream has not answered in %.0fs",
            describe_url(url),
            self.stale_wait,
        )
        return replace(cached, stale=True)

    def _behind_of(
        self, url: str, key: str, parse: Callable[[Fetched], ProjectPage | ProjectList]
    ) -> Future[Cached] | None:
        """The revalidation of `url` going on, or one started now in a thread of its own
        (None when `MAX_REVALIDATIONS` are going on): a request waits for it only so long,
        the copy is kept when it ends."""
        with self._behind_lock:
            if (going := self._behind.get(url)) is not None:
                return going
            if len(self._behind) >= MAX_REVALIDATIONS:
                return None
            future: Future[Cached] = Future()
            self._behind[url] = future

        def run() -> None:
            try:
                future.set_result(self._revalidate(url, key, parse))
            except BaseException as exc:  # for whoever waits
                future.set_exception(exc)
            finally:
                with self._behind_lock:
                    del self._behind[url]

        threading.Thread(target=run, name="pullthrough-revalidate", daemon=True).start()
        return future

    def _revalidate(
        self, url: str, key: str, parse: Callable[[Fetched], ProjectPage | ProjectList]
    ) -> Cached:
        # One fetch per page per process; the others wait for it (and only they) and take its
        # result. The copy is looked at again once the lock is held, waited for or not: a fetch
        # may have been kept and let go of the lock since the first look.
        with self._locks.holding(url):
            cached = kept_copy(self.cache, key)
            if cached is not None and self.clock() - cached.fetched_at < self.ttl:
                return cached
            try:
                fresh = self._fetch(url, cached, parse)
            except UpstreamError as exc:
                if cached is None:
                    raise
                if isinstance(exc, UpstreamTimeout):
                    self._quiet_until = self.clock() + STALE_RETRY_SECONDS
                log.warning("serving a stale copy of %s: %s", describe_url(url), exc)
                keep_copy(self.cache, key, cached)  # in use: not the oldest stored
                return replace(cached, stale=True)
            keep_copy(self.cache, key, fresh)
            self._quiet_until = 0.0  # it answers: the other pages need not wait 10 s
            return fresh

    def _fetch(
        self, url: str, cached: Cached | None, parse: Callable[[Fetched], ProjectPage | ProjectList]
    ) -> Cached:
        etag, modified = validators(cached)
        fetched = self.client.get_page(url, etag=etag, last_modified=modified)
        now = self.clock()
        if fetched.status == 304 and cached is not None:
            return replace(cached, fetched_at=now, stale=False)
        if fetched.status == 304:  # nothing was asked for conditionally: not "no such project"
            raise UpstreamError(
                f"upstream answered 304 to an unconditional GET: {describe_url(url)}"
            )
        if fetched.status == 404:
            return Cached(None, now, read_by=READER)
        try:
            value = parse(fetched)
        except ValueError as exc:
            raise UpstreamError(
                f"upstream sent an unreadable page for {describe_url(url)}: {exc}"
            ) from None
        if emptied(fetched, value, cached):
            raise UpstreamError(
                f"upstream sent a page with no files and no index markers for"
                f" {describe_url(url)}, which had files: not taken for an index page"
            )
        return Cached(value, now, fetched.etag, fetched.last_modified, read_by=READER)
