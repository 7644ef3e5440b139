"""Catalog tables, following Pulp's python plugin: hrefs are built from these ids."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, column_property, mapped_column, relationship


def new_id() -> str:
    return str(uuid.uuid4())


def now() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class Timestamped:
    pulp_created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)
    pulp_last_updated: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=now, onupdate=now
    )


class Remote(Timestamped, Base):
    """A remote's settings are one JSON object, keyed by the names config.RemoteSettings
    declares: a new setting needs no new column (a missing key takes the declared default)."""

    __tablename__ = "remotes"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    pulp_labels: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    # What the config file set at its last reading, key -> fingerprint (core.fields.withdrawn)
    configured: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)


class RepositoryVersion(Base):
    __tablename__ = "repository_versions"
    __table_args__ = (UniqueConstraint("repository_id", "number"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    repository_id: Mapped[str] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    # A modify's base_version: a version of any repository, as Pulp's (none once it goes)
    base_version_id: Mapped[str | None] = mapped_column(
        ForeignKey(
            "repository_versions.id",
            ondelete="SET NULL",
            name="fk_repository_versions_base_version_id",
        ),
        nullable=True,
    )
    pulp_created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)

    repository: Mapped[Repository] = relationship(back_populates="versions")


class Repository(Timestamped, Base):
    __tablename__ = "repositories"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    retain_repo_versions: Mapped[int | None] = mapped_column(Integer, nullable=True)
    remote_id: Mapped[str | None] = mapped_column(
        ForeignKey("remotes.id", ondelete="SET NULL"), nullable=True
    )
    autopublish: Mapped[bool] = mapped_column(Boolean, default=False)
    # A change adding packages its blocklist names fails whole (True), or goes on without them
    error_on_reject: Mapped[bool] = mapped_column(
        Boolean, default=True, server_default=text("true")
    )
    pulp_labels: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    # The number last given to a version (Pulp's `next_version` - 1), kept when that version is
    # deleted: a number is never given twice. Its column keeps its first name.
    last_number: Mapped[int] = mapped_column("latest_number", Integer, default=0)
    # The newest version there is (a repository always has one): read with the row.
    latest_number: Mapped[int] = column_property(
        select(func.max(RepositoryVersion.number))
        .where(RepositoryVersion.repository_id == id)
        .correlate_except(RepositoryVersion)
        .scalar_subquery()
    )

    remote: Mapped[Remote | None] = relationship()
    versions: Mapped[list[RepositoryVersion]] = relationship(
        back_populates="repository", cascade="all, delete-orphan", passive_deletes=True
    )


class Package(Base):
    """A python package content unit: one distribution file and its metadata."""

    __tablename__ = "packages"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    filename: Mapped[str] = mapped_column(String(255), unique=True)
    name: Mapped[str] = mapped_column(String(255), index=True)  # normalized
    version: Mapped[str] = mapped_column(String(255))
    packagetype: Mapped[str] = mapped_column(String(32))
    python_version: Mapped[str] = mapped_column(String(64), default="")
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    requires_python: Mapped[str | None] = mapped_column(Text, nullable=True)
    metadata_json: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # indexed: eviction, orphan cleanup and the ledger's rebuild look bytes up by it (0018)
    metadata_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    yanked: Mapped[bool] = mapped_column(Boolean, default=False)
    yanked_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    upload_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)
    origin: Mapped[str] = mapped_column(String(16), default="upload")  # upload, cache, sync
    uploaded_by: Mapped[str | None] = mapped_column(String(255), nullable=True)  # an actor
    pulp_created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)
    # Synced with the on_demand or streamed policy: fetched from here when a client asks.
    remote_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    remote_id: Mapped[str | None] = mapped_column(
        ForeignKey("remotes.id", ondelete="SET NULL"), nullable=True
    )
    policy: Mapped[str] = mapped_column(String(16), default="immediate", server_default="immediate")
    pulp_labels: Mapped[dict[str, str]] = mapped_column(
        JSON, default=dict, server_default=text("'{}'")
    )


class Artifact(Base):
    """Pulp core's artifact: stored bytes (by sha256) that content may be created from. Its
    bytes are kept while it exists, whatever else shares them (orphans.recorded)."""

    __tablename__ = "artifacts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    sha224: Mapped[str] = mapped_column(String(56))
    sha384: Mapped[str] = mapped_column(String(96))
    sha512: Mapped[str] = mapped_column(String(128))
    size: Mapped[int] = mapped_column(BigInteger)
    pulp_created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)


class Upload(Base):
    """Pulp core's chunked upload: a file of `size` bytes sent in chunks, until it is committed
    (an artifact) or made content; then it goes, with its chunks."""

    __tablename__ = "uploads"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    size: Mapped[int] = mapped_column(BigInteger)
    pulp_created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)
    chunks: Mapped[list[UploadChunk]] = relationship(order_by="UploadChunk.offset", viewonly=True)


class UploadChunk(Base):
    """A chunk of an upload: its bytes are in the store by their sha256 (recorded by this row,
    orphans.recorded), at `offset` in the file. One per offset: a chunk sent again replaces it."""

    __tablename__ = "upload_chunks"
    __table_args__ = (UniqueConstraint("upload_id", "offset", name="uq_upload_chunks_offset"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    upload_id: Mapped[str] = mapped_column(ForeignKey("uploads.id", ondelete="CASCADE"))
    offset: Mapped[int] = mapped_column(BigInteger)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    pulp_created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)


class RepositoryContent(Base):
    """Membership: a package is in versions [version_added, version_removed)."""

    __tablename__ = "repository_content"
    __table_args__ = (
        Index("ix_repository_content_repo_added", "repository_id", "version_added"),
        Index("ix_repository_content_package", "package_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    repository_id: Mapped[str] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"))
    package_id: Mapped[str] = mapped_column(ForeignKey("packages.id", ondelete="RESTRICT"))
    version_added: Mapped[int] = mapped_column(Integer)
    version_removed: Mapped[int | None] = mapped_column(Integer, nullable=True)


class DistributionRemote(Base):
    """A distribution's remotes after the first, in order (the first is `remote_id`: Pulp's
    `remote`)."""

    __tablename__ = "distribution_remotes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    distribution_id: Mapped[str] = mapped_column(
        ForeignKey("distributions.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)
    remote_id: Mapped[str] = mapped_column(ForeignKey("remotes.id", ondelete="CASCADE"))

    remote: Mapped[Remote] = relationship()


class Distribution(Timestamped, Base):
    __tablename__ = "distributions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    base_path: Mapped[str] = mapped_column(String(255), unique=True)
    repository_id: Mapped[str | None] = mapped_column(
        ForeignKey("repositories.id", ondelete="SET NULL"), nullable=True
    )
    repository_version_id: Mapped[str | None] = mapped_column(
        ForeignKey("repository_versions.id", ondelete="SET NULL"), nullable=True
    )
    remote_id: Mapped[str | None] = mapped_column(
        ForeignKey("remotes.id", ondelete="SET NULL"), nullable=True
    )
    publication_id: Mapped[str | None] = mapped_column(
        ForeignKey("publications.id", ondelete="SET NULL"), nullable=True
    )
    allow_uploads: Mapped[bool] = mapped_column(Boolean, default=True)
    hidden: Mapped[bool] = mapped_column(Boolean, default=False)
    # False: a project present locally shadows the remote's (dependency-confusion guard).
    merge_remote: Mapped[bool] = mapped_column(Boolean, default=False)
    blocklist: Mapped[list[str]] = mapped_column(JSON, default=list)
    block_malicious: Mapped[bool] = mapped_column(Boolean, default=True)
    hold_advisories: Mapped[bool] = mapped_column(Boolean, default=False)
    private: Mapped[bool] = mapped_column(Boolean, default=False)
    pulp_labels: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    # What the config file set at its last reading, key -> fingerprint (core.fields.withdrawn)
    configured: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)

    repository: Mapped[Repository | None] = relationship()
    repository_version: Mapped[RepositoryVersion | None] = relationship()
    remote: Mapped[Remote | None] = relationship()
    publication: Mapped[Publication | None] = relationship()
    later_remotes: Mapped[list[DistributionRemote]] = relationship(
        order_by=DistributionRemote.position, cascade="all, delete-orphan"
    )

    @property
    def remotes(self) -> list[Remote]:
        """Every remote, in order: `remote`, then the later ones."""
        first = [self.remote] if self.remote is not None else []
        return first + [link.remote for link in self.later_remotes]

    @remotes.setter
    def remotes(self, remotes: list[Remote]) -> None:
        self.remote = remotes[0] if remotes else None
        self.later_remotes = [
            DistributionRemote(position=i, remote=r) for i, r in enumerate(remotes[1:], 1)
        ]


class ProjectStatus(Timestamped, Base):
    """A local project's status (PEP 792) in one repository: archived refuses uploads,
    quarantined offers nothing."""

    __tablename__ = "project_statuses"
    __table_args__ = (UniqueConstraint("repository_id", "name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    repository_id: Mapped[str] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))  # normalized
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class Publication(Base):
    """A frozen index of one repository version (versions are immutable, so it is served from the
    version's content as it was)."""

    __tablename__ = "publications"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    repository_version_id: Mapped[str] = mapped_column(
        ForeignKey("repository_versions.id", ondelete="CASCADE")
    )
    pulp_created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)

    repository_version: Mapped[RepositoryVersion] = relationship()


WORKER_IDS = uuid.UUID("5d1f6f2e-7c1a-4b8e-9a53-0c2b8f4e6a71")  # the namespace of worker ids


def worker_id(name: str) -> str:
    """A worker's id, from its name: a task names the worker that ran it, and its href follows
    without a query."""
    return str(uuid.uuid5(WORKER_IDS, name))


def _worker_id(context: Any) -> str:
    return worker_id(context.get_current_parameters()["name"])


class Worker(Base):
    """A process that runs tasks; a worker silent past its heartbeat's limit is presumed dead."""

    __tablename__ = "workers"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    id: Mapped[str] = mapped_column(String(36), unique=True, default=_worker_id)
    pulp_created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)
    last_heartbeat: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)


class Task(Base):
    """A Pulp-shaped task. `created_resources` holds references
    (`{"kind": "repository_version", "id": <repository id>, "number": 1}`), not hrefs: the API
    renders them."""

    __tablename__ = "tasks"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(16), default="waiting", index=True)
    logging_cid: Mapped[str] = mapped_column(String(64), default="")
    pulp_created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    progress_reports: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_resources: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    reserved_resources: Mapped[list[str]] = mapped_column(JSON, default=list)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    args: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    worker: Mapped[str | None] = mapped_column(String(255), nullable=True)


class RepositoryBlocklistEntry(Timestamped, Base):
    """An entry of a repository's package blocklist (core.repository_blocklist): a project
    (every version, or one), or one filename, kept out of the repository's new versions. Not a
    distribution's `blocklist` (what a distribution serves)."""

    __tablename__ = "repository_blocklist_entries"
    __table_args__ = (
        CheckConstraint("(name IS NULL) <> (filename IS NULL)", name="blocklist_name_or_filename"),
        CheckConstraint("version IS NULL OR name IS NOT NULL", name="blocklist_version_of_name"),
        UniqueConstraint("repository_id", "name", "version", name="uq_blocklist_name_version"),
        UniqueConstraint("repository_id", "filename", name="uq_blocklist_filename"),
        # NULLs differ in a unique constraint: one "every version" entry per project, here
        Index(
            "uq_blocklist_name",
            "repository_id",
            "name",
            unique=True,
            sqlite_where=text("version IS NULL AND name IS NOT NULL"),
            postgresql_where=text("version IS NULL AND name IS NOT NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    repository_id: Mapped[str] = mapped_column(
        ForeignKey("repositories.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str | None] = mapped_column(String(255), nullable=True)  # normalized
    version: Mapped[str | None] = mapped_column(String(255), nullable=True)  # normalized
    filename: Mapped[str | None] = mapped_column(String(255), nullable=True)
    added_by: Mapped[str | None] = mapped_column(String(255), nullable=True)  # an actor


class Yank(Timestamped, Base):
    """A release or file marked yanked (PEP 592) in a repository (every version of it) or on a
    distribution (whatever it serves, the upstream's files included)."""

    __tablename__ = "yanks"
    __table_args__ = (
        CheckConstraint(
            "(repository_id IS NULL) <> (distribution_id IS NULL)", name="yank_one_target"
        ),
        CheckConstraint("(version IS NULL) <> (filename IS NULL)", name="yank_one_subject"),
        Index("ix_yanks_repository_name", "repository_id", "name"),
        Index("ix_yanks_distribution", "distribution_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    repository_id: Mapped[str | None] = mapped_column(
        ForeignKey("repositories.id", ondelete="CASCADE"), nullable=True
    )
    distribution_id: Mapped[str | None] = mapped_column(
        ForeignKey("distributions.id", ondelete="CASCADE"), nullable=True
    )
    name: Mapped[str] = mapped_column(String(255))  # normalized
    version: Mapped[str | None] = mapped_column(String(255), nullable=True)  # normalized
    filename: Mapped[str | None] = mapped_column(String(255), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class AdvisoryRecord(Base):
    """An imported OSV record, as published (parsed again when used); `withdrawn` ones stay
    so that a re-import of the same record changes nothing."""

    __tablename__ = "advisories"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)  # the OSV id
    modified: Mapped[str] = mapped_column(String(64))
    withdrawn: Mapped[str | None] = mapped_column(String(64), nullable=True)
    record: Mapped[str] = mapped_column(Text)  # the record file's JSON text
    imported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)


class AdvisoryProject(Base):
    """Which projects (normalized names) a record names: how a page finds its advisories."""

    __tablename__ = "advisory_projects"
    __table_args__ = (Index("ix_advisory_projects_name", "name"),)

    advisory_id: Mapped[str] = mapped_column(
        ForeignKey("advisories.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(255), primary_key=True)


class ApiToken(Base):
    """An API token: its public key (the start of the token, shown) and the sha256 of the whole
    token; the secret itself is shown once, at creation, and never stored."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    key: Mapped[str] = mapped_column(String(32), unique=True)
    digest: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    pulp_created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)


class AuditEvent(Base):
    """One write: who (an actor), what (an action: an API operation id, `upload`, ...), to what
    (an href or a name), when, from where, and the non-secret details."""

    __tablename__ = "audit_events"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    pulp_created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now, index=True)
    actor: Mapped[str] = mapped_column(String(255), index=True)
    action: Mapped[str] = mapped_column(String(255))
    subject: Mapped[str] = mapped_column(Text, default="")
    address: Mapped[str] = mapped_column(String(64), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class CacheEntry(Base):
    """A pull-through file in the cache (orphaned content), its size and last use: the LRU
    ledger shared by every node (PostgreSQL; one host keeps its own in the data folder)."""

    __tablename__ = "cache_entries"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    last_used: Mapped[float] = mapped_column(Float, index=True)


class CacheUrl(Base):
    """For indexes that give no sha256: which stored file a URL was downloaded into."""

    __tablename__ = "cache_urls"

    url_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))


class CacheReaders(Base):
    """A cached copy an index gave only to remotes sending credentials: the digests of what
    they send (UpstreamClient.seen_as), space-separated; no row: anyone's (storage.ledger)."""

    __tablename__ = "cache_readers"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    readers: Mapped[str] = mapped_column(Text)


class CatalogGeneration(Base):
    """One row whose token changes with every catalog change (nodes poll it)."""

    __tablename__ = "catalog_generation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token: Mapped[str] = mapped_column(String(32))


def width(model: type[Base] | None, name: str) -> float:
    """How many characters the model's column `name` holds (PostgreSQL refuses a longer string,
    SQLite keeps it); unbounded for a column without a width, or none of that name."""
    column = inspect(model).columns.get(name) if model is not None else None
    length = getattr(column.type, "length", None) if column is not None else None
    return float("inf") if length is None else length
