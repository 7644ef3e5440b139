"""The REST API against its own document (`/pulp/api/v3/docs/api.json`), with schemathesis: every
operation is called with generated requests, valid ones and invalid ones, a bounded number of
each and the same ones every run; no answer may be a server error, and every answer's status
code, content type and body must be what the document says.

The document names objects by their `pulp_href`, and the path of an operation on one object is
that href (`{python_python_repository_href}`), a value no schema can describe; schemathesis is
given a real href of the right kind for those operations, and a fresh object to each DELETE.
Writes that run as tasks must also complete: only a sync may fail (its upstream decides).

Below it, requests the document allows that schemathesis seldom draws (integers past 64 bits,
huge timeouts, damaged archives), each found to end in a 500 or a failed task.
"""

from __future__ import annotations

import gc
import io
import json
import logging
import tarfile
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Err
from schemathesis.core.transport import Response
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from pullthrough.api.kinds import API_ROOT
from pullthrough.api.unsupported import UNSUPPORTED
from pullthrough.api.unsupported import operations as refusals
from support.api import AUTH, Api, with_auth
from support.packages import build_wheel
from support.servers import Server, config_text, wait_until
from support.upstream import Upstream

pytestmark = pytest.mark.e2e

DOCUMENT = "/pulp/api/v3/docs/api.json"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Examples per operation: most for valid requests, whose answers the document describes fully.
EXAMPLES = {schemathesis.GenerationMode.POSITIVE: 25, schemathesis.GenerationMode.NEGATIVE: 10}
# Pulp core's operations this server refuses (api.unsupported), two in five of the document's:
# their view reads nothing of the request and answers the same 404; what runs before it
# (credentials, the body, null characters) is every operation's, drawn for the others. A few
# examples each show the refusal is what the document says; more cost a minute, finding nothing.
REFUSALS = frozenset(op.id for op in refusals())
REFUSAL_EXAMPLES = {
    schemathesis.GenerationMode.POSITIVE: 3,
    schemathesis.GenerationMode.NEGATIVE: 2,
}
TIME_LIMIT = 150.0  # seconds for the whole run; far above what it takes
TASK_TIMEOUT = 10.0
MAY_FAIL = ("sync/",)  # tasks whose failure is the upstream's business, not the API's
SHOWN = 300  # characters of a request, a response or a message shown in a finding
# Pulp core's nouns this server refuses (404) by href too: an href of each, naming nothing
NOTHING = "0190f5a0-0000-7000-8000-000000000000"
UNSUPPORTED_HREFS = {
    noun.href: f"{API_ROOT}{noun.path}{NOTHING}/" for noun in UNSUPPORTED if noun.href is not None
} | {
    href: f"{API_ROOT}{noun.path}{NOTHING}/{below}{NOTHING}/"
    for noun in UNSUPPORTED
    for below, href in noun.below
}


@dataclass
class Finding:
    """One kind of failure of one operation, with the first request that showed it."""

    key: tuple[str, str, str, int]  # mode, operation, what failed, status
    request: str
    response: str
    detail: str
    count: int = 1

    def __str__(self) -> str:
        mode, operation, what, status = self.key
        return (
            f"{operation} [{mode}] {what} -> {status} ({self.count}x)\n"
            f"  request:  {self.request}\n  response: {self.response}\n  {self.detail}"
        )


@dataclass
class Findings:
    found: dict[tuple[str, str, str, int], Finding] = field(default_factory=dict)

    def add(self, key: tuple[str, str, str, int], request: str, response: str, detail: str) -> None:
        if key in self.found:
            self.found[key].count += 1
        else:
            self.found[key] = Finding(key, request, response, " ".join(detail.split())[:SHOWN])


@dataclass
class Objects:
    """An object of every kind the document's href paths name, and a way to make fresh ones."""

    api: Api
    hrefs: dict[str, str]
    made: int = 0

    def fresh(self, parameter: str) -> str:
        """A new object for a DELETE to remove."""
        self.made += 1
        name = f"doomed-{self.made}"
        if parameter == "python_python_repository_href":
            return str(self.api.repository(name)["pulp_href"])
        if parameter == "python_python_remote_href":
            return str(self.api.remote(name, "http://127.0.0.1:9/")["pulp_href"])
        if parameter == "python_python_distribution_href":
            return str(self.api.distribution(name)["pulp_href"])
        if parameter == "python_python_publication_href":
            task = self.api.run(
                "POST",
                "publications/python/pypi/",
                json={"repository": self.hrefs["python_python_repository_href"]},
            )
            return str(task["created_resources"][0])
        if parameter == "python_python_project_status_href":
            return str(
                self.api.create("projects/python/statuses/", **self._status(name))["pulp_href"]
            )
        if parameter == "artifact_href":
            return self.api.artifact(f"{name}\n".encode())
        if parameter == "upload_href":
            return str(self.api.create("uploads/", size=10)["pulp_href"])
        if parameter == "python_python_python_blocklist_entry_href":
            entries = self.hrefs["python_python_repository_href"] + "blocklist_entries/"
            return str(self.api.create(entries, filename=f"{name}.tar.gz")["pulp_href"])
        if parameter == "python_python_yank_href":
            repository = self.hrefs["python_python_repository_href"]
            body = {"name": name, "repository": repository, "version": "1"}
            return str(self.api.create("projects/python/yanks/", **body)["pulp_href"])
        return self.hrefs[parameter]

    def _status(self, name: str) -> dict[str, str]:
        repository = self.hrefs["python_python_repository_href"]
        return {"name": name, "repository": repository, "status": "archived"}


@pytest.fixture
def objects(
    upstream: Upstream, live_server: Callable[..., Server], tmp_path: Path
) -> Iterator[Objects]:
    server = live_server(with_auth(config_text(upstream.index_url, tmp_path / "data")))
    api = Api(server.url)
    repository = api.repository("conformance")
    wheel = build_wheel(tmp_path / "dist", "conformance-lib", "1.0")
    upload = api.upload(wheel, repository)
    content = next(h for h in upload["created_resources"] if "/content/" in h)
    repository = api.get(repository["pulp_href"])
    publication = api.run(
        "POST", "publications/python/pypi/", json={"repository": repository["pulp_href"]}
    )
    status = api.create(
        "projects/python/statuses/",
        name="other-lib",
        repository=repository["pulp_href"],
        status="deprecated",
    )
    yank = api.create(
        "projects/python/yanks/", name="other-lib", repository=repository["pulp_href"], version="1"
    )
    entry = api.create(repository["pulp_href"] + "blocklist_entries/", name="blocked-lib")
    token = api.create("tokens/", name="conformance", scopes=["read:main"])
    assert wait_until(lambda: api.get("workers/")["count"] > 0, 10)  # the server's task worker
    yield Objects(
        api,
        {
            "token_href": token["pulp_href"],
            "audit_event_href": api.get("audit/", limit=1)["results"][0]["pulp_href"],
            "python_python_yank_href": yank["pulp_href"],
            "python_python_python_blocklist_entry_href": entry["pulp_href"],
            "python_python_project_status_href": status["pulp_href"],
            "python_python_repository_href": repository["pulp_href"],
            "python_python_repository_version_href": repository["latest_version_href"],
            "python_python_remote_href": api.one("remotes/python/python/")["pulp_href"],
            "python_python_distribution_href": api.one("distributions/python/pypi/")["pulp_href"],
            "python_python_publication_href": publication["created_resources"][0],
            "python_python_package_content_href": content,
            "task_href": upload["pulp_href"],
            "worker_href": api.one("workers/")["pulp_href"],
            "artifact_href": api.artifact(b"an artifact no content uses"),
            "upload_href": api.create("uploads/", size=10)["pulp_href"],
            **UNSUPPORTED_HREFS,
        },
    )


def _request_text(response: Response) -> str:
    request = response.request
    body = request.body or b""
    text = body.decode("utf-8", "backslashreplace") if isinstance(body, bytes) else str(body)
    return f"{request.method} {request.url} {text[:SHOWN]}"


def _task_failure(api: Api, response: Response) -> str | None:
    """The error of the task a 202 names, if it failed (or never ended)."""
    body = response.json()
    href = body.get("task") if isinstance(body, dict) else None
    if not isinstance(href, str):
        return None
    deadline = time.monotonic() + TASK_TIMEOUT
    while True:
        task = api.get(href)
        if task["state"] not in ("waiting", "running", "canceling"):
            break
        if time.monotonic() > deadline:
            return f"task still {task['state']} after {TASK_TIMEOUT} s"
        time.sleep(0.02)
    if task["state"] != "failed":
        return None
    return json.dumps(task["error"])


def _explore(
    operation: schemathesis.APIOperation[Any, Any, Any, Any],
    mode: schemathesis.GenerationMode,
    objects: Objects,
    session: requests.Session,
    findings: Findings,
) -> None:
    """Send `EXAMPLES[mode]` generated requests to one operation (`REFUSAL_EXAMPLES[mode]` to
    one of REFUSALS); record what fails."""
    api = objects.api
    refused = operation.definition.raw.get("operationId") in REFUSALS

    @settings(
        max_examples=(REFUSAL_EXAMPLES if refused else EXAMPLES)[mode],
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: schemathesis.Case[Any]) -> None:
        for name in list(case.path_parameters or {}):
            fresh = case.method.upper() == "DELETE"
            case.path_parameters[name] = objects.fresh(name) if fresh else objects.hrefs[name]
        response = case.call(base_url=api.url, session=session, timeout=30)
        key = (mode.value, operation.label)
        shown = (_request_text(response), response.text[:SHOWN])
        try:
            case.validate_response(response, checks=CHECKS)
        except FailureGroup as group:
            for failure in group.exceptions:
                what = f"{failure.code} {failure.title}"
                findings.add((*key, what, response.status_code), *shown, str(failure))
        if (
            response.status_code == 202
            and not operation.path.endswith(MAY_FAIL)
            and (error := _task_failure(api, response)) is not None
        ):
            findings.add((*key, "task failed", 202), *shown, error)

    try:
        run()
    except Unsatisfiable:  # nothing in this operation's requests can be made invalid
        assert mode is schemathesis.GenerationMode.NEGATIVE, operation.label


def test_api_conforms_to_its_document(objects: Objects, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="werkzeug")  # not a line per request in the report
    schema = schemathesis.openapi.from_url(
        objects.api.url + DOCUMENT, config=schemathesis.Config(), timeout=10
    )
    findings = Findings()
    deadline = time.monotonic() + TIME_LIMIT
    seen = set()
    with requests.Session() as session:
        session.auth = AUTH
        for result in schema.get_all_operations():
            if isinstance(result, Err):
                pytest.fail(
                    f"the document has an operation schemathesis cannot read: {result.err()}"
                )
            operation = result.ok()
            seen.add(operation.definition.raw.get("operationId"))
            for mode in EXAMPLES:
                assert time.monotonic() < deadline, f"over {TIME_LIMIT} s at {operation.label}"
                _explore(operation, mode, objects, session, findings)
    assert seen > REFUSALS, REFUSALS - seen  # the refusals are some of the document's
    report = "\n\n".join(str(f) for f in findings.found.values())
    assert not findings.found, f"{len(findings.found)} kinds of failure:\n\n{report}"


# ---- values the document allows that schemathesis seldom draws: found while writing this file

HUGE = 10**19  # past a 64-bit integer; the document sets no maximum


@pytest.mark.parametrize("minutes", [2_000_000_000, HUGE])
def test_orphan_cleanup_with_a_documented_protection_time(objects: Objects, minutes: int) -> None:
    """`orphan_protection_time` is documented as an integer of at least 0 (minutes): any such
    value is refused with a reason (400) or cleans up; a task must not fail on it."""
    resp = objects.api.request("POST", "orphans/cleanup/", json={"orphan_protection_time": minutes})
    if resp.status_code == 400:
        assert "orphan_protection_time" in resp.json(), resp.text
        return
    assert resp.status_code == 202, resp.text
    task = objects.api.wait(resp.json()["task"])
    assert task["state"] == "completed", task


METADATA = b"Metadata-Version: 2.1\nName: damaged\nVersion: 1.0\n\n" + b"text\n" * 40


def _wheel_with_corrupt_lzma() -> bytes:
    """A wheel whose METADATA is LZMA-compressed (method 14), its compressed bytes spoiled."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_LZMA) as zf:
        zf.writestr("damaged-1.0.dist-info/METADATA", METADATA)
    data = bytearray(buf.getvalue())
    header = 30 + len("damaged-1.0.dist-info/METADATA")  # the local header of the first member
    for i in range(header + 4, header + 20):
        data[i] ^= 0xFF
    return bytes(data)


def _sdist_with_bad_pax_header() -> bytes:
    """An sdist whose PKG-INFO carries a pax `GNU.sparse.map` that is not numbers."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("damaged-1.0/PKG-INFO")
        info.size = len(METADATA)
        info.pax_headers = {"GNU.sparse.map": "a,b", "GNU.sparse.size": "1"}
        tar.addfile(info, io.BytesIO(METADATA))
    return buf.getvalue()


@pytest.mark.parametrize(
    ("filename", "build"),
    [
        ("damaged-1.0-py3-none-any.whl", _wheel_with_corrupt_lzma),
        ("damaged-1.0.tar.gz", _sdist_with_bad_pax_header),
    ],
)
def test_content_upload_of_a_damaged_archive_is_refused(
    objects: Objects, filename: str, build: Callable[[], bytes]
) -> None:
    """An archive whose metadata cannot be read is the uploader's error (400), never a 500."""
    resp = objects.api.request(
        "POST",
        "content/python/packages/",
        data={"relative_path": filename},
        files={"file": (filename, build())},
    )
    assert resp.status_code == 400, (resp.status_code, resp.text[:SHOWN])
    assert "file" in resp.json(), resp.text


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", f"{{repository}}versions/?number={HUGE}", None),
        ("GET", f"{{repository}}versions/?number=-{HUGE}", None),
        ("GET", f"{{repository}}versions/{HUGE}/", None),
        ("POST", "repositories/python/python/", {"name": "huge", "retain_repo_versions": HUGE}),
        ("PATCH", "{repository}", {"retain_repo_versions": HUGE}),
    ],
)
def test_integers_past_64_bits_are_refused(
    objects: Objects, method: str, path: str, body: dict[str, Any] | None
) -> None:
    """The catalog holds 64-bit integers: a larger one in a filter, a path or a body is the
    client's error (400, or 404 for an object that cannot exist), never a 500."""
    path = path.format(repository=objects.hrefs["python_python_repository_href"])
    resp = objects.api.request(method, path, json=body)
    assert resp.status_code in (400, 404), (resp.status_code, resp.text[:SHOWN])


@pytest.fixture
def collected() -> Iterator[None]:
    """Collect garbage after the server stops: a socket it leaked is reported by the test that
    made it leak, not by whichever test runs next."""
    yield
    gc.collect()


@pytest.mark.parametrize("timeout", ["connect_timeout", "sock_read_timeout", "total_timeout"])
def test_remote_timeouts_as_large_as_documented(
    collected: None, objects: Objects, timeout: str
) -> None:
    """A remote's timeouts are numbers of at least 0 (no maximum): one the server cannot use is
    refused when it is set (400), or the remote's pages are served."""
    api = objects.api
    upstream_url = api.get(objects.hrefs["python_python_remote_href"])["url"]
    resp = api.request(
        "POST", "remotes/python/python/", json={"name": "slow", "url": upstream_url, timeout: 1e308}
    )
    if resp.status_code == 400:
        assert timeout in resp.json(), resp.text
        return
    assert resp.status_code == 201, resp.text
    api.distribution("slow", remote=resp.json()["pulp_href"])
    page = requests.get(f"{api.url}/pypi/slow/simple/shelf-reader/", timeout=30)
    assert page.status_code == 200, (page.status_code, page.text[:SHOWN])
