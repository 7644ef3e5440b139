"""Local yanks (PEP 592): a release or one file marked yanked here, whatever its source says.

A yank keeps the file listed and downloadable, with `data-yanked` / `"yanked"`: pip and uv skip
it unless a requirement pins it exactly (`==`). Un-yanking removes the local mark only; a file
its upstream yanked stays yanked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import msgspec
from packaging.version import Version

from pullthrough.core.models import ProjectPage, file_versions


@dataclass(frozen=True)
class Yank:
    """A release (`version`) or a file (`filename`) of a project, yanked with a reason."""

    version: Version | None = None
    filename: str | None = None
    reason: str | None = None

    def covers(self, filename: str, version: Version | None) -> bool:
        if self.filename is not None:
            return filename == self.filename
        return version is not None and version == self.version


def apply_yanks(page: ProjectPage, yanks: Sequence[Yank]) -> ProjectPage:
    """The page with the files the yanks cover marked yanked (the first yank's reason)."""
    if not yanks:
        return page
    versions = file_versions(page)
    files = []
    for f in page.files:
        found = next((y for y in yanks if y.covers(f.filename, versions.get(f.filename))), None)
        files.append(
            f if found is None else msgspec.structs.replace(f, yanked=found.reason or True)
        )
    return replace(page, files=tuple(files))
