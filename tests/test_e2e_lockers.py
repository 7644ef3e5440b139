"""Lockers and publishers through the proxy under gunicorn: uv (`uv lock`, `uv sync`,
`uv publish`, `uv add`), poetry (`poetry lock`, `install`, `build`, `publish -r`, `add`) and pdm
(`pdm lock`, `install`, `publish`, `add`), each against a distribution `corp` that proxies the
loopback upstream and takes uploads.

Each locks the same small project twice, once straight against the upstream and once through
the proxy: both locks must hold the same versions and the same hashes, which are the
upstream's. Then everything the tool did through the proxy must have come through it: the
upstream saw only our user agent, every URL in the lock points at our server, our store holds
the upstream's files (by their sha256), and the access log shows the tool fetching each file.
Finally each tool publishes a wheel to `corp` (with an upload token) and adds it to the
project, resolving it beside the upstream's packages, from the same index.

Every tool runs with a scratch HOME/XDG folders, its cache and config in the test's folder, no
keyring, and HTTP(S)_PROXY pointing at a dead loopback port (NO_PROXY=127.0.0.1): whatever is
not our server or the loopback upstream fails at once.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.api import Api, with_auth
from support.packages import build_wheel, sha256_of
from support.servers import PROXY_UA, Server, config_text, free_port, settle, stored_files
from support.tools import clean_env, ok, poetry_settings, run
from support.upstream import Upstream

pytestmark = pytest.mark.e2e

TOKEN_USER = "__token__"
# what the project below resolves to on the upstream (0.3 is yanked, 0.4rc1 a prerelease)
DEPENDENCIES = ["app-with-dep", "meta-lib"]
RESOLVED = {"app-with-dep": "1.0", "meta-lib": "2.0", "shelf-reader": "0.2"}

Locked = dict[str, tuple[str, frozenset[str]]]  # name: (version, sha256 digests of its files)


@dataclass
class Bench:
    """A gunicorn server whose distribution `corp` proxies the upstream (remote) and takes
    uploads (repository `corp`), its access log in the server log."""

    server: Server
    api: Api
    upstream: Upstream
    tmp: Path
    dead_proxy: str

    @property
    def simple(self) -> str:
        return f"{self.server.url}/pypi/corp/simple/"

    @property
    def legacy(self) -> str:
        return f"{self.server.url}/pypi/corp/legacy/"

    def folder(self, name: str) -> Path:
        path = self.tmp / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def upload_token(self, name: str) -> str:
        created = self.api.create("tokens/", name=name, scopes=["upload:corp"])
        secret: str = created["token"]
        return secret

    def env(self, home: str, **extra: str) -> dict[str, str]:
        """clean_env() with an empty HOME and XDG folders, none of the caller's settings for the
        tools, no keyring, and a dead proxy for everything but loopback; then `extra`."""
        drop = ("PULLTHROUGH_", "POETRY_", "PDM_", "XDG_", "NETRC", "VIRTUAL_ENV", "CONDA_")
        base = {k: v for k, v in clean_env().items() if not k.startswith(drop)}
        root = self.folder(home)
        dead = self.dead_proxy
        proxies = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")
        return {
            **base,
            "HOME": str(root),
            "XDG_CONFIG_HOME": str(root / ".config"),
            "XDG_CACHE_HOME": str(root / ".cache"),
            "XDG_DATA_HOME": str(root / ".local" / "share"),
            "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
            **{name: dead for name in proxies},
            **{name.lower(): dead for name in proxies},
            "NO_COLOR": "1",
            "COLUMNS": "200",
            **extra,
        }

    def log_text(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.tmp.glob("server-*.log")))

    def fetched(self, path: str, agent: str) -> bool:
        """Whether the access log shows a GET of `path` answered 200 or 206 to `agent`."""
        request = re.escape(f'"GET {path} HTTP/1.1" ')
        pattern = f'{request}20[06] .*"{re.escape(agent)}/'
        return re.search(pattern, self.log_text(), flags=re.IGNORECASE) is not None


@pytest.fixture
def bench(
    upstream: Upstream,
    gunicorn_server: Callable[..., Server],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Bench:
    monkeypatch.setenv("PULLTHROUGH_ACCESS_LOG", "-")  # to stdout: the server log
    server = gunicorn_server(with_auth(config_text(upstream.index_url, tmp_path / "data")))
    api = Api(server.url)
    remote = api.remote("corp-upstream", upstream.index_url)
    repo = api.repository("corp")
    dist = api.distribution("corp", repository=repo["pulp_href"], remote=remote["pulp_href"])
    assert dist["allow_uploads"] is True and dist["private"] is False, dist
    return Bench(server, api, upstream, tmp_path, f"http://127.0.0.1:{free_port()}")


def digest(value: str) -> str:
    algorithm, _, hexdigest = value.partition(":")
    assert algorithm == "sha256" and len(hexdigest) == 64, value
    return hexdigest


def upstream_locked(upstream: Upstream) -> Locked:
    """What the project must lock to: the versions in RESOLVED, with the upstream's digests of
    every file of each."""
    return {
        name: (
            version,
            frozenset(f.sha256 for f in upstream.files_for(name) if f.version == version),
        )
        for name, version in RESOLVED.items()
    }


def pyproject(name: str, extra: str) -> str:
    deps = ", ".join(f'"{d}"' for d in DEPENDENCIES)
    return (
        f'[project]\nname = "{name}"\nversion = "0.1.0"\nrequires-python = ">=3.11"\n'
        f"dependencies = [{deps}]\n\n{extra}"
    )


def versions_in(venv: Path, *modules: str) -> list[str]:
    code = "; ".join(f"import {m}; print({m}.__version__)" for m in modules)
    return ok(run([str(venv / "bin" / "python"), "-c", code], clean_env())).stdout.split()


def assert_installed_as_upstream(bench: Bench, venv: Path) -> None:
    """Every file of the upstream's wheels for RESOLVED is installed in `venv`, byte for byte
    (the dist-info folders aside: installers add to them)."""
    (site,) = venv.glob("lib/python3*/site-packages")
    for name, version in RESOLVED.items():
        (wheel,) = (
            f
            for f in bench.upstream.files_for(name)
            if f.version == version and f.filename.endswith(".whl")
        )
        with zipfile.ZipFile(io.BytesIO(wheel.data)) as zf:
            members = [m for m in zf.namelist() if ".dist-info/" not in m]
            assert members, wheel.filename
            for member in members:
                assert (site / member).read_bytes() == zf.read(member), (wheel.filename, member)


def assert_only_the_proxy_reached_upstream(upstream: Upstream) -> None:
    agents = {rec.header("user-agent") or "" for rec in upstream.log}
    assert agents and all(a.startswith(PROXY_UA) for a in agents), agents


def assert_came_through(bench: Bench, agent: str, filenames: Iterable[str]) -> None:
    """The upstream saw only us, our store holds the upstream's files for RESOLVED, and the
    tool fetched each of `filenames` from our server."""
    assert_only_the_proxy_reached_upstream(bench.upstream)
    assert settle(bench.server.data_dir)  # the last file is stored just after the tool has it
    stored = {p.name for p in stored_files(bench.server.data_dir)}
    wanted = {h for _, hashes in upstream_locked(bench.upstream).values() for h in hashes}
    assert wanted <= stored, wanted - stored
    for filename in filenames:
        assert bench.fetched(f"/pulp/content/corp/{filename}", agent), (filename, agent)


def publish_wheel(bench: Bench, name: str) -> Path:
    """A wheel for `name` 1.0 that needs shelf-reader (which only the upstream has)."""
    return build_wheel(
        bench.folder(f"{name}-dist"), name, "1.0", requires_dist=["shelf-reader>=0.1"]
    )


def assert_published(bench: Bench, wheel: Path, agent: str) -> None:
    (stored,) = bench.api.packages(filename=wheel.name)
    assert stored["sha256"] == sha256_of(wheel) and stored["uploaded_by"] == "token:publisher"
    request = re.escape('"POST /pypi/corp/legacy/ HTTP/1.1" 200 ')
    assert re.search(f'{request}.*"{agent}/', bench.log_text(), flags=re.IGNORECASE), agent


# ---- uv ------------------------------------------------------------------------------------


def uv_env(bench: Bench, home: str) -> dict[str, str]:
    return bench.env(
        home,
        UV_CACHE_DIR=str(bench.tmp / home / "uv-cache"),
        UV_PYTHON=sys.executable,
        UV_PYTHON_DOWNLOADS="never",
        UV_NO_PROGRESS="1",
    )


def uv_project(bench: Bench, name: str, index: str) -> Path:
    project = bench.folder(name)
    (project / "pyproject.toml").write_text(
        pyproject(name, f'[[tool.uv.index]]\nname = "corp"\nurl = "{index}"\ndefault = true\n')
    )
    return project


def uv_locked(project: Path) -> tuple[Locked, dict[str, list[str]]]:
    """The lock's registry packages, and the URLs of their files and their index by name."""
    lock = tomllib.loads((project / "uv.lock").read_text())
    locked: Locked = {}
    urls: dict[str, list[str]] = {}
    for package in lock["package"]:
        if "registry" not in package["source"]:
            continue  # the project itself
        files = [*package.get("wheels", []), *([package["sdist"]] if "sdist" in package else [])]
        name = package["name"]
        locked[name] = (package["version"], frozenset(digest(f["hash"]) for f in files))
        urls[name] = [package["source"]["registry"], *(f["url"] for f in files)]
    return locked, urls


def test_uv_locks_syncs_publishes_and_adds_through_the_proxy(bench: Bench) -> None:
    uv = [sys.executable, "-m", "uv"]
    direct = uv_project(bench, "uv-direct", bench.upstream.index_url)
    ok(run([*uv, "lock"], uv_env(bench, "uv-direct-home"), cwd=direct))
    bench.upstream.clear_log()

    project = uv_project(bench, "uv-app", bench.simple)
    env = uv_env(bench, "uv-home")
    ok(run([*uv, "lock"], env, cwd=project))
    expected = upstream_locked(bench.upstream)
    assert uv_locked(direct)[0] == expected
    locked, urls = uv_locked(project)
    assert locked == expected
    everywhere = [url for found in urls.values() for url in found]
    assert all(url.startswith(bench.server.url + "/") for url in everywhere), everywhere

    ok(run([*uv, "sync"], env, cwd=project))
    venv = project / ".venv"
    assert versions_in(venv, "app_with_dep", "meta_lib", "shelf_reader") == ["1.0", "2.0", "0.2"]
    assert_installed_as_upstream(bench, venv)
    filenames = [url.rsplit("/", 1)[1] for found in urls.values() for url in found[1:]]
    assert_came_through(bench, "uv", filenames)

    wheel = publish_wheel(bench, "pub-uv")
    token = bench.upload_token("publisher")
    cmd = [*uv, "publish", "--publish-url", bench.legacy, "--username", TOKEN_USER]
    ok(run([*cmd, "--password", token, "--trusted-publishing", "never", str(wheel)], env))
    assert_published(bench, wheel, "uv")

    ok(run([*uv, "add", "pub-uv"], env, cwd=project))
    locked, urls = uv_locked(project)
    assert locked == {**expected, "pub-uv": ("1.0", frozenset({sha256_of(wheel)}))}
    assert urls["pub-uv"] == [bench.simple, f"{bench.server.url}/pulp/content/corp/{wheel.name}"]
    assert versions_in(venv, "pub_uv", "shelf_reader") == ["1.0", "0.2"]
    assert bench.fetched(f"/pulp/content/corp/{wheel.name}", "uv")
    assert_only_the_proxy_reached_upstream(bench.upstream)


# ---- poetry --------------------------------------------------------------------------------


def poetry(bench: Bench, home: str, project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = bench.env(home, **poetry_settings(bench.tmp / home))
    cmd = [sys.executable, "-m", "poetry", "--no-interaction", "--no-ansi", *args]
    return run(cmd, env, cwd=project)


def poetry_project(bench: Bench, name: str, index: str) -> Path:
    project = bench.folder(name)
    source = f'[[tool.poetry.source]]\nname = "corp"\nurl = "{index}"\npriority = "primary"\n'
    (project / "pyproject.toml").write_text(
        pyproject(name, f"[tool.poetry]\npackage-mode = false\n\n{source}")
    )
    return project


def poetry_locked(project: Path) -> tuple[Locked, set[str], list[str]]:
    """The lock's packages, the URLs of their sources, and their files' names."""
    lock = tomllib.loads((project / "poetry.lock").read_text())
    locked: Locked = {
        p["name"]: (p["version"], frozenset(digest(f["hash"]) for f in p["files"]))
        for p in lock["package"]
    }
    files = [f["file"] for p in lock["package"] for f in p["files"]]
    return locked, {p["source"]["url"] for p in lock["package"]}, files


@pytest.mark.slow
def test_poetry_locks_installs_publishes_and_adds_through_the_proxy(bench: Bench) -> None:
    direct = poetry_project(bench, "poetry-direct", bench.upstream.index_url)
    ok(poetry(bench, "poetry-direct-home", direct, "lock"))
    bench.upstream.clear_log()

    project = poetry_project(bench, "poetry-app", bench.simple)
    ok(poetry(bench, "poetry-home", project, "lock"))
    expected = upstream_locked(bench.upstream)
    assert poetry_locked(direct)[0] == expected
    locked, sources, filenames = poetry_locked(project)
    assert locked == expected and sources == {bench.simple.rstrip("/")}  # as poetry keeps it

    ok(poetry(bench, "poetry-home", project, "install"))
    venv = project / ".venv"
    assert versions_in(venv, "app_with_dep", "meta_lib", "shelf_reader") == ["1.0", "2.0", "0.2"]
    assert_installed_as_upstream(bench, venv)
    assert_came_through(bench, "poetry", filenames)

    # a package of its own: built by poetry (poetry-core, in process), published with a token
    package = bench.folder("pub-poetry")
    (package / "pub_poetry").mkdir()
    (package / "pub_poetry" / "__init__.py").write_text('__version__ = "1.0"\n')
    (package / "pyproject.toml").write_text(
        '[project]\nname = "pub-poetry"\nversion = "1.0"\nrequires-python = ">=3.11"\n'
        'dependencies = ["shelf-reader>=0.1"]\n\n'
        '[build-system]\nrequires = ["poetry-core>=2.0"]\n'
        'build-backend = "poetry.core.masonry.api"\n'
    )
    ok(poetry(bench, "poetry-home", package, "build", "--format", "wheel"))
    (wheel,) = (package / "dist").glob("*.whl")
    token = bench.upload_token("publisher")
    ok(poetry(bench, "poetry-home", package, "config", "repositories.corp", bench.legacy))
    ok(poetry(bench, "poetry-home", package, "config", "http-basic.corp", TOKEN_USER, token))
    ok(poetry(bench, "poetry-home", package, "publish", "-r", "corp"))
    assert_published(bench, wheel, "poetry")

    ok(poetry(bench, "poetry-home", project, "add", "pub-poetry"))
    locked, sources, _ = poetry_locked(project)
    assert locked == {**expected, "pub-poetry": ("1.0", frozenset({sha256_of(wheel)}))}
    assert sources == {bench.simple.rstrip("/")}
    assert versions_in(venv, "pub_poetry", "shelf_reader") == ["1.0", "0.2"]
    assert bench.fetched(f"/pulp/content/corp/{wheel.name}", "poetry")
    assert_only_the_proxy_reached_upstream(bench.upstream)


# ---- pdm -----------------------------------------------------------------------------------


def pdm(bench: Bench, home: str, project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    root = bench.tmp / home
    env = bench.env(
        home,
        PDM_CONFIG_FILE=str(root / "pdm-config.toml"),
        PDM_CACHE_DIR=str(root / "pdm-cache"),
        PDM_LOG_DIR=str(root / "pdm-log"),
        PDM_CHECK_UPDATE="false",
        PDM_PYTHON=sys.executable,  # this venv's python, no other
        PDM_IGNORE_SAVED_PYTHON="1",
        PDM_NON_INTERACTIVE="1",
        PDM_USE_UV="false",
        PDM_VENV_IN_PROJECT="true",
    )
    pdm_exe = Path(sys.executable).parent / "pdm"
    return run([str(pdm_exe), *args], env, cwd=project)


def pdm_project(bench: Bench, name: str, index: str) -> Path:
    project = bench.folder(name)
    source = f'[[tool.pdm.source]]\nname = "pypi"\nurl = "{index}"\n'  # "pypi": the default
    (project / "pyproject.toml").write_text(
        pyproject(name, f"[tool.pdm]\ndistribution = false\n\n{source}")
    )
    return project


def pdm_locked(project: Path) -> tuple[Locked, list[str]]:
    """The lock's packages and the URLs of their files (locked with --static-urls)."""
    lock = tomllib.loads((project / "pdm.lock").read_text())
    locked: Locked = {
        p["name"]: (p["version"], frozenset(digest(f["hash"]) for f in p["files"]))
        for p in lock["package"]
    }
    return locked, [f["url"] for p in lock["package"] for f in p["files"]]


@pytest.mark.slow
def test_pdm_locks_installs_publishes_and_adds_through_the_proxy(bench: Bench) -> None:
    direct = pdm_project(bench, "pdm-direct", bench.upstream.index_url)
    ok(pdm(bench, "pdm-direct-home", direct, "lock", "--static-urls"))
    bench.upstream.clear_log()

    project = pdm_project(bench, "pdm-app", bench.simple)
    ok(pdm(bench, "pdm-home", project, "lock", "--static-urls"))
    expected = upstream_locked(bench.upstream)
    assert pdm_locked(direct)[0] == expected
    locked, urls = pdm_locked(project)
    assert locked == expected
    content = f"{bench.server.url}/pulp/content/corp/"
    assert urls and all(url.startswith(content) for url in urls), urls

    ok(pdm(bench, "pdm-home", project, "install"))
    venv = project / ".venv"
    assert versions_in(venv, "app_with_dep", "meta_lib", "shelf_reader") == ["1.0", "2.0", "0.2"]
    assert_installed_as_upstream(bench, venv)
    assert_came_through(bench, "pdm", [url.removeprefix(content) for url in urls])

    wheel = publish_wheel(bench, "pub-pdm")
    token = bench.upload_token("publisher")
    cmd = ["publish", "--no-build", "--dest", str(wheel.parent), "-r", bench.legacy]
    ok(pdm(bench, "pdm-home", project, *cmd, "-u", TOKEN_USER, "-P", token))
    assert_published(bench, wheel, "pdm")

    ok(pdm(bench, "pdm-home", project, "add", "pub-pdm"))
    locked, urls = pdm_locked(project)
    assert locked == {**expected, "pub-pdm": ("1.0", frozenset({sha256_of(wheel)}))}
    assert f"{content}{wheel.name}" in urls and all(url.startswith(content) for url in urls)
    assert versions_in(venv, "pub_pdm", "shelf_reader") == ["1.0", "0.2"]
    assert bench.fetched(f"/pulp/content/corp/{wheel.name}", "pdm")
    assert_only_the_proxy_reached_upstream(bench.upstream)
