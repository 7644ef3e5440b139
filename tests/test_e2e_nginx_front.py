"""Warm pages from the nginx front users deploy (deploy/nginx.conf), the app still deciding.

nginx runs the shipped site (rendered by support.nginx: addresses and paths only) in front of
`pullthrough serve` on the loopback. Its page cache keeps a public simple page or JSON API answer
for at most 2 s (1 s counted in whole seconds), then revalidates it with the app's ETag; it never
stores what the app calls private, nor what it says must be asked about every time (max-age=0).
Checked here with pip, and with requests that read nginx's `X-Cache-Status` and the app's own
request counter (/metrics, on gunicorn directly).
"""

from __future__ import annotations

import gzip
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from support.api import AUTH, Api, legacy_upload, with_auth
from support.nginx import NginxFront
from support.packages import build_wheel
from support.servers import PROXY_UA, Server, config_text, settle, stored_files
from support.tools import run_pip
from support.upstream import JSON_V1, Upstream

pytestmark = pytest.mark.e2e

PIP_ACCEPT = f"{JSON_V1}, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"
BOUND = 2.0  # seconds a page may be served from nginx's cache before it asks the app again
MARGIN = 1.0  # for the revalidating request itself and this machine's scheduling
PAGE = "/pypi/main/simple/shelf-reader/"
PRIVATE_PAGE = "/pypi/corp/simple/shelf-reader/"
PAGE_COUNTER = re.compile(r'^pullthrough_http_requests_total\{[^}]*kind="page"[^}]*\} (\S+)$', re.M)


@dataclass
class Front:
    app: Server  # gunicorn, straight
    url: str  # nginx's
    cache: Path  # nginx's page cache directory
    session: requests.Session

    def get(self, path: str, **headers: str) -> requests.Response:
        resp = self.session.get(self.url + path, headers=headers, timeout=30)
        resp.content  # noqa: B018 - read whole: the connection is free again
        return resp

    def app_page_requests(self) -> float:
        """Page requests the app has answered (all workers), from its /metrics."""
        text = requests.get(self.app.url + "/metrics", timeout=10).text
        return sum(float(v) for v in PAGE_COUNTER.findall(text))

    def cached_keys(self) -> list[str]:
        """The keys of the entries in nginx's page cache (each file's `KEY:` line)."""
        keys = []
        for path in self.cache.rglob("*"):
            if path.is_file():
                match = re.search(rb"\nKEY: ([^\n]*)\n", path.read_bytes()[:4096])
                if match:
                    keys.append(match.group(1).decode())
        return keys


@pytest.fixture
def front(
    upstream: Upstream, gunicorn_server: Callable[..., Server], nginx: str, tmp_path: Path
) -> Iterator[Front]:
    """pullthrough (distribution `main`, public, uploads allowed; `corp`, private, same
    remote) behind nginx running deploy/nginx.conf."""
    text = with_auth(config_text(upstream.index_url, tmp_path / "data"))
    text += '[[distributions]]\nname = "corp"\nbase_path = "corp"\nremote = "up"\nprivate = true\n'
    server = gunicorn_server(text)
    port = urlsplit(server.url).port
    assert port is not None
    with NginxFront(nginx, tmp_path / "nginx", port) as proxy, requests.Session() as session:
        yield Front(server, proxy.url, tmp_path / "nginx" / "cache", session)


def fresh_for(resp: requests.Response) -> int:
    """The seconds of a public page's `Cache-Control: max-age=N, public`."""
    found = re.fullmatch(r"max-age=(\d+), public", resp.headers["Cache-Control"])
    assert found, resp.headers["Cache-Control"]
    return int(found[1])


def page_files(resp: requests.Response) -> set[str]:
    assert resp.status_code == 200, (resp.status_code, resp.text[:300])
    return {f["filename"] for f in resp.json()["files"]}


@pytest.mark.slow
def test_pip_installs_through_the_front_and_pages_come_from_its_cache(
    front: Front, upstream: Upstream, tmp_path: Path
) -> None:
    dest = tmp_path / "dl"
    run_pip(["download", "--no-deps", "-d", str(dest), "-i", front.url + "/pypi/main/simple/",
             "shelf-reader==0.2"])  # fmt: skip
    assert [p.name for p in dest.iterdir()] == ["shelf_reader-0.2-py3-none-any.whl"]
    agents = {rec.header("user-agent") or "" for rec in upstream.log}
    assert agents and all(a.startswith(PROXY_UA) for a in agents), agents
    assert upstream.requests_for("shelf_reader-0.2-py3-none-any.whl", server="files")
    assert settle(front.app.data_dir) and len(stored_files(front.app.data_dir)) == 1

    # The page is in nginx's cache now (pip's Accept and gzip): asked again and again within a
    # second or two, nginx answers, not the app, which is asked again only once the entry is
    # older than the bound (REVALIDATED: its 304).
    before = front.app_page_requests()
    statuses = [
        front.get(PAGE, Accept=PIP_ACCEPT, **{"Accept-Encoding": "gzip"}).headers.get(
            "X-Cache-Status"
        )
        for _ in range(20)
    ]
    asked = front.app_page_requests() - before
    assert statuses.count("HIT") >= 15, statuses
    # Each request that was not a hit reached the app, and no other did.
    assert asked == len(statuses) - statuses.count("HIT"), (asked, statuses)
    run_pip(["download", "--no-deps", "-d", str(tmp_path / "dl2"), "-i",
             front.url + "/pypi/main/simple/", "shelf-reader==0.2"])  # fmt: skip
    assert (tmp_path / "dl2" / "shelf_reader-0.2-py3-none-any.whl").exists()


def test_each_format_and_encoding_is_its_own_entry_and_expires_within_the_bound(
    front: Front,
) -> None:
    variants = {
        "json gzip": {"Accept": PIP_ACCEPT, "Accept-Encoding": "gzip, deflate"},
        "json": {"Accept": PIP_ACCEPT, "Accept-Encoding": "identity"},
        "html gzip": {"Accept": "text/html", "Accept-Encoding": "gzip"},
        "html": {"Accept": "text/html", "Accept-Encoding": "identity"},
    }
    # requests decodes gzip itself: the raw stream shows what was sent.
    first = {name: front.get(PAGE, **headers) for name, headers in variants.items()}
    for name, resp in first.items():
        assert resp.status_code == 200, (name, resp.status_code)
        assert resp.headers["X-Cache-Status"] in ("MISS", "EXPIRED"), (name, resp.headers)
        assert resp.headers.get("Content-Encoding") == ("gzip" if "gzip" in name else None), name
        assert resp.headers["Content-Type"].startswith(
            JSON_V1 if name.startswith("json") else "text/html"
        ), (name, resp.headers["Content-Type"])
    again = {name: front.get(PAGE, **headers) for name, headers in variants.items()}
    for name, resp in again.items():
        assert resp.headers.get("Content-Encoding") == first[name].headers.get("Content-Encoding")
        assert resp.headers["ETag"] == first[name].headers["ETag"], name
        assert resp.content == first[name].content, name
    assert [r.headers["X-Cache-Status"] for r in again.values()].count("HIT") >= 3, again
    # The app's headers reach the client: its max-age, Vary and ETag.
    assert fresh_for(first["json"]) in range(590, 601)  # index_ttl, counted from the fetch
    assert "Accept" in first["json"].headers["Vary"]
    raw = requests.get(front.url + PAGE, headers=variants["json gzip"], stream=True, timeout=10)
    assert page_files(first["json"]) == {
        f["filename"] for f in json.loads(gzip.decompress(raw.raw.read()))["files"]
    }

    # Past the bound, the app is asked again (without the stored ETag: a 304 would keep the
    # stored headers, and their max-age, which the app counts down): EXPIRED.
    time.sleep(BOUND + 0.1)
    before = front.app_page_requests()
    later = {name: front.get(PAGE, **headers) for name, headers in variants.items()}
    assert {n: r.headers["X-Cache-Status"] for n, r in later.items()} == dict.fromkeys(
        variants, "EXPIRED"
    )
    assert front.app_page_requests() - before == len(variants)
    for name, resp in later.items():
        assert resp.status_code == 200 and resp.content == first[name].content, name

    # The JSON API too; its URLs name the host nginx was asked for.
    api = "/pypi/main/pypi/shelf-reader/json"
    one, two = front.get(api), front.get(api)
    assert one.status_code == two.status_code == 200
    assert two.headers["X-Cache-Status"] == "HIT" and two.content == one.content
    assert one.json()["urls"][0]["url"].startswith(front.url + "/pulp/content/main/")


def test_a_page_is_never_given_a_longer_max_age_than_the_app_gives_it(
    upstream: Upstream, gunicorn_server: Callable[..., Server], nginx: str, tmp_path: Path
) -> None:
    """The app's max-age is what is left of its page's time (index_ttl, 20 s here); a client
    of the front gets the same, at most the bound older. nginx keeps the headers it stored
    when a revalidation answers 304, so a page it held since the first request kept saying
    max-age=19 while the app said 12: pip and uv kept it up to index_ttl past its time."""
    text = config_text(upstream.index_url, tmp_path / "data", cache_index_ttl="20s")
    server = gunicorn_server(with_auth(text))
    port = urlsplit(server.url).port
    assert port is not None
    with NginxFront(nginx, tmp_path / "nginx", port) as proxy, requests.Session() as session:
        seen: list[tuple[float, str, int, int]] = []  # when, X-Cache-Status, front's, app's
        start = time.monotonic()
        while time.monotonic() - start < 3 * BOUND + MARGIN:  # past a few revalidations
            front = session.get(proxy.url + PAGE, headers={"Accept": JSON_V1}, timeout=10)
            app = session.get(server.url + PAGE, headers={"Accept": JSON_V1}, timeout=10)
            assert front.status_code == app.status_code == 200
            when = round(time.monotonic() - start, 1)
            status = front.headers["X-Cache-Status"]
            seen.append((when, status, fresh_for(front), fresh_for(app)))
            time.sleep(0.3)
    # An answer stored up to the bound ago says at most that much more than the app now.
    late = [s for s in seen if s[2] > s[3] + BOUND]
    assert not late, seen
    assert len({s[3] for s in seen}) >= 4, seen  # the app's max-age went down meanwhile


def test_an_upload_shows_through_the_front_within_the_bound(
    front: Front, upstream: Upstream, tmp_path: Path
) -> None:
    """A distribution serving a repository over the remote (an upstream project's page:
    max-age=index_ttl, public): a page nginx holds changes within the bound of an upload."""
    api = Api(front.app.url)
    remote = api.remote("team-upstream", upstream.index_url)
    repo = api.repository("team")
    api.distribution(
        "team", repository=repo["pulp_href"], remote=remote["pulp_href"], merge_remote=True
    )
    page = "/pypi/team/simple/shelf-reader/"
    old = page_files(front.get(page, Accept=JSON_V1))
    held = front.get(page, Accept=JSON_V1)
    assert held.headers["X-Cache-Status"] == "HIT", held.headers
    assert fresh_for(held) in range(590, 601)
    wheel = build_wheel(tmp_path / "new", "shelf-reader", "9.0")
    resp = legacy_upload(front.app.url, "team", wheel)
    assert resp.status_code == 200, resp.text
    uploaded = time.monotonic()
    seen: list[tuple[float, str, bool]] = []  # when, X-Cache-Status, whether it lists the upload
    while time.monotonic() - uploaded < BOUND + MARGIN + 2:  # bounded: the assertion says why
        resp = front.get(page, Accept=JSON_V1)
        new = wheel.name in page_files(resp)
        seen.append((round(time.monotonic() - uploaded, 2), resp.headers["X-Cache-Status"], new))
        if new:
            break
        time.sleep(0.05)
    assert seen[-1][2], f"the upload was not served within {seen[-1][0]:.1f} s: {seen}"
    assert seen[-1][0] <= BOUND + MARGIN, seen
    assert seen[-1][1] == "EXPIRED", seen  # nginx asked the app, which had a new page
    assert page_files(front.get(page, Accept=JSON_V1)) == old | {wheel.name}


def test_pages_the_app_says_to_ask_about_every_time_are_not_stored(
    front: Front, tmp_path: Path
) -> None:
    """A repository alone (no remote): its pages say max-age=0, nginx passes every request on,
    and an upload shows at once."""
    api = Api(front.app.url)
    repo = api.repository("local")
    api.distribution("local", repository=repo["pulp_href"])
    first = build_wheel(tmp_path / "one", "inhouse", "1.0")
    assert legacy_upload(front.app.url, "local", first).status_code == 200
    page = "/pypi/local/simple/inhouse/"
    before = front.app_page_requests()
    answers = [front.get(page, Accept=JSON_V1) for _ in range(3)]
    assert front.app_page_requests() - before == 3
    for resp in answers:
        assert resp.headers["Cache-Control"] == "max-age=0, public"
        assert resp.headers["X-Cache-Status"] == "MISS"
        assert page_files(resp) == {first.name}
    second = build_wheel(tmp_path / "two", "inhouse", "2.0")
    assert legacy_upload(front.app.url, "local", second).status_code == 200
    assert page_files(front.get(page, Accept=JSON_V1)) == {first.name, second.name}
    assert not [key for key in front.cached_keys() if "/pypi/local/" in key]


def test_a_private_page_is_never_served_from_the_cache(front: Front) -> None:
    for _ in range(3):
        authorized = front.session.get(front.url + PRIVATE_PAGE, auth=AUTH, timeout=10)
        assert authorized.status_code == 200, authorized.text[:300]
        assert authorized.headers["Cache-Control"].endswith("private")
        assert authorized.headers["X-Cache-Status"] == "BYPASS"  # credentials: the app answers
        anonymous = front.get(PRIVATE_PAGE)
        assert anonymous.status_code == 401, anonymous.headers
        assert "shelf" not in anonymous.text
        wrong = front.session.get(front.url + PRIVATE_PAGE, auth=("admin", "nope"), timeout=10)
        assert wrong.status_code == 401
    api = front.session.get(front.url + "/pypi/corp/pypi/shelf-reader/json", auth=AUTH, timeout=10)
    assert api.status_code == 200 and api.headers["X-Cache-Status"] == "BYPASS"
    assert front.get("/pypi/corp/pypi/shelf-reader/json").status_code == 401
    # Stored: public pages only (the ones asked above are not; nor the 401s).
    front.get(PAGE)
    keys = front.cached_keys()
    assert any("/pypi/main/simple/shelf-reader/" in key for key in keys), keys
    assert not [key for key in keys if "/pypi/corp/" in key], keys


def test_a_page_stops_being_served_within_the_bound_once_its_distribution_is_private(
    front: Front, upstream: Upstream
) -> None:
    """Readers keep asking (with credentials) while anonymous requests come: once the
    distribution is private, no anonymous request gets the page nginx stored while it was
    public later than the bound."""
    api = Api(front.app.url)
    remote = api.remote("flip-upstream", upstream.index_url)
    dist = api.distribution("flip", remote=remote["pulp_href"])
    page = "/pypi/flip/simple/shelf-reader/"
    assert front.get(page).status_code == 200
    assert front.get(page).headers["X-Cache-Status"] == "HIT"
    api.run("PATCH", dist["pulp_href"], json={"private": True})  # a task, waited for
    private_since = time.monotonic()
    seen: list[tuple[float, int, str]] = []
    while time.monotonic() - private_since < BOUND + MARGIN + 2:  # bounded
        reader = front.session.get(front.url + page, auth=AUTH, timeout=10)
        assert reader.status_code == 200
        anonymous = front.get(page)
        when = round(time.monotonic() - private_since, 2)
        seen.append((when, anonymous.status_code, anonymous.headers.get("X-Cache-Status", "")))
        time.sleep(0.05)
    # The first anonymous request may still get the stored page, none after the bound.
    late = [s for s in seen if s[1] != 401 and s[0] > BOUND + 0.2]
    assert not late, seen
    assert len([s for s in seen if s[0] > BOUND + 0.2]) >= 5, seen


# ---- stored files sent by nginx (server.accel_redirect)


@pytest.fixture
def accel_front(
    upstream: Upstream, gunicorn_server: Callable[..., Server], nginx: str, tmp_path: Path
) -> Iterator[Front]:
    """As `front`, with `server.accel_redirect` set and nginx's internal location aliasing the
    server's data_dir/artifacts."""
    text = with_auth(config_text(upstream.index_url, tmp_path / "data"))
    text = text.replace("[server]\n", '[server]\naccel_redirect = "/_pullthrough/files/"\n', 1)
    text += '[[distributions]]\nname = "corp"\nbase_path = "corp"\nremote = "up"\nprivate = true\n'
    server = gunicorn_server(text)
    port = urlsplit(server.url).port
    assert port is not None
    artifacts = tmp_path / "data" / "artifacts"
    with (
        NginxFront(nginx, tmp_path / "nginx", port, artifacts=artifacts) as proxy,
        requests.Session() as session,
    ):
        yield Front(server, proxy.url, tmp_path / "nginx" / "cache", session)


@pytest.mark.slow
def test_stored_files_are_sent_by_nginx_once_the_app_allows_them(
    accel_front: Front, upstream: Upstream, tmp_path: Path
) -> None:
    front = accel_front
    index = front.url + "/pypi/main/simple/"
    run_pip(["download", "--no-deps", "-d", str(tmp_path / "cold"), "-i", index,
             "shelf-reader==0.2"])  # fmt: skip
    assert settle(front.app.data_dir)
    (stored,) = stored_files(front.app.data_dir)
    wheel = upstream.files_for("shelf-reader")
    (wanted,) = [f for f in wheel if f.filename == "shelf_reader-0.2-py3-none-any.whl"]
    assert stored.name == wanted.sha256 and stored.stat().st_mode & 0o777 == 0o640
    fetched = len(upstream.requests_for(wanted.filename, server="files"))

    # Warm: pip again, then each way a client asks; nginx sends the stored file.
    run_pip(["download", "--no-deps", "-d", str(tmp_path / "warm"), "-i", index,
             "shelf-reader==0.2"])  # fmt: skip
    assert (tmp_path / "warm" / wanted.filename).read_bytes() == wanted.data
    path = f"/pulp/content/main/{wanted.filename}"
    whole = front.get(path)
    assert whole.status_code == 200 and whole.content == wanted.data
    assert whole.headers["Cache-Control"] == "max-age=31536000, immutable"
    assert "X-Pullthrough-Stale" not in whole.headers  # the app said nothing of the kind
    # nginx's own validators: the app sends its sha256 as the ETag and no Last-Modified
    assert "Last-Modified" in whole.headers and wanted.sha256 not in whole.headers["ETag"]
    part = front.get(path, Range="bytes=10-19")
    assert part.status_code == 206 and part.content == wanted.data[10:20]
    assert part.headers["Content-Range"] == f"bytes 10-19/{len(wanted.data)}"
    head = front.session.head(front.url + path, timeout=10)
    assert head.status_code == 200 and int(head.headers["Content-Length"]) == len(wanted.data)
    assert len(upstream.requests_for(wanted.filename, server="files")) == fetched  # stored

    # The app still decides access: a private distribution's file needs credentials.
    private = f"/pulp/content/corp/{wanted.filename}"
    assert front.get(private).status_code == 401
    allowed = front.session.get(front.url + private, auth=AUTH, timeout=10)
    assert allowed.status_code == 200 and allowed.content == wanted.data
    assert "Last-Modified" in allowed.headers
    # and the internal location is not reachable from outside
    shard = f"{wanted.sha256[:2]}/{wanted.sha256[2:4]}/{wanted.sha256}"
    assert front.get(f"/_pullthrough/files/{shard}").status_code == 404


def test_a_file_nginx_does_not_find_where_the_app_sent_it_is_sent_by_the_app(
    upstream: Upstream, gunicorn_server: Callable[..., Server], nginx: str, tmp_path: Path
) -> None:
    """A file evicted between the app's X-Accel-Redirect and nginx opening it was a 404 for
    pip and uv (neither retries one). Made certain here: nginx's internal location looks in
    an empty folder. nginx asks the app again, which sends the file itself."""
    text = with_auth(config_text(upstream.index_url, tmp_path / "data"))
    text = text.replace("[server]\n", '[server]\naccel_redirect = "/_pullthrough/files/"\n', 1)
    server = gunicorn_server(text)
    port = urlsplit(server.url).port
    assert port is not None
    (tmp_path / "elsewhere").mkdir()
    (wanted,) = [f for f in upstream.files_for("shelf-reader") if f.filename.endswith("0.2-py3-none-any.whl")]  # fmt: skip
    path = f"/pulp/content/main/{wanted.filename}"
    with (
        NginxFront(nginx, tmp_path / "nginx", port, artifacts=tmp_path / "elsewhere") as proxy,
        requests.Session() as session,
    ):
        assert session.get(proxy.url + path, timeout=30).content == wanted.data  # cold: the app
        assert settle(server.data_dir) and stored_files(server.data_dir)
        direct = requests.get(server.url + path, timeout=10)
        assert direct.headers["X-Accel-Redirect"]  # stored: nginx is told to send it
        whole = session.get(proxy.url + path, timeout=30)
        assert whole.status_code == 200 and whole.content == wanted.data
        part = session.get(proxy.url + path, headers={"Range": "bytes=10-19"}, timeout=30)
        assert part.status_code == 206 and part.content == wanted.data[10:20]
        head = session.head(proxy.url + path, timeout=30)
        assert head.status_code == 200
        assert int(head.headers["Content-Length"]) == len(wanted.data)
        dl = tmp_path / "dl"
        run_pip(["download", "--no-deps", "-d", str(dl), "-i", proxy.url + "/pypi/main/simple/",
                 "shelf-reader==0.2"])  # fmt: skip
        assert (dl / wanted.filename).read_bytes() == wanted.data
    assert len(upstream.requests_for(wanted.filename, server="files")) == 1  # stored, not again
