"""The REST API's resources, each declared once: its kind, fields (its request and response
shape), filters, ordering, which standard verbs it has and which of them answer with a task.

This is what the API looks like - for the generated operations (api.crud), the API document
(api.openapi) and the CLI's options - and it imports nothing of the server, so the CLI starts
fast. How each maps to the catalog is its binding (api.bindings). Remotes' and distributions'
own settings come from their declarations in config.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from packaging.utils import canonicalize_name

from pullthrough.api import kinds
from pullthrough.api.kinds import Kind
from pullthrough.api.params import (
    CONTAINS,
    DATE_TIME,
    EXACT,
    GT,
    GTE,
    ICONTAINS,
    IN,
    ISNULL,
    LT,
    LTE,
    TEXT_LOOKUPS,
    TIME_LOOKUPS,
    Filter,
)
from pullthrough.config import DISTRIBUTION_FIELDS, REMOTE_FIELDS, parse_moment
from pullthrough.core import digests
from pullthrough.core.access import SCOPE_HELP, parse_scopes
from pullthrough.core.chunks import SIZE_MAX
from pullthrough.core.fields import Field
from pullthrough.core.filenames import PACKAGE_TYPES, parse_filename, parse_version
from pullthrough.core.labels import check_labels
from pullthrough.core.models import PROJECT_STATUSES as PROJECT_STATUSES_PEP792
from pullthrough.core.tasks import TASK_STATES

LIST, CREATE, READ, UPDATE, PARTIAL_UPDATE, DELETE = CRUD = (
    "list",
    "create",
    "read",
    "update",
    "partial_update",
    "delete",
)
WRITES = (UPDATE, PARTIAL_UPDATE, DELETE)


@dataclass(frozen=True)
class Resource:
    kind: Kind
    fields: tuple[Field, ...]
    verbs: tuple[str, ...] = (LIST, READ)
    tasks: tuple[str, ...] = ()  # verbs answered 202 with a (completed) task
    filters: tuple[Filter, ...] = ()
    ordering: tuple[str, ...] = ("name", "pulp_created")  # fields a list may be ordered by
    default_order: str = "name"
    create_defaults: Mapping[str, Any] = field(default_factory=dict)  # where the API's differ
    parent: Resource | None = None  # repository versions: below a repository, by `number`

    @property
    def labelled(self) -> bool:
        """Has Pulp's labels, and their actions (set_label, unset_label)."""
        return LABELS in self.fields


def ro(
    *names: str, type: str = "string", nullable: bool = False, items: str | None = None
) -> tuple[Field, ...]:
    """Read-only fields."""
    return tuple(Field(n, type, read_only=True, nullable=nullable, items=items) for n in names)


# Pulp's labels (core.labels): a resource with this field also has set_label and unset_label.
LABELS = Field(
    "pulp_labels",
    "object",
    help="Labels: keys of letters, digits, _ . - and spaces; values strings (no parentheses).",
    clean=check_labels,
)
COMMON = (*ro("pulp_href", "pulp_created", "pulp_last_updated"), LABELS)
NAME = Field("name", "string", required=True, unique=True, help="A unique name.")
NAMED = (Filter("name", TEXT_LOOKUPS),)
LABEL_SELECT = Filter("pulp_label_select")  # pulp-cli's --label-select (core.labels)


def moments(name: str) -> Filter:
    """`name__gt`, `__gte`, `__lt`, `__lte`: times (pulp-cli's --created-after, ...)."""
    return Filter(name, TIME_LOOKUPS, format=DATE_TIME)


REPOSITORIES = Resource(
    kinds.REPOSITORY,
    (
        *COMMON,
        NAME,
        *ro("versions_href", "latest_version_href"),
        Field("description", "string", nullable=True),
        Field("retain_repo_versions", "integer", nullable=True, minimum=1),
        Field("remote", "string", nullable=True, href="remote", help="The remote to sync from."),
        Field("autopublish", "boolean", default=False, help="Publish each new version."),
        Field(
            "error_on_reject",
            "boolean",
            default=True,
            help="A change adding packages the repository's blocklist names fails whole;"
            " false: they are left out and the rest added.",
        ),
    ),
    verbs=CRUD,
    tasks=WRITES,
    filters=(*NAMED, LABEL_SELECT),
    ordering=("name", "pulp_created", "pulp_last_updated"),
)
VERSIONS = Resource(
    kinds.VERSION,
    (
        *ro("pulp_href", "pulp_created", "repository"),
        *ro("base_version", nullable=True),
        *ro("number", type="integer"),
        *ro("content_summary", type="object"),
    ),
    filters=(
        Filter("number", (EXACT, GT, GTE, LT, LTE), type="integer"),
        moments("pulp_created"),
        Filter("content", (EXACT, IN)),  # versions holding this content (an href)
    ),
    ordering=("number", "pulp_created"),
    default_order="-number",
    parent=REPOSITORIES,
)


def _project_name(value: str) -> str:
    return str(canonicalize_name(value, validate=True))


def _version(value: str) -> str:
    if (version := parse_version(value)) is None:
        raise ValueError(f"{value!r} is not a valid version (PEP 440)")
    return str(version)


# A repository's package blocklist (Pulp python's): created and removed, never changed.
BLOCKLIST_ENTRIES = Resource(
    kinds.BLOCKLIST_ENTRY,
    (
        *ro("pulp_href", "pulp_created", "pulp_last_updated", "repository"),
        Field(
            "name",
            "string",
            nullable=True,
            clean=_project_name,
            help="Package name to block (for all versions). Compared after PEP 503"
            " normalization. Required when 'filename' is not provided.",
        ),
        Field(
            "version",
            "string",
            nullable=True,
            clean=_version,
            help="Exact version string to block (e.g. '1.0'). Only used when 'name' is set.",
        ),
        Field(
            "filename",
            "string",
            nullable=True,
            help="Exact filename to block. Required when 'name' is not provided.",
        ),
        Field("added_by", "string", read_only=True, nullable=True, help="Who added it."),
    ),
    verbs=(LIST, CREATE, READ, DELETE),
    filters=(
        Filter("name"),
        Filter("version", (EXACT, ISNULL)),
        Filter("filename"),
    ),
    ordering=("pulp_created", "name", "filename"),
    default_order="-pulp_created",
    parent=REPOSITORIES,
)
REMOTES = Resource(
    kinds.REMOTE,
    (
        *COMMON,
        NAME,
        *REMOTE_FIELDS,
        Field(
            "provenance",
            "boolean",
            default=False,
            help="Not supported: PEP 740 provenance is not synced (false only).",
        ),
        *ro("hidden_fields", type="array", items="object"),
    ),
    verbs=CRUD,
    tasks=WRITES,
    filters=(*NAMED, LABEL_SELECT, moments("pulp_last_updated")),
    ordering=("name", "pulp_created", "pulp_last_updated"),
    # Pulp's default. A remote in the config file offers pre-releases unless told otherwise: a
    # pull-through index must not hide what `pip install --pre` asks for.
    create_defaults={"prereleases": False},
)
SERVED = ("repository", "repository_version", "publication")  # a distribution serves one
DISTRIBUTIONS = Resource(
    kinds.DISTRIBUTION,
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
    verbs=CRUD,
    tasks=(CREATE, *WRITES),
    filters=(*NAMED, LABEL_SELECT, Filter("base_path", (EXACT, CONTAINS, ICONTAINS))),
    ordering=("name", "base_path", "pulp_created", "pulp_last_updated"),
)
PUBLICATIONS = Resource(
    kinds.PUBLICATION,
    (
        *ro("pulp_href", "pulp_created"),
        Field("repository_version", "string", nullable=True, href="repository_version"),
        Field("repository", "string", nullable=True, href="repository", help="Its latest."),
        *ro("distributions", type="array"),
    ),
    verbs=(LIST, CREATE, READ, DELETE),
    tasks=(CREATE,),
    filters=(
        Filter("repository", href="repository"),
        Filter("repository_version", href="repository_version"),
        moments("pulp_created"),
        Filter("content", (EXACT, IN)),  # publications of versions holding this content
    ),
    ordering=("pulp_created",),
    default_order="-pulp_created",
)
CONTENT = Resource(
    kinds.CONTENT,
    (
        *ro("pulp_href", "pulp_created", "filename", "packagetype", "name", "version", "sha256"),
        *ro("python_version", "upload_time"),
        LABELS,
        *ro("artifact", "requires_python", "metadata_sha256", "summary", "author", nullable=True),
        *ro("license", "yanked_reason", nullable=True),
        *ro("size", type="integer"),
        *ro("requires_dist", type="array"),
        *ro("yanked", type="boolean"),
        Field("origin", "string", read_only=True, help="upload, cache or sync"),
        Field(
            "uploaded_by",
            "string",
            read_only=True,
            nullable=True,
            help="Who uploaded it: the admin, or token:<name>.",
        ),
        Field("relative_path", "string", help="The file's name."),
        Field("repository", "string", nullable=True, href="repository", write_only=True),
        Field("file", "string", write_only=True, help="The distribution file."),
    ),
    # Pulp python's filters (PythonPackageContentFilter): names compared normalized; versions
    # ordered as PEP 440 orders them, where Pulp compares their text
    filters=(
        Filter("name", TEXT_LOOKUPS, clean=canonicalize_name),
        LABEL_SELECT,
        Filter("author", (EXACT, IN, CONTAINS)),
        Filter("filename", (EXACT, IN, CONTAINS)),
        Filter("sha256", (EXACT, IN)),
        Filter("version", (EXACT, GT, GTE, LT, LTE), versions=True),
        Filter("requires_python", (EXACT, IN, CONTAINS)),
        Filter("packagetype", ("", IN), choices=tuple(sorted(PACKAGE_TYPES))),
        Filter("origin"),
        *(
            Filter(f"repository_version{which}", href="repository_version")
            for which in ("", "_added", "_removed")
        ),
    ),
    ordering=("name", "filename", "version", "pulp_created"),
    default_order="filename",
)
RESERVATIONS = ("reserved", "exclusive", "shared")  # a task's resources: all, or one way
TASKS = Resource(
    kinds.TASK,
    (
        *ro("pulp_href", "pulp_created", "name", "logging_cid"),
        Field("state", "string", choices=TASK_STATES),
        *ro("started_at", "finished_at", "created_by", "parent_task", nullable=True),
        Field("worker", "string", read_only=True, nullable=True, help="The worker that ran it."),
        *ro("task_group", nullable=True),
        *ro("error", "result", type="object", nullable=True),
        *ro("progress_reports", type="array", items="object"),
        *ro("created_resources", "reserved_resources_record", type="array"),
        *ro("child_tasks", type="array"),
    ),
    # pulp-cli's `task list` options; its empty `--*-resource-in` are declared or it refuses
    # to run. A task records what it acts on in reserved_resources_record, as Pulp: the object
    # it updates or deletes, the repository it syncs or changes (`shared:` the remote it reads),
    # so `repository task list` finds them. None records a parent or group (task_group,
    # parent_task: refused).
    filters=(
        Filter("name", (EXACT, IN, CONTAINS)),
        Filter("state", (EXACT, IN), choices=TASK_STATES),
        Filter("logging_cid", (EXACT, CONTAINS)),
        Filter("worker", (EXACT, IN), href="worker"),
        moments("started_at"),
        moments("finished_at"),
        Filter("created_resources"),  # an href
        *(Filter(f"{which}_resources", (EXACT, IN)) for which in RESERVATIONS),
    ),
    ordering=("pulp_created", "name", "state", "started_at", "finished_at", "logging_cid"),
    default_order="-pulp_created",
)
WORKERS = Resource(
    kinds.WORKER,
    (
        *ro("pulp_href", "pulp_created", "pulp_last_updated", "name", "last_heartbeat"),
        Field("current_task", "string", read_only=True, nullable=True, help="The task it runs."),
    ),
    filters=(
        *NAMED,
        moments("last_heartbeat"),
        # heartbeat within tasks.worker_timeout, or not (missing: presumed dead)
        *(Filter(name, type="boolean") for name in ("online", "missing")),
    ),
    ordering=("name", "last_heartbeat", "pulp_created"),
)


PROJECT = Field(
    "name", "string", required=True, clean=_project_name, help="The project (normalized)."
)


PROJECT_STATUSES = Resource(
    kinds.PROJECT_STATUS,
    (
        *ro("pulp_href", "pulp_created", "pulp_last_updated"),
        PROJECT,
        Field("repository", "string", required=True, href="repository", help="Where it lives."),
        Field(
            "status",
            "string",
            required=True,
            choices=PROJECT_STATUSES_PEP792,
            help="PEP 792: archived refuses uploads; quarantined also offers no files.",
        ),
        Field("reason", "string", nullable=True, help="Shown to clients with the status."),
    ),
    verbs=CRUD,
    filters=(*NAMED, Filter("status", choices=PROJECT_STATUSES_PEP792)),
)


def _filename(value: str) -> str:
    parse_filename(value)  # InvalidFilename (a ValueError) says what is wrong
    return value


YANKS = Resource(
    kinds.YANK,
    (
        *ro("pulp_href", "pulp_created", "pulp_last_updated"),
        PROJECT,
        Field(
            "repository",
            "string",
            nullable=True,
            href="repository",
            help="Yanked in this repository (every version of it); or give a distribution.",
        ),
        Field(
            "distribution",
            "string",
            nullable=True,
            href="distribution",
            help="Yanked on this distribution, whatever its source (an upstream release too).",
        ),
        Field("version", "string", nullable=True, clean=_version, help="The release; or a file."),
        Field("filename", "string", nullable=True, clean=_filename, help="One file of it."),
        Field("reason", "string", nullable=True, help="Shown to clients (PEP 592)."),
    ),
    verbs=(LIST, CREATE, READ, DELETE),
    filters=(
        *NAMED,
        Filter("version"),
        Filter("filename"),
        Filter("repository", href="repository"),
        Filter("distribution", href="distribution"),
    ),
)
TOKENS = Resource(
    kinds.TOKEN,
    (
        *ro("pulp_href", "pulp_created"),
        NAME,
        Field(
            "scopes",
            "array",
            items="string",
            required=True,
            clean=parse_scopes,
            help=f"What it may do: {SCOPE_HELP} (repeatable).",
        ),
        Field(
            "expires_at",
            "string",
            nullable=True,
            clean=parse_moment,
            help="When it stops working (RFC 3339); null: never.",
        ),
        Field("key", "string", read_only=True, help="The token's public start, to recognize it."),
        *ro("revoked_at", nullable=True),
        Field(
            "token",
            "string",
            read_only=True,
            nullable=True,
            help="The secret, in the answer to create only: the password of user __token__,"
            " or `Authorization: Bearer <token>`.",
        ),
    ),
    verbs=(LIST, CREATE, READ),
    filters=NAMED,
)
AUDIT_EVENTS = Resource(
    kinds.AUDIT_EVENT,
    (
        *ro("pulp_href", "pulp_created", "actor", "action", "subject", "address"),
        *ro("detail", type="object"),
    ),
    filters=(
        Filter("actor", (EXACT, IN)),
        Filter("action", (EXACT, IN, CONTAINS)),
        Filter("subject", (EXACT, CONTAINS)),
        Filter("pulp_created", (GTE, LT), format=DATE_TIME),
    ),
    ordering=("pulp_created", "actor", "action"),
    default_order="-pulp_created",
)
ARTIFACTS = Resource(
    kinds.ARTIFACT,
    (
        *ro("pulp_href", "pulp_created", "pulp_last_updated"),
        Field("file", "string", read_only=True, help="The stored file (its place in the store)."),
        *ro("size", type="integer"),
        *ro(*digests.FORBIDDEN, nullable=True),  # not computed, as Pulp's default
        *ro(*digests.COMPUTED),
    ),
    filters=tuple(Filter(digest) for digest in digests.NAMED),
    ordering=("pulp_created", "size"),
    default_order="-pulp_created",
)
UPLOADS = Resource(
    kinds.UPLOAD,
    (
        *ro("pulp_href", "pulp_created", "pulp_last_updated"),
        Field(
            "size",
            "integer",
            required=True,
            minimum=0,
            maximum=SIZE_MAX,
            help="The size of the upload in bytes.",
        ),
        Field(
            "completed",
            "string",
            read_only=True,
            nullable=True,
            help="Timestamp when upload is committed (never: a committed upload is gone).",
        ),
        Field(
            "chunks",
            "array",
            items="object",
            read_only=True,
            help="The chunks received: their offset and size.",
        ),
    ),
    verbs=(LIST, CREATE, READ),
    filters=(Filter("size", (EXACT, GT, LT), type="integer"),),
    ordering=("pulp_created", "size"),
    default_order="-pulp_created",
)
