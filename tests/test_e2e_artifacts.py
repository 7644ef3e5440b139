"""Pulp core's artifacts with the real pulp-cli 0.41.1 against the server under gunicorn: Pulp's
python workflow "upload an artifact, then create content from it", pip installing the result,
and the errors Pulp answers (a wrong digest, bytes that are no distribution, an artifact in use)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from test_e2e_pulp_cli import pulp_cli_server

from support.api import AUTH
from support.packages import build_wheel
from support.servers import Server
from support.tools import clean_env, run_pip
from support.upstream import Upstream

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
V3 = "/pulp/api/v3/"


def test_content_from_an_uploaded_artifact_installs_through_a_distribution(
    upstream: Upstream, gunicorn_server: Callable[..., Server], tmp_path: Path
) -> None:
    server, pulp = pulp_cli_server(gunicorn_server, upstream, tmp_path)
    wheel = build_wheel(tmp_path / "w", "acme-artifact", "1.0")
    sha256 = hashlib.sha256(wheel.read_bytes()).hexdigest()

    artifact = pulp.json_object("artifact", "upload", "--file", str(wheel))
    assert artifact["pulp_href"].startswith(V3 + "artifacts/")
    assert (artifact["sha256"], artifact["size"]) == (sha256, wheel.stat().st_size)
    assert artifact["sha512"] == hashlib.sha512(wheel.read_bytes()).hexdigest()
    assert (artifact["md5"], artifact["sha1"]) == (None, None)
    assert artifact["file"] == f"artifact/{sha256[:2]}/{sha256[2:]}"
    again = pulp.run("artifact", "upload", "--file", str(wheel))
    assert "Artifact already exists." in again.stderr  # found by `list --sha256`, not sent

    listed = pulp.json_list("artifact", "list", "--sha256", sha256)
    assert [a["pulp_href"] for a in listed] == [artifact["pulp_href"]]
    assert pulp.json_list("artifact", "list", "--sha256", "0" * 64) == []
    assert pulp.json_list("artifact", "list", "--md5", "0" * 32) == []
    assert pulp.json_object("artifact", "show", "--href", artifact["pulp_href"]) == artifact
    assert pulp.json_object("artifact", "show", "--sha256", sha256) == artifact
    assert pulp.json_object("show", "--href", artifact["pulp_href"]) == artifact

    repo = pulp.json_object("python", "repository", "create", "--name", "art")
    content = pulp.json_object(
        "python", "content", "create", "--sha256", sha256, "--relative-path", wheel.name,
        "--repository", "art",
    )  # fmt: skip
    assert (content["filename"], content["sha256"], content["name"]) == (
        wheel.name,
        sha256,
        "acme-artifact",
    )
    assert content["artifact"] == artifact["pulp_href"]  # as Pulp links content to its artifact
    listed_content = pulp.json_list("python", "content", "list", "--sha256", sha256)
    assert [c["artifact"] for c in listed_content] == [artifact["pulp_href"]]
    version = pulp.json_object("python", "repository", "version", "show", "--repository", "art")
    assert version["number"] == 1 and version["pulp_href"].startswith(repo["pulp_href"])
    assert version["content_summary"]["added"]["python.python"]["count"] == 1
    # the same again is the same package, and no new version (as an upload of the file)
    same = pulp.json_object(
        "python", "content", "create", "--sha256", sha256, "--relative-path", wheel.name
    )
    assert same["pulp_href"] == content["pulp_href"]

    pulp.run("python", "distribution", "create", "--name", "art", "--base-path", "art",
             "--repository", "art")  # fmt: skip
    target = tmp_path / "target"
    installed = run_pip(
        ["install", "-v", "--target", str(target), "--index-url",
         f"{server.url}/pypi/art/simple/", "acme-artifact"],
        env=clean_env(PIP_CONFIG_FILE="/dev/null"),
    )  # fmt: skip
    assert f"from {server.url}/pulp/content/art/{wheel.name}.metadata" in installed.stdout
    page = requests.get(f"{server.url}/pypi/art/simple/acme-artifact/", timeout=30).text
    assert f"/pulp/content/art/{wheel.name}#sha256={sha256}" in page  # what pip downloaded
    assert (target / "acme_artifact").is_dir()

    # audited, as the other writes
    events = requests.get(
        server.url + V3 + "audit/", params={"action": "artifacts_create"}, auth=AUTH, timeout=30
    ).json()["results"]
    assert [(e["actor"], e["subject"]) for e in events] == [("admin", artifact["pulp_href"])]


def test_artifact_errors_through_pulp_cli(
    upstream: Upstream, gunicorn_server: Callable[..., Server], tmp_path: Path
) -> None:
    server, pulp = pulp_cli_server(gunicorn_server, upstream, tmp_path)
    wheel = build_wheel(tmp_path / "w", "acme-wrong", "1.0")

    # pulp-cli checks the digest it computes itself; a client that sends another gets Pulp's 400
    with wheel.open("rb") as fh:
        wrong = requests.post(
            server.url + V3 + "artifacts/", files={"file": fh}, data={"sha256": "0" * 64},
            auth=AUTH, timeout=30,
        )  # fmt: skip
    assert wrong.status_code == 400
    assert wrong.json() == {"non_field_errors": ["The sha256 checksum did not match."]}
    with wheel.open("rb") as fh:
        md5 = requests.post(
            server.url + V3 + "artifacts/", files={"file": fh}, data={"md5": "0" * 32},
            auth=AUTH, timeout=30,
        )  # fmt: skip
    assert md5.status_code == 400 and "forbidden" in md5.text
    assert requests.get(server.url + V3 + "artifacts/", auth=AUTH, timeout=30).json()["count"] == 0
    anonymous = requests.get(server.url + V3 + "artifacts/", timeout=30)
    assert anonymous.status_code == 401

    text = tmp_path / "notes.txt"
    text.write_bytes(b"not a wheel at all\n")
    notes = pulp.json_object("artifact", "upload", "--file", str(text))
    sha = notes["sha256"]
    refused = pulp.run(
        "python", "content", "create", "--sha256", sha, "--relative-path",
        "acme_wrong-1.0-py3-none-any.whl", check=False,
    )  # fmt: skip
    assert refused.returncode == 1 and '"artifact": [' in refused.stderr, refused.stderr
    bad_name = pulp.run(
        "python", "content", "create", "--sha256", sha, "--relative-path", "notes.txt",
        check=False,
    )  # fmt: skip
    assert bad_name.returncode == 1 and "notes.txt" in bad_name.stderr
    missing = pulp.run(
        "python", "content", "create", "--sha256", "1" * 64, "--relative-path", wheel.name,
        check=False,
    )  # fmt: skip
    assert missing.returncode == 1 and "Could not find" in missing.stderr

    # an unused artifact is deleted, bytes and all; one content uses is not (409, as Pulp)
    gone = requests.delete(server.url + notes["pulp_href"], auth=AUTH, timeout=30)
    assert gone.status_code == 204
    assert requests.get(server.url + notes["pulp_href"], auth=AUTH, timeout=30).status_code == 404
    assert not (server.data_dir / "artifacts" / sha[:2] / sha[2:4] / sha).exists()

    used = pulp.json_object("artifact", "upload", "--file", str(wheel))
    pulp.run("python", "content", "create", "--sha256", used["sha256"], "--relative-path",
             wheel.name)  # fmt: skip
    in_use = requests.delete(server.url + used["pulp_href"], auth=AUTH, timeout=30)
    assert in_use.status_code == 409
    assert in_use.json() == {
        "detail": "The Artifact cannot be deleted because it is associated with Content."
    }
    assert pulp.json_object("show", "--href", used["pulp_href"])["sha256"] == used["sha256"]
