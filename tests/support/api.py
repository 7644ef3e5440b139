"""A small client for the proxy's Pulp-shaped REST API, for end-to-end tests.

    api = Api(proxy.url)
    repo = api.create("repositories/python/python/", name="corp")
    task = api.run("POST", repo["pulp_href"] + "sync/", json={"remote": remote["pulp_href"]})

Every request authenticates as the admin (append :func:`with_auth` to the server's config) and
reads its response fully (no open connections left behind). Background tasks are polled, bounded.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import requests

PASSWORD = "s3cret-admin"
AUTH = ("admin", PASSWORD)
API = "/pulp/api/v3/"
FINAL_STATES = ("completed", "failed", "canceled", "skipped")


def with_auth(text: str) -> str:
    """A config file's text with the admin password set."""
    return text + f'[auth]\nadmin_password = "{PASSWORD}"\n'


def legacy_upload(url: str, base_path: str, path: Path) -> requests.Response:
    """What twine sends to /pypi/<base_path>/legacy/ (the file; its digests are optional), as
    the admin; the answer, read."""
    with path.open("rb") as fh:
        resp = requests.post(
            f"{url}/pypi/{base_path}/legacy/",
            data={":action": "file_upload"},
            files={"content": (path.name, fh)},
            auth=AUTH,
            timeout=30,
        )
    return resp


class Api:
    def __init__(self, url: str) -> None:
        self.url = url  # http://127.0.0.1:PORT

    def _full(self, path: str) -> str:
        if path.startswith("http"):
            return path
        return self.url + (path if path.startswith("/") else API + path)

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """The raw response (body read, connection released); `path` may be an href, a path
        relative to /pulp/api/v3/ or a full URL."""
        kwargs.setdefault("timeout", 30)
        with requests.request(method, self._full(path), auth=AUTH, **kwargs) as resp:
            _ = resp.content
        return resp

    def call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """A 2xx answer's JSON (a task's `{"task": href}` is returned as is)."""
        resp = self.request(method, path, **kwargs)
        assert resp.status_code < 300, (method, path, resp.status_code, resp.text)
        body: dict[str, Any] = resp.json()
        return body

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        return self.call("GET", path, params=params)

    def start(self, method: str, path: str, **kwargs: Any) -> str:
        """Send a request answered 202 with a task; return the task href."""
        resp = self.request(method, path, **kwargs)
        assert resp.status_code == 202, (method, path, resp.status_code, resp.text)
        href: str = resp.json()["task"]
        return href

    def wait(self, task_href: str, timeout: float = 30.0) -> dict[str, Any]:
        """Poll the task (every 0.1 s, at most `timeout` s) until it is in a final state."""
        deadline = time.monotonic() + timeout
        while True:
            task = self.get(task_href)
            if task["state"] in FINAL_STATES:
                return task
            assert time.monotonic() < deadline, f"task still {task['state']}: {task}"
            time.sleep(0.1)

    def run(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """Start a task and wait for it; it must complete."""
        task = self.wait(self.start(method, path, **kwargs))
        assert task["state"] == "completed", task
        return task

    def create(self, collection: str, **body: Any) -> dict[str, Any]:
        """Create a repository/remote (201) or a distribution/publication (a task): the object."""
        resp = self.request("POST", collection, json=body)
        assert resp.status_code in (201, 202), (collection, resp.status_code, resp.text)
        if resp.status_code == 201:
            created: dict[str, Any] = resp.json()
            return created
        task = self.wait(resp.json()["task"])
        assert task["state"] == "completed", task
        return self.get(task["created_resources"][0])

    def one(self, path: str, **params: Any) -> dict[str, Any]:
        found = self.get(path, **params)
        assert found["count"] == 1, found
        result: dict[str, Any] = found["results"][0]
        return result

    def all(self, path: str, **params: Any) -> list[dict[str, Any]]:
        found = self.get(path, limit=1000, **params)
        assert found["count"] == len(found["results"]), found
        results: list[dict[str, Any]] = found["results"]
        return results

    # ---- python content

    def repository(self, name: str, **fields: Any) -> dict[str, Any]:
        return self.create("repositories/python/python/", name=name, **fields)

    def remote(self, name: str, url: str, **fields: Any) -> dict[str, Any]:
        return self.create("remotes/python/python/", name=name, url=url, **fields)

    def distribution(self, name: str, **fields: Any) -> dict[str, Any]:
        return self.create("distributions/python/pypi/", name=name, base_path=name, **fields)

    def sync(
        self, repository: dict[str, Any], remote: dict[str, Any], **body: Any
    ) -> dict[str, Any]:
        """Start a sync, wait for it to end (in any final state); return the task."""
        href = self.start(
            "POST", repository["pulp_href"] + "sync/", json={"remote": remote["pulp_href"], **body}
        )
        return self.wait(href)

    def latest(self, repository: dict[str, Any]) -> str:
        href: str = self.get(repository["pulp_href"])["latest_version_href"]
        return href

    def packages(self, **params: Any) -> list[dict[str, Any]]:
        return self.all("content/python/packages/", **params)

    def filenames(self, version_href: str) -> set[str]:
        """The filenames a repository version holds."""
        return {p["filename"] for p in self.packages(repository_version=version_href)}

    def artifact(self, data: bytes) -> str:
        """An artifact of these bytes: its href."""
        resp = self.request("POST", "artifacts/", files={"file": ("data", data)})
        assert resp.status_code == 201, resp.text
        return str(resp.json()["pulp_href"])

    def upload(self, path: Path, repository: dict[str, Any] | None = None) -> dict[str, Any]:
        """Upload a file as content (into `repository` if given); return the task."""
        data = {"relative_path": path.name}
        if repository is not None:
            data["repository"] = repository["pulp_href"]
        with open(path, "rb") as fh:
            href = self.start(
                "POST", "content/python/packages/", data=data, files={"file": (path.name, fh)}
            )
        task = self.wait(href)
        assert task["state"] == "completed", task
        return task


def report(task: dict[str, Any], code: str) -> dict[str, Any]:
    """A task's progress report with this code."""
    found = [r for r in task["progress_reports"] if r["code"] == code]
    assert len(found) == 1, (code, task["progress_reports"])
    result: dict[str, Any] = found[0]
    return result
