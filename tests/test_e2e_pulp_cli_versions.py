"""pulp-cli's filters of repository versions and publications by the content they hold, by
number and by time, against the server under gunicorn."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from test_e2e_pulp_cli import pulp_cli_server

from support.api import Api
from support.packages import build_wheel
from support.servers import Server
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
