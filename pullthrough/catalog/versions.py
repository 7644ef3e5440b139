"""Repository versions: immutable numbered content sets, made by adding and removing packages.

Membership rows say a package is in versions [version_added, version_removed), so a version's
content is one query and a new version writes only what changed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Select, delete, func, or_, select, update
from sqlalchemy.orm import Session

from pullthrough.catalog.models import (
    Package,
    Publication,
    Repository,
    RepositoryContent,
    RepositoryVersion,
)


def present_in(repository_id: Any, number: Any) -> Any:
    """The membership condition for `number` of a repository: values, or the columns of the
    version a query correlates (`RepositoryVersion.repository_id`, `.number`)."""
    rc = RepositoryContent
    return (
        (rc.repository_id == repository_id)
        & (rc.version_added <= number)
        & or_(rc.version_removed.is_(None), rc.version_removed > number)
    )


def version_packages(repository_id: str, number: int) -> Select[Package]:
    return (
        select(Package)
        .join(RepositoryContent, RepositoryContent.package_id == Package.id)
        .where(present_in(repository_id, number))
    )


def create_repository(session: Session, **fields: Any) -> Repository:
    """A repository with its empty version 0."""
    repo = Repository(**fields)
    session.add(repo)
    session.flush()
    initial_version(session, repo)
    return repo


def initial_version(session: Session, repo: Repository) -> None:
    """Every repository starts with version 0, empty."""
    session.add(RepositoryVersion(repository_id=repo.id, number=0))
    session.flush()


def new_version(
    session: Session,
    repository_id: str,
    *,
    add: Iterable[str] = (),
    remove: Iterable[str] = (),
    base: int | None = None,
) -> RepositoryVersion | None:
    """Make the next version with packages added and removed (by id); None if nothing changes.

    The repository row is locked (FOR UPDATE on PostgreSQL; SQLite's write transaction), so two
    concurrent changes get distinct numbers and neither is lost.
    """
    # populate_existing: a repository this session loaded before the lock must be re-read.
    repo = session.execute(
        select(Repository)
        .where(Repository.id == repository_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()
    latest = repo.latest_number
    current = set(
        session.scalars(select(RepositoryContent.package_id).where(present_in(repo.id, latest)))
    )
    added, removed = set(add) - current, set(remove) & current
    if not added and not removed:
        return None
    number = latest + 1
    session.add_all(
        RepositoryContent(repository_id=repo.id, package_id=pid, version_added=number)
        for pid in sorted(added)
    )
    if removed:
        session.execute(
            update(RepositoryContent)
            .where(present_in(repo.id, latest), RepositoryContent.package_id.in_(removed))
            .values(version_removed=number)
        )
    repo.latest_number = number
    version = RepositoryVersion(
        repository_id=repo.id, number=number, base_number=latest if base is None else base
    )
    session.add(version)
    session.flush()
    if repo.autopublish:
        session.add(Publication(repository_version_id=version.id))
    _retain(session, repo)
    return version


def _retain(session: Session, repo: Repository) -> None:
    """Keep only the newest `retain_repo_versions` versions."""
    if not repo.retain_repo_versions:
        return
    oldest_kept = repo.latest_number - repo.retain_repo_versions + 1
    session.execute(
        delete(RepositoryVersion).where(
            RepositoryVersion.repository_id == repo.id, RepositoryVersion.number < oldest_kept
        )
    )
    # Content that left before the oldest kept version is in no version any more: an orphan.
    session.execute(
        delete(RepositoryContent).where(
            RepositoryContent.repository_id == repo.id,
            RepositoryContent.version_removed <= oldest_kept,
        )
    )
    # As Pulp squashes a deleted version into the next: the oldest kept version now adds what
    # it holds, and names no deleted version as its base.
    session.execute(
        update(RepositoryContent)
        .where(
            RepositoryContent.repository_id == repo.id,
            RepositoryContent.version_added < oldest_kept,
        )
        .values(version_added=oldest_kept)
    )
    session.execute(
        update(RepositoryVersion)
        .where(
            RepositoryVersion.repository_id == repo.id,
            RepositoryVersion.base_number < oldest_kept,
        )
        .values(base_number=None)
    )


def content_counts(session: Session, repository_id: str, number: int) -> dict[str, int]:
    rc = RepositoryContent
    mine = rc.repository_id == repository_id

    def count(condition: Any) -> int:
        return session.scalar(select(func.count()).select_from(rc).where(mine, condition)) or 0

    return {
        "added": count(rc.version_added == number),
        "removed": count(rc.version_removed == number),
        "present": count(present_in(repository_id, number)),
    }


def is_in_any_repository(session: Session, sha256: str) -> bool:
    """Whether some repository (any version) holds a package with these bytes, or whose
    METADATA file (PEP 658) has them."""
    query = (
        select(RepositoryContent.id)
        .join(Package, Package.id == RepositoryContent.package_id)
        .where(or_(Package.sha256 == sha256, Package.metadata_sha256 == sha256))
        .limit(1)
    )
    return session.scalar(query) is not None
