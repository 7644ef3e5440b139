"""pulp-cli's filters of repository versions and publications by the content they hold, by
number and by time, and its destroy of a version, against the server under gunicorn."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from test_e2e_pulp_cli import Pulp, pulp_cli_server

from support.api import AUTH, Api, with_auth
from support.packages import build_wheel
from support.postgres import private_database
from support.servers import Server, config_text
from support.tools import run_pip
from support.upstream import Upstream

pytestmark = pytest.mark.e2e


def test_versions_and_publications_are_found_by_the_content_they_hold(
    upstream: Upstream, gunicorn_server: Callable[..., Server], tmp_path: Path
) -> None:
    server, pulp = pulp_cli_server(gunicorn_server, upstream, tmp_path)
    api = Api(server.url)
    pulp.run("python", "repository", "create", "--name", "foo")
    hrefs = {}
    for version in ("1.0", "1.1"):  # versions 1 and 2
        wheel = build_wheel(tmp_path / "w", "acme-tools", version)
        pulp.run(
            "python", "content", "upload", "--file", str(wheel), "--relative-path", wheel.name,
            "--repository", "foo",
        )  # fmt: skip
        hrefs[version] = api.one("content/python/packages/", filename=wheel.name)["pulp_href"]
    old = api.one("content/python/packages/", filename="acme_tools-1.0-py3-none-any.whl")
    pulp.run("python", "repository", "content", "remove", "--repository", "foo",
             "--sha256", old["sha256"])  # fmt: skip  # version 3 holds 1.1 alone
    for number in ("1", "3"):
        pulp.run("python", "publication", "create", "--repository", "foo", "--version", number)

    def numbers(*options: str) -> list[int]:
        listed = pulp.json_list("python", "repository", "version", "list", "--repository", "foo",
                                *options)  # fmt: skip
        return [v["number"] for v in listed]

    def published(*options: str) -> list[int]:
        listed = pulp.json_list("python", "publication", "list", *options)
        return sorted(int(p["repository_version"].rstrip("/").rsplit("/", 1)[1]) for p in listed)

    assert numbers() == [3, 2, 1, 0]
    assert numbers("--content", f'["{hrefs["1.0"]}"]') == [2, 1]
    assert numbers("--content", f'["{hrefs["1.1"]}"]') == [3, 2]
    assert numbers("--content", f'["{hrefs["1.0"]}", "{hrefs["1.1"]}"]') == [3, 2, 1]
    assert published("--created-before", "2000-01-01") == []
    assert published("--content", f'["{hrefs["1.0"]}"]') == [1]
    assert published("--content", f'["{hrefs["1.1"]}"]') == [3]
    bad = pulp.run("python", "repository", "version", "list", "--repository", "foo",
                   "--content", '["/pulp/api/v3/nope/"]', check=False)  # fmt: skip
    assert bad.returncode == 1
    assert "Invalid hyperlink - expected a content href" in bad.stderr

    # The API's own lookups on the number, as Pulp's.
    versions = api.get(api.one("repositories/python/python/", name="foo")["versions_href"],
                       number__gte=2)  # fmt: skip
    assert [v["number"] for v in versions["results"]] == [3, 2]


PROTECTED = "The repository version cannot be deleted because it (or its publications) are"
ONLY = (
    "[PLP0011] Cannot delete repository version. Repositories must have at least one"
    " repository version."
)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """No database_url (SQLite in the data folder), or a private PostgreSQL database's."""
    if request.param == "sqlite":
        yield None
        return
    with private_database(request.getfixturevalue("postgres_url")) as url:
        yield url


def test_a_version_is_destroyed_as_pulp_destroys_it(
    upstream: Upstream,
    gunicorn_server: Callable[..., Server],
    tmp_path: Path,
    database: str | None,
) -> None:
    text = config_text(upstream.index_url, tmp_path / "data")
    if database is not None:
        text = text.replace("[server]\n", f'[server]\ndatabase_url = "{database}"\n', 1)
    server = gunicorn_server(with_auth(text))
    pulp, api = Pulp(server.url, tmp_path), Api(server.url)
    index = f"{server.url}/pypi/foo/simple/"

    def sees(*versions: str) -> list[str]:
        """The releases of acme-tools pip downloads through the distribution `foo`, of these."""
        found = []
        for version in versions:
            got = run_pip(["download", "--no-deps", "-d", str(tmp_path / "dl"), "--index-url",
                           index, f"acme-tools=={version}"], check=False)  # fmt: skip
            found += [version] if got.returncode == 0 else []
        return found

    def numbers() -> list[int]:
        listed = pulp.json_list("python", "repository", "version", "list", "--repository", "foo")
        return [v["number"] for v in listed]

    pulp.run("python", "repository", "create", "--name", "foo")
    for version in ("1.0", "2.0"):  # versions 1 and 2
        wheel = build_wheel(tmp_path / "w", "acme-tools", version)
        pulp.run("python", "content", "upload", "--file", str(wheel), "--relative-path",
                 wheel.name, "--repository", "foo")  # fmt: skip
    old = api.one("content/python/packages/", filename="acme_tools-1.0-py3-none-any.whl")
    pulp.run("python", "repository", "content", "remove", "--repository", "foo",
             "--sha256", old["sha256"])  # fmt: skip  # version 3 holds 2.0 alone
    pulp.run("python", "distribution", "create", "--name", "foo", "--base-path", "foo",
             "--repository", "foo")  # fmt: skip
    assert sees("1.0", "2.0") == ["2.0"]

    # 2 goes: 3 keeps its content (2.0, which 2 added), counted from 1 now
    pulp.run("python", "repository", "version", "destroy", "--repository", "foo", "--version", "2")
    assert numbers() == [3, 1, 0]
    assert sees("1.0", "2.0") == ["2.0"]
    v3 = pulp.json_object("python", "repository", "version", "show", "--repository", "foo",
                          "--version", "3")  # fmt: skip
    summary = v3["content_summary"]
    assert summary["added"]["python.python"]["count"] == 1
    assert summary["removed"]["python.python"]["count"] == 1
    assert summary["present"]["python.python"]["count"] == 1
    held = api.get("content/python/packages/", repository_version=v3["pulp_href"])["results"]
    assert [c["filename"] for c in held] == ["acme_tools-2.0-py3-none-any.whl"]
    removed = api.get(summary["removed"]["python.python"]["href"])["results"]
    assert [c["filename"] for c in removed] == ["acme_tools-1.0-py3-none-any.whl"]
    gone = pulp.run("python", "repository", "version", "show", "--repository", "foo",
                    "--version", "2", check=False)  # fmt: skip
    assert gone.returncode == 1, gone.stderr  # pulp-cli looks it up: none has number 2
    assert "Could not find repository version with {'number': 2}" in gone.stderr, gone.stderr
    href = server.url + v3["pulp_href"].replace("/versions/3/", "/versions/2/")
    with requests.get(href, auth=AUTH, timeout=30) as resp:
        assert (resp.status_code, resp.json()) == (404, {"detail": "Not found."})

    # the latest, which the distribution serves: refused, as Pulp refuses it
    kept = pulp.run("python", "repository", "version", "destroy", "--repository", "foo",
                    "--version", "3", check=False)  # fmt: skip
    assert kept.returncode == 1 and PROTECTED in kept.stderr, kept.stderr
    assert numbers() == [3, 1, 0]

    # no longer served: the one before becomes the latest, and the distribution serves it
    pulp.run("python", "distribution", "destroy", "--name", "foo")
    pulp.run("python", "repository", "version", "destroy", "--repository", "foo", "--version", "3")
    assert numbers() == [1, 0]
    repo = pulp.json_object("python", "repository", "show", "--name", "foo")
    assert repo["latest_version_href"] == repo["versions_href"] + "1/"
    pulp.run("python", "distribution", "create", "--name", "foo", "--base-path", "foo",
             "--repository", "foo")  # fmt: skip
    assert sees("1.0", "2.0") == ["1.0"]

    # a new version gets a number never given (4), and serves at once
    wheel = build_wheel(tmp_path / "w", "acme-tools", "3.0")
    pulp.run("python", "content", "upload", "--file", str(wheel), "--relative-path",
             wheel.name, "--repository", "foo")  # fmt: skip
    assert numbers() == [4, 1, 0]
    v4 = pulp.json_object("python", "repository", "version", "show", "--repository", "foo")
    assert v4["number"] == 4 and v4["content_summary"]["present"]["python.python"]["count"] == 2
    assert sees("1.0", "2.0", "3.0") == ["1.0", "3.0"]

    # a repository's only version stays, with Pulp's words
    pulp.run("python", "repository", "create", "--name", "lone")
    only = pulp.run("python", "repository", "version", "destroy", "--repository", "lone",
                    "--version", "0", check=False)  # fmt: skip
    assert only.returncode == 1 and ONLY in only.stderr, only.stderr
    assert (
        pulp.json_object("python", "repository", "version", "show", "--repository", "lone")[
            "number"
        ]
        == 0
    )


def test_a_version_based_on_another_repositorys_version_through_pulp_cli(
    upstream: Upstream, live_server: Callable[..., Server], tmp_path: Path
) -> None:
    """`repository content modify --base-repository other [--base-version N]`: as Pulp's
    modify, the new version starts from what that version of the other repository holds
    (any repository's: RepositoryVersionRelatedField), changed as asked, and names it as its
    base_version; once that version goes, its base is null (Pulp's SET_NULL)."""
    server = live_server(with_auth(config_text(upstream.index_url, tmp_path / "data")))
    pulp, api = Pulp(server.url, tmp_path), Api(server.url)
    for name in ("src", "dst"):
        pulp.run("python", "repository", "create", "--name", name)
    for repo, version in (("src", "1.0"), ("src", "2.0"), ("dst", "9.0")):
        wheel = build_wheel(tmp_path / "w", "acme-tools", version)
        pulp.run("python", "content", "upload", "--file", str(wheel), "--relative-path",
                 wheel.name, "--repository", repo)  # fmt: skip
    src = api.one("repositories/python/python/", name="src")

    def held(number: int) -> list[str]:
        version = api.one("repositories/python/python/", name="dst")["versions_href"] + f"{number}/"
        listed = api.get("content/python/packages/", repository_version=version)["results"]
        return sorted(c["version"] for c in listed)

    pulp.run("python", "repository", "content", "modify", "--repository", "dst",
             "--base-repository", "src")  # fmt: skip
    v2 = pulp.json_object("python", "repository", "version", "show", "--repository", "dst")
    assert (v2["number"], v2["base_version"]) == (2, src["versions_href"] + "2/")
    assert held(2) == ["1.0", "2.0"]  # src's latest, not dst's 9.0
    new = api.one("content/python/packages/", filename="acme_tools-9.0-py3-none-any.whl")
    pulp.run("python", "repository", "content", "modify", "--repository", "dst",
             "--base-repository", "src", "--base-version", "1",
             "--add-content", json.dumps([{"sha256": new["sha256"]}]))  # fmt: skip
    v3 = pulp.json_object("python", "repository", "version", "show", "--repository", "dst")
    assert (v3["number"], v3["base_version"]) == (3, src["versions_href"] + "1/")
    assert held(3) == ["1.0", "9.0"]

    pulp.run("python", "repository", "destroy", "--name", "src")
    v3 = pulp.json_object("python", "repository", "version", "show", "--repository", "dst")
    assert v3["base_version"] is None and held(3) == ["1.0", "9.0"]
