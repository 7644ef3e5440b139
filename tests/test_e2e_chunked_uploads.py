"""Pulp core's chunked uploads with the real pulp-cli 0.41.1 against the server under gunicorn:
`--chunk-size` uploads of content and of artifacts, pip downloading what they made, `pulp upload
list/show/destroy`, and the refusals Pulp answers (a chunk's wrong sha256, a wrong commit)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from test_e2e_pulp_cli import pulp_cli_server

from support.api import AUTH
from support.packages import build_wheel
from support.servers import Server, stored_files, wait_until
from support.tools import clean_env, run_pip
from support.upstream import Upstream

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
V3 = "/pulp/api/v3/"
CHUNK = 64 * 1024


def stored(server: Server, sha256: str) -> bool:
    return (server.data_dir / "artifacts" / sha256[:2] / sha256[2:4] / sha256).exists()


def test_content_uploaded_in_chunks_downloads_through_a_distribution(
    upstream: Upstream, gunicorn_server: Callable[..., Server], tmp_path: Path
) -> None:
    server, pulp = pulp_cli_server(gunicorn_server, upstream, tmp_path)
    wheel = build_wheel(tmp_path / "w", "acme-chunked", "1.0", payload=os.urandom(300_000))
    data = wheel.read_bytes()
    sha256 = hashlib.sha256(data).hexdigest()
    assert len(data) > 4 * CHUNK  # several chunks

    pulp.run("python", "repository", "create", "--name", "big")
    args = ("--chunk-size", f"{CHUNK // 1000}KB", "--file", str(wheel))
    content = pulp.json_object(
        "python", "content", "upload", *args, "--relative-path", wheel.name, "--repository", "big"
    )
    assert (content["filename"], content["sha256"]) == (wheel.name, sha256)
    again = pulp.run(  # pulp's own --chunk-size, as the brief's command line gives it
        "--chunk-size", f"{CHUNK // 1000}KB", "python", "content", "upload", "--file", str(wheel),
        "--relative-path", wheel.name,
    )  # fmt: skip
    assert again.stderr.count(".") >= 5 and "Upload complete." in again.stderr  # chunk by chunk
    assert json.loads(again.stdout)["pulp_href"] == content["pulp_href"]  # the same content
    version = pulp.json_object("python", "repository", "version", "show", "--repository", "big")
    assert version["number"] == 1
    # the upload went with its chunks: only the wheel and its metadata are stored
    assert pulp.json_list("upload", "list") == []
    assert len(stored_files(server.data_dir)) == 2

    pulp.run("python", "distribution", "create", "--name", "big", "--base-path", "big",
             "--repository", "big")  # fmt: skip
    target = tmp_path / "dl"
    run_pip(
        ["download", "--isolated", "--no-deps", "-d", str(target), "--index-url",
         f"{server.url}/pypi/big/simple/", "acme-chunked"],
        env=clean_env(PIP_CONFIG_FILE="/dev/null"),
    )  # fmt: skip
    assert hashlib.sha256((target / wheel.name).read_bytes()).hexdigest() == sha256

    # `pulp artifact upload --chunk-size` commits the chunks into an artifact, as Pulp
    other = build_wheel(
        tmp_path / "w2", "acme-artifact-chunked", "1.0", payload=os.urandom(200_000)
    )
    artifact = pulp.json_object(
        "artifact", "upload", "--chunk-size", f"{CHUNK // 1000}KB", "--file", str(other)
    )
    assert artifact["sha256"] == hashlib.sha256(other.read_bytes()).hexdigest()
    assert artifact["size"] == other.stat().st_size
    assert pulp.json_list("upload", "list") == []

    for action in ("uploads_create", "uploads_update", "uploads_commit", "artifacts_create"):
        events = requests.get(
            server.url + V3 + "audit/", params={"action": action}, auth=AUTH, timeout=30
        ).json()
        assert events["count"] > 0 and events["results"][0]["actor"] == "admin", action


def test_upload_list_show_destroy_and_refusals(
    upstream: Upstream, gunicorn_server: Callable[..., Server], tmp_path: Path
) -> None:
    server, pulp = pulp_cli_server(gunicorn_server, upstream, tmp_path)
    uploads = server.url + V3 + "uploads/"
    data = os.urandom(3 * 1000)
    created = requests.post(uploads, json={"size": len(data)}, auth=AUTH, timeout=30)
    assert created.status_code == 201, created.text
    upload = created.json()
    assert (upload["size"], upload["completed"], upload["chunks"]) == (len(data), None, [])
    href = upload["pulp_href"]

    def put(start: int, chunk: bytes, sha256: str | None = None) -> requests.Response:
        end = start + len(chunk) - 1
        return requests.put(
            server.url + href, files={"file": ("file", chunk)},
            data={"sha256": sha256 or hashlib.sha256(chunk).hexdigest()},
            headers={"Content-Range": f"bytes {start}-{end}/{len(data)}"}, auth=AUTH, timeout=30,
        )  # fmt: skip

    wrong = put(0, data[:1000], sha256="0" * 64)
    assert wrong.status_code == 400
    assert wrong.json() == {"non_field_errors": ["Checksum does not match chunk upload."]}
    beyond = put(2500, data[2000:3000])
    assert beyond.json() == {"non_field_errors": ["End byte is greater than upload size."]}
    assert put(0, data[:1000]).status_code == 200
    assert put(1000, data[1000:2000]).status_code == 200

    shown = pulp.json_object("upload", "show", "--href", href)
    assert shown["chunks"] == [{"offset": 0, "size": 1000}, {"offset": 1000, "size": 1000}]
    assert [u["pulp_href"] for u in pulp.json_list("upload", "list")] == [href]

    # a commit of missing bytes, or of the wrong sha256, fails its task; nothing is stored
    incomplete = requests.post(
        server.url + V3 + "content/python/packages/", auth=AUTH, timeout=30,
        data={"upload": href, "relative_path": "acme-1.0-py3-none-any.whl"},
    )  # fmt: skip
    assert incomplete.status_code == 400
    assert incomplete.json() == {
        "upload": ["The upload is incomplete: bytes 2000-2999 of 3000 were not uploaded."]
    }
    # so is its commit: known before any task, as the content's (Pulp's task would fail)
    early = requests.post(server.url + href + "commit/", json={"sha256": hashlib.sha256(data).hexdigest()},
                          auth=AUTH, timeout=30)  # fmt: skip
    assert (early.status_code, early.json()) == (400, {"non_field_errors": [
        "The upload is incomplete: bytes 2000-2999 of 3000 were not uploaded."
    ]}), early.text  # fmt: skip
    none = requests.post(uploads, json={"size": 3}, auth=AUTH, timeout=30).json()["pulp_href"]
    empty = requests.post(server.url + none + "commit/", json={"sha256": "1" * 64}, auth=AUTH,
                          timeout=30)  # fmt: skip
    assert empty.status_code == 400 and "bytes 0-2 of 3 were not uploaded" in empty.text
    assert requests.delete(server.url + none, auth=AUTH, timeout=30).status_code == 204
    assert put(2000, data[2000:]).status_code == 200
    commit = requests.post(server.url + href + "commit/", json={"sha256": "1" * 64}, auth=AUTH,
                           timeout=30)  # fmt: skip
    assert commit.status_code == 202, commit.text
    task_href = commit.json()["task"]

    def final() -> bool:
        state = pulp.json_object("task", "show", "--href", task_href)["state"]
        return state in ("completed", "failed")

    assert wait_until(final, 30)
    task = pulp.json_object("task", "show", "--href", task_href)
    assert task["state"] == "failed"
    assert task["error"]["description"] == "The sha256 checksum did not match."
    whole = hashlib.sha256(data).hexdigest()
    assert not stored(server, whole)
    assert pulp.json_list("artifact", "list") == []

    # destroyed: the upload and its chunks' bytes
    chunk_hashes = [hashlib.sha256(data[i : i + 1000]).hexdigest() for i in (0, 1000, 2000)]
    assert all(stored(server, h) for h in chunk_hashes)
    pulp.run("upload", "destroy", "--href", href)
    assert requests.get(server.url + href, auth=AUTH, timeout=30).status_code == 404
    assert not any(stored(server, h) for h in chunk_hashes)
    assert stored_files(server.data_dir) == []
    assert put(0, data[:1000]).status_code == 404

    # refusals of the body and the header
    for body in ({}, {"size": -1}, {"size": "big"}):
        assert requests.post(uploads, json=body, auth=AUTH, timeout=30).status_code == 400
    not_json = requests.post(uploads, data="size=3", auth=AUTH, timeout=30)
    assert not_json.status_code == 400
    assert requests.post(uploads, json={"size": 3}, timeout=30).status_code == 401
    again = requests.post(uploads, json={"size": 3}, auth=AUTH, timeout=30).json()["pulp_href"]
    bad_range = requests.put(
        server.url + again, files={"file": ("file", b"abc")}, headers={"Content-Range": "0-2"},
        auth=AUTH, timeout=30,
    )  # fmt: skip
    assert bad_range.json() == {"non_field_errors": ["Invalid or missing content range header."]}
    larger = requests.put(
        server.url + again, files={"file": ("file", b"abcd")},
        headers={"Content-Range": "bytes 0-2/3"}, auth=AUTH, timeout=30,
    )  # fmt: skip
    assert larger.json() == {"non_field_errors": ["Chunk size does not match content range."]}
    unknown = requests.get(uploads + "00000000-0000-0000-0000-000000000000/", auth=AUTH, timeout=30)
    assert unknown.status_code == 404
    assert stored_files(server.data_dir) == []


def test_a_content_range_of_numbers_too_long_to_read_is_a_400(
    upstream: Upstream, gunicorn_server: Callable[..., Server], tmp_path: Path
) -> None:
    """A header under gunicorn's size limit can hold numbers of more digits than Python reads
    (4300): refused as a malformed range, not a 500; nothing is stored."""
    server, _ = pulp_cli_server(gunicorn_server, upstream, tmp_path)
    href = requests.post(
        server.url + V3 + "uploads/", json={"size": 3}, auth=AUTH, timeout=30
    ).json()["pulp_href"]
    for header in ("bytes 0-" + "9" * 5000 + "/3", "bytes 0-2/" + "3" * 5000):
        answer = requests.put(
            server.url + href, files={"file": ("file", b"abc")},
            headers={"Content-Range": header}, auth=AUTH, timeout=30,
        )  # fmt: skip
        assert answer.status_code == 400, answer.text
        assert list(answer.json()) == ["non_field_errors"]
    assert requests.get(server.url + href, auth=AUTH, timeout=30).json()["chunks"] == []
    assert stored_files(server.data_dir) == []
