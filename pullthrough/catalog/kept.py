"""Rows that keep stored bytes whatever else shares them: an artifact's, an upload chunk's.
Eviction, orphan cleanup and a failed import leave bytes one of them records."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import ColumnElement, exists, or_, select
from sqlalchemy.orm import Session

from pullthrough.catalog.models import Artifact, UploadChunk

# The columns whose rows keep the bytes they name
KEEPERS = (Artifact.sha256, UploadChunk.sha256)


def keeping(sha256: str) -> ColumnElement[bool]:
    """A condition: an artifact or a chunk of an upload records these bytes (for a query that
    asks it beside others, in one statement)."""
    return or_(*(exists().where(column == sha256) for column in KEEPERS))


def kept(session: Session, sha256: str) -> bool:
    """Whether an artifact or a chunk of an upload records these bytes."""
    return bool(session.scalar(select(keeping(sha256))))


def add_artifact(session: Session, size: int, digests: Mapping[str, str]) -> bool:
    """The artifact of stored bytes (`digests`: each of core.digests.COMPUTED, by name), as
    Pulp makes one of every upload and of every file a sync downloads - unless there is one
    already (callers hold the bytes' lock: one at a time). Whether it was made."""
    found = select(Artifact.id).where(Artifact.sha256 == digests["sha256"])
    if session.scalar(found) is not None:
        return False
    session.add(Artifact(size=size, **digests))
    return True
