"""twine-style uploads to /pypi/<base_path>/legacy/: who may upload where, what is refused (and
that a refused upload leaves nothing behind), idempotent re-uploads, concurrent uploads, and the
upload size limit."""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import pytest
import requests

from support.packages import build_sdist, build_wheel, sha256_of
from support.servers import Server, config_text, temporary_files
from support.upstream import Upstream

pytestmark = pytest.mark.e2e

V3 = "/pulp/api/v3/"
REPOS = V3 + "repositories/python/python/"
DISTS = V3 + "distributions/python/pypi/"
CONTENT = V3 + "content/python/packages/"
PASSWORD = "secret"
AUTH = ("admin", PASSWORD)
TIMEOUT = 15
JSON_V1 = "application/vnd.pypi.simple.v1+json"
BASE = "uploads"
ActionForm = TypedDict("ActionForm", {":action": str})  # a form field that is no identifier


def store_files(data_dir: Path) -> set[str]:
    """Every file visible in the artifact store."""
    return {p.name for p in (data_dir / "artifacts").glob("??/??/*") if p.is_file()}


@dataclass
class Index:
    """A server with one repository served, for uploads, at /pypi/uploads/."""

    server: Server
    http: requests.Session  # the admin's
    repository: dict[str, Any]
    made: list[Path] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.server.url + path

    def api(self, method: str, path: str, body: object = None) -> dict[str, Any]:
        resp = self.http.request(method, self.url(path), json=body, timeout=TIMEOUT)
        assert resp.status_code < 300, (resp.status_code, resp.text)
        answer: dict[str, Any] = resp.json()
        if list(answer) == ["task"]:
            deadline = time.monotonic() + TIMEOUT
            while True:
                task: dict[str, Any] = self.http.get(
                    self.url(answer["task"]), timeout=TIMEOUT
                ).json()
                if task["state"] not in ("waiting", "running") or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            assert task["state"] == "completed", task
            result: dict[str, Any] = task["result"]
            return result
        return answer

    def distribution(self, name: str, **fields: object) -> dict[str, Any]:
        return self.api("POST", DISTS, {"name": name, "base_path": name, **fields})

    def upload(
        self,
        path: Path,
        *,
        base_path: str = BASE,
        filename: str | None = None,
        auth: tuple[str, str] | None = AUTH,
        **form: str,
    ) -> requests.Response:
        """POST the file as twine does; `form` overrides or adds fields (None: leave out)."""
        parts = path.name.removesuffix(".tar.gz").split("-")
        fields = {
            ":action": "file_upload",
            "protocol_version": "1",
            "metadata_version": "2.1",
            "name": parts[0].replace("_", "-"),
            "version": parts[1] if len(parts) > 1 else None,
            "filetype": "bdist_wheel" if path.name.endswith(".whl") else "sdist",
            "pyversion": "py3" if path.name.endswith(".whl") else "source",
            "sha256_digest": sha256_of(path),
            **form,
        }
        with path.open("rb") as fh, requests.Session() as anonymous:
            return anonymous.post(
                self.url(f"/pypi/{base_path}/legacy/"),
                data={k: v for k, v in fields.items() if v is not None},
                files={"content": (filename or path.name, fh, "application/octet-stream")},
                auth=auth,
                timeout=TIMEOUT,
            )

    def latest_number(self) -> int:
        repo = self.api("GET", self.repository["pulp_href"])
        return int(repo["latest_version_href"].rstrip("/").rsplit("/", 1)[1])

    def version_count(self) -> int:
        count: int = self.api("GET", self.repository["versions_href"])["count"]
        return count

    def files(self, project: str, base_path: str = BASE) -> list[str]:
        resp = self.http.get(
            self.url(f"/pypi/{base_path}/simple/{project}/"),
            headers={"Accept": JSON_V1},
            timeout=TIMEOUT,
        )
        if resp.status_code == 404:
            return []
        assert resp.status_code == 200, resp.text
        return sorted(f["filename"] for f in resp.json()["files"])


@pytest.fixture
def start_index(
    upstream: Upstream, live_server: Callable[..., Server], tmp_path: Path
) -> Iterator[Callable[..., Index]]:
    sessions: list[requests.Session] = []

    def start(server_settings: str = "") -> Index:
        text = config_text(upstream.index_url, tmp_path / f"d{len(sessions)}")
        text = text.replace("[server]\n", "[server]\n" + server_settings, 1)
        server = live_server(text + f'[auth]\nadmin_password = "{PASSWORD}"\n')
        http = requests.Session()
        sessions.append(http)
        http.auth = AUTH
        index = Index(server, http, {})
        index.repository = index.api("POST", REPOS, {"name": "uploads"})
        index.distribution(BASE, repository=index.repository["pulp_href"])
        return index

    yield start
    for http in sessions:
        http.close()


@pytest.fixture
def index(start_index: Callable[..., Index]) -> Index:
    return start_index()


@pytest.fixture
def dists(tmp_path: Path) -> Path:
    out = tmp_path / "dists"
    out.mkdir()
    return out


class Unchanged:
    """Asserts that an upload left no trace: no stored file, no temporary file, no version."""

    def __init__(self, index: Index) -> None:
        self.index = index
        self.stored = store_files(index.server.data_dir)
        self.latest = index.latest_number()
        self.content = index.api("GET", CONTENT)["count"]

    def check(self, what: object = "") -> None:
        data_dir = self.index.server.data_dir
        assert temporary_files(data_dir) == [], what
        assert store_files(data_dir) == self.stored, what
        assert self.index.latest_number() == self.latest, what
        assert self.index.api("GET", CONTENT)["count"] == self.content, what


def test_an_upload_lands_in_a_new_version_and_is_served(index: Index, dists: Path) -> None:
    wheel = build_wheel(dists, "up-lib", "1.0", requires_python=">=3.8")
    sdist = build_sdist(dists, "up-lib", "1.0")
    resp = index.upload(wheel)
    assert resp.status_code == 200, resp.text
    assert index.latest_number() == 1
    assert index.files("up-lib") == [wheel.name]
    resp = index.upload(sdist)
    assert resp.status_code == 200, resp.text
    assert index.latest_number() == 2
    assert index.files("up-lib") == sorted([wheel.name, sdist.name])

    assert sha256_of(wheel) in store_files(index.server.data_dir)
    assert temporary_files(index.server.data_dir) == []
    served = index.http.get(index.url(f"/pulp/content/{BASE}/{wheel.name}"), timeout=TIMEOUT)
    assert served.status_code == 200 and served.content == wheel.read_bytes()
    (content,) = index.api("GET", CONTENT + f"?filename={wheel.name}")["results"]
    assert content["sha256"] == sha256_of(wheel)
    assert content["name"] == "up-lib" and content["version"] == "1.0"
    assert content["requires_python"] == ">=3.8" and content["packagetype"] == "bdist_wheel"
    assert content["origin"] == "upload"


def test_an_upload_makes_its_artifact_which_goes_with_its_content(
    index: Index, dists: Path
) -> None:
    """As Pulp's: the uploaded bytes are an artifact (all its digests), the content's
    `artifact`; content and artifact go together once no repository holds the content."""
    wheel = build_wheel(dists, "art-lib", "1.0")
    data = wheel.read_bytes()
    assert index.upload(wheel).status_code == 200
    assert index.upload(wheel).status_code == 200  # the same again: still one artifact
    (content,) = index.api("GET", CONTENT + f"?filename={wheel.name}")["results"]
    assert content["artifact"] is not None
    artifact = index.api("GET", content["artifact"])
    digests = {
        a: hashlib.new(a, data).hexdigest() for a in ("sha224", "sha256", "sha384", "sha512")
    }
    assert {a: artifact[a] for a in digests} == digests and artifact["size"] == len(data)
    listed = index.api("GET", V3 + f"artifacts/?sha256={sha256_of(wheel)}")["results"]
    assert [a["pulp_href"] for a in listed] == [content["artifact"]]

    gone = {"remove_content_units": [content["pulp_href"]]}
    index.api("POST", index.repository["pulp_href"] + "modify/", gone)  # version 2
    index.api("DELETE", index.repository["versions_href"] + "1/")  # the only one that held it
    index.api("POST", V3 + "orphans/cleanup/", {"orphan_protection_time": 0})
    assert index.http.get(index.url(content["artifact"]), timeout=TIMEOUT).status_code == 404
    assert index.http.get(index.url(content["pulp_href"]), timeout=TIMEOUT).status_code == 404
    assert sha256_of(wheel) not in store_files(index.server.data_dir)


def test_uploads_require_the_admin(index: Index, dists: Path) -> None:
    wheel = build_wheel(dists, "secret-lib", "1.0")
    before = Unchanged(index)
    for auth in (None, ("admin", "wrong"), ("intruder", PASSWORD)):
        resp = index.upload(wheel, auth=auth)
        assert resp.status_code == 401, (auth, resp.status_code, resp.text)
        assert resp.headers["WWW-Authenticate"].startswith("Basic ")
    before.check()
    assert index.files("secret-lib") == []


def test_uploads_only_where_a_repository_takes_them(index: Index, dists: Path) -> None:
    wheel = build_wheel(dists, "where-lib", "1.0")
    repo = index.repository["pulp_href"]
    closed = index.distribution("closed", repository=repo, allow_uploads=False)
    index.distribution("no-repo")
    index.distribution("pinned", repository_version=repo + "versions/0/")
    before = Unchanged(index)

    for base_path in ("closed", "no-repo", "pinned", "main"):  # `main` comes from the config
        resp = index.upload(wheel, base_path=base_path)
        assert resp.status_code == 403, (base_path, resp.status_code, resp.text)
        assert base_path in resp.text
    resp = index.upload(wheel, base_path="nowhere")
    assert resp.status_code == 404
    before.check()

    index.api("PATCH", closed["pulp_href"], {"allow_uploads": True})
    assert index.upload(wheel, base_path="closed").status_code == 200
    assert index.latest_number() == 1


def _renamed(dists: Path, source: Path, name: str) -> Path:
    target = dists / "renamed" / name
    target.parent.mkdir(exist_ok=True)
    shutil.copyfile(source, target)
    return target


def test_refused_uploads_say_why_and_leave_nothing_behind(index: Index, dists: Path) -> None:
    wheel = build_wheel(dists, "good-lib", "1.0")
    other = build_wheel(dists, "other-lib", "1.0")
    later = build_wheel(dists, "good-lib", "2.0")
    corrupt = dists / "corrupt" / "corrupt_lib-1.0-py3-none-any.whl"
    corrupt.parent.mkdir()
    corrupt.write_bytes(os.urandom(4096))
    corrupt_sdist = dists / "corrupt" / "corrupt_lib-1.0.tar.gz"
    corrupt_sdist.write_bytes(os.urandom(4096))
    text = dists / "notes.txt"
    text.write_text("not a distribution")
    assert index.upload(wheel).status_code == 200  # something in the store to compare with
    before = Unchanged(index)

    cases: list[tuple[str, Callable[[], requests.Response], list[str]]] = [
        (
            "file named for another project",
            lambda: index.upload(_renamed(dists, other, "good_lib-3.0-py3-none-any.whl")),
            ["does not match"],
        ),
        (
            "file named for another version",
            lambda: index.upload(_renamed(dists, later, "good_lib-3.0-py3-none-any.whl")),
            ["does not match", "2.0"],
        ),
        (
            "form name differs from the metadata",
            lambda: index.upload(later, name="other-lib"),
            ["other-lib", "does not match"],
        ),
        (
            "form version differs from the metadata",
            lambda: index.upload(later, version="9.9"),
            ["9.9", "does not match"],
        ),
        (
            "wrong sha256_digest",
            lambda: index.upload(later, sha256_digest=hashlib.sha256(b"x").hexdigest()),
            ["digest", "does not match"],
        ),
        (
            "wrong md5_digest",
            lambda: index.upload(later, md5_digest=hashlib.md5(b"x").hexdigest()),
            ["does not match"],
        ),
        ("random bytes named like a wheel", lambda: index.upload(corrupt), [corrupt.name]),
        ("random bytes named like an sdist", lambda: index.upload(corrupt_sdist), []),
        ("not a distribution filename", lambda: index.upload(text), ["notes.txt"]),
        (
            "an installer, not a wheel or sdist",
            lambda: index.upload(_renamed(dists, later, "good_lib-2.0.win32.exe")),
            ["good_lib-2.0.win32.exe"],
        ),
        (
            "a path as the filename",
            lambda: index.upload(later, filename="../good_lib-2.0-py3-none-any.whl"),
            [],
        ),
        (
            "unsupported :action",
            lambda: index.upload(later, **ActionForm({":action": "submit"})),
            ["submit"],
        ),
    ]
    for what, send, words in cases:
        resp = send()
        assert resp.status_code == 400, (what, resp.status_code, resp.text)
        assert resp.text.strip(), what
        for word in words:
            assert word in resp.text, (what, word, resp.text)
        before.check(what)

    no_file = index.http.post(
        index.url(f"/pypi/{BASE}/legacy/"), data={":action": "file_upload"}, timeout=TIMEOUT
    )
    assert no_file.status_code == 400 and "content" in no_file.text
    before.check("no file")
    assert index.files("good-lib") == [wheel.name]
    assert index.upload(later).status_code == 200  # the same file, properly sent, is fine
    assert index.files("good-lib") == sorted([wheel.name, later.name])


def test_reuploading_the_same_file_is_accepted_and_changes_nothing(
    index: Index, dists: Path
) -> None:
    wheel = build_wheel(dists, "same-lib", "1.0")
    assert index.upload(wheel).status_code == 200
    before = Unchanged(index)
    versions = index.version_count()
    again = index.upload(wheel)
    assert again.status_code == 200, again.text
    before.check()
    assert index.version_count() == versions

    # the same bytes under the same name can also come in through a second repository
    second = index.api("POST", REPOS, {"name": "second"})
    index.distribution("second", repository=second["pulp_href"])
    assert index.upload(wheel, base_path="second").status_code == 200
    assert index.files("same-lib", base_path="second") == [wheel.name]
    assert store_files(index.server.data_dir) == before.stored


def test_a_different_file_under_a_taken_filename_is_refused(index: Index, dists: Path) -> None:
    wheel = build_wheel(dists, "taken-lib", "1.0")
    impostor = build_wheel(dists / "impostor", "taken-lib", "1.0", requires_dist=["evil>=1"])
    assert impostor.name == wheel.name and sha256_of(impostor) != sha256_of(wheel)
    assert index.upload(wheel).status_code == 200
    before = Unchanged(index)
    resp = index.upload(impostor)
    assert resp.status_code == 400, resp.text
    assert "already exists" in resp.text
    assert sha256_of(wheel) not in resp.text  # the file there may be one the uploader cannot read
    before.check()
    served = index.http.get(index.url(f"/pulp/content/{BASE}/{wheel.name}"), timeout=TIMEOUT)
    assert served.content == wheel.read_bytes()


def test_the_same_file_under_another_name_is_refused(index: Index, dists: Path) -> None:
    """As PyPI: one file, one name. The same wheel as 1.0, 1.0.0 and 0!1.0 (one version, spelt
    three ways) would be three entries with one digest on the page, for pip to choose from."""
    wheel = build_wheel(dists, "alias-lib", "1.0")
    assert index.upload(wheel).status_code == 200
    before = Unchanged(index)
    for alias in ("alias_lib-1.0.0-py3-none-any.whl", "alias_lib-0!1.0-py3-none-any.whl"):
        renamed = dists / "renamed" / alias
        renamed.parent.mkdir(exist_ok=True)
        shutil.copyfile(wheel, renamed)
        resp = index.upload(renamed)
        assert resp.status_code == 400, resp.text
        assert "already exists" in resp.text and "another name" in resp.text
    before.check()
    assert index.files("alias-lib") == [wheel.name]


def test_a_second_sdist_of_a_release_is_refused(index: Index, dists: Path) -> None:
    """As PyPI: one sdist per release. 1.0.0 is the release 1.0 under another spelling; two
    different sources for it would leave pip to pick one. Wheels of it and other releases'
    sdists are accepted, and the same sdist again is no change."""
    first = build_sdist(dists / "a", "one-sdist", "1.0")
    assert index.upload(first).status_code == 200
    before = Unchanged(index)
    second = build_sdist(dists / "b", "one-sdist", "1.0.0")
    resp = index.upload(second)
    assert resp.status_code == 400, resp.text
    assert "Only one sdist" in resp.text and first.name in resp.text
    before.check()
    assert index.upload(first).status_code == 200
    wheel = build_wheel(dists / "c", "one-sdist", "1.0.0")
    later = build_sdist(dists / "c", "one-sdist", "1.1")
    assert [index.upload(f).status_code for f in (wheel, later)] == [200, 200]
    assert sorted(index.files("one-sdist")) == sorted([first.name, wheel.name, later.name])


def test_concurrent_uploads_land_in_distinct_versions(index: Index, dists: Path) -> None:
    wheels = [build_wheel(dists, f"par{i}-lib", "1.0") for i in range(2)]
    start = threading.Barrier(len(wheels), timeout=TIMEOUT)

    def send(path: Path) -> int:
        start.wait()
        return index.upload(path).status_code

    with ThreadPoolExecutor(len(wheels)) as pool:
        statuses = list(pool.map(send, wheels, timeout=TIMEOUT * 2))
    assert statuses == [200, 200]
    assert index.latest_number() == 2
    versions = index.api("GET", index.repository["versions_href"])["results"]
    assert sorted(v["number"] for v in versions) == [0, 1, 2]
    for v in versions:
        present = v["content_summary"]["present"]
        assert present.get("python.python", {}).get("count", 0) == v["number"]
    for i, wheel in enumerate(wheels):
        assert index.files(f"par{i}-lib") == [wheel.name]
    assert temporary_files(index.server.data_dir) == []


def test_uploads_over_max_upload_size_are_413(
    start_index: Callable[..., Index], dists: Path
) -> None:
    index = start_index('max_upload_size = "10KB"\n')
    small = build_wheel(dists, "small-lib", "1.0")
    assert small.stat().st_size < 5_000
    big = dists / "big" / "big_lib-1.0-py3-none-any.whl"
    big.parent.mkdir()
    big.write_bytes(os.urandom(20_000))
    before = Unchanged(index)

    resp = index.upload(big)
    assert resp.status_code == 413, (resp.status_code, resp.text)
    assert "10000 bytes (server.max_upload_size)" in resp.reason, resp.reason  # what twine shows
    before.check()

    assert index.upload(small).status_code == 200  # the limit is about size only
    assert index.files("small-lib") == [small.name]
