"""Orphan cleanup: packages in no repository version, older than a protection time, and their
files. Content a distribution can reach is in some repository version, so it is never touched;
pull-through cache files are left to the cache's own LRU limit."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, or_, select

from pullthrough.catalog.models import Package, RepositoryContent, now
from pullthrough.services.tasks import TaskContext

DEFAULT_PROTECTION_MINUTES = 1440  # as Pulp's ORPHAN_PROTECTION_TIME


def orphan_cleanup(ctx: TaskContext) -> None:
    """The task: args `orphan_protection_time` (minutes), `content_ids` (None: all)."""
    minutes = ctx.args.get("orphan_protection_time")
    minutes = DEFAULT_PROTECTION_MINUTES if minutes is None else int(minutes)
    cutoff = now() - timedelta(minutes=minutes)
    svc = ctx.services
    with svc.catalog.session() as session:
        query = select(Package).where(
            Package.id.not_in(select(RepositoryContent.package_id)),
            Package.origin != "cache",
            Package.pulp_created <= cutoff,
        )
        if ids := ctx.args.get("content_ids"):
            query = query.where(Package.id.in_(ids))
        orphans = session.scalars(query).all()
        files = {p.sha256 for p in orphans} | {
            p.metadata_sha256 for p in orphans if p.metadata_sha256
        }
        session.execute(delete(Package).where(Package.id.in_([p.id for p in orphans])))
        still_used = set(
            session.scalars(select(Package.sha256).where(Package.sha256.in_(files)))
        ) | set(
            session.scalars(
                select(Package.metadata_sha256).where(
                    or_(Package.metadata_sha256.in_(files), Package.sha256.in_(files))
                )
            )
        )
    removed = 0
    for sha in files - still_used:
        if not svc.ledger.tracks(sha):  # not a pull-through cache file
            removed += svc.store.delete(sha) > 0
    ctx.completed("clean-up.content", "Clean up orphan Content", len(orphans))
    ctx.completed("clean-up.artifacts", "Clean up orphan Artifacts", removed)
