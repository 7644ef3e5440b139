"""A repository's package blocklist in the catalog: its entries, and which packages they keep
out (core.repository_blocklist decides)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from pullthrough.catalog.models import Package, RepositoryBlocklistEntry
from pullthrough.core.repository_blocklist import Entry, blocked

BATCH = 500  # ids in one IN (...)


def entries(session: Session, repository_id: str) -> list[Entry]:
    rows = session.scalars(
        select(RepositoryBlocklistEntry).where(
            RepositoryBlocklistEntry.repository_id == repository_id
        )
    )
    return [Entry(r.name, r.version, r.filename) for r in rows]


def blocked_packages(
    session: Session, repository_id: str, packages: Iterable[Package]
) -> list[Package]:
    """The packages the repository's blocklist keeps out."""
    rules = entries(session, repository_id)
    return blocked(rules, packages) if rules else []


def blocked_ids(session: Session, repository_id: str, package_ids: Iterable[str]) -> list[Package]:
    """The packages of these ids the repository's blocklist keeps out."""
    rules = entries(session, repository_id)
    if not rules:
        return []
    ids, found = sorted(set(package_ids)), []
    for start in range(0, len(ids), BATCH):
        chunk = ids[start : start + BATCH]
        found += blocked(rules, session.scalars(select(Package).where(Package.id.in_(chunk))))
    return found
