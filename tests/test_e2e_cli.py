"""The `pullthrough` API verbs (pulp-cli's), run as a subprocess against a real server: a private
index made, filled with twine, installed from with pip, changed and removed again."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import select

from pullthrough.catalog.db import Catalog, database_url, make_engine
from pullthrough.catalog.models import Distribution
from pullthrough.cli import build_parser
from pullthrough.config import load_settings
from pullthrough.services.container import build_services
from support.packages import build_sdist, build_wheel
from support.servers import Server, config_text, free_port
from support.tools import clean_env, make_venv, run_pip
from support.upstream import Upstream

pytestmark = pytest.mark.e2e

PASSWORD = "cli-test-secret"
REMOTE_PASSWORD = "upstream-secret-42"
TIMEOUT = 60  # seconds, for every subprocess


def _env(**extra: str) -> dict[str, str]:
    """clean_env() without the caller's PULLTHROUGH_* / TWINE_* settings, plus `extra`."""
    base = {k: v for k, v in clean_env().items() if not k.startswith(("PULLTHROUGH_", "TWINE_"))}
    return {**base, **extra}


@dataclass
class Cli:
    url: str
    config_home: Path  # XDG_CONFIG_HOME: keeps the user's own cli.toml out

    def run(
        self, *args: str, password: str | None = PASSWORD, url: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        extra = {"XDG_CONFIG_HOME": str(self.config_home), "PULLTHROUGH_URL": url or self.url}
        if password is not None:
            extra["PULLTHROUGH_PASSWORD"] = password
        return subprocess.run(
            [sys.executable, "-m", "pullthrough.cli", *args],
            env=_env(**extra),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            stdin=subprocess.DEVNULL,
            check=False,
        )

    def ok(self, *args: str, **kwargs: Any) -> Any:
        """Run; expect exit 0 and JSON (None for empty output)."""
        proc = self.run(*args, **kwargs)
        assert proc.returncode == 0, f"{args}: {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        return json.loads(proc.stdout) if proc.stdout.strip() else None

    def fails(self, *args: str, **kwargs: Any) -> str:
        """Run; expect exit 1 and a one-line error; return it."""
        proc = self.run(*args, **kwargs)
        assert proc.returncode == 1, f"{args}: {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        assert proc.stdout == ""
        assert "Traceback" not in proc.stderr
        assert proc.stderr.count("\n") == 1, proc.stderr
        return proc.stderr.strip()


@pytest.fixture
def cli(gunicorn_server: Callable[..., Server], tmp_path: Path) -> Cli:
    dead_upstream = f"http://127.0.0.1:{free_port()}/"  # nothing listens: refused at once
    text = (
        config_text(dead_upstream, tmp_path / "data") + f'[auth]\nadmin_password = "{PASSWORD}"\n'
    )
    server = gunicorn_server(text)
    return Cli(server.url, tmp_path / "xdg")


def twine_upload(url: str, files: list[Path]) -> None:
    cmd = [sys.executable, "-m", "twine", "upload", "--repository-url", url]
    cmd += ["-u", "admin", "-p", PASSWORD, "--non-interactive", "--disable-progress-bar"]
    proc = subprocess.run(
        cmd + [str(f) for f in files],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert proc.returncode == 0, f"twine failed\n{proc.stdout}\n{proc.stderr}"


def installed_version(venv: Path, index: str, requirement: str) -> str:
    python = make_venv(venv)
    run_pip(["install", "--index-url", index, requirement], python=python, timeout=TIMEOUT)
    check = [str(python), "-c", "import acme_tools; print(acme_tools.__version__)"]
    return subprocess.run(
        check, capture_output=True, text=True, timeout=TIMEOUT, check=True
    ).stdout.strip()


@pytest.mark.slow
def test_private_index_story(cli: Cli, tmp_path: Path) -> None:
    # a repository, and a distribution serving its latest version
    repo = cli.ok("repository", "create", "--name", "foo")
    assert repo["name"] == "foo"
    assert repo["latest_version_href"] == repo["versions_href"] + "0/"
    dist = cli.ok(
        "distribution", "create", "--name", "foo", "--base-path", "foo", "--repository", "foo"
    )
    assert (dist["name"], dist["base_path"]) == ("foo", "foo")
    assert dist["repository"] == repo["pulp_href"]
    assert dist["repository_version"] is None
    duplicate = cli.fails("repository", "create", "--name", "foo")
    assert duplicate == 'Error: {"name": ["This field must be unique."]}'

    # two releases uploaded with twine, installed with pip
    files = [build_wheel(tmp_path / "dist", "acme-tools", v) for v in ("1.0", "2.0")]
    twine_upload(f"{cli.url}/pypi/foo/legacy/", files)
    index = f"{cli.url}/pypi/foo/simple/"
    assert installed_version(tmp_path / "venv1", index, "acme-tools==1.0") == "1.0"
    assert installed_version(tmp_path / "venv2", index, "acme-tools") == "2.0"

    # one version per upload
    versions = cli.ok("repository", "version", "list", "--repository", "foo")
    assert [v["number"] for v in versions] == [2, 1, 0]
    latest = cli.ok("repository", "version", "show", "--repository", "foo")
    assert latest["number"] == 2
    assert latest["content_summary"]["present"]["python.python"]["count"] == 2
    first = cli.ok("repository", "version", "show", "--repository", "foo", "--version", "1")
    assert first["number"] == 1
    in_v1 = cli.ok("content", "list", "--repository", "foo", "--version", "1")
    assert [c["filename"] for c in in_v1] == ["acme_tools-1.0-py3-none-any.whl"]

    # the API's own upload makes version 3
    sdist = build_sdist(tmp_path / "dist", "acme-tools", "3.0")
    uploaded = cli.ok("content", "upload", "--file", str(sdist), "--repository", "foo")
    assert (uploaded["filename"], uploaded["version"]) == (sdist.name, "3.0")
    assert cli.ok("content", "show", "--href", uploaded["pulp_href"]) == uploaded
    v3 = cli.ok("repository", "version", "show", "--repository", "foo")
    assert v3["number"] == 3
    assert v3["content_summary"]["present"]["python.python"]["count"] == 3

    # an archived project (PEP 792) takes no more uploads until its status is removed
    status = cli.ok(
        "project-status",
        "create",
        "--name",
        "Acme_Tools",
        "--repository",
        repo["pulp_href"],  # an href, as the README writes it, or a name
        "--status",
        "archived",
        "--reason",
        "superseded",
    )
    assert (status["name"], status["repository"]) == ("acme-tools", repo["pulp_href"])
    late = build_wheel(tmp_path / "late", "acme-tools", "3.1")
    refused = cli.fails("content", "upload", "--file", str(late), "--repository", "foo")
    assert "archived: superseded" in refused
    assert cli.ok("project-status", "destroy", "--name", "acme-tools") is None
    assert cli.ok("project-status", "list") == []

    # a release yanked (PEP 592) and un-yanked
    release = ("--name", "acme-tools", "--repository", "foo", "--version", "2.0")
    yank = cli.ok("yank", "add", *release, "--reason", "broken")
    assert (yank["version"], yank["reason"], yank["repository"]) == (
        "2.0",
        "broken",
        repo["pulp_href"],
    )
    assert [y["pulp_href"] for y in cli.ok("yank", "list", "--repository", "foo")] == [
        yank["pulp_href"]
    ]
    assert cli.ok("yank", "list", "--distribution", "foo") == []
    assert "one of them" in cli.fails("yank", "add", "--name", "acme-tools", "--version", "2.0")
    assert cli.ok("yank", "remove", *release) is None
    assert cli.fails("yank", "remove", *release).startswith("Error: Could not find the yank")

    # ... and taking it out again, version 4
    v4 = cli.ok(
        "repository",
        "content",
        "modify",
        "--repository",
        "foo",
        "--remove-content",
        uploaded["pulp_href"],
    )
    assert v4["number"] == 4
    assert v4["content_summary"]["removed"]["python.python"]["count"] == 1
    names = cli.ok("content", "list", "--repository", "foo", "--field", "filename")
    assert sorted(c["filename"] for c in names) == [f.name for f in files]

    # a remote: includes as a JSON list; its password is never shown
    proc = cli.run(
        "remote",
        "create",
        "--name",
        "shelf",
        "--url",
        "http://127.0.0.1:9/",
        "--includes",
        '["shelf-reader"]',
        "--username",
        "reader",
        "--password",
        REMOTE_PASSWORD,
    )
    assert proc.returncode == 0, proc.stderr
    assert REMOTE_PASSWORD not in proc.stdout + proc.stderr
    remote = json.loads(proc.stdout)
    assert remote["includes"] == ["shelf-reader"]
    assert "password" not in remote
    assert {"name": "password", "is_set": True} in remote["hidden_fields"]
    shown = cli.run("remote", "show", "--name", "shelf")
    assert json.loads(shown.stdout)["includes"] == ["shelf-reader"]
    assert REMOTE_PASSWORD not in shown.stdout

    # a distribution gets the remote (by name), shown as its href
    updated = cli.ok("distribution", "update", "--name", "foo", "--remote", "shelf")
    assert updated["remote"] == remote["pulp_href"]
    assert updated["repository"] == repo["pulp_href"]
    assert cli.ok("distribution", "show", "--name", "foo")["remote"] == remote["pulp_href"]
    # several remotes, in order (`--remotes` repeated)
    second = cli.ok("remote", "create", "--name", "second", "--url", "http://127.0.0.1:9/")
    both = cli.ok("distribution", "update", "--name", "foo", "--remotes", "second",
                  "--remotes", "shelf")  # fmt: skip
    assert both["remotes"] == [second["pulp_href"], remote["pulp_href"]]
    assert both["remote"] == second["pulp_href"]
    assert cli.fails("distribution", "update", "--name", "foo", "--remotes", "nope") == (
        "Error: Could not find remote with name 'nope'."
    )
    cli.ok("remote", "destroy", "--name", "second")  # the next one becomes the first
    assert cli.ok("distribution", "show", "--name", "foo")["remotes"] == [remote["pulp_href"]]
    # in the background: the task, which `task show` finds again
    task = cli.ok("-b", "distribution", "update", "--name", "foo", "--remote", "")
    assert task["state"] == "completed"
    assert cli.ok("task", "show", "--href", task["pulp_href"])["pulp_href"] == task["pulp_href"]
    assert cli.ok("distribution", "show", "--name", "foo")["remote"] is None
    tasks = cli.ok("task", "list", "--state", "completed", "--limit", "1")
    assert [t["pulp_href"] for t in tasks] == [task["pulp_href"]]

    # lists with filters and fields
    listed = cli.ok("repository", "list", "--name-contains", "fo", "--field", "name")
    assert listed == [{"name": "foo"}]
    assert cli.ok("repository", "list", "--name", "nope") == []

    # errors: unknown names, wrong password; settings: flag > env > file
    missing = cli.fails("repository", "show", "--name", "nope")
    assert missing == "Error: Could not find repository with name 'nope'."
    denied = cli.fails("repository", "list", password="wrong")
    assert denied == "Error: Authentication failed for repositories_python_python_list."
    assert PASSWORD not in denied
    settings = tmp_path / "cli.toml"
    settings.write_text(f'[cli]\nbase_url = "{cli.url}"\npassword = "wrong"\n')
    from_file = ("--config", str(settings), "remote", "list")
    assert cli.fails(*from_file, password=None).startswith("Error: Authentication failed")
    assert cli.ok(*from_file)[0]["name"] == "shelf"  # the environment's password wins
    assert cli.ok("--password", PASSWORD, *from_file, password="wrong")[0]["name"] == "shelf"
    status = cli.ok("status", password=None)  # no login needed
    assert {v["component"] for v in status["versions"]} == {"core", "python", "pullthrough"}

    # labels, one at a time, and lists selected by them
    for kind in ("repository", "distribution"):
        added = cli.ok(kind, "label", "set", "--name", "foo", "--key", "env", "--value", "prod")
        assert added == {"key": "env", "value": "prod"}
        assert cli.ok(kind, "label", "show", "--name", "foo", "--key", "env") == "prod"
        selected = cli.ok(kind, "list", "--pulp-label-select", "env=prod")
        assert [o["name"] for o in selected] == ["foo"]
        assert cli.ok(kind, "list", "--pulp-label-select", "env=dev") == []
    cli.ok("remote", "label", "set", "--name", "shelf", "--key", "tier", "--value", "")
    assert cli.ok("remote", "show", "--name", "shelf")["pulp_labels"] == {"tier": ""}
    assert cli.fails("remote", "label", "set", "--name", "shelf", "--key", "a/b", "--value", "x")
    cli.ok("repository", "label", "unset", "--name", "foo", "--key", "env")
    assert cli.fails("repository", "label", "show", "--name", "foo", "--key", "env") == (
        "Error: No label 'env' on repository 'foo'."
    )

    # destroy: nothing printed, gone afterwards
    for kind in ("distribution", "remote", "repository"):
        assert cli.ok(kind, "destroy", "--name", "shelf" if kind == "remote" else "foo") is None
    assert cli.fails("distribution", "show", "--name", "foo") == (
        "Error: Could not find distribution with name 'foo'."
    )
    assert cli.fails("remote", "show", "--name", "shelf").startswith("Error: Could not find")
    assert cli.ok("repository", "list", "--name", "foo") == []
    gone = run_pip(
        ["download", "--no-deps", "-d", str(tmp_path / "dl"), "--index-url", index, "acme-tools"],
        check=False,
        timeout=TIMEOUT,
    )
    assert gone.returncode != 0


def test_an_empty_name_finds_nothing_to_change(cli: Cli) -> None:
    """A list filter given an empty value filters nothing (as django-filter's), so a lookup by
    an empty name (`--name ""`, a script's unset variable) must not take the one object a list
    of everything holds: destroyed or revoked, when it names none."""
    cli.ok("repository", "create", "--name", "only")
    cli.ok("token", "create", "--name", "ci", "--scope", "read:only")
    for args in (("repository", "destroy"), ("repository", "show"), ("token", "revoke")):
        kind = args[0]
        assert cli.fails(*args, "--name", "") == (f"Error: Could not find {kind} with name ''.")
    assert cli.ok("repository", "show", "--name", "only")["name"] == "only"
    assert cli.ok("token", "show", "--name", "ci")["revoked_at"] is None
    # a yank removed by its project, release and place: none of them empty
    cli.ok("yank", "add", "--name", "acme", "--version", "1.0", "--repository", "only")
    for given in (("", "1.0", "only"), ("acme", "", "only"), ("acme", "1.0", "")):
        name, version, where = given
        removed = cli.run(
            "yank", "remove", "--name", name, "--version", version, "--repository", where
        )
        assert removed.returncode == 1, given
    assert len(cli.ok("yank", "list", "--repository", "only")) == 1


def test_connection_errors_name_the_url_and_settings_precedence(tmp_path: Path) -> None:
    closed = [f"http://127.0.0.1:{free_port()}" for _ in range(3)]
    cli = Cli(closed[0], tmp_path / "xdg")
    error = cli.fails("--password", "flag-secret", "repository", "list")
    assert error.startswith(f"Error: Could not connect to {closed[0]}/pulp/api/v3/")
    assert "flag-secret" not in error
    # the default config file is read; the environment beats it; a flag beats both
    (tmp_path / "xdg" / "pullthrough").mkdir(parents=True)
    (tmp_path / "xdg" / "pullthrough" / "cli.toml").write_text(f'[cli]\nbase_url = "{closed[1]}"\n')
    proc = subprocess.run(
        [sys.executable, "-m", "pullthrough.cli", "status"],
        env=_env(XDG_CONFIG_HOME=str(tmp_path / "xdg")),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert proc.returncode == 1
    assert f"Could not connect to {closed[1]}/" in proc.stderr
    assert f"Could not connect to {closed[0]}/" in cli.fails("status")
    assert f"Could not connect to {closed[2]}/" in cli.fails("--base-url", closed[2], "status")
    with_password = closed[2].replace("http://", "http://admin:url-secret@")
    error = cli.fails("--base-url", with_password, "status")
    assert "url-secret" not in error and "Could not connect to http://********@127.0.0.1" in error
    # a bad JSON list is a usage error (2), before anything is sent
    proc = cli.run("remote", "create", "--name", "r", "--url", "http://x/", "--includes", "[1")
    assert proc.returncode == 2
    assert "--includes: expected a JSON list" in proc.stderr


def test_tokens_from_the_cli_work_for_twine_and_a_private_index(cli: Cli, tmp_path: Path) -> None:
    cli.ok("repository", "create", "--name", "corp")
    cli.ok(
        "distribution", "create", "--name", "corp", "--base-path", "corp", "--repository", "corp"
    )
    created = cli.ok(
        "token",
        "create",
        "--name",
        "ci",
        "--scope",
        "upload:corp",
        "--scope",
        "read:corp",
        "--expires",
        "90d",
    )
    secret = created["token"]
    assert created["scopes"] == ["upload:corp", "read:corp"]
    expires = datetime.fromisoformat(created["expires_at"])
    assert timedelta(days=89) < expires - datetime.now(UTC) <= timedelta(days=90)
    assert cli.ok("token", "show", "--name", "ci")["token"] is None
    assert "not a scope" in cli.fails("token", "create", "--name", "x", "--scope", "write:corp")
    assert [t["name"] for t in cli.ok("token", "list")] == ["ci"]

    # the token is a CLI password too (as __token__), and admin-only verbs refuse it
    as_token = {"PULLTHROUGH_USERNAME": "__token__"}
    proc = subprocess.run(
        [sys.executable, "-m", "pullthrough.cli", "token", "list"],
        env=_env(
            XDG_CONFIG_HOME=str(cli.config_home),
            PULLTHROUGH_URL=cli.url,
            PULLTHROUGH_PASSWORD=secret,
            **as_token,
        ),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert proc.returncode == 1 and "not authorized" in proc.stderr.lower(), proc.stderr

    wheel = build_wheel(tmp_path / "dist", "acme-utils", "1.0")
    cmd = [
        sys.executable,
        "-m",
        "twine",
        "upload",
        "--repository-url",
        f"{cli.url}/pypi/corp/legacy/",
    ]
    cmd += ["-u", "__token__", "-p", secret, "--non-interactive", "--disable-progress-bar"]
    proc = subprocess.run(
        [*cmd, str(wheel)], env=_env(), capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr

    cli.ok("distribution", "update", "--name", "corp", "--private")
    index = f"{cli.url}/pypi/corp/simple/acme-utils/"
    with requests.get(index, timeout=TIMEOUT) as resp:
        assert resp.status_code == 401
    with requests.get(index, auth=("__token__", secret), timeout=TIMEOUT) as resp:
        assert resp.status_code == 200 and wheel.name in resp.text

    revoked = cli.ok("token", "revoke", "--name", "ci")
    assert revoked["revoked_at"] is not None
    with requests.get(index, auth=("__token__", secret), timeout=TIMEOUT) as resp:
        assert resp.status_code == 401
    events = cli.ok("audit", "list", "--actor", "token:ci")
    assert [(e["action"], e["subject"]) for e in events] == [("upload", wheel.name)]
    actions = [e["action"] for e in cli.ok("audit", "list", "--actor", "admin", "--limit", "3")]
    assert actions == [
        "tokens_revoke",
        "distributions_python_pypi_partial_update",
        "tokens_create",
    ]


def test_a_version_is_destroyed_from_the_cli(cli: Cli, tmp_path: Path) -> None:
    cli.ok("repository", "create", "--name", "foo")
    for version in ("1.0", "2.0"):  # versions 1 and 2
        wheel = build_wheel(tmp_path / "dist", "acme-tools", version)
        cli.ok("content", "upload", "--file", str(wheel), "--repository", "foo")
    assert (
        cli.ok("repository", "version", "destroy", "--repository", "foo", "--version", "1") is None
    )
    versions = cli.ok("repository", "version", "list", "--repository", "foo")
    assert [v["number"] for v in versions] == [2, 0]
    v2 = cli.ok("repository", "version", "show", "--repository", "foo", "--version", "2")
    assert v2["content_summary"]["added"]["python.python"]["count"] == 2  # from 0 now
    gone = cli.fails("repository", "version", "show", "--repository", "foo", "--version", "1")
    assert gone == 'Error: {"detail": "Not found."}'

    cli.ok("distribution", "create", "--name", "foo", "--base-path", "foo", "--repository", "foo")
    served = cli.fails("repository", "version", "destroy", "--repository", "foo")  # the latest
    assert "are currently being used to distribute content" in served
    cli.ok("distribution", "destroy", "--name", "foo")
    cli.ok("repository", "version", "destroy", "--repository", "foo")  # 2, the latest
    only = cli.fails("repository", "version", "destroy", "--repository", "foo", "--version", "0")
    assert "[PLP0011] Cannot delete repository version." in only
    repo = cli.ok("repository", "show", "--name", "foo")
    assert repo["latest_version_href"] == repo["versions_href"] + "0/"


def test_a_repositorys_blocklist_from_the_cli(cli: Cli, tmp_path: Path) -> None:
    """`repository blocklist add|list|remove`, and an upload the blocklist refuses; with
    --no-error-on-reject the upload is kept out of the repository instead."""
    cli.ok("repository", "create", "--name", "foo")
    entries = ("repository", "blocklist")
    every = cli.ok(*entries, "add", "--repository", "foo", "--name", "Acme_Tools")
    assert (every["name"], every["version"]) == ("acme-tools", None)
    one = cli.ok(*entries, "add", "--repository", "foo", "--name", "acme-tools", "--version", "2")
    cli.ok(*entries, "add", "--repository", "foo", "--filename", "x-1.0.tar.gz")
    both = cli.fails(*entries, "add", "--repository", "foo", "--name", "a", "--filename", "a.whl")
    assert "Exactly one of 'name' or 'filename' must be provided." in both
    listed = cli.ok(*entries, "list", "--repository", "foo", "--name", "ACME.tools")
    assert {e["pulp_href"] for e in listed} == {every["pulp_href"], one["pulp_href"]}
    assert len(cli.ok(*entries, "list", "--repository", "foo")) == 3

    wheel = build_wheel(tmp_path / "dist", "acme-tools", "1.0")
    refused = cli.fails("content", "upload", "--file", str(wheel), "--repository", "foo")
    assert f"Blocklisted packages cannot be added to this repository: {wheel.name}" in refused
    cli.ok(*entries, "remove", "--repository", "foo", "--name", "acme-tools")  # every version
    left = cli.ok(*entries, "list", "--repository", "foo", "--name", "acme-tools")
    assert [e["pulp_href"] for e in left] == [one["pulp_href"]]
    assert cli.fails(*entries, "remove", "--repository", "foo", "--name", "acme-tools").startswith(
        "Error: Could not find one blocklist entry"
    )
    cli.ok("content", "upload", "--file", str(wheel), "--repository", "foo")  # allowed now
    repo = cli.ok("repository", "update", "--name", "foo", "--no-error-on-reject")
    assert repo["error_on_reject"] is False
    two = build_wheel(tmp_path / "dist", "acme-tools", "2.0")
    cli.ok("content", "upload", "--file", str(two), "--repository", "foo")  # left out
    present = cli.ok("repository", "version", "show", "--repository", "foo")
    assert present["number"] == 1


def test_help_lists_the_verbs() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pullthrough.cli", "--help"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=True,
    )
    for word in ("serve", "repository", "remote", "distribution", "content", "task", "status"):
        assert f"\n    {word} " in proc.stdout
    assert "PULLTHROUGH_URL" in proc.stdout

    def walk(parser: Any, path: tuple[str, ...]) -> list[tuple[str, ...]]:
        helps = [path]
        assert parser.format_help()
        for action in parser._subparsers._group_actions if parser._subparsers else ():
            for name, sub in action.choices.items():
                helps += walk(sub, (*path, name))
        return helps

    commands = walk(build_parser(), ())
    assert ("repository", "version", "show") in commands
    assert ("repository", "version", "destroy") in commands
    assert ("repository", "content", "modify") in commands
    assert len(commands) > 30


@pytest.mark.slow
def test_sync_publish_and_orphan_cleanup_from_the_cli(
    upstream: Upstream, gunicorn_server: Callable[..., Server], tmp_path: Path
) -> None:
    text = (
        config_text(upstream.index_url, tmp_path / "data")
        + f'[auth]\nadmin_password = "{PASSWORD}"\n'
    )
    cli = Cli(gunicorn_server(text).url, tmp_path / "cfg")
    cli.ok("remote", "create", "--name", "bar", "--url", upstream.index_url,
           "--includes", '["shelf-reader"]', "--no-prereleases", "--policy", "immediate")  # fmt: skip
    cli.ok("repository", "create", "--name", "foo", "--remote", "bar")

    # On a terminal, sync draws its progress on stderr; the new version is printed on stdout.
    # Slow file transfers (about a second per file) keep the sync running across several polls.
    upstream.chunk_size, upstream.slow_files = 256, 0.25
    import os
    import pty

    primary, secondary = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pullthrough.cli", "repository", "sync", "--name", "foo"],
            env=_env(
                XDG_CONFIG_HOME=str(cli.config_home),
                PULLTHROUGH_URL=cli.url,
                PULLTHROUGH_PASSWORD=PASSWORD,
            ),
            stdout=subprocess.PIPE,
            stderr=secondary,
            stdin=subprocess.DEVNULL,
            timeout=TIMEOUT,
            check=False,
        )
        os.close(secondary)
        drawn = b""
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # the pty's other end is closed: all read
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(primary)
    assert proc.returncode == 0, drawn
    version = json.loads(proc.stdout)
    assert version["number"] == 1
    assert b"Downloading Artifacts [" in drawn and b"#" in drawn
    synced = cli.ok("content", "list", "--repository", "foo")
    assert {c["version"] for c in synced} == {"0.1", "0.2", "0.3"}  # no 0.4rc1

    publication = cli.ok("publication", "create", "--repository", "foo", "--version", "1")
    assert publication["repository_version"] == version["pulp_href"]
    assert [p["pulp_href"] for p in cli.ok("publication", "list", "--repository", "foo")] == [
        publication["pulp_href"]
    ]
    dist = cli.ok("distribution", "create", "--name", "foo", "--base-path", "foo",
                  "--publication", publication["pulp_href"])  # fmt: skip
    assert dist["publication"] == publication["pulp_href"]
    dist = cli.ok("distribution", "update", "--name", "foo", "--repository", "foo")
    assert (dist["repository"], dist["publication"]) == (version["repository"], None)

    # An upload into no repository is an orphan; cleanup removes it, not the synced packages.
    lonely = build_wheel(tmp_path / "w", "lonely", "1.0")
    cli.ok("content", "upload", "--file", str(lonely))
    task = cli.ok("orphans", "cleanup", "--protection-time", "0")
    assert task["state"] == "completed"
    # a task worker ran it (a server process's): `task list --worker` names it
    with requests.get(cli.url + task["worker"], auth=("admin", PASSWORD), timeout=TIMEOUT) as resp:
        worker = resp.json()["name"]
    assert task["pulp_href"] in {t["pulp_href"] for t in cli.ok("task", "list", "--worker", worker)}
    assert cli.ok("task", "list", "--worker", worker, "--name-contains", "distribution") == []
    assert cli.fails("task", "list", "--worker", "nope") == (
        "Error: Could not find worker with name 'nope'."
    )
    assert cli.ok("content", "list", "--name", "lonely") == []
    assert len(cli.ok("content", "list", "--repository", "foo")) == len(synced)


@pytest.mark.parametrize("command", [["serve", "--bind", "127.0.0.1:9"], ["worker"]])
def test_a_server_that_cannot_start_says_why_in_one_line(
    tmp_path: Path, command: list[str]
) -> None:
    """Settings that read well but cannot be used (the data folder is a file, or its
    renderings' folder; the catalog's PostgreSQL does not answer): a line that says so and
    exit 1, not a traceback."""
    taken = tmp_path / "a-file"
    taken.write_text("not a folder")
    (tmp_path / "data-r").mkdir()
    (tmp_path / "data-r" / "renders").write_text("not a folder")
    closed = free_port()
    for text in (
        f'[server]\ndata_dir = "{taken}"\n',
        f'[server]\ndata_dir = "{tmp_path / "data-r"}"\n',
        f'[server]\ndata_dir = "{tmp_path / "data"}"\n'
        f'database_url = "postgresql://u:db-secret@127.0.0.1:{closed}/pt"\n',
    ):
        config = tmp_path / "pullthrough.toml"
        config.write_text(text)
        proc = subprocess.run(
            [sys.executable, "-m", "pullthrough.cli", *command, "--config", str(config)],
            env=_env(),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        assert proc.returncode == 1, proc.stderr
        said = [line for line in proc.stderr.splitlines() if line.startswith("pullthrough:")]
        assert len(said) == 1 and said[0].startswith("pullthrough: cannot start: "), proc.stderr
        assert "Traceback" not in proc.stderr and "db-secret" not in proc.stderr


def test_a_config_distribution_overlapping_one_of_the_api_is_refused_at_start(
    tmp_path: Path,
) -> None:
    """The API refuses a base path inside another's; so does the start for the file's: a
    distribution the file adds at `team/pypi`, where the API made `team`, is a line saying so
    and exit 2, and nothing of the file is written."""
    data = tmp_path / "data"
    config = tmp_path / "pullthrough.toml"
    config.write_text(config_text(f"http://127.0.0.1:{free_port()}/simple/", data))
    settings = load_settings(config, environ={})
    build_services(settings).close()  # the catalog, with the file's `main`
    with Catalog(
        make_engine(database_url(settings.server.database_url, data))
    ).session() as session:
        session.add(Distribution(name="team", base_path="team"))  # as the API would
    inner = '[[distributions]]\nname = "inner"\nbase_path = "team/pypi"\nremote = "up"\n'
    config.write_text(config.read_text() + inner)
    proc = subprocess.run(
        [sys.executable, "-m", "pullthrough.cli", "serve", "--config", str(config),
         "--bind", f"127.0.0.1:{free_port()}"],
        env=_env(), capture_output=True, text=True, timeout=TIMEOUT, check=False,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    said = [line for line in proc.stderr.splitlines() if line.startswith("pullthrough:")]
    assert said == [
        "pullthrough: invalid configuration: distributions[1].base_path: 'team/pypi' overlaps"
        " the base path 'team' of distribution 'team' (in the catalog, not in the file)"
    ], proc.stderr
    with Catalog(
        make_engine(database_url(settings.server.database_url, data))
    ).session() as session:
        names = set(session.scalars(select(Distribution.name)))
    assert names == {"main", "team"}


def test_artifacts_from_the_cli(cli: Cli, tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path / "w", "acme-stored", "1.0")
    sha256 = hashlib.sha256(wheel.read_bytes()).hexdigest()
    artifact = cli.ok("artifact", "upload", "--file", str(wheel))
    assert (artifact["sha256"], artifact["size"]) == (sha256, wheel.stat().st_size)
    assert cli.ok("artifact", "list", "--sha256", sha256) == [artifact]
    assert cli.ok("artifact", "list", "--sha256", "0" * 64) == []
    assert cli.ok("artifact", "show", "--href", artifact["pulp_href"]) == artifact
    again = cli.fails("artifact", "upload", "--file", str(wheel))
    assert f"Artifact with sha256 checksum of '{sha256}' already exists." in again
    assert "No such file" in cli.fails("artifact", "upload", "--file", str(tmp_path / "none"))
