"""A repository version's packages as simple-index pages, read from the catalog."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC

from sqlalchemy import select

from pullthrough.catalog.db import Catalog
from pullthrough.catalog.models import Package, ProjectStatus
from pullthrough.catalog.models import Yank as YankRow
from pullthrough.catalog.versions import version_packages
from pullthrough.config import STREAMED
from pullthrough.core.filenames import parse_version
from pullthrough.core.models import DistFile, ProjectPage
from pullthrough.core.yanks import Yank, apply_yanks
from pullthrough.upstream.client import UpstreamClient


def yank_of(row: YankRow) -> Yank:
    return Yank(parse_version(row.version or ""), row.filename, row.reason)


def package_file(p: Package) -> DistFile:
    uploaded = p.upload_time  # SQLite: naive, in UTC; PostgreSQL: aware, in the session's zone
    if uploaded.tzinfo is not None:
        uploaded = uploaded.astimezone(UTC)
    return DistFile(
        filename=p.filename,
        url=p.remote_url or "",  # on-demand content: where to fetch it; else from the store
        hashes={"sha256": p.sha256},
        requires_python=p.requires_python,
        yanked=(p.yanked_reason or True) if p.yanked else False,
        core_metadata={"sha256": p.metadata_sha256} if p.metadata_sha256 else False,
        size=p.size,
        upload_time=uploaded.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    )


@dataclass(frozen=True)
class Origin:
    """Where on-demand content comes from, and whether to keep it once fetched."""

    client: UpstreamClient
    keep: bool


class LocalContent:
    def __init__(
        self,
        catalog: Catalog,
        repository_id: str,
        number: int,
        clients: Callable[[str], UpstreamClient | None] = lambda _: None,
    ) -> None:
        self.catalog = catalog
        self.repository_id = repository_id
        self.number = number
        self.clients = clients
        self._origins: dict[str, tuple[str, str]] = {}  # filename -> (remote id, policy)

    def project(self, name: str) -> ProjectPage | None:
        query = version_packages(self.repository_id, self.number).where(Package.name == name)
        with self.catalog.reading() as session:
            packages = session.scalars(query.order_by(Package.filename)).all()
            status = session.scalar(
                select(ProjectStatus).where(
                    ProjectStatus.repository_id == self.repository_id, ProjectStatus.name == name
                )
            )
            yanks = session.scalars(
                select(YankRow).where(
                    YankRow.repository_id == self.repository_id, YankRow.name == name
                )
            ).all()
        if not packages:
            return None
        for p in packages:
            if p.remote_id and p.remote_url:
                self._origins[p.filename] = (p.remote_id, p.policy)
        display = packages[-1].metadata_json.get("name") or name
        page = ProjectPage(
            display,
            tuple(package_file(p) for p in packages),
            status=status.status if status is not None else None,
            status_reason=status.reason if status is not None else None,
        )
        return apply_yanks(page, [yank_of(y) for y in yanks])

    def origin(self, filename: str) -> Origin | None:
        """For on-demand or streamed content of a page seen before: its remote's client."""
        if (found := self._origins.get(filename)) is None:
            return None
        client = self.clients(found[0])
        return Origin(client, keep=found[1] != STREAMED) if client is not None else None

    def names(self) -> list[str]:
        query = version_packages(self.repository_id, self.number).with_only_columns(Package.name)
        with self.catalog.reading() as session:
            return sorted(set(session.scalars(query)))
