"""Pulp-shaped hrefs: `/pulp/api/v3/<kind path><id>/`; versions at `<repository href>versions/<n>/`."""

from __future__ import annotations

import re

API_ROOT = "/pulp/api/v3/"
PATHS = {
    "repository": "repositories/python/python/",
    "remote": "remotes/python/python/",
    "distribution": "distributions/python/pypi/",
    "publication": "publications/python/pypi/",
    "content": "content/python/packages/",
    "task": "tasks/",
}
_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


class BadHref(ValueError):
    pass


def href(kind: str, id: str) -> str:
    return f"{API_ROOT}{PATHS[kind]}{id}/"


def version_href(repository_id: str, number: int) -> str:
    return f"{href('repository', repository_id)}versions/{number}/"


def parse(value: object, kind: str) -> str:
    """The id in an href of `kind`; BadHref otherwise."""
    match = re.fullmatch(re.escape(API_ROOT + PATHS[kind]) + f"({_UUID})/", str(value))
    if not match:
        raise BadHref(f"Invalid hyperlink - expected a {kind} href, got {value!r}.")
    return match.group(1)


def parse_version(value: object) -> tuple[str, int]:
    match = re.fullmatch(
        re.escape(API_ROOT + PATHS["repository"]) + f"({_UUID})/versions/(\\d+)/", str(value)
    )
    if not match:
        raise BadHref(f"Invalid hyperlink - expected a repository version href, got {value!r}.")
    return match.group(1), int(match.group(2))
