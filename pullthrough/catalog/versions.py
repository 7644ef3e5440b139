"""Repository versions: immutable numbered content sets, made by adding and removing packages.

Membership rows say a package is in versions [version_added, version_removed), so a version's
content is one query and a new version writes only what changed. Deleting a version, as Pulp
does, squashes its changes into the next one; numbers are never given twice.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, exists, func, insert, or_, select, update
from sqlalchemy.orm import Session

from pullthrough.catalog.db import in_batches
from pullthrough.catalog.models import (
    Distribution,
    Package,
    Publication,
    Repository,
    RepositoryContent,
    RepositoryVersion,
)
from pullthrough.catalog.repository_blocklist import blocked_ids
from pullthrough.core.repository_blocklist import PackagesBlocked


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


def _locked(session: Session, repository_id: str) -> Repository:
    """The repository row, locked (FOR UPDATE on PostgreSQL; SQLite's write transaction), so
    that two changes of its versions run one after the other and neither is lost."""
    # populate_existing: a repository this session loaded before the lock must be re-read.
    repo = session.execute(
        select(Repository)
        .where(Repository.id == repository_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()
    # latest_number is a subquery: in the statement that waited for the lock, PostgreSQL read it
    # in the snapshot from before the wait, without the version a writer made meanwhile. Read
    # it again, now, in a statement of its own.
    session.expire(repo, ["latest_number"])
    return repo


def new_version(
    session: Session,
    repository_id: str,
    *,
    add: Iterable[str] = (),
    remove: Iterable[str] = (),
    exactly: bool = False,
    base: int | None = None,
    base_repository: str | None = None,
) -> RepositoryVersion | None:
    """Make the next version with packages added and removed (by id); None if nothing changes.
    `exactly`: the version holds `add` and nothing else (a mirror sync, a modify removing "*"):
    what the latest version has beyond it is removed - read under the repository's lock, so
    that a package another change added meanwhile goes too. `base` (a modify's base_version):
    the changes start from what that version holds instead of the latest, read under the lock
    too (a deletion squashes its rows into the next version: never half seen); VersionGone if
    it was deleted. The base is a version of `base_repository` (default: this one), as Pulp's
    base_version may be any repository's.

    Its number follows the last one given, even when that version was deleted since: no
    deleted version's number (nor any of its rows) comes back.
    """
    repo = _locked(session, repository_id)
    latest = repo.latest_number
    rc = RepositoryContent
    present = select(rc.package_id, rc.id).where(present_in(repo.id, latest))
    rows = {package_id: row_id for package_id, row_id in session.execute(present)}
    current = rows.keys()
    base_id = None
    if base is not None:  # what the version is to hold, whatever the latest holds
        base_id, start = held_by(session, base_repository or repo.id, base)  # even when "*"
        add = set(add) | (set() if exactly else start - set(remove))
        exactly = True
    added = set(add) - current
    removed = current - set(add) if exactly else set(remove) & current
    if added and (rejected := blocked_ids(session, repo.id, added)):
        if repo.error_on_reject:
            raise PackagesBlocked(p.filename for p in rejected)
        added -= {p.id for p in rejected}
    if not added and not removed:
        return None
    number = repo.last_number + 1
    if added:  # rows, not objects: a big mirror's 70,000 in a second or two, not six
        session.execute(
            insert(rc),
            [
                {"repository_id": repo.id, "package_id": pid, "version_added": number}
                for pid in sorted(added)
            ],
        )
    for chunk in in_batches(sorted(rows[pid] for pid in removed)):  # by their rows' keys
        session.execute(
            update(rc).where(rc.id.in_(chunk)).values(version_removed=number),
            execution_options={"synchronize_session": False},  # no row of theirs is loaded
        )
    repo.last_number = number
    # As Pulp's: a base only where one was asked for (a modify's `base_version`)
    version = RepositoryVersion(repository_id=repo.id, number=number, base_version_id=base_id)
    session.add(version)
    session.flush()
    session.expire(repo, ["latest_number"])
    if repo.autopublish:
        session.add(Publication(repository_version_id=version.id))
    _retain(session, repo)
    return version


def latest_version(session: Session, repository_id: str) -> RepositoryVersion:
    """The repository's newest version, read now: not the `latest_number` a row loaded earlier
    in the transaction holds (a deletion of that version may have committed since)."""
    newest = select(RepositoryVersion).where(RepositoryVersion.repository_id == repository_id)
    return session.scalars(newest.order_by(RepositoryVersion.number.desc()).limit(1)).one()


def _retain(session: Session, repo: Repository) -> None:
    """Keep only the newest `retain_repo_versions` versions a distribution does not serve, as
    Pulp's cleanup of old versions: the others are deleted as `delete_version` deletes one
    (squashed into the next), and a version a distribution serves - pinned, or through a
    publication of it - stays, however old, without counting."""
    if not repo.retain_repo_versions:
        return
    newest_first = select(RepositoryVersion).where(RepositoryVersion.repository_id == repo.id)
    versions = session.scalars(newest_first.order_by(RepositoryVersion.number.desc())).all()
    if len(versions) <= repo.retain_repo_versions:
        return
    unserved = [v for v in versions if not is_distributed(session, v)]
    for version in unserved[repo.retain_repo_versions :]:
        # Checked again under the version's lock: a distribution set to it since (PostgreSQL,
        # committed before the lock) serves it now, and it stays as a served one does
        with contextlib.suppress(DistributedVersion):
            delete_version(session, repo.id, version.number)


class VersionGone(ValueError):
    """The version a change was to start from is deleted."""


def held_by(session: Session, repository_id: str, number: int) -> tuple[str, set[str]]:
    """A version's id and the ids of the packages it holds (VersionGone if there is no such
    version)."""
    there = select(RepositoryVersion.id).where(
        RepositoryVersion.repository_id == repository_id, RepositoryVersion.number == number
    )
    if (version_id := session.scalar(there)) is None:
        raise VersionGone(f"version {number} of the repository no longer exists")
    members = select(RepositoryContent.package_id).where(present_in(repository_id, number))
    return version_id, set(session.scalars(members))


class VersionKept(ValueError):
    """A version that may not be deleted, and why, as Pulp words it."""

    error_code: str | None = None


class OnlyVersion(VersionKept):
    error_code = "PLP0011"

    def __init__(self) -> None:
        super().__init__(
            f"[{self.error_code}] Cannot delete repository version. Repositories must have at"
            " least one repository version."
        )


class DistributedVersion(VersionKept):
    def __init__(self) -> None:
        super().__init__(
            "The repository version cannot be deleted because it (or its publications) are"
            " currently being used to distribute content. Please update the necessary"
            " distributions first."
        )


def is_distributed(session: Session, version: RepositoryVersion) -> bool:
    """Whether a distribution serves the version: itself, a publication of it, or (as the
    repository's latest) the repository. Pulp's protected versions."""
    served = select(Distribution.id).where(
        or_(
            Distribution.repository_version_id == version.id,
            Distribution.publication_id.in_(
                select(Publication.id).where(Publication.repository_version_id == version.id)
            ),
        )
    )
    if session.scalar(served.limit(1)) is not None:
        return True
    latest = session.scalar(
        select(func.max(RepositoryVersion.number)).where(
            RepositoryVersion.repository_id == version.repository_id
        )
    )
    if version.number != latest:
        return False
    whole = select(Distribution.id).where(Distribution.repository_id == version.repository_id)
    return session.scalar(whole.limit(1)) is not None


def delete_version(session: Session, repository_id: str, number: int) -> bool:
    """Delete a version as Pulp does, every other version's content unchanged: its changes are
    squashed into the next version (whose added and removed are then counted from the version
    before), or, for the latest, undone (the one before becomes the latest; its number is not
    given again). Its publications go with it. False if there is no such version.

    Raises OnlyVersion for a repository's only version, DistributedVersion for one that a
    distribution serves.
    """
    repo = _locked(session, repository_id)
    # Locked too (PostgreSQL): a distribution or publication set to it from now waits at its
    # foreign key's check and then fails, instead of committing after the check below and
    # being emptied by the foreign key's SET NULL when the version goes.
    version = session.scalar(
        select(RepositoryVersion)
        .where(RepositoryVersion.repository_id == repo.id, RepositoryVersion.number == number)
        .with_for_update()
    )
    if version is None:
        return False
    count = select(func.count()).where(RepositoryVersion.repository_id == repo.id)
    if (session.scalar(count) or 0) <= 1:
        raise OnlyVersion()
    if is_distributed(session, version):
        raise DistributedVersion()
    rc = RepositoryContent
    mine = rc.repository_id == repo.id
    later = session.scalar(
        select(func.min(RepositoryVersion.number)).where(
            RepositoryVersion.repository_id == repo.id, RepositoryVersion.number > number
        )
    )
    if later is None:
        session.execute(delete(rc).where(mine, rc.version_added == number))
        session.execute(
            update(rc).where(mine, rc.version_removed == number).values(version_removed=None)
        )
    else:
        _squash(session, repo.id, number, later)
    session.execute(delete(Publication).where(Publication.repository_version_id == version.id))
    session.execute(  # as the foreign key's SET NULL, said here: the versions based on it
        update(RepositoryVersion)
        .where(RepositoryVersion.base_version_id == version.id)
        .values(base_version_id=None)
    )
    session.delete(version)
    session.flush()
    session.expire(repo, ["latest_number"])
    return True


def _squash(session: Session, repository_id: str, number: int, later: int) -> None:
    """Move version `number`'s changes into `later`, the next version, as Pulp's squash."""
    rc = RepositoryContent
    mine = rc.repository_id == repository_id
    # Added in `number` and removed in `later`: in no version that stays.
    session.execute(delete(rc).where(mine, rc.version_added == number, rc.version_removed == later))
    # Removed in `number` and added again in `later`: one range, to where the later one ended.
    # Both sides read once and matched here: as one query (a semi-join), PostgreSQL scanned the
    # repository's rows for each row added in `later` while a big sync's rows had no statistics.
    ended = {
        package_id: row_id
        for row_id, package_id in session.execute(
            select(rc.id, rc.package_id).where(mine, rc.version_removed == number)
        )
    }
    again = [  # (the row that ended in `number`, the one added again in `later`, its end)
        (ended[package_id], row_id, until)
        for row_id, package_id, until in session.execute(
            select(rc.id, rc.package_id, rc.version_removed).where(mine, rc.version_added == later)
        )
        if package_id in ended
    ]
    if again:
        session.execute(
            update(RepositoryContent),
            [{"id": kept, "version_removed": until} for kept, _, until in again],
        )
        for chunk in in_batches([merged for _, merged, _ in again]):
            session.execute(delete(rc).where(rc.id.in_(chunk)))
    session.execute(update(rc).where(mine, rc.version_added == number).values(version_added=later))
    session.execute(
        update(rc).where(mine, rc.version_removed == number).values(version_removed=later)
    )


Counts = dict[str, int]  # a version's content summary: "added", "removed", "present"


def content_counts(session: Session, repository_id: str, number: int) -> Counts:
    """A version's content summary: what it added, removed, and holds."""
    return content_counts_of(session, [(repository_id, number)])[(repository_id, number)]


def content_counts_of(
    session: Session, versions: Iterable[tuple[str, int]]
) -> dict[tuple[str, int], Counts]:
    """Each version's content summary, by (repository id, number), in two grouped queries per
    repository, however many of its versions are asked: what each version added and removed,
    and what it holds from those (the rows added up to it less the rows removed up to it: a
    row is removed only after it was added). A list of 100 versions of a 70,000-package
    repository counted three times per version before, scanning the repository each time."""
    wanted: dict[str, set[int]] = {}
    for repository_id, number in versions:
        wanted.setdefault(repository_id, set()).add(number)
    rc = RepositoryContent
    out: dict[tuple[str, int], Counts] = {}
    for repository_id, numbers in wanted.items():
        last, mine = max(numbers), rc.repository_id == repository_id
        added: dict[int, int] = {
            n: count
            for n, count in session.execute(
                select(rc.version_added, func.count())
                .where(mine, rc.version_added <= last)
                .group_by(rc.version_added)
            )
        }
        removed = {
            n: count
            for n, count in session.execute(
                select(rc.version_removed, func.count())
                .where(mine, rc.version_removed <= last)
                .group_by(rc.version_removed)
            )
            if n is not None  # not NULL, as `<=` says: for the type's sake
        }
        out.update(
            ((repository_id, n), counts)
            for n, counts in _summaries(added, removed, numbers).items()
        )
    return out


def _summaries(
    added: dict[int, int], removed: dict[int, int], numbers: set[int]
) -> dict[int, Counts]:
    """The counts of `numbers` from the rows added and removed per version number."""
    out, present = {}, 0
    changed = sorted(set(added) | set(removed) | numbers)
    for n in changed:
        present += added.get(n, 0) - removed.get(n, 0)
        if n in numbers:
            out[n] = {"added": added.get(n, 0), "removed": removed.get(n, 0), "present": present}
    return out


def in_a_repository() -> ColumnElement[bool]:
    """A condition on a package: some repository (any version) holds it. EXISTS, not
    `packages.id IN (SELECT package_id ...)`: negated, PostgreSQL answers that as an anti-join
    only while the list fits in work_mem, and past it reads the list again for every package
    (a big catalog's cleanup took minutes to hours)."""
    return exists().where(RepositoryContent.package_id == Package.id)


def in_any_repository(sha256: str) -> ColumnElement[bool]:
    """A condition: some repository (any version) holds a package with these bytes, or whose
    METADATA file (PEP 658) has them."""
    return exists().where(
        RepositoryContent.package_id == Package.id,
        or_(Package.sha256 == sha256, Package.metadata_sha256 == sha256),
    )


def is_in_any_repository(session: Session, sha256: str) -> bool:
    return bool(session.scalar(select(in_any_repository(sha256))))
