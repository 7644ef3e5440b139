"""Repair, as Pulp's: files of a repository version, or of the whole catalog, that went missing or
no longer have their sha256 are found and fetched again from where they came from; driven by the
real pulp-cli and over the API, against the server under gunicorn."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from test_e2e_cli import Cli
from test_e2e_pulp_cli import pulp_cli_server

from support.api import PASSWORD, Api, report, with_auth
from support.packages import build_wheel
from support.servers import Server, config_text, wait_until
from support.tools import run_pip
from support.upstream import Upstream

pytestmark = pytest.mark.e2e

WHL_01 = "shelf_reader-0.1-py3-none-any.whl"
SDIST_01 = "shelf_reader-0.1.tar.gz"
WHL_02 = "shelf_reader-0.2-py3-none-any.whl"


def stored(server: Server, sha256: str) -> Path:
    return server.data_dir / "artifacts" / sha256[:2] / sha256[2:4] / sha256


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def repair_tasks(api: Api) -> list[dict[str, Any]]:
    tasks = api.all("/pulp/api/v3/tasks/", name="pullthrough.tasks.repair")
    return sorted(tasks, key=lambda t: str(t["pulp_created"]))


def counts(task: dict[str, Any]) -> tuple[int, int, int]:
    """The task's missing, corrupted and repaired counts."""
    missing, corrupted, repaired = (
        report(task, code)["done"]
        for code in ("repair.missing", "repair.corrupted", "repair.repaired")
    )
    return missing, corrupted, repaired


@pytest.mark.slow
def test_pulp_cli_repairs_a_version_whose_files_were_damaged_or_lost(
    upstream: Upstream, gunicorn_server: Callable[..., Server], tmp_path: Path
) -> None:
    server, pulp = pulp_cli_server(gunicorn_server, upstream, tmp_path)
    api = Api(server.url)
    pulp.run("python", "repository", "create", "--name", "foo")
    pulp.run(
        "python", "remote", "create", "--name", "bar", "--url", upstream.index_url,
        "--includes", '["shelf-reader<0.3"]', "--policy", "immediate",
    )  # fmt: skip
    pulp.run("python", "repository", "sync", "--name", "foo", "--remote", "bar")
    mine = build_wheel(tmp_path / "mine", "acme-tools", "1.0")
    pulp.run(
        "python", "content", "upload", "--file", str(mine), "--relative-path", mine.name,
        "--repository", "foo",
    )  # fmt: skip
    packages = {p["filename"]: p for p in api.packages()}
    assert {WHL_01, SDIST_01, WHL_02, mine.name} <= set(packages)
    wheel, sdist, uploaded = (packages[n] for n in (WHL_02, SDIST_01, mine.name))
    assert wheel["metadata_sha256"]

    flip_a_byte(stored(server, wheel["sha256"]))  # bit rot
    stored(server, sdist["sha256"]).unlink()  # lost
    stored(server, wheel["metadata_sha256"]).unlink()  # lost, and its file is damaged too
    flip_a_byte(stored(server, uploaded["sha256"]))  # no other source
    upstream.clear_log()

    pulp.run("python", "repository", "version", "repair", "--repository", "foo", "--version", "2")

    (task,) = repair_tasks(api)
    assert task["state"] == "completed", task
    assert counts(task) == (2, 2, 3)  # all but the upload
    assert digest(stored(server, wheel["sha256"])) == wheel["sha256"]
    assert digest(stored(server, sdist["sha256"])) == sdist["sha256"]
    assert digest(stored(server, wheel["metadata_sha256"])) == wheel["metadata_sha256"]
    assert digest(stored(server, uploaded["sha256"])) != uploaded["sha256"]
    fetched = sorted(r.path.rsplit("/", 1)[1] for r in upstream.requests_for("/files/"))
    assert fetched == [SDIST_01, WHL_02]  # the metadata was read again from the wheel

    # What pip gets through the repository is right again (pip checks the sha256).
    pulp.run("python", "distribution", "create", "--name", "foo", "--base-path", "foo",
             "--repository", "foo")  # fmt: skip
    upstream.clear_log()
    run_pip(
        ["download", "--no-deps", "--dest", str(tmp_path / "got"),
         "--index-url", f"{server.url}/pypi/foo/simple/", "shelf-reader==0.2"],
    )  # fmt: skip
    assert digest(tmp_path / "got" / WHL_02) == wheel["sha256"]
    assert upstream.requests_for("/files/") == []  # from the store, not the upstream

    # Nothing else is wrong now: another repair (pullthrough's own CLI, the latest version)
    # finds only the upload's damage.
    cli = Cli(server.url, tmp_path / "cli")
    again = cli.ok("repository", "version", "repair", "--repository", "foo", password=PASSWORD)
    assert again["state"] == "completed" and counts(again) == (0, 1, 0)
    assert len(repair_tasks(api)) == 2

    # A synced file lost again is fetched again when a client asks for it (its recorded URL).
    stored(server, sdist["sha256"]).unlink()
    upstream.clear_log()
    got = requests.get(f"{server.url}/pulp/content/foo/{SDIST_01}", timeout=30)
    assert got.status_code == 200 and hashlib.sha256(got.content).hexdigest() == sdist["sha256"]
    assert [r.path.rsplit("/", 1)[1] for r in upstream.requests_for("/files/")] == [SDIST_01]


def test_repair_of_everything_drops_a_damaged_cache_file_and_checks_only_when_asked(
    upstream: Upstream, live_server: Callable[..., Server], tmp_path: Path
) -> None:
    """`POST /pulp/api/v3/repair/`: every stored file. A pull-through cache file that lost its
    sha256 is removed, and the next request fetches it again; with verify_checksums false,
    only missing files are looked for."""
    proxy = live_server(with_auth(config_text(upstream.index_url, tmp_path / "data")))
    api = Api(proxy.url)
    sha = next(f.sha256 for f in upstream.files_for("shelf-reader") if f.filename == WHL_02)
    page = requests.get(f"{proxy.url}/pypi/main/simple/shelf-reader/", timeout=30)
    assert page.status_code == 200 and WHL_02 in page.text
    file_url = f"{proxy.url}/pulp/content/main/{WHL_02}"
    got = requests.get(file_url, timeout=30)
    assert got.status_code == 200 and hashlib.sha256(got.content).hexdigest() == sha
    assert wait_until(lambda: stored(proxy, sha).exists(), 10)  # stored after the answer
    flip_a_byte(stored(proxy, sha))

    quick = Cli(proxy.url, tmp_path / "cli").ok(
        "repair", "--no-verify-checksums", password=PASSWORD
    )
    assert quick["state"] == "completed" and counts(quick) == (0, 0, 0)
    assert stored(proxy, sha).exists()
    full = api.run("POST", "/pulp/api/v3/repair/", json={})
    assert full["state"] == "completed" and counts(full) == (0, 1, 1)
    assert not stored(proxy, sha).exists()

    upstream.clear_log()
    again = requests.get(file_url, timeout=30)
    assert again.status_code == 200 and hashlib.sha256(again.content).hexdigest() == sha
    assert [r.path.rsplit("/", 1)[1] for r in upstream.requests_for("/files/")] == [WHL_02]

    refused = api.request("POST", "/pulp/api/v3/repair/", json={"verify_checksums": "maybe"})
    assert refused.status_code == 400 and "verify_checksums" in refused.json()


@pytest.mark.slow
def test_repair_of_everything_drops_a_damaged_cached_metadata_file(
    upstream: Upstream, live_server: Callable[..., Server], tmp_path: Path
) -> None:
    """A PEP 658 metadata file the cache keeps is recorded by no package, only by the cache's
    ledger: a whole repair checks it too. Damaged, it is removed, and the next request for it
    fetches it again (the client gets the right bytes); a metadata file that is gone is no
    longer counted in the cache."""
    added = upstream.add_file(
        "acme-meta", build_wheel(tmp_path / "w", "acme-meta", "1.0"), metadata=True
    )
    assert added.metadata is not None and added.metadata_sha256 is not None
    proxy = live_server(with_auth(config_text(upstream.index_url, tmp_path / "data")))
    api = Api(proxy.url)
    page = requests.get(f"{proxy.url}/pypi/main/simple/acme-meta/", timeout=30)
    assert page.status_code == 200 and added.filename in page.text
    url = f"{proxy.url}/pulp/content/main/{added.filename}.metadata"
    got = requests.get(url, timeout=30)
    assert got.status_code == 200 and got.content == added.metadata
    kept = stored(proxy, added.metadata_sha256)
    assert wait_until(kept.exists, 10)
    flip_a_byte(kept)

    full = api.run("POST", "/pulp/api/v3/repair/", json={})
    assert full["state"] == "completed" and counts(full) == (0, 1, 1)
    assert not kept.exists()
    upstream.clear_log()
    again = requests.get(url, timeout=30)
    assert again.status_code == 200 and again.content == added.metadata
    assert [r.path.rsplit("/", 1)[1] for r in upstream.requests_for("/files/")] == [
        f"{added.filename}.metadata"
    ]

    def cache() -> dict[str, int]:
        status: dict[str, Any] = requests.get(f"{proxy.url}/pulp/api/v3/status/", timeout=30).json()
        return dict(status["cache"])

    assert wait_until(kept.exists, 10)
    before = cache()
    kept.unlink()  # lost from the disk
    gone = api.run("POST", "/pulp/api/v3/repair/", json={"verify_checksums": False})
    assert gone["state"] == "completed" and counts(gone) == (0, 0, 0)  # not content: no loss
    assert cache() == {
        **before,
        "files": before["files"] - 1,
        "size": before["size"] - len(added.metadata),
    }
