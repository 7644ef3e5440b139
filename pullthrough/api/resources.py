"""The REST API's resources, each declared once: its kind, model, fields, JSON shape, filters,
ordering, which standard verbs it has and which of them answer with a task. The operations are
generated from this table (api.crud); only what is not CRUD is written by hand (api.actions).

Remotes' and distributions' own settings come from their declarations in config.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from pullthrough.api import kinds
from pullthrough.api.kinds import Kind, ref_href, version_href
from pullthrough.api.listing import IN, TEXT_LOOKUPS, Filter
from pullthrough.api.operations import Check, ValidationError, invalid
from pullthrough.catalog.models import (
    TASK_STATES,
    Base,
    Distribution,
    Package,
    Publication,
    Remote,
    Repository,
    RepositoryContent,
    RepositoryVersion,
    Task,
)
from pullthrough.catalog.versions import content_counts, initial_version, present_in
from pullthrough.config import DISTRIBUTION_FIELDS, REMOTE_FIELDS, RemoteSettings
from pullthrough.core.fields import Field
from pullthrough.core.filenames import PACKAGE_TYPES

LIST, CREATE, READ, UPDATE, PARTIAL_UPDATE, DELETE = (
    "list",
    "create",
    "read",
    "update",
    "partial_update",
    "delete",
)
CRUD = (LIST, CREATE, READ, UPDATE, PARTIAL_UPDATE, DELETE)
WRITES = (CREATE, UPDATE, PARTIAL_UPDATE, DELETE)


@dataclass(frozen=True)
class Render:
    """What a JSON shape may need besides its row."""

    session: Session
    content_root: str  # this server's URL as the client reached it (`http://host/`)


def _labels(value: dict[str, Any]) -> dict[str, Any]:
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ValueError("Labels are strings to strings.")
    return value


COMMON = (
    Field("pulp_href", "string", read_only=True),
    Field("pulp_created", "string", read_only=True),
    Field("pulp_last_updated", "string", read_only=True),
    Field("pulp_labels", "object", help="Labels (string to string).", clean=_labels),
)
NAME = Field("name", "string", required=True, unique=True, help="A unique name.")


def stamp(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a `Z` (SQLite returns naive datetimes; they are UTC)."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat() + "Z"


def _common(row: Any, kind: Kind) -> dict[str, Any]:
    out: dict[str, Any] = {"pulp_href": kind.href(row.id), "pulp_created": stamp(row.pulp_created)}
    if hasattr(row, "pulp_last_updated"):
        out["pulp_last_updated"] = stamp(row.pulp_last_updated)
    if hasattr(row, "pulp_labels"):
        out["pulp_labels"] = row.pulp_labels or {}
    return out


def _href(kind: Kind, id: str | None) -> str | None:
    return kind.href(id) if id else None


@dataclass(frozen=True)
class Resource:
    kind: Kind
    model: type[Base]
    fields: tuple[Field, ...]
    to_json: Callable[[Any, Render], dict[str, Any]]
    verbs: tuple[str, ...] = (LIST, READ)
    tasks: tuple[str, ...] = ()  # verbs answered 202 with a (completed) task
    filters: tuple[Filter, ...] = ()
    ordering: Mapping[str, Any] = field(default_factory=dict)
    default_order: str = "name"
    check: Check | None = None  # cross-field rules on create and update
    build: Callable[[Session, dict[str, Any]], Any] | None = None  # default: model + write
    write: Callable[[Any, dict[str, Any]], None] | None = None  # default: values to columns
    after_create: Callable[[Session, Any], None] | None = None
    before_delete: Callable[[Session, Any], None] | None = None
    parent: Resource | None = None  # repository versions: below a repository, by `number`
    create_defaults: Mapping[str, Any] = field(default_factory=dict)  # where the API's differ

    def write_values(self, row: Any, values: Mapping[str, Any]) -> None:
        """Body values onto a row: a reference `x` (an object, or None) becomes `x_id`."""
        if self.write is not None:
            self.write(row, dict(values))
            return
        refs = {f.name for f in self.fields if f.href}
        for key, value in values.items():
            if key in refs:
                setattr(row, f"{key}_id", value.id if value is not None else None)
            else:
                setattr(row, key, value)


# ---- repositories ---------------------------------------------------------------------------


def _repository_json(row: Repository, _: Render) -> dict[str, Any]:
    own = kinds.REPOSITORY.href(row.id)
    return {
        **_common(row, kinds.REPOSITORY),
        "versions_href": own + "versions/",
        "latest_version_href": version_href(row.id, row.latest_number),
        "name": row.name,
        "description": row.description,
        "retain_repo_versions": row.retain_repo_versions,
        "remote": _href(kinds.REMOTE, row.remote_id),
        "autopublish": row.autopublish,
    }


def _forget_memberships(session: Session, row: Repository) -> None:
    session.execute(delete(RepositoryContent).where(RepositoryContent.repository_id == row.id))


def _name_filter(model: Any) -> Filter:
    return Filter("name", model.name, TEXT_LOOKUPS)


REPOSITORIES = Resource(
    kinds.REPOSITORY,
    Repository,
    (
        *COMMON,
        NAME,
        Field("description", "string", nullable=True),
        Field("retain_repo_versions", "integer", nullable=True, minimum=1),
        Field("remote", "string", nullable=True, href="remote", help="The remote to sync from."),
        Field("autopublish", "boolean", default=False, help="Publish each new version."),
        Field("versions_href", "string", read_only=True),
        Field("latest_version_href", "string", read_only=True),
    ),
    _repository_json,
    verbs=CRUD,
    tasks=(UPDATE, PARTIAL_UPDATE, DELETE),
    filters=(_name_filter(Repository),),
    ordering={"name": Repository.name, "pulp_created": Repository.pulp_created},
    after_create=initial_version,
    before_delete=_forget_memberships,
)


# ---- repository versions --------------------------------------------------------------------


def _version_json(row: RepositoryVersion, render: Render) -> dict[str, Any]:
    own = version_href(row.repository_id, row.number)
    counts = content_counts(render.session, row.repository_id, row.number)

    def summary(key: str, query: str) -> dict[str, Any]:
        if not counts[key]:
            return {}
        href = f"{kinds.CONTENT.list_href}?{query}={own}"
        return {"python.python": {"count": counts[key], "href": href}}

    base = row.base_number
    return {
        "pulp_href": own,
        "pulp_created": stamp(row.pulp_created),
        "number": row.number,
        "repository": kinds.REPOSITORY.href(row.repository_id),
        "base_version": version_href(row.repository_id, base) if base is not None else None,
        "content_summary": {
            "added": summary("added", "repository_version_added"),
            "removed": summary("removed", "repository_version_removed"),
            "present": summary("present", "repository_version"),
        },
    }


VERSIONS = Resource(
    kinds.VERSION,
    RepositoryVersion,
    (
        Field("pulp_href", "string", read_only=True),
        Field("pulp_created", "string", read_only=True),
        Field("number", "integer", read_only=True),
        Field("repository", "string", read_only=True),
        Field("base_version", "string", read_only=True, nullable=True),
        Field("content_summary", "object", read_only=True),
    ),
    _version_json,
    filters=(Filter("number", RepositoryVersion.number, type="integer"),),
    ordering={"number": RepositoryVersion.number, "pulp_created": RepositoryVersion.pulp_created},
    default_order="-number",
    parent=REPOSITORIES,
)


# ---- remotes --------------------------------------------------------------------------------


def _remote_json(row: Remote, _: Render) -> dict[str, Any]:
    """Secrets are write-only: their names and whether they are set, never their values."""
    settings = RemoteSettings.from_values(row.name, row.settings or {})
    shown = {f.name: getattr(settings, f.name) for f in REMOTE_FIELDS if not f.write_only}
    hidden = [
        {"name": f.name, "is_set": bool(getattr(settings, f.name))}
        for f in REMOTE_FIELDS
        if f.write_only
    ]
    return {**_common(row, kinds.REMOTE), "name": row.name, **shown, "hidden_fields": hidden}


def _write_remote(row: Remote, values: dict[str, Any]) -> None:
    if "name" in values:
        row.name = values.pop("name")
    if "pulp_labels" in values:
        row.pulp_labels = values.pop("pulp_labels")
    row.settings = {**(row.settings or {}), **values}  # a new object: the change is seen


REMOTES = Resource(
    kinds.REMOTE,
    Remote,
    (
        *COMMON,
        NAME,
        *REMOTE_FIELDS,
        Field("hidden_fields", "array", items="object", read_only=True),
    ),
    _remote_json,
    verbs=CRUD,
    tasks=(UPDATE, PARTIAL_UPDATE, DELETE),
    filters=(_name_filter(Remote),),
    ordering={"name": Remote.name, "pulp_created": Remote.pulp_created},
    write=_write_remote,
    # Pulp's default. A remote in the config file offers pre-releases unless told otherwise: a
    # pull-through index must not hide what `pip install --pre` asks for.
    create_defaults={"prereleases": False},
)


# ---- distributions --------------------------------------------------------------------------

SERVED = ("repository", "repository_version", "publication")  # at most one


def _distribution_json(row: Distribution, render: Render) -> dict[str, Any]:
    version = row.repository_version
    return {
        **_common(row, kinds.DISTRIBUTION),
        "name": row.name,
        "base_path": row.base_path,
        "base_url": f"{render.content_root}pypi/{row.base_path}/",
        "content_guard": None,
        "hidden": row.hidden,
        "repository": _href(kinds.REPOSITORY, row.repository_id),
        "repository_version": (
            version_href(version.repository_id, version.number) if version is not None else None
        ),
        "publication": _href(kinds.PUBLICATION, row.publication_id),
        "allow_uploads": row.allow_uploads,
        "remote": _href(kinds.REMOTE, row.remote_id),
        "merge_remote": row.merge_remote,
    }


def _distribution_rules(session: Session, values: dict[str, Any], row: Any) -> None:
    """What it serves: at most one of a repository (its latest version), a repository version
    or a publication; setting one clears the others."""
    if values.pop("content_guard", None) is not None:
        raise invalid("content_guard", "Content guards are not supported.")
    chosen = [key for key in SERVED if values.get(key) is not None]
    if len(chosen) > 1:
        raise ValidationError(
            {"non_field_errors": ["Only one of repository, repository_version and publication."]}
        )
    if chosen:
        values.update({key: None for key in SERVED if key != chosen[0]})


DISTRIBUTIONS = Resource(
    kinds.DISTRIBUTION,
    Distribution,
    (
        *COMMON,
        NAME,
        *DISTRIBUTION_FIELDS,
        Field("base_url", "string", read_only=True),
        Field("content_guard", "string", nullable=True, help="Not supported: must be null."),
        Field("repository", "string", nullable=True, href="repository", help="Its latest version."),
        Field("repository_version", "string", nullable=True, href="repository_version"),
        Field("publication", "string", nullable=True, href="publication"),
    ),
    _distribution_json,
    verbs=CRUD,
    tasks=WRITES,
    filters=(
        _name_filter(Distribution),
        Filter("base_path", Distribution.base_path, ("", "contains")),
    ),
    ordering={
        "name": Distribution.name,
        "base_path": Distribution.base_path,
        "pulp_created": Distribution.pulp_created,
    },
    check=_distribution_rules,
)


# ---- publications ---------------------------------------------------------------------------


def _publication_json(row: Publication, render: Render) -> dict[str, Any]:
    version = row.repository_version
    served_by = render.session.scalars(
        select(Distribution.id).where(Distribution.publication_id == row.id)
    )
    return {
        "pulp_href": kinds.PUBLICATION.href(row.id),
        "pulp_created": stamp(row.pulp_created),
        "repository_version": version_href(version.repository_id, version.number),
        "repository": kinds.REPOSITORY.href(version.repository_id),
        "distributions": [kinds.DISTRIBUTION.href(d) for d in served_by],
    }


def _publish(session: Session, values: dict[str, Any]) -> Publication:
    """A publication of the version given, or of the repository's latest."""
    version: RepositoryVersion | None = values.get("repository_version")
    if version is None:
        repo: Repository = values["repository"]
        version = session.scalars(
            select(RepositoryVersion).where(
                RepositoryVersion.repository_id == repo.id,
                RepositoryVersion.number == repo.latest_number,
            )
        ).one()
    return Publication(repository_version_id=version.id)


def _one_version(session: Session, values: dict[str, Any], row: Any) -> None:
    if values.get("repository_version") is None and values.get("repository") is None:
        raise ValidationError(
            {"non_field_errors": ["Either repository or repository_version is required."]}
        )


def _in_versions(condition: Callable[[str], Any]) -> Callable[[str], Any]:
    return lambda value: Publication.repository_version_id.in_(
        select(RepositoryVersion.id).where(condition(value))
    )


def _of_repository(value: str) -> Any:
    try:
        return RepositoryVersion.repository_id == kinds.REPOSITORY.parse(value)
    except kinds.BadHref as exc:
        raise invalid("repository", str(exc)) from None


def _is_version(value: str) -> Any:
    try:
        repository_id, number = kinds.parse_version(value)
    except kinds.BadHref as exc:
        raise invalid("repository_version", str(exc)) from None
    return (RepositoryVersion.repository_id == repository_id) & (RepositoryVersion.number == number)


PUBLICATIONS = Resource(
    kinds.PUBLICATION,
    Publication,
    (
        Field("pulp_href", "string", read_only=True),
        Field("pulp_created", "string", read_only=True),
        Field(
            "repository_version",
            "string",
            nullable=True,
            href="repository_version",
            help="A version href.",
        ),
        Field("repository", "string", nullable=True, href="repository", help="Its latest version."),
        Field("distributions", "array", read_only=True),
    ),
    _publication_json,
    verbs=(LIST, CREATE, READ, DELETE),
    tasks=(CREATE,),
    filters=(
        Filter("repository", condition=_in_versions(_of_repository)),
        Filter("repository_version", condition=_in_versions(_is_version)),
    ),
    ordering={"pulp_created": Publication.pulp_created},
    default_order="-pulp_created",
    check=_one_version,
    build=_publish,
)


# ---- content --------------------------------------------------------------------------------


def _content_json(row: Package, _: Render) -> dict[str, Any]:
    meta = row.metadata_json or {}
    return {
        "pulp_href": kinds.CONTENT.href(row.id),
        "pulp_created": stamp(row.pulp_created),
        "artifact": None,
        "filename": row.filename,
        "relative_path": row.filename,
        "packagetype": row.packagetype,
        "name": meta.get("name") or row.name,
        "version": row.version,
        "sha256": row.sha256,
        "size": row.size,
        "requires_python": row.requires_python,
        "python_version": row.python_version,
        "metadata_sha256": row.metadata_sha256,
        "summary": meta.get("summary"),
        "author": meta.get("author"),
        "license": meta.get("license"),
        "requires_dist": list(meta.get("requires_dist") or []),
        "yanked": row.yanked,
        "yanked_reason": row.yanked_reason,
        "upload_time": stamp(row.upload_time),
        "origin": row.origin,
    }


def _in_version(column: Any) -> Callable[[str], Any]:
    """Packages present in (column None), added in or removed in a repository version."""

    def condition(value: str) -> Any:
        try:
            repository_id, number = kinds.parse_version(value)
        except kinds.BadHref as exc:
            raise invalid("repository_version", str(exc)) from None
        rc = RepositoryContent
        where = (
            present_in(repository_id, number)
            if column is None
            else (rc.repository_id == repository_id) & (column == number)
        )
        return Package.id.in_(select(rc.package_id).where(where))

    return condition


CONTENT = Resource(
    kinds.CONTENT,
    Package,
    (
        Field("pulp_href", "string", read_only=True),
        Field("pulp_created", "string", read_only=True),
        Field("artifact", "string", read_only=True, nullable=True),
        Field("filename", "string", read_only=True),
        Field("relative_path", "string", help="The file's name."),
        Field("repository", "string", nullable=True, href="repository", write_only=True),
        Field("file", "string", write_only=True, help="The distribution file."),
        Field("packagetype", "string", read_only=True),
        Field("name", "string", read_only=True),
        Field("version", "string", read_only=True),
        Field("sha256", "string", read_only=True),
        Field("size", "integer", read_only=True),
        Field("requires_python", "string", read_only=True, nullable=True),
        Field("python_version", "string", read_only=True),
        Field("metadata_sha256", "string", read_only=True, nullable=True),
        Field("summary", "string", read_only=True, nullable=True),
        Field("author", "string", read_only=True, nullable=True),
        Field("license", "string", read_only=True, nullable=True),
        Field("requires_dist", "array", read_only=True),
        Field("yanked", "boolean", read_only=True),
        Field("yanked_reason", "string", read_only=True, nullable=True),
        Field("upload_time", "string", read_only=True),
        Field("origin", "string", read_only=True, help="upload, cache or sync"),
    ),
    _content_json,
    filters=(
        _name_filter(Package),
        Filter("filename", Package.filename),
        Filter("sha256", Package.sha256),
        Filter("version", Package.version),
        Filter("packagetype", Package.packagetype, ("", IN), choices=tuple(sorted(PACKAGE_TYPES))),
        Filter("origin", Package.origin),
        Filter("repository_version", condition=_in_version(None)),
        Filter("repository_version_added", condition=_in_version(RepositoryContent.version_added)),
        Filter(
            "repository_version_removed", condition=_in_version(RepositoryContent.version_removed)
        ),
    ),
    ordering={
        "name": Package.name,
        "filename": Package.filename,
        "version": Package.version,
        "pulp_created": Package.pulp_created,
    },
    default_order="filename",
)


# ---- tasks ----------------------------------------------------------------------------------


def _task_json(row: Task, _: Render) -> dict[str, Any]:
    return {
        "pulp_href": kinds.TASK.href(row.id),
        "pulp_created": stamp(row.pulp_created),
        "state": row.state,
        "name": row.name,
        "logging_cid": row.logging_cid,
        "created_by": None,
        "started_at": stamp(row.started_at),
        "finished_at": stamp(row.finished_at),
        "error": row.error,
        "worker": row.worker,
        "parent_task": None,
        "child_tasks": [],
        "task_group": None,
        "progress_reports": row.progress_reports or [],
        "created_resources": [ref_href(ref) for ref in row.created_resources or []],
        "reserved_resources_record": row.reserved_resources or [],
        "result": row.result,
    }


TASKS = Resource(
    kinds.TASK,
    Task,
    (
        Field("pulp_href", "string", read_only=True),
        Field("pulp_created", "string", read_only=True),
        Field("state", "string", choices=TASK_STATES),
        Field("name", "string", read_only=True),
        Field("logging_cid", "string", read_only=True),
        Field("started_at", "string", read_only=True, nullable=True),
        Field("finished_at", "string", read_only=True, nullable=True),
        Field("error", "object", read_only=True, nullable=True),
        Field("worker", "string", read_only=True, nullable=True),
        Field("progress_reports", "array", items="object", read_only=True),
        Field("created_resources", "array", read_only=True),
        Field("reserved_resources_record", "array", read_only=True),
        Field("result", "object", read_only=True, nullable=True),
    ),
    _task_json,
    filters=(Filter("state", Task.state, ("", IN), choices=TASK_STATES), Filter("name", Task.name)),
    ordering={"pulp_created": Task.pulp_created, "name": Task.name, "state": Task.state},
    default_order="-pulp_created",
)

RESOURCES = (REPOSITORIES, VERSIONS, REMOTES, DISTRIBUTIONS, PUBLICATIONS, CONTENT, TASKS)
