"""Offline bundles end to end: server A (gunicorn, with a loopback upstream) holds a repository
of twine-uploaded packages and a yank; `pullthrough export` writes it while A runs;
`pullthrough import` loads it into the data of server B (a repository only, no remote) while B
runs; then pip installs from B the very bytes uploaded to A, skipping the yanked release unless
pinned, and B's pages show A's hashes and upload times. A tampered bundle is refused whole."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from support.api import PASSWORD, Api, with_auth
from support.packages import build_sdist, build_wheel
from support.servers import Server, config_text, stored_files
from support.tools import clean_env, make_venv, run, run_pip
from support.upstream import Upstream

pytestmark = pytest.mark.e2e
TIMEOUT = 60
WHEEL_1 = "acme_lib-1.0-py3-none-any.whl"
WHEEL_2 = "acme_lib-2.0-py3-none-any.whl"


def pullthrough(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "-m", "pullthrough.cli", *args], clean_env(), tmp_path, TIMEOUT)


def twine(server: Server, base_path: str, files: list[Path], home: Path) -> None:
    home.mkdir()
    cmd = [sys.executable, "-m", "twine", "upload", "--repository-url"]
    cmd += [f"{server.url}/pypi/{base_path}/legacy/", "-u", "admin", "-p", PASSWORD]
    cmd += ["--non-interactive", "--disable-progress-bar", *map(str, files)]
    done = subprocess.run(
        cmd,
        env=clean_env(HOME=str(home), PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring"),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def page_facts(server: Server, base_path: str, project: str) -> dict[str, Any]:
    """What pip reads off the project's page (PEP 691 JSON), by filename; and the JSON API's
    upload times."""
    page = server.json_page(base_path, project)
    facts: dict[str, Any] = {
        f["filename"]: {
            k: f.get(k)
            for k in (
                "hashes",
                "size",
                "upload-time",
                "yanked",
                "requires-python",
                "core-metadata",
            )
        }
        for f in page["files"]
    }
    api = requests.get(f"{server.url}/pypi/{base_path}/pypi/{project}/json", timeout=TIMEOUT)
    assert api.status_code == 200, api.text
    for files in api.json()["releases"].values():
        for f in files:
            facts[f["filename"]]["json_api"] = (
                f["upload_time_iso_8601"],
                f["digests"]["sha256"],
                f["yanked_reason"],
            )
    return facts


def latest(api: Api, repository: dict[str, Any]) -> str:
    href: str = api.get(repository["pulp_href"])["latest_version_href"]
    return href


@pytest.mark.slow
def test_a_bundle_moves_a_repository_to_a_server_with_no_network(
    upstream: Upstream, gunicorn_server: Callable[..., Server], tmp_path: Path
) -> None:
    # Server A: twine uploads into `corp`, 2.0 yanked there.
    server_a = gunicorn_server(with_auth(config_text(upstream.index_url, tmp_path / "data-a")))
    api_a = Api(server_a.url)
    corp_a = api_a.repository("corp")
    api_a.distribution("corp", repository=corp_a["pulp_href"])
    dist = tmp_path / "dist"
    originals = [
        build_wheel(dist, "acme-lib", "1.0"),
        build_wheel(dist, "acme-lib", "2.0", requires_python=">=3.8"),
        build_sdist(dist, "acme-lib", "2.0"),
    ]
    twine(server_a, "corp", originals, tmp_path / "twine-home")
    api_a.create(
        "projects/python/yanks/",
        name="acme-lib",
        repository=corp_a["pulp_href"],
        version="2.0",
        reason="broken build",
    )
    facts_a = page_facts(server_a, "corp", "acme-lib")
    assert facts_a[WHEEL_2]["yanked"] == "broken build"

    # Export while A runs.
    bundle = tmp_path / "corp.tar"
    done = pullthrough(
        tmp_path,
        "export",
        "--repository",
        "corp",
        "--config",
        str(tmp_path / "pullthrough-0.toml"),
        str(bundle),
    )
    assert done.returncode == 0, done.stderr
    assert "3 packages" in done.stdout
    with tarfile.open(bundle) as tar:
        assert {f"files/{p.name}" for p in originals} <= set(tar.getnames())

    # Server B: no remote at all; a distribution over an empty repository `corp`.
    server_b = gunicorn_server(
        with_auth(
            f'remotes = []\ndistributions = []\n[server]\ndata_dir = "{tmp_path / "data-b"}"\n'
        )
    )
    config_b = str(tmp_path / "pullthrough-1.toml")
    api_b = Api(server_b.url)
    corp_b = api_b.repository("corp")
    api_b.distribution("corp", repository=corp_b["pulp_href"])
    index_b = server_b.index("corp")
    assert requests.get(f"{index_b}acme-lib/", timeout=TIMEOUT).status_code == 404
    empty = latest(api_b, corp_b)

    # A tampered bundle (one byte of the sdist changed): refused, nothing imported.
    tampered = tmp_path / "tampered.tar"
    with tarfile.open(bundle) as tar:
        offset = tar.getmember("files/acme_lib-2.0.tar.gz").offset_data
    data = bytearray(bundle.read_bytes())
    data[offset + 10] ^= 0x01
    tampered.write_bytes(bytes(data))
    files_before = stored_files(server_b.data_dir)
    for target in ([], ["--repository", "elsewhere"]):
        done = pullthrough(tmp_path, "import", str(tampered), *target, "--config", config_b)
        assert done.returncode == 1, done.stdout + done.stderr
        assert "refused" in done.stderr and "acme_lib-2.0.tar.gz' has sha256" in done.stderr
        assert "Traceback" not in done.stderr
    assert latest(api_b, corp_b) == empty
    assert api_b.get("repositories/python/python/", name="elsewhere")["count"] == 0
    assert stored_files(server_b.data_dir) == files_before
    assert requests.get(f"{index_b}acme-lib/", timeout=TIMEOUT).status_code == 404

    # The bundle itself, imported while B runs: B serves it at once.
    done = pullthrough(tmp_path, "import", str(bundle), "--config", config_b)
    assert done.returncode == 0, done.stderr
    assert "created at version 1: 3 packages (3 new" in done.stdout
    assert latest(api_b, corp_b).rstrip("/").endswith("/versions/1")
    assert page_facts(server_b, "corp", "acme-lib") == facts_a
    events = api_b.get("audit/", action="bundle_import")["results"]
    assert [(e["subject"], e["detail"]["repository_version"]) for e in events] == [("corp", 1)]

    # pip, from B only (B has no remote): the newest release not yanked, the bytes uploaded.
    downloads = tmp_path / "downloads"
    run_pip(
        ["download", "--no-deps", "-d", str(downloads), "--index-url", index_b, "acme-lib"],
        timeout=TIMEOUT,
    )
    assert [p.name for p in downloads.iterdir()] == [WHEEL_1]
    assert (downloads / WHEEL_1).read_bytes() == originals[0].read_bytes()
    run_pip(
        ["download", "--no-deps", "-d", str(downloads), "--index-url", index_b, "acme-lib==2.0"],
        timeout=TIMEOUT,
    )
    assert (downloads / WHEEL_2).read_bytes() == originals[1].read_bytes()
    python = make_venv(tmp_path / "venv")
    run_pip(["install", "--index-url", index_b, "acme-lib"], python=python, timeout=TIMEOUT)
    shown = subprocess.run(
        [str(python), "-c", "import acme_lib; print(acme_lib.__version__)"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=True,
    )
    assert shown.stdout.strip() == "1.0"

    # Again: the same content, no new version.
    done = pullthrough(tmp_path, "import", str(bundle), "--config", config_b)
    assert done.returncode == 0, done.stderr
    assert "unchanged, still at version 1" in done.stdout
    assert latest(api_b, corp_b).rstrip("/").endswith("/versions/1")
    assert page_facts(server_b, "corp", "acme-lib") == facts_a


def test_export_and_import_refuse_bad_arguments_with_a_message(tmp_path: Path) -> None:
    config = tmp_path / "server.toml"
    config.write_text(
        f'remotes = []\ndistributions = []\n[server]\ndata_dir = "{tmp_path / "d"}"\n'
    )
    done = pullthrough(tmp_path, "export", "--repository", "nope", "--config", str(config), "x.tar")
    assert (done.returncode, done.stderr.strip()) == (
        1,
        "pullthrough: cannot export: there is no repository named 'nope'",
    )
    done = pullthrough(tmp_path, "import", "missing.tar", "--config", str(config))
    assert done.returncode == 2 and "cannot read missing.tar" in done.stderr
    (tmp_path / "junk.tar").write_bytes(b"junk" * 1000)
    done = pullthrough(tmp_path, "import", "junk.tar", "--config", str(config))
    assert (done.returncode, done.stderr) == (
        1,
        "pullthrough: refused junk.tar, nothing imported: junk.tar is not a bundle (a plain tar"
        " file): invalid header\n",
    )
    # A compressed tar (32 MiB of zeros in a few KB; a GiB would be as small): refused unread.
    with tarfile.open(tmp_path / "zeros.tar.xz", "w:xz", preset=0) as tar:
        info = tarfile.TarInfo("files/zeros-1.0-py3-none-any.whl")
        info.size = 2**25
        tar.addfile(info, io.BufferedReader(Zeros(info.size)))
    assert (tmp_path / "zeros.tar.xz").stat().st_size < 2**16
    done = pullthrough(tmp_path, "import", "zeros.tar.xz", "--config", str(config))
    assert (done.returncode, done.stderr) == (
        1,
        "pullthrough: refused zeros.tar.xz, nothing imported: zeros.tar.xz is xz-compressed: a"
        " bundle is a plain tar, as `pullthrough export` writes it\n",
    )


class Zeros(io.RawIOBase):
    """`size` zero bytes, never held in memory at once."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self.left)
        buffer[:n] = bytes(n)
        self.left -= n
        return n
