"""A small client for pullthrough's Pulp-shaped REST API (/pulp/api/v3/), as pulp-cli uses it.

It looks entities up by name (`GET <list>?name=X&offset=0&limit=1`), follows the tasks that
write operations answer with (202 `{"task": href}`), and turns every failure into a `CliError`
whose message is one line, pulp-cli's wording where pulp-cli has one.
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import requests

from pullthrough.api.kinds import (
    API_ROOT,
    ARTIFACT,
    CONTENT,
    KINDS,
    REPOSITORY,
    VERSION,
    Kind,
    is_version_href,
)
from pullthrough.core.links import without_userinfo
from pullthrough.core.tasks import FINAL_TASK_STATES, TASK_STATES

DEFAULT_BASE_URL = "http://127.0.0.1:24817"
REQUEST_TIMEOUT = (10.0, 120.0)  # connect, read (seconds) for each request
POLL_INTERVAL = 0.2  # seconds between task polls


class CliError(Exception):
    """A failure to report as `Error: <message>` (exit status 1)."""


class Client:
    """HTTP Basic auth (when a password is given), JSON in and out, tasks waited for."""

    def __init__(
        self,
        base_url: str,
        username: str = "admin",
        password: str | None = None,
        *,
        task_timeout: float = 300.0,
        background: bool = False,
    ) -> None:
        if not re.match(r"https?://[^/]", base_url):
            shown = without_userinfo(base_url)
            raise CliError(f"The base URL must start with http:// or https://, got {shown!r}.")
        self.base_url = base_url.rstrip("/")
        self.task_timeout = task_timeout
        self.background = background
        self.session = requests.Session()
        self.session.headers.update(
            {"Accept": "application/json", "Correlation-ID": uuid.uuid4().hex}
        )
        self._auth = (username, password) if password is not None else None

    def __repr__(self) -> str:  # never the password
        return f"Client({without_userinfo(self.base_url)!r})"

    def new_session(self) -> requests.Session:
        """A session with the same credentials, for requests outside the API (index pages,
        files), e.g. one per thread."""
        session = requests.Session()
        session.auth = self._auth
        return session

    # ---- HTTP ---------------------------------------------------------------------------

    def call(
        self,
        method: str,
        href: str,
        operation: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: object = None,
        files: Mapping[str, Any] | None = None,
        data: Mapping[str, str] | None = None,
        auth: bool = True,
    ) -> Any:
        """One request; returns its decoded JSON body (`{}` for 204)."""
        url = self.base_url + href
        try:
            response = self.session.request(
                method,
                url,
                params=params,
                json=json,
                files=files,
                data=data,
                auth=self._auth if auth else None,
                timeout=REQUEST_TIMEOUT,
                allow_redirects=False,
            )
        except requests.Timeout:
            raise CliError(f"No answer from {without_userinfo(url)} (timed out).") from None
        except requests.RequestException as exc:
            shown = without_userinfo(url)
            raise CliError(f"Could not connect to {shown} ({_reason(exc)}).") from None
        return _decode(response, operation, without_userinfo(url))

    def get(self, href: str, operation: str, params: Mapping[str, Any] | None = None) -> Any:
        return self.call("GET", href, operation, params=params)

    # ---- lookups and lists --------------------------------------------------------------

    def find(self, kind: Kind, name: str) -> dict[str, Any]:
        """The entity of `kind` named `name`, as pulp-cli looks it up; or at `name`, an href."""
        if name.startswith(kind.list_href):
            return self.show(kind, name)
        if not name:  # an empty filter filters nothing (as Pulp's): the list would be all
            raise CliError(f"Could not find {kind.label} with name ''.")
        page = self.get(
            kind.list_href, f"{kind.operation}_list", {"name": name, "offset": 0, "limit": 1}
        )
        count = page.get("count", len(page.get("results", [])))
        if count == 0:
            raise CliError(f"Could not find {kind.label} with name '{name}'.")
        if count > 1:
            raise CliError(f"Multiple {kind.label} entries found with name '{name}'.")
        return _object(page["results"][0])

    def href_of(self, kind: Kind, name: str | None) -> str | None:
        """The href of the entity named `name`; None for None or "" (to clear a reference)."""
        return self.find(kind, name)["pulp_href"] if name else None

    def page(self, kind: Kind, params: Mapping[str, Any], href: str | None = None) -> list[Any]:
        """The results of one page of a list (`href`: a nested list, e.g. versions)."""
        page = self.get(href or kind.list_href, f"{kind.operation}_list", params)
        return list(page.get("results", []))

    def show(self, kind: Kind, href: str) -> dict[str, Any]:
        return _object(self.get(href, f"{kind.operation}_read"))

    # ---- writes -------------------------------------------------------------------------

    def create(self, kind: Kind, body: Mapping[str, Any]) -> Any:
        reply = self.call("POST", kind.list_href, f"{kind.operation}_create", json=body)
        return self.settle(reply, kind.owns)

    def update(self, kind: Kind, href: str, body: Mapping[str, Any]) -> Any:
        """PATCH; the updated entity (read again when the task does not carry it)."""
        reply = self.call("PATCH", href, f"{kind.operation}_partial_update", json=body)
        return self.settle(reply, kind.owns, fallback=lambda: self.show(kind, href))

    def destroy(self, kind: Kind, href: str) -> Any:
        """DELETE; nothing to show afterwards (the task, in background mode)."""
        reply = self.call("DELETE", href, f"{kind.operation}_delete")
        if _is_task(reply):
            task = self.wait(reply["task"])
            return task if self.background else None
        return None

    def modify(
        self, repository: dict[str, Any], add: list[str], remove: list[str], base: str | None
    ) -> Any:
        body: dict[str, Any] = {"add_content_units": add, "remove_content_units": remove}
        if base is not None:
            body["base_version"] = base
        href = repository["pulp_href"] + "modify/"
        reply = self.call("POST", href, f"{REPOSITORY.operation}_modify", json=body)
        return self.settle(reply, is_version_href)

    def upload(self, path: Path, relative_path: str, repository: str | None) -> Any:
        data = {"relative_path": relative_path, "sha256": _sha256(path)}
        if repository:
            data["repository"] = repository
        return self.settle(self._send(path, relative_path, CONTENT, data), CONTENT.owns)

    def upload_artifact(self, path: Path) -> Any:
        """A new artifact of the file's bytes (checked against its sha256): the artifact."""
        return self._send(path, path.name, ARTIFACT, {"sha256": _sha256(path)})

    def _send(self, path: Path, name: str, kind: Kind, data: Mapping[str, str]) -> Any:
        """POST the file (multipart `file`, named `name`) and `data` to `kind`'s list."""
        try:
            with path.open("rb") as fh:
                files = {"file": (name, fh, "application/octet-stream")}
                return self.call(
                    "POST", kind.list_href, f"{kind.operation}_create", files=files, data=data
                )
        except OSError as exc:
            raise CliError(f"Could not read {path}: {exc.strerror or exc}.") from None

    def sync(
        self,
        repository: dict[str, Any],
        remote: str | None,
        mirror: bool,
        progress: Callable[[list[dict[str, Any]]], None] | None = None,
    ) -> Any:
        body: dict[str, Any] = {"mirror": mirror}
        if remote:
            body["remote"] = remote
        href = repository["pulp_href"] + "sync/"
        reply = self.call("POST", href, f"{REPOSITORY.operation}_sync", json=body)
        task = self.wait(reply["task"], progress)
        if self.background:
            return task
        created = [h for h in task.get("created_resources") or [] if is_version_href(h)]
        return self.get(created[0], f"{VERSION.operation}_read") if created else task

    def orphans_cleanup(self, protection_minutes: int | None) -> Any:
        body = {} if protection_minutes is None else {"orphan_protection_time": protection_minutes}
        reply = self.call(
            "POST", API_ROOT + "orphans/cleanup/", "orphans_cleanup_cleanup", json=body
        )
        return self.wait(reply["task"])

    def repair(self, version_href: str | None, verify_checksums: bool | None) -> Any:
        """Repair a version's stored files (None: every stored file); the finished task."""
        body = {} if verify_checksums is None else {"verify_checksums": verify_checksums}
        if version_href is None:
            reply = self.call("POST", API_ROOT + "repair/", "repair_post", json=body)
        else:
            operation = "repositories_python_python_versions_repair"
            reply = self.call("POST", version_href + "repair/", operation, json=body)
        return self.wait(reply["task"])

    def status(self) -> Any:
        return self.call("GET", API_ROOT + "status/", "status_read", auth=False)

    # ---- tasks --------------------------------------------------------------------------

    def settle(
        self,
        reply: Any,
        wanted: Callable[[str], bool],
        fallback: Callable[[], Any] | None = None,
    ) -> Any:
        """A direct reply as it is; for a task, what it made: its `result`, else the first
        created resource that `wanted(href)` accepts, else `fallback()`, else the task."""
        if not _is_task(reply):
            return reply
        task = self.wait(reply["task"])
        if self.background:
            return task
        if task.get("result"):
            return task["result"]
        for href in task.get("created_resources") or []:
            if isinstance(href, str) and wanted(href):
                return self.get(href, _read_operation(href))
        return fallback() if fallback is not None else task

    def wait(
        self,
        task_href: str,
        progress: Callable[[list[dict[str, Any]]], None] | None = None,
    ) -> dict[str, Any]:
        """Poll the task until it is final (or once, in background mode); `progress` sees
        the task's progress reports on every poll."""
        deadline = time.monotonic() + self.task_timeout
        while True:
            task = _object(self.get(task_href, "tasks_read"))
            state = task.get("state")
            if progress is not None:
                progress(task.get("progress_reports") or [])
            if self.background or state == "completed":
                return task
            if state == "failed":
                error = task.get("error") or {}
                reason = error.get("description") or error.get("reason") or "unknown error"
                raise CliError(f"Task {task_href} failed: '{reason}'")
            if state in FINAL_TASK_STATES:
                raise CliError(f"Task {task_href} {state}.")
            if state not in TASK_STATES:
                raise CliError(f"Task {task_href} is in an unknown state: {state!r}.")
            if time.monotonic() >= deadline:
                raise CliError(
                    f"Task {task_href} did not finish within {self.task_timeout:g} s "
                    f"(state: {state}); see `pullthrough task show --href {task_href}`."
                )
            time.sleep(POLL_INTERVAL)


def _object(reply: Any) -> dict[str, Any]:
    if not isinstance(reply, dict):
        raise CliError(f"Expected a JSON object from the server, got {type(reply).__name__}.")
    return reply


def _is_task(reply: Any) -> bool:
    return isinstance(reply, dict) and list(reply) == ["task"]


def _read_operation(href: str) -> str:
    if is_version_href(href):
        return f"{VERSION.operation}_read"
    kind = next((k for k in KINDS.values() if k.owns(href)), None)
    return f"{kind.operation}_read" if kind else "read"


def _decode(response: requests.Response, operation: str, url: str) -> Any:
    """The JSON body of a 2xx reply; pulp-cli's error messages otherwise."""
    status = response.status_code
    if status == 401:
        raise CliError(f"Authentication failed for {operation}.")
    if status == 403:
        raise CliError(f"Operation {operation} is not authorized.")
    if not 200 <= status < 300:
        body = response.text.strip() or f"HTTP {status} {response.reason}"
        raise CliError(" ".join(body.splitlines()) if len(body) < 2000 else body[:2000] + "...")
    if status == 204 or not response.content:
        return {}
    try:
        return response.json()
    except ValueError:
        raise CliError(f"The answer from {url} is not JSON (HTTP {status}).") from None


def _reason(exc: requests.RequestException) -> str:
    """The operating system's words when there are some ('Connection refused'), else the type."""
    match = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", str(exc))
    return match.group(1).strip() if match else type(exc).__name__


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise CliError(f"Could not read {path}: {exc.strerror or exc}.") from None
    return digest.hexdigest()
