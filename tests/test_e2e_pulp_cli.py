"""The seed workflow of Pulp's python documentation, run verbatim with the real pulp-cli 0.41.1
against the server under gunicorn (shared/PULP-CLI-PROTOCOL.md is the contract)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
import trustme

from support.api import AUTH, PASSWORD, with_auth
from support.packages import build_sdist, build_wheel, sha256_of
from support.postgres import private_database
from support.servers import Server, config_text, wait_until
from support.tools import clean_env, make_venv, run_pip
from support.upstream import Upstream

pytestmark = pytest.mark.e2e
BASE = [""]  # the server under test's URL, for hrefs


class Pulp:
    """`pulp --base-url ... <args>` with a fresh API cache (XDG_CACHE_HOME) per test."""

    def __init__(self, url: str, home: Path, password: str = PASSWORD) -> None:
        self.url = url
        self.env = clean_env(XDG_CACHE_HOME=str(home / "cache"), XDG_CONFIG_HOME=str(home / "cfg"))
        self.password = password

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [
            str(Path(sys.executable).with_name("pulp")),
            "--base-url", self.url, "--username", "admin", "--password", self.password, *args,
        ]  # fmt: skip
        proc = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=120)
        if check:
            assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
        return proc

    def json(self, *args: str) -> object:
        out = self.run(*args).stdout
        return json.loads(out[out.index("{") if out.lstrip()[:1] == "{" else out.index("[") :])

    def json_object(self, *args: str) -> dict[str, Any]:
        """The command's output, a JSON object."""
        value = self.json(*args)
        assert isinstance(value, dict), value
        return value

    def json_list(self, *args: str) -> list[dict[str, Any]]:
        """The command's output, a JSON list (of objects)."""
        value = self.json(*args)
        assert isinstance(value, list), value
        return value


def pulp_cli_server(
    gunicorn_server: Callable[..., Server], upstream: Upstream, tmp_path: Path, extra: str = ""
) -> tuple[Server, Pulp]:
    """The server under gunicorn (the admin's password set, `extra` config appended), and
    pulp-cli for it."""
    server = gunicorn_server(with_auth(config_text(upstream.index_url, tmp_path / "data")) + extra)
    return server, Pulp(server.url, tmp_path)


def api_get(url: str) -> dict[str, Any]:
    """GET an absolute URL or an href of the server under test (set per test)."""
    resp = requests.get(url if url.startswith("http") else BASE[0] + url, auth=AUTH, timeout=30)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


@pytest.mark.slow
def test_seed_workflow_with_pulp_cli(
    upstream: Upstream, gunicorn_server: Callable[..., Server], tmp_path: Path
) -> None:
    upstream.add_file("django", build_wheel(tmp_path / "w", "django", "2.0.1"))
    upstream.add_file("django", build_wheel(tmp_path / "w", "django", "2.0.2"))
    server, pulp = pulp_cli_server(gunicorn_server, upstream, tmp_path)
    BASE[0] = server.url
    v3 = "/pulp/api/v3/"

    repo = pulp.json_object("python", "repository", "create", "--name", "foo")
    assert repo["name"] == "foo" and repo["latest_version_href"].endswith("/versions/0/")

    remote = pulp.json_object(
        "python", "remote", "create", "--name", "bar", "--url", upstream.index_url,
        "--includes", '["shelf-reader"]',
    )  # fmt: skip
    assert remote["includes"] == ["shelf-reader"] and remote["policy"] == "on_demand"
    complex_remote = pulp.json_object(
        "python", "remote", "create", "--name", "complex", "--url", upstream.index_url,
        "--includes", '["django~=2.0,!=2.0.1"]', "--excludes", '["shelf-reader"]',
        "--package-types", '["sdist", "bdist_wheel"]', "--exclude-platforms", '["windows"]',
        "--keep-latest-packages", "5",
    )  # fmt: skip
    assert complex_remote["exclude_platforms"] == ["windows"]
    assert complex_remote["keep_latest_packages"] == 5

    pulp.run("python", "repository", "sync", "--name", "foo", "--remote", "bar")
    version = pulp.json_object("python", "repository", "version", "show", "--repository", "foo")
    assert version["number"] == 1
    present = version["content_summary"]["present"]["python.python"]
    assert present["count"] == len(upstream.files_for("shelf-reader"))

    publication = pulp.json_object(
        "python", "publication", "create", "--repository", "foo", "--version", "1"
    )
    assert publication["repository_version"] == version["pulp_href"]
    dist = pulp.json_object(
        "python", "distribution", "create", "--name", "foo", "--base-path", "foo",
        "--publication", publication["pulp_href"],
    )  # fmt: skip
    assert dist["publication"] == publication["pulp_href"] and dist["base_path"] == "foo"
    page = requests.get(f"{server.url}/pypi/foo/simple/shelf-reader/", timeout=30)
    assert page.status_code == 200 and "shelf_reader-0.2-py3-none-any.whl" in page.text

    pulp.run("python", "repository", "update", "--name", "foo", "--autopublish")
    assert api_get(repo["pulp_href"])["autopublish"] is True
    pulp.run("python", "distribution", "update", "--name", "foo", "--repository", "foo")
    dist = api_get(dist["pulp_href"])
    assert (dist["repository"], dist["publication"]) == (repo["pulp_href"], None)
    pulp.run("python", "distribution", "update", "--name", "foo", "--remote", "bar")
    assert api_get(dist["pulp_href"])["remote"] == remote["pulp_href"]

    wheel = build_wheel(tmp_path / "mine", "acme-tools", "1.0")
    pulp.run(
        "python", "content", "upload", "--file", str(wheel), "--relative-path", wheel.name,
        "--repository", "foo",
    )  # fmt: skip
    latest = api_get(api_get(repo["pulp_href"])["latest_version_href"])
    assert latest["number"] == 2
    # autopublish made a publication of version 2
    pubs = api_get(v3 + f"publications/python/pypi/?repository={repo['pulp_href']}")
    assert latest["pulp_href"] in {p["repository_version"] for p in pubs["results"]}

    status = pulp.run("status").stdout
    assert '"python"' in status and "3.36.0" in status

    listed = pulp.json_list("python", "repository", "list")
    assert [r["name"] for r in listed] == ["foo"]
    remotes = pulp.json_list("python", "remote", "list")
    assert {r["name"] for r in remotes} == {"up", "bar", "complex"}
    assert "foo" in {d["name"] for d in pulp.json_list("python", "distribution", "list")}

    python = make_venv(tmp_path / "venv")
    run_pip(
        ["install", "--index-url", f"{server.url}/pypi/foo/simple/", "shelf-reader", "acme-tools"],
        python=python,
    )
    out = subprocess.run(
        [str(python), "-c", "import shelf_reader, acme_tools; print(shelf_reader.__version__, acme_tools.__version__)"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    assert out.stdout.split() == ["0.2", "1.0"]

    pulp.run("python", "distribution", "destroy", "--name", "foo")
    pulp.run("python", "repository", "destroy", "--name", "foo")
    pulp.run("python", "remote", "destroy", "--name", "complex")
    assert api_get(v3 + "repositories/python/python/?name=foo")["count"] == 0
    assert (
        requests.get(f"{server.url}/pypi/foo/simple/shelf-reader/", timeout=30).status_code == 404
    )


@pytest.mark.slow
def test_error_paths_through_pulp_cli(
    upstream: Upstream, gunicorn_server: Callable[..., Server], tmp_path: Path
) -> None:
    server, pulp = pulp_cli_server(gunicorn_server, upstream, tmp_path)
    unknown = pulp.run("python", "repository", "show", "--name", "nope", check=False)
    assert unknown.returncode == 1 and "Could not find" in unknown.stderr
    pulp.run("python", "repository", "create", "--name", "dup")
    duplicate = pulp.run("python", "repository", "create", "--name", "dup", check=False)
    assert duplicate.returncode == 1
    assert '{"name": ["This field must be unique."]}' in duplicate.stderr
    bad_enum = pulp.run(
        "python", "remote", "create", "--name", "x", "--url", upstream.index_url,
        "--exclude-platforms", '["beos"]', check=False,
    )  # fmt: skip
    # The document's enum lets pulp-cli refuse it before sending anything.
    assert bad_enum.returncode == 1
    assert "exclude_platforms" in bad_enum.stderr and "windows" in bad_enum.stderr
    bad_requirement = pulp.run(
        "python", "remote", "create", "--name", "y", "--url", upstream.index_url,
        "--includes", '["dj ango>="]', check=False,
    )  # fmt: skip
    assert bad_requirement.returncode == 1
    assert "invalid requirement 'dj ango>='" in bad_requirement.stderr
    wrong = Pulp(server.url, tmp_path / "other", password="wrong")
    refused = wrong.run("python", "repository", "list", check=False)
    assert refused.returncode == 1
    assert "Authentication failed for repositories_python_python_list" in refused.stderr


@pytest.mark.slow
def test_task_list_and_its_filters_through_pulp_cli(
    upstream: Upstream, gunicorn_server: Callable[..., Server], tmp_path: Path
) -> None:
    """`pulp task list` runs (it sends its options' empty lists, `--reserved-resource-in` and
    the like, only when the document declares them) and its filters narrow the list; a filter
    the server lacks is refused by pulp-cli before anything is sent."""
    _server, pulp = pulp_cli_server(gunicorn_server, upstream, tmp_path)
    dist = pulp.json_object("python", "distribution", "create", "--name", "d", "--base-path", "d")
    pulp.run("python", "repository", "create", "--name", "r")
    pulp.run("python", "repository", "create", "--name", "s")
    pulp.run("python", "repository", "update", "--name", "r", "--description", "changed")

    def hrefs(*options: str) -> list[str]:
        return [t["pulp_href"] for t in pulp.json_list("task", "list", *options)]

    every = pulp.json_list("task", "list")
    names = [t["name"] for t in every]
    assert "pullthrough.tasks.distribution.create" in names
    assert "pullthrough.tasks.repository.update" in names
    (created,) = [t["pulp_href"] for t in every if t["name"].endswith("distribution.create")]
    assert hrefs("--name-contains", "distribution.cr") == [created]
    assert hrefs("--name", "pullthrough.tasks.distribution.create") == [created]
    assert hrefs("--created-resource", dist["pulp_href"]) == [created]
    assert hrefs("--state", "completed") == [t["pulp_href"] for t in every]
    assert hrefs("--state", "failed") == []
    assert hrefs("--state-in", "failed", "--state-in", "canceled") == []
    assert hrefs("--started-after", "2999-01-01") == []
    assert hrefs("--finished-before", "2999-01-01") == [t["pulp_href"] for t in every]
    assert hrefs("--cid", "no-such-correlation-id") == []
    # what a task acted on, as Pulp records it: `repository task list` lists a repository's
    (updated,) = [t["pulp_href"] for t in every if t["name"].endswith("repository.update")]
    r_href = pulp.json_object("python", "repository", "show", "--name", "r")["pulp_href"]
    on_r = pulp.json_list("python", "repository", "task", "list", "--repository", "r")
    assert [t["pulp_href"] for t in on_r] == [updated]
    assert on_r[0]["reserved_resources_record"] == [r_href]
    assert hrefs("--reserved-resource", r_href) == [updated]
    assert hrefs("--exclusive-resource", r_href) == [updated]
    assert hrefs("--shared-resource", r_href) == []
    assert pulp.json_list("python", "repository", "task", "list", "--repository", "s") == []
    # ordered by any of a task's times, as Pulp (pulp-cli's own tests order by started_at)
    assert hrefs("--ordering", "started_at") == [t["pulp_href"] for t in reversed(every)]
    assert hrefs("--ordering", "-finished_at") == [t["pulp_href"] for t in every]
    by = [pulp.json_list("python", "repository", "list", "--ordering", order)
          for order in ("-pulp_created", "-pulp_last_updated")]  # fmt: skip
    assert [[r["name"] for r in repos] for repos in by] == [["s", "r"], ["r", "s"]]
    first = [pulp.json_list(noun, "list", "--ordering", "-pulp_last_updated")[0]["name"]
             for noun in ("remote", "distribution")]  # fmt: skip
    assert first == ["up", "d"]
    grouped = pulp.run("task", "list", "--task-group", str(uuid.uuid4()), check=False)
    assert grouped.returncode == 1
    assert "Parameter 'task_group' not available for 'tasks_list'" in grouped.stderr


@pytest.mark.slow
def test_labels_through_pulp_cli(
    upstream: Upstream, gunicorn_server: Callable[..., Server], tmp_path: Path
) -> None:
    """`label set/show/unset`, `create --labels` and `list --label-select` on repositories,
    remotes and distributions, as in Pulp's "Manage Labels" guide; refusals print our 400.
    Labels on content, set and selected."""
    server, pulp = pulp_cli_server(gunicorn_server, upstream, tmp_path)
    BASE[0] = server.url
    creates = {
        "repository": ("create",),
        "remote": ("create", "--url", upstream.index_url),
        "distribution": ("create", "--base-path", "{name}"),
    }

    def selected(noun: str, selector: str) -> list[str]:
        """The names listed, but the config file's remote and distribution (no labels)."""
        found = pulp.json_list("python", noun, "list", "--label-select", selector)
        return sorted(item["name"] for item in found if item["name"].startswith(noun))

    for noun, create in creates.items():
        made = {}
        for name, labels in (("a", {"env": "prod", "team": "Core Infra"}), ("b", {"env": "dev"})):
            args = [arg.format(name=f"{noun}-{name}") for arg in create]
            made[name] = pulp.json_object(
                "python", noun, *args, "--name", f"{noun}-{name}", "--labels", json.dumps(labels)
            )
            assert made[name]["pulp_labels"] == labels
        args = [arg.format(name=f"{noun}-c") for arg in create]
        pulp.run("python", noun, *args, "--name", f"{noun}-c")
        on_a = (f"--{noun}", f"{noun}-a")

        pulp.run("python", noun, "label", "set", *on_a, "--key", "tier", "--value", "gold")
        pulp.run("python", noun, "label", "set", *on_a, "--key", "env", "--value", "staging")
        shown = pulp.run("python", noun, "label", "show", *on_a, "--key", "tier").stdout
        assert shown == "gold\n"
        labels = api_get(made["a"]["pulp_href"])["pulp_labels"]
        assert labels == {"env": "staging", "team": "Core Infra", "tier": "gold"}
        pulp.run("python", noun, "label", "unset", *on_a, "--key", "tier")
        gone = pulp.run("python", noun, "label", "show", *on_a, "--key", "tier", check=False)
        assert gone.returncode == 1 and "Could not find label with key 'tier'" in gone.stderr
        assert api_get(made["a"]["pulp_href"])["pulp_labels"] == {
            "env": "staging",
            "team": "Core Infra",
        }

        assert selected(noun, "env") == [f"{noun}-a", f"{noun}-b"]
        assert selected(noun, "!env") == [f"{noun}-c"]
        assert selected(noun, "env=dev") == [f"{noun}-b"]
        assert selected(noun, "env!=dev") == [f"{noun}-a"]
        assert selected(noun, "team~infra,env") == [f"{noun}-a"]

        bad_key = pulp.run(
            "python", noun, "label", "set", *on_a, "--key", "a/b", "--value", "x", check=False
        )
        assert bad_key.returncode == 1
        assert (
            'Error: {"non_field_errors": ["Key \'a/b\' contains invalid characters. Only'
            in bad_key.stderr
        )
        bad_select = pulp.run("python", noun, "list", "--label-select", "=x", check=False)
        assert bad_select.returncode == 1
        assert 'Error: {"pulp_label_select": ["Invalid search term: \'=x\'."]}' in bad_select.stderr
        unset = pulp.run("python", noun, "label", "unset", *on_a, "--key", "nope", check=False)
        assert unset.returncode == 1
        assert 'Error: {"key": ["Label \'nope\' is not set on the object."]}' in unset.stderr

    # Content too (core >= 3.73.2): by href, and its list's --label-select.
    content: dict[str, str] = {}
    for name in ("acme-one", "acme-two"):
        wheel = build_wheel(tmp_path / "w", name, "1.0")
        uploaded = pulp.json_object(
            "python", "content", "upload", "--file", str(wheel), "--relative-path", wheel.name
        )
        assert uploaded["pulp_labels"] == {}
        content[name] = uploaded["pulp_href"]
    on_one = ("--href", content["acme-one"])
    pulp.run("python", "content", "label", "set", *on_one, "--key", "reviewed", "--value", "yes")
    pulp.run("python", "content", "label", "set", *on_one, "--key", "owner", "--value", "qa")
    assert pulp.run("python", "content", "label", "show", *on_one, "--key", "owner").stdout == (
        "qa\n"
    )
    pulp.run("python", "content", "label", "unset", *on_one, "--key", "owner")
    assert api_get(content["acme-one"])["pulp_labels"] == {"reviewed": "yes"}
    for selector, expected in (("reviewed=yes", ["acme-one"]), ("!reviewed", ["acme-two"])):
        found = pulp.json_list("python", "content", "list", "--label-select", selector)
        assert [c["name"] for c in found] == expected, selector

    # Written down as every write is: who set which label on what.
    trail = api_get("/pulp/api/v3/audit/?action=distributions_python_pypi_set_label")
    assert [(e["actor"], e["detail"]) for e in trail["results"]] == [
        ("admin", {"key": "env", "value": "staging"}),
        ("admin", {"key": "tier", "value": "gold"}),
    ]


@pytest.mark.slow
def test_the_lists_of_every_type_through_pulp_cli(
    upstream: Upstream, gunicorn_server: Callable[..., Server], tmp_path: Path
) -> None:
    """`pulp repository list`, `remote list`, `distribution list`, `publication list`,
    `content list` and `repository version list` read Pulp core's lists of every type: the
    python plugin's objects, as `pulp python <noun> list` shows them, filtered as asked."""
    _server, pulp = pulp_cli_server(gunicorn_server, upstream, tmp_path)
    for name in ("x-one", "x-two", "other"):
        pulp.run("python", "repository", "create", "--name", name)
    pulp.run("python", "remote", "create", "--name", "bar", "--url", upstream.index_url)
    wheel = build_wheel(tmp_path / "w", "acme-tools", "1.0")
    pulp.run(
        "python", "content", "upload", "--file", str(wheel), "--relative-path", wheel.name,
        "--repository", "x-one",
    )  # fmt: skip
    publication = pulp.json_object("python", "publication", "create", "--repository", "x-one")
    pulp.run(
        "python", "distribution", "create", "--name", "x-dist", "--base-path", "x-dist",
        "--repository", "x-one",
    )  # fmt: skip

    for noun in ("repository", "remote", "distribution", "publication", "content"):
        every = pulp.json_list(noun, "list")
        assert every and every == pulp.json_list("python", noun, "list"), noun

    def names(*args: str) -> list[str]:
        return [o["name"] for o in pulp.json_list(*args)]

    assert names("repository", "list") == ["other", "x-one", "x-two"]
    assert names("repository", "list", "--name-contains", "x-") == ["x-one", "x-two"]
    assert names("repository", "list", "--name-icontains", "X-T") == ["x-two"]
    assert names("repository", "list", "--name-in", "x-two", "--name-in", "other") == [
        "other",
        "x-two",
    ]
    assert names("repository", "list", "--name", "other") == ["other"]
    assert names("repository", "list", "--name-contains", "nothing") == []
    newest = pulp.json_list("repository", "list", "--ordering", "-pulp_created", "--limit", "1")
    assert [r["name"] for r in newest] == ["other"]
    assert names("remote", "list") == ["bar", "up"]  # `up` is the config file's
    assert names("remote", "list", "--name", "bar") == ["bar"]
    assert names("remote", "list", "--updated-before", "2000-01-01") == []
    assert names("distribution", "list", "--base-path-contains", "x-") == ["x-dist"]
    assert names("distribution", "list", "--base-path", "main") == ["main"]

    published = pulp.json_list("publication", "list", "--repository", "python:python:x-one")
    assert [p["pulp_href"] for p in published] == [publication["pulp_href"]]
    version = publication["repository_version"]
    assert pulp.json_list("publication", "list", "--repository-version", version) == published
    assert pulp.json_list("publication", "list", "--repository", "python:python:x-two") == []
    assert pulp.json_list("publication", "list", "--created-after", "2999-01-01") == []

    (content,) = pulp.json_list("content", "list")
    assert content["filename"] == wheel.name
    assert pulp.json_list("content", "list", "--offset", "1") == []

    versions = pulp.json_list("repository", "version", "list")
    assert sorted(v["pulp_href"] for v in versions) == sorted(
        [version, *(r["versions_href"] + "0/" for r in pulp.json_list("repository", "list"))]
    )


@pytest.mark.slow
def test_every_filter_of_pulp_cli_content_list(
    upstream: Upstream, gunicorn_server: Callable[..., Server], tmp_path: Path
) -> None:
    """Each filter `pulp python content list` offers selects as Pulp's python plugin does
    (names compared normalized); versions compare as PEP 440 versions (10.0 after 9.0, a
    pre-release before its release), not as text."""
    _server, pulp = pulp_cli_server(gunicorn_server, upstream, tmp_path)
    pulp.run("python", "repository", "create", "--name", "foo")
    made = {
        "9.0": build_wheel(tmp_path / "w", "acme-tools", "9.0", author="Ada Lovelace"),
        "10.0": build_wheel(tmp_path / "w", "acme-tools", "10.0", author="Ada Lovelace"),
        "10.1rc1": build_wheel(tmp_path / "w", "acme-tools", "10.1rc1", author="Grace Hopper"),
        "sdist": build_sdist(tmp_path / "w", "other-lib", "10.1"),
    }
    for path in made.values():
        pulp.run("python", "content", "upload", "--file", str(path), "--relative-path",
                 path.name, "--repository", "foo")  # fmt: skip
    names = {key: path.name for key, path in made.items()}

    def listed(*options: str) -> list[str]:
        found = pulp.json_list("python", "content", "list", *options)
        return [names_by_file[c["filename"]] for c in found]

    names_by_file = {name: key for key, name in names.items()}
    assert sorted(listed()) == sorted(names)
    assert sorted(listed("--author", "Ada Lovelace")) == ["10.0", "9.0"]
    assert listed("--author-contains", "Hopper") == ["10.1rc1"]
    assert listed("--author", "Nobody") == []
    assert sorted(listed("--version-gte", "10.0")) == ["10.0", "10.1rc1", "sdist"]
    assert sorted(listed("--version-lte", "10.0")) == ["10.0", "9.0"]
    assert listed("--version-gte", "10.1a1", "--version-lte", "10.1rc1") == ["10.1rc1"]
    assert listed("--version", "10.0") == ["10.0"]
    assert sorted(listed("--name", "ACME_Tools")) == ["10.0", "10.1rc1", "9.0"]
    assert listed("--name-in", "Other.Lib") == ["sdist"]
    assert listed("--name-contains", "other") == ["sdist"]
    assert listed("--packagetype", "sdist") == ["sdist"]
    assert len(listed("--packagetype-in", "sdist", "--packagetype-in", "bdist_wheel")) == 4
    assert listed("--filename", names["9.0"]) == ["9.0"]
    assert listed("--filename-contains", "rc1") == ["10.1rc1"]
    assert listed("--sha256", sha256_of(made["10.0"])) == ["10.0"]
    version = pulp.json_object("python", "repository", "version", "show", "--repository", "foo",
                               "--version", "1")  # fmt: skip
    assert listed("--repository-version", version["pulp_href"]) == ["9.0"]
    assert listed("--repository-version-added", version["pulp_href"]) == ["9.0"]
    assert listed("--repository-version-removed", version["pulp_href"]) == []

    bad = pulp.run("python", "content", "list", "--version-gte", "not a version", check=False)
    assert bad.returncode == 1 and "version__gte" in bad.stderr, bad.stderr


def workers_online(pulp: Pulp, count: int) -> list[dict[str, Any]]:
    """`pulp worker list --online` once `count` workers have heartbeat (they start with the
    server's processes)."""
    found: list[list[dict[str, Any]]] = []

    def enough() -> bool:
        found[:] = [pulp.json_list("worker", "list", "--online")]
        return len(found[0]) == count

    assert wait_until(enough, 20), found
    return found[0]


@pytest.mark.slow
def test_pulp_worker_list_shows_the_task_workers_with_their_heartbeats(
    upstream: Upstream, gunicorn_server: Callable[..., Server], tmp_path: Path
) -> None:
    """Under gunicorn each process runs a task worker: `pulp worker list` shows both, alive,
    `pulp worker show` each of them by name or href, and `pulp task list --worker` the tasks
    each one ran."""
    _server, pulp = pulp_cli_server(
        gunicorn_server, upstream, tmp_path, extra='[tasks]\nheartbeat = "1s"\n'
    )
    workers = workers_online(pulp, 2)
    time.sleep(2.5)  # a heartbeat a second
    later = pulp.json_list("worker", "list")
    assert names_of(later) == names_of(workers)
    for before, after in zip(workers, later, strict=True):
        assert after["last_heartbeat"] > before["last_heartbeat"], (before, after)
        assert after["pulp_created"] == before["pulp_created"]
    assert pulp.json_list("worker", "list", "--missing") == []
    assert pulp.json_list("worker", "list", "--not-online") == []
    for worker in workers:
        assert set(worker) >= {"pulp_href", "pulp_created", "name", "last_heartbeat"}
        assert worker["current_task"] is None
        assert worker["pulp_href"].startswith("/pulp/api/v3/workers/")
        heartbeat = datetime.fromisoformat(worker["last_heartbeat"])
        assert abs((datetime.now(UTC) - heartbeat).total_seconds()) < 30
        shown = pulp.json_object("worker", "show", "--name", worker["name"])
        assert shown["pulp_href"] == worker["pulp_href"]
        by_href = pulp.json_object("worker", "show", "--href", worker["pulp_href"])
        assert (by_href["name"], by_href["pulp_href"]) == (worker["name"], worker["pulp_href"])
        assert names_of(pulp.json_list("worker", "list", "--name", worker["name"])) == [
            worker["name"]
        ]
    # queued tasks go to either worker: `task list --worker` tells them apart
    ran = [pulp.json_object("orphan", "cleanup", "--protection-time", "0") for _ in range(4)]
    assert {t["worker"] for t in ran} <= {w["pulp_href"] for w in workers}, ran
    for worker in workers:
        own = sorted(t["pulp_href"] for t in ran if t["worker"] == worker["pulp_href"])
        listed = pulp.json_list("task", "list", "--worker", worker["name"])
        assert sorted(t["pulp_href"] for t in listed) == own, worker
    first = workers[0]["name"]
    assert first in names_of(pulp.json_list("worker", "list", "--name-contains", first[-3:]))
    assert pulp.json_list("worker", "list", "--name-icontains", "no-such-worker") == []
    unknown = pulp.run("worker", "show", "--name", "no-such-worker", check=False)
    assert unknown.returncode == 1 and "Could not find" in unknown.stderr


def names_of(objects: list[dict[str, Any]]) -> list[str]:
    return [o["name"] for o in objects]


@pytest.mark.slow
def test_pulp_task_list_by_worker_gives_the_tasks_that_worker_ran(
    upstream: Upstream, gunicorn_server: Callable[..., Server], tmp_path: Path
) -> None:
    """With the server's own workers off, a `pullthrough worker` process runs the queued tasks:
    `pulp task list --worker <its name or href>` lists exactly those; when it has stopped, it
    shows as missing."""
    text = (
        config_text(upstream.index_url, tmp_path / "data").replace(
            "[server]\n", "[server]\nembedded_worker = false\n"
        )
        + f'[auth]\nadmin_password = "{PASSWORD}"\n'
        + '[tasks]\nheartbeat = "0.5s"\nworker_timeout = "5s"\n'
    )
    server = gunicorn_server(text)
    config = tmp_path / "worker.toml"
    config.write_text(text)
    pulp = Pulp(server.url, tmp_path)
    pulp.run("python", "distribution", "create", "--name", "d", "--base-path", "d")
    assert pulp.json_list("worker", "list") == []

    worker = subprocess.Popen(
        [sys.executable, "-m", "pullthrough.cli", "worker", "--config", str(config)],
        env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        (running,) = workers_online(pulp, 1)
        assert str(worker.pid) in running["name"]
        cleanups = [
            pulp.json_object("orphan", "cleanup", "--protection-time", "0") for _ in range(2)
        ]
    finally:
        worker.terminate()
        worker.wait(timeout=20)
    assert worker.returncode == 0
    ran = sorted(t["pulp_href"] for t in cleanups)
    assert all(t["worker"] == running["pulp_href"] for t in cleanups), cleanups

    def hrefs(*options: str) -> list[str]:
        return sorted(t["pulp_href"] for t in pulp.json_list("task", "list", *options))

    assert hrefs("--worker", running["name"]) == ran
    assert hrefs("--worker", running["pulp_href"]) == ran
    assert hrefs("--worker", running["name"], "--state", "failed") == []
    assert len(hrefs()) == len(ran) + 1  # and the distribution's creation, run by no worker
    unknown = pulp.run("task", "list", "--worker", "no-such-worker", check=False)
    assert unknown.returncode == 1 and "Could not find" in unknown.stderr

    assert wait_until(lambda: pulp.json_list("worker", "list", "--missing") != [], 20)
    assert names_of(pulp.json_list("worker", "list", "--missing")) == [running["name"]]
    assert pulp.json_list("worker", "list", "--online") == []


def test_a_repositorys_blocklist_through_pulp_cli(
    upstream: Upstream, gunicorn_server: Callable[..., Server], tmp_path: Path
) -> None:
    """Pulp's package policies guide, run with the real pulp-cli: `repository blocklist add`,
    `list`, `show`, `remove`, and an upload of a blocked wheel refused."""
    server, pulp = pulp_cli_server(gunicorn_server, upstream, tmp_path)
    repo = pulp.json_object("python", "repository", "create", "--name", "foo")
    assert repo["error_on_reject"] is True
    blocklist = ("python", "repository", "blocklist")
    by_name = pulp.json_object(*blocklist, "add", "--repository", "foo", "--name", "Shelf_Reader")
    assert (by_name["name"], by_name["version"], by_name["filename"]) == (
        "shelf-reader", None, None
    )  # fmt: skip
    pinned = pulp.json_object(
        *blocklist, "add", "--repository", "foo", "--name", "django", "--version", "2.0.1"
    )
    by_file = pulp.json_object(
        *blocklist, "add", "--repository", "foo", "--filename", "x-1.0.tar.gz"
    )
    assert by_name["pulp_href"].startswith(repo["pulp_href"] + "blocklist_entries/")
    listed = pulp.json_list(*blocklist, "list", "--repository", "foo")
    assert [e["pulp_href"] for e in listed] == [
        by_file["pulp_href"], pinned["pulp_href"], by_name["pulp_href"]
    ]  # fmt: skip
    shown = pulp.json_object(*blocklist, "show", "--repository", "foo", "--name", "shelf-reader")
    assert shown == by_name  # the entry for every version, not django's pinned one
    shown = pulp.json_object(
        *blocklist, "show", "--repository", "foo", "--name", "django", "--version", "2.0.1"
    )
    assert shown["pulp_href"] == pinned["pulp_href"]
    shown = pulp.json_object(
        *blocklist, "show", "--repository", "foo", "--filename", "x-1.0.tar.gz"
    )
    assert shown["pulp_href"] == by_file["pulp_href"]
    duplicate = pulp.run(*blocklist, "add", "--repository", "foo", "--filename", "x-1.0.tar.gz",
                         check=False)  # fmt: skip
    assert duplicate.returncode == 1
    assert "A blocklist entry with this filename already exists." in duplicate.stderr

    wheel = build_wheel(tmp_path / "w", "shelf-reader", "9.0")
    refused = pulp.run(
        "python", "content", "upload", "--repository", "foo", "--file", str(wheel),
        "--relative-path", wheel.name, check=False,
    )  # fmt: skip
    assert refused.returncode == 1
    assert (
        f"Blocklisted packages cannot be added to this repository: {wheel.name}" in refused.stderr
    ), refused.stderr
    assert api_get_at(server, repo["pulp_href"])["latest_version_href"].endswith("/versions/0/")

    pulp.run(*blocklist, "remove", "--repository", "foo", "--name", "shelf-reader")
    gone = pulp.run(*blocklist, "show", "--repository", "foo", "--name", "shelf-reader",
                    check=False)  # fmt: skip
    assert gone.returncode == 1 and "Could not find" in gone.stderr
    assert len(pulp.json_list(*blocklist, "list", "--repository", "foo")) == 2
    pulp.run(
        "python", "content", "upload", "--repository", "foo", "--file", str(wheel),
        "--relative-path", wheel.name,
    )  # fmt: skip
    assert api_get_at(server, repo["pulp_href"])["latest_version_href"].endswith("/versions/1/")


def api_get_at(server: Server, href: str) -> dict[str, Any]:
    resp = requests.get(server.url + href, auth=AUTH, timeout=30)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def test_a_remote_with_every_option_through_pulp_cli(
    upstream: Upstream, gunicorn_server: Callable[..., Server], tmp_path: Path
) -> None:
    """`pulp python remote create` and `update` with every option pulp-cli has; an option given
    empty (`--connect-timeout ""`: pulp-cli sends null) puts the default back and is shown
    null, as in Pulp, where every timeout and `max_retries` may be null."""
    _server, pulp = pulp_cli_server(gunicorn_server, upstream, tmp_path)
    created = pulp.json_object(
        "python", "remote", "create", "--name", "full", "--url", upstream.index_url,
        "--username", "u", "--password", "pw", "--proxy-url", "http://127.0.0.1:3128",
        "--proxy-username", "pu", "--proxy-password", "pp", "--connect-timeout", "5.5",
        "--download-concurrency", "3", "--rate-limit", "7", "--sock-connect-timeout", "2",
        "--sock-read-timeout", "4", "--tls-validation", "false", "--total-timeout", "60",
        "--max-retries", "2", "--header", "X-A: b", "--policy", "immediate",
        "--prereleases", "false", "--keep-latest-packages", "2", "--labels", '{"env": "qa"}',
    )  # fmt: skip
    assert {k: created[k] for k in ("connect_timeout", "sock_read_timeout", "max_retries")} == {
        "connect_timeout": 5.5,
        "sock_read_timeout": 4.0,
        "max_retries": 2,
    }
    assert (created["policy"], created["tls_validation"], created["rate_limit"]) == (
        "immediate", False, 7
    )  # fmt: skip
    assert {f["name"]: f["is_set"] for f in created["hidden_fields"]} == {
        "username": True, "password": True, "proxy_username": True, "proxy_password": True,
        "client_key": False,
    }  # fmt: skip
    for option in (
        "--connect-timeout", "--sock-read-timeout", "--max-retries", "--sock-connect-timeout",
        "--total-timeout", "--download-concurrency", "--rate-limit", "--proxy-url",
        "--username", "--password", "--proxy-username", "--proxy-password",
    ):  # fmt: skip
        pulp.run("python", "remote", "update", "--name", "full", option, "")
    shown = pulp.json_object("python", "remote", "show", "--name", "full")
    for key in ("connect_timeout", "sock_read_timeout", "max_retries", "sock_connect_timeout", "total_timeout", "download_concurrency", "rate_limit",
                "proxy_url"):  # fmt: skip
        assert shown[key] is None, key
    assert not any(f["is_set"] for f in shown["hidden_fields"]), shown["hidden_fields"]
    pulp.run(
        "python", "remote", "update", "--name", "full", "--policy", "streamed",
        "--tls-validation", "true", "--includes", '["django"]', "--excludes", '["flask"]',
        "--package-types", '["sdist"]', "--exclude-platforms", '["linux", "macos"]',
        "--keep-latest-packages", "0", "--prereleases", "true", "--connect-timeout", "1",
    )  # fmt: skip
    shown = pulp.json_object("python", "remote", "show", "--name", "full")
    assert (shown["policy"], shown["tls_validation"], shown["prereleases"]) == (
        "streamed", True, True
    )  # fmt: skip
    assert (shown["includes"], shown["excludes"], shown["package_types"]) == (
        ["django"], ["flask"], ["sdist"]
    )  # fmt: skip
    assert (shown["exclude_platforms"], shown["keep_latest_packages"]) == (["linux", "macos"], 0)
    assert (shown["connect_timeout"], shown["pulp_labels"]) == (1.0, {"env": "qa"})


def test_pulp_task_purge_removes_the_records_of_finished_tasks(
    upstream: Upstream, gunicorn_server: Callable[..., Server], tmp_path: Path
) -> None:
    """`pulp task purge` (`--finished-before`, `--state`), as Pulp's: a task that deletes the
    records of the tasks in those final states (default: completed) finished before then
    (default: 30 days ago)."""
    server, pulp = pulp_cli_server(gunicorn_server, upstream, tmp_path)
    pulp.run("python", "distribution", "create", "--name", "d", "--base-path", "d")
    pulp.run("python", "repository", "create", "--name", "r")
    pulp.run("python", "repository", "update", "--name", "r", "--description", "changed")

    def names() -> list[str]:
        return sorted(t["name"].rsplit(".", 1)[1] for t in pulp.json_list("task", "list"))

    assert names() == ["create", "update"]
    pulp.run("task", "purge")  # nothing is 30 days old
    pulp.run("task", "purge", "--finished-before", "2000-01-01")
    pulp.run("task", "purge", "--state", "failed", "--finished-before", "2999-01-01")
    assert names() == ["create", "purge", "purge", "purge", "update"]
    pulp.run("task", "purge", "--state", "completed", "--finished-before", "2999-01-01")
    (last,) = pulp.json_list("task", "list")
    assert last["name"] == "pullthrough.tasks.purge" and last["state"] == "completed"
    (total, *_) = last["progress_reports"]
    assert (total["code"], total["done"]) == ("purge.tasks.total", 5)
    resp = requests.post(
        server.url + "/pulp/api/v3/tasks/purge/", json={"states": ["running"]}, auth=AUTH,
        timeout=30,
    )  # fmt: skip
    assert resp.status_code == 400 and "states" in resp.json(), resp.text
    resp = requests.post(
        server.url + "/pulp/api/v3/tasks/purge/", auth=AUTH, timeout=30,
        json={"finished_before": "0001-01-01T00:00:00+14:00"},
    )  # fmt: skip
    assert resp.status_code == 400 and "finished_before" in resp.json(), resp.text


ID = "0190f5a0-0000-7000-8000-000000000000"  # a plausible object's id in an href
UNSUPPORTED_COMMANDS = [
    ("user", "list"), ("user", "show", "--username", "x"), ("user", "create", "--username", "x"),
    ("group", "list"), ("role", "list"), ("access-policy", "list"), ("domain", "list"),
    ("content-guard", "list"), ("content-guard", "rbac", "create", "--name", "x"),
    ("signing-service", "list"), ("importer", "pulp", "list"), ("exporter", "pulp", "list"),
    ("task-group", "list"), ("upstream-pulp", "list"), ("vulnerability-report", "list"),
    # by href: pulp-cli reads the object first
    ("user", "show", "--href", "/pulp/api/v3/users/1/"),
    ("user", "update", "--href", "/pulp/api/v3/users/1/", "--first-name", "y"),
    ("group", "destroy", "--href", "/pulp/api/v3/groups/1/"),
    ("group", "role", "list", "--href", "/pulp/api/v3/groups/1/"),
    ("role", "update", "--href", f"/pulp/api/v3/roles/{ID}/", "--description", "d"),
    ("access-policy", "reset", "--href", f"/pulp/api/v3/access_policies/{ID}/"),
    ("domain", "destroy", "--href", f"/pulp/api/v3/domains/{ID}/"),
    ("content-guard", "rbac", "show", "--href", f"/pulp/api/v3/contentguards/core/rbac/{ID}/"),
    ("content-guard", "rbac", "assign", "--href", f"/pulp/api/v3/contentguards/core/rbac/{ID}/",
     "--user", "u"),
    ("content-guard", "header", "update", "--href",
     f"/pulp/api/v3/contentguards/core/header/{ID}/", "--description", "d"),
    ("content-guard", "composite", "destroy", "--href",
     f"/pulp/api/v3/contentguards/core/composite/{ID}/"),
    ("content-guard", "redirect", "show", "--href",
     f"/pulp/api/v3/contentguards/core/content_redirect/{ID}/"),
    ("signing-service", "show", "--href", f"/pulp/api/v3/signing-services/{ID}/"),
    ("importer", "pulp", "destroy", "--href", f"/pulp/api/v3/importers/core/pulp/{ID}/"),
    ("exporter", "pulp", "update", "--href", f"/pulp/api/v3/exporters/core/pulp/{ID}/",
     "--path", "/tmp/x"),
    ("export", "pulp", "show", "--href", f"/pulp/api/v3/exporters/core/pulp/{ID}/exports/{ID}/"),
    ("task-group", "show", "--uuid", ID),
    ("upstream-pulp", "replicate", "--upstream-pulp", f"/pulp/api/v3/upstream-pulps/{ID}/"),
    ("vulnerability-report", "show", "--href", f"/pulp/api/v3/vuln_report/{ID}/"),
    # actions this server lacks on what it has (repository `r`, the task that made `d`)
    ("task", "role", "list", "--href", "{task}"),
    ("task", "role", "my-permissions", "--href", "{task}"),
    ("task", "role", "add", "--href", "{task}", "--role", "core.task_owner", "--user", "u"),
    ("task", "profile-artifact-urls", "--href", "{task}"),
    ("repository", "reclaim", "--all"),
    ("python", "repository", "repair-metadata", "--name", "r"),
    ("python", "repository", "version", "scan", "--repository", "r", "--version", "0"),
]  # fmt: skip


def test_pulp_cli_commands_for_what_is_not_offered_end_in_one_clear_error(
    upstream: Upstream, gunicorn_server: Callable[..., Server], tmp_path: Path
) -> None:
    """Pulp core's nouns this server does not have (users, roles, domains, content guards,
    task groups, ...): pulp-cli ended in a `KeyError: 'users_list'` traceback, as the API
    document lacked the operation; now one line says it is not supported, and exit status 1.
    So do `show`, `update`, `destroy` and the rest by href, which read the object first (they
    ended in `KeyError: 'users_read'`). And the actions Pulp has on what this server has that
    it lacks (task roles, reclaim, repair-metadata, scan: `KeyError: 'tasks_list_roles'`)."""
    _server, pulp = pulp_cli_server(gunicorn_server, upstream, tmp_path)
    pulp.run("python", "repository", "create", "--name", "r")
    made = pulp.run("python", "distribution", "create", "--name", "d", "--base-path", "d")
    task = made.stderr.split("Started background task ")[1].split()[0]
    commands = [[arg.format(task=task) for arg in command] for command in UNSUPPORTED_COMMANDS]
    with ThreadPoolExecutor(4) as pool:  # (the API document is in the cache by now)
        procs = list(pool.map(lambda command: pulp.run(*command, check=False), commands))
    for command, proc in zip(commands, procs, strict=True):
        out = proc.stdout + proc.stderr
        assert "Traceback" not in out, (command, out)
        assert proc.returncode == 1, (command, out)
        assert out.startswith('Error: {"detail": "Not supported by pullthrough: '), (command, out)
        assert len(out.strip().splitlines()) == 1, (command, out)


def test_remote_provenance_is_refused_not_ignored_through_pulp_cli(
    upstream: Upstream, gunicorn_server: Callable[..., Server], tmp_path: Path
) -> None:
    """`--provenance` (Pulp: sync the packages' PEP 740 provenance) was accepted and dropped, so
    a sync silently fetched none; the catalog keeps no provenance, so it is a 400 that says so.
    `--no-provenance` is what this server does, and is shown."""
    _server, pulp = pulp_cli_server(gunicorn_server, upstream, tmp_path)
    url = upstream.index_url
    refused = pulp.run(
        "python", "remote", "create", "--name", "p", "--url", url, "--provenance", check=False
    )
    assert refused.returncode == 1, refused.stdout
    assert '{"provenance": ["Not supported by pullthrough: a sync fetches no PEP 740' in (
        refused.stderr
    )
    assert "p" not in {r["name"] for r in pulp.json_list("python", "remote", "list")}
    remote = pulp.json_object(
        "python", "remote", "create", "--name", "p", "--url", url, "--no-provenance"
    )
    assert remote["provenance"] is False
    refused = pulp.run("python", "remote", "update", "--name", "p", "--provenance", check=False)
    assert refused.returncode == 1 and "PEP 740" in refused.stderr, refused.stderr
    assert pulp.json_object("python", "remote", "show", "--name", "p")["provenance"] is False


def test_content_with_attestations_or_a_file_url_is_refused_not_ignored_through_pulp_cli(
    upstream: Upstream, gunicorn_server: Callable[..., Server], tmp_path: Path
) -> None:
    """`pulp python content upload --attestation ...` (and `content create`: the same REST
    endpoint) sends the file's PEP 740 attestations, which this index does not keep. The
    legacy upload refuses them (89618c2); the REST upload took the file and dropped them
    unseen. It is a 400 that says so, and nothing is kept. So is `content create --file-url`."""
    _server, pulp = pulp_cli_server(gunicorn_server, upstream, tmp_path)
    pulp.run("python", "repository", "create", "--name", "att")
    wheel = build_wheel(tmp_path / "w", "attested", "1.0")
    attestation = json.dumps({"version": 1, "verification_material": {}, "envelope": {}})
    for verb in ("upload", "create"):
        refused = pulp.run(
            "python", "content", verb, "--file", str(wheel), "--relative-path", wheel.name,
            "--repository", "att", "--attestation", attestation, check=False,
        )  # fmt: skip
        assert refused.returncode == 1, (verb, refused.stdout)
        assert "Attestations (PEP 740) are not kept by this index" in refused.stderr, (
            verb,
            refused.stderr,
        )
    assert pulp.json_list("python", "content", "list", "--filename", wheel.name) == []
    repo = pulp.json_object("python", "repository", "show", "--name", "att")
    assert repo["latest_version_href"].endswith("/versions/0/")
    # `content create --file-url` (Pulp downloads the file from there): it was dropped unseen,
    # and the refusal said to give a file, an upload or an artifact, as if none had been given
    refused = pulp.run(
        "python", "content", "create", "--relative-path", wheel.name, "--repository", "att",
        "--file-url", f"{upstream.files_root_url}{wheel.name}", check=False,
    )  # fmt: skip
    assert refused.returncode == 1, refused.stdout
    assert '{"file_url": ["Not supported by pullthrough: it downloads no file for' in (
        refused.stderr
    ), refused.stderr


def test_names_longer_than_the_catalog_keeps_are_refused_through_pulp_cli(
    upstream: Upstream, postgres_url: str, live_server: Callable[..., Server], tmp_path: Path
) -> None:
    """A name or base path of more than 255 characters (what the catalog's columns hold, and
    Pulp's limit) was a 500 on PostgreSQL, which refuses to store it; it is a 400 that says so,
    as Pulp's."""
    with private_database(postgres_url) as database:
        text = config_text(upstream.index_url, tmp_path / "data")
        text = text.replace("[server]\n", f'[server]\ndatabase_url = "{database}"\n', 1)
        pulp = Pulp(live_server(with_auth(text)).url, tmp_path)
        long = "x" * 256
        commands = [
            ("python", "repository", "create", "--name", long),
            ("python", "remote", "create", "--name", long, "--url", upstream.index_url),
            ("python", "distribution", "create", "--name", "d", "--base-path", long),
        ]
        with ThreadPoolExecutor(3) as pool:
            procs = list(pool.map(lambda command: pulp.run(*command, check=False), commands))
        for command, proc in zip(commands, procs, strict=True):
            assert proc.returncode == 1, (command[:3], proc.stdout)
            assert "Ensure this field has no more than 255 characters." in proc.stderr, (
                command[:3],
                proc.stderr,
            )
        assert pulp.json_list("python", "repository", "list") == []
        pulp.run("python", "repository", "create", "--name", "x" * 255)


def test_names_and_base_paths_are_trimmed_as_pulp_trims_them_through_pulp_cli(
    upstream: Upstream, live_server: Callable[..., Server], tmp_path: Path
) -> None:
    """Pulp's text fields are DRF CharFields, which trim leading and trailing whitespace, and
    its filters django's, which trim too: `--name " padded "` makes, and finds, `padded`; a
    base path given with spaces is served without them. Passwords are kept as given (Pulp
    declares them untrimmed)."""
    text = with_auth(config_text(upstream.index_url, tmp_path / "data"))
    server = live_server(text)
    pulp = Pulp(server.url, tmp_path)
    BASE[0] = server.url
    repo = pulp.json_object("python", "repository", "create", "--name", " padded ")
    assert repo["name"] == "padded"
    assert pulp.json_object("python", "repository", "show", "--name", " padded ")["name"] == (
        "padded"
    )
    dist = pulp.json_object(
        "python", "distribution", "create", "--name", "\tdist ", "--base-path", " team/dist ",
        "--repository", "padded",
    )  # fmt: skip
    assert (dist["name"], dist["base_path"]) == ("dist", "team/dist")
    assert requests.get(f"{server.url}/pypi/team/dist/simple/", timeout=30).status_code == 200
    remote = pulp.json_object(
        "python", "remote", "create", "--name", "r ", "--url", f" {upstream.index_url} ",
        "--password", " secret ",
    )  # fmt: skip
    assert (remote["name"], remote["url"]) == ("r", upstream.index_url)
    blank = pulp.run("python", "repository", "create", "--name", "   ", check=False)
    assert blank.returncode == 1 and "This field may not be blank." in blank.stderr, blank.stderr
    again = pulp.run("python", "repository", "create", "--name", "padded  ", check=False)
    assert again.returncode == 1 and "must be unique" in again.stderr, again.stderr


def test_a_remote_certificate_that_is_no_pem_certificate_is_refused_through_pulp_cli(
    upstream: Upstream, live_server: Callable[..., Server], tmp_path: Path
) -> None:
    """`--ca-cert` and `--client-cert` are checked as Pulp checks them (its
    RemoteSerializer._validate_certificate): text with no PEM certificate, or one whose body is
    no X.509 certificate, is a 400 naming the field when the remote is made or changed, not a
    sync that fails later. Real certificates are kept."""
    server = live_server(with_auth(config_text(upstream.index_url, tmp_path / "data")))
    pulp = Pulp(server.url, tmp_path)
    ca = trustme.CA()
    good = ca.cert_pem.bytes().decode()
    (tmp_path / "ca.pem").write_text(good)
    damaged = good.replace(good.splitlines()[3], "A" * len(good.splitlines()[3]))
    pulp.run("python", "remote", "create", "--name", "r", "--url", upstream.index_url)
    for option, bad, verb in (
        ("--ca-cert", "not a certificate", "create"),
        ("--ca-cert", damaged, "create"),
        ("--ca-cert", damaged, "update"),
        ("--client-cert", damaged, "create"),
    ):
        field = option.removeprefix("--").replace("-", "_")
        made = pulp.run(
            "python", "remote", verb, "--name", "r" if verb == "update" else "new",
            "--url", upstream.index_url, option, bad, check=False,
        )  # fmt: skip
        assert made.returncode == 1, (option, verb, made.stdout)
        assert f'{{"{field}": ["' in made.stderr and "certificate" in made.stderr, made.stderr
    assert [r["name"] for r in pulp.json_list("python", "remote", "list")] == ["r", "up"]
    assert pulp.json_object("python", "remote", "show", "--name", "r")["ca_cert"] is None
    pulp.run("python", "remote", "update", "--name", "r", "--ca-cert", f"@{tmp_path / 'ca.pem'}")
    trusted = pulp.json_object("python", "remote", "show", "--name", "r")
    assert trusted["ca_cert"].strip() == good.strip()
