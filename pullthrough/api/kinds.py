"""The kinds of the REST API: where each lives, what its operations and hrefs are called.

One table for the server, its API document and the CLI's REST client. Hrefs are
`/pulp/api/v3/<path><id>/`; a repository version lives at `<repository href>versions/<n>/`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

API_ROOT = "/pulp/api/v3/"
_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


class BadHref(ValueError):
    pass


@dataclass(frozen=True)
class Kind:
    label: str  # as messages and task references name it
    path: str  # below API_ROOT
    operation: str  # the prefix of its operationIds
    href_param: str  # the API document's name for an href of this kind
    schema: str  # the API document's schema name
    title: str  # for summaries: "python repository"

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
    "repository",
    "repositories/python/python/",
    "repositories_python_python",
    "python_python_repository_href",
    "python.PythonRepository",
    "python repository",
)
REMOTE = Kind(
    "remote",
    "remotes/python/python/",
    "remotes_python_python",
    "python_python_remote_href",
    "python.PythonRemote",
    "python remote",
)
DISTRIBUTION = Kind(
    "distribution",
    "distributions/python/pypi/",
    "distributions_python_pypi",
    "python_python_distribution_href",
    "python.PythonDistribution",
    "python distribution",
)
PUBLICATION = Kind(
    "publication",
    "publications/python/pypi/",
    "publications_python_pypi",
    "python_python_publication_href",
    "python.PythonPublication",
    "python publication",
)
CONTENT = Kind(
    "content",
    "content/python/packages/",
    "content_python_packages",
    "python_python_package_content_href",
    "python.PythonPackageContent",
    "python package",
)
TASK = Kind("task", "tasks/", "tasks", "task_href", "Task", "task")
VERSION = Kind(
    "repository_version",
    REPOSITORY.path,
    f"{REPOSITORY.operation}_versions",
    "python_python_repository_version_href",
    "RepositoryVersion",
    "repository version",
)
KINDS = {k.label: k for k in (REPOSITORY, REMOTE, DISTRIBUTION, PUBLICATION, CONTENT, TASK)}
_VERSION_HREF = re.compile(re.escape(REPOSITORY.list_href) + f"({_UUID})/versions/(\\d+)/")


def version_href(repository_id: str, number: int) -> str:
    return f"{REPOSITORY.href(repository_id)}versions/{number}/"


def is_version_href(href: str) -> bool:
    return _VERSION_HREF.fullmatch(href) is not None


def parse_version(value: object) -> tuple[str, int]:
    """(repository id, number) of a repository version href; BadHref otherwise."""
    match = _VERSION_HREF.fullmatch(str(value))
    if not match:
        raise BadHref(f"Invalid hyperlink - expected a repository version href, got {value!r}.")
    return match.group(1), int(match.group(2))


def ref_href(ref: Mapping[str, Any]) -> str:
    """The href of a task's reference to what it created."""
    if ref["kind"] == VERSION.label:
        return version_href(ref["id"], ref["number"])
    return KINDS[ref["kind"]].href(ref["id"])
