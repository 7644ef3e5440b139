"""A NUL character in what a client sends - a REST API body or filter, an uploaded file's
Requires-Python - is a 400 saying so (in an object's href: a 404), with the catalog in SQLite
and in PostgreSQL alike (whose text columns cannot hold one: psycopg refuses to send it, which
was a 500), and nothing is written; so is a value longer than its column is wide."""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from support.api import AUTH, Api, legacy_upload, with_auth
from support.packages import build_wheel
from support.postgres import private_database
from support.servers import Server, config_text
from support.upstream import Upstream

pytestmark = pytest.mark.e2e

NULL = "Null characters are not allowed."


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_url(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "sqlite":
        yield ""
        return
    server_url: str = request.getfixturevalue("postgres_url")
    with private_database(server_url) as url:
        yield url


@pytest.fixture
def server(
    catalog_url: str, upstream: Upstream, live_server: Callable[..., Server], tmp_path: Path
) -> Server:
    config = config_text(upstream.index_url, tmp_path / "data").replace(
        "[server]\n", f"[server]\ndatabase_url = {json.dumps(catalog_url)}\n", 1
    )
    return live_server(with_auth(config))


def _wheel(out: Path, metadata: bytes) -> Path:
    path = out / "nul_lib-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("nul_lib-1.0.dist-info/METADATA", metadata)
    return path


def test_null_characters_are_refused_not_a_server_error(server: Server, tmp_path: Path) -> None:
    api = Api(server.url)
    repo = api.create("repositories/python/python/", name="nul")
    api.create(
        "distributions/python/pypi/", name="nul", base_path="nul", repository=repo["pulp_href"]
    )
    bodies: list[tuple[str, dict[str, Any], str]] = [
        ("repositories/python/python/", {"name": "a\x00b"}, "name"),
        ("repositories/python/python/", {"name": "ok", "description": "a\x00b"}, "description"),
        (
            "repositories/python/python/",
            {"name": "ok", "pulp_labels": {"k\x00": "v"}},
            "pulp_labels",
        ),
        ("remotes/python/python/", {"name": "r\x00", "url": "http://127.0.0.1:9/"}, "name"),
        ("tokens/", {"name": "t\x00", "scopes": ["admin"]}, "name"),
    ]
    for path, body, field in bodies:
        resp = api.request("POST", path, json=body)
        assert resp.status_code == 400, (body, resp.status_code, resp.text)
        assert resp.json() == {field: [NULL]}, body
    resp = api.request("PATCH", repo["pulp_href"], json={"description": "\x00"})
    assert resp.status_code == 400 and resp.json() == {"description": [NULL]}, resp.text
    for query in (
        "repositories/?name=a%00b",
        "repositories/python/python/?name__contains=%00",
        "content/python/packages/?filename=%00",
        "tasks/?name=%00",
        "audit/?actor=%00",
    ):
        resp = api.request("GET", query)
        assert resp.status_code == 400, (query, resp.status_code, resp.text)
        assert list(resp.json().values()) == [[NULL]], query
    # An object's id in the path: no object has one with a NUL (a 500 on PostgreSQL before)
    for method, path in (
        ("GET", "repositories/python/python/a%00b/"),
        ("GET", "tasks/a%00b/"),
        ("PATCH", "tasks/%00/"),
        ("GET", "repositories/python/python/%00/versions/"),
        ("DELETE", "remotes/python/python/a%00/"),
    ):
        resp = api.request(method, path, json={"state": "canceled"} if method == "PATCH" else None)
        assert resp.status_code == 404, (method, path, resp.status_code, resp.text)
        assert resp.json() == {"detail": "Not found."}, (path, resp.text)
    assert [r["name"] for r in api.request("GET", "repositories/").json()["results"]] == ["nul"]
    assert api.request("GET", "remotes/python/python/?name=up").json()["count"] == 1
    assert api.request("GET", "tokens/").json()["count"] == 0

    metadata = b"Metadata-Version: 2.1\nName: nul-lib\nVersion: 1.0\nRequires-Python: >=3\x00.8\n"
    resp = legacy_upload(server.url, "nul", _wheel(tmp_path, metadata))
    assert resp.status_code == 400, (resp.status_code, resp.text)
    assert "null character in Requires-Python" in resp.text
    assert api.request("GET", "content/python/packages/").json()["count"] == 0


def test_values_wider_than_their_columns_are_refused_not_a_server_error(
    catalog_url: str, upstream: Upstream, gunicorn_server: Callable[..., Server], tmp_path: Path
) -> None:
    """PostgreSQL refuses a string longer than its column (SQLite keeps it): a name or base
    path of 256 characters was a 500 there, as was a write whose Correlation-ID (kept with its
    task) passed 64 characters."""
    config = config_text(upstream.index_url, tmp_path / "data").replace(
        "[server]\n", f"[server]\ndatabase_url = {json.dumps(catalog_url)}\n", 1
    )
    server = gunicorn_server(with_auth(config))
    api = Api(server.url)
    wide = "n" * 256
    for path, body, field in (
        ("repositories/python/python/", {"name": wide}, "name"),
        ("remotes/python/python/", {"name": wide, "url": "http://127.0.0.1:9/"}, "name"),
        ("distributions/python/pypi/", {"name": wide, "base_path": "wide"}, "name"),
        ("distributions/python/pypi/", {"name": "wide", "base_path": wide}, "base_path"),
        ("tokens/", {"name": wide, "scopes": ["admin"]}, "name"),
    ):
        resp = api.request("POST", path, json=body)
        assert resp.status_code == 400, (path, field, resp.status_code, resp.text)
        assert resp.json() == {field: ["Ensure this field has no more than 255 characters."]}
    assert api.request("GET", "repositories/").json()["count"] == 0
    repo = api.create("repositories/python/python/", name="n" * 255)
    assert repo["name"] == "n" * 255
    # a token acts (uploads, is audited) as `token:<name>`, kept in a column as wide
    widest = "t" * (255 - len("token:"))
    resp = api.request("POST", "tokens/", json={"name": widest + "t", "scopes": ["admin"]})
    assert resp.status_code == 400, resp.text
    assert resp.json() == {
        "name": [f"Ensure this field has no more than {len(widest)} characters."]
    }
    secret = api.create("tokens/", name=widest, scopes=["admin"])["token"]
    api.create("distributions/python/pypi/", name="w", base_path="w", repository=repo["pulp_href"])
    wheel = build_wheel(tmp_path / "w", "wide-lib", "1.0")

    def upload() -> requests.Response:
        with wheel.open("rb") as fh:
            return requests.post(
                f"{server.url}/pypi/w/legacy/", data={":action": "file_upload"},
                files={"content": (wheel.name, fh)}, auth=("__token__", secret), timeout=30,
            )  # fmt: skip

    # a 404 until every worker has seen the catalog's change signal (PostgreSQL: polled)
    answers = [upload()]
    while answers[-1].status_code == 404 and len(answers) < 100:  # 100 x 0.1 s at most
        time.sleep(0.1)
        answers.append(upload())
    assert answers[-1].status_code == 200, answers[-1].text

    cid = "c" * 65  # kept with the task: another one is made up, as for none
    resp = api.request(
        "POST", "distributions/python/pypi/", json={"name": "d", "base_path": "d"},
        headers={"Correlation-ID": cid},
    )  # fmt: skip
    assert resp.status_code == 202, resp.text
    assert resp.headers["Correlation-ID"] not in ("", cid)


def test_an_upload_whose_filename_or_tags_are_wider_than_their_columns_is_refused(
    server: Server, tmp_path: Path
) -> None:
    """A wheel's filename is kept in 255 characters, its python tag(s) in 64 (PyPI's
    `python_version`): a wider one, which PostgreSQL refuses (a 500), is a 400 saying so."""
    api = Api(server.url)
    repo = api.create("repositories/python/python/", name="wide")
    api.create(
        "distributions/python/pypi/", name="wide", base_path="wide", repository=repo["pulp_href"]
    )

    def upload(name: str, version: str, tags: str) -> requests.Response:
        metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        body = io.BytesIO()
        with zipfile.ZipFile(body, "w") as zf:
            zf.writestr(f"{name}-{version}.dist-info/METADATA", metadata)
        filename = f"{name}-{version}-{tags}-none-any.whl"  # longer than a local file's name
        return requests.post(
            f"{server.url}/pypi/wide/legacy/", data={":action": "file_upload"},
            files={"content": (filename, body.getvalue())}, auth=AUTH, timeout=30,
        )  # fmt: skip

    for name, version, tags in (
        ("tag_lib", "1.0", ".".join(f"py3{n}" for n in range(20))),  # tags of 99 characters
        ("long_lib", "1." + "0" * 250, "py3"),  # a filename of 281
    ):
        resp = upload(name, version, tags)
        assert resp.status_code == 400, (name, resp.status_code, resp.text)
        assert "characters" in resp.text, resp.text
    assert api.request("GET", "content/python/packages/").json()["count"] == 0
    assert upload("tag_lib", "1.0", "py2.py3").status_code == 200
