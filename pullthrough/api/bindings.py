"""How each resource of the table maps to the catalog: its model, the values that are not read
off a row, what checks the fields cannot make alone, and the filters that are not a column's.

A field is the row's attribute of its name, a reference's href (`x` from the column `x_id`), or
a computed value; a filter is its column's lookups, or a condition of its own; a list may be
ordered by the columns of the names its resource gives.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from packaging.utils import canonicalize_name
from sqlalchemy import Text, cast, delete, exists, false, or_, select
from sqlalchemy.orm import Session

from pullthrough.api import kinds, resources
from pullthrough.api.kinds import blocklist_entry_href, ref_href, version_href
from pullthrough.api.operations import (
    HIDDEN,
    Check,
    ValidationError,
    invalid,
    services,
)
from pullthrough.api.resources import RESERVATIONS, SERVED, Resource
from pullthrough.catalog.db import in_batches
from pullthrough.catalog.labels import selected
from pullthrough.catalog.models import (
    ApiToken,
    Artifact,
    AuditEvent,
    Base,
    Distribution,
    Package,
    ProjectStatus,
    Publication,
    Remote,
    Repository,
    RepositoryBlocklistEntry,
    RepositoryContent,
    RepositoryVersion,
    Task,
    Upload,
    Worker,
    Yank,
    width,
    worker_id,
)
from pullthrough.catalog.versions import (
    content_counts,
    content_counts_of,
    initial_version,
    latest_version,
    present_in,
)
from pullthrough.config import REMOTE_FIELDS, RemoteSettings
from pullthrough.core import digests
from pullthrough.core.access import overlaps
from pullthrough.core.fields import Field
from pullthrough.core.filenames import parse_filename
from pullthrough.core.labels import InvalidSelector, parse_selector
from pullthrough.core.remotes import UNSET, ordered
from pullthrough.core.repository_blocklist import entry_problem
from pullthrough.core.tasks import RUNNING_TASK_STATES
from pullthrough.services.auth import new_token, token_actor
from pullthrough.services.tasks import Ref, online_since

Value = Callable[[Any, "Render"], Any]
Condition = Callable[[Any], Any]  # a filter's value -> the SQL condition of the rows it keeps


@dataclass(frozen=True)
class Render:
    """What a JSON shape may need besides its row."""

    session: Session
    content_root: str  # this server's URL as the client reached it (`http://host/`)
    # What a binding's `prefetch` read for a page of rows at once, by its own key
    prefetched: dict[str, Any] = field(default_factory=dict)


def stamp(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a `Z` (SQLite returns naive datetimes; they are UTC)."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat() + "Z"


def _reference(row: Any, declared: Field) -> str | list[str] | None:
    """A reference's href, from `<name>_id` (or, for a version, the related object); a list of
    references, from the related objects."""
    if declared.type == "array":
        return [kinds.KINDS[str(declared.href)].href(o.id) for o in getattr(row, declared.name)]
    if declared.href == kinds.VERSION.label:
        version = getattr(row, declared.name)
        return version_href(version.repository_id, version.number) if version else None
    target = getattr(row, f"{declared.name}_id")
    return kinds.KINDS[str(declared.href)].href(target) if target else None


@dataclass(frozen=True)
class Binding:
    resource: Resource
    model: type[Base]
    computed: Mapping[str, Value] = field(default_factory=dict)  # fields not read off the row
    shape: Callable[[Any, Render], dict[str, Any]] | None = None  # instead of the fields
    conditions: Mapping[str, Condition] = field(default_factory=dict)  # not columns
    columns: Mapping[str, Any] = field(default_factory=dict)  # filtered as columns, not ones
    check: Check | None = None  # cross-field rules on create and update
    build: Callable[[Session, dict[str, Any]], Any] | None = None  # default: model + write
    write: Callable[[Any, dict[str, Any]], None] | None = None  # default: values to columns
    after_create: Callable[[Session, Any], None] | None = None
    before_delete: Callable[[Session, Any], None] | None = None
    redact: Callable[[dict[str, Any]], dict[str, Any]] | None = None  # body values to show
    creator: str | None = None  # the column a create sets to who made it (Pulp's `added_by`)
    # Reads a list's page of rows at once for `computed` (into Render.prefetched), instead of
    # a query per row
    prefetch: Callable[[Sequence[Any], Render], None] | None = None

    def to_json(self, row: Any, render: Render) -> dict[str, Any]:
        """Every readable field: computed, a reference's href, or the row's attribute."""
        if self.shape is not None:
            return self.shape(row, render)
        out = {}
        for f in self.resource.fields:
            if f.write_only:
                continue
            if (value := self.computed.get(f.name)) is not None:
                out[f.name] = value(row, render)
            elif f.name == "pulp_href":
                out[f.name] = self.resource.kind.href(row.id)
            elif f.href:
                out[f.name] = _reference(row, f)
            else:
                found = getattr(row, f.name)
                out[f.name] = stamp(found) if isinstance(found, datetime) else found
        return out

    def to_json_all(self, rows: Sequence[Any], render: Render) -> list[dict[str, Any]]:
        """A list's page of rows, as `to_json` each, what they need read at once first."""
        if self.prefetch is not None and rows:
            self.prefetch(rows, render)
        return [self.to_json(row, render) for row in rows]

    def write_values(self, row: Any, values: Mapping[str, Any]) -> None:
        """Body values onto a row: a reference `x` (an object, or None) becomes `x_id`; a list
        of references is set as the related objects."""
        if self.write is not None:
            self.write(row, dict(values))
            return
        refs = {f.name for f in self.resource.fields if f.href}
        for key, value in values.items():
            if key in refs and not isinstance(value, list):
                setattr(row, f"{key}_id", value.id if value is not None else None)
            else:
                setattr(row, key, value)


def _labels_selected(
    model: type[Repository | Remote | Distribution | Package],
) -> dict[str, Condition]:
    """The condition of a list's `pulp_label_select` (core.labels): the rows whose labels
    satisfy the selector; a 400 for one that does not parse."""

    def condition(text: str) -> Any:
        try:
            terms = parse_selector(text)
        except InvalidSelector as exc:
            raise invalid(resources.LABEL_SELECT.name, str(exc)) from None
        return selected(model.pulp_labels, terms)

    return {resources.LABEL_SELECT.name: condition}


def _forget_memberships(session: Session, row: Repository) -> None:
    session.execute(delete(RepositoryContent).where(RepositoryContent.repository_id == row.id))


REPOSITORIES = Binding(
    resources.REPOSITORIES,
    Repository,
    computed={
        "versions_href": lambda row, _: kinds.REPOSITORY.href(row.id) + "versions/",
        "latest_version_href": lambda row, _: version_href(row.id, row.latest_number),
    },
    conditions=_labels_selected(Repository),
    after_create=initial_version,
    before_delete=_forget_memberships,
)


def _content_summary(row: RepositoryVersion, render: Render) -> dict[str, Any]:
    own = version_href(row.repository_id, row.number)
    if (known := render.prefetched.get(_COUNTS)) is not None:  # a list: its page's versions
        counts = known[row.repository_id, row.number]
    else:
        counts = content_counts(render.session, row.repository_id, row.number)
    summary: dict[str, Any] = {}
    for key, query in (("added", "_added"), ("removed", "_removed"), ("present", "")):
        href = f"{kinds.CONTENT.list_href}?repository_version{query}={own}"
        summary[key] = (
            {"python.python": {"count": counts[key], "href": href}} if counts[key] else {}
        )
    return summary


_COUNTS = "counts"  # Render.prefetched: {(repository id, number): counts} of a page's versions


def _counts_of(rows: Sequence[RepositoryVersion], render: Render) -> None:
    render.prefetched[_COUNTS] = content_counts_of(
        render.session, [(row.repository_id, row.number) for row in rows]
    )


def _holding(href: str) -> Any:
    """Versions that hold the content an href names (its repository's versions from the one
    that added it until the one that removed it)."""
    try:
        package_id = kinds.CONTENT.parse(href)
    except kinds.BadHref as exc:
        raise invalid("content", str(exc)) from None
    rv = RepositoryVersion
    return exists().where(
        RepositoryContent.package_id == package_id, present_in(rv.repository_id, rv.number)
    )


def _base_version(row: RepositoryVersion, render: Render) -> str | None:
    """The href of the version a version was based on (any repository's), if any is left."""
    if row.base_version_id is None:
        return None
    base = render.session.get(RepositoryVersion, row.base_version_id)
    return None if base is None else version_href(base.repository_id, base.number)


VERSIONS = Binding(
    resources.VERSIONS,
    RepositoryVersion,
    computed={
        "pulp_href": lambda row, _: version_href(row.repository_id, row.number),
        "repository": lambda row, _: kinds.REPOSITORY.href(row.repository_id),
        "base_version": _base_version,
        "content_summary": _content_summary,
    },
    conditions={"content": _holding},
    prefetch=_counts_of,
)


def _one_blocklist_entry(session: Session, values: dict[str, Any], repo: Any) -> None:
    """Exactly one of name or filename, a version only with a name, and once in the
    repository: Pulp's rules and messages (400). `repo`: the repository of the path."""
    name, version, filename = (values.get(k) for k in ("name", "version", "filename"))
    if (problem := entry_problem(name, version, filename)) is not None:
        raise ValidationError({"non_field_errors": [problem]})
    entry = RepositoryBlocklistEntry
    if filename is not None:
        same, what = entry.filename == filename, "filename"
    else:
        same = (entry.name == name) & (
            entry.version.is_(None) if version is None else entry.version == version
        )
        what = "name and version"
    if session.scalar(select(entry.id).where(entry.repository_id == repo.id, same)) is not None:
        raise ValidationError(
            {"non_field_errors": [f"A blocklist entry with this {what} already exists."]}
        )


BLOCKLIST_ENTRIES = Binding(
    resources.BLOCKLIST_ENTRIES,
    RepositoryBlocklistEntry,
    computed={
        "pulp_href": lambda row, _: blocklist_entry_href(row.repository_id, row.id),
        "repository": lambda row, _: kinds.REPOSITORY.href(row.repository_id),
    },
    conditions={  # a name as given: compared normalized, as stored
        "name": lambda name: RepositoryBlocklistEntry.name == canonicalize_name(name),
    },
    check=_one_blocklist_entry,
    creator="added_by",
)


URL_FIELDS = ("url", "proxy_url")


def _hide_secrets(url: str | None) -> str | None:
    """A URL as shown: its credentials and every query parameter's value as HIDDEN (an index's
    `?token=...`), the parameters' names kept."""
    if not url:
        return url
    parts = urlsplit(url)
    netloc, query = parts.netloc, parts.query
    if "@" in netloc:
        netloc = f"{HIDDEN}@{netloc.rsplit('@', 1)[1]}"
    if query:
        query = "&".join(
            f"{key}={HIDDEN}" if sep and value else item
            for item in query.split("&")
            for key, sep, value in [item.partition("=")]
        )
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def _keep_secrets(new: str | None, old: str | None) -> str | None:
    """A URL written back as shown keeps the stored secrets: credentials shown as HIDDEN, and a
    query parameter shown as HIDDEN, get their stored values (by the parameter's name)."""
    if not new or not old or HIDDEN not in new:
        return new
    parts, stored = urlsplit(new), urlsplit(old)
    netloc = parts.netloc
    if netloc.rsplit("@", 1)[0] == HIDDEN:
        host = netloc.rsplit("@", 1)[1]
        userinfo = stored.netloc.rsplit("@", 1)[0] if "@" in stored.netloc else ""
        netloc = f"{userinfo}@{host}" if userinfo else host
    values: dict[str, str] = {}
    for item in stored.query.split("&"):
        values.setdefault(item.partition("=")[0], item)
    query = "&".join(
        values.get(item.partition("=")[0], item) if item.partition("=")[2] == HIDDEN else item
        for item in parts.query.split("&")
    )
    return urlunsplit(parts._replace(netloc=netloc, query=query))


NO_PROVENANCE = (
    "Not supported by pullthrough: a sync fetches no PEP 740 provenance (the catalog keeps none);"
    " pull-through pages still carry the upstream's provenance links."
)


def _remote_json(row: Remote, _: Render) -> dict[str, Any]:
    """Secrets are write-only: the secret fields' names and whether they are set, never their
    values; credentials inside URLs and every header's value as HIDDEN."""
    settings = RemoteSettings.from_values(row.name, row.settings or {})
    shown = {f.name: getattr(settings, f.name) for f in REMOTE_FIELDS if not f.write_only}
    shown.update({name: _hide_secrets(shown[name]) for name in URL_FIELDS})
    # a setting that stands for its default when null is shown as stored: null when unset, as
    # Pulp shows it (the default applies all the same)
    stored = row.settings or {}
    shown.update({f.name: stored.get(f.name) for f in REMOTE_FIELDS if f.null_default})
    shown["headers"] = [{k: HIDDEN for k in item} for item in settings.headers]
    return {
        "pulp_href": kinds.REMOTE.href(row.id),
        "pulp_created": stamp(row.pulp_created),
        "pulp_last_updated": stamp(row.pulp_last_updated),
        "pulp_labels": row.pulp_labels or {},
        "name": row.name,
        **shown,
        "provenance": False,
        "hidden_fields": [
            {"name": f.name, "is_set": bool(getattr(settings, f.name))}
            for f in REMOTE_FIELDS
            if f.write_only
        ],
    }


def _remote_detail(values: dict[str, Any]) -> dict[str, Any]:
    """A remote's body as the audit trail shows it: as a remote is shown."""
    out: dict[str, Any] = {k: _hide_secrets(v) if k in URL_FIELDS else v for k, v in values.items()}
    if isinstance(out.get("headers"), list):
        out["headers"] = [
            {k: HIDDEN for k in item} if isinstance(item, dict) else HIDDEN
            for item in out["headers"]
        ]
    return out


def _write_remote(row: Remote, values: dict[str, Any]) -> None:
    """The name and labels are columns; the settings one JSON object (a new one: the change is
    seen). Secrets written back as shown (HIDDEN) keep their stored values."""
    row.name = values.pop("name", row.name)
    row.pulp_labels = values.pop("pulp_labels", row.pulp_labels)
    old = row.settings or {}
    for name in URL_FIELDS:
        if name in values:
            values[name] = _keep_secrets(values[name], old.get(name))
    if "headers" in values:
        stored = {k: v for item in old.get("headers") or [] for k, v in item.items()}
        values["headers"] = [
            {k: stored.get(k, v) if v == HIDDEN else v for k, v in item.items()}
            for item in values["headers"]
        ]
    row.settings = {**old, **values}


def _origin(url: object) -> tuple[str, str | None, int | None] | None:
    if not isinstance(url, str) or not url:
        return None
    parts = urlsplit(url)
    try:
        return parts.scheme.lower(), parts.hostname, parts.port
    except ValueError:  # a port that is no number: not the stored one's origin
        return parts.scheme.lower(), parts.hostname, -1


# The write-only settings a remote sends to the host of each of its URLs
SENT_WITH = {
    "url": ("username", "password", "headers"),
    "proxy_url": ("proxy_username", "proxy_password"),
}


def _remote_check(session: Session, values: dict[str, Any], row: Any) -> None:
    """A secret is kept only where it was sent before: a URL's credentials and query values
    written back as shown (HIDDEN) for that URL's own scheme, host and port, the headers' values
    for the index's, and a URL moved to another host takes the secrets it is sent with
    (SENT_WITH) only when they are given again; else an API client that may not read them
    could send them to a host of its choosing. Provenance (Pulp's `provenance`) is never
    synced: asking for it is refused, not ignored."""
    if values.pop("provenance", False):
        raise invalid("provenance", NO_PROVENANCE)
    if row is None:
        return
    old = row.settings or {}
    for name in URL_FIELDS:
        given = values.get(name)
        if isinstance(given, str) and HIDDEN in given and _origin(given) != _origin(old.get(name)):
            raise invalid(
                name, "A value shown as ******** is kept only for the same host; give it again."
            )
    headers = values.get("headers") or []
    hidden = any(v == HIDDEN for item in headers if isinstance(item, dict) for v in item.values())
    if hidden and "url" in values and _origin(values["url"]) != _origin(old.get("url")):
        raise invalid(
            "headers",
            "A header value shown as ******** is kept only for the same index host; give it again.",
        )
    moved = {
        secret: [f"Sent only to the host of the {name} it was given with; give it again (or null)."]
        for name, secrets in SENT_WITH.items()
        if values.get(name) and _origin(values[name]) != _origin(old.get(name))
        for secret in secrets
        if old.get(secret) and secret not in values
    }
    if moved:
        raise ValidationError(moved)


REMOTES = Binding(
    resources.REMOTES,
    Remote,
    shape=_remote_json,
    write=_write_remote,
    conditions=_labels_selected(Remote),
    redact=_remote_detail,
    check=_remote_check,
)


def _distribution_check(session: Session, values: dict[str, Any], row: Any) -> None:
    _serves_one(values)
    _ordered_remotes(values, row)
    _apart(session, values, row)


def _apart(session: Session, values: dict[str, Any], row: Distribution | None) -> None:
    """A base path overlaps no other distribution's (core.access.overlaps)."""
    if (base_path := values.get("base_path")) is None:
        return
    others = select(Distribution.name, Distribution.base_path)
    if row is not None:
        others = others.where(Distribution.id != row.id)
    for name, other in session.execute(others):
        if overlaps(base_path, other):
            raise invalid("base_path", f"Overlaps with existing distribution '{name}'.")


def _ordered_remotes(values: dict[str, Any], row: Distribution | None) -> None:
    """`remote` and `remotes` become the one list `remotes` (core.remotes.ordered)."""
    if "remote" not in values and "remotes" not in values:
        return
    try:
        values["remotes"] = ordered(
            row.remotes if row is not None else [],
            values.pop("remote", UNSET),
            values.get("remotes", UNSET),
        )
    except ValueError as exc:
        raise invalid("remote", str(exc)) from None


def _serves_one(values: dict[str, Any]) -> None:
    """At most one of a repository (its latest version), a repository version or a
    publication; setting one clears the others."""
    if values.pop("content_guard", None) is not None:
        raise invalid("content_guard", "Content guards are not supported.")
    chosen = [key for key in SERVED if values.get(key) is not None]
    if len(chosen) > 1:
        raise ValidationError(
            {"non_field_errors": ["Only one of repository, repository_version and publication."]}
        )
    if chosen:
        values.update({key: None for key in SERVED if key != chosen[0]})


DISTRIBUTIONS = Binding(
    resources.DISTRIBUTIONS,
    Distribution,
    computed={
        "base_url": lambda row, render: f"{render.content_root}pypi/{row.base_path}/",
        "content_guard": lambda row, _: None,
        # the first of `remotes` (after the first was deleted, the next one)
        "remote": lambda row, _: kinds.REMOTE.href(row.remotes[0].id) if row.remotes else None,
    },
    conditions=_labels_selected(Distribution),
    check=_distribution_check,
)


def _publish(session: Session, values: dict[str, Any]) -> Publication:
    """A publication of the version given, or of the repository's latest."""
    version: RepositoryVersion | None = values.get("repository_version")
    if version is None:
        version = latest_version(session, values["repository"].id)
    return Publication(repository_version_id=version.id)


def _one_version(session: Session, values: dict[str, Any], row: Any) -> None:
    if values.get("repository_version") is None and values.get("repository") is None:
        raise ValidationError(
            {"non_field_errors": ["Either repository or repository_version is required."]}
        )


def _version_where(href: str, name: str) -> Any:
    """The versions an href names: one version, every version of a repository, or those that
    hold some content."""
    if name == "content":
        return _holding(href)
    try:
        if name == "repository":
            return RepositoryVersion.repository_id == kinds.REPOSITORY.parse(href)
        repository_id, number = kinds.parse_version(href)
    except kinds.BadHref as exc:
        raise invalid(name, str(exc)) from None
    return (RepositoryVersion.repository_id == repository_id) & (RepositoryVersion.number == number)


def _published(name: str) -> Callable[[str], Any]:
    return lambda href: Publication.repository_version_id.in_(
        select(RepositoryVersion.id).where(_version_where(href, name))
    )


PUBLICATIONS = Binding(
    resources.PUBLICATIONS,
    Publication,
    computed={
        "repository": lambda row, _: kinds.REPOSITORY.href(row.repository_version.repository_id),
        "distributions": lambda row, render: [
            kinds.DISTRIBUTION.href(d)
            for d in render.session.scalars(
                select(Distribution.id).where(Distribution.publication_id == row.id)
            )
        ],
    },
    conditions={name: _published(name) for name in ("repository", "repository_version", "content")},
    check=_one_version,
    build=_publish,
)


def _in_version(name: str, column: Any) -> Callable[[str], Any]:
    """Packages present in (column None), added in or removed in a repository version; a bad
    href is an error of the filter `name`. A version that is not there (deleted) holds nothing,
    though its number falls in the ranges of the versions around it."""

    def condition(value: str) -> Any:
        try:
            repository_id, number = kinds.parse_version(value)
        except kinds.BadHref as exc:
            raise invalid(name, str(exc)) from None
        rc = RepositoryContent
        where = (
            present_in(repository_id, number)
            if column is None
            else (rc.repository_id == repository_id) & (column == number)
        )
        there = select(RepositoryVersion.id).where(
            RepositoryVersion.repository_id == repository_id, RepositoryVersion.number == number
        )
        return Package.id.in_(select(rc.package_id).where(where)) & there.exists()

    return condition


def _metadata(key: str) -> Value:
    return lambda row, _: (row.metadata_json or {}).get(key)


def _artifact_of(row: Package, render: Render) -> str | None:
    """The artifact of the package's bytes, as Pulp links content to its artifact: there is one
    where the package was made from an artifact, or an artifact was uploaded of its bytes."""
    if (known := render.prefetched.get(_ARTIFACTS)) is not None:  # a list: its page's rows
        found = known.get(row.sha256)
    else:
        found = render.session.scalar(select(Artifact.id).where(Artifact.sha256 == row.sha256))
    return kinds.ARTIFACT.href(found) if found is not None else None


_ARTIFACTS = "artifacts"  # Render.prefetched: {sha256: artifact id} of a page's packages


def _artifacts_of(rows: Sequence[Package], render: Render) -> None:
    """The artifacts of a page of packages' bytes, in one query per IN_BATCH."""
    render.prefetched[_ARTIFACTS] = {
        sha: artifact_id
        for chunk in in_batches(sorted({p.sha256 for p in rows}))
        for sha, artifact_id in render.session.execute(
            select(Artifact.sha256, Artifact.id).where(Artifact.sha256.in_(chunk))
        )
    }


CONTENT = Binding(
    resources.CONTENT,
    Package,
    computed={
        "artifact": _artifact_of,
        "relative_path": lambda row, _: row.filename,
        "name": lambda row, _: (row.metadata_json or {}).get("name") or row.name,
        "summary": _metadata("summary"),
        "author": _metadata("author"),
        "license": _metadata("license"),
        "requires_dist": lambda row, _: list((row.metadata_json or {}).get("requires_dist") or []),
    },
    conditions={
        **{
            name: _in_version(name, column)
            for name, column in (
                ("repository_version", None),
                ("repository_version_added", RepositoryContent.version_added),
                ("repository_version_removed", RepositoryContent.version_removed),
            )
        },
        **_labels_selected(Package),
    },
    columns={"author": Package.metadata_json["author"].as_string()},
    prefetch=_artifacts_of,
)


def _holds(column: Any, item: object) -> Any:
    """Rows whose JSON list `column` has `item`: its text holds the item's as the catalog writes
    JSON (json.dumps, on SQLite and PostgreSQL alike), a whole element (`"..."`, `{...}`)."""
    return cast(column, Text).contains(json.dumps(item), autoescape=True)


def _created(href: str) -> Any:
    """Tasks that created what an href names (since deleted too: tasks keep its reference)."""
    try:
        if kinds.is_version_href(href):
            ref = Ref(kinds.VERSION.label, *kinds.parse_version(href))
        elif (kind := next((k for k in kinds.KINDS.values() if k.owns(href)), None)) is not None:
            ref = Ref(kind.label, kind.parse(href))
        else:
            raise kinds.BadHref(f"Invalid hyperlink - expected an object's href, got {href!r}.")
    except kinds.BadHref as exc:
        raise invalid("created_resources", str(exc)) from None
    return _holds(Task.created_resources, ref.to_json())


def _reserved(which: str) -> Callable[[str], Any]:
    """Tasks that reserved a resource (any text, as Pulp takes it): exclusively (its href in the
    record), shared (`shared:<href>`), or either way."""
    ways = {"exclusive": ("",), "shared": ("shared:",)}.get(which, ("", "shared:"))
    return lambda href: or_(*(_holds(Task.reserved_resources, way + href) for way in ways))


def _run_by(href: str) -> Any:
    """Tasks that a worker ran, by its href (a bad one is an error of the filter)."""
    try:
        return Task.worker.in_(select(Worker.name).where(Worker.id == kinds.WORKER.parse(href)))
    except kinds.BadHref as exc:
        raise invalid("worker", str(exc)) from None


TASKS = Binding(
    resources.TASKS,
    Task,
    computed={
        "worker": lambda row, _: kinds.WORKER.href(worker_id(row.worker)) if row.worker else None,
        "created_by": lambda row, _: None,
        "parent_task": lambda row, _: None,
        "task_group": lambda row, _: None,
        "child_tasks": lambda row, _: [],
        "created_resources": lambda row, _: [ref_href(r) for r in row.created_resources or []],
        "reserved_resources_record": lambda row, _: row.reserved_resources or [],
    },
    conditions={
        "worker": _run_by,
        "created_resources": _created,
        **{f"{which}_resources": _reserved(which) for which in RESERVATIONS},
    },
)


def _online(online: bool) -> Any:
    """Workers that heartbeat within tasks.worker_timeout (online), or not (missing)."""
    svc = services()
    alive = Worker.last_heartbeat >= online_since(svc.catalog, svc.settings.tasks.worker_timeout)
    return alive if online else ~alive


def _current_task(row: Worker, render: Render) -> str | None:
    running = select(Task.id).where(Task.worker == row.name, Task.state.in_(RUNNING_TASK_STATES))
    task = render.session.scalar(running.limit(1))
    return kinds.TASK.href(task) if task is not None else None


WORKERS = Binding(
    resources.WORKERS,
    Worker,
    computed={
        "pulp_last_updated": lambda row, _: stamp(row.last_heartbeat),  # a heartbeat updates it
        "current_task": _current_task,
    },
    conditions={"online": _online, "missing": lambda missing: _online(not missing)},
)


def _one_status_per_project(session: Session, values: dict[str, Any], row: Any) -> None:
    repository = values["repository"].id if "repository" in values else row.repository_id
    name = values.get("name", row.name if row is not None else None)
    query = select(ProjectStatus.id).where(
        ProjectStatus.repository_id == repository, ProjectStatus.name == name
    )
    existing = session.scalar(query)
    if existing is not None and (row is None or existing != row.id):
        raise invalid("name", "This project has a status in this repository already.")


PROJECT_STATUSES = Binding(resources.PROJECT_STATUSES, ProjectStatus, check=_one_status_per_project)


def _one_yank(session: Session, values: dict[str, Any], row: Any) -> None:
    """A yank names one target (a repository or a distribution) and one subject (a version or
    a file of the project), once."""
    if row is not None:
        return  # yanks are not changed, only removed
    if (values.get("repository") is None) == (values.get("distribution") is None):
        raise invalid("repository", "Give a repository or a distribution (one of them).")
    version, filename = values.get("version"), values.get("filename")
    if (version is None) == (filename is None):
        raise invalid("version", "Give a version or a filename (one of them).")
    if filename is not None and parse_filename(filename).name != values["name"]:
        raise invalid("filename", f"{filename!r} is not a file of project {values['name']!r}.")
    target = values.get("repository") or values["distribution"]
    column = Yank.repository_id if values.get("repository") is not None else Yank.distribution_id
    query = select(Yank.id).where(
        column == target.id,
        Yank.name == values["name"],
        Yank.version == version if version is not None else Yank.filename == filename,
    )
    if session.scalar(query) is not None:
        raise invalid("name", "This is yanked there already.")


def _yanked_in(kind: kinds.Kind, column: Any) -> Callable[[str], Any]:
    def condition(href: str) -> Any:
        try:
            return column == kind.parse(href)
        except kinds.BadHref as exc:
            raise invalid(kind.label, str(exc)) from None

    return condition


YANKS = Binding(
    resources.YANKS,
    Yank,
    conditions={
        "repository": _yanked_in(kinds.REPOSITORY, Yank.repository_id),
        "distribution": _yanked_in(kinds.DISTRIBUTION, Yank.distribution_id),
    },
    check=_one_yank,
)


def _new_token(session: Session, values: dict[str, Any]) -> ApiToken:
    """A token with a fresh secret: only its digest is stored; the secret rides along on the
    object for the answer to create, and is gone with it."""
    token, key, digest = new_token()
    expires = values.get("expires_at")
    row = ApiToken(
        name=values["name"],
        key=key,
        digest=digest,
        scopes=values["scopes"],
        expires_at=datetime.fromisoformat(expires) if expires else None,
    )
    row.secret = token  # type: ignore[attr-defined]
    return row


def _token_check(session: Session, values: dict[str, Any], row: Any) -> None:
    """A token expires in the future, and its name fits the actor it acts as (the audit
    trail's and an upload's `uploaded_by`, as wide as its own column)."""
    expires = values.get("expires_at")
    if expires and datetime.fromisoformat(expires) <= datetime.now(UTC):
        raise invalid("expires_at", "A token must expire in the future.")
    most = width(AuditEvent, "actor") - len(token_actor(""))
    if len(token_actor(values.get("name") or "")) > width(AuditEvent, "actor"):
        raise invalid("name", f"Ensure this field has no more than {most:g} characters.")


TOKENS = Binding(
    resources.TOKENS,
    ApiToken,
    computed={"token": lambda row, _: getattr(row, "secret", None)},
    build=_new_token,
    check=_token_check,
)
AUDIT_EVENTS = Binding(resources.AUDIT_EVENTS, AuditEvent)
ARTIFACTS = Binding(
    resources.ARTIFACTS,
    Artifact,
    computed={
        "file": lambda row, _: f"artifact/{row.sha256[:2]}/{row.sha256[2:]}",  # Pulp's layout
        "pulp_last_updated": lambda row, _: stamp(row.pulp_created),  # never changed
        **{digest: lambda row, _: None for digest in digests.FORBIDDEN},
    },
    conditions={digest: lambda value: false() for digest in digests.FORBIDDEN},  # none has one
)
UPLOADS = Binding(
    resources.UPLOADS,
    Upload,
    computed={
        "pulp_last_updated": lambda row, _: stamp(row.pulp_created),  # a chunk is no change to it
        "completed": lambda row, _: None,
        "chunks": lambda row, _: [{"offset": c.offset, "size": c.size} for c in row.chunks],
    },
)
BINDINGS = (
    REPOSITORIES,
    VERSIONS,
    BLOCKLIST_ENTRIES,
    REMOTES,
    DISTRIBUTIONS,
    PUBLICATIONS,
    CONTENT,
    TASKS,
    WORKERS,
    PROJECT_STATUSES,
    YANKS,
    TOKENS,
    AUDIT_EVENTS,
    ARTIFACTS,
    UPLOADS,
)
