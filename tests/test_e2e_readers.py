"""Requests that only read the catalog go on while a writer holds it (a sync's or an import's
big commit): SQLite's write lock is taken only by transactions that may write."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from support.api import Api, with_auth
from support.packages import build_wheel
from support.servers import Server, config_text
from support.upstream import Upstream

pytestmark = pytest.mark.e2e
JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}
PATIENCE = 5  # seconds; a request waiting for the writer would wait out the busy timeout (60)


def test_reads_are_answered_while_a_writer_holds_the_catalog(
    upstream: Upstream, live_server: Callable[..., Server], tmp_path: Path
) -> None:
    text = config_text(upstream.index_url, tmp_path / "d")
    text += '[[distributions]]\nname = "corp"\nbase_path = "corp"\nremote = "up"\nprivate = true\n'
    server = live_server(with_auth(text))
    api = Api(server.url)
    repo = api.repository("own")
    api.upload(build_wheel(tmp_path, "own-lib", "1.0"), repo)
    api.distribution("own", repository=repo["pulp_href"])
    secret = api.create("tokens/", name="reader", scopes=["read:corp"])["token"]

    writer = sqlite3.connect(server.data_dir / "catalog.sqlite3", isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")  # the write lock, held as a long commit holds it
        writer.execute("UPDATE repositories SET description = 'being written' WHERE name = 'own'")

        def get(path: str, **headers: str) -> requests.Response:
            with requests.get(server.url + path, headers=headers, timeout=PATIENCE) as resp:
                assert resp.status_code == 200, (path, resp.status_code, resp.text[:300])
            return resp

        status = get("/pulp/api/v3/status/").json()
        assert status["database_connection"]["connected"] is True
        listed = api.request("GET", "repositories/python/python/", timeout=PATIENCE).json()
        assert [r["description"] for r in listed["results"] if r["name"] == "own"] == [None]
        page = get("/pypi/own/simple/own-lib/", **JSON).json()  # a repository's, read cold
        assert [f["filename"] for f in page["files"]] == ["own_lib-1.0-py3-none-any.whl"]
        assert get("/pypi/own/pypi/own-lib/json").json()["info"]["version"] == "1.0"
        wheel = get("/pulp/content/own/own_lib-1.0-py3-none-any.whl")
        assert wheel.content == (tmp_path / "own_lib-1.0-py3-none-any.whl").read_bytes()
        bearer = {"Authorization": f"Bearer {secret}", **JSON}  # a token is looked up
        assert get("/pypi/corp/simple/shelf-reader/", **bearer).json()["files"]
    finally:
        writer.execute("ROLLBACK")
        writer.close()
