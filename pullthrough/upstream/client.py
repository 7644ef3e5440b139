"""The HTTP client for one remote: TLS, proxy, auth, headers, timeouts, bounded retries.

It speaks through urllib3's connection pools directly. requests' layer on top of them (the
prepared request, the adapter, the Response and its cookie jar) took 0.4-0.7 ms of a small
page's GET from an index on loopback (1.0-1.6 ms against 0.6-0.76), twice per cold project.
What this client used of requests is kept: the environment's proxy rules and CA bundle."""

from __future__ import annotations

import functools
import hashlib
import http.client
import os
import re
import socket
import tempfile
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

import certifi
import urllib3
from requests.utils import get_auth_from_url, get_environ_proxies, select_proxy
from urllib3 import BaseHTTPResponse
from urllib3.exceptions import HTTPError as TransportError
from urllib3.exceptions import NewConnectionError
from urllib3.exceptions import TimeoutError as Urllib3Timeout
from urllib3.util import make_headers
from urllib3.util.retry import Retry

from pullthrough import __version__
from pullthrough.config import MAX_SIZE, RemoteSettings
from pullthrough.core.addresses import kind_of, may_fetch
from pullthrough.core.simple_html import cut_short

USER_AGENT = f"pullthrough/{__version__}"
Answer = BaseHTTPResponse  # an upstream's answer whose body is still to be read
# What every request says, unless the request says otherwise: pages may come compressed in the
# codings _Inflater undoes (PyPI's CDN gzips them); files ask for `identity`.
BASE_HEADERS = {
    "User-Agent": USER_AGENT,
    "Accept-Encoding": "gzip, deflate",
    "Accept": "*/*",
    "Connection": "keep-alive",
}
PAGE_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, "
    "text/html;q=0.1"
)
CHUNK = 256 * 1024
# A size as an upstream's headers write it (Content-Length, Content-Range): ASCII digits, at most
# 20 (2**64 has 20; int() reads no more than 4,300, and `\d` takes digits it cannot read)
SIZE = "[0-9]{1,20}"
_SIZE = re.compile(SIZE)
_UNSATISFIED = re.compile(rf"bytes \*/({SIZE})")  # a 416's Content-Range
MAX_REDIRECTS = 10
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


class UpstreamError(Exception):
    """The upstream could not give an answer (502 for our clients)."""

    status = 502
    reported = False  # to the client's error hook, once


class UpstreamTimeout(UpstreamError):
    status = 504


class UpstreamRefused(UpstreamError):
    """The upstream pointed at something this server will not fetch (its own network, a page
    too big); 502, as the upstream's fault."""


class RangeNotSatisfiable(Exception):
    """The upstream answered a Range with 416: the range lies beyond the file (`total` bytes,
    if it said). Not a failure of the upstream's: the client gets the 416."""

    def __init__(self, url: str, total: int | None) -> None:
        super().__init__(f"the range lies beyond the file: {describe_url(url)}")
        self.total = total


class _Addresses:
    """Host name -> its addresses, looked up at most once a minute per host."""

    def __init__(self, ttl: float = 60.0) -> None:
        self.ttl = ttl
        self._seen: dict[str, tuple[float, tuple[str, ...]]] = {}
        self._lock = threading.Lock()

    def of(self, host: str) -> tuple[str, ...]:
        with self._lock:
            seen = self._seen.get(host)
        if seen is not None and time.monotonic() - seen[0] < self.ttl:
            return seen[1]
        try:
            infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
            found = tuple(sorted({str(info[4][0]) for info in infos}))
        except (OSError, UnicodeError):
            found = ()
        with self._lock:
            self._seen[host] = (time.monotonic(), found)
        return found


@dataclass(frozen=True, slots=True)
class Fetched:
    status: int  # 200, 304 or 404
    url: str  # after redirects
    body: bytes = b""
    content_type: str = ""
    etag: str | None = None
    last_modified: str | None = None


def simple_root(url: str) -> str:
    """A remote URL may be the index root (`https://pypi.org/`) or its `/simple/` URL."""
    url = url if url.endswith("/") else url + "/"
    return url if url.rstrip("/").endswith("/simple") else url + "simple/"


def without_credentials(url: str) -> str:
    """A URL without its user and password (those a remote's URL holds log in to the index, as
    pip and Pulp take them: they are no part of any URL it asks, nor of its request lines)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _with_credentials(url: str, username: str | None, password: str | None) -> str:
    if not username:
        return url
    parts = urlsplit(url)
    creds = quote(username, safe="") + (":" + quote(password, safe="") if password else "")
    return urlunsplit(
        parts._replace(netloc=f"{creds}@{parts.hostname}:{parts.port or ''}".rstrip(":"))
    )


def pem_file(pem: str | None, tls_dir: Path) -> str | None:
    """The settings hold PEM text (as Pulp's remotes do); urllib3 wants a file."""
    if not pem:
        return None
    path = tls_dir / (hashlib.sha256(pem.encode()).hexdigest()[:32] + ".pem")
    if not path.exists():
        tls_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(pem)
        tmp.replace(path)
    return str(path)


class Observer(Protocol):
    """Told of every upstream request's outcome (the metrics)."""

    def upstream_error(self, remote: str, exc: UpstreamError) -> None: ...

    def upstream_answered(self, remote: str, kind: str, seconds: float) -> None:
        """A page fetched whole (`page`), or a file's headers received (`file`)."""


class UpstreamClient:
    def __init__(
        self,
        remote: RemoteSettings,
        *,
        tls_dir: Path | None = None,  # where PEM files for requests go (certificates, keys)
        observer: Observer | None = None,  # metrics
    ) -> None:
        self.remote = remote
        self._observer = observer
        self.root = simple_root(without_credentials(remote.url))
        self._origin = urlsplit(self.root)[:2]
        connect = remote.sock_connect_timeout or remote.connect_timeout
        self._timeout = urllib3.Timeout(connect=connect, read=remote.sock_read_timeout)
        self._retry = Retry(
            total=remote.max_retries,
            backoff_factor=0.2,
            status_forcelist=(429, 500, 502, 503, 504),
            allowed_methods=frozenset({"GET", "HEAD"}),
            raise_on_status=False,
            respect_retry_after_header=False,
        )
        # This client follows redirects itself, keeps no cookies (one upstream's cookies are no
        # client's), and reads the environment (HTTPS_PROXY/NO_PROXY, REQUESTS_CA_BUNDLE) once
        # per host, unless the remote sets its own.
        # Like credentials, the remote's headers go to the index's own origin only.
        self._own_headers = dict(remote.header_map)
        # the remote's username and password, else (as requests) those in its URL, unquoted
        username, password = (
            (remote.username, remote.password) if remote.username else get_auth_from_url(remote.url)
        )
        if username:
            # after the remote's headers, as requests' auth came after them
            self._own_headers["Authorization"] = _basic(username, password or "")
        self._addresses = _Addresses()
        if remote.proxy_url:
            proxy = _with_credentials(
                remote.proxy_url, remote.proxy_username, remote.proxy_password
            )
            self._fixed_proxies: dict[str, str] | None = {"http": proxy, "https": proxy}
        else:
            self._fixed_proxies = None
        tls_files = tls_dir or Path(tempfile.gettempdir()) / f"pullthrough-tls-{os.getuid()}"
        env_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        ca_file = pem_file(remote.ca_cert, tls_files)
        self._tls: dict[str, Any] = {"cert_reqs": "CERT_NONE"}  # the pools' TLS keywords
        if ca_file or remote.tls_validation:
            bundle = ca_file or env_bundle or certifi.where()
            where = "ca_cert_dir" if os.path.isdir(bundle) else "ca_certs"
            self._tls = {"cert_reqs": "CERT_REQUIRED", where: bundle}
        if cert := pem_file(remote.client_cert, tls_files):
            self._tls |= {"cert_file": cert, "key_file": pem_file(remote.client_key, tls_files)}
        # Who the index sees: nobody in particular, or what the credentials, headers and client
        # certificate sent make of the caller (a digest) - pages it shows one remote for them
        # are no other remote's (services.remote_pages keys its copies by it)
        sent = [sorted(self._own_headers.items()), remote.client_cert or ""]
        self.seen_as: tuple[str, ...] = (
            (hashlib.sha256(repr(sent).encode()).hexdigest()[:32],) if any(sent) else ()
        )
        self._direct = urllib3.PoolManager(maxsize=64, **self._tls)
        self._via: dict[str, urllib3.ProxyManager] = {}  # by proxy URL
        self._via_lock = threading.Lock()

    def close(self) -> None:
        self._direct.clear()
        with self._via_lock:
            for manager in self._via.values():
                manager.clear()

    def project_url(self, name: str) -> str:
        return f"{self.root}{name}/"

    @functools.lru_cache(maxsize=256)  # noqa: B019 - one client per remote, kept for the process
    def _proxy_for(self, scheme: str, netloc: str) -> str | None:
        """The proxy a URL goes through: the remote's, else the environment's (requests'
        rules: HTTP(S)_PROXY, ALL_PROXY, NO_PROXY)."""
        url = f"{scheme}://{netloc}/"
        return select_proxy(url, self._fixed_proxies or get_environ_proxies(url))

    def _pools_for(self, url: str) -> urllib3.PoolManager:
        proxy = self._proxy_for(*urlsplit(url)[:2])
        if proxy is None:
            return self._direct
        with self._via_lock:
            if (manager := self._via.get(proxy)) is None:
                user, password = get_auth_from_url(proxy)
                auth = {"Proxy-Authorization": _basic(user, password)} if user else None
                manager = self._via[proxy] = urllib3.ProxyManager(
                    proxy,
                    maxsize=64,
                    proxy_headers=auth,
                    **self._tls,
                )
            return manager

    def _check_address(self, url: str) -> None:
        """Refuse a URL off the index's origin at an address the index may not send us to
        (core.addresses); a host that does not resolve here is left to the request (or to the
        proxy, which resolves it itself)."""
        if urlsplit(url)[:2] == self._origin or self.remote.allow_private_addresses:
            return
        found = self._addresses.of(urlsplit(url).hostname or "")
        index = self._addresses.of(urlsplit(self.root).hostname or "")
        if found and not may_fetch(found, index):
            kinds = ", ".join(sorted({kind_of(a) for a in found} - {"public"}))
            raise UpstreamRefused(
                f"refused: the upstream names a file at a {kinds} address ({describe_url(url)});"
                " set the remote's allow_private_addresses to fetch it"
            )

    def _request(
        self, url: str, headers: dict[str, str], *, method: str = "GET"
    ) -> tuple[Answer, str]:
        """One request's answer, its body still to be read, and its URL after redirects. They
        are followed here (at most MAX_REDIRECTS), so that every hop's address is checked and
        credentials and private headers go to the index's origin only."""
        for _ in range(MAX_REDIRECTS + 1):
            self._check_address(url)
            own = urlsplit(url)[:2] == self._origin
            pools = self._pools_for(url)
            try:
                resp = pools.urlopen(
                    method,
                    url,
                    headers={**BASE_HEADERS, **(self._own_headers if own else {}), **headers},
                    redirect=False,
                    retries=self._retry,
                    timeout=self._timeout,
                    preload_content=False,
                    decode_content=False,
                )
            # ValueError: a URL or header urllib3 refuses; HTTPException: http.client's own
            except (TransportError, OSError, ValueError, http.client.HTTPException) as exc:
                via = str(pools.proxy) if isinstance(pools, urllib3.ProxyManager) else None
                raise _failure("upstream unreachable", url, exc, via) from None
            location = resp.headers.get("Location")
            if resp.status not in _REDIRECTS or not location:
                return resp, url
            url = urljoin(url, location)
            method = "GET" if resp.status == 303 else method
            resp.close()
        raise UpstreamError(f"more than {MAX_REDIRECTS} redirects: {describe_url(url)}")

    def _failed(self, exc: UpstreamError) -> UpstreamError:
        """Tell the observer (metrics) about a failed request; returns the error to raise."""
        if self._observer is not None and not exc.reported:
            exc.reported = True
            self._observer.upstream_error(self.remote.name, exc)
        return exc

    def _answered(self, kind: str, started: float) -> None:
        if self._observer is not None:
            self._observer.upstream_answered(self.remote.name, kind, time.monotonic() - started)

    def get_page(
        self, url: str, *, etag: str | None = None, last_modified: str | None = None
    ) -> Fetched:
        """GET an index page, conditionally when validators are known."""
        started = time.monotonic()
        try:
            fetched = self._get_page(url, etag, last_modified)
        except UpstreamError as exc:
            raise self._failed(exc) from None
        self._answered("page", started)
        return fetched

    def _get_page(self, url: str, etag: str | None, last_modified: str | None) -> Fetched:
        headers = {"Accept": PAGE_ACCEPT}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        started = time.monotonic()
        resp, final = self._request(url, headers)
        with resp:
            if resp.status in (304, 404, 410):
                resp.drain_conn()  # the (empty) body read: the connection goes back to the pool
                return Fetched(304 if resp.status == 304 else 404, final)
            if resp.status != 200:
                raise UpstreamError(f"upstream answered {resp.status}: {describe_url(url)}")
            body = self._page_body(resp, url, started)
            return Fetched(
                200,
                final,
                body,
                resp.headers.get("Content-Type", ""),
                resp.headers.get("ETag"),
                resp.headers.get("Last-Modified"),
            )

    def _page_body(self, resp: Answer, url: str, started: float) -> bytes:
        """A page's bytes, decoded (an index's CDN gzips pages: PyPI's does), refused past the
        remote's max_page_size (before the bytes arrive when the length is announced, and as
        they are decoded, at most that many bytes at a time: a small gzip bomb is refused, not
        inflated), and refused when its compressed stream does not end (a page cut short, even
        under a Content-Length that matches what was sent, would lose versions)."""
        limit = self.remote.max_page_size
        announced = resp.headers.get("Content-Length", "")
        if announced.isdigit() and int(announced) > limit:
            raise _too_large(url, limit)
        coding = resp.headers.get("Content-Encoding", "").strip().lower()
        inflater = _Inflater.for_coding(coding, url)
        chunks, size = [], 0
        try:
            for sent in self._page_pieces(resp, url, started):
                for chunk in inflater.feed(sent, limit - size + 1) if inflater else (sent,):
                    size += len(chunk)
                    if size > limit:
                        raise _too_large(url, limit)
                    chunks.append(chunk)
        except zlib.error as exc:
            raise UpstreamError(
                f"upstream sent a damaged {coding} page: {describe_url(url)}: {exc}"
            ) from None
        if inflater is not None and not inflater.ended:
            raise UpstreamError(
                f"upstream sent a page cut short (its {coding} stream does not end):"
                f" {describe_url(url)}"
            )
        body = b"".join(chunks)
        if inflater is None and _close_delimited(resp) and cut_short(body):
            raise UpstreamError(
                "upstream sent a page cut short (its connection closed before the page's"
                f" </html>): {describe_url(url)}"
            )
        return body

    def _page_pieces(self, resp: Answer, url: str, started: float) -> Iterator[bytes]:
        """A page's bytes as sent, as they arrive (what one read of the socket gives, up to
        CHUNK), within the total timeout: each read waits at most the time left, so a page
        trickled a few bytes at a time is cut off when its time is up, not once it is whole."""
        total = self.remote.total_timeout
        sock = getattr(resp.connection, "sock", None)
        try:
            while True:
                if total is not None:
                    left = total - (time.monotonic() - started)
                    if left <= 0:
                        raise UpstreamTimeout(
                            f"upstream took over {total:.0f}s: {describe_url(url)}"
                        )
                    if sock is not None:
                        sock.settimeout(min(left, self.remote.sock_read_timeout))
                piece = resp.read1(CHUNK, decode_content=False)
                if not piece:
                    return
                yield piece
        except UpstreamError:
            raise
        except Exception as exc:  # urllib3 and http.client errors: protocol, timeout, short read
            if total is not None and time.monotonic() - started >= total:
                raise UpstreamTimeout(
                    f"upstream took over {total:.0f}s: {describe_url(url)}"
                ) from None
            raise _failure("upstream broke off", url, exc) from None

    def open_file(self, url: str) -> Answer:
        """Start a file download; the caller iterates `iter_body` and closes the response."""
        started = time.monotonic()
        try:
            resp = self._open_file(url)
        except UpstreamError as exc:
            raise self._failed(exc) from None
        self._answered("file", started)  # until the headers: the body runs at its own pace
        return resp

    def open_range(self, url: str, byte_range: str) -> Answer:
        """Start a GET of part of a file (`byte_range`: a Range header's value). The answer may
        be a 206, or a 200 from an upstream that ignores ranges (the caller decides); a 416
        raises RangeNotSatisfiable, errors UpstreamError."""
        started = time.monotonic()
        try:
            resp, _ = self._request(url, {"Accept-Encoding": "identity", "Range": byte_range})
            if resp.status == 416:
                resp.close()
                self._answered("file", started)
                found = _UNSATISFIED.fullmatch(resp.headers.get("Content-Range", "").strip())
                raise RangeNotSatisfiable(url, int(found[1]) if found else None)
            if resp.status not in (200, 206):
                resp.close()
                raise UpstreamError(
                    f"upstream answered {resp.status} to a range: {describe_url(url)}"
                )
        except UpstreamError as exc:
            raise self._failed(exc) from None
        self._answered("file", started)
        return resp

    def _open_file(self, url: str) -> Answer:
        resp, _ = self._request(url, {"Accept-Encoding": "identity"})
        if resp.status != 200:
            resp.close()
            if resp.status in (404, 410):
                raise UpstreamError(
                    f"upstream has no such file ({resp.status}): {describe_url(url)}"
                )
            raise UpstreamError(f"upstream answered {resp.status}: {describe_url(url)}")
        return resp

    def iter_body(
        self,
        resp: Answer,
        url: str,
        started: float | None = None,
        *,
        decoded: bool = False,
        most: int | None = None,
    ) -> Iterator[bytes]:
        """The body in chunks of at most CHUNK bytes, within the total timeout: as sent (a
        file's bytes), or `decoded` from its Content-Encoding (a page's). At most `most` bytes:
        a body that goes on past them (a different file, an endless one) is given up at once,
        before the chunk that goes past is given."""
        total = self.remote.total_timeout
        started = time.monotonic() if started is None else started
        sent = 0
        try:
            for chunk in resp.stream(CHUNK, decode_content=decoded):
                if total is not None and time.monotonic() - started > total:
                    raise self._failed(
                        UpstreamTimeout(f"upstream took over {total:.0f}s: {describe_url(url)}")
                    )
                sent += len(chunk)
                if most is not None and sent > most:
                    raise UpstreamError(
                        f"upstream sent more than the {most} bytes expected: {describe_url(url)}"
                    )
                yield chunk
        except UpstreamError:
            raise
        except Exception as exc:  # urllib3 and http.client errors: protocol, timeout, short read
            raise self._failed(_failure("upstream broke off", url, exc)) from None

    def reachable(self) -> bool:
        try:
            resp, _ = self._request(self.root, {"Accept": PAGE_ACCEPT}, method="HEAD")
            with resp:
                return resp.status < 500
        except UpstreamError:
            return False


def content_length(resp: Answer) -> int | None:
    """The size an answer announces (Content-Length), or None - also for one that is no SIZE
    (http.client then reads to the end): a Latin-1 digit str.isdigit takes but int() does not
    (a superscript), or more digits than int() reads (or any file has)."""
    length = resp.headers.get("Content-Length", "").strip()
    return int(length) if _SIZE.fullmatch(length) else None


def download_bound(size: int | None, cache_limit: int) -> int:
    """At most how many bytes a file's download may take: its size, when known (more would be
    another file, or an endless body); else the cache's limit, which it could never fit (with
    cache.max_size 0, which keeps nothing cached for long, the largest size setting)."""
    return size if size is not None else (cache_limit or MAX_SIZE)


def _close_delimited(resp: Answer) -> bool:
    """An answer that ends where its connection closes: neither a Content-Length (whose
    shortfall http.client reports) nor chunks (whose missing last chunk it reports)."""
    framing = resp.headers.get("Transfer-Encoding", "").lower()
    return "Content-Length" not in resp.headers and "chunked" not in framing


class _Inflater:
    """A page's Content-Encoding (gzip, deflate) undone with zlib, at most `most` bytes at a
    time, knowing whether the compressed stream ended: a gzip or deflate stream carries its own
    end, so a page cut short shows even when its Content-Length matches the bytes sent. As
    urllib3's decoders: a gzip stream may hold several members, and bytes after a whole member
    that give nothing more (padding, a member's broken start) are ignored; a `deflate` page may
    come without its zlib header (raw deflate, as some servers send it)."""

    def __init__(self, wbits: int) -> None:
        self._wbits = wbits
        self._zlib: Any = None  # made once the first bytes say how (deflate: its header)
        self._head = b""  # a deflate page's first byte, until the second says what it is
        self._whole = False  # a member has ended, and nothing came after it since
        self._ignoring = False  # what follows a whole member is no member

    @classmethod
    def for_coding(cls, coding: str, url: str) -> _Inflater | None:
        """None for a page sent as it is; UpstreamError for a coding never asked for."""
        if coding in ("", "identity"):
            return None
        if coding in ("gzip", "x-gzip"):
            return cls(16 + zlib.MAX_WBITS)
        if coding == "deflate":
            return cls(zlib.MAX_WBITS)
        raise UpstreamError(f"upstream sent a page in {coding[:40]!r}: {describe_url(url)}")

    def feed(self, data: bytes, most: int) -> Iterator[bytes]:
        """The decoded bytes of `data`, in pieces of at most `most` bytes."""
        if self._zlib is None:
            data, self._head = self._head + data, b""
            if self._wbits == zlib.MAX_WBITS:
                if len(data) < 2:
                    self._head = data
                    return
                if not _zlib_header(data):
                    self._wbits = -zlib.MAX_WBITS
            self._zlib = zlib.decompressobj(self._wbits)
        while data and not self._ignoring:
            if self._zlib.eof:  # the next gzip member
                self._zlib = zlib.decompressobj(self._wbits)
            try:
                piece = self._zlib.decompress(data, most)
            except zlib.error:
                if not self._whole:
                    raise
                self._ignoring = True
                return
            data = self._zlib.unconsumed_tail or self._zlib.unused_data
            if piece:
                self._whole = False
                yield piece
            if self._zlib.eof:
                self._whole = True

    @property
    def ended(self) -> bool:
        """Whether the last member that gave bytes has ended."""
        return self._whole


def _zlib_header(data: bytes) -> bool:
    """Whether a deflate page starts with a zlib header (RFC 1950: deflate, and a check)."""
    return data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0


def _too_large(url: str, limit: int) -> UpstreamRefused:
    return UpstreamRefused(
        f"refused: the upstream page {describe_url(url)} is larger than"
        f" {limit} bytes (the remote's max_page_size)"
    )


def _basic(user: str, password: str) -> str:
    """An Authorization header's value for HTTP basic authentication."""
    return make_headers(basic_auth=f"{user}:{password}")["authorization"]


def describe_url(url: str) -> str:
    """A URL fit for logs and error messages: never its credentials or query string."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = parts.port
    except ValueError:  # no number: a remote's URL kept before config._http_url checked it
        port = None
    if port:
        host += f":{port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception, its causes and contexts, and urllib3's `reason`, outermost first (an
    SSL error's `reason` is a string: not followed)."""
    chain: list[BaseException] = []
    todo: list[object] = [exc]
    while todo and len(chain) < 20:
        current = todo.pop(0)
        if not isinstance(current, BaseException) or current in chain:
            continue
        chain.append(current)
        todo += [current.__cause__, current.__context__, getattr(current, "reason", None)]
        todo += current.args
    return chain


def _failure(what: str, url: str, exc: BaseException, via: str | None = None) -> UpstreamError:
    """UpstreamTimeout when any cause is a timeout (urllib3 reports one under retries as a
    MaxRetryError whose reason it is), else UpstreamError. `via`: the proxy the request went
    to, named too (a refused or untrusted proxy is not the index's fault)."""
    causes = _causes(exc)
    timeouts = (TimeoutError, Urllib3Timeout)
    refused = any(isinstance(c, NewConnectionError) for c in causes)  # a "timeout" subclass
    where = describe_url(url) + (f" through the proxy {describe_url(via)}" if via else "")
    if not refused and any(isinstance(c, timeouts) for c in causes):
        return UpstreamTimeout(f"upstream timed out: {where}: {_reason(causes[-1])}")
    return UpstreamError(f"{what}: {where}: {_reason(causes[-1])}")


def _reason(exc: BaseException) -> str:
    """The innermost cause, short, without URLs that might carry credentials."""
    text = type(exc).__name__
    detail = str(exc).split("(Caused by", 1)[0]
    return f"{text}: {detail[:120]}" if "@" not in detail else text
