"""Private content next to the upstream: shadowing (dependency confusion), merging, promotion."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from support.api import AUTH, Api, legacy_upload, with_auth
from support.packages import build_sdist, build_wheel
from support.servers import Server, config_text, stored_files, wait_until
from support.tools import clean_env, make_venv, ok, run, run_pip
from support.upstream import Upstream

pytestmark = pytest.mark.e2e
API = "/pulp/api/v3/"
NO_KEYRING = "keyring.backends.null.Keyring"


def versions_in(python: Path, *modules: str) -> list[str]:
    code = "; ".join(f"import {m}; print({m}.__version__)" for m in modules)
    return ok(run([str(python), "-c", code], clean_env())).stdout.split()


def setup_private(proxy_url: str, *, merge: bool = False) -> tuple[Api, dict[str, Any]]:
    api = Api(proxy_url)
    repo = api.repository("corp")
    remote = api.one("remotes/python/python/", name="up")
    api.distribution(
        "corp", repository=repo["pulp_href"], remote=remote["pulp_href"], merge_remote=merge
    )
    return api, repo


def upload(proxy_url: str, path: Path, base_path: str = "corp") -> None:
    resp = legacy_upload(proxy_url, base_path, path)
    assert resp.status_code == 200, resp.text


def test_a_local_project_shadows_the_upstream_one(
    upstream: Upstream, live_server: Callable[..., Server], tmp_path: Path
) -> None:
    """Dependency confusion: upstream publishes acme-utils 99.0; pip must get our 1.0."""
    upstream.add_file("acme-utils", build_wheel(tmp_path / "up", "acme-utils", "99.0"))
    proxy = live_server(with_auth(config_text(upstream.index_url, tmp_path / "d")))
    setup_private(proxy.url)
    upload(proxy.url, build_wheel(tmp_path / "ours", "acme-utils", "1.0"))

    python = make_venv(tmp_path / "venv")
    run_pip(
        ["install", "--index-url", f"{proxy.url}/pypi/corp/simple/", "acme-utils"], python=python
    )
    out = subprocess.run(
        [str(python), "-c", "import acme_utils; print(acme_utils.__version__)"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    assert out.stdout.strip() == "1.0"
    assert not upstream.requests_for("acme_utils-99.0", server="files")
    # Projects we do not hold still come through the remote.
    page = requests.get(f"{proxy.url}/pypi/corp/simple/shelf-reader/", timeout=10)
    assert page.status_code == 200 and "shelf_reader-0.2-py3-none-any.whl" in page.text


def test_merge_remote_serves_both(
    upstream: Upstream, live_server: Callable[..., Server], tmp_path: Path
) -> None:
    upstream.add_file("acme-utils", build_wheel(tmp_path / "up", "acme-utils", "99.0"))
    proxy = live_server(with_auth(config_text(upstream.index_url, tmp_path / "d")))
    setup_private(proxy.url, merge=True)
    upload(proxy.url, build_wheel(tmp_path / "ours", "acme-utils", "1.0"))
    page = requests.get(f"{proxy.url}/pypi/corp/simple/acme-utils/", timeout=10).text
    assert "acme_utils-1.0-py3-none-any.whl" in page and "acme_utils-99.0-py3-none-any.whl" in page


def test_a_promoted_pull_through_file_survives_eviction(
    upstream: Upstream, live_server: Callable[..., Server], tmp_path: Path
) -> None:
    payload = tmp_path / "payload"
    fillers = [build_wheel(payload, f"filler-{i}", "1.0") for i in range(3)]
    for i, path in enumerate(fillers):
        path.write_bytes(path.read_bytes() + b"\0" * 40_000)  # bigger, still a file pip ignores
        upstream.add_file(f"filler-{i}", path)
    text = config_text(upstream.index_url, tmp_path / "d", cache_max_size="60KB")
    proxy = live_server(with_auth(text))
    api, repo = setup_private(proxy.url)
    wheel = next(
        f for f in upstream.files_for("shelf-reader") if f.filename.endswith("0.2-py3-none-any.whl")
    )

    # Cached by a pull-through request: an orphaned package, then promoted into the repository.
    got = requests.get(f"{proxy.url}/pulp/content/corp/{wheel.filename}", timeout=10)
    assert got.content == wheel.data
    assert wait_until(lambda: requests.get(
        proxy.url + API + "content/python/packages/", params={"filename": wheel.filename},
        auth=AUTH, timeout=10,
    ).json()["count"] == 1)  # fmt: skip
    package = api.one("content/python/packages/", filename=wheel.filename)
    assert package["origin"] == "cache" and package["sha256"] == wheel.sha256
    api.run(
        "POST", repo["pulp_href"] + "modify/", json={"add_content_units": [package["pulp_href"]]}
    )

    # Fill the cache well past its limit: the orphans go, the promoted file stays.
    for path in fillers:
        assert requests.get(f"{proxy.url}/pulp/content/corp/{path.name}", timeout=10).ok

    def names() -> set[str]:
        return {p.name for p in stored_files(proxy.data_dir)}

    assert wait_until(
        lambda: len(names() & {f.sha256 for f in upstream.files_for("filler-0")}) == 0
    )
    assert wheel.sha256 in names()
    upstream.down()
    again = requests.get(f"{proxy.url}/pulp/content/corp/{wheel.filename}", timeout=10)
    assert again.status_code == 200 and again.content == wheel.data


def test_twine_and_uv_publish_to_the_simple_url_then_pip_installs_at_once(
    upstream: Upstream, gunicorn_server: Callable[..., Server], tmp_path: Path
) -> None:
    """Pulp's own guide uploads with `twine upload --repository-url .../pypi/<base>/simple/`
    (one URL for every tool): the index URL takes uploads as the legacy URL does."""
    proxy = gunicorn_server(with_auth(config_text(upstream.index_url, tmp_path / "d")))
    api, repo = setup_private(proxy.url)
    index = f"{proxy.url}/pypi/corp/simple/"
    dist, needs = tmp_path / "dist", ["shelf-reader>=0.1"]  # only the upstream has it
    files = [
        build_wheel(dist, "acme-utils", "1.0", requires_dist=needs),
        build_sdist(dist, "acme-utils", "1.0", requires_dist=needs),
    ]
    env = clean_env(HOME=str(tmp_path / "home"), PYTHON_KEYRING_BACKEND=NO_KEYRING)
    twine = [sys.executable, "-m", "twine", "upload", "--repository-url", index]
    twine += ["-u", AUTH[0], "-p", AUTH[1], "--non-interactive", "--disable-progress-bar"]
    ok(run([*twine, *map(str, files)], env))
    assert api.filenames(api.latest(repo)) == {p.name for p in files}

    later = build_wheel(tmp_path / "later", "acme-utils", "2.0", requires_dist=needs)
    uv = [sys.executable, "-m", "uv", "publish", "--publish-url", index, "--check-url", index]
    uv += ["-u", AUTH[0], "-p", AUTH[1], "--trusted-publishing", "never"]
    ok(run([*uv, str(later)], {**env, "UV_CACHE_DIR": str(tmp_path / "uv-cache")}))
    # published, installed at once from the same URL, beside what only the upstream has
    python = make_venv(tmp_path / "venv")
    run_pip(["install", "--index-url", index, "acme-utils"], python=python)
    assert versions_in(python, "acme_utils", "shelf_reader") == ["2.0", "0.2"]
    run_pip(
        ["install", "--index-url", index, "--no-binary", ":all:", "acme-utils==1.0"], python=python
    )
    assert versions_in(python, "acme_utils") == ["1.0"]
    assert not upstream.requests_for("acme", server="index")


def test_uv_with_a_warm_cache_installs_a_version_uploaded_a_moment_ago(
    upstream: Upstream, gunicorn_server: Callable[..., Server], tmp_path: Path
) -> None:
    """uv keeps a page as long as its max-age says: a page with the repository's files may
    change at any upload, so it says 0 (as a distribution without a remote), while the
    upstream's pages keep their time (index_ttl)."""
    proxy = gunicorn_server(with_auth(config_text(upstream.index_url, tmp_path / "d")))
    api, repo = setup_private(proxy.url)
    remote = api.one("remotes/python/python/", name="up")
    api.distribution(
        "merged", repository=repo["pulp_href"], remote=remote["pulp_href"], merge_remote=True
    )
    upload(proxy.url, build_wheel(tmp_path / "v1", "acme-utils", "1.0"))
    python = make_venv(tmp_path / "venv")
    uv = [sys.executable, "-m", "uv", "pip", "install", "--python", str(python)]
    env = clean_env(UV_CACHE_DIR=str(tmp_path / "uv-cache"))
    for base_path, version in (("corp", "2.0"), ("merged", "3.0")):
        index = f"{proxy.url}/pypi/{base_path}/simple/"
        ok(run([*uv, "--index-url", index, "acme-utils", "shelf-reader"], env))
        upload(proxy.url, build_wheel(tmp_path / version, "acme-utils", version))
        ok(run([*uv, "--index-url", index, f"acme-utils=={version}"], env))
        assert versions_in(python, "acme_utils") == [version]
        for accept in ("text/html", "application/vnd.pypi.simple.v1+json"):
            page = requests.get(f"{index}acme-utils/", headers={"Accept": accept}, timeout=10)
            assert page.headers["Cache-Control"] == "max-age=0, public", (base_path, accept)
        kept = requests.get(f"{index}shelf-reader/", timeout=10).headers["Cache-Control"]
        assert kept.startswith("max-age=") and int(kept[8:].split(",")[0]) > 500, kept
        answer = requests.get(f"{proxy.url}/pypi/{base_path}/pypi/acme-utils/json", timeout=10)
        assert answer.headers["Cache-Control"] == "max-age=0, public", base_path
