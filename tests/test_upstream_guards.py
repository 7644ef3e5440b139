"""What an upstream cannot make this server do: fetch from its own host or network (SSRF, also
through a redirect), hand out files whose bytes nothing can check, or swallow pages of absurd
size. The address checks work on literal IPs; every request goes through a proxy on 127.0.0.1
(the `scripted` index), which answers as each test says: nothing leaves the machine."""

from __future__ import annotations

import gzip
import hashlib
import json
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from pullthrough.app import create_app
from pullthrough.config import RemoteSettings, load_settings
from pullthrough.upstream.client import UpstreamClient, UpstreamRefused
from support.servers import serving

PUBLIC_INDEX = "http://151.101.0.223/simple/"  # an address of PyPI's CDN; nothing is sent there
LOCAL_INDEX = "http://127.0.0.1:9/simple/"
JSON = "application/vnd.pypi.simple.v1+json"
WHEEL = "lib-1.0-py3-none-any.whl"


@pytest.fixture
def proxy(scripted: HTTPServer) -> str:
    return scripted.url_for("/")


def client(url: str, proxy: str, **settings: Any) -> UpstreamClient:
    remote = RemoteSettings(name="up", url=url, max_retries=0, proxy_url=proxy, **settings)
    return UpstreamClient(remote)


def fetched(up: UpstreamClient, url: str) -> bytes:
    """A file's bytes as the client receives them."""
    with up.open_file(url) as resp:
        return b"".join(up.iter_body(resp, url))


def asked(scripted: HTTPServer) -> list[str]:
    """The URLs the proxy was asked for, in order."""
    return [request.url for request, _ in scripted.log]


@pytest.mark.parametrize(
    "file_url",
    [
        "http://127.0.0.1:8080/internal/lib.whl",
        "http://[::1]/lib.whl",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.7/lib.whl",
        "http://0.0.0.0:24817/pulp/api/v3/status/",
    ],
)
def test_a_public_index_cannot_send_us_to_private_addresses(
    scripted: HTTPServer, proxy: str, file_url: str
) -> None:
    with pytest.raises(UpstreamRefused, match="allow_private_addresses"):
        client(PUBLIC_INDEX, proxy).open_file(file_url)
    assert asked(scripted) == []  # refused before any connection


def test_a_local_index_may_use_its_own_kind_of_address_only(
    scripted: HTTPServer, proxy: str
) -> None:
    scripted.expect_request("/files/lib.whl").respond_with_data(b"wheel")
    local = client(LOCAL_INDEX, proxy)
    assert fetched(local, "http://127.0.0.2:9/files/lib.whl") == b"wheel"
    for elsewhere in ("http://169.254.169.254/x", "http://192.168.1.1/x"):
        with pytest.raises(UpstreamRefused):
            local.open_file(elsewhere)
    assert asked(scripted) == ["http://127.0.0.2:9/files/lib.whl"]


def test_a_redirect_is_checked_like_the_url_itself(scripted: HTTPServer, proxy: str) -> None:
    scripted.expect_request("/files/lib.whl").respond_with_data(
        b"", status=302, headers={"Location": "http://169.254.169.254/latest/meta-data/iam/"}
    )
    with pytest.raises(UpstreamRefused, match="link-local"):
        client(LOCAL_INDEX, proxy).open_file("http://127.0.0.1:9/files/lib.whl")
    assert asked(scripted) == ["http://127.0.0.1:9/files/lib.whl"]


def test_a_remote_may_allow_private_addresses(scripted: HTTPServer, proxy: str) -> None:
    scripted.expect_request("/lib.whl").respond_with_data(b"wheel")
    allowed = client(PUBLIC_INDEX, proxy, allow_private_addresses=True)
    assert fetched(allowed, "http://10.0.0.7/lib.whl") == b"wheel"
    assert asked(scripted) == ["http://10.0.0.7/lib.whl"]


def test_pages_over_the_size_limit_are_refused(scripted: HTTPServer, proxy: str) -> None:
    small = client(PUBLIC_INDEX, proxy, max_page_size=1000)
    scripted.expect_request("/simple/big/").respond_with_data(b"x" * 2000, content_type=JSON)
    with pytest.raises(UpstreamRefused, match="max_page_size"):
        small.get_page(PUBLIC_INDEX + "big/")
    scripted.expect_request("/simple/fits/").respond_with_data(b"x" * 1000, content_type=JSON)
    assert small.get_page(PUBLIC_INDEX + "fits/").body == b"x" * 1000


def raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


def two_members(data: bytes) -> bytes:
    return gzip.compress(data[:99]) + gzip.compress(data[99:])


CODINGS: dict[str, tuple[str, Callable[[bytes], bytes]]] = {  # how -> its Content-Encoding
    "gzip": ("gzip", gzip.compress),
    "gzip in two members": ("gzip", two_members),
    "deflate": ("deflate", zlib.compress),
    "raw deflate": ("deflate", raw_deflate),  # without the zlib header, as some servers send it
    "gzip and padding": ("gzip", lambda data: gzip.compress(data) + b"\0" * 8),  # as urllib3 takes
    "gzip and a newline": ("gzip", lambda data: gzip.compress(data) + b"\n"),
    "gzip and a broken member": ("gzip", lambda data: gzip.compress(data) + b"\x1f\x8b\x08"),
}


@pytest.mark.parametrize("coding", CODINGS)
def test_a_compressed_page_is_read_decoded(scripted: HTTPServer, proxy: str, coding: str) -> None:
    """PyPI's CDN gzips pages for a client that accepts it (we do); the page is parsed as it
    reads, never as compressed bytes."""
    body = page(files(3)).encode()
    encoding, compress = CODINGS[coding]
    scripted.expect_request("/simple/lib/").respond_with_data(
        compress(body), content_type=JSON, headers={"Content-Encoding": encoding}
    )
    assert client(PUBLIC_INDEX, proxy).get_page(PUBLIC_INDEX + "lib/").body == body
    accepted = scripted.log[0][0].headers["Accept-Encoding"]
    assert "gzip" in accepted and "identity" not in accepted


class Bomb(BaseHTTPRequestHandler):
    """A 50 MB page in 50 KB of gzip, to every GET."""

    body = gzip.compress(b" " * 50_000_000)

    def do_GET(self) -> None:
        self.send_response(200)
        for name, value in ("Content-Type", JSON), ("Content-Encoding", "gzip"):
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: Any) -> None:
        pass


def test_a_compressed_page_over_the_size_limit_is_refused_without_inflating_it() -> None:
    """Counted against max_page_size as it is decoded, a chunk at a time, and refused with
    little memory used. (Sent by a plain http.server: pytest-httpserver's werkzeug takes
    megabytes per request in this process, which would count in the peak.)"""
    with serving(Bomb) as origin:
        up = client(PUBLIC_INDEX, origin + "/", max_page_size=1_000_000)
        tracemalloc.start()
        try:
            with pytest.raises(UpstreamRefused, match="max_page_size"):
                up.get_page(PUBLIC_INDEX + "lib/")
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert len(Bomb.body) < 100_000 and peak < 10_000_000


def test_files_are_asked_for_and_kept_as_sent(scripted: HTTPServer, proxy: str) -> None:
    """A file is fetched without content coding, and its bytes are never decoded: a gzip'd
    tarball stays the bytes its digest names."""
    tarball = gzip.compress(b"tar bytes")
    scripted.expect_request("/files/lib-1.0.tar.gz").respond_with_data(
        tarball, headers={"Content-Encoding": "gzip"}
    )
    up = client(PUBLIC_INDEX, proxy)
    assert fetched(up, "http://151.101.0.223/files/lib-1.0.tar.gz") == tarball
    assert scripted.log[0][0].headers["Accept-Encoding"] == "identity"


def page(files: list[dict[str, object]]) -> str:
    return json.dumps({"meta": {"api-version": "1.1"}, "name": "lib", "files": files})


def list_wheel(scripted: HTTPServer, whole: bytes) -> None:
    """The upstream's page of `lib` lists one file, WHEEL: `whole`'s size and sha256."""
    sha = hashlib.sha256(whole).hexdigest()
    entry = {"filename": WHEEL, "url": f"../../files/{WHEEL}", "hashes": {"sha256": sha}}
    listed: list[dict[str, object]] = [{**entry, "size": len(whole)}]
    scripted.expect_request("/simple/lib/").respond_with_data(page(listed), content_type=JSON)


def files(count: int, **fields: object) -> list[dict[str, object]]:
    return [
        {"filename": f"lib-1.{n}-py3-none-any.whl", "url": f"../../files/lib-1.{n}.whl", **fields}
        for n in range(count)
    ]


def app_config(tmp_path: Path, proxy: str, **remote: object) -> Path:
    extra = "".join(f"{key} = {json.dumps(value)}\n" for key, value in remote.items())
    extra += f"proxy_url = {json.dumps(proxy)}\n"
    config = tmp_path / "pullthrough.toml"
    config.write_text(
        f'[server]\ndata_dir = "{tmp_path / "data"}"\nembedded_worker = false\n'
        f'[[remotes]]\nname = "up"\nurl = "{LOCAL_INDEX}"\nmax_retries = 0\n{extra}'
        '[[distributions]]\nname = "main"\nbase_path = "main"\nremote = "up"\n'
    )
    return config


def test_a_project_page_listing_too_many_files_is_refused_unparsed(
    scripted: HTTPServer, proxy: str, tmp_path: Path
) -> None:
    scripted.expect_request("/simple/lib/").respond_with_data(page(files(50)), content_type=JSON)
    config = app_config(tmp_path, proxy, max_page_files=10)
    app = create_app(load_settings(config, environ={}))
    try:
        answer = app.test_client().get("/pypi/main/simple/lib/")
        assert answer.status_code == 502
        assert "max_page_files" in answer.get_data(as_text=True)
    finally:
        app.extensions["pullthrough"].close()


@pytest.mark.parametrize("allowed", [False, True])
def test_a_file_without_a_sha256_is_fetched_only_when_allowed(
    scripted: HTTPServer, proxy: str, tmp_path: Path, allowed: bool
) -> None:
    listed: list[dict[str, object]] = [
        {"filename": WHEEL, "url": f"../../files/{WHEEL}", "hashes": {}}
    ]
    scripted.expect_request("/simple/lib/").respond_with_data(page(listed), content_type=JSON)
    scripted.expect_request("/files/" + WHEEL).respond_with_data(b"unchecked bytes")
    config = app_config(tmp_path, proxy, allow_unhashed=allowed)
    app = create_app(load_settings(config, environ={}))
    try:
        with app.test_client().get(f"/pulp/content/main/{WHEEL}") as answer:
            if allowed:
                assert (answer.status_code, answer.get_data()) == (200, b"unchecked bytes")
            else:
                assert answer.status_code == 502
                assert "allow_unhashed" in answer.get_data(as_text=True)
                assert asked(scripted) == [LOCAL_INDEX + "lib/"]
    finally:
        app.extensions["pullthrough"].close()


def test_an_unhashed_file_must_have_the_size_its_index_lists(
    scripted: HTTPServer, proxy: str, tmp_path: Path
) -> None:
    """With allow_unhashed, nothing but the listed size checks a file: a body that ends early,
    without a Content-Length to say so, is a 502 and kept nowhere; the next request, the
    upstream healed, gets the file."""
    whole = b"unchecked bytes, all of them"
    listed: list[dict[str, object]] = [
        {"filename": WHEEL, "url": f"../../files/{WHEEL}", "hashes": {}, "size": len(whole)}
    ]
    scripted.expect_request("/simple/lib/").respond_with_data(page(listed), content_type=JSON)

    def cut_short(_: Request) -> Response:  # chunked: no Content-Length says it ended early
        return Response(iter([whole[:10]]), content_type="application/octet-stream")

    scripted.expect_request("/files/" + WHEEL).respond_with_handler(cut_short)
    app = create_app(load_settings(app_config(tmp_path, proxy, allow_unhashed=True), environ={}))
    try:
        client = app.test_client()
        with client.get(f"/pulp/content/main/{WHEEL}") as answer:
            assert answer.status_code == 502
            assert f"its index lists {len(whole)}" in answer.get_data(as_text=True)
        scripted.clear_all_handlers()
        scripted.expect_request("/files/" + WHEEL).respond_with_data(whole)
        with client.get(f"/pulp/content/main/{WHEEL}") as answer:
            assert (answer.status_code, answer.get_data()) == (200, whole)
    finally:
        app.extensions["pullthrough"].close()


@pytest.mark.parametrize(
    "announced",
    ["9" * 5000, "\N{SUPERSCRIPT TWO}"],  # past what int() reads; a digit int() cannot read
)
def test_a_file_whose_content_length_cannot_be_read_is_fetched_by_its_listed_size(
    scripted: HTTPServer, proxy: str, tmp_path: Path, announced: str
) -> None:
    """An upstream's Content-Length that is no number Python reads (thousands of digits, or a
    Latin-1 digit such as a superscript, which str.isdigit takes) is no size: http.client and
    urllib3 read the body to its end, and so does the download, bounded by the size the index
    lists - not a 500 that leaves the file's download lock held, every later request for it
    waiting in vain."""
    whole = b"the wheel's bytes"
    list_wheel(scripted, whole)

    def odd_length(_: Request) -> Response:
        answer = Response(whole, content_type="application/octet-stream")
        answer.headers["Content-Length"] = announced
        return answer

    scripted.expect_request("/files/" + WHEEL).respond_with_handler(odd_length)
    app = create_app(load_settings(app_config(tmp_path, proxy), environ={}))
    try:
        with app.test_client().get(f"/pulp/content/main/{WHEEL}") as answer:
            assert (answer.status_code, answer.get_data()) == (200, whole)
        lock = app.extensions["pullthrough"].locks.lock(f"http://127.0.0.1:9/files/{WHEEL}")
        assert lock.acquire(timeout=5)  # the file stored alongside the answer, it is let go
        lock.release()
    finally:
        app.extensions["pullthrough"].close()


def test_a_range_whose_content_range_cannot_be_read_is_no_range_of_the_file(
    ranged: Ranged,
) -> None:
    """A range of a file not cached yet is asked of the upstream; an answer whose Content-Range
    holds a number of more digits than int() reads (4,300) is not that range - as one of
    another size is not - and the whole file is sent instead: not a 500."""
    whole = bytes(range(256)) * 1200  # past HOLD_BACK: a range of it is relayed as it comes
    client = ranged(whole, 206, f"bytes 0-{'9' * 5000}/{len(whole)}")
    with client.get(f"/pulp/content/main/{WHEEL}", headers={"Range": "bytes=0-9"}) as answer:
        assert answer.status_code in (200, 206), answer.get_data(as_text=True)[:300]
        sent = answer.get_data()
        assert sent == (whole if answer.status_code == 200 else whole[:10])


def test_an_unsatisfiable_range_whose_size_cannot_be_read_is_a_416_without_it(
    ranged: Ranged,
) -> None:
    """The upstream's 416 to a range of a file not cached yet is the client's 416, with the
    file's size when the upstream's Content-Range gives one it can read - and without it when
    the number is more digits than int() reads: not a 500."""
    whole = bytes(range(256)) * 1200  # past HOLD_BACK: its range is asked of the upstream
    client = ranged(whole, 416, f"bytes */{'9' * 5000}")
    with client.get(f"/pulp/content/main/{WHEEL}", headers={"Range": "bytes=0-9"}) as answer:
        assert answer.status_code == 416, answer.get_data(as_text=True)[:300]
        assert "9999" not in answer.headers.get("Content-Range", "")


Ranged = Callable[[bytes, int, str], FlaskClient]


@pytest.fixture
def ranged(scripted: HTTPServer, proxy: str, tmp_path: Path) -> Iterator[Ranged]:
    """Clients of apps whose upstream lists `whole` (a wheel) and answers a range of it with
    `status` and the Content-Range `said` (the whole file to a GET without Range)."""
    apps: list[Flask] = []

    def start(whole: bytes, status: int, said: str) -> FlaskClient:
        list_wheel(scripted, whole)

        def odd_range(request: Request) -> Response:
            if "Range" not in request.headers:
                return Response(whole, content_type="application/octet-stream")
            answer = Response(whole[:10], status=status, content_type="application/octet-stream")
            answer.headers["Content-Range"] = said
            return answer

        scripted.expect_request("/files/" + WHEEL).respond_with_handler(odd_range)
        apps.append(create_app(load_settings(app_config(tmp_path, proxy), environ={})))
        return apps[-1].test_client()

    yield start
    for app in apps:
        app.extensions["pullthrough"].close()
