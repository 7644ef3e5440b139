"""Rows that keep stored bytes whatever else shares them: an artifact's, an upload chunk's.
Eviction, orphan cleanup and a failed import leave bytes one of them records."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from pullthrough.catalog.models import Artifact, UploadChunk


def kept(session: Session, sha256: str) -> bool:
    """Whether an artifact or a chunk of an upload records these bytes."""
    for column in (Artifact.sha256, UploadChunk.sha256):
        found = select(column).where(column == sha256).limit(1)
        if session.scalar(found) is not None:
            return True
    return False
