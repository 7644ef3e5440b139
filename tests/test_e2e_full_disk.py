"""A full disk: the data folder on a small tmpfs, filled up. Cached files keep being served;
cold downloads and uploads get 507 with a message; nothing partial is kept; the catalog stays
readable; service resumes once space is freed. (Mounting needs root: elsewhere the test is
skipped with the reason, except on CI, where it must run.)"""

from __future__ import annotations

import os
import subprocess
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from support.api import PASSWORD, Api, with_auth
from support.faults import big_wheel
from support.packages import build_wheel
from support.servers import Server, config_text, stored_files
from support.upstream import Upstream

pytestmark = pytest.mark.e2e
TIMEOUT = 30
SIZE = 12 * 2**20  # the tmpfs: room for the catalog, the caches and a few small files


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        reason = f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False, timeout=30)


def fill(disk: Path, leave: int) -> Path:
    """A filler file taking all but about `leave` bytes of the disk."""
    filler = disk / "filler"
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    with filler.open("wb") as fh:
        fh.truncate(0)
        block = b"\0" * 2**16
        remaining = max(free - leave, 0)
        while remaining > 0:
            written = fh.write(block[: min(len(block), remaining)])
            remaining -= written
    return filler


def post(server: Server, path: Path) -> requests.Response:
    """Upload through the REST API."""
    with path.open("rb") as fh:
        return requests.post(
            f"{server.url}/pulp/api/v3/content/python/packages/",
            data={"relative_path": path.name},
            files={"file": (path.name, fh)},
            auth=("admin", PASSWORD),
            timeout=TIMEOUT,
        )


def test_a_full_disk_answers_507_and_keeps_serving_what_it_has(
    upstream: Upstream, live_server: Callable[..., Server], small_disk: Path, tmp_path: Path
) -> None:
    wheels = tmp_path / "wheels"
    cached = build_wheel(wheels, "cached-lib", "1.0")
    cold = build_wheel(wheels, "cold-lib", "1.0")
    big = wheels / "big_lib-1.0-py3-none-any.whl"
    big.write_bytes(build_wheel(wheels, "big-lib", "1.0").read_bytes() + os.urandom(2 * 2**20))
    for project, path in (("cached-lib", cached), ("cold-lib", cold), ("big-lib", big)):
        upstream.add_file(project, path)
    data = small_disk / "data"
    server = live_server(with_auth(config_text(upstream.index_url, data)))
    index = server.index()

    def content(name: str) -> requests.Response:
        return requests.get(f"{server.url}/pulp/content/main/{name}", timeout=TIMEOUT)

    for project in ("cached-lib", "cold-lib", "big-lib"):
        assert requests.get(f"{index}{project}/", timeout=TIMEOUT).status_code == 200
    assert content(cached.name).content == cached.read_bytes()
    before = stored_files(data)

    filler = fill(small_disk, leave=64 * 1024)
    # what is cached is still served (recording its use may fail: that is no reason to refuse)
    for _ in range(3):
        answer = content(cached.name)
        assert (answer.status_code, answer.content) == (200, cached.read_bytes())
    # a cold file that does not fit: 507 with a message, nothing of it kept
    for name in (big.name, cold.name):
        answer = content(name)
        if answer.status_code == 200:  # small enough for the space left: then it is whole
            assert answer.content == (wheels / name).read_bytes()
            continue
        assert answer.status_code == 507, (name, answer.status_code, answer.text)
        assert "disk is full" in answer.text
    assert not [p for p in stored_files(data) if p not in before and p.stat().st_size == 0]
    # an upload that does not fit: 507, nothing in the catalog
    upload = build_wheel(tmp_path / "up", "uploaded-lib", "1.0")
    auth = ("admin", PASSWORD)
    repo = requests.post(
        f"{server.url}/pulp/api/v3/repositories/python/python/",
        json={"name": "corp"},
        auth=auth,
        timeout=TIMEOUT,
    )
    assert repo.status_code in (201, 507), repo.text
    with zipfile.ZipFile(upload, "a") as wheel:  # bigger than the space left
        wheel.writestr("uploaded_lib/blob.bin", os.urandom(512 * 1024))
    answer = post(server, upload)
    assert answer.status_code == 507, answer.text
    listed = requests.get(
        f"{server.url}/pulp/api/v3/content/python/packages/",
        params={"name": "uploaded-lib"},
        auth=auth,
        timeout=TIMEOUT,
    )
    assert listed.status_code == 200 and listed.json()["count"] == 0  # the catalog reads fine

    # space freed: everything works again, and every stored file is whole
    filler.unlink()
    assert content(big.name).content == big.read_bytes()
    answer = post(server, upload)
    assert answer.status_code == 202, answer.text
    assert list((data / "artifacts" / ".tmp").glob("*.partial")) == []


def test_a_sync_that_fills_the_disk_fails_cleanly_and_completes_once_space_is_freed(
    upstream: Upstream, live_server: Callable[..., Server], small_disk: Path, tmp_path: Path
) -> None:
    """An immediate sync of a file bigger than the space left: the task fails and says the
    disk is full, no version and no package is recorded, nothing partial is kept, a cached
    file is still served; once space is freed the same sync completes."""
    wheels = tmp_path / "wheels"
    cached = build_wheel(wheels, "cached-lib", "1.0")
    big = big_wheel(wheels, "big-lib", "1.0", 2 * 2**20)  # a sync reads it: a real wheel
    upstream.add_file("cached-lib", cached)
    upstream.add_file("big-lib", big)
    data = small_disk / "data"
    server = live_server(with_auth(config_text(upstream.index_url, data)))
    api = Api(server.url)
    url = f"{server.url}/pulp/content/main/{cached.name}"
    assert requests.get(server.index() + "cached-lib/", timeout=TIMEOUT).status_code == 200
    assert requests.get(url, timeout=TIMEOUT).content == cached.read_bytes()
    repo = api.repository("synced")
    remote = api.remote(
        "src", upstream.index_url, policy="immediate", includes=["big-lib"], max_retries=0
    )

    filler = fill(small_disk, leave=256 * 1024)
    task = api.sync(repo, remote)
    assert task["state"] == "failed", task
    assert "no space left" in task["error"]["description"], task["error"]
    assert api.latest(repo).endswith("/versions/0/")
    assert api.packages(filename=big.name) == []
    assert list((data / "artifacts" / ".tmp").glob("*.partial")) == []
    answer = requests.get(url, timeout=TIMEOUT)
    assert (answer.status_code, answer.content) == (200, cached.read_bytes())

    filler.unlink()
    task = api.sync(repo, remote)
    assert task["state"] == "completed", task
    assert api.filenames(api.latest(repo)) == {big.name}
    with requests.get(f"{server.url}/pulp/content/main/{big.name}", timeout=TIMEOUT) as resp:
        assert resp.status_code == 200 and resp.content == big.read_bytes()
