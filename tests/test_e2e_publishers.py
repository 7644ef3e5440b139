"""What publishing tools send, through twine against the proxy under gunicorn: PEP 740
attestations, which this index does not keep, are refused with the reason (never taken in
silence, leaving the publisher to believe they are served; uv publish 0.13 sends none to an
index other than PyPI's); Metadata-Version 2.4's license fields (PEP 639) reach the JSON API;
metadata that makes a big form (a long description, over a thousand requirements) is taken."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from support.api import AUTH, Api, with_auth
from support.packages import build_wheel
from support.sdist_backend import expand_tags, write_wheel
from support.servers import Server, config_text
from support.tools import clean_env, ok, run
from support.upstream import Upstream

pytestmark = pytest.mark.e2e

NO_KEYRING = "keyring.backends.null.Keyring"
# the shape of a PEP 740 attestation (twine sends what it finds; it checks nothing)
ATTESTATION = {
    "version": 1,
    "verification_material": {"certificate": "MIIB", "transparency_entries": []},
    "envelope": {"statement": "e30=", "signature": "AA=="},
}


def attested_wheel(folder: Path, name: str) -> Path:
    """A wheel with a `<wheel>.publish.attestation` beside it, where twine looks for one."""
    wheel = build_wheel(folder, name, "1.0")
    attestation = folder / f"{wheel.name}.publish.attestation"
    attestation.write_text(json.dumps(ATTESTATION))
    return wheel


def test_attestations_are_refused_with_the_reason_and_nothing_is_kept(
    upstream: Upstream, gunicorn_server: Callable[..., Server], tmp_path: Path
) -> None:
    proxy = gunicorn_server(with_auth(config_text(upstream.index_url, tmp_path / "d")))
    api = Api(proxy.url)
    repo = api.repository("corp")
    api.distribution("corp", repository=repo["pulp_href"])
    legacy = f"{proxy.url}/pypi/corp/legacy/"
    env = clean_env(HOME=str(tmp_path / "home"), PYTHON_KEYRING_BACKEND=NO_KEYRING)

    by_twine = attested_wheel(tmp_path / "twine", "att-twine")
    twine = [sys.executable, "-m", "twine", "upload", "--repository-url", legacy]
    twine += ["-u", AUTH[0], "-p", AUTH[1], "--non-interactive", "--disable-progress-bar"]
    refused = run([*twine, "--attestations", *map(str, (tmp_path / "twine").iterdir())], env)
    assert refused.returncode != 0
    said = " ".join((refused.stdout + refused.stderr).split())
    assert "400" in said and "attestations" in said.lower(), said
    assert api.filenames(api.latest(repo)) == set()

    # Without them, the same files go in.
    ok(run([*twine, str(by_twine)], env))
    assert api.filenames(api.latest(repo)) == {by_twine.name}


def test_a_metadata_2_4_wheel_shows_its_license_expression_and_files(
    upstream: Upstream, gunicorn_server: Callable[..., Server], tmp_path: Path
) -> None:
    """PEP 639 replaces License with License-Expression and License-File (setuptools 77, hatch
    and uv_build write them): pypi.org's JSON API shows them as `license_expression` and
    `license_files`, which license checkers read."""
    proxy = gunicorn_server(with_auth(config_text(upstream.index_url, tmp_path / "d")))
    api = Api(proxy.url)
    api.distribution("corp", repository=api.repository("corp")["pulp_href"])
    metadata = (
        "Metadata-Version: 2.4\nName: lic-new\nVersion: 1.0\n"
        "License-Expression: MIT OR Apache-2.0\nLicense-File: LICENSE\n"
        "License-File: licenses/NOTICE.txt\n"
    )
    wheel = tmp_path / "dist" / "lic_new-1.0-py3-none-any.whl"
    wheel.parent.mkdir()
    licenses = "lic_new-1.0.dist-info/licenses/"
    files = {"lic_new/__init__.py": b"", f"{licenses}LICENSE": b"MIT\n"}
    files[f"{licenses}licenses/NOTICE.txt"] = b"Notice\n"
    tags = expand_tags("py3", "none", "any")
    write_wheel(wheel, files, "lic_new-1.0.dist-info", metadata.encode(), tags)
    env = clean_env(HOME=str(tmp_path / "home"), PYTHON_KEYRING_BACKEND=NO_KEYRING)
    twine = [sys.executable, "-m", "twine", "upload", "--repository-url"]
    twine += [f"{proxy.url}/pypi/corp/legacy/", "-u", AUTH[0], "-p", AUTH[1]]
    ok(run([*twine, "--non-interactive", "--disable-progress-bar", str(wheel)], env))

    for path in ("lic-new/json", "lic-new/1.0/json"):
        answer = requests.get(f"{proxy.url}/pypi/corp/pypi/{path}", timeout=10)
        info = answer.json()["info"]
        assert info["license_expression"] == "MIT OR Apache-2.0", info
        assert info["license_files"] == ["LICENSE", "licenses/NOTICE.txt"], info
        assert info["license"] is None  # the field it replaces, not written


def test_a_wheel_with_a_long_description_and_many_requirements_is_taken(
    upstream: Upstream, gunicorn_server: Callable[..., Server], tmp_path: Path
) -> None:
    """twine and uv send the metadata as form fields beside the file, one per requirement,
    extra and classifier: a README with a long changelog (here 0.8 MB, in a 70 kB wheel) or a
    project with many extras (apache-airflow lists over a thousand requirements) is no reason
    to refuse the file."""
    proxy = gunicorn_server(with_auth(config_text(upstream.index_url, tmp_path / "d")))
    api = Api(proxy.url)
    repo = api.repository("corp")
    api.distribution("corp", repository=repo["pulp_href"])
    description = "".join(f"* {i}: fixed a thing in module {i}\n" for i in range(25_000))
    assert len(description) > 800_000
    extras = [f"extra{i}" for i in range(150)]
    requires = [f'dep{i}-{j}>=1; extra == "{e}"' for i, e in enumerate(extras) for j in range(8)]
    metadata = "".join(
        [
            "Metadata-Version: 2.1\nName: big-project\nVersion: 1.0\n",
            *(f"Provides-Extra: {extra}\n" for extra in extras),
            *(f"Requires-Dist: {requirement}\n" for requirement in requires),
            "\n",
            description,
        ]
    )
    wheel = tmp_path / "dist" / "big_project-1.0-py3-none-any.whl"
    wheel.parent.mkdir()
    tags = expand_tags("py3", "none", "any")
    write_wheel(wheel, {"big_project/__init__.py": b""}, "big_project-1.0.dist-info",
                metadata.encode(), tags)  # fmt: skip
    env = clean_env(HOME=str(tmp_path / "home"), PYTHON_KEYRING_BACKEND=NO_KEYRING)
    twine = [sys.executable, "-m", "twine", "upload", "--repository-url"]
    twine += [f"{proxy.url}/pypi/corp/legacy/", "-u", AUTH[0], "-p", AUTH[1]]
    ok(run([*twine, "--non-interactive", "--disable-progress-bar", str(wheel)], env))
    assert api.filenames(api.latest(repo)) == {wheel.name}
    info = requests.get(f"{proxy.url}/pypi/corp/pypi/big-project/json", timeout=10).json()["info"]
    assert info["description"] == description
    assert (info["provides_extra"], info["requires_dist"]) == (extras, requires)
