"""The page cache against upstream faults: TTL, revalidation, stale copies. The upstream is the
`scripted` index on 127.0.0.1, the remote's proxy: every URL of these tests reaches it."""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, cast

import diskcache
import pytest
from packaging.utils import NormalizedName
from pytest_httpserver import HTTPServer, RequestHandler
from werkzeug import Request, Response

from pullthrough.config import RemoteSettings
from pullthrough.core.filters import FilterSpec
from pullthrough.core.models import ProjectPage
from pullthrough.core.policy import NO_POLICY
from pullthrough.services import remote_pages
from pullthrough.services.distribution import Distribution, Source
from pullthrough.services.later import BACKLOG, Later, WriteBehind
from pullthrough.services.remote_pages import Cached, RemotePages, completed, copy_key
from pullthrough.upstream.client import UpstreamClient, UpstreamError, UpstreamTimeout, simple_root
from support.servers import serving

ROOT = "http://upstream.example/simple/"
JSON = "application/vnd.pypi.simple.v1+json"
READ_TIMEOUT = 0.5  # seconds: the remotes' here, so that a slow answer is a timeout soon


def page_body(*filenames: str) -> bytes:
    files = [
        {"filename": f, "url": f"https://files.example/{f}", "hashes": {"sha256": "ab" * 32}}
        for f in filenames
    ]
    return json.dumps({"meta": {"api-version": "1.1"}, "name": "lib", "files": files}).encode()


def html_body(*filenames: str) -> bytes:
    links = (f'<a href="https://files.example/{f}#sha256={"ab" * 32}">{f}</a>' for f in filenames)
    return f"<!DOCTYPE html><html><body>{''.join(links)}</body></html>".encode()


@pytest.fixture
def clock() -> list[float]:
    return [1000.0]


def remote(scripted: HTTPServer, url: str = ROOT, **settings: Any) -> UpstreamClient:
    """A client of the remote at `url`, through the scripted index as its proxy."""
    return UpstreamClient(
        RemoteSettings(
            name="up",
            url=url,
            max_retries=0,
            sock_read_timeout=READ_TIMEOUT,
            proxy_url=scripted.url_for("/"),
            **settings,
        )
    )


def _expect(scripted: HTTPServer, url: str) -> RequestHandler:
    """The answer to GETs of `url`'s path from now on (any earlier one for it is forgotten)."""
    path = "/" + url.split("://", 1)[1].partition("/")[2]
    scripted.handlers[:] = [h for h in scripted.handlers if h.matcher.uri != path]
    return scripted.expect_request(path)


def answer(scripted: HTTPServer, url: str, body: bytes | str = b"", **how: Any) -> None:
    """GETs of `url`'s path are answered so (`status`, `headers`, `content_type`)."""
    _expect(scripted, url).respond_with_data(body, **how)


def answer_late(scripted: HTTPServer, url: str) -> threading.Event:
    """GETs of `url`'s path are answered after the remote's read timeout. The scripted index
    answers one request at a time: the event is set when it is free for the next one."""
    done = threading.Event()

    def late(_: Request) -> Response:
        time.sleep(READ_TIMEOUT * 2)
        done.set()
        return Response(page_body(), content_type=JSON)

    _expect(scripted, url).respond_with_handler(late)
    return done


def asked(scripted: HTTPServer) -> list[Request]:
    return [request for request, _ in scripted.log]


@pytest.fixture
def pages(tmp_path: Path, clock: list[float], scripted: HTTPServer) -> Iterator[RemotePages]:
    client = remote(scripted)
    cache = diskcache.Cache(str(tmp_path / "pages"))
    yield RemotePages(client, cache, ttl=60, clock=lambda: clock[0])
    cache.close()
    client.close()


@pytest.mark.parametrize(
    ("url", "root"),
    [
        ("https://pypi.org/", "https://pypi.org/simple/"),
        ("https://pypi.org", "https://pypi.org/simple/"),
        ("https://pypi.org/simple", "https://pypi.org/simple/"),
        ("https://host/pypi/foo/simple/", "https://host/pypi/foo/simple/"),
        ("https://host/repo/", "https://host/repo/simple/"),
    ],
)
def test_remote_url_may_be_root_or_simple(url: str, root: str) -> None:
    assert simple_root(url) == root


def test_pages_are_cached_for_the_ttl_then_revalidated(
    pages: RemotePages, clock: list[float], scripted: HTTPServer
) -> None:
    answer(
        scripted,
        ROOT + "lib/",
        page_body("lib-1.0.tar.gz"),
        content_type=JSON,
        headers={"ETag": '"v1"'},
    )
    first = pages.project("lib")
    assert isinstance(first.value, ProjectPage)
    assert [f.filename for f in first.value.files] == ["lib-1.0.tar.gz"]
    clock[0] += 30
    assert pages.project("lib").value == first.value
    assert len(asked(scripted)) == 1  # within the TTL: no upstream request

    clock[0] += 31
    answer(scripted, ROOT + "lib/", status=304)
    again = pages.project("lib")
    assert asked(scripted)[-1].headers["If-None-Match"] == '"v1"'
    assert again.value == first.value and again.fetched_at == clock[0] and not again.stale


class Observed:
    """A page cache seen through: its first `misses` reads miss (as a request sees it that
    looked just before another request kept the page and let go of its lock), and the keys
    stored through it are noted in `stored`."""

    def __init__(self, cache: Any, misses: int = 0) -> None:
        self.cache, self.misses = cache, misses
        self.stored: list[object] = []

    def get(self, key: object) -> Any:
        if self.misses:
            self.misses -= 1
            return None
        return self.cache.get(key)

    def set(self, key: object, value: object) -> None:
        self.stored.append(key)
        self.cache.set(key, value)


def test_a_page_kept_between_the_first_look_and_the_lock_is_not_fetched_again(
    pages: RemotePages, scripted: HTTPServer
) -> None:
    answer(scripted, ROOT + "lib/", page_body("lib-1.0.tar.gz"), content_type=JSON)
    first = pages.project("lib")
    late = RemotePages(
        pages.client,
        cast(diskcache.Cache, Observed(pages.cache, misses=1)),
        ttl=60,
        clock=pages.clock,
    )
    assert late.project("lib").value == first.value
    assert len(asked(scripted)) == 1


@pytest.mark.parametrize(
    "fault",
    ["500", "gone", "late", "not json", "cut gzip", "json as html", "json as text", "error page"],
)
def test_upstream_failure_serves_the_stale_copy(
    pages: RemotePages, clock: list[float], scripted: HTTPServer, fault: str
) -> None:
    answer(scripted, ROOT + "lib/", page_body("lib-1.0.tar.gz"), content_type=JSON)
    good = pages.project("lib")
    clock[0] += 120
    if fault == "500":
        answer(scripted, ROOT + "lib/", status=500)
    elif fault == "gone":  # the connection refused
        scripted.stop()
    elif fault == "late":
        answer_late(scripted, ROOT + "lib/")
    elif fault == "cut gzip":  # its Content-Length matches the bytes sent; the gzip never ends
        cut = gzip.compress(html_body(*(f"lib-1.{n}.tar.gz" for n in range(20))))
        answer(
            scripted,
            ROOT + "lib/",
            cut[: len(cut) * 2 // 3],
            content_type="text/html",
            headers={"Content-Encoding": "gzip"},
        )
    elif fault in ("json as html", "json as text"):  # the same page, mislabelled, but cut
        half = page_body("lib-1.0.tar.gz", "lib-2.0.tar.gz")[:-20]
        answer(scripted, ROOT + "lib/", half, content_type="text/" + fault.split()[-1])
    elif fault == "error page":  # a CDN's, answered 200
        body = "<html><body><h1>503 Service Unavailable</h1>Try again later</body></html>"
        answer(scripted, ROOT + "lib/", body, content_type="text/html")
    else:
        answer(scripted, ROOT + "lib/", b"{not json", content_type=JSON)
    observed = Observed(pages.cache)
    pages.cache = cast(diskcache.Cache, observed)
    stale = pages.project("lib")
    assert stale.stale and stale.value == good.value
    kept = pages.cache.get(copy_key("page", ROOT + "lib/"))
    assert kept.value == good.value and kept.fetched_at == 1000.0  # the good copy, still due
    # ...stored again all the same: in use, it is not the oldest stored for the eviction
    assert observed.stored == [copy_key("page", ROOT + "lib/")]


def test_an_upstream_that_does_not_answer_has_the_copies_served_soon(
    tmp_path: Path, clock: list[float], scripted: HTTPServer
) -> None:
    """pip gives up on a request after 15 s, the upstream's read timeout is a minute per try:
    a kept copy is served once its revalidation has taken `stale_wait`, and the remote's other
    pages are served from their copies without asking, until the upstream is tried again."""
    client = remote(scripted)
    cache = diskcache.Cache(str(tmp_path / "pages"))
    pages = RemotePages(client, cache, ttl=60, clock=lambda: clock[0], stale_wait=0.1)
    try:
        for name in ("lib", "other"):
            answer(scripted, f"{ROOT}{name}/", page_body(f"{name}-1.0.tar.gz"), content_type=JSON)
            assert not pages.project(name).stale
        clock[0] += 61
        late = answer_late(scripted, ROOT + "lib/")
        started = time.monotonic()
        stale = pages.project("lib")
        assert stale.stale and time.monotonic() - started < READ_TIMEOUT
        other = pages.project("other")
        assert other.stale and time.monotonic() - started < READ_TIMEOUT
        assert late.wait(READ_TIMEOUT * 10)
        assert [r.path for r in asked(scripted)][2:] == ["/simple/lib/"]  # not other's
        clock[0] += 11  # tried again 10 s later, and answered
        answer(scripted, ROOT + "lib/", page_body("lib-2.0.tar.gz"), content_type=JSON)
        deadline = time.monotonic() + 10
        while (fresh := pages.project("lib")).stale and time.monotonic() < deadline:
            clock[0] += 11  # the revalidation of before may still be under way
            time.sleep(0.05)
        assert isinstance(fresh.value, ProjectPage)
        assert [f.filename for f in fresh.value.files] == ["lib-2.0.tar.gz"]
    finally:
        cache.close()
        client.close()


def test_pages_past_the_revalidations_going_on_behind_are_revalidated_all_the_same(
    tmp_path: Path, clock: list[float], scripted: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pages fetched together expire together: past MAX_REVALIDATIONS, a request revalidates
    its page itself; it is not served stale from an upstream that answers."""
    monkeypatch.setattr(remote_pages, "MAX_REVALIDATIONS", 1)
    client = remote(scripted)
    cache = diskcache.Cache(str(tmp_path / "pages"))
    pages = RemotePages(client, cache, ttl=60, clock=lambda: clock[0])
    names = ("one", "two", "three")
    try:
        for name in names:
            answer(scripted, f"{ROOT}{name}/", page_body(f"{name}-1.0.tar.gz"), content_type=JSON)
            pages.project(name)
        clock[0] += 61

        def slowly(name: str) -> Callable[[Request], Response]:
            def late(_: Request) -> Response:
                time.sleep(0.1)
                return Response(page_body(f"{name}-2.0.tar.gz"), content_type=JSON)

            return late

        for name in names:
            _expect(scripted, f"{ROOT}{name}/").respond_with_handler(slowly(name))
        with ThreadPoolExecutor(len(names)) as pool:
            got = list(pool.map(pages.project, names))
        assert [g.stale for g in got] == [False] * len(names)
        assert [cast(ProjectPage, g.value).files[0].filename for g in got] == [
            f"{name}-2.0.tar.gz" for name in names
        ]
    finally:
        cache.close()
        client.close()


class WrittenByAnotherVersion:
    """A pickle that cannot be read back here: it names a function this version lacks."""

    def __reduce__(self) -> tuple[Any, ...]:
        return getattr, (int, "_packed_page")


@pytest.mark.parametrize("content_type", ["text/html", "text/plain"])
def test_a_json_page_is_read_as_json_whatever_its_content_type(
    pages: RemotePages, scripted: HTTPServer, content_type: str
) -> None:
    answer(scripted, ROOT + "lib/", b"\n " + page_body("lib-1.0.tar.gz"), content_type=content_type)
    got = pages.project("lib")
    assert isinstance(got.value, ProjectPage) and not got.stale
    assert [f.filename for f in got.value.files] == ["lib-1.0.tar.gz"]


EMPTY_PEP_503 = (
    '<!DOCTYPE html><html><head><meta name="pypi:repository-version" content="1.1">'
    "</head><body><h1>Links for lib</h1></body></html>"
)


@pytest.mark.parametrize(
    ("kept", "body"),
    [
        (False, "<html><body><h1>Links for lib</h1></body></html>"),  # an old index's
        (True, EMPTY_PEP_503),  # PyPI's, once every file of the project was deleted
    ],
)
def test_an_empty_project_page_is_a_page(
    pages: RemotePages, clock: list[float], scripted: HTTPServer, kept: bool, body: str
) -> None:
    """A page with no files is taken as one when nothing was kept, or when it says it is an
    index page: only an unmarked page with no files, where files were, is refused."""
    if kept:
        answer(scripted, ROOT + "lib/", page_body("lib-1.0.tar.gz"), content_type=JSON)
        pages.project("lib")
        clock[0] += 120
    answer(scripted, ROOT + "lib/", body, content_type="text/html")
    got = pages.project("lib")
    assert isinstance(got.value, ProjectPage) and not got.stale and got.value.files == ()


def test_a_copy_this_version_cannot_read_is_fetched_again(
    pages: RemotePages, scripted: HTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    """After a rollback (or on a damaged entry) the page is fetched and the copy replaced,
    instead of every request for the project failing."""
    answer(scripted, ROOT + "lib/", page_body("lib-1.0.tar.gz"), content_type=JSON)
    cache = cast(diskcache.Cache, pages.cache)
    cache.set(copy_key("page", ROOT + "lib/"), WrittenByAnotherVersion())
    got = pages.project("lib")
    assert isinstance(got.value, ProjectPage)
    assert [f.filename for f in got.value.files] == ["lib-1.0.tar.gz"]
    assert cache.get(copy_key("page", ROOT + "lib/")).value == got.value
    assert "unreadable copy of http://upstream.example/simple/lib/ in the page cache" in caplog.text


def test_upstream_failure_without_a_copy_is_an_error(
    pages: RemotePages, scripted: HTTPServer
) -> None:
    late = answer_late(scripted, ROOT + "lib/")
    with pytest.raises(UpstreamTimeout):
        pages.project("lib")
    assert late.wait(READ_TIMEOUT * 10)
    answer(scripted, ROOT + "lib/", status=503)
    with pytest.raises(UpstreamError, match="503"):
        pages.project("lib")


class Trickle(BaseHTTPRequestHandler):
    """Sends a 2,000-byte page 50 bytes every 0.05 s (2 s in all), each gap well within the
    read timeout."""

    def do_GET(self) -> None:
        body = page_body(*(f"lib-1.{n}.tar.gz" for n in range(20)))[:2000].ljust(2000)
        self.send_response(200)
        self.send_header("Content-Type", JSON)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        for start in range(0, len(body), 50):
            self.wfile.write(body[start : start + 50])
            self.wfile.flush()
            time.sleep(0.05)

    def log_message(self, *args: Any) -> None:
        pass


def test_a_page_trickling_in_is_cut_off_at_the_total_timeout(tmp_path: Path) -> None:
    """total_timeout bounds a whole page: the wait ends when it is up, not once the page has
    all arrived."""
    with serving(Trickle) as origin:
        up = UpstreamClient(
            RemoteSettings(
                name="up", url=ROOT, max_retries=0, total_timeout=0.5, proxy_url=origin + "/"
            )
        )
        started = time.monotonic()
        with pytest.raises(UpstreamTimeout, match="took over"):
            up.get_page(ROOT + "lib/")
        assert time.monotonic() - started < 1.0
        up.close()


class ClosingEnds(BaseHTTPRequestHandler):
    """HTTP/1.0: each answer ends where the connection closes (no length, no chunks). The page
    has 20 files; `cut` sends the first two thirds of it."""

    cut = False

    def do_GET(self) -> None:
        body = html_body(*(f"lib-1.{n}.tar.gz" for n in range(20)))
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(body[: len(body) * 2 // 3] if self.cut else body)

    def log_message(self, *args: Any) -> None:
        pass


def test_an_html_page_cut_short_where_its_connection_closes_is_not_taken(
    tmp_path: Path, clock: list[float]
) -> None:
    """An upstream whose answers end where its connection closes gives no sign of one cut short
    but the page's missing end (`</html>`): such a page is an upstream failure, and the kept copy
    is served, all 20 files, rather than the 13 the bytes that came list."""
    ClosingEnds.cut = False
    with serving(ClosingEnds) as origin:
        client = UpstreamClient(
            RemoteSettings(name="up", url=ROOT, max_retries=0, proxy_url=origin + "/")
        )
        cache = diskcache.Cache(str(tmp_path / "pages"))
        try:
            pages = RemotePages(client, cache, ttl=60, clock=lambda: clock[0])
            whole = pages.project("lib")
            assert isinstance(whole.value, ProjectPage) and len(whole.value.files) == 20
            ClosingEnds.cut = True
            with pytest.raises(UpstreamError, match="cut short"):
                client.get_page(ROOT + "lib/")
            clock[0] += 120
            stale = pages.project("lib")
            assert stale.stale and stale.value == whole.value
        finally:
            ClosingEnds.cut = False
            cache.close()
            client.close()


def test_an_unasked_for_304_is_an_error_not_a_missing_project(
    pages: RemotePages, scripted: HTTPServer
) -> None:
    """Nothing kept, nothing asked conditionally: a 304 says nothing of the project."""
    answer(scripted, ROOT + "lib/", status=304)
    with pytest.raises(UpstreamError, match="304"):
        pages.project("lib")
    answer(scripted, ROOT + "lib/", page_body("lib-1.0.tar.gz"), content_type=JSON)
    got = pages.project("lib")  # not remembered as missing: asked again at once
    assert isinstance(got.value, ProjectPage) and len(got.value.files) == 1


def test_upstream_404_is_remembered_as_missing(pages: RemotePages, scripted: HTTPServer) -> None:
    answer(scripted, ROOT + "nope/", status=404)
    assert pages.project("nope").value is None


def test_html_fallback_resolves_relative_links(pages: RemotePages, scripted: HTTPServer) -> None:
    answer(
        scripted,
        ROOT + "lib/",
        f'<a href="../../files/lib-1.0.tar.gz#sha256={"ab" * 32}">lib-1.0.tar.gz</a>',
        content_type="text/html",
    )
    page = pages.project("lib").value
    assert isinstance(page, ProjectPage)
    (f,) = page.files
    assert f.url == "http://upstream.example/files/lib-1.0.tar.gz"
    assert f.hashes == {"sha256": "ab" * 32}
    sent = asked(scripted)[0].headers["Accept"]
    assert sent.startswith("application/vnd.pypi.simple.v1+json")


def test_credentials_go_to_the_index_only_and_never_into_errors(scripted: HTTPServer) -> None:
    client = remote(scripted, username="bob", password="s3cret")
    answer(scripted, ROOT + "lib/", page_body(), content_type=JSON)
    answer(scripted, "http://files.example/lib-1.0.tar.gz", b"x")
    client.get_page(ROOT + "lib/")
    assert asked(scripted)[0].headers["Authorization"].startswith("Basic ")
    client.open_file("http://files.example/lib-1.0.tar.gz").close()
    assert "Authorization" not in asked(scripted)[1].headers
    client.close()


def test_credentials_in_the_remote_url_stay_out_of_error_messages(scripted: HTTPServer) -> None:
    client = remote(scripted, "http://bob:s3cret@upstream.example/simple/")
    scripted.stop()  # the connection refused
    with pytest.raises(UpstreamError) as err:
        client.get_page(client.project_url("lib"))
    assert "upstream.example/simple/lib/" in str(err.value)
    assert "s3cret" not in str(err.value)
    client.close()


def test_a_large_project_list_is_parsed_once_and_kept_per_process(
    pages: RemotePages, scripted: HTTPServer
) -> None:
    source = Source(pages, FilterSpec(), NO_POLICY)
    names = [f"project-{i}" for i in range(100_000)]
    body = json.dumps({"meta": {"api-version": "1.1"}, "projects": [{"name": n} for n in names]})
    answer(scripted, ROOT, body, content_type=JSON)
    dist = Distribution("d", "d", remotes=[source], clock=pages.clock)
    first = dist.projects()
    assert first.names == tuple(names)
    assert dist.projects() is first  # the same parsed view (and its renderings) until the TTL
    other_worker = Distribution("d", "d", remotes=[source], clock=pages.clock)
    assert other_worker.projects().names == first.names  # read from the shared disk cache
    assert len(asked(scripted)) == 1


def test_extra_headers_go_to_the_index_only_even_across_redirects(scripted: HTTPServer) -> None:
    client = remote(scripted, headers=[{"PRIVATE-TOKEN": "glpat-x"}])
    answer(scripted, ROOT + "lib/", page_body(), content_type=JSON)
    moved = {"Location": "http://elsewhere.example/p/"}
    answer(scripted, ROOT + "moved/", status=302, headers=moved)
    answer(scripted, "http://elsewhere.example/p/", page_body(), content_type=JSON)
    answer(scripted, "http://files.example/lib-1.0.tar.gz", b"x")
    client.get_page(ROOT + "lib/")
    assert asked(scripted)[0].headers["PRIVATE-TOKEN"] == "glpat-x"
    client.open_file("http://files.example/lib-1.0.tar.gz").close()
    assert "PRIVATE-TOKEN" not in asked(scripted)[1].headers
    client.get_page(ROOT + "moved/")
    assert asked(scripted)[-1].url == "http://elsewhere.example/p/"
    assert "PRIVATE-TOKEN" not in asked(scripted)[-1].headers
    client.close()


def test_the_page_memo_is_bounded_by_the_memory_its_pages_take(
    pages: RemotePages, scripted: HTTPServer
) -> None:
    answer(scripted, ROOT + "small/", page_body("small-1.0.tar.gz"), content_type=JSON)
    big = [f"big-1.{i}.tar.gz" for i in range(40)]  # about 132 KiB by the estimate
    answer(scripted, ROOT + "big/", page_body(*big), content_type=JSON)
    source = Source(pages, FilterSpec(), NO_POLICY)
    dist = Distribution("d", "d", remotes=[source], clock=pages.clock, memory=100 * 2**10)
    dist.project(NormalizedName("small"))
    assert dist.fresh_view("small") is not None
    assert len(dist.project(NormalizedName("big")).page.files) == 40  # served...
    assert dist.fresh_view("big") is None  # ...but larger than the memo: not kept
    for n in range(10):  # small pages: the least recently used go once the memo is full
        answer(scripted, ROOT + f"p{n}/", page_body(f"p{n}-1.0.tar.gz"), content_type=JSON)
        dist.project(NormalizedName(f"p{n}"))
    assert dist.fresh_view("small") is None and dist.fresh_view("p9") is not None


def test_a_page_is_written_to_the_cache_after_its_answer(
    tmp_path: Path, scripted: HTTPServer
) -> None:
    """Writing the page for the other workers waits on the background thread (services.later);
    meanwhile this process answers from the copy it has (in this RemotePages or a new one, as
    the registry builds when the catalog changes), without asking the upstream again."""
    answer(scripted, ROOT + "lib/", page_body("lib-1.0.tar.gz"), content_type=JSON)
    later = Later()
    busy, release = threading.Event(), threading.Event()

    def other_work() -> None:
        busy.set()
        release.wait(10)

    later.run(other_work)  # the thread is busy with other work
    assert busy.wait(10)
    client = remote(scripted)
    with diskcache.Cache(str(tmp_path / "pages")) as cache:
        behind = WriteBehind(cache, later)
        first = RemotePages(client, behind, ttl=60).project("lib")
        assert RemotePages(client, behind, ttl=60).project("lib") is first  # the copy in memory
        assert len(cache) == 0 and len(asked(scripted)) == 1
        release.set()
        assert later.wait()
        assert len(cache) == 1
        again = RemotePages(client, cache, ttl=60)  # another worker
        assert again.project("lib").value == first.value
        assert len(asked(scripted)) == 1
    client.close()


def test_later_runs_jobs_in_order_and_logs_their_failures(
    caplog: pytest.LogCaptureFixture,
) -> None:
    later, seen = Later(), []
    later.run(lambda: seen.append(threading.current_thread().name))
    later.run(lambda: 1 / 0)  # logged; the next job still runs
    later.run(lambda: seen.append("after"))
    assert later.wait()
    assert seen == ["pullthrough-later", "after"]
    assert "background work failed" in caplog.text


def test_later_runs_a_job_in_the_callers_thread_when_the_backlog_is_full() -> None:
    later = Later()
    release = threading.Event()
    later.run(lambda: release.wait(10))
    for _ in range(BACKLOG):
        later.run(lambda: None)
    ran_in: list[str] = []
    later.run(lambda: ran_in.append(threading.current_thread().name))
    assert ran_in == [threading.current_thread().name]
    release.set()
    assert later.wait()


def test_a_write_that_fails_is_logged_and_the_copy_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A full disk: the value was served from memory, is not kept, and is not held forever."""
    later = Later()
    with diskcache.Cache(str(tmp_path / "pages")) as cache:

        def full(*_: object, **__: object) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(cache, "set", full)
        behind = WriteBehind(cache, later)
        behind.set("k", "v")
        assert later.wait()
        assert behind.get("k") is None
        assert "could not keep 'k': [Errno 28] No space left on device" in caplog.text


def test_a_page_copy_an_older_build_pickled_gets_the_fields_it_lacks() -> None:
    """Unpickled, a copy kept by a build whose Cached had fewer fields lacks the others (a
    slot left empty: reading it raises); it comes back with their defaults."""
    old = object.__new__(Cached)
    for name, value in (("value", None), ("fetched_at", 1.0), ("etag", '"e"'),
                        ("last_modified", None), ("stale", False)):  # fmt: skip
        object.__setattr__(old, name, value)
    with pytest.raises(AttributeError):
        _ = old.read_by
    assert completed(old) == Cached(None, 1.0, '"e"', None, False, read_by="")
