"""`pullthrough warm` against a gunicorn server over the loopback upstream: lock files written
by the real tools (`uv lock`, `uv export --format pylock.toml`, `poetry lock`, run against the
upstream itself, as a team would have locked against PyPI) and a requirements file with hashes;
then, with the upstream gone, pip and uv install that set from the cache. Pinned hashes are
checked; an interrupted run, run again, fetches only the rest; `--into-repository` promotes
what was fetched."""

from __future__ import annotations

import os
import pty
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from pullthrough.services.pullthrough import PullThrough, StoredFile
from support.api import PASSWORD, Api, with_auth
from support.packages import build_wheel
from support.servers import PROXY_UA, Server, config_text, wait_until
from support.tools import clean_env, make_venv, run_pip
from support.upstream import Upstream

pytestmark = pytest.mark.e2e

PROJECTS = ("shelf-reader", "winonly", "meta-lib", "app-with-dep")  # the wheelhouse's
TIMEOUT = 120  # seconds, for every subprocess
SUMMARY = re.compile(
    r"(\d+) files? of (\d+) projects? through 'main': (\d+) fetched \(.*\), (\d+) already cached"
)


def env(tmp: Path, **extra: str) -> dict[str, str]:
    base = {k: v for k, v in clean_env().items() if not k.startswith("PULLTHROUGH_")}
    return {**base, "HOME": str(tmp / "home"), "XDG_CONFIG_HOME": str(tmp / "xdg"), **extra}


@dataclass
class Warm:
    server: Server
    upstream: Upstream
    tmp: Path

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "pullthrough.cli", "warm", "--distribution", "main", *args]

    def env(self) -> dict[str, str]:
        return env(self.tmp, PULLTHROUGH_URL=self.server.url, PULLTHROUGH_PASSWORD=PASSWORD)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*args),
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            stdin=subprocess.DEVNULL,
            check=False,
        )

    def ok(self, *args: str) -> tuple[int, int]:
        """Run; it must succeed; (fetched, already cached)."""
        proc = self.run(*args)
        assert proc.returncode == 0, f"{args}\n{proc.stdout}\n{proc.stderr}"
        assert "Traceback" not in proc.stderr and "warming [" not in proc.stderr  # not a tty
        match = SUMMARY.search(proc.stdout)
        assert match, proc.stdout
        return int(match[3]), int(match[4])

    def fetched_upstream(self) -> list[str]:
        """The files the upstream sent so far (each request), by filename."""
        return [r.path.rsplit("/", 1)[-1] for r in self.upstream.requests_for("/files/")]


@pytest.fixture
def warm(upstream: Upstream, gunicorn_server: Callable[..., Server], tmp_path: Path) -> Warm:
    text = with_auth(config_text(upstream.index_url, tmp_path / "data"))
    return Warm(gunicorn_server(text), upstream, tmp_path)


def files_of(upstream: Upstream, *projects: str) -> dict[str, str]:
    return {f.filename: f.sha256 for p in projects for f in upstream.files_for(p)}


def with_metadata(upstream: Upstream, filenames: dict[str, str]) -> list[str]:
    """What the upstream sends for these files: each file, and its PEP 658 metadata when it has
    some (pip and uv read it first: warm fetches it too)."""
    names = list(filenames)
    names += [
        f"{f.filename}.metadata"
        for f in (f for p in PROJECTS for f in upstream.files_for(p) if f.metadata)
        if f.filename in filenames
    ]
    return sorted(names)


def tool(cmd: list[str], cwd: Path, environ: dict[str, str]) -> None:
    proc = subprocess.run(
        cmd, cwd=cwd, env=environ, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout}\n{proc.stderr}"


def lock_with_uv(upstream: Upstream, tmp: Path) -> Path:
    """uv.lock and pylock.toml of a project depending on app-with-dep, locked against the
    upstream (their URLs point at it, not at our server)."""
    project = tmp / "uv-project"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        '[project]\nname = "consumer"\nversion = "0.1.0"\nrequires-python = ">=3.11"\n'
        'dependencies = ["app-with-dep"]\n\n'
        f'[tool.uv]\nindex-url = "{upstream.index_url}"\n'
    )
    environ = env(tmp, UV_CACHE_DIR=str(tmp / "uv-cache"))
    tool([sys.executable, "-m", "uv", "lock"], project, environ)
    export = ["export", "--format", "pylock.toml", "-o", "pylock.toml", "--quiet"]
    tool([sys.executable, "-m", "uv", *export], project, environ)
    return project


def lock_with_poetry(upstream: Upstream, tmp: Path) -> Path:
    """poetry.lock of a project depending on meta-lib, locked against the upstream."""
    project = tmp / "poetry-project"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        '[project]\nname = "consumer"\nversion = "0.1.0"\nrequires-python = ">=3.11"\n'
        'dependencies = ["meta-lib"]\n\n[tool.poetry]\npackage-mode = false\n\n'
        f'[[tool.poetry.source]]\nname = "up"\nurl = "{upstream.index_url}"\n'
        'priority = "primary"\n'
    )
    root = tmp / "poetry-home"
    environ = env(
        tmp,
        POETRY_CONFIG_DIR=str(root / "config"),
        POETRY_CACHE_DIR=str(root / "cache"),
        POETRY_DATA_DIR=str(root / "data"),
        POETRY_KEYRING_ENABLED="false",
        POETRY_NO_INTERACTION="1",
        POETRY_VIRTUALENVS_IN_PROJECT="true",
    )
    tool(
        [sys.executable, "-m", "poetry", "--no-interaction", "--no-ansi", "lock"], project, environ
    )
    return project / "poetry.lock"


@pytest.mark.slow
def test_warmed_files_install_without_the_upstream(warm: Warm, tmp_path: Path) -> None:
    upstream = warm.upstream
    uv_project = lock_with_uv(upstream, tmp_path)
    poetry_lock = lock_with_poetry(upstream, tmp_path)
    winonly = files_of(upstream, "winonly")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(
        "# the whole wheelhouse is not wanted: an unpinned range and hash pins\n"
        "--index-url https://pypi.org/simple\n"
        "shelf-reader>=0.1,<0.2\n"
        "winonly==1.0 \\\n"
        + " \\\n".join(f"    --hash=sha256:{sha}" for sha in winonly.values())
        + "\n"
    )
    upstream.clear_log()  # the tools' own requests

    # uv.lock: app-with-dep and shelf-reader 0.2 (its wheel), through our server
    locked = files_of(upstream, "app-with-dep") | {
        f: s for f, s in files_of(upstream, "shelf-reader").items() if "-0.2" in f
    }
    assert len(locked) == 2
    assert warm.ok(str(uv_project / "uv.lock")) == (len(locked), 0)
    assert sorted(warm.fetched_upstream()) == with_metadata(upstream, locked)
    assert all((r.header("user-agent") or "").startswith(PROXY_UA) for r in upstream.log)
    # pylock.toml names the same files: all held already, nothing fetched again
    assert warm.ok(str(uv_project / "pylock.toml")) == (0, len(locked))
    assert sorted(warm.fetched_upstream()) == with_metadata(upstream, locked)
    # poetry.lock (meta-lib) and the requirements file (shelf-reader 0.1, winonly) together
    upstream.clear_log()
    expected = files_of(upstream, "meta-lib") | winonly
    expected |= {f: s for f, s in files_of(upstream, "shelf-reader").items() if "-0.1" in f}
    assert len(expected) == 5
    assert warm.ok(str(poetry_lock), str(requirements), "--jobs", "3") == (len(expected), 0)
    assert sorted(warm.fetched_upstream()) == with_metadata(upstream, expected)

    # the upstream goes away: every warmed file is still served, whole
    upstream.down()
    for filename, sha256 in (locked | expected).items():
        resp = requests.get(f"{warm.server.url}/pulp/content/main/{filename}", timeout=30)
        assert resp.status_code == 200, (filename, resp.text)
        assert resp.headers["ETag"].strip('"') == sha256
    python = make_venv(tmp_path / "pip-venv")
    run_pip(
        ["install", "--index-url", warm.server.index(), "app-with-dep", "meta-lib"],
        python=python,
        timeout=TIMEOUT,
    )
    assert installed(python, "app_with_dep", "shelf_reader", "meta_lib") == ["1.0", "0.2", "2.0"]
    python = make_venv(tmp_path / "uv-venv")
    uv = [sys.executable, "-m", "uv", "pip", "install", "--python", str(python)]
    uv += ["--index-url", warm.server.index(), "--cache-dir", str(tmp_path / "uv-cache-2")]
    tool([*uv, "shelf-reader==0.1"], tmp_path, env(tmp_path))
    assert installed(python, "shelf_reader") == ["0.1"]


def installed(python: Path, *modules: str) -> list[str]:
    code = "; ".join(f"import {m}; print({m}.__version__)" for m in modules)
    out = subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    return out.stdout.split()


def test_a_wrong_pinned_hash_fails_naming_the_file(warm: Warm, tmp_path: Path) -> None:
    shelf = files_of(warm.upstream, "shelf-reader")
    wheel = "shelf_reader-0.1-py3-none-any.whl"
    wrong = "0" * 64
    uv_lock = tmp_path / "uv.lock"
    uv_lock.write_text(
        'version = 1\nrevision = 5\nrequires-python = ">=3.11"\n\n'
        '[[package]]\nname = "shelf-reader"\nversion = "0.1"\n'
        'source = { registry = "https://pypi.org/simple" }\n'
        f'sdist = {{ url = "https://files.example/x/shelf_reader-0.1.tar.gz", '
        f'hash = "sha256:{shelf["shelf_reader-0.1.tar.gz"]}" }}\n'
        f'wheels = [{{ url = "https://files.example/x/{wheel}", hash = "sha256:{wrong}" }}]\n'
    )
    proc = warm.run(str(uv_lock))
    assert proc.returncode == 1, proc
    assert "Traceback" not in proc.stderr
    assert (
        f"Error: {wheel}: {uv_lock} (shelf-reader 0.1) pins sha256 {wrong}, "
        f"the index has {shelf[wheel]}"
    ) in proc.stderr.splitlines()
    assert proc.stderr.splitlines()[-1] == "Error: 1 of the files named could not be warmed."
    # the file the lock pins wrongly is not fetched; the rest is
    assert warm.fetched_upstream() == ["shelf_reader-0.1.tar.gz"]

    # a requirements file: a pin that no file of the version has
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"meta-lib==2.0 --hash=sha256:{wrong}\n")
    proc = warm.run(str(requirements))
    assert proc.returncode == 1
    assert f"Error: {requirements}:1: no file of meta-lib 2.0 has sha256 {wrong}" in proc.stderr

    # the server refuses bytes that are not the index's (the server checks them too)
    warm.upstream.corrupt_files = True
    requirements.write_text("meta-lib==2.0\n")
    proc = warm.run(str(requirements))
    assert proc.returncode == 1
    assert "Error: meta_lib-2.0-py3-none-any.whl: the server answered HTTP 502" in proc.stderr

    # bad input: a clear message, no traceback
    uv_lock.write_text("[[package]\n")
    proc = warm.run(str(uv_lock))
    assert (proc.returncode, proc.stderr.startswith(f"Error: {uv_lock} is not valid TOML")) == (
        1,
        True,
    ), proc.stderr
    proc = warm.run(str(tmp_path / "missing.txt"))
    assert (
        proc.returncode == 1 and "Could not read" in proc.stderr and "Traceback" not in proc.stderr
    )


def test_an_interrupted_run_run_again_fetches_only_the_rest(warm: Warm, tmp_path: Path) -> None:
    upstream = warm.upstream
    wanted = files_of(upstream, "shelf-reader", "winonly", "meta-lib", "app-with-dep")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(
        "shelf-reader==0.1\nshelf-reader==0.2\nwinonly==1.0\nmeta-lib\napp-with-dep\n"
    )
    wanted = {f: s for f, s in wanted.items() if "-0.3" not in f and "rc1" not in f}
    assert len(wanted) == 7
    upstream.chunk_size, upstream.slow_files = 128, 0.05  # each file takes a while

    proc = subprocess.Popen(
        warm.command(str(requirements), "--jobs", "1"),
        env=warm.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    try:
        assert wait_until(lambda: len(warm.fetched_upstream()) >= 2, timeout=30)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    first = warm.fetched_upstream()
    first_files = [f for f in first if not f.endswith(".metadata")]
    assert 1 <= len(first_files) < len(wanted), first

    def held(filename: str) -> bool:
        url = f"{warm.server.url}/pulp/content/main/{filename}"
        return requests.head(url, timeout=10).headers.get("ETag") == f'"{wanted[filename]}"'

    # the server finishes what it started (at the upstream's pace), whoever asked
    assert wait_until(lambda: all(held(f) for f in first_files), timeout=30)
    upstream.slow_files = 0.0
    fetched, cached = warm.ok(str(requirements), "--jobs", "4")
    assert (fetched, cached) == (len(wanted) - len(first_files), len(first_files))
    again = warm.fetched_upstream()[len(first) :]
    # each file (and metadata file) once: the rest fetched now
    assert sorted(first + again) == with_metadata(upstream, wanted)
    assert warm.ok(str(requirements)) == (0, len(wanted))  # done: a third run fetches nothing
    assert warm.fetched_upstream() == first + again


def test_a_file_stored_while_its_last_bytes_went_out_counts_as_cached(
    upstream: Upstream,
    live_server: Callable[..., Server],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A fetched file is stored while its last bytes go out. A run started right after may
    find it not stored yet (its HEAD), then gets it from the store (its GET waits for the
    storing), not from the upstream: already cached, as the summary says."""
    wanted = {f: s for f, s in files_of(upstream, "shelf-reader").items() if "-0.1" in f}
    assert len(wanted) == 2  # a wheel and an sdist
    release, heads = threading.Event(), []
    keep, peek = PullThrough._keep, PullThrough.peek

    def slow_keep(self: PullThrough, *args: Any) -> Any:
        release.wait(timeout=30)  # a slow disk: the first run's answers go out before
        return keep(self, *args)

    def peek_and_go_on(self: PullThrough, dist: Any, filename: str) -> Any:
        found = peek(self, dist, filename)
        heads.append(isinstance(found, StoredFile))
        if len(heads) == 2 * len(wanted):
            release.set()  # the second run has found them not stored: the storing goes on
        return found

    monkeypatch.setattr(PullThrough, "_keep", slow_keep)
    monkeypatch.setattr(PullThrough, "peek", peek_and_go_on)
    server = live_server(with_auth(config_text(upstream.index_url, tmp_path / "data")))
    warm = Warm(server, upstream, tmp_path)
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("shelf-reader==0.1\n")
    try:
        assert warm.ok(str(requirements)) == (len(wanted), 0)
        assert warm.ok(str(requirements)) == (0, len(wanted))
    finally:
        release.set()
    assert heads == [False] * 2 * len(wanted)
    assert sorted(warm.fetched_upstream()) == with_metadata(upstream, wanted)  # each once


def test_into_repository_promotes_what_was_fetched(warm: Warm, tmp_path: Path) -> None:
    api = Api(warm.server.url)
    repository = api.repository("warmed")
    shelf = {f: s for f, s in files_of(warm.upstream, "shelf-reader").items() if "-0.1" in f}
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("shelf-reader==0.1\n")
    # an orphan of our own: the cleanup below must have something to remove
    orphan = build_wheel(tmp_path, "lonely", "1.0").name
    api.upload(tmp_path / orphan)
    assert api.get("content/python/packages/", filename=orphan)["count"] == 1

    proc = warm.run(str(requirements), "--into-repository", "warmed")
    assert proc.returncode == 0, proc.stderr
    assert "2 packages in repository 'warmed' (version 1)" in proc.stdout
    latest = api.get(repository["pulp_href"])["latest_version_href"]
    assert latest.endswith("/versions/1/")
    content = api.all("content/python/packages/", repository_version=latest)
    assert {(c["filename"], c["sha256"]) for c in content} == set(shelf.items())
    assert {c["origin"] for c in content} == {"cache"}

    api.run("POST", "orphans/cleanup/", json={"orphan_protection_time": 0})
    assert api.get("content/python/packages/", filename=orphan)["count"] == 0
    after = api.all("content/python/packages/", repository_version=latest)
    assert {c["pulp_href"] for c in after} == {c["pulp_href"] for c in content}
    for filename in shelf:
        resp = requests.get(f"{warm.server.url}/pulp/content/main/{filename}", timeout=30)
        assert resp.status_code == 200

    # again: nothing to fetch, nothing new to add
    proc = warm.run(str(requirements), "--into-repository", "warmed")
    assert proc.returncode == 0, proc.stderr
    assert "0 fetched" in proc.stdout and "2 already cached" in proc.stdout
    assert "(no new version: already there)" in proc.stdout


def test_a_private_distribution_with_a_read_token(warm: Warm, tmp_path: Path) -> None:
    api = Api(warm.server.url)
    dist = api.one("distributions/python/pypi/", name="main")
    api.run("PATCH", dist["pulp_href"], json={"private": True})
    token = api.create("tokens/", name="reader", scopes=["read:main"])["token"]
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("meta-lib==2.0\n")
    command = [sys.executable, "-m", "pullthrough.cli", "warm", "--base-path", "main"]

    def run(*credentials: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*command[:3], *credentials, *command[3:], str(requirements)],
            env=env(tmp_path, PULLTHROUGH_URL=warm.server.url),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            stdin=subprocess.DEVNULL,
            check=False,
        )

    refused = run()
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "Error: meta-lib: the index answered HTTP 401" in refused.stderr
    assert warm.fetched_upstream() == []
    done = run("--username", "__token__", "--password", token)
    assert done.returncode == 0, done.stderr
    assert "1 fetched" in done.stdout
    assert "meta_lib-2.0-py3-none-any.whl" in warm.fetched_upstream()


def test_a_progress_bar_on_a_terminal(warm: Warm, tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("shelf-reader==0.1\nwinonly==1.0\n")
    warm.upstream.chunk_size, warm.upstream.slow_files = 256, 0.02
    primary, secondary = pty.openpty()
    try:
        proc = subprocess.run(
            warm.command(str(requirements), "--jobs", "2"),
            env=warm.env(),
            stdout=subprocess.PIPE,
            stderr=secondary,
            stdin=subprocess.DEVNULL,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        os.close(secondary)
        drawn = b""
        while chunk := _read(primary):
            drawn += chunk
    finally:
        os.close(primary)
    assert proc.returncode == 0, drawn
    frames = drawn.decode().split("\r")
    assert frames[1].startswith("warming [....") and "0/4" in frames[1]
    assert "warming [##############################] 4/4 (0 cached, 0 failed)" in drawn.decode()
    assert SUMMARY.search(proc.stdout) and "warming" not in proc.stdout  # the bar: stderr only


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # the other end is closed: all read
        return b""
