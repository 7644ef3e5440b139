"""Advisories, offline, end to end: OSV records the test writes (a zip and a directory, as OSV
publishes them) loaded with `pullthrough advisories import`, then what pip, the pages, the file
requests, the JSON API and uploads see on distributions that block malware (the default), hold
vulnerable versions, or do neither."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from support.api import Api, legacy_upload, with_auth
from support.packages import build_wheel
from support.servers import Server
from support.tools import clean_env, make_venv, run_pip
from support.upstream import Upstream

pytestmark = pytest.mark.e2e
TIMEOUT = 60

MALWARE = {
    "id": "MAL-2026-101",
    "modified": "2026-11-30T10:00:00Z",
    "summary": "Malicious code in evil-lib (PyPI)",
    "affected": [{"package": {"ecosystem": "PyPI", "name": "Evil_Lib"}, "versions": ["1.0.1"]}],
}
VULNERABILITY = {
    "id": "PYSEC-2026-7",
    "modified": "2026-11-29T08:00:00Z",
    "aliases": ["CVE-2026-1234"],
    "summary": "Path traversal in old-lib",
    "details": "old-lib before 2.0 lets a crafted name escape the folder.",
    "references": [{"type": "ADVISORY", "url": "https://example.org/PYSEC-2026-7"}],
    "affected": [
        {
            "package": {"ecosystem": "PyPI", "name": "old-lib"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.0"}]}],
        }
    ],
}
NPM = {
    "id": "GHSA-aaaa-bbbb-cccc",
    "modified": "2026-11-01T00:00:00Z",
    "affected": [{"package": {"ecosystem": "npm", "name": "old-lib"}, "versions": ["1.0"]}],
}


def write_records(folder: Path, *records: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for record in records:
        (folder / f"{record['id']}.json").write_text(json.dumps(record))
    return folder


def import_advisories(config: Path, path: Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "pullthrough.cli", "advisories", "import", str(path)]
    return subprocess.run(
        [*cmd, "--config", str(config)],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def download(server: Server, base_path: str, filename: str) -> requests.Response:
    return requests.get(f"{server.url}/pulp/content/{base_path}/{filename}", timeout=TIMEOUT)


def vulnerabilities(server: Server, base_path: str, project: str, version: str) -> Any:
    url = f"{server.url}/pypi/{base_path}/pypi/{project}/{version}/json"
    answer = requests.get(url, timeout=TIMEOUT)
    assert answer.status_code == 200, answer.text
    return answer.json()["vulnerabilities"]


def test_imported_advisories_block_malware_hold_and_show_vulnerabilities(
    upstream: Upstream, live_server: Callable[..., Server], tmp_path: Path
) -> None:
    for project, version in (("evil-lib", "1.0"), ("evil-lib", "1.0.1")):
        upstream.add_file(project, build_wheel(tmp_path / "up", project, version))
    for version in ("1.0", "2.0"):
        upstream.add_file("old-lib", build_wheel(tmp_path / "up", "old-lib", version))
    config = tmp_path / "server.toml"
    distributions = "".join(
        f'[[distributions]]\nname = "{name}"\nbase_path = "{name}"\nremote = "up"\n{extra}\n'
        for name, extra in (
            ("main", ""),
            ("strict", "hold_advisories = true"),
            ("open", "block_malicious = false"),
        )
    )
    config.write_text(
        with_auth(
            f'[server]\ndata_dir = "{tmp_path / "data"}"\n'
            f'[[remotes]]\nname = "up"\nurl = "{upstream.index_url}"\n' + distributions
        )
    )
    server = live_server(config.read_text())
    evil_new = "evil_lib-1.0.1-py3-none-any.whl"
    assert evil_new in server.page_files("main", "evil-lib")  # nothing imported yet

    # a zip as OSV publishes it; a record of another ecosystem is not stored
    archive = tmp_path / "all.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for record in (MALWARE, VULNERABILITY, NPM):
            out.writestr(f"{record['id']}.json", json.dumps(record))
    done = import_advisories(config, archive)
    assert done.returncode == 0, done.stderr
    assert "2 added, 0 updated, 0 unchanged (0 withdrawn), 1 not for PyPI, 0 invalid" in done.stdout

    # a malicious-package advisory: gone from the page, refused, skipped by pip, on every
    # distribution that blocks malware (the default)
    assert server.page_files("main", "evil-lib") == {"evil_lib-1.0-py3-none-any.whl"}
    refused = download(server, "main", evil_new)
    assert refused.status_code == 403
    assert "malicious-package advisory MAL-2026-101: Malicious code in evil-lib" in refused.text
    python = make_venv(tmp_path / "venv")
    run_pip(
        ["install", "--index-url", server.index("main"), "evil-lib"], python=python, timeout=TIMEOUT
    )
    shown = subprocess.run(
        [str(python), "-c", "import evil_lib; print(evil_lib.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert shown.stdout.strip() == "1.0"
    assert evil_new in server.page_files("open", "evil-lib")  # block_malicious = false

    # ... and not taken as an upload either
    api = Api(server.url)
    repo = api.repository("corp")
    api.distribution("corp", repository=repo["pulp_href"])
    wheel = build_wheel(tmp_path / "corp", "evil-lib", "1.0.1")
    upload = legacy_upload(server.url, "corp", wheel)
    assert upload.status_code == 403 and "MAL-2026-101" in upload.text

    # a vulnerability: in the JSON API of the versions it affects, everywhere; held only where
    # the distribution says so
    expected = {
        "aliases": ["CVE-2026-1234"],
        "details": VULNERABILITY["details"],
        "fixed_in": ["2.0"],
        "id": "PYSEC-2026-7",
        "link": "https://example.org/PYSEC-2026-7",
        "source": "osv",
        "summary": "Path traversal in old-lib",
        "withdrawn": None,
    }
    assert vulnerabilities(server, "main", "old-lib", "1.0") == [expected]
    assert vulnerabilities(server, "main", "old-lib", "2.0") == []
    assert server.page_files("main", "old-lib") == {
        "old_lib-1.0-py3-none-any.whl",
        "old_lib-2.0-py3-none-any.whl",
    }
    assert server.page_files("strict", "old-lib") == {"old_lib-2.0-py3-none-any.whl"}
    held = download(server, "strict", "old_lib-1.0-py3-none-any.whl")
    assert held.status_code == 403
    assert "affected by the advisory PYSEC-2026-7 (CVE-2026-1234)" in held.text
    status = requests.get(f"{server.url}/pulp/api/v3/status/", timeout=TIMEOUT).json()
    assert status["refused"]["main"]["blocked"] == 1
    assert status["refused"]["corp"]["blocked"] == 1
    assert status["refused"]["strict"]["held"] == 1

    # the same records again, from a directory: nothing changes
    folder = write_records(tmp_path / "records", MALWARE, VULNERABILITY)
    again = import_advisories(config, folder)
    assert again.returncode == 0, again.stderr
    assert "0 added, 0 updated, 2 unchanged" in again.stdout

    # withdrawn: the block is lifted; an invalid record is named, the others still loaded
    withdrawn = {**MALWARE, "modified": "2026-12-01T00:00:00Z", "withdrawn": "2026-12-01T00:00:00Z"}
    write_records(folder, withdrawn)
    (folder / "broken.json").write_text('{"id": "PYSEC-1", "affected": []}')
    last = import_advisories(config, folder)
    assert last.returncode == 1
    assert "0 added, 1 updated, 1 unchanged (1 withdrawn), 0 not for PyPI, 1 invalid" in last.stdout
    assert "broken.json: no 'modified'" in last.stderr
    assert evil_new in server.page_files("main", "evil-lib")
    assert download(server, "main", evil_new).status_code == 200


def test_a_malicious_release_is_not_offered_as_a_local_build(
    upstream: Upstream, live_server: Callable[..., Server], tmp_path: Path
) -> None:
    """A MAL- record listing 3.0 blocks `3.0+cpu` (PEP 440's `==3.0` takes it in): pip is
    not offered it, and a direct request is refused."""
    for version in ("1.0", "3.0+cpu"):
        upstream.add_file("evil-lib", build_wheel(tmp_path / "up", "evil-lib", version))
    config = tmp_path / "server.toml"
    config.write_text(
        with_auth(
            f'[server]\ndata_dir = "{tmp_path / "data"}"\n'
            f'[[remotes]]\nname = "up"\nurl = "{upstream.index_url}"\n'
            '[[distributions]]\nname = "main"\nbase_path = "main"\nremote = "up"\n'
        )
    )
    server = live_server(config.read_text())
    local_build = "evil_lib-3.0+cpu-py3-none-any.whl"
    malware = {
        **MALWARE,
        "affected": [{"package": {"ecosystem": "PyPI", "name": "evil-lib"}, "versions": ["3.0"]}],
    }
    done = import_advisories(config, write_records(tmp_path / "records", malware))
    assert done.returncode == 0, done.stderr

    assert server.page_files("main", "evil-lib") == {"evil_lib-1.0-py3-none-any.whl"}
    refused = download(server, "main", local_build)
    assert refused.status_code == 403 and "MAL-2026-101" in refused.text
    fetch = ["download", "--no-deps", "--index-url", server.index("main"), "-d", str(tmp_path)]
    run_pip([*fetch, "evil-lib"], timeout=TIMEOUT)
    assert not (tmp_path / local_build).exists()
    assert (tmp_path / "evil_lib-1.0-py3-none-any.whl").exists()
    pinned = run_pip([*fetch, "evil-lib==3.0"], timeout=TIMEOUT, check=False)
    assert pinned.returncode != 0
    assert "No matching distribution found for evil-lib==3.0" in pinned.stderr


def test_an_unreadable_path_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "server.toml"
    config.write_text(f'[server]\ndata_dir = "{tmp_path / "data"}"\n')
    done = import_advisories(config, tmp_path / "missing.zip")
    assert done.returncode == 2
    assert "cannot read" in done.stderr and "missing.zip" in done.stderr
