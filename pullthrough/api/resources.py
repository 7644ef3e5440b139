"""The REST API's resources, each declared once: its kind, model, fields (which are also its JSON
shape), filters, ordering, which standard verbs it has and which of them answer with a task.
The operations are generated from this table (api.crud); only what is not CRUD is written by
hand (api.actions). Remotes' and distributions' own settings come from their declarations in
config.
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

LIST, CREATE, READ, UPDATE, PARTIAL_UPDATE, DELETE = CRUD = (
    "list",
    "create",
    "read",
    "update",
    "partial_update",
    "delete",
)
Value = Callable[[Any, "Render"], Any]


@dataclass(frozen=True)
class Render:
    """What a JSON shape may need besides its row."""

    session: Session
    content_root: str  # this server's URL as the client reached it (`http://host/`)


def stamp(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a `Z` (SQLite returns naive datetimes; they are UTC)."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat() + "Z"


def ro(*names: str, type: str = "string", nullable: bool = False) -> tuple[Field, ...]:
    """Read-only fields."""
    return tuple(Field(n, type, read_only=True, nullable=nullable) for n in names)


def _labels(value: dict[str, Any]) -> dict[str, Any]:
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ValueError("Labels are strings to strings.")
    return value


HREF_AND_CREATED = ro("pulp_href", "pulp_created")
COMMON = (
    *ro("pulp_href", "pulp_created", "pulp_last_updated"),
    Field("pulp_labels", "object", help="Labels (string to string).", clean=_labels),
)
NAME = Field("name", "string", required=True, unique=True, help="A unique name.")


def _reference(row: Any, declared: Field) -> str | None:
    """A reference's href, from `<name>_id` (or, for a version, the related object)."""
    if declared.href == kinds.VERSION.label:
        version = getattr(row, declared.name)
        return version_href(version.repository_id, version.number) if version else None
    target = getattr(row, f"{declared.name}_id")
    return kinds.KINDS[str(declared.href)].href(target) if target else None


@dataclass(frozen=True)
class Resource:
    kind: Kind
    model: type[Base]
    fields: tuple[Field, ...]
    computed: Mapping[str, Value] = field(default_factory=dict)  # fields not read off the row
    shape: Callable[[Any, Render], dict[str, Any]] | None = None  # instead of the fields
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

    def to_json(self, row: Any, render: Render) -> dict[str, Any]:
        """Every readable field: computed, a reference's href, or the row's attribute."""
        if self.shape is not None:
            return self.shape(row, render)
        out = {}
        for f in self.fields:
            if f.write_only:
                continue
            if (value := self.computed.get(f.name)) is not None:
                out[f.name] = value(row, render)
            elif f.name == "pulp_href":
                out[f.name] = self.kind.href(row.id)
            elif f.href:
                out[f.name] = _reference(row, f)
            else:
                found = getattr(row, f.name)
                out[f.name] = stamp(found) if isinstance(found, datetime) else found
        return out

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


def _name_filter(model: Any) -> Filter:
    return Filter("name", model.name, TEXT_LOOKUPS)


def _forget_memberships(session: Session, row: Repository) -> None:
    session.execute(delete(RepositoryContent).where(RepositoryContent.repository_id == row.id))


REPOSITORIES = Resource(
    kinds.REPOSITORY,
    Repository,
    (
        *COMMON,
        NAME,
        *ro("versions_href", "latest_version_href"),
        Field("description", "string", nullable=True),
        Field("retain_repo_versions", "integer", nullable=True, minimum=1),
        Field("remote", "string", nullable=True, href="remote", help="The remote to sync from."),
        Field("autopublish", "boolean", default=False, help="Publish each new version."),
    ),
    computed={
        "versions_href": lambda row, _: kinds.REPOSITORY.href(row.id) + "versions/",
        "latest_version_href": lambda row, _: version_href(row.id, row.latest_number),
    },
    verbs=CRUD,
    tasks=(UPDATE, PARTIAL_UPDATE, DELETE),
    filters=(_name_filter(Repository),),
    ordering={"name": Repository.name, "pulp_created": Repository.pulp_created},
    after_create=initial_version,
    before_delete=_forget_memberships,
)


def _content_summary(row: RepositoryVersion, render: Render) -> dict[str, Any]:
    own = version_href(row.repository_id, row.number)
    counts = content_counts(render.session, row.repository_id, row.number)
    summary: dict[str, Any] = {}
    for key, query in (("added", "_added"), ("removed", "_removed"), ("present", "")):
        href = f"{kinds.CONTENT.list_href}?repository_version{query}={own}"
        summary[key] = (
            {"python.python": {"count": counts[key], "href": href}} if counts[key] else {}
        )
    return summary


VERSIONS = Resource(
    kinds.VERSION,
    RepositoryVersion,
    (
        *ro("pulp_href", "pulp_created", "repository"),
        *ro("base_version", nullable=True),
        *ro("number", type="integer"),
        *ro("content_summary", type="object"),
    ),
    computed={
        "pulp_href": lambda row, _: version_href(row.repository_id, row.number),
        "repository": lambda row, _: kinds.REPOSITORY.href(row.repository_id),
        "base_version": lambda row, _: (
            version_href(row.repository_id, row.base_number)
            if row.base_number is not None
            else None
        ),
        "content_summary": _content_summary,
    },
    filters=(Filter("number", RepositoryVersion.number, type="integer"),),
    ordering={"number": RepositoryVersion.number, "pulp_created": RepositoryVersion.pulp_created},
    default_order="-number",
    parent=REPOSITORIES,
)


def _remote_json(row: Remote, _: Render) -> dict[str, Any]:
    """Secrets are write-only: their names and whether they are set, never their values."""
    settings = RemoteSettings.from_values(row.name, row.settings or {})
    return {
        "pulp_href": kinds.REMOTE.href(row.id),
        "pulp_created": stamp(row.pulp_created),
        "pulp_last_updated": stamp(row.pulp_last_updated),
        "pulp_labels": row.pulp_labels or {},
        "name": row.name,
        **{f.name: getattr(settings, f.name) for f in REMOTE_FIELDS if not f.write_only},
        "hidden_fields": [
            {"name": f.name, "is_set": bool(getattr(settings, f.name))}
            for f in REMOTE_FIELDS
            if f.write_only
        ],
    }


def _write_remote(row: Remote, values: dict[str, Any]) -> None:
    """The name and labels are columns; the settings one JSON object (a new one: the change is
    seen)."""
    row.name = values.pop("name", row.name)
    row.pulp_labels = values.pop("pulp_labels", row.pulp_labels)
    row.settings = {**(row.settings or {}), **values}


REMOTES = Resource(
    kinds.REMOTE,
    Remote,
    (*COMMON, NAME, *REMOTE_FIELDS, *ro("hidden_fields", type="array")),
    shape=_remote_json,
    verbs=CRUD,
    tasks=(UPDATE, PARTIAL_UPDATE, DELETE),
    filters=(_name_filter(Remote),),
    ordering={"name": Remote.name, "pulp_created": Remote.pulp_created},
    write=_write_remote,
    # Pulp's default. A remote in the config file offers pre-releases unless told otherwise: a
    # pull-through index must not hide what `pip install --pre` asks for.
    create_defaults={"prereleases": False},
)

SERVED = ("repository", "repository_version", "publication")  # at most one


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
        *ro("base_url"),
        Field("content_guard", "string", nullable=True, help="Not supported: must be null."),
        Field("repository", "string", nullable=True, href="repository", help="Its latest version."),
        Field("repository_version", "string", nullable=True, href="repository_version"),
        Field("publication", "string", nullable=True, href="publication"),
    ),
    computed={
        "base_url": lambda row, render: f"{render.content_root}pypi/{row.base_path}/",
        "content_guard": lambda row, _: None,
    },
    verbs=CRUD,
    tasks=(CREATE, UPDATE, PARTIAL_UPDATE, DELETE),
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


def _versions_where(name: str, condition: Callable[[str], Any]) -> Filter:
    """Publications of the repository versions that match."""

    def of_versions(value: str) -> Any:
        try:
            where = condition(value)
        except kinds.BadHref as exc:
            raise invalid(name, str(exc)) from None
        return Publication.repository_version_id.in_(select(RepositoryVersion.id).where(where))

    return Filter(name, condition=of_versions)


def _is_version(value: str) -> Any:
    repository_id, number = kinds.parse_version(value)
    return (RepositoryVersion.repository_id == repository_id) & (RepositoryVersion.number == number)


PUBLICATIONS = Resource(
    kinds.PUBLICATION,
    Publication,
    (
        *HREF_AND_CREATED,
        Field("repository_version", "string", nullable=True, href="repository_version"),
        Field("repository", "string", nullable=True, href="repository", help="Its latest."),
        *ro("distributions", type="array"),
    ),
    computed={
        "repository": lambda row, _: kinds.REPOSITORY.href(row.repository_version.repository_id),
        "distributions": lambda row, render: [
            kinds.DISTRIBUTION.href(d)
            for d in render.session.scalars(
                select(Distribution.id).where(Distribution.publication_id == row.id)
            )
        ],
    },
    verbs=(LIST, CREATE, READ, DELETE),
    tasks=(CREATE,),
    filters=(
        _versions_where(
            "repository",
            lambda value: RepositoryVersion.repository_id == kinds.REPOSITORY.parse(value),
        ),
        _versions_where("repository_version", _is_version),
    ),
    ordering={"pulp_created": Publication.pulp_created},
    default_order="-pulp_created",
    check=_one_version,
    build=_publish,
)


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


def _metadata(key: str) -> Value:
    return lambda row, _: (row.metadata_json or {}).get(key)


CONTENT = Resource(
    kinds.CONTENT,
    Package,
    (
        *ro("pulp_href", "pulp_created", "filename", "packagetype", "name", "version", "sha256"),
        *ro("python_version", "upload_time"),
        *ro("artifact", "requires_python", "metadata_sha256", "summary", "author", nullable=True),
        *ro("license", "yanked_reason", nullable=True),
        *ro("size", type="integer"),
        *ro("requires_dist", type="array"),
        *ro("yanked", type="boolean"),
        Field("origin", "string", read_only=True, help="upload, cache or sync"),
        Field("relative_path", "string", help="The file's name."),
        Field("repository", "string", nullable=True, href="repository", write_only=True),
        Field("file", "string", write_only=True, help="The distribution file."),
    ),
    computed={
        "artifact": lambda row, _: None,
        "relative_path": lambda row, _: row.filename,
        "name": lambda row, _: (row.metadata_json or {}).get("name") or row.name,
        "summary": _metadata("summary"),
        "author": _metadata("author"),
        "license": _metadata("license"),
        "requires_dist": lambda row, _: list((row.metadata_json or {}).get("requires_dist") or []),
    },
    filters=(
        _name_filter(Package),
        *(Filter(name, getattr(Package, name)) for name in ("filename", "sha256", "version")),
        Filter("packagetype", Package.packagetype, ("", IN), choices=tuple(sorted(PACKAGE_TYPES))),
        Filter("origin", Package.origin),
        Filter("repository_version", condition=_in_version(None)),
        Filter("repository_version_added", condition=_in_version(RepositoryContent.version_added)),
        Filter(
            "repository_version_removed", condition=_in_version(RepositoryContent.version_removed)
        ),
    ),
    ordering={name: getattr(Package, name) for name in ("name", "filename", "version")}
    | {"pulp_created": Package.pulp_created},
    default_order="filename",
)

TASKS = Resource(
    kinds.TASK,
    Task,
    (
        *ro("pulp_href", "pulp_created", "name", "logging_cid"),
        Field("state", "string", choices=TASK_STATES),
        *ro("started_at", "finished_at", "worker", "created_by", "parent_task", nullable=True),
        *ro("task_group", nullable=True),
        *ro("error", "result", type="object", nullable=True),
        *ro("progress_reports", "created_resources", "reserved_resources_record", type="array"),
        *ro("child_tasks", type="array"),
    ),
    computed={
        "created_by": lambda row, _: None,
        "parent_task": lambda row, _: None,
        "task_group": lambda row, _: None,
        "child_tasks": lambda row, _: [],
        "created_resources": lambda row, _: [ref_href(r) for r in row.created_resources or []],
        "reserved_resources_record": lambda row, _: row.reserved_resources or [],
    },
    filters=(Filter("state", Task.state, ("", IN), choices=TASK_STATES), Filter("name", Task.name)),
    ordering={"pulp_created": Task.pulp_created, "name": Task.name, "state": Task.state},
    default_order="-pulp_created",
)

RESOURCES = (REPOSITORIES, VERSIONS, REMOTES, DISTRIBUTIONS, PUBLICATIONS, CONTENT, TASKS)
