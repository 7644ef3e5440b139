"""A private index behind API tokens, used by real clients under gunicorn: twine uploads with
scoped tokens (and is refused without the right scope), pip (credentials in the URL, ~/.netrc,
NETRC), uv (per-index credentials in the environment) and poetry (`http-basic` config) install
from it, and get nothing without a token for it. Revoked, expired and forged tokens are refused;
making a distribution private takes effect at once; the audit trail says who did what. No secret
- the admin password, a token, a wrong password - ever reaches the server's log (the access log
and gunicorn's debug logging are on) or the audit trail. Failed logins are limited per address.

Every client runs with a scratch HOME/XDG folders, no keyring, and HTTP(S)_PROXY pointing at a
dead loopback port (NO_PROXY=127.0.0.1): whatever is not our index or the loopback upstream
fails at once, so nothing can come from the internet.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from support.api import AUTH, PASSWORD, Api, with_auth
from support.packages import build_sdist, build_wheel, sha256_of
from support.servers import PROXY_UA, Server, config_text, free_port
from support.tools import clean_env, make_venv, ok, poetry_settings, run, run_pip
from support.upstream import Upstream, UpstreamFile

pytestmark = pytest.mark.e2e

TOKEN_USER = "__token__"
CHALLENGE = 'Basic realm="pullthrough"'
# pip never prompts nor asks a keyring (the one in this venv would be asked otherwise)
PIP = ["--no-input", "--keyring-provider", "disabled"]
SHELF = "shelf_reader-0.2-py3-none-any.whl"  # what the upstream serves, resolved via corp


@dataclass
class Corp:
    """A gunicorn server with a private distribution `corp` (repository `corp`, uploads
    allowed, the upstream as its remote) and a private distribution `other` (repository
    `other`); every secret handed out is remembered, to look for it in the log."""

    server: Server
    api: Api
    upstream: Upstream
    tmp: Path
    dead_proxy: str
    secrets: list[str] = field(default_factory=lambda: [PASSWORD])

    @property
    def host(self) -> str:
        return self.server.url.removeprefix("http://")

    def simple(self, base_path: str = "corp", token: str | None = None) -> str:
        """The simple index URL; with `token`, carrying it as the password of __token__."""
        userinfo = f"{TOKEN_USER}:{token}@" if token else ""
        return f"http://{userinfo}{self.host}/pypi/{base_path}/simple/"

    def token(self, name: str, *scopes: str, expires_at: str | None = None) -> str:
        """A new token (through the REST API, as the admin): its secret."""
        created = self.api.create("tokens/", name=name, scopes=list(scopes), expires_at=expires_at)
        secret: str = created["token"]
        assert secret and created["scopes"] == list(scopes), created
        self.secrets.append(secret)
        return secret

    def upload(self, path: Path, token: str, base_path: str = "corp") -> requests.Response:
        """What twine sends, as __token__ (for setting up: the twine test runs twine)."""
        with path.open("rb") as fh:
            return requests.post(
                f"{self.server.url}/pypi/{base_path}/legacy/",
                data={":action": "file_upload"},
                files={"content": (path.name, fh)},
                auth=(TOKEN_USER, token),
                timeout=30,
            )

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 30)
        with requests.get(self.server.url + path, **kwargs) as resp:
            _ = resp.content
        return resp

    def folder(self, name: str) -> Path:
        path = self.tmp / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def env(self, home: str, **extra: str) -> dict[str, str]:
        """clean_env() for a client: its own empty HOME and XDG folders (no ~/.netrc, ~/.pypirc
        or user config), no keyring, no PULLTHROUGH_/TWINE_/POETRY_ settings of the caller,
        a dead proxy for everything but loopback, and `extra`."""
        base = {
            k: v
            for k, v in clean_env().items()
            if not k.startswith(("PULLTHROUGH_", "TWINE_", "POETRY_", "XDG_", "NETRC"))
        }
        root = self.folder(home)
        dead = self.dead_proxy
        env = {
            **base,
            "HOME": str(root),
            "XDG_CONFIG_HOME": str(root / ".config"),
            "XDG_CACHE_HOME": str(root / ".cache"),
            "XDG_DATA_HOME": str(root / ".local" / "share"),
            "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
            "HTTP_PROXY": dead,
            "HTTPS_PROXY": dead,
            "ALL_PROXY": dead,
            "http_proxy": dead,
            "https_proxy": dead,
            "all_proxy": dead,
            "NO_COLOR": "1",
            "COLUMNS": "200",
        }
        return {**env, **extra}

    def log_text(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.tmp.glob("server-*.log")))

    def served(self, path: str, agent: str, method: str = "GET") -> bool:
        """Whether the access log shows `path` answered 200 to a client named `agent`."""
        request = re.escape(f'"{method} {path} HTTP/1.1" 200 ')
        return re.search(f'{request}.*"{re.escape(agent)}/', self.log_text()) is not None

    def assert_secrets_not_logged(self) -> None:
        """No secret, nor its secret half, nor a Basic header carrying it, in the log."""
        text = self.log_text()
        assert '"GET /pypi/' in text, "the access log is on: requests are in the log"
        for i, secret in enumerate(self.secrets):
            forms = {secret, secret.rpartition(".")[2]}
            for user in (TOKEN_USER, "admin"):
                forms.add(base64.b64encode(f"{user}:{secret}".encode()).decode())
            for form in forms:
                at = text.find(form)
                line = text[text.rfind("\n", 0, at) + 1 : text.find("\n", at)] if at >= 0 else ""
                assert at < 0, f"secret #{i} ({len(form)} chars) is in the server log: {line}"


def start_corp(
    gunicorn_server: Callable[..., Server],
    upstream: Upstream,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    auth: str = "failure_burst = 1000\n",
    workers: int = 2,
) -> Corp:
    # gunicorn's access log to stdout (the server log), and gunicorn's debug messages too
    monkeypatch.setenv("PULLTHROUGH_ACCESS_LOG", "-")
    monkeypatch.setenv("PULLTHROUGH_LOG_LEVEL", "debug")
    text = with_auth(config_text(upstream.index_url, tmp_path / "data")) + auth
    server = gunicorn_server(text, workers=workers)
    api = Api(server.url)
    remote = api.remote("corp-upstream", upstream.index_url)
    repo = api.repository("corp")
    dist = api.distribution(
        "corp", repository=repo["pulp_href"], remote=remote["pulp_href"], private=True
    )
    assert dist["private"] is True and dist["allow_uploads"] is True, dist
    other = api.repository("other")
    api.distribution("other", repository=other["pulp_href"], private=True)
    return Corp(server, api, upstream, tmp_path, f"http://127.0.0.1:{free_port()}")


@pytest.fixture
def corp(
    upstream: Upstream,
    gunicorn_server: Callable[..., Server],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Corp:
    return start_corp(gunicorn_server, upstream, tmp_path, monkeypatch)


def output(proc: subprocess.CompletedProcess[str]) -> str:
    """stdout and stderr, whitespace collapsed (rich and others wrap lines)."""
    return " ".join((proc.stdout + proc.stderr).split())


def publish(corp: Corp) -> tuple[Path, UpstreamFile]:
    """Upload acme-app 1.0 (it requires shelf-reader, which only the upstream has) to corp; the
    wheel, and the shelf-reader wheel a resolver must take from the upstream through corp."""
    release = corp.token("release", "upload:corp")
    app = build_wheel(corp.tmp / "dist", "acme-app", "1.0", requires_dist=["shelf-reader>=0.1"])
    resp = corp.upload(app, release)
    assert resp.status_code == 200, resp.text
    (shelf,) = (f for f in corp.upstream.files_for("shelf-reader") if f.filename == SHELF)
    return app, shelf


def versions_in(python: Path | str, *modules: str, env: dict[str, str] | None = None) -> list[str]:
    code = "; ".join(f"import {m}; print({m}.__version__)" for m in modules)
    return ok(run([str(python), "-c", code], env or clean_env())).stdout.split()


def assert_only_the_proxy_reached_upstream(upstream: Upstream) -> None:
    agents = {rec.header("user-agent") or "" for rec in upstream.log}
    assert agents and all(a.startswith(PROXY_UA) for a in agents), agents


# ---- twine ---------------------------------------------------------------------------------


def twine(corp: Corp, user: str, password: str, base_path: str, *files: Path) -> str:
    """Run `twine upload` (the server's reason is in its status line: twine shows it); returns
    `exit <code>: <output, whitespace collapsed>`."""
    cmd = [sys.executable, "-m", "twine", "upload", "--repository-url"]
    cmd += [f"{corp.server.url}/pypi/{base_path}/legacy/", "-u", user, "-p", password]
    cmd += ["--non-interactive", "--disable-progress-bar", *map(str, files)]
    proc = run(cmd, corp.env("twine"))
    text = output(proc)
    return f"exit {proc.returncode}: {text}"


def cli_token(corp: Corp, name: str, *args: str) -> dict[str, Any]:
    """`pullthrough token create` (the CLI, with the admin's credentials from the environment)."""
    env = corp.env(
        "cli",
        PULLTHROUGH_URL=corp.server.url,
        PULLTHROUGH_USERNAME="admin",
        PULLTHROUGH_PASSWORD=PASSWORD,
    )
    cmd = [sys.executable, "-m", "pullthrough.cli", "token", "create", "--name", name, *args]
    created: dict[str, Any] = json.loads(ok(run(cmd, env)).stdout)
    corp.secrets.append(created["token"])
    return created


def test_twine_uploads_with_scoped_tokens(corp: Corp) -> None:
    dist = corp.tmp / "dist"
    release = cli_token(corp, "release", "--scope", "upload:corp", "--expires", "90d")
    assert release["scopes"] == ["upload:corp"] and release["token"].startswith(release["key"])
    left = datetime.fromisoformat(release["expires_at"]) - datetime.now(UTC)
    assert timedelta(days=89) < left < timedelta(days=91), release["expires_at"]
    acme = corp.token("acme", "upload:corp:acme-*")
    elsewhere = corp.token("elsewhere", "upload:other")
    reader = corp.token("reader", "read:corp")

    tools = [build_wheel(dist, "corp-tools", "1.0"), build_sdist(dist, "corp-tools", "1.0")]
    assert twine(corp, TOKEN_USER, release["token"], "corp", *tools).startswith("exit 0:")
    foo = build_wheel(dist, "acme-foo", "1.0")
    assert twine(corp, TOKEN_USER, acme, "corp", foo).startswith("exit 0:")
    bar = build_wheel(dist, "acme-bar", "1.0")
    assert twine(corp, "admin", PASSWORD, "corp", bar).startswith("exit 0:")

    later = build_wheel(dist, "corp-tools", "2.0")
    refusals = {
        acme: "token:acme may upload only acme-* to 'corp', not 'corp-tools'",
        elsewhere: "token:elsewhere may not upload to 'corp' (it has no upload:corp)",
        reader: "token:reader may not upload to 'corp' (it has no upload:corp)",
    }
    for token, why in refusals.items():
        out = twine(corp, TOKEN_USER, token, "corp", later)
        assert not out.startswith("exit 0:"), out
        assert "403" in out and f"Forbidden: {why}" in out, out
    # the token for `other` does upload there
    assert twine(corp, TOKEN_USER, elsewhere, "other", later).startswith("exit 0:")

    # corp serves exactly what was accepted (the refused 2.0 is not there), to its reader
    page = corp.get(
        "/pypi/corp/simple/corp-tools/",
        auth=(TOKEN_USER, reader),
        headers={"Accept": "application/vnd.pypi.simple.v1+json"},
    )
    assert page.status_code == 200, page.text
    assert {f["filename"] for f in page.json()["files"]} == {p.name for p in tools}

    uploaded_by = {
        p["filename"]: (p["uploaded_by"], p["sha256"])
        for name in ("corp-tools", "acme-foo", "acme-bar")
        for p in corp.api.packages(name=name)
    }
    assert uploaded_by == {
        tools[0].name: ("token:release", sha256_of(tools[0])),
        tools[1].name: ("token:release", sha256_of(tools[1])),
        foo.name: ("token:acme", sha256_of(foo)),
        bar.name: ("admin", sha256_of(bar)),
        later.name: ("token:elsewhere", sha256_of(later)),
    }
    (event,) = corp.api.all("audit/", action="upload", actor="token:acme")
    assert event["subject"] == foo.name and event["address"] == "127.0.0.1", event
    assert event["detail"]["distribution"] == "corp", event
    assert event["detail"]["sha256"] == sha256_of(foo), event
    assert corp.api.all("audit/", action="upload", subject__contains="corp_tools-2.0") == [
        e for e in corp.api.all("audit/", action="upload") if e["actor"] == "token:elsewhere"
    ]
    assert corp.served("/pypi/corp/legacy/", "twine", method="POST")
    assert '"POST /pypi/corp/legacy/ HTTP/1.1" 403 ' in corp.log_text()
    corp.assert_secrets_not_logged()


# ---- pip -----------------------------------------------------------------------------------


def write_netrc(path: Path, host: str, token: str) -> Path:
    path.write_text(f"machine {host}\nlogin {TOKEN_USER}\npassword {token}\n")
    path.chmod(0o600)
    return path


@pytest.mark.slow
def test_pip_with_a_token_in_the_url_or_netrc(corp: Corp) -> None:
    app, shelf = publish(corp)
    reader = corp.token("pip-reader", "read:corp")
    outsider = corp.token("outsider", "read:other")

    # the token in the index URL
    dest = corp.folder("dl-url")
    cmd = ["download", *PIP, "-d", str(dest), "--index-url", corp.simple(token=reader)]
    run_pip(cmd + ["acme-app"], env=corp.env("pip-url"))
    got = {p.name: p.read_bytes() for p in dest.iterdir()}
    assert got == {app.name: app.read_bytes(), SHELF: shelf.data}
    stored = corp.api.one("content/python/packages/", filename=app.name)
    assert (
        sha256_of(dest / app.name) == stored["sha256"] and stored["uploaded_by"] == "token:release"
    )
    assert corp.served(f"/pulp/content/corp/{app.name}", "pip")
    assert corp.served(f"/pulp/content/corp/{SHELF}", "pip")

    # the token in ~/.netrc, the index URL without credentials: installed in a venv
    home = corp.folder("pip-home")
    write_netrc(home / ".netrc", "127.0.0.1", reader)
    python = make_venv(corp.tmp / "venv")
    cmd = ["install", *PIP, "--index-url", corp.simple(), "acme-app"]
    run_pip(cmd, python=python, env=corp.env("pip-home"))
    assert versions_in(python, "acme_app", "shelf_reader") == ["1.0", "0.2"]

    # the token in a .netrc named by NETRC
    netrc = write_netrc(corp.tmp / "netrc", "127.0.0.1", reader)
    dest = corp.folder("dl-netrc")
    cmd = ["download", *PIP, "--no-deps", "-d", str(dest), "--index-url", corp.simple()]
    run_pip(cmd + ["acme-app"], env=corp.env("pip-netrc", NETRC=str(netrc)))
    assert [p.read_bytes() for p in dest.iterdir()] == [app.read_bytes()]

    # without credentials, or with a token for another distribution, pip finds nothing
    for what, index in (("anonymous", corp.simple()), ("outsider", corp.simple(token=outsider))):
        dest = corp.folder(f"dl-{what}")
        cmd = ["download", *PIP, "--no-deps", "-d", str(dest), "--index-url", index, "acme-app"]
        failed = run_pip(cmd, env=corp.env(f"pip-{what}"), check=False)
        assert failed.returncode != 0, (what, failed.stdout, failed.stderr)
        assert list(dest.iterdir()) == [], what
    log = corp.log_text()
    assert '"GET /pypi/corp/simple/acme-app/ HTTP/1.1" 401 ' in log
    assert '"GET /pypi/corp/simple/acme-app/ HTTP/1.1" 403 ' in log

    # what pip was told: 401 with a challenge without credentials, 403 with the wrong scope
    for path in (f"/pulp/content/corp/{app.name}", f"/pulp/content/corp/{SHELF}"):
        anonymous = corp.get(path)
        assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"] == CHALLENGE
        refused = corp.get(path, auth=(TOKEN_USER, outsider))
        assert refused.status_code == 403 and "no read:corp" in refused.text, refused.text
        assert corp.get(path, headers={"Authorization": f"Bearer {reader}"}).status_code == 200
    assert_only_the_proxy_reached_upstream(corp.upstream)
    corp.assert_secrets_not_logged()


# ---- uv ------------------------------------------------------------------------------------


def uv_install(
    corp: Corp, name: str, requirements: Path, target: Path, **extra: str
) -> subprocess.CompletedProcess[str]:
    """`uv pip install --target` from corp only (the named default index), no config files."""
    cmd = [sys.executable, "-m", "uv", "pip", "install", "--no-config", "--python"]
    cmd += [sys.executable, "--target", str(target), "--default-index", f"corp={corp.simple()}"]
    cmd += ["--require-hashes", "-r", str(requirements)]
    env = corp.env(
        name,
        UV_CACHE_DIR=str(corp.tmp / name / "uv-cache"),
        UV_NO_CONFIG="1",
        UV_PYTHON_DOWNLOADS="never",
        **extra,
    )
    return run(cmd, env)


def test_uv_with_per_index_credentials_from_the_environment(corp: Corp) -> None:
    app, shelf = publish(corp)
    reader = corp.token("uv-reader", "read:corp")
    outsider = corp.token("outsider", "read:other")
    # pinned by the digests of what was uploaded and what the upstream has: uv checks them
    requirements = corp.tmp / "requirements.txt"
    requirements.write_text(
        f"acme-app==1.0 --hash=sha256:{sha256_of(app)}\n"
        f"shelf-reader==0.2 --hash=sha256:{shelf.sha256}\n"
    )

    target = corp.tmp / "uv-target"
    creds = {"UV_INDEX_CORP_USERNAME": TOKEN_USER, "UV_INDEX_CORP_PASSWORD": reader}
    ok(uv_install(corp, "uv", requirements, target, **creds))
    env = clean_env(PYTHONPATH=str(target))
    assert versions_in(sys.executable, "acme_app", "shelf_reader", env=env) == ["1.0", "0.2"]
    assert corp.served(f"/pulp/content/corp/{app.name}", "uv")
    assert corp.served(f"/pulp/content/corp/{SHELF}", "uv")

    cases = {
        "uv-anonymous": ({}, "401 Unauthorized"),
        "uv-outsider": (
            {"UV_INDEX_CORP_USERNAME": TOKEN_USER, "UV_INDEX_CORP_PASSWORD": outsider},
            "403 Forbidden",
        ),
    }
    for name, (given, said) in cases.items():
        failed = uv_install(corp, name, requirements, corp.tmp / f"{name}-target", **given)
        assert failed.returncode != 0, (name, failed.stdout, failed.stderr)
        assert said in output(failed), (name, failed.stderr)
        assert not (corp.tmp / f"{name}-target" / "acme_app").exists(), name
    assert_only_the_proxy_reached_upstream(corp.upstream)
    corp.assert_secrets_not_logged()


# ---- poetry --------------------------------------------------------------------------------


@dataclass
class Poetry:
    corp: Corp
    project: Path
    home: str  # the env's name: HOME, config, cache and data in tmp
    extra: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        root = self.corp.tmp / self.home
        return self.corp.env(self.home, **poetry_settings(root), **self.extra)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "poetry", "--no-interaction", "--no-ansi", *args]
        return run(cmd, self.env(), cwd=self.project)


def poetry_project(corp: Corp, name: str) -> Path:
    project = corp.folder(name)
    (project / "pyproject.toml").write_text(
        "[project]\n"
        f'name = "{name}"\n'
        'version = "0.1.0"\n'
        'requires-python = ">=3.11"\n'
        'dependencies = ["acme-app"]\n\n'
        "[tool.poetry]\n"
        "package-mode = false\n\n"
        "[[tool.poetry.source]]\n"
        'name = "corp"\n'
        f'url = "{corp.simple()}"\n'
        'priority = "primary"\n'
    )
    return project


@pytest.mark.slow
def test_poetry_with_http_basic_credentials(corp: Corp) -> None:
    app, shelf = publish(corp)
    reader = corp.token("poetry-reader", "read:corp")
    outsider = corp.token("outsider", "read:other")

    # no credentials at all, then a token for another distribution (given the other way
    # poetry takes them, in the environment): nothing to lock
    outsider_env = {
        "POETRY_HTTP_BASIC_CORP_USERNAME": TOKEN_USER,
        "POETRY_HTTP_BASIC_CORP_PASSWORD": outsider,
    }
    for home, given in (("poetry-anonymous", {}), ("poetry-outsider", outsider_env)):
        project = poetry_project(corp, home.replace("poetry-", "consumer-"))
        poetry = Poetry(corp, project, home, given)
        failed = poetry.run("lock")
        assert failed.returncode != 0, (home, failed.stdout, failed.stderr)
        assert "Authorization error" in output(failed), (home, failed.stdout, failed.stderr)
        assert not (poetry.project / "poetry.lock").exists(), home

    poetry = Poetry(corp, poetry_project(corp, "consumer"), "poetry")
    ok(poetry.run("config", "http-basic.corp", TOKEN_USER, reader))
    ok(poetry.run("lock"))
    lock = tomllib.loads((poetry.project / "poetry.lock").read_text())
    locked = {
        p["name"]: (p["version"], [f["hash"] for f in p["files"]], p["source"]["reference"])
        for p in lock["package"]
    }
    assert locked == {
        "acme-app": ("1.0", [f"sha256:{sha256_of(app)}"], "corp"),
        "shelf-reader": ("0.2", [f"sha256:{shelf.sha256}"], "corp"),
    }
    ok(poetry.run("install"))
    venv = poetry.project / ".venv"
    (site,) = venv.glob("lib/python3*/site-packages")
    for module in ("acme_app", "shelf_reader"):
        assert (site / module / "__init__.py").is_file(), sorted(p.name for p in site.iterdir())
    assert versions_in(venv / "bin" / "python", "acme_app", "shelf_reader") == ["1.0", "0.2"]
    assert corp.served(f"/pulp/content/corp/{app.name}", "poetry")
    assert_only_the_proxy_reached_upstream(corp.upstream)
    corp.assert_secrets_not_logged()


# ---- making a distribution private ------------------------------------------------------


def make_a_distribution_private(corp: Corp) -> None:
    """A public distribution whose pages every worker holds warm (served below Flask) stops
    answering anonymous clients the moment it is made private; its reader still gets in."""
    remote = corp.api.one("remotes/python/python/", name="corp-upstream")
    pub = corp.api.distribution("pub", remote=remote["pulp_href"])
    reader = corp.token("pub-reader", "read:pub")
    path = "/pypi/pub/simple/shelf-reader/"

    for _ in range(8):  # fresh connections: the page warm in both workers
        assert corp.get(path, headers={"Connection": "close"}).status_code == 200
    assert corp.get(f"/pulp/content/pub/{SHELF}").status_code == 200

    corp.api.run("PATCH", pub["pulp_href"], json={"private": True})  # a task, waited for
    statuses = {corp.get(path, headers={"Connection": "close"}).status_code for _ in range(8)}
    assert statuses == {401}
    dest = corp.folder("dl-private")
    cmd = ["download", *PIP, "--no-deps", "-d", str(dest), "shelf-reader==0.2"]
    failed = run_pip(
        cmd + ["--index-url", corp.simple("pub")], env=corp.env("pip-anon"), check=False
    )
    assert failed.returncode != 0 and list(dest.iterdir()) == []
    run_pip(cmd + ["--index-url", corp.simple("pub", reader)], env=corp.env("pip-reader"))
    assert [p.name for p in dest.iterdir()] == [SHELF]
    (event,) = corp.api.all("audit/", action="distributions_python_pypi_partial_update")
    assert event["detail"] == {"private": True} and event["actor"] == "admin", event


# ---- secrets, refusals, the audit trail --------------------------------------------------


def test_refusals_revocations_and_privacy_keep_secrets_out_of_log_and_audit(corp: Corp) -> None:
    start = corp.api.create("tokens/", name="first", scopes=["read:corp"])
    corp.secrets.append(start["token"])
    app, _ = publish(corp)
    reader = corp.token("reader", "read:corp")
    gone = corp.token("gone", "read:corp")
    soon = datetime.now(UTC) + timedelta(seconds=2)  # a token cannot be made expired already
    expired = corp.token("expired", "read:corp", expires_at=soon.isoformat())
    ops = corp.token("ops", "admin")
    typo = PASSWORD + "x"
    forged = reader.rpartition(".")[0] + ".forged-secret-part-000000000000000000000000"
    corp.secrets += [typo, forged]
    page = "/pypi/corp/simple/acme-app/"

    # the right credentials, each way they may come
    for auth in ((TOKEN_USER, reader), AUTH, None):
        headers = {} if auth else {"Authorization": f"Bearer {ops}"}
        resp = corp.get(page, auth=auth, headers=headers)
        assert resp.status_code == 200 and app.name in resp.text, (auth, resp.status_code)
    assert corp.get(page, headers={"Authorization": f"Bearer {reader}"}).status_code == 200
    # a token as the user name (pip's http://TOKEN@host/ form): refused, and out of the log,
    # whose default format would have printed the Basic header's user
    assert corp.get(page, auth=(reader, "")).status_code == 401
    json_api = corp.get("/pypi/corp/pypi/acme-app/json", auth=(TOKEN_USER, reader))
    assert json_api.status_code == 200 and json_api.json()["info"]["version"] == "1.0"
    assert corp.get("/pypi/corp/pypi/acme-app/json").status_code == 401

    revoked = corp.api.call("POST", corp.api.one("tokens/", name="gone")["pulp_href"] + "revoke/")
    assert revoked["revoked_at"] is not None and revoked["token"] is None, revoked

    # wrong ones: 401 and the challenge, whichever way they come
    refused: list[tuple[str, dict[str, Any]]] = [
        ("anonymous", {}),
        ("revoked", {"auth": (TOKEN_USER, gone)}),
        ("revoked bearer", {"headers": {"Authorization": f"Bearer {gone}"}}),
        ("expired", {"auth": (TOKEN_USER, expired)}),
        ("forged", {"auth": (TOKEN_USER, forged)}),
        ("wrong admin password", {"auth": ("admin", typo)}),
        ("a token as the admin's password", {"auth": ("admin", reader)}),
        ("the admin password as a token", {"auth": (TOKEN_USER, PASSWORD)}),
        ("garbage", {"headers": {"Authorization": "Basic !!!"}}),
    ]
    time.sleep(max(0.0, (soon - datetime.now(UTC)).total_seconds()) + 0.1)
    for what, kwargs in refused:
        for path in (page, f"/pulp/content/corp/{app.name}", "/pulp/api/v3/tokens/"):
            resp = corp.get(path, **kwargs)
            assert resp.status_code == 401, (what, path, resp.status_code, resp.text)
            assert resp.headers["WWW-Authenticate"] == CHALLENGE, (what, path)
    api_as_reader = corp.get("/pulp/api/v3/tokens/", auth=(TOKEN_USER, reader))
    assert api_as_reader.status_code == 403 and "not an admin" in api_as_reader.text

    # a real client with the revoked token gets nothing
    dest = corp.folder("dl-revoked")
    cmd = ["download", *PIP, "--no-deps", "-d", str(dest), "--index-url"]
    failed = run_pip(cmd + [corp.simple(token=gone), "acme-app"], env=corp.env("pip"), check=False)
    assert failed.returncode != 0 and list(dest.iterdir()) == [], failed.stdout

    # the audit trail: who did what, and no secret in it
    events = corp.api.all("audit/", pulp_created__gte=start["pulp_created"])
    done = [(e["actor"], e["action"]) for e in reversed(events)]
    assert done == [
        ("admin", "tokens_create"),  # first
        ("admin", "tokens_create"),  # release (in publish)
        ("token:release", "upload"),
        ("admin", "tokens_create"),  # reader
        ("admin", "tokens_create"),  # gone
        ("admin", "tokens_create"),  # expired
        ("admin", "tokens_create"),  # ops
        ("admin", "tokens_revoke"),
    ], done
    gone_href = corp.api.one("tokens/", name="gone")["pulp_href"]
    about_gone = corp.api.all("audit/", subject__contains=gone_href)
    assert {e["action"] for e in about_gone} == {"tokens_create", "tokens_revoke"}, about_gone
    created = corp.api.one("audit/", action="tokens_create", subject=gone_href)
    assert created["detail"] == {"name": "gone", "scopes": ["read:corp"], "expires_at": None}
    listed = json.dumps(corp.api.all("audit/")) + json.dumps(corp.api.all("tokens/"))
    assert {t["token"] for t in corp.api.all("tokens/")} == {None}
    for secret in corp.secrets:
        assert secret not in listed and secret.rpartition(".")[2] not in listed

    make_a_distribution_private(corp)
    log = corp.log_text()
    assert "failed authentication from 127.0.0.1" in log  # refusals are logged...
    assert f'"GET {page} HTTP/1.1" 401 ' in log
    corp.assert_secrets_not_logged()  # ...without what was tried


# ---- the failed-login limit --------------------------------------------------------------


@pytest.mark.slow
def test_failed_logins_are_limited_per_address(
    upstream: Upstream,
    gunicorn_server: Callable[..., Server],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    window = 4
    corp = start_corp(
        gunicorn_server,
        upstream,
        tmp_path,
        monkeypatch,
        auth=f'failure_burst = 3\nfailure_window = "{window}s"\n',
        workers=1,  # the limit is counted per worker process
    )
    app, _ = publish(corp)
    reader = corp.token("reader", "read:corp")
    outsider = corp.token("outsider", "read:other")
    wrong = reader[:-4] + "nope"
    corp.secrets.append(wrong)
    path = f"/pulp/content/corp/{app.name}"

    # valid credentials without the right, and no credentials, are no failed logins
    for _ in range(5):
        assert corp.get(path, auth=(TOKEN_USER, outsider)).status_code == 403
        assert corp.get(path).status_code == 401
    assert corp.get(path, auth=(TOKEN_USER, reader)).status_code == 200

    for _ in range(3):
        assert corp.get(path, auth=(TOKEN_USER, wrong)).status_code == 401
    locked_at = time.monotonic()
    for kwargs in (
        {"auth": (TOKEN_USER, wrong)},
        {"auth": (TOKEN_USER, reader)},  # even the right token
        {"auth": AUTH},  # even the admin
    ):
        resp = corp.get(path, **kwargs)
        assert resp.status_code == 429, (kwargs, resp.status_code, resp.text)
        assert 1 <= int(resp.headers["Retry-After"]) <= window, resp.headers
    assert corp.api.request("GET", "tokens/").status_code == 429
    # pip, even with the right token, is answered 429 too: it waits as long as Retry-After
    # says (urllib3 honours it), asks again, and gets through once the window has passed
    dest = corp.folder("dl-locked")
    cmd = ["download", *PIP, "--no-deps", "-d", str(dest), "acme-app"]
    run_pip(cmd + ["--index-url", corp.simple(token=reader)], env=corp.env("pip-locked"))
    assert [p.name for p in dest.iterdir()] == [app.name]
    waited = re.search(r'"GET /pypi/corp/simple/acme-app/ HTTP/1\.1" 429 .*"pip/', corp.log_text())
    assert waited is not None, "pip came after the window passed (a very slow machine?)"
    assert corp.served("/pypi/corp/simple/acme-app/", "pip")
    assert time.monotonic() - locked_at >= window - 1  # it did wait
    # the window has passed: everyone is welcome again (429s did not extend it)
    assert corp.get(path, auth=(TOKEN_USER, reader)).status_code == 200
    assert corp.api.request("GET", "tokens/").status_code == 200
    corp.assert_secrets_not_logged()
