"""Upload times are never lost: a project whose upstream files were uploaded 30 and 3 days ago
(with fractional seconds, without them, and one given at +02:00) shows the upstream's times
through pull-through, after a sync, after a publication and after promotion (`modify`); an
uploaded wheel shows the moment of its upload. Checked on both page formats, in PyPI's JSON API
and in the catalog (the REST API), as parsed, timezone-aware datetimes; with the catalog in
SQLite and in a PostgreSQL database whose time zone is not UTC."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import requests
from packaging.utils import parse_sdist_filename, parse_wheel_filename
from packaging.version import Version

from support.api import Api, legacy_upload, with_auth
from support.packages import build_sdist, build_wheel
from support.postgres import private_database
from support.servers import Server, config_text, wait_until
from support.upstream import JSON_V1, Upstream

pytestmark = pytest.mark.e2e

PROJECT = "timed-lib"
TIMEOUT = 30
PRECISION = timedelta(milliseconds=1)  # the catalog keeps microseconds; allow for rounding
NOW = datetime.now(UTC)
OLD = (NOW - timedelta(days=30)).replace(microsecond=123456)
NEW = (NOW - timedelta(days=3)).replace(microsecond=654000)
NEW_SDIST = (NOW - timedelta(days=3, hours=1)).replace(microsecond=0)
PLUS_TWO = timezone(timedelta(hours=2))

Times = Mapping[str, datetime]  # filename -> upload time (aware)


@pytest.fixture
def timed(upstream: Upstream, tmp_path: Path) -> dict[str, datetime]:
    """The upstream's `timed-lib` files and the upload times it gives them, in three spellings:
    Z with microseconds, +02:00 with milliseconds, Z without fractional seconds."""
    out = tmp_path / "timed"
    files = [
        (build_wheel(out, PROJECT, "1.0"), OLD, OLD.strftime("%Y-%m-%dT%H:%M:%S.%fZ")),
        (
            build_wheel(out, PROJECT, "2.0"),
            NEW,
            NEW.astimezone(PLUS_TWO).isoformat(timespec="milliseconds"),
        ),
        (build_sdist(out, PROJECT, "2.0"), NEW_SDIST, NEW_SDIST.strftime("%Y-%m-%dT%H:%M:%SZ")),
    ]
    for path, _, given in files:
        upstream.add_file(PROJECT, path, upload_time=given)
    assert "+02:00" in files[1][2]
    return {path.name: when for path, when, _ in files}


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The catalog: SQLite in the data folder (empty), or a fresh PostgreSQL database whose time
    zone is not UTC (as on a server set to local time), dropped afterwards."""
    if request.param == "sqlite":
        yield ""
        return
    server_url: str = request.getfixturevalue("postgres_url")
    with private_database(server_url, timezone="Asia/Kolkata") as url:
        yield url


@pytest.fixture
def server(
    catalog_url: str, upstream: Upstream, live_server: Callable[..., Server], tmp_path: Path
) -> Server:
    """A server whose distribution `main` pulls through from the upstream."""
    config = config_text(upstream.index_url, tmp_path / "data")
    config = config.replace(
        "[server]\n", f"[server]\ndatabase_url = {json.dumps(catalog_url)}\n", 1
    )
    return live_server(with_auth(config))


def get(url: str, **kwargs: Any) -> requests.Response:
    with requests.get(url, timeout=TIMEOUT, **kwargs) as resp:
        _ = resp.content
    assert resp.status_code == 200, (url, resp.status_code, resp.text)
    return resp


def aware(value: object, where: str) -> datetime:
    """An ISO 8601 string as a datetime; it must name its time zone."""
    assert isinstance(value, str), (where, value)
    when = datetime.fromisoformat(value)
    assert when.tzinfo is not None, f"{where}: {value!r} names no time zone"
    return when


def in_utc(value: str) -> bool:
    return value.endswith(("Z", "+00:00"))


def assert_times(shown: Times, expected: Times, where: str) -> None:
    assert set(shown) == set(expected), where
    wrong = {
        name: f"{shown[name].isoformat()} instead of {expected[name].isoformat()}"
        for name in expected
        if abs(shown[name] - expected[name]) > PRECISION
    }
    assert not wrong, f"{where}: {wrong}"


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.links.append(dict(attrs))


def assert_served(server: Server, base_path: str, expected: Times) -> None:
    """Both page formats and PyPI's JSON API show exactly these files with these times."""
    base = f"{server.url}/pypi/{base_path}"
    where = f"{base_path}: JSON page"
    page = get(f"{base}/simple/{PROJECT}/", headers={"Accept": JSON_V1}).json()
    shown = {f["filename"]: aware(f.get("upload-time"), where) for f in page["files"]}
    assert_times(shown, expected, where)

    # HTML: PEP 503 has no upload time; whatever the server emits must be right.
    anchors = _Anchors()
    anchors.feed(get(f"{base}/simple/{PROJECT}/", headers={"Accept": "text/html"}).text)
    names = {a["href"].split("#")[0].rsplit("/", 1)[-1]: a for a in anchors.links if a["href"]}
    assert set(names) == set(expected), f"{base_path}: HTML page"
    emitted = {n: a["data-upload-time"] for n, a in names.items() if a.get("data-upload-time")}
    where = f"{base_path}: HTML data-upload-time"
    shown = {n: aware(value, where) for n, value in emitted.items()}
    assert_times(shown, {n: expected[n] for n in emitted}, where)

    # PyPI's JSON API: every release, the latest one's `urls`, and each version's own document.
    project = get(f"{base}/pypi/{PROJECT}/json").json()
    releases = [f for files in project["releases"].values() for f in files]
    assert_pypi_files(releases, expected, f"{base_path}: JSON API releases")
    versions = {name: version_of(name) for name in expected}
    for version in sorted(set(versions.values())):
        of_version = {n: t for n, t in expected.items() if versions[n] == version}
        if version == max(versions.values()):
            assert_pypi_files(project["urls"], of_version, f"{base_path}: JSON API urls")
        document = get(f"{base}/pypi/{PROJECT}/{version}/json").json()
        assert_pypi_files(document["urls"], of_version, f"{base_path}: JSON API {version} urls")


def version_of(filename: str) -> Version:
    if filename.endswith(".whl"):
        return parse_wheel_filename(filename)[1]
    return parse_sdist_filename(filename)[1]


def assert_pypi_files(files: list[dict[str, Any]], expected: Times, where: str) -> None:
    """`upload_time_iso_8601` as PyPI gives it (UTC, with a Z), `upload_time` its UTC seconds."""
    shown = {f["filename"]: aware(f["upload_time_iso_8601"], where) for f in files}
    assert_times(shown, expected, where)
    for f in files:
        assert f["upload_time_iso_8601"].endswith("Z"), (where, f["upload_time_iso_8601"])
        utc = expected[f["filename"]].astimezone(UTC).replace(tzinfo=None)
        seconds = datetime.fromisoformat(f["upload_time"])
        assert seconds.tzinfo is None and abs(seconds - utc) < timedelta(seconds=1), (where, f)


def packages_of(api: Api, names: Times) -> list[dict[str, Any]]:
    """The catalog's packages of these files."""
    return [api.one("content/python/packages/", filename=name) for name in names]


def assert_recorded(api: Api, expected: Times) -> list[dict[str, Any]]:
    """The catalog's packages of these files carry these times (in UTC); returns them."""
    packages = packages_of(api, expected)
    where = "catalog (REST API content)"
    for p in packages:
        assert in_utc(p["upload_time"]), (where, p["filename"], p["upload_time"])
    shown = {p["filename"]: aware(p["upload_time"], where) for p in packages}
    assert_times(shown, expected, where)
    return packages


def download_all(server: Server, base_path: str, upstream: Upstream, names: Times) -> None:
    for name in names:
        wanted = next(f.data for f in upstream.files_for(PROJECT) if f.filename == name)
        assert get(f"{server.url}/pulp/content/{base_path}/{name}").content == wanted


def promote(api: Api, name: str, packages: list[dict[str, Any]]) -> None:
    """Add the packages to a new repository (`modify`), served by its own distribution."""
    repo = api.repository(name)
    hrefs = [p["pulp_href"] for p in packages]
    api.run("POST", repo["pulp_href"] + "modify/", json={"add_content_units": hrefs})
    api.distribution(name, repository=repo["pulp_href"])


def test_pull_through_shows_the_upstream_times_before_and_after_caching(
    server: Server, upstream: Upstream, timed: dict[str, datetime]
) -> None:
    assert_served(server, "main", timed)

    download_all(server, "main", upstream, timed)
    api = Api(server.url)
    assert wait_until(lambda: len(api.packages(name=PROJECT)) == len(timed))
    assert_served(server, "main", timed)
    assert {p["origin"] for p in assert_recorded(api, timed)} == {"cache"}


def test_cached_files_promoted_into_a_repository_keep_the_upstream_times(
    server: Server, upstream: Upstream, timed: dict[str, datetime]
) -> None:
    download_all(server, "main", upstream, timed)
    api = Api(server.url)
    assert wait_until(lambda: len(api.packages(name=PROJECT)) == len(timed))

    promote(api, "kept", packages_of(api, timed))

    assert_served(server, "kept", timed)
    assert {p["origin"] for p in assert_recorded(api, timed)} == {"cache"}
    upstream.down()  # what the repository serves comes from the catalog, not the upstream
    assert_served(server, "kept", timed)


@pytest.mark.parametrize("policy", ["immediate", "on_demand"])
def test_synced_published_and_promoted_content_keeps_the_upstream_times(
    server: Server, upstream: Upstream, timed: dict[str, datetime], policy: str
) -> None:
    api = Api(server.url)
    remote = api.remote(
        "timed",
        upstream.index_url,
        includes=[PROJECT],
        policy=policy,
        max_retries=0,
        connect_timeout=2,
        sock_read_timeout=5,
    )
    repo = api.repository("synced")
    task = api.sync(repo, remote)
    assert task["state"] == "completed", task
    api.distribution("synced", repository=repo["pulp_href"])
    assert_served(server, "synced", timed)
    packages = assert_recorded(api, timed)
    assert {p["origin"] for p in packages} == {"sync"}

    published = api.run("POST", "publications/python/pypi/", json={"repository": repo["pulp_href"]})
    api.distribution("published", publication=published["created_resources"][0])
    assert_served(server, "published", timed)

    download_all(server, "synced", upstream, timed)  # on demand: fetched now
    assert_served(server, "synced", timed)
    assert_recorded(api, timed)

    promote(api, "release", packages)
    assert_served(server, "release", timed)


def test_an_upload_shows_the_moment_it_arrived_wherever_it_goes(
    server: Server, tmp_path: Path
) -> None:
    api = Api(server.url)
    repo = api.repository("corp")
    api.distribution("corp", repository=repo["pulp_href"])
    wheel = build_wheel(tmp_path / "ours", PROJECT, "1.0")

    before = datetime.now(UTC)
    answer = legacy_upload(server.url, "corp", wheel)
    after = datetime.now(UTC)
    assert answer.status_code == 200, answer.text

    page = get(f"{server.url}/pypi/corp/simple/{PROJECT}/", headers={"Accept": JSON_V1}).json()
    [entry] = page["files"]
    assert in_utc(entry["upload-time"]), entry
    uploaded = aware(entry["upload-time"], "corp: JSON page")
    assert before - PRECISION <= uploaded <= after + PRECISION, (before, uploaded, after)
    expected = {wheel.name: uploaded}

    packages = assert_recorded(api, expected)
    assert {p["origin"] for p in packages} == {"upload"}
    assert_served(server, "corp", expected)

    promote(api, "release", packages)  # promotion keeps the upload's time, not its own
    assert_served(server, "release", expected)
