"""The kinds of the REST API: where each lives, what its operations and hrefs are called.

One table for the server, its API document and the CLI's REST client. Hrefs are
`/pulp/api/v3/<path><id>/`; a repository version lives at `<repository href>versions/<n>/`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pullthrough.core.fields import INT_MAX

API_ROOT = "/pulp/api/v3/"
_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


class BadHref(ValueError):
    pass


@dataclass(frozen=True)
class Kind:
    """A kind of object; the names Pulp gives its operations, parameters and schemas follow."""

    label: str  # as messages and task references name it
    path: str  # below API_ROOT
    name: str  # "Repository", "PackageContent"
    plugin: bool = True  # the python plugin's (python_python_..._href), or core's (task_href)
    core_schema: bool = False  # its schema is core's (RepositoryVersion, Task)
    # core's list of every type of it (`repositories/`): the same objects, and the same filters
    generic: str | None = None
    param: str | None = None  # its href's name in the API document, where Pulp's differs

    @property
    def operation(self) -> str:
        """The prefix of its operationIds: `repositories_python_python`."""
        return self.path.strip("/").replace("/", "_")

    @property
    def href_param(self) -> str:
        """The API document's name for an href: `python_python_repository_href`."""
        if self.param is not None:
            return self.param
        snake = re.sub(r"(?<!^)(?=[A-Z])", "_", self.name).lower()
        return f"python_python_{snake}_href" if self.plugin else f"{snake}_href"

    @property
    def schema(self) -> str:
        return self.name if self.core_schema or not self.plugin else f"python.Python{self.name}"

    @property
    def title(self) -> str:
        """For summaries: "python repository"."""
        words = re.sub(r"(?<!^)(?=[A-Z])", " ", self.name).lower().replace(" content", "")
        return f"python {words}" if self.plugin and not self.core_schema else words

    @property
    def list_href(self) -> str:
        return API_ROOT + self.path

    def href(self, id: str) -> str:
        return f"{self.list_href}{id}/"

    def owns(self, href: str) -> bool:
        return re.fullmatch(re.escape(self.list_href) + _UUID + "/", href) is not None

    def parse(self, value: object) -> str:
        """The id in an href of this kind; BadHref otherwise."""
        match = re.fullmatch(re.escape(self.list_href) + f"({_UUID})/", str(value))
        if not match:
            raise BadHref(f"Invalid hyperlink - expected a {self.label} href, got {value!r}.")
        return match.group(1)


REPOSITORY = Kind(
    "repository", "repositories/python/python/", "Repository", generic="repositories/"
)
REMOTE = Kind("remote", "remotes/python/python/", "Remote", generic="remotes/")
DISTRIBUTION = Kind(
    "distribution", "distributions/python/pypi/", "Distribution", generic="distributions/"
)
PUBLICATION = Kind(
    "publication", "publications/python/pypi/", "Publication", generic="publications/"
)
CONTENT = Kind("content", "content/python/packages/", "PackageContent", generic="content/")
TASK = Kind("task", "tasks/", "Task", plugin=False)
WORKER = Kind("worker", "workers/", "Worker", plugin=False)
PROJECT_STATUS = Kind("project_status", "projects/python/statuses/", "ProjectStatus")
YANK = Kind("yank", "projects/python/yanks/", "Yank")
TOKEN = Kind("token", "tokens/", "Token", plugin=False)
AUDIT_EVENT = Kind("audit_event", "audit/", "AuditEvent", plugin=False)
ARTIFACT = Kind("artifact", "artifacts/", "Artifact", plugin=False)
UPLOAD = Kind("upload", "uploads/", "Upload", plugin=False)
VERSION = Kind(
    "repository_version",
    f"{REPOSITORY.path}versions/",
    "RepositoryVersion",
    core_schema=True,
    generic="repository_versions/",
)
# A repository's package blocklist (Pulp python >= 3.30.2), below the repository:
# `<repository href>blocklist_entries/<id>/`. Not a distribution's `blocklist`.
BLOCKLIST_ENTRY = Kind(
    "blocklist_entry",
    f"{REPOSITORY.path}blocklist_entries/",
    "BlocklistEntry",
    param="python_python_python_blocklist_entry_href",
)
KINDS = {
    k.label: k
    for k in (
        REPOSITORY,
        REMOTE,
        DISTRIBUTION,
        PUBLICATION,
        CONTENT,
        TASK,
        WORKER,
        PROJECT_STATUS,
        YANK,
        TOKEN,
        AUDIT_EVENT,
        ARTIFACT,
        UPLOAD,
    )
}
_VERSION_HREF = re.compile(re.escape(REPOSITORY.list_href) + f"({_UUID})/versions/(\\d+)/")


def version_href(repository_id: str, number: int) -> str:
    return f"{REPOSITORY.href(repository_id)}versions/{number}/"


def blocklist_entry_href(repository_id: str, entry_id: str) -> str:
    return f"{REPOSITORY.href(repository_id)}blocklist_entries/{entry_id}/"


def is_version_href(href: str) -> bool:
    return _VERSION_HREF.fullmatch(href) is not None


def parse_version(value: object) -> tuple[str, int]:
    """(repository id, number) of a repository version href; BadHref otherwise, also for a
    number past the catalog's integers (no version has it, and the database cannot compare it)."""
    match = _VERSION_HREF.fullmatch(str(value))
    if not match:
        raise BadHref(f"Invalid hyperlink - expected a repository version href, got {value!r}.")
    if (number := int(match.group(2))) > INT_MAX:
        raise BadHref(f"Invalid hyperlink - Object does not exist: {value}")
    return match.group(1), number


def ref_href(ref: Mapping[str, Any]) -> str:
    """The href of a task's reference to what it created."""
    if ref["kind"] == VERSION.label:
        return version_href(ref["id"], ref["number"])
    return KINDS[ref["kind"]].href(ref["id"])
