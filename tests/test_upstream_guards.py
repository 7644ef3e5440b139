"""What an upstream cannot make this server do: fetch from its own host or network (SSRF, also
through a redirect), hand out files whose bytes nothing can check, or swallow pages of absurd
size. The upstream is injected with `responses`; the address checks work on literal IPs."""

from __future__ import annotations

import gzip
import json
import tracemalloc
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import responses

from pullthrough.app import create_app
from pullthrough.config import RemoteSettings, load_settings
from pullthrough.upstream.client import UpstreamClient, UpstreamRefused

PUBLIC_INDEX = "http://151.101.0.223/simple/"  # an address of PyPI's CDN; nothing is sent there
LOCAL_INDEX = "http://127.0.0.1:9/simple/"
JSON = "application/vnd.pypi.simple.v1+json"
WHEEL = "lib-1.0-py3-none-any.whl"


def client(url: str, **settings: Any) -> UpstreamClient:
    return UpstreamClient(RemoteSettings(name="up", url=url, max_retries=0, **settings))


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


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
    mocked: responses.RequestsMock, file_url: str
) -> None:
    with pytest.raises(UpstreamRefused, match="allow_private_addresses"):
        client(PUBLIC_INDEX).open_file(file_url)
    assert len(mocked.calls) == 0  # refused before any connection


def test_a_local_index_may_use_its_own_kind_of_address_only(
    mocked: responses.RequestsMock,
) -> None:
    mocked.get("http://127.0.0.2:9/files/lib.whl", body=b"wheel")
    local = client(LOCAL_INDEX)
    assert local.open_file("http://127.0.0.2:9/files/lib.whl").content == b"wheel"
    for elsewhere in ("http://169.254.169.254/x", "http://192.168.1.1/x"):
        with pytest.raises(UpstreamRefused):
            local.open_file(elsewhere)


def test_a_redirect_is_checked_like_the_url_itself(mocked: responses.RequestsMock) -> None:
    mocked.get(
        "http://127.0.0.1:9/files/lib.whl",
        status=302,
        headers={"Location": "http://169.254.169.254/latest/meta-data/iam/"},
    )
    with pytest.raises(UpstreamRefused, match="link-local"):
        client(LOCAL_INDEX).open_file("http://127.0.0.1:9/files/lib.whl")
    assert [c.request.url for c in mocked.calls] == ["http://127.0.0.1:9/files/lib.whl"]


def test_a_remote_may_allow_private_addresses(mocked: responses.RequestsMock) -> None:
    mocked.get("http://10.0.0.7/lib.whl", body=b"wheel")
    allowed = client(PUBLIC_INDEX, allow_private_addresses=True)
    assert allowed.open_file("http://10.0.0.7/lib.whl").content == b"wheel"


def test_pages_over_the_size_limit_are_refused(mocked: responses.RequestsMock) -> None:
    small = client(PUBLIC_INDEX, max_page_size=1000)
    mocked.get(PUBLIC_INDEX + "big/", body=b"x" * 2000, content_type=JSON)
    with pytest.raises(UpstreamRefused, match="max_page_size"):
        small.get_page(PUBLIC_INDEX + "big/")
    mocked.get(PUBLIC_INDEX + "fits/", body=b"x" * 1000, content_type=JSON)
    assert small.get_page(PUBLIC_INDEX + "fits/").body == b"x" * 1000


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_a_compressed_page_is_read_decoded(mocked: responses.RequestsMock, encoding: str) -> None:
    """PyPI's CDN gzips pages for a client that accepts it (we do); the page is parsed as it
    reads, never as compressed bytes."""
    body = page(files(3)).encode()
    sent = gzip.compress(body) if encoding == "gzip" else zlib.compress(body)
    headers = {"Content-Encoding": encoding}
    mocked.get(PUBLIC_INDEX + "lib/", body=sent, content_type=JSON, headers=headers)
    assert client(PUBLIC_INDEX).get_page(PUBLIC_INDEX + "lib/").body == body
    accepted = mocked.calls[0].request.headers["Accept-Encoding"]
    assert "gzip" in accepted and "identity" not in accepted


def test_a_compressed_page_over_the_size_limit_is_refused_without_inflating_it(
    mocked: responses.RequestsMock,
) -> None:
    """A 50 MB page in 50 KB of gzip: counted against max_page_size as it is decoded, a chunk
    at a time, and refused with little memory used."""
    bomb = gzip.compress(b" " * 50_000_000)
    mocked.get(
        PUBLIC_INDEX + "lib/", body=bomb, content_type=JSON, headers={"Content-Encoding": "gzip"}
    )
    tracemalloc.start()
    try:
        with pytest.raises(UpstreamRefused, match="max_page_size"):
            client(PUBLIC_INDEX, max_page_size=1_000_000).get_page(PUBLIC_INDEX + "lib/")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(bomb) < 100_000 and peak < 10_000_000


def test_files_are_asked_for_and_kept_as_sent(mocked: responses.RequestsMock) -> None:
    """A file is fetched without content coding, and its bytes are never decoded: a gzip'd
    tarball stays the bytes its digest names."""
    tarball = gzip.compress(b"tar bytes")
    mocked.get(
        "http://151.101.0.223/files/lib-1.0.tar.gz",
        body=tarball,
        headers={"Content-Encoding": "gzip"},
    )
    up = client(PUBLIC_INDEX)
    resp = up.open_file("http://151.101.0.223/files/lib-1.0.tar.gz")
    assert b"".join(up.iter_body(resp, resp.url)) == tarball
    assert mocked.calls[0].request.headers["Accept-Encoding"] == "identity"


def page(files: list[dict[str, object]]) -> str:
    return json.dumps({"meta": {"api-version": "1.1"}, "name": "lib", "files": files})


def files(count: int, **fields: object) -> list[dict[str, object]]:
    return [
        {"filename": f"lib-1.{n}-py3-none-any.whl", "url": f"../../files/lib-1.{n}.whl", **fields}
        for n in range(count)
    ]


def app_config(tmp_path: Path, **remote: object) -> Path:
    extra = "".join(f"{key} = {json.dumps(value)}\n" for key, value in remote.items())
    config = tmp_path / "pullthrough.toml"
    config.write_text(
        f'[server]\ndata_dir = "{tmp_path / "data"}"\nembedded_worker = false\n'
        f'[[remotes]]\nname = "up"\nurl = "{LOCAL_INDEX}"\nmax_retries = 0\n{extra}'
        '[[distributions]]\nname = "main"\nbase_path = "main"\nremote = "up"\n'
    )
    return config


def test_a_project_page_listing_too_many_files_is_refused_unparsed(
    mocked: responses.RequestsMock, tmp_path: Path
) -> None:
    mocked.get(LOCAL_INDEX + "lib/", body=page(files(50)), content_type=JSON)
    app = create_app(load_settings(app_config(tmp_path, max_page_files=10), environ={}))
    try:
        answer = app.test_client().get("/pypi/main/simple/lib/")
        assert answer.status_code == 502
        assert "max_page_files" in answer.get_data(as_text=True)
    finally:
        app.extensions["pullthrough"].close()


@pytest.mark.parametrize("allowed", [False, True])
def test_a_file_without_a_sha256_is_fetched_only_when_allowed(
    mocked: responses.RequestsMock, tmp_path: Path, allowed: bool
) -> None:
    listed: list[dict[str, object]] = [
        {"filename": WHEEL, "url": f"../../files/{WHEEL}", "hashes": {}}
    ]
    mocked.get(LOCAL_INDEX + "lib/", body=page(listed), content_type=JSON)
    mocked.get("http://127.0.0.1:9/files/" + WHEEL, body=b"unchecked bytes")
    app = create_app(load_settings(app_config(tmp_path, allow_unhashed=allowed), environ={}))
    try:
        with app.test_client().get(f"/pulp/content/main/{WHEEL}") as answer:
            if allowed:
                assert (answer.status_code, answer.get_data()) == (200, b"unchecked bytes")
            else:
                assert answer.status_code == 502
                assert "allow_unhashed" in answer.get_data(as_text=True)
                assert not [c for c in mocked.calls if "/files/" in str(c.request.url)]
    finally:
        app.extensions["pullthrough"].close()
