"""A repository's package blocklist in the catalog: its entries, and which packages they keep
out (core.repository_blocklist decides)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from pullthrough.catalog.db import in_batches
from pullthrough.catalog.models import Package, RepositoryBlocklistEntry
from pullthrough.core.repository_blocklist import Entry, blocked


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
    found: list[Package] = []
    for chunk in in_batches(sorted(set(package_ids))):
        found += blocked(rules, session.scalars(select(Package).where(Package.id.in_(chunk))))
    return found
