"""The Pulp-shaped REST API over real HTTP: authentication, validation errors, lists, hrefs, tasks,
write-only secrets, correlation ids, and distributions pinned to a repository version."""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from pytest_httpserver import HTTPServer
from werkzeug import Request
from werkzeug import Response as ResponseType

from support.packages import build_wheel
from support.servers import Server, config_text, wait_until
from support.upstream import Upstream

pytestmark = pytest.mark.e2e

V3 = "/pulp/api/v3/"
REPOS = V3 + "repositories/python/python/"
REMOTES = V3 + "remotes/python/python/"
DISTS = V3 + "distributions/python/pypi/"
CONTENT = V3 + "content/python/packages/"
PUBLICATIONS = V3 + "publications/python/pypi/"
TASKS = V3 + "tasks/"
WORKERS = V3 + "workers/"
# core's lists of every type: the typed list each gives the same objects as
GENERIC = {
    REPOS: "repositories/",
    REMOTES: "remotes/",
    DISTS: "distributions/",
    PUBLICATIONS: "publications/",
    CONTENT: "content/",
}
PASSWORD = "secret"
AUTH = ("admin", PASSWORD)
TIMEOUT = 10
JSON_V1 = "application/vnd.pypi.simple.v1+json"
STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
SECRETS = {
    "username": "user-7f3a",
    "password": "pw-9c1e4b",
    "proxy_username": "proxy-user-55d2",
    "proxy_password": "proxy-pw-0a8f",
    "client_key": "-----BEGIN PRIVATE KEY-----\nkey-material-31b9\n-----END PRIVATE KEY-----\n",
}


def with_admin_password(text: str) -> str:
    # Many wrong logins on purpose (test_every_operation_requires_the_admin): no 429s here.
    return text + f'[auth]\nadmin_password = "{PASSWORD}"\nfailure_burst = 10000\n'


@dataclass
class Api:
    server: Server
    http: requests.Session  # sends the admin's credentials

    def url(self, path: str) -> str:
        return path if path.startswith("http") else self.server.url + path

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.http.request(method, self.url(path), timeout=TIMEOUT, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: object = None, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, json=body, **kwargs)

    def patch(self, path: str, body: object, **kwargs: Any) -> requests.Response:
        return self.request("PATCH", path, json=body, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)

    def ok(self, resp: requests.Response, status: int = 200) -> dict[str, Any]:
        assert resp.status_code == status, (resp.status_code, resp.text)
        assert resp.headers["Content-Type"] == "application/json"
        body: dict[str, Any] = resp.json()
        return body

    def settled(self, resp: requests.Response) -> dict[str, Any]:
        """A 202 `{"task": href}`, and the task it names once it has ended (or TIMEOUT)."""
        body = self.ok(resp, 202)
        assert list(body) == ["task"]
        assert re.fullmatch(f"{TASKS}{UUID}/", body["task"]), body
        deadline = time.monotonic() + TIMEOUT
        while True:  # as pulp-cli does: poll while waiting or running
            task = self.ok(self.get(body["task"]))
            if task["state"] not in ("waiting", "running") or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert task["pulp_href"] == body["task"]
        return task

    def task(self, resp: requests.Response) -> dict[str, Any]:
        """A 202 `{"task": href}`, and the task it names (which must have completed)."""
        task = self.settled(resp)
        assert task["state"] == "completed", task
        assert task["error"] is None and task["finished_at"] and task["started_at"]
        return task

    def create_repository(self, name: str, **fields: object) -> dict[str, Any]:
        return self.ok(self.post(REPOS, {"name": name, **fields}), 201)

    def create_distribution(self, name: str, **fields: object) -> dict[str, Any]:
        task = self.task(self.post(DISTS, {"name": name, "base_path": name, **fields}))
        assert task["result"]["name"] == name
        result: dict[str, Any] = task["result"]
        return result

    def upload_content(self, path: Path, repository: str | None = None) -> dict[str, Any]:
        data = {"relative_path": path.name}
        if repository is not None:
            data["repository"] = repository
        with path.open("rb") as fh:
            resp = self.request("POST", CONTENT, data=data, files={"file": (path.name, fh)})
        return self.task(resp)

    def count(self, path: str) -> int:
        count: int = self.ok(self.get(path))["count"]
        return count


@pytest.fixture
def api(upstream: Upstream, live_server: Callable[..., Server], tmp_path: Path) -> Iterator[Api]:
    server = live_server(with_admin_password(config_text(upstream.index_url, tmp_path / "d")))
    with requests.Session() as http:
        http.auth = AUTH
        yield Api(server, http)


@pytest.fixture
def anonymous() -> Iterator[requests.Session]:
    with requests.Session() as http:
        yield http


def files_on_index(api: Api, base_path: str, project: str) -> list[str]:
    resp = api.get(f"/pypi/{base_path}/simple/{project}/", headers={"Accept": JSON_V1})
    assert resp.status_code == 200, resp.text
    return sorted(f["filename"] for f in resp.json()["files"])


# ---- authentication -----------------------------------------------------------------------


def test_every_operation_requires_the_admin(api: Api, anonymous: requests.Session) -> None:
    repo = api.create_repository("guarded")
    remote_href = api.ok(api.get(REMOTES))["results"][0]["pulp_href"]
    tasks = api.count(TASKS)
    calls = [
        ("GET", REPOS, None),
        ("GET", repo["pulp_href"], None),
        ("GET", repo["versions_href"], None),
        ("GET", repo["latest_version_href"], None),
        ("DELETE", repo["latest_version_href"], None),
        ("GET", REMOTES, None),
        ("GET", remote_href, None),
        ("GET", DISTS, None),
        ("GET", CONTENT, None),
        ("POST", REPOS, {"name": "intruder"}),
        ("PATCH", repo["pulp_href"], {"description": "defaced"}),
        ("DELETE", repo["pulp_href"], None),
        ("POST", REMOTES, {"name": "intruder", "url": "http://127.0.0.1:9/"}),
        ("PATCH", remote_href, {"url": "http://127.0.0.1:9/"}),
        ("DELETE", remote_href, None),
        ("POST", DISTS, {"name": "intruder", "base_path": "intruder"}),
        ("POST", repo["pulp_href"] + "modify/", {"remove_content_units": ["*"]}),
        ("POST", repo["pulp_href"] + "set_label/", {"key": "owned", "value": "yes"}),
        ("POST", remote_href + "unset_label/", {"key": "env"}),
        ("GET", DISTS + "?pulp_label_select=env", None),
        ("GET", repo["pulp_href"] + "blocklist_entries/", None),
        ("POST", repo["pulp_href"] + "blocklist_entries/", {"name": "x"}),
    ]
    wrong = [("admin", "wrong"), ("someone", PASSWORD), ("admin", "")]
    for method, path, body in calls:
        for auth in [None, *wrong]:
            resp = anonymous.request(method, api.url(path), json=body, auth=auth, timeout=TIMEOUT)
            assert resp.status_code == 401, (method, path, auth, resp.status_code, resp.text)
            assert resp.headers["WWW-Authenticate"].startswith("Basic ")
        for header in ("Token secret", "Bearer secret", "Basic !!notbase64!!"):
            resp = anonymous.request(
                method, api.url(path), json=body, headers={"Authorization": header}, timeout=TIMEOUT
            )
            assert resp.status_code == 401, (method, path, header, resp.status_code)

    # nothing changed
    assert [r["name"] for r in api.ok(api.get(REPOS))["results"]] == ["guarded"]
    assert api.ok(api.get(repo["pulp_href"]))["description"] is None
    assert api.ok(api.get(repo["pulp_href"]))["pulp_labels"] == {}
    assert api.count(REMOTES) == 1
    assert api.count(DISTS) == 1  # the configured one
    assert api.count(TASKS) == tasks


def test_status_is_readable_without_credentials(api: Api, anonymous: requests.Session) -> None:
    resp = anonymous.get(api.url(V3 + "status/"), timeout=TIMEOUT)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["versions"] and {"component", "version"} <= set(body["versions"][0])
    assert "main" in body["distributions"]
    resp = anonymous.get(api.url(V3 + "docs/api.json"), timeout=TIMEOUT)
    assert resp.status_code == 200
    assert resp.json()["openapi"].startswith("3.")


# ---- labels ---------------------------------------------------------------------------------


def test_labels_are_set_unset_and_selected_as_pulp_answers(api: Api) -> None:
    """Pulp's LabelsMixin: set_label and unset_label answer 201 with the label (unset: the
    value it had), at once, no task; `pulp_labels` is written whole on create and update;
    `pulp_label_select` filters the lists. Every refusal is a 400 naming the field."""
    labels = {"env": "prod", "team name": "Core, Infra", "app.io-x": ""}
    repo = api.create_repository("labelled", pulp_labels=labels)
    assert repo["pulp_labels"] == labels
    href = repo["pulp_href"]
    tasks = api.count(TASKS)

    resp = api.post(href + "set_label/", {"key": "tier", "value": "gold"})
    assert api.ok(resp, 201) == {"key": "tier", "value": "gold"}
    assert api.ok(api.post(href + "set_label/", {"key": "gone", "value": None}), 201) == {
        "key": "gone",
        "value": None,
    }
    shown = api.ok(api.get(href))["pulp_labels"]
    assert shown == {**labels, "tier": "gold", "gone": None}
    resp = api.post(href + "unset_label/", {"key": "tier"})
    assert api.ok(resp, 201) == {"key": "tier", "value": "gold"}
    assert "tier" not in api.ok(api.get(href))["pulp_labels"]
    assert api.count(TASKS) == tasks  # answered at once, as Pulp does

    refusals = [
        (
            href + "set_label/",
            {"key": "a/b", "value": "x"},
            "non_field_errors",
            "Key 'a/b' contains",
        ),
        (href + "set_label/", {"key": "k", "value": "f(x)"}, "non_field_errors", "parenthesis"),
        (href + "set_label/", {"key": "", "value": "x"}, "key", "This field may not be blank."),
        (href + "set_label/", {"key": "k"}, "value", "This field is required."),
        (href + "set_label/", {"value": "x"}, "key", "This field is required."),
        (href + "unset_label/", {}, "key", "This field is required."),
        (href + "set_label/", {"key": "k", "value": 3}, "value", "Expected string"),
        (href + "unset_label/", {"key": "tier"}, "key", "Label 'tier' is not set on the object."),
        (REPOS, {"name": "x", "pulp_labels": {"a b=c": "x"}}, "pulp_labels", "Key 'a b=c'"),
        (REPOS, {"name": "x", "pulp_labels": ["env"]}, "pulp_labels", "Expected object"),
    ]
    for path, body, field, message in refusals:
        resp = api.post(path, body)
        assert resp.status_code == 400, (body, resp.text)
        assert message in resp.json()[field][0], (body, resp.text)
    resp = api.patch(href, {"pulp_labels": {"ok": "1", "(x)": "y"}})
    assert resp.status_code == 400 and "Key '(x)'" in resp.json()["pulp_labels"][0]
    assert api.ok(api.get(href))["pulp_labels"] == {**labels, "gone": None}  # nothing written

    api.task(api.patch(href, {"pulp_labels": {"env": "dev"}}))  # the labels are replaced
    assert api.ok(api.get(href))["pulp_labels"] == {"env": "dev"}
    remote = api.ok(api.post(REMOTES, {"name": "r", "url": "http://127.0.0.1:9/"}), 201)
    api.ok(api.post(remote["pulp_href"] + "set_label/", {"key": "env", "value": "dev"}), 201)
    dist = api.create_distribution("d", pulp_labels={"env": "prod"})
    assert api.ok(api.get(dist["pulp_href"]))["pulp_labels"] == {"env": "prod"}

    for path, selector, names in [
        (REPOS, "env=dev", ["labelled"]),
        (REPOS, "env=prod", []),
        (REMOTES, "env", ["r"]),
        (REMOTES, "!env", ["up"]),
        (DISTS, "env~PRO", ["d"]),
        (DISTS, "env!=prod", []),
    ]:
        found = api.ok(api.get(path, params={"pulp_label_select": selector}))
        assert [r["name"] for r in found["results"]] == names, (path, selector)
        assert found["count"] == len(names)
    resp = api.get(REPOS, params={"pulp_label_select": "!env=dev"})
    assert resp.status_code == 400
    assert resp.json() == {"pulp_label_select": ["Cannot use an operator with '!env'."]}

    doc = api.ok(api.get(V3 + "docs/api.json"))
    operations = {
        op["operationId"]: (method, path)
        for path, methods in doc["paths"].items()
        for method, op in methods.items()
    }
    for prefix, param in [
        ("repositories_python_python", "python_python_repository_href"),
        ("remotes_python_python", "python_python_remote_href"),
        ("distributions_python_pypi", "python_python_distribution_href"),
    ]:
        for action in ("set_label", "unset_label"):
            assert operations[f"{prefix}_{action}"] == ("post", f"{{{param}}}{action}/")
        listed = doc["paths"][operations[f"{prefix}_list"][1]]["get"]["parameters"]
        assert "pulp_label_select" in {p["name"] for p in listed}


# ---- validation -----------------------------------------------------------------------------


def test_validation_errors_are_400_with_field_messages(api: Api) -> None:
    repo = api.create_repository("taken")
    tasks = api.count(TASKS)

    def error(resp: requests.Response) -> dict[str, Any]:
        return api.ok(resp, 400)

    assert error(api.post(REPOS, {})) == {"name": ["This field is required."]}
    assert error(api.post(REPOS, {"name": "taken"})) == {"name": ["This field must be unique."]}
    assert "name" in error(api.post(REPOS, {"name": 5}))
    assert "name" in error(api.post(REPOS, {"name": " "}))
    assert "retain_repo_versions" in error(
        api.post(REPOS, {"name": "r", "retain_repo_versions": "many"})
    )
    assert "retain_repo_versions" in error(
        api.post(REPOS, {"name": "r", "retain_repo_versions": 0})
    )
    assert "autopublish" in error(api.post(REPOS, {"name": "r", "autopublish": "yes"}))
    body: object
    for body in ([], "name", 5, None):
        assert "non_field_errors" in error(api.post(REPOS, body)), body
    not_json = api.request(
        "POST", REPOS, data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert "non_field_errors" in error(not_json)

    remote = {"name": "rm", "url": "http://127.0.0.1:9/"}
    policy = error(api.post(REMOTES, {**remote, "policy": "sometimes"}))
    assert list(policy) == ["policy"] and "sometimes" in policy["policy"][0]
    platforms = error(api.post(REMOTES, {**remote, "exclude_platforms": ["linux", "beos"]}))
    assert list(platforms) == ["exclude_platforms"] and "beos" in platforms["exclude_platforms"][0]
    assert "exclude_platforms" in error(api.post(REMOTES, {**remote, "exclude_platforms": "linux"}))
    assert "package_types" in error(api.post(REMOTES, {**remote, "package_types": ["egg-ish"]}))
    assert "keep_latest_packages" in error(
        api.post(REMOTES, {**remote, "keep_latest_packages": True})
    )
    assert "includes" in error(api.post(REMOTES, {**remote, "includes": [5]}))
    assert "url" in error(api.post(REMOTES, {**remote, "url": "ftp://example.invalid/"}))
    assert set(error(api.post(REMOTES, {}))) == {"name", "url"}
    assert error(api.post(REMOTES, {**remote, "name": "up"})) == {
        "name": ["This field must be unique."]
    }

    # an href of the wrong kind, and one of the right kind naming nothing
    assert "remote" in error(api.post(REPOS, {"name": "r", "remote": repo["pulp_href"]}))
    missing_repo = f"{REPOS}{uuid.uuid4()}/"
    dist = {"name": "d", "base_path": "d"}
    missing = error(api.post(DISTS, {**dist, "repository": missing_repo}))
    assert list(missing) == ["repository"] and missing_repo in missing["repository"][0]
    assert "repository" in error(api.post(DISTS, {**dist, "repository": f"{REMOTES}x/"}))
    wrong_kind = error(
        api.post(DISTS, {**dist, "repository": api.ok(api.get(REMOTES))["results"][0]["pulp_href"]})
    )
    assert list(wrong_kind) == ["repository"]
    assert "repository_version" in error(
        api.post(DISTS, {**dist, "repository_version": repo["pulp_href"]})
    )
    assert "repository_version" in error(
        api.post(DISTS, {**dist, "repository_version": repo["versions_href"] + "7/"})
    )
    # a version number past the catalog's integers names nothing: 400, not the database's error
    huge = repo["versions_href"] + f"{2**70}/"
    for body in ({**dist, "repository_version": huge}, {"repository_version": huge}):
        collection = DISTS if "name" in body else PUBLICATIONS
        assert error(api.post(collection, body)) == {
            "repository_version": [f"Invalid hyperlink - Object does not exist: {huge}"]
        }
    for key in ("repository_version", "repository_version_added", "repository_version_removed"):
        assert list(error(api.get(CONTENT, params={key: huge}))) == [key]
    assert list(error(api.post(repo["pulp_href"] + "modify/", {"base_version": huge}))) == [
        "base_version"
    ]
    assert "base_path" in error(api.post(DISTS, {**dist, "base_path": "../etc"}))
    assert error(api.post(DISTS, {**dist, "base_path": "main"})) == {
        "base_path": ["This field must be unique."]
    }
    assert "add_content_units" in error(
        api.post(
            repo["pulp_href"] + "modify/", {"add_content_units": [f"{CONTENT}{uuid.uuid4()}/"]}
        )
    )
    assert "add_content_units" in error(
        api.post(repo["pulp_href"] + "modify/", {"add_content_units": [repo["pulp_href"]]})
    )

    # a content upload whose `file` is a form's text field (curl -F file=abc), not a file part
    text_file = api.request(
        "POST", CONTENT, data={"file": "abc", "relative_path": "x_lib-1.0-py3-none-any.whl"}
    )
    assert error(text_file) == {
        "file": ["The submitted data was not a file. Check the encoding type on the form."]
    }

    # a partial update is validated too, and changes nothing when refused
    assert "retain_repo_versions" in error(
        api.patch(repo["pulp_href"], {"retain_repo_versions": -1})
    )
    other = api.create_repository("other")
    assert error(api.patch(other["pulp_href"], {"name": "taken"})) == {
        "name": ["This field must be unique."]
    }

    # nothing was created or changed by any refused request
    assert sorted(r["name"] for r in api.ok(api.get(REPOS))["results"]) == ["other", "taken"]
    assert [r["name"] for r in api.ok(api.get(REMOTES))["results"]] == ["up"]
    assert api.count(DISTS) == 1
    assert api.count(TASKS) == tasks
    assert api.ok(api.get(repo["pulp_href"]))["latest_version_href"].endswith("/versions/0/")


def test_unknown_objects_are_404(api: Api) -> None:
    for path in (
        f"{REPOS}{uuid.uuid4()}/",
        f"{REMOTES}{uuid.uuid4()}/",
        f"{DISTS}{uuid.uuid4()}/",
        f"{CONTENT}{uuid.uuid4()}/",
        f"{TASKS}{uuid.uuid4()}/",
    ):
        resp = api.get(path)
        assert api.ok(resp, 404) == {"detail": "Not found."}, path
    repo = api.create_repository("r")
    api.ok(api.get(repo["versions_href"] + "1/"), 404)
    api.ok(api.patch(f"{REPOS}{uuid.uuid4()}/", {"description": "x"}), 404)
    api.ok(api.delete(f"{DISTS}{uuid.uuid4()}/"), 404)


# ---- lists ----------------------------------------------------------------------------------

NAMES = ["alpha-core", "beta-core", "gamma-tools", "delta-core", "epsilon-tools"]  # creation order


def test_lists_paginate_filter_order_and_pick_fields(api: Api) -> None:
    for name in NAMES:
        api.create_repository(name, description=f"about {name}")

    first = api.ok(api.get(REPOS, params={"limit": 2}))
    assert first["count"] == 5
    assert [r["name"] for r in first["results"]] == ["alpha-core", "beta-core"]  # by name
    assert first["previous"] is None
    assert first["next"].startswith(api.server.url + REPOS + "?")
    second = api.ok(api.get(first["next"]))
    assert [r["name"] for r in second["results"]] == ["delta-core", "epsilon-tools"]
    assert second["previous"].startswith(api.server.url + REPOS + "?")
    assert [r["name"] for r in api.ok(api.get(second["previous"]))["results"]] == [
        "alpha-core",
        "beta-core",
    ]
    last = api.ok(api.get(second["next"]))
    assert [r["name"] for r in last["results"]] == ["gamma-tools"]
    assert last["next"] is None and last["count"] == 5
    empty = api.ok(api.get(REPOS, params={"offset": 10, "limit": 2}))
    assert empty["results"] == [] and empty["count"] == 5

    newest = api.ok(
        api.get(
            REPOS, params={"ordering": "-pulp_created", "offset": 1, "limit": 1, "fields": "name"}
        )
    )
    assert newest["results"] == [{"name": "delta-core"}]
    assert newest["count"] == 5 and newest["next"] and newest["previous"]
    assert "fields=name" in newest["next"] and "ordering=-pulp_created" in newest["next"]
    oldest_first = api.ok(api.get(REPOS, params={"ordering": "pulp_created", "fields": "name"}))
    assert [r["name"] for r in oldest_first["results"]] == NAMES
    by_name_desc = api.ok(api.get(REPOS, params={"ordering": "-name", "fields": "name"}))
    assert [r["name"] for r in by_name_desc["results"]] == sorted(NAMES, reverse=True)

    two_fields = api.ok(api.get(REPOS, params=[("fields", "name"), ("fields", "pulp_href")]))
    assert all(set(r) == {"name", "pulp_href"} for r in two_fields["results"])
    trimmed = api.ok(api.get(REPOS, params={"exclude_fields": "description,versions_href"}))
    assert all("description" not in r and "versions_href" not in r for r in trimmed["results"])
    assert all("name" in r and "pulp_href" in r for r in trimmed["results"])
    one = api.ok(api.get(first["results"][0]["pulp_href"], params={"fields": "name"}))
    assert one == {"name": "alpha-core"}

    def names(**params: str) -> list[str]:
        body = api.ok(api.get(REPOS, params={**params, "fields": "name"}))
        assert body["count"] == len(body["results"])
        return [r["name"] for r in body["results"]]

    assert names(name__in="gamma-tools,alpha-core,nothing") == ["alpha-core", "gamma-tools"]
    assert names(name__contains="-tools") == ["epsilon-tools", "gamma-tools"]
    assert names(name__contains="%") == []  # not a LIKE wildcard
    assert names(name__contains="_") == []
    assert names(name="beta-core") == ["beta-core"]
    assert names(name="beta") == []
    assert names(name__startswith="e") == ["epsilon-tools"]
    assert names(name__icontains="CORE") == ["alpha-core", "beta-core", "delta-core"]
    assert names(name__contains="CORE") == []  # as in Pulp: case matters (SQLite too)
    assert names(name__startswith="E") == []

    filtered = api.ok(api.get(REPOS, params={"name__contains": "core", "limit": 1}))
    assert filtered["count"] == 3
    assert "name__contains=core" in filtered["next"]
    assert api.ok(api.get(filtered["next"]))["results"][0]["name"] == "beta-core"

    for params in ({"ordering": "description"}, {"limit": "many"}, {"offset": "-1"}):
        assert api.get(REPOS, params=params).status_code == 400, params

    # remotes and distributions filter the same way (`up`/`main` come from the config)
    api.ok(api.post(REMOTES, {"name": "mirror", "url": "http://127.0.0.1:9/"}), 201)
    remotes = api.ok(api.get(REMOTES, params={"name__in": "up,mirror", "fields": "name"}))
    assert remotes == {
        "count": 2,
        "next": None,
        "previous": None,
        "results": [{"name": "mirror"}, {"name": "up"}],
    }
    dists = api.ok(api.get(DISTS, params={"name__contains": "mai"}))
    assert [d["base_path"] for d in dists["results"]] == ["main"]


def test_a_list_refuses_a_parameter_that_is_not_one_of_its_filters(api: Api) -> None:
    """As Pulp answers (pulpcore BaseFilterSet): 400, every such parameter named - a misspelt or
    unsupported filter must never answer with the whole list."""
    repo = api.create_repository("strict")
    lists = [REPOS, REMOTES, DISTS, CONTENT, PUBLICATIONS, TASKS, repo["versions_href"]]
    lists += [V3 + path for path in ("projects/python/statuses/", "projects/python/yanks/")]
    lists += [V3 + "tokens/", V3 + "audit/", WORKERS]
    lists += [V3 + path for path in GENERIC.values()]
    for path in lists:
        resp = api.get(path, params={"stat": "failed", "limit": 1, "ordering": "-pulp_created"})
        assert api.ok(resp, 400) == {"errors": ["Invalid Filter: 'stat'"]}, path
    several = api.get(TASKS, params=[("nme", "x"), ("state", "completed"), ("task_group", "x")])
    assert api.ok(several, 400) == {
        "errors": ["Invalid Filter: 'nme'", "Invalid Filter: 'task_group'"]
    }
    assert api.ok(api.get(TASKS, params={"state": "completed", "limit": 1}))["count"] >= 0


def test_the_lists_of_every_type_give_the_typed_lists_objects(api: Api, tmp_path: Path) -> None:
    """`repositories/`, `remotes/`, `distributions/`, `publications/`, `content/` and
    `repository_versions/` (Pulp core's, which pulp-cli's `pulp repository list` and the like
    read): the python plugin's objects, filtered as their typed lists are."""
    repo = api.create_repository("gen-alpha", description="first")
    api.create_repository("gen-beta")
    api.upload_content(build_wheel(tmp_path / "w", "gen-pkg", "1.0"), repo["pulp_href"])
    api.upload_content(build_wheel(tmp_path / "w", "gen-pkg", "2.0"))  # in no repository
    api.task(api.post(PUBLICATIONS, {"repository": repo["pulp_href"]}))
    api.task(api.post(PUBLICATIONS, {"repository_version": repo["pulp_href"] + "versions/0/"}))
    api.create_distribution("gen-dist", repository=repo["pulp_href"])
    api.ok(api.post(REMOTES, {"name": "gen-remote", "url": "http://127.0.0.1:9/"}), 201)

    for typed, generic in GENERIC.items():
        for params in ({}, {"ordering": "-pulp_created", "limit": 2, "offset": 1}):
            mine, every = (
                api.ok(api.get(typed, params=params)),
                api.ok(api.get(V3 + generic, params=params)),
            )
            assert every["results"] and every["results"] == mine["results"], generic
            assert every["count"] == mine["count"], generic
        assert every["previous"].startswith(api.server.url + V3 + generic + "?"), every

    def names(path: str, **params: str) -> list[str]:
        body = api.ok(api.get(V3 + path, params=params))
        assert body["count"] == len(body["results"])
        return [o.get("filename") or o["name"] for o in body["results"]]

    assert names("repositories/", name__contains="gen-") == ["gen-alpha", "gen-beta"]
    assert names("repositories/", name__icontains="GEN-B") == ["gen-beta"]
    assert names("repositories/", name__in="gen-beta,nope", name="gen-beta") == ["gen-beta"]
    assert names("remotes/", name__startswith="gen") == ["gen-remote"]
    assert names("distributions/", base_path__icontains="GEN") == ["gen-dist"]
    assert names("content/", repository_version=repo["pulp_href"] + "versions/1/") == [
        "gen_pkg-1.0-py3-none-any.whl"
    ]
    published = api.ok(api.get(V3 + "publications/", params={"repository": repo["pulp_href"]}))
    assert published["count"] == 2
    first = {"repository_version": repo["pulp_href"] + "versions/1/"}
    (publication,) = api.ok(api.get(V3 + "publications/", params=first))["results"]
    assert publication["repository_version"] == first["repository_version"]

    versions = api.ok(api.get(V3 + "repository_versions/", params={"number": 1}))["results"]
    assert versions == api.ok(api.get(repo["versions_href"], params={"number": 1}))["results"]
    every_version = api.ok(api.get(V3 + "repository_versions/", params={"limit": 100}))
    assert every_version["count"] == 3  # 0 and 1 of gen-alpha, 0 of gen-beta

    refused = api.get(V3 + "repositories/", params={"name__regex": "x", "limit": 1})
    assert api.ok(refused, 400) == {"errors": ["Invalid Filter: 'name__regex'"]}
    assert list(api.ok(api.get(V3 + "content/", params={"packagetype": "egg"}), 400)) == [
        "packagetype"
    ]
    assert api.get(V3 + "repositories/", params={"ordering": "description"}).status_code == 400
    assert requests.get(api.url(V3 + "repositories/"), timeout=TIMEOUT).status_code == 401


def test_workers_list_and_show_the_task_workers(api: Api) -> None:
    """`workers/` as Pulp's: each task worker with its heartbeat and the task it runs; `online`
    (a heartbeat within tasks.worker_timeout) and `missing` (not), names, heartbeat times."""
    body = api.ok(api.get(WORKERS))
    assert body["count"] >= 1 and body["count"] == len(body["results"])
    worker = body["results"][0]
    assert set(worker) == {
        "pulp_href", "pulp_created", "pulp_last_updated", "name", "last_heartbeat", "current_task"
    }  # fmt: skip
    assert re.fullmatch(f"{WORKERS}{UUID}/", worker["pulp_href"])
    assert re.fullmatch(STAMP, worker["last_heartbeat"]) and re.fullmatch(
        STAMP, worker["pulp_created"]
    )
    assert worker["current_task"] is None
    assert api.ok(api.get(worker["pulp_href"]))["name"] == worker["name"]
    assert api.ok(api.get(worker["pulp_href"], params={"fields": "name"})) == {
        "name": worker["name"]
    }
    api.ok(api.get(f"{WORKERS}{uuid.uuid4()}/"), 404)
    api.ok(api.get(f"{WORKERS}not-a-worker/"), 404)

    def names(**params: str) -> list[str]:
        return [w["name"] for w in api.ok(api.get(WORKERS, params=params))["results"]]

    assert worker["name"] in names(online="true", missing="false")
    assert worker["name"] not in names(online="false") + names(missing="true")
    assert worker["name"] in names(online="", missing="")  # as DRF: an empty value, no filter
    assert names(name=worker["name"]) == [worker["name"]]
    assert names(name__contains=worker["name"][-4:], name__icontains=worker["name"][:4].upper())
    assert names(last_heartbeat__lt="2000-01-01T00:00:00Z") == []
    assert worker["name"] in names(last_heartbeat__gte="2000-01-01T00:00:00Z")
    assert list(api.ok(api.get(WORKERS, params={"online": "yes"}), 400)) == ["online"]
    assert api.ok(api.get(WORKERS, params={"state": "x"}), 400) == {
        "errors": ["Invalid Filter: 'state'"]
    }
    assert requests.get(api.url(WORKERS), timeout=TIMEOUT).status_code == 401
    assert requests.get(api.url(worker["pulp_href"]), timeout=TIMEOUT).status_code == 401


def test_tasks_filter_as_pulp_cli_asks(api: Api) -> None:
    """`pulp task list`'s options: name, name__contains, state, logging_cid(__contains), worker,
    started_at/finished_at ranges, created_resources."""
    api.create_repository("before")
    marked = {"Correlation-ID": "cid-task-filters"}
    created = api.task(api.post(DISTS, {"name": "tf", "base_path": "tf"}, headers=marked))
    (dist_href,) = created["created_resources"]
    other = api.task(api.patch(api.create_repository("other")["pulp_href"], {"description": "x"}))

    def hrefs(**params: str) -> list[str]:
        body = api.ok(api.get(TASKS, params=params))
        assert body["count"] == len(body["results"])
        return [t["pulp_href"] for t in body["results"]]

    every = hrefs()
    assert created["pulp_href"] in every and other["pulp_href"] in every
    assert hrefs(name=created["name"]) == [created["pulp_href"]]
    assert hrefs(name__contains="distribution.cr") == [created["pulp_href"]]
    assert hrefs(name__contains="no-such-task") == []
    assert hrefs(logging_cid="cid-task-filters") == [created["pulp_href"]]
    assert hrefs(logging_cid__contains="task-filt") == [created["pulp_href"]]
    assert hrefs(logging_cid__contains="nope") == []
    assert hrefs(created_resources=dist_href) == [created["pulp_href"]]
    assert hrefs(created_resources=f"{DISTS}{uuid.uuid4()}/") == []
    assert hrefs(state="failed") == []
    assert hrefs(state__in="failed,completed") == every
    assert hrefs(started_at__gte=created["started_at"])[-1] == created["pulp_href"]  # newest first
    assert hrefs(started_at__lte=created["started_at"])[0] == created["pulp_href"]
    assert hrefs(started_at__gte="2999-01-01T00:00:00Z") == []
    assert hrefs(finished_at__lte="2000-01-01T00:00:00Z") == []
    assert hrefs(finished_at__gte="2000-01-01T00:00:00.000000Z") == every
    assert list(api.ok(api.get(TASKS, params={"started_at__gte": "soon"}), 400)) == [
        "started_at__gte"
    ]

    # `worker`: the href of the worker that ran it (pulp-cli looks it up by name); done in the
    # request, a write names none
    assert created["worker"] is None
    cleanup = api.task(api.post(V3 + "orphans/cleanup/", {"orphan_protection_time": 0}))
    assert re.fullmatch(f"{WORKERS}{UUID}/", cleanup["worker"]), cleanup
    assert hrefs(worker=cleanup["worker"]) == [cleanup["pulp_href"]]
    assert hrefs(worker__in=f"{cleanup['worker']},{WORKERS}{uuid.uuid4()}/") == [
        cleanup["pulp_href"]
    ]
    assert hrefs(worker=f"{WORKERS}{uuid.uuid4()}/") == []
    for bad in (f"{WORKERS}nope/", api.ok(api.get(cleanup["worker"]))["name"]):
        assert list(api.ok(api.get(TASKS, params={"worker": bad}), 400)) == ["worker"]


def test_hrefs_and_repository_versions(api: Api, tmp_path: Path) -> None:
    repo = api.create_repository("hrefs")
    own = repo["pulp_href"]
    assert re.fullmatch(f"{REPOS}{UUID}/", own)
    assert repo["versions_href"] == own + "versions/"
    assert repo["latest_version_href"] == own + "versions/0/"
    untimed = {k: v for k, v in repo.items() if k not in ("pulp_created", "pulp_last_updated")}
    assert untimed.items() <= api.ok(api.get(own)).items()  # timestamps: see the test below

    v0 = api.ok(api.get(own + "versions/0/"))
    assert v0["pulp_href"] == own + "versions/0/"
    assert v0["number"] == 0 and v0["repository"] == own and v0["base_version"] is None
    assert v0["content_summary"] == {"added": {}, "removed": {}, "present": {}}

    task = api.upload_content(build_wheel(tmp_path, "href-lib", "1.0"), own)
    version_href, content_href = task["created_resources"]
    assert version_href == own + "versions/1/"
    assert re.fullmatch(f"{CONTENT}{UUID}/", content_href)
    assert task["result"]["pulp_href"] == content_href
    assert api.ok(api.get(own))["latest_version_href"] == version_href

    v1 = api.ok(api.get(version_href))
    assert v1["number"] == 1 and v1["base_version"] is None  # as Pulp's: none was asked for
    present = v1["content_summary"]["present"]["python.python"]
    assert present["count"] == 1
    assert v1["content_summary"]["added"]["python.python"]["count"] == 1
    assert v1["content_summary"]["removed"] == {}
    in_version = api.ok(api.get(present["href"]))
    assert [c["pulp_href"] for c in in_version["results"]] == [content_href]

    versions = api.ok(api.get(repo["versions_href"]))
    assert [v["pulp_href"] for v in versions["results"]] == [version_href, own + "versions/0/"]
    content = api.ok(api.get(content_href))
    assert content["filename"] == "href_lib-1.0-py3-none-any.whl"
    assert content["name"] == "href-lib" and content["version"] == "1.0"

    every_href = [own, repo["versions_href"], version_href, content_href, task["pulp_href"]]
    every_href += [d["pulp_href"] for d in api.ok(api.get(DISTS))["results"]]
    every_href += [r["pulp_href"] for r in api.ok(api.get(REMOTES))["results"]]
    for href in every_href:
        assert re.fullmatch(r"/pulp/api/v3/([a-z0-9_-]+/)+", href), href


DISTRIBUTED = (
    "The repository version cannot be deleted because it (or its publications) are currently"
    " being used to distribute content. Please update the necessary distributions first."
)


def test_a_version_is_deleted_as_pulp_deletes_it(api: Api, tmp_path: Path) -> None:
    own = api.create_repository("squashed")["pulp_href"]
    for version in ("1.0", "2.0", "3.0"):  # versions 1, 2 and 3, each adding one
        api.upload_content(build_wheel(tmp_path / version, "squash-lib", version), own)
    assert api.delete(own + "versions/9/").json() == {"detail": "Not found."}
    assert api.delete(own + "versions/9/").status_code == 404

    api.task(api.delete(own + "versions/2/"))
    assert api.get(own + "versions/2/").status_code == 404
    assert api.delete(own + "versions/2/").status_code == 404
    listed = api.ok(api.get(own + "versions/"))["results"]
    assert [v["number"] for v in listed] == [3, 1, 0]
    v3 = api.ok(api.get(own + "versions/3/"))
    assert v3["base_version"] is None
    summary = v3["content_summary"]
    assert summary["added"]["python.python"]["count"] == 2  # 2.0 and 3.0, counted from 1
    assert summary["present"]["python.python"]["count"] == 3 and summary["removed"] == {}
    added = api.ok(api.get(summary["added"]["python.python"]["href"]))["results"]
    assert sorted(c["version"] for c in added) == ["2.0", "3.0"]
    assert api.ok(api.get(own))["latest_version_href"] == own + "versions/3/"

    api.create_distribution("squashed", repository=own)  # serves 3, the latest: kept
    refused = api.delete(own + "versions/3/")
    assert (refused.status_code, refused.json()) == (400, [DISTRIBUTED])
    assert api.ok(api.get(own + "versions/3/"))["number"] == 3

    lone = api.create_repository("lone")  # the task refuses its only version, as Pulp's
    failed = api.settled(api.delete(lone["latest_version_href"]))
    assert failed["state"] == "failed", failed
    assert failed["error"]["description"] == (
        "[PLP0011] Cannot delete repository version. Repositories must have at least one"
        " repository version."
    )
    assert failed["error"]["error_code"] == "PLP0011"
    assert api.ok(api.get(lone["latest_version_href"]))["number"] == 0

    reader = api.ok(api.post(V3 + "tokens/", {"name": "reader", "scopes": ["read:squashed"]}), 201)
    resp = requests.delete(
        api.url(own + "versions/1/"), auth=("__token__", reader["token"]), timeout=TIMEOUT
    )
    assert resp.status_code == 403, resp.text
    assert api.ok(api.get(own + "versions/1/"))["number"] == 1


def test_content_of_a_deleted_version_is_no_other_versions_content(
    api: Api, tmp_path: Path
) -> None:
    """A content list filtered by a version that is not there (deleted: squashed into the next,
    or the latest undone; or never made) is a 400 naming it, as Pulp's: neither the content of
    the version before it, which its number still falls in, nor an empty list that reads as an
    empty version (versions 1 and 3 remain of 1, 2, 3; then 3 goes too)."""
    own = api.create_repository("filtered")["pulp_href"]
    for version in ("1.0", "2.0", "3.0"):
        api.upload_content(build_wheel(tmp_path / version, "filter-lib", version), own)

    def listed(number: int, key: str = "repository_version") -> list[str]:
        params = {key: f"{own}versions/{number}/"}
        body = api.ok(api.get(CONTENT, params=params))
        return sorted(c["version"] for c in body["results"])

    def refused(number: int, key: str = "repository_version") -> None:
        href = f"{own}versions/{number}/"
        answer = api.ok(api.get(CONTENT, params={key: href}), 400)
        assert answer == {key: [f"URI {href} not found for repositoryversion."]}

    assert listed(2) == ["1.0", "2.0"]
    api.task(api.delete(own + "versions/2/"))
    assert listed(1) == ["1.0"] and listed(3) == ["1.0", "2.0", "3.0"]
    refused(2)
    api.task(api.delete(own + "versions/3/"))  # the latest: undone
    refused(3)
    assert listed(1) == ["1.0"]
    refused(9)  # never made
    for key in ("repository_version_added", "repository_version_removed"):
        refused(2, key)
        refused(3, key)
    other = own.replace(own.rstrip("/").rsplit("/", 1)[1], str(uuid.uuid4()))
    answer = api.ok(api.get(CONTENT, params={"repository_version": other + "versions/0/"}), 400)
    assert answer == {
        "repository_version": [f"URI {other}versions/0/ not found for repositoryversion."]
    }


def test_timestamps_are_utc_as_created_and_as_read_back(api: Api) -> None:
    """Pulp's timestamps are ISO 8601 UTC with a `Z`; a stored one must not come back naive."""
    repo = api.create_repository("stamps")
    task = api.task(api.patch(repo["pulp_href"], {"description": "x"}))
    stamps = {
        "created repository": (repo["pulp_created"], repo["pulp_last_updated"]),
        "read repository": tuple(
            api.ok(api.get(repo["pulp_href"]))[k] for k in ("pulp_created", "pulp_last_updated")
        ),
        "version": (api.ok(api.get(repo["latest_version_href"]))["pulp_created"],),
        "task": (task["pulp_created"], task["started_at"], task["finished_at"]),
        "remote": (api.ok(api.get(REMOTES))["results"][0]["pulp_created"],),
    }
    bad = [
        (where, value)
        for where, values in stamps.items()
        for value in values
        if not re.fullmatch(STAMP, value)
    ]
    assert bad == []


# ---- tasks ----------------------------------------------------------------------------------


def test_writes_answer_with_completed_tasks(api: Api, tmp_path: Path) -> None:
    repo = api.create_repository("tasks")
    own = repo["pulp_href"]

    update = api.task(api.patch(own, {"description": "new words", "retain_repo_versions": 5}))
    assert update["name"].endswith("repository.update")
    assert update["result"]["description"] == "new words"
    assert update["result"]["pulp_href"] == own
    current = api.ok(api.get(own))
    assert (current["description"], current["retain_repo_versions"]) == ("new words", 5)

    remote = api.ok(api.post(REMOTES, {"name": "rm", "url": "http://127.0.0.1:9/"}), 201)
    assert remote["policy"] == "on_demand"
    remote_update = api.task(api.patch(remote["pulp_href"], {"policy": "immediate"}))
    assert remote_update["result"]["policy"] == "immediate"
    assert api.ok(api.get(remote["pulp_href"]))["policy"] == "immediate"

    created = api.task(api.post(DISTS, {"name": "tasks", "base_path": "team/tasks"}))
    (dist_href,) = created["created_resources"]
    assert re.fullmatch(f"{DISTS}{UUID}/", dist_href)
    assert created["result"]["pulp_href"] == dist_href
    assert created["result"]["base_url"] == api.server.url + "/pypi/team/tasks/"
    assert created["result"]["allow_uploads"] is True
    dist_update = api.task(api.patch(dist_href, {"repository": own, "remote": remote["pulp_href"]}))
    assert dist_update["result"]["repository"] == own
    assert dist_update["result"]["remote"] == remote["pulp_href"]
    assert api.ok(api.get(dist_href))["repository"] == own

    wheel = build_wheel(tmp_path, "task-lib", "1.0")
    content_href = api.upload_content(wheel)["created_resources"][0]
    assert api.ok(api.get(own))["latest_version_href"] == own + "versions/0/"  # no repository
    modify = api.task(api.post(own + "modify/", {"add_content_units": [content_href]}))
    assert modify["created_resources"] == [own + "versions/1/"]
    again = api.task(api.post(own + "modify/", {"add_content_units": [content_href]}))
    assert again["created_resources"] == []  # no change, no version
    removed = api.task(api.post(own + "modify/", {"remove_content_units": ["*"]}))
    assert removed["created_resources"] == [own + "versions/2/"]
    v2 = api.ok(api.get(own + "versions/2/"))
    assert v2["content_summary"]["present"] == {}
    assert v2["content_summary"]["removed"]["python.python"]["count"] == 1
    restored = api.task(api.post(own + "modify/", {"base_version": own + "versions/1/"}))
    assert restored["created_resources"] == [own + "versions/3/"]
    v3 = api.ok(api.get(own + "versions/3/"))
    assert v3["base_version"] == own + "versions/1/"
    assert v3["content_summary"]["present"]["python.python"]["count"] == 1
    # Pulp removes first, then adds: "replace the content with these" keeps what is added
    other_href = api.upload_content(build_wheel(tmp_path, "task-other", "1.0"))
    other_href = other_href["created_resources"][0]
    api.task(api.post(own + "modify/", {"add_content_units": [other_href]}))  # version 4
    replaced = api.task(
        api.post(
            own + "modify/", {"remove_content_units": ["*"], "add_content_units": [content_href]}
        )
    )
    assert replaced["created_resources"] == [own + "versions/5/"]
    v5 = api.ok(api.get(own + "versions/5/"))
    assert v5["content_summary"]["present"]["python.python"]["count"] == 1
    assert v5["content_summary"]["removed"]["python.python"]["count"] == 1  # task-other
    both = {"remove_content_units": [content_href], "add_content_units": [content_href]}
    assert api.task(api.post(own + "modify/", both))["created_resources"] == []  # no change
    based = api.task(api.post(own + "modify/", {**both, "base_version": own + "versions/4/"}))
    v6 = api.ok(api.get(based["created_resources"][0]))
    assert v6["content_summary"]["present"]["python.python"]["count"] == 2  # v4's two

    tasks = api.ok(api.get(TASKS, params={"state": "completed"}))
    assert tasks["count"] >= 8

    for href in (dist_href, own, remote["pulp_href"]):
        deleted = api.task(api.delete(href))
        assert deleted["name"].endswith(".delete")
        api.ok(api.get(href), 404)
    assert api.count(REPOS) == 0
    assert [r["name"] for r in api.ok(api.get(REMOTES))["results"]] == ["up"]
    assert [d["name"] for d in api.ok(api.get(DISTS))["results"]] == ["main"]
    api.ok(api.get(content_href))  # content outlives its repository


# ---- secrets and correlation ids ------------------------------------------------------------


def secret_keys(body: object) -> list[str]:
    """Secret field names used as keys anywhere in a JSON document."""
    if isinstance(body, dict):
        own = [k for k in body if k in SECRETS]
        return own + [k for v in body.values() for k in secret_keys(v)]
    if isinstance(body, list):
        return [k for v in body for k in secret_keys(v)]
    return []


def test_remote_secrets_are_write_only(api: Api) -> None:
    responses: list[requests.Response] = []

    def seen(resp: requests.Response) -> requests.Response:
        responses.append(resp)
        return resp

    created = api.ok(
        seen(api.post(REMOTES, {"name": "private", "url": "http://127.0.0.1:9/", **SECRETS})),
        201,
    )
    href = created["pulp_href"]
    hidden = {f["name"]: f["is_set"] for f in created["hidden_fields"]}
    assert hidden == dict.fromkeys(SECRETS, True)
    plain = api.ok(seen(api.post(REMOTES, {"name": "plain", "url": "http://127.0.0.1:9/"})), 201)
    assert {f["name"]: f["is_set"] for f in plain["hidden_fields"]} == dict.fromkeys(SECRETS, False)

    read = api.ok(seen(api.get(href)))
    assert {f["name"]: f["is_set"] for f in read["hidden_fields"]} == hidden
    seen(api.get(REMOTES))
    seen(api.get(REMOTES, params={"fields": "username,password,client_key,proxy_password"}))
    seen(api.get(href, params={"fields": "password"}))
    update = api.task(
        seen(
            api.patch(
                href,
                {
                    "username": "user-7f3a",
                    "password": "pw-rotated-6e0d",
                    "url": "http://127.0.0.1:8/",
                },
            )
        )
    )
    assert update["result"]["url"] == "http://127.0.0.1:8/"
    seen(api.get(api.ok(responses[-1], 202)["task"]))
    seen(api.get(TASKS))
    cleared = api.task(seen(api.patch(href, {"username": None, "client_key": None})))
    cleared_hidden = {f["name"]: f["is_set"] for f in cleared["result"]["hidden_fields"]}
    assert cleared_hidden == {**hidden, "username": False, "client_key": False}
    assert {f["name"]: f["is_set"] for f in api.ok(api.get(href))["hidden_fields"]} == (
        cleared_hidden
    )

    for resp in responses:
        assert not secret_keys(resp.json()), resp.url
        for value in [*SECRETS.values(), "pw-rotated-6e0d", "key-material-31b9"]:
            assert value not in resp.text, (resp.url, value)
    for body in (created, read, update["result"]):
        assert not set(SECRETS) & set(body)


def test_a_remote_moved_to_another_host_takes_its_credentials_only_when_given_again(
    upstream: Upstream,
    gunicorn_server: Callable[..., Server],
    scripted: HTTPServer,
    tmp_path: Path,
) -> None:
    """The index's credentials and headers go to the index's host only: an API client that may
    not read them must not have them sent to a host of its choosing by changing only the URL
    (nor the proxy's credentials by changing only the proxy's URL)."""
    server = gunicorn_server(with_admin_password(config_text(upstream.index_url, tmp_path / "d")))
    with requests.Session() as http:
        http.auth = AUTH
        api = Api(server, http)
        secrets = {"username": "user-7f3a", "password": "pw-9c1e4b"}
        body = {"name": "authd", "url": upstream.index_url, **secrets}
        remote = api.ok(api.post(REMOTES, {**body, "headers": [{"X-Api-Key": "key-93f0"}]}), 201)
        href = remote["pulp_href"]
        api.create_distribution("authd", remote=href)
        elsewhere = scripted.url_for("/simple/")

        moved = api.patch(href, {"url": elsewhere})
        api.get("/pypi/authd/simple/shelf-reader/")
        sent = [request.headers for request, _ in scripted.log]
        assert not [h for h in sent if "Authorization" in h or "X-Api-Key" in h], sent
        assert moved.status_code == 400, moved.text
        assert set(moved.json()) == {"username", "password", "headers"}, moved.text
        assert "give it again (or null)" in moved.text
        for fields in ({"username": "u", "password": "p"}, {"password": "p", "headers": []}):
            refused = api.patch(href, {"url": elsewhere, **fields})
            assert refused.status_code == 400, (fields, refused.text)
        # given again, they go there
        given = {"username": "user-2", "password": "pw-new-1", "headers": []}
        api.task(api.patch(href, {"url": elsewhere, **given}))
        api.get("/pypi/authd/simple/shelf-reader/")
        sent_as = [request.headers.get("Authorization") for request, _ in scripted.log]
        assert sent_as and set(sent_as) == {"Basic dXNlci0yOnB3LW5ldy0x"}  # user-2:pw-new-1

        proxied = {"proxy_url": "http://127.0.0.1:9/", "proxy_password": "proxy-pw-0a8f"}
        api.task(api.patch(href, proxied))
        refused = api.patch(href, {"proxy_url": "http://127.0.0.1:8/"})
        assert refused.status_code == 400 and list(refused.json()) == ["proxy_password"]
        api.task(api.patch(href, {"proxy_url": None}))  # sent nowhere: kept, unused
        refused = api.patch(href, {"proxy_url": "http://127.0.0.1:8/"})
        assert refused.status_code == 400 and list(refused.json()) == ["proxy_password"]
        api.task(api.patch(href, {"proxy_url": "http://127.0.0.1:8/", "proxy_password": None}))


def test_credentials_in_a_remote_url_log_in_to_the_index_only(
    upstream: Upstream,
    gunicorn_server: Callable[..., Server],
    scripted: HTTPServer,
    tmp_path: Path,
) -> None:
    """`https://user:token@index/simple/` is how pip and Pulp take an index's credentials:
    they were never sent (urllib3 drops a URL's user and password), so such an index answered
    401, and through an http proxy they went to the proxy in the request line instead."""
    url = upstream.index_url.replace("http://", "http://idx-user:pw%2F9c@")
    server = gunicorn_server(with_admin_password(config_text(url, tmp_path / "d")))
    wheel = next(f for f in upstream.files_for("shelf-reader") if f.filename.endswith(".whl"))
    assert requests.get(f"{server.index()}shelf-reader/", timeout=TIMEOUT).status_code == 200
    fetched = requests.get(f"{server.url}/pulp/content/main/{wheel.filename}", timeout=TIMEOUT)
    assert fetched.content == wheel.data
    (page,) = upstream.requests_for("shelf-reader", server="index")
    assert page.headers.get("authorization") == "Basic aWR4LXVzZXI6cHcvOWM="  # idx-user:pw/9c
    (file,) = upstream.requests_for(wheel.filename, server="files")  # another port: no login
    assert "authorization" not in file.headers

    with requests.Session() as http:
        http.auth = AUTH
        api = Api(server, http)
        body = {"name": "proxied", "url": url, "proxy_url": scripted.url_for("/")}
        proxied = api.ok(api.post(REMOTES, body), 201)
        api.create_distribution("proxied", remote=proxied["pulp_href"])
        api.get("/pypi/proxied/simple/meta-lib/")  # a page not kept yet
    through = {
        (request.environ["REQUEST_URI"], request.headers.get("Authorization"))
        for request, _ in scripted.log  # the proxy's 500 asked again (max_retries)
    }
    assert through == {(upstream.index_url + "meta-lib/", "Basic aWR4LXVzZXI6cHcvOWM=")}


def test_a_page_fetched_with_a_remotes_credentials_is_not_served_through_another_remote(
    gunicorn_server: Callable[..., Server], scripted: HTTPServer, tmp_path: Path
) -> None:
    """Upstream pages were kept by URL alone: a page an index showed one remote for its
    credentials (a private project) was served to every remote of the same URL, one without
    them (a public distribution's) included."""
    secret = "secret_lib-1.0-py3-none-any.whl"
    page = {
        "meta": {"api-version": "1.1"},
        "name": "secret-lib",
        "files": [{"filename": secret, "url": secret, "hashes": {"sha256": "ab" * 32}}],
    }

    def index(request: Request) -> ResponseType:
        if request.headers.get("Authorization") != "Basic dXNlcjpwdw==":  # user:pw
            return ResponseType("Not Found", status=404)
        return ResponseType(json.dumps(page), content_type=JSON_V1)

    scripted.expect_request("/simple/secret-lib/").respond_with_handler(index)
    url = scripted.url_for("/simple/")
    server = gunicorn_server(with_admin_password(config_text(url, tmp_path / "d")))
    with requests.Session() as http:
        http.auth = AUTH
        api = Api(server, http)
        for name, credentials in (("inner", {"username": "user", "password": "pw"}), ("outer", {})):
            remote = api.ok(api.post(REMOTES, {"name": name, "url": url, **credentials}), 201)
            api.create_distribution(name, remote=remote["pulp_href"])
        assert files_on_index(api, "inner", "secret-lib") == [secret]
    outer = requests.get(server.index("outer") + "secret-lib/", timeout=TIMEOUT)
    assert outer.status_code == 404 and secret not in outer.text, outer.text


PRIVATE_DEPENDENCY = "corp-internal-auth"  # in the private file's metadata only


def behind_a_login(
    gunicorn_server: Callable[..., Server], scripted: HTTPServer, tmp_path: Path, *, hashed: bool
) -> tuple[Server, str, bytes]:
    """An index whose page of secret-lib anyone may read, but whose file only user:pw may
    download; distributions `inner` (a remote with those credentials) and `outer` (a remote
    of the same URL without them), and the file fetched through `inner`: the server, the
    file's name and its bytes."""
    wheel = build_wheel(tmp_path / "w", "secret-lib", "1.0", requires_dist=[PRIVATE_DEPENDENCY])
    body = wheel.read_bytes()
    listed: dict[str, Any] = {"filename": wheel.name, "url": f"/files/{wheel.name}", "hashes": {}}
    if hashed:
        listed["hashes"] = {"sha256": hashlib.sha256(body).hexdigest()}
    page = {"meta": {"api-version": "1.1"}, "name": "secret-lib", "files": [listed]}
    scripted.expect_request("/simple/secret-lib/").respond_with_json(page, content_type=JSON_V1)

    def download(request: Request) -> ResponseType:
        if request.headers.get("Authorization") != "Basic dXNlcjpwdw==":  # user:pw
            return ResponseType("Unauthorized", status=401)
        return ResponseType(body, content_type="application/octet-stream")

    scripted.expect_request(f"/files/{wheel.name}").respond_with_handler(download)
    url = scripted.url_for("/simple/")
    server = gunicorn_server(with_admin_password(config_text(url, tmp_path / "d")))
    with requests.Session() as http:
        http.auth = AUTH
        api = Api(server, http)
        for name, credentials in (("inner", {"username": "user", "password": "pw"}), ("outer", {})):
            fields = {"name": name, "url": url, "allow_unhashed": not hashed, **credentials}
            remote = api.ok(api.post(REMOTES, fields), 201)
            api.create_distribution(name, remote=remote["pulp_href"])
    inner = f"{server.url}/pulp/content/inner/{wheel.name}"
    fetched = requests.get(inner, timeout=TIMEOUT)
    assert fetched.status_code == 200 and fetched.content == body
    # stored while it was sent: a HEAD answered from the store gives its sha256
    assert wait_until(lambda: "ETag" in requests.head(inner, timeout=TIMEOUT).headers)
    return server, wheel.name, body


@pytest.mark.parametrize("hashed", [True, False], ids=["hashed", "unhashed"])
def test_a_file_fetched_with_a_remotes_credentials_is_not_served_through_another_remote(
    gunicorn_server: Callable[..., Server], scripted: HTTPServer, tmp_path: Path, hashed: bool
) -> None:
    """Stored files were found by sha256 (or, without one, by URL) alone: a file an index gave
    one remote for its credentials was served to every distribution whose page lists it - a
    whole GET, a range, its metadata - though that distribution's remote gets a 401 for it."""
    server, filename, body = behind_a_login(gunicorn_server, scripted, tmp_path, hashed=hashed)
    outer = f"{server.url}/pulp/content/outer/{filename}"
    for _ in range(2):  # through Flask, then (the page held fresh) the warm path
        assert requests.get(server.index("outer") + "secret-lib/", timeout=TIMEOUT).ok
        whole = requests.get(outer, timeout=TIMEOUT)
        assert whole.status_code == 502 and body not in whole.content, whole.status_code
    head = requests.head(outer, timeout=TIMEOUT)  # never from the store: no size, no sha256
    assert "ETag" not in head.headers and head.headers.get("Content-Length") != str(len(body))
    part = requests.get(outer, headers={"Range": "bytes=0-99"}, timeout=TIMEOUT)
    assert part.status_code == 502 and body[:100] not in part.content, part.status_code
    metadata = requests.get(outer + ".metadata", timeout=TIMEOUT)
    assert metadata.status_code == 502 and b"Name: secret-lib" not in metadata.content
    inner = requests.get(f"{server.url}/pulp/content/inner/{filename}", timeout=TIMEOUT)
    assert inner.status_code == 200 and inner.content == body


def test_a_project_page_shows_a_file_as_cached_only_where_the_copy_would_be_served(
    gunicorn_server: Callable[..., Server], scripted: HTTPServer, tmp_path: Path
) -> None:
    """The page for people said "cache" for a file any remote had fetched: a public
    distribution told that a file its remote cannot download was stored here (fetched with
    another remote's credentials), and that someone had fetched it."""
    server, filename, _ = behind_a_login(gunicorn_server, scripted, tmp_path, hashed=True)

    def source(base_path: str) -> str:
        page = requests.get(f"{server.url}/pypi/{base_path}/project/secret-lib/", timeout=TIMEOUT)
        assert page.status_code == 200 and filename in page.text, page.text
        found = re.search(r'<td class="source[^"]*">([^<]*)</td>', page.text)
        assert found is not None, page.text
        return found[1]

    assert wait_until(lambda: source("inner") == "cache")  # stored while it was sent
    assert source("outer") == "upstream"


def test_the_json_api_shows_the_metadata_of_a_copy_only_where_it_would_be_served(
    gunicorn_server: Callable[..., Server], scripted: HTTPServer, tmp_path: Path
) -> None:
    """The JSON API took a release's core metadata from any package of its files' sha256: a
    public distribution showed the metadata (dependencies, description) of a file its remote
    cannot download, read from the copy another remote fetched with its credentials."""
    server, _, _ = behind_a_login(gunicorn_server, scripted, tmp_path, hashed=True)

    def requires(base_path: str) -> object:
        answer = requests.get(
            f"{server.url}/pypi/{base_path}/pypi/secret-lib/json", timeout=TIMEOUT
        )
        assert answer.status_code == 200, answer.text
        return answer.json()["info"]["requires_dist"]

    assert requires("inner") == [PRIVATE_DEPENDENCY]
    assert requires("outer") is None


def test_remotes_that_send_no_credentials_share_the_files_they_cache(
    gunicorn_server: Callable[..., Server], scripted: HTTPServer, tmp_path: Path
) -> None:
    """Two remotes of one index sending nothing of their own: a file one of them fetched is
    served to the other's distribution from the store, the index asked once."""
    wheel = build_wheel(tmp_path / "w", "open-lib", "1.0")
    body = wheel.read_bytes()
    listed = {
        "filename": wheel.name,
        "url": f"/files/{wheel.name}",
        "hashes": {"sha256": hashlib.sha256(body).hexdigest()},
    }
    page = {"meta": {"api-version": "1.1"}, "name": "open-lib", "files": [listed]}
    scripted.expect_request("/simple/open-lib/").respond_with_json(page, content_type=JSON_V1)
    scripted.expect_request(f"/files/{wheel.name}").respond_with_data(body)
    url = scripted.url_for("/simple/")
    server = gunicorn_server(with_admin_password(config_text(url, tmp_path / "d")))
    with requests.Session() as http:
        http.auth = AUTH
        api = Api(server, http)
        for name in ("one", "two"):
            remote = api.ok(api.post(REMOTES, {"name": name, "url": url}), 201)
            api.create_distribution(name, remote=remote["pulp_href"])
    first = f"{server.url}/pulp/content/one/{wheel.name}"
    assert requests.get(first, timeout=TIMEOUT).content == body
    assert wait_until(lambda: "ETag" in requests.head(first, timeout=TIMEOUT).headers)
    for _ in range(2):  # through Flask, then the warm path
        again = requests.get(f"{server.url}/pulp/content/two/{wheel.name}", timeout=TIMEOUT)
        assert again.status_code == 200 and again.content == body
    downloads = [r for r, _ in scripted.log if r.path == f"/files/{wheel.name}"]
    assert len(downloads) == 1


def test_a_sync_takes_in_a_cached_copy_only_once_its_remote_downloaded_it_too(
    gunicorn_server: Callable[..., Server], scripted: HTTPServer, tmp_path: Path
) -> None:
    """A sync took a file into its repository from the cache when a package of that name was
    stored (same sha256): a copy one remote fetched with its credentials went into the
    repository of a remote the index refuses the file, and out through its distribution."""
    server, filename, body = behind_a_login(gunicorn_server, scripted, tmp_path, hashed=True)
    with requests.Session() as http:
        http.auth = AUTH
        api = Api(server, http)
        outer = api.ok(api.get(REMOTES, params={"name": "outer"}))["results"][0]
        api.task(api.patch(outer["pulp_href"], {"includes": ["secret-lib"]}))
        repo = api.create_repository("pub")
        synced = api.settled(api.post(repo["pulp_href"] + "sync/", {"remote": outer["pulp_href"]}))
        api.create_distribution("pub", repository=repo["pulp_href"])
    served = requests.get(f"{server.url}/pulp/content/pub/{filename}", timeout=TIMEOUT)
    assert served.status_code != 200 and body not in served.content, served.status_code
    assert synced["state"] == "failed" and "401" in str(synced["error"]), synced["error"]


def test_a_remote_url_whose_host_does_not_parse_is_refused_without_showing_its_password(
    gunicorn_server: Callable[..., Server], tmp_path: Path
) -> None:
    """A password with `/`, `?` or `#` not percent-encoded ends the URL's host early (the
    host `bob`, the port `pa`): such a URL was kept, and shown with its password in plain text
    (the part after the `/` is the path), and the status anyone reads, every page of the
    distribution and the reachability check failed with a 500 on its port, as with a port
    past 65535."""
    server = gunicorn_server(with_admin_password(config_text("http://127.0.0.1:9/", tmp_path)))
    with requests.Session() as http:
        http.auth = AUTH
        api = Api(server, http)
        plain = api.ok(api.post(REMOTES, {"name": "plain", "url": "http://127.0.0.1:9/"}), 201)
        for i, url in enumerate(
            (
                "http://bob:pa/ss-77@127.0.0.1:9/simple/",
                "http://bob:pa?ss-77@127.0.0.1:9/simple/",
                "http://bob:pa#ss-77@127.0.0.1:9/simple/",
                "http://bob:12/ss-77@127.0.0.1:9/simple/",
                "http://bob:12?ss-77@127.0.0.1:9/simple/",  # a port that parses, then a query
                "http://bob:12#ss-77@127.0.0.1:9/simple/",
                "http://bob:12/pa?ss-77@127.0.0.1:9/simple/",
                "http://tok?ss-77@127.0.0.1:9/simple/",  # a token as user, no password
                "http://127.0.0.1:99999/simple/",
                "http://127.0.0.1:port/simple/",
                "http:///simple/",
            )
        ):
            for field in ("url", "proxy_url"):
                body = {"name": f"r{i}", "url": "http://127.0.0.1:9/", field: url}
                for answer in (api.post(REMOTES, body), api.patch(plain["pulp_href"], body)):
                    assert answer.status_code == 400, (field, url, answer.text)
                    assert list(answer.json()) == [field] and "ss-77" not in answer.text
        assert "ss-77" not in api.get(REMOTES).text
        for i, url in enumerate(  # an `@` of the index's own path or query is no password's
            (
                "http://127.0.0.1:9/org/_packaging/feed@Local/pypi/simple/",
                "http://127.0.0.1:9/simple/?token=a@b",
            )
        ):
            kept = api.ok(api.post(REMOTES, {"name": f"at{i}", "url": url}), 201)
            assert kept["url"].partition("?")[0] == url.partition("?")[0], kept  # query: hidden
        for page in ("/pulp/api/v3/status/", "/status/"):
            assert requests.get(server.url + page, timeout=TIMEOUT).status_code == 200


def test_correlation_id_is_echoed(api: Api, anonymous: requests.Session) -> None:
    cid = "c0ffee-" + uuid.uuid4().hex
    for method, path, body in (
        ("GET", REPOS, None),
        ("POST", REPOS, {}),  # a 400
        ("GET", f"{REPOS}{uuid.uuid4()}/", None),  # a 404
    ):
        resp = api.request(method, path, json=body, headers={"Correlation-ID": cid})
        assert resp.headers["Correlation-ID"] == cid, (method, path, resp.status_code)
    refused = anonymous.get(api.url(REPOS), headers={"Correlation-ID": cid}, timeout=TIMEOUT)
    assert refused.status_code == 401 and refused.headers["Correlation-ID"] == cid

    created = api.post(DISTS, {"name": "cid", "base_path": "cid"}, headers={"Correlation-ID": cid})
    assert created.headers["Correlation-ID"] == cid
    assert api.task(created)["logging_cid"] == cid

    generated = api.get(REPOS).headers["Correlation-ID"]
    assert generated and generated != cid


# ---- distributions --------------------------------------------------------------------------


def test_repository_and_repository_version_are_exclusive(api: Api) -> None:
    repo = api.create_repository("pin")
    both = {"repository": repo["pulp_href"], "repository_version": repo["latest_version_href"]}
    resp = api.post(DISTS, {"name": "both", "base_path": "both", **both})
    assert "non_field_errors" in api.ok(resp, 400)
    dist = api.create_distribution("one", repository=repo["pulp_href"])
    assert api.ok(api.patch(dist["pulp_href"], both), 400)
    assert api.ok(api.get(dist["pulp_href"]))["repository"] == repo["pulp_href"]
    assert api.count(DISTS) == 2  # `main` and `one`

    # setting one clears the other
    pinned = api.task(
        api.patch(dist["pulp_href"], {"repository_version": repo["latest_version_href"]})
    )
    assert pinned["result"]["repository_version"] == repo["latest_version_href"]
    assert pinned["result"]["repository"] is None
    moved = api.task(api.patch(dist["pulp_href"], {"repository": repo["pulp_href"]}))
    assert moved["result"]["repository"] == repo["pulp_href"]
    assert moved["result"]["repository_version"] is None


def test_a_pinned_version_is_served_while_the_repository_moves_on(api: Api, tmp_path: Path) -> None:
    repo = api.create_repository("moving")
    own = repo["pulp_href"]
    api.upload_content(build_wheel(tmp_path, "pinned-lib", "1.0"), own)
    pinned = api.create_distribution("pinned", repository_version=own + "versions/1/")
    assert pinned["repository_version"] == own + "versions/1/" and pinned["repository"] is None
    latest = api.create_distribution("latest", repository=own)

    v1 = ["pinned_lib-1.0-py3-none-any.whl"]
    v2 = ["pinned_lib-1.0-py3-none-any.whl", "pinned_lib-2.0-py3-none-any.whl"]
    assert files_on_index(api, "pinned", "pinned-lib") == v1
    assert files_on_index(api, "latest", "pinned-lib") == v1

    api.upload_content(build_wheel(tmp_path, "pinned-lib", "2.0"), own)
    assert files_on_index(api, "pinned", "pinned-lib") == v1
    assert files_on_index(api, "latest", "pinned-lib") == v2
    resp = api.get("/pulp/content/pinned/pinned_lib-2.0-py3-none-any.whl")
    assert resp.status_code == 404
    resp = api.get("/pulp/content/latest/pinned_lib-2.0-py3-none-any.whl")
    assert resp.status_code == 200
    assert resp.content == (tmp_path / "pinned_lib-2.0-py3-none-any.whl").read_bytes()

    api.task(api.post(own + "modify/", {"remove_content_units": ["*"]}))  # version 3: empty
    assert files_on_index(api, "pinned", "pinned-lib") == v1
    assert api.get("/pypi/latest/simple/pinned-lib/").status_code == 404

    api.task(api.patch(pinned["pulp_href"], {"repository_version": own + "versions/2/"}))
    assert files_on_index(api, "pinned", "pinned-lib") == v2
    assert api.ok(api.get(latest["pulp_href"]))["repository"] == own


# ---- a repository's package blocklist (Pulp python >= 3.30.2) ----------------------------------


def test_a_repositorys_blocklist_entries_and_what_they_keep_out(
    api: Api, tmp_path: Path, anonymous: requests.Session
) -> None:
    """Entries below the repository, as Pulp's: created (201), listed, read, deleted (204),
    with its 400s; a blocked package is refused by modify (400, before any task) and by upload,
    or with error_on_reject false left out; every write is in the audit trail."""
    repo = api.create_repository("guarded")
    assert repo["error_on_reject"] is True
    entries = repo["pulp_href"] + "blocklist_entries/"
    by_name = api.ok(api.post(entries, {"name": "Blocked_Pkg"}), 201)
    assert re.fullmatch(f"{entries}{UUID}/", by_name["pulp_href"]), by_name
    assert (by_name["name"], by_name["version"], by_name["filename"]) == ("blocked-pkg", None, None)
    assert by_name["added_by"] == "admin" and by_name["repository"] == repo["pulp_href"]
    pinned = api.ok(api.post(entries, {"name": "other", "version": "1.0"}), 201)
    by_file = api.ok(api.post(entries, {"filename": "third-1.0.tar.gz"}), 201)
    assert api.ok(api.get(by_file["pulp_href"])) == by_file

    bad = [
        ({"name": "blocked.pkg"}, {"non_field_errors": [
            "A blocklist entry with this name and version already exists."]}),
        ({"name": "other", "version": "1.0"}, {"non_field_errors": [
            "A blocklist entry with this name and version already exists."]}),
        ({"filename": "third-1.0.tar.gz"}, {"non_field_errors": [
            "A blocklist entry with this filename already exists."]}),
        ({"name": "x", "filename": "x-1.0.tar.gz"}, {"non_field_errors": [
            "Exactly one of 'name' or 'filename' must be provided."]}),
        ({}, {"non_field_errors": ["Exactly one of 'name' or 'filename' must be provided."]}),
        ({"version": "1.0"}, {"non_field_errors": ["'version' requires 'name' to be provided."]}),
        ({"version": "1.0", "filename": "x-1.0.tar.gz"}, {"non_field_errors": [
            "'version' cannot be used with 'filename'."]}),
    ]  # fmt: skip
    for body, expected in bad:
        assert api.ok(api.post(entries, body), 400) == expected, body
    assert "not a valid version" in api.post(entries, {"name": "x", "version": "n/a"}).text

    page = api.ok(api.get(entries))
    assert page["count"] == 3
    assert [e["pulp_href"] for e in page["results"]] == [
        by_file["pulp_href"], pinned["pulp_href"], by_name["pulp_href"]
    ]  # fmt: skip
    found = api.ok(api.get(entries, params={"name": "blocked-pkg", "version__isnull": "True"}))
    assert [e["pulp_href"] for e in found["results"]] == [by_name["pulp_href"]]
    found = api.ok(api.get(entries, params={"name": "other", "version": "1.0"}))
    assert [e["pulp_href"] for e in found["results"]] == [pinned["pulp_href"]]
    other_repo = api.create_repository("elsewhere")
    assert api.count(other_repo["pulp_href"] + "blocklist_entries/") == 0
    assert api.get(other_repo["pulp_href"] + "blocklist_entries/" + by_name["pulp_href"].split(
        "/")[-2] + "/").status_code == 404  # fmt: skip
    assert api.get(f"{entries}{uuid.uuid4()}/").status_code == 404

    wheel = build_wheel(tmp_path, "blocked-pkg", "1.0")
    content = api.upload_content(wheel)["created_resources"][0]  # no repository: no check
    refused = api.post(repo["pulp_href"] + "modify/", {"add_content_units": [content]})
    assert refused.status_code == 400
    assert refused.json() == [
        f"Blocklisted packages cannot be added to this repository: {wheel.name}"
    ]
    with wheel.open("rb") as fh:
        resp = api.request(
            "POST", CONTENT, data={"repository": repo["pulp_href"]}, files={"file": fh}
        )
    assert resp.status_code == 400 and "Blocklisted packages" in resp.text, resp.text
    assert api.ok(api.get(repo["pulp_href"]))["latest_version_href"].endswith("/versions/0/")

    api.task(api.patch(repo["pulp_href"], {"error_on_reject": False}))
    task = api.task(api.post(repo["pulp_href"] + "modify/", {"add_content_units": [content]}))
    assert task["created_resources"] == []  # left out: no new version

    assert api.delete(by_name["pulp_href"]).status_code == 204
    assert api.get(by_name["pulp_href"]).status_code == 404
    assert api.delete(by_name["pulp_href"]).status_code == 404
    task = api.task(api.post(repo["pulp_href"] + "modify/", {"add_content_units": [content]}))
    assert task["created_resources"] == [repo["pulp_href"] + "versions/1/"]

    events = api.ok(api.get(V3 + "audit/", params={"action__contains": "blocklist"}))["results"]
    assert {(e["action"], e["subject"]) for e in events} >= {
        ("repositories_python_python_blocklist_entries_create", by_name["pulp_href"]),
        ("repositories_python_python_blocklist_entries_delete", by_name["pulp_href"]),
    }
