"""How the upstream client reaches an index: over TLS with the remote's CA and client
certificate, through the remote's HTTP proxy with its credentials (else the environment's proxy
and CA bundle apply), and with the headers every request carries. Real servers on 127.0.0.1: an
HTTPS index (certificates from trustme) and a forwarding proxy."""

from __future__ import annotations

import base64
import gzip
import http.client
import select
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import trustme
from urllib3.exceptions import InsecureRequestWarning

from pullthrough.config import RemoteSettings
from pullthrough.upstream.client import USER_AGENT, UpstreamClient, UpstreamError
from support.servers import free_port, serving

PAGE = b'<html><body><a href="/files/lib-1.0-py3-none-any.whl#sha256=' + b"a" * 64 + b'">x</a>'


class Index(BaseHTTPRequestHandler):
    """Answers every GET with PAGE (gzip'd when asked, as PyPI's CDN does), noting headers."""

    seen: list[dict[str, str]]

    def do_GET(self) -> None:
        self.seen.append({"path": self.path, **dict(self.headers.items())})
        body = PAGE
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        if "gzip" in self.headers.get("Accept-Encoding", ""):
            body = gzip.compress(PAGE)
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


class Proxy(BaseHTTPRequestHandler):
    """A forwarding HTTP proxy: an absolute-form GET is fetched from its origin and relayed; a
    CONNECT opens a tunnel to the host and port asked for (an https:// index), noted as
    `CONNECT host:port`."""

    seen: list[tuple[str, str | None]]

    def do_GET(self) -> None:
        self.seen.append((self.path, self.headers.get("Proxy-Authorization")))
        target = urlsplit(self.path)
        upstream = http.client.HTTPConnection(target.netloc, timeout=10)
        headers = {k: v for k, v in self.headers.items() if not k.lower().startswith("proxy-")}
        upstream.request("GET", target.path, headers=headers)
        answer = upstream.getresponse()
        body = answer.read()
        self.send_response(answer.status)
        for key, value in answer.getheaders():
            if key.lower() not in ("connection", "transfer-encoding", "content-length"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        upstream.close()

    def do_CONNECT(self) -> None:
        self.seen.append((f"CONNECT {self.path}", self.headers.get("Proxy-Authorization")))
        host, _, port = self.path.rpartition(":")
        self.close_connection = True
        with socket.create_connection((host, int(port)), timeout=10) as upstream:
            self.send_response(200, "Connection established")
            self.end_headers()
            ends = {self.connection: upstream, upstream: self.connection}
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:  # until either side closes
                for end in select.select(list(ends), [], [], 0.2)[0]:
                    if not (data := end.recv(65536)):
                        return
                    ends[end].sendall(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def index_seen() -> Iterator[list[dict[str, str]]]:
    seen: list[dict[str, str]] = []
    Index.seen = seen
    yield seen


def https_index(
    ca: trustme.CA, *, client_ca: trustme.CA | None = None
) -> AbstractContextManager[str]:
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(tls)
    if client_ca is not None:
        client_ca.configure_trust(tls)
        tls.verify_mode = ssl.CERT_REQUIRED
    return serving(Index, tls)


def client(url: str, tmp_path: Path, **settings: Any) -> UpstreamClient:
    remote = RemoteSettings(name="up", url=url, max_retries=0, **settings)
    return UpstreamClient(remote, tls_dir=tmp_path / "tls")


def test_an_https_index_is_trusted_through_the_remotes_ca_only(
    ca: trustme.CA, index_seen: list[dict[str, str]], tmp_path: Path
) -> None:
    with https_index(ca) as origin:
        url = f"{origin}/simple/"
        trusted = client(url, tmp_path, ca_cert=ca.cert_pem.bytes().decode())
        assert trusted.get_page(url + "lib/").body == PAGE
        with pytest.raises(UpstreamError, match="CERTIFICATE_VERIFY_FAILED"):
            client(url, tmp_path).get_page(url + "lib/")
        unchecked = client(url, tmp_path, tls_validation=False)
        with pytest.warns(InsecureRequestWarning):  # urllib3's, as the remote asked for
            assert unchecked.get_page(url + "lib/").body == PAGE


def test_an_index_that_asks_for_a_client_certificate_gets_the_remotes(
    ca: trustme.CA, index_seen: list[dict[str, str]], tmp_path: Path
) -> None:
    client_ca = trustme.CA()
    ours = client_ca.issue_cert("pullthrough.example")
    with https_index(ca, client_ca=client_ca) as origin:
        url = f"{origin}/simple/"
        pem = ca.cert_pem.bytes().decode()
        with_cert = client(
            url,
            tmp_path,
            ca_cert=pem,
            client_cert=ours.cert_chain_pems[0].bytes().decode(),
            client_key=ours.private_key_pem.bytes().decode(),
        )
        assert with_cert.get_page(url + "lib/").body == PAGE
        with pytest.raises(UpstreamError):
            client(url, tmp_path, ca_cert=pem).get_page(url + "lib/")


def proxy_at(scheme: str, ca: trustme.CA) -> AbstractContextManager[str]:
    """The forwarding proxy, reached over TLS (a certificate from `ca`) for `https`."""
    if scheme == "http":
        return serving(Proxy)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(tls)
    return serving(Proxy, tls)


@pytest.mark.parametrize("proxy_scheme", ["http", "https"])
def test_the_remotes_proxy_carries_every_request_with_its_credentials(
    proxy_scheme: str, ca: trustme.CA, index_seen: list[dict[str, str]], tmp_path: Path
) -> None:
    """A proxy URL of either scheme: an https:// one is reached over TLS, checked against the
    remote's CA."""
    proxied: list[tuple[str, str | None]] = []
    Proxy.seen = proxied
    with serving(Index) as origin, proxy_at(proxy_scheme, ca) as proxy:
        url = f"{origin}/simple/"
        via = client(
            url,
            tmp_path,
            ca_cert=ca.cert_pem.bytes().decode(),
            proxy_url=f"{proxy}/",
            proxy_username="egress",
            proxy_password="s3cret:pw",
        )
        assert via.get_page(url + "lib/").body == PAGE
        via.close()
    credentials = "Basic " + base64.b64encode(b"egress:s3cret:pw").decode()
    assert proxied == [(url + "lib/", credentials)]
    assert [seen["path"] for seen in index_seen] == ["/simple/lib/"]
    assert "Proxy-Authorization" not in index_seen[0]


def test_a_proxy_that_fails_is_named_in_the_error_without_its_credentials(
    ca: trustme.CA, tmp_path: Path
) -> None:
    """A refused proxy, or one whose certificate is not trusted, is not the index's fault:
    the error names both (a plain http index here, so TLS can only be the proxy's)."""
    with serving(Index) as origin, proxy_at("https", ca) as untrusted:
        url = f"{origin}/simple/"
        closed = f"http://127.0.0.1:{free_port()}/"
        for proxy, reason in ((closed, "refused"), (untrusted + "/", "CERTIFICATE_VERIFY_FAILED")):
            via = client(
                url, tmp_path, proxy_url=proxy, proxy_username="egress", proxy_password="s3cret"
            )
            with pytest.raises(UpstreamError) as failed:
                via.get_page(url + "lib/")
            message = str(failed.value)
            assert f"{url}lib/ through the proxy {proxy}" in message, message
            assert reason in message, message
            assert "s3cret" not in message and "egress" not in message, message


@pytest.mark.parametrize("proxy_scheme", ["http", "https"])
def test_an_https_index_is_reached_through_the_proxys_tunnel(
    proxy_scheme: str, ca: trustme.CA, index_seen: list[dict[str, str]], tmp_path: Path
) -> None:
    """A company's egress: the index over HTTPS inside the proxy's CONNECT tunnel (itself over
    TLS for an https:// proxy URL: TLS in TLS), the proxy's credentials on the CONNECT only,
    the index's certificate checked end to end."""
    proxied: list[tuple[str, str | None]] = []
    Proxy.seen = proxied
    with https_index(ca) as origin, proxy_at(proxy_scheme, ca) as proxy:
        url = f"{origin}/simple/"
        via = client(
            url,
            tmp_path,
            ca_cert=ca.cert_pem.bytes().decode(),
            proxy_url=f"{proxy}/",
            proxy_username="egress",
            proxy_password="pw",
        )
        assert via.get_page(url + "lib/").body == PAGE
        via.close()
    credentials = "Basic " + base64.b64encode(b"egress:pw").decode()
    assert proxied == [(f"CONNECT {urlsplit(origin).netloc}", credentials)]
    assert [seen["path"] for seen in index_seen] == ["/simple/lib/"]
    assert "Proxy-Authorization" not in index_seen[0]


def test_without_a_proxy_of_its_own_a_remote_takes_the_environments(
    index_seen: list[dict[str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A corporate machine's HTTP_PROXY and NO_PROXY, as pip and curl read them."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    proxied: list[tuple[str, str | None]] = []
    Proxy.seen = proxied
    with serving(Index) as origin, serving(Proxy) as proxy:
        url = f"{origin}/simple/"
        monkeypatch.setenv("HTTP_PROXY", proxy)
        assert client(url, tmp_path).get_page(url + "lib/").body == PAGE
        assert proxied == [(url + "lib/", None)]
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        assert client(url, tmp_path).get_page(url + "lib/").body == PAGE
    assert len(proxied) == 1  # the second went to the index itself
    assert [seen["path"] for seen in index_seen] == ["/simple/lib/"] * 2


def test_without_a_ca_of_its_own_a_remote_trusts_the_environments_bundle(
    ca: trustme.CA,
    index_seen: list[dict[str, str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """REQUESTS_CA_BUNDLE, where a company puts the CA of its TLS-inspecting egress."""
    bundle = tmp_path / "company-ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    with https_index(ca) as origin:
        url = f"{origin}/simple/"
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
        assert client(url, tmp_path).get_page(url + "lib/").body == PAGE
        monkeypatch.delenv("REQUESTS_CA_BUNDLE")
        monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
        with pytest.raises(UpstreamError, match="CERTIFICATE_VERIFY_FAILED"):
            client(url, tmp_path).get_page(url + "lib/")


def test_every_request_says_who_asks_and_what_it_takes(
    index_seen: list[dict[str, str]], tmp_path: Path
) -> None:
    """Pages may come compressed (and are decoded); files are asked for as they are; the
    remote's own headers and credentials go with every request to its index."""
    with serving(Index) as origin:
        url = f"{origin}/simple/"
        up = client(url, tmp_path, headers=[{"X-Team": "builds"}], username="ci", password="pw")
        assert up.get_page(url + "lib/").body == PAGE
        file_url = url + "lib-1.0-py3-none-any.whl"
        with up.open_file(file_url) as resp:
            assert b"".join(up.iter_body(resp, file_url)) == PAGE
    page, file = index_seen
    for seen in (page, file):
        assert seen["User-Agent"] == USER_AGENT
        assert seen["X-Team"] == "builds"
        assert seen["Authorization"] == "Basic " + base64.b64encode(b"ci:pw").decode()
    assert "gzip" in page["Accept-Encoding"]
    assert "application/vnd.pypi.simple.v1+json" in page["Accept"]
    assert file["Accept-Encoding"] == "identity"


class KeptAlive(BaseHTTPRequestHandler):
    """An index on HTTP/1.1 that keeps its connections open, noting each request's connection
    (the client's port). Once `drop` is set it closes a connection after its answer, without a
    `Connection: close` (an index's idle timeout, a CDN node going away)."""

    protocol_version = "HTTP/1.1"
    ports: list[int]
    drop = False

    def do_GET(self) -> None:
        self.ports.append(self.client_address[1])
        status, body = (404, b"no such project") if "missing" in self.path else (200, PAGE)
        if self.headers.get("If-None-Match") == '"v1"':
            status, body = 304, b""
        self.send_response(status)
        self.send_header("ETag", '"v1"')
        if status != 304:
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = self.close_connection or self.drop

    def log_message(self, *args: Any) -> None:
        pass


class _Closing(ThreadingHTTPServer):
    """Sets `closed` each time it has closed a connection."""

    daemon_threads = True
    closed = threading.Event()

    def shutdown_request(self, request: Any) -> None:
        super().shutdown_request(request)
        self.closed.set()


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_an_index_is_asked_over_one_kept_alive_connection(
    scheme: str, ca: trustme.CA, tmp_path: Path
) -> None:
    """A cold project's page and file cost one connection, not one each (over TLS, not a
    handshake each): pages, files, 404s and 304s leave it open for the next request. One the
    index closed while it was idle is replaced, without a retry (the remote has none here)."""
    KeptAlive.ports, KeptAlive.drop = [], False
    server = _Closing(("127.0.0.1", 0), KeptAlive)
    settings: dict[str, Any] = {}
    if scheme == "https":
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(tls)
        server.socket = tls.wrap_socket(server.socket, server_side=True)
        settings["ca_cert"] = ca.cert_pem.bytes().decode()
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        url = f"{scheme}://127.0.0.1:{server.server_port}/simple/"
        up = client(url, tmp_path, **settings)
        assert up.get_page(url + "lib/").body == PAGE
        file_url = url + "lib-1.0-py3-none-any.whl"
        with up.open_file(file_url) as resp:
            assert b"".join(up.iter_body(resp, file_url)) == PAGE
        assert up.get_page(url + "missing/").status == 404
        assert up.get_page(url + "lib/", etag='"v1"').status == 304
        assert up.get_page(url + "lib/").body == PAGE
        assert len(KeptAlive.ports) == 5 and len(set(KeptAlive.ports)) == 1, KeptAlive.ports

        KeptAlive.drop = True
        server.closed.clear()
        assert up.get_page(url + "lib/").body == PAGE  # answered, then its connection closed
        assert server.closed.wait(timeout=5)
        KeptAlive.drop = False
        assert up.get_page(url + "lib/").body == PAGE
        assert len(KeptAlive.ports) == 7 and len(set(KeptAlive.ports)) == 2, KeptAlive.ports
    finally:
        server.shutdown()
        server.server_close()
