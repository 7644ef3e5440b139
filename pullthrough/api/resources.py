"""The resources' fields (for validation and the API document) and their JSON shapes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from pullthrough.api.hrefs import href, version_href
from pullthrough.api.schema import Field
from pullthrough.catalog.models import (
    Distribution,
    Package,
    Publication,
    Remote,
    Repository,
    RepositoryVersion,
    Task,
)
from pullthrough.catalog.versions import content_counts
from pullthrough.core.filenames import PACKAGE_TYPES, PLATFORMS

COMMON = (
    Field("pulp_href", "string", read_only=True),
    Field("pulp_created", "string", read_only=True),
    Field("pulp_last_updated", "string", read_only=True),
    Field("pulp_labels", "object", description="Labels (string to string)."),
)

REPOSITORY = (
    *COMMON,
    Field("name", "string", required=True, description="A unique name."),
    Field("description", "string", nullable=True),
    Field("retain_repo_versions", "integer", nullable=True, minimum=1),
    Field("remote", "string", nullable=True, href="remote"),
    Field("autopublish", "boolean", default=False),
    Field("versions_href", "string", read_only=True),
    Field("latest_version_href", "string", read_only=True),
)

SECRETS = ("client_key", "proxy_username", "proxy_password", "username", "password")

REMOTE = (
    *COMMON,
    Field("name", "string", required=True, description="A unique name."),
    Field("url", "string", required=True, description="The index root or its simple URL."),
    Field("ca_cert", "string", nullable=True, description="PEM CA certificates."),
    Field("client_cert", "string", nullable=True, description="PEM client certificate."),
    Field("client_key", "string", nullable=True, write_only=True),
    Field("tls_validation", "boolean", default=True),
    Field("proxy_url", "string", nullable=True),
    Field("proxy_username", "string", nullable=True, write_only=True),
    Field("proxy_password", "string", nullable=True, write_only=True),
    Field("username", "string", nullable=True, write_only=True),
    Field("password", "string", nullable=True, write_only=True),
    Field("download_concurrency", "integer", nullable=True, minimum=1),
    Field("max_retries", "integer", nullable=True, minimum=0),
    Field("policy", "string", enum=("immediate", "on_demand", "streamed"), default="on_demand"),
    Field("total_timeout", "number", nullable=True, minimum=0),
    Field("connect_timeout", "number", nullable=True, minimum=0),
    Field("sock_connect_timeout", "number", nullable=True, minimum=0),
    Field("sock_read_timeout", "number", nullable=True, minimum=0),
    Field("headers", "array", items="object"),
    Field("rate_limit", "integer", nullable=True, minimum=0),
    Field("hidden_fields", "array", items="object", read_only=True),
    Field("includes", "array", items="string", description="Requirement strings or patterns."),
    Field("excludes", "array", items="string"),
    Field("prereleases", "boolean", default=False),
    Field("package_types", "array", items="string", item_enum=tuple(sorted(PACKAGE_TYPES))),
    Field("keep_latest_packages", "integer", minimum=0, default=0),
    Field("exclude_platforms", "array", items="string", item_enum=tuple(sorted(PLATFORMS))),
)

DISTRIBUTION = (
    *COMMON,
    Field("name", "string", required=True, description="A unique name."),
    Field("base_path", "string", required=True, description="Served at /pypi/<base_path>/simple/."),
    Field("base_url", "string", read_only=True),
    Field("content_guard", "string", nullable=True),
    Field("hidden", "boolean", default=False),
    Field("repository", "string", nullable=True, href="repository"),
    Field("repository_version", "string", nullable=True),
    Field("publication", "string", nullable=True, href="publication"),
    Field("allow_uploads", "boolean", default=True),
    Field("remote", "string", nullable=True, href="remote"),
    Field(
        "merge_remote",
        "boolean",
        default=False,
        description="Serve the remote's files of a project held locally too (off: shadowed).",
    ),
)

CONTENT = (
    Field("pulp_href", "string", read_only=True),
    Field("pulp_created", "string", read_only=True),
    Field("artifact", "string", read_only=True, nullable=True),
    Field("filename", "string", read_only=True),
    Field("relative_path", "string", description="The file's name."),
    Field("repository", "string", nullable=True, href="repository", write_only=True),
    Field("file", "string", write_only=True, description="The distribution file."),
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
    Field("origin", "string", read_only=True, description="upload, cache or sync"),
)

TASK_STATES = ("waiting", "skipped", "running", "completed", "failed", "canceled", "canceling")
TASK = (
    Field("pulp_href", "string", read_only=True),
    Field("pulp_created", "string", read_only=True),
    Field("state", "string", enum=TASK_STATES),
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
)

PUBLICATION = (
    Field("pulp_href", "string", read_only=True),
    Field("pulp_created", "string", read_only=True),
    Field("repository_version", "string", nullable=True, description="A version href."),
    Field("repository", "string", nullable=True, href="repository", description="Its latest."),
    Field("distributions", "array", read_only=True),
)

SYNC = (
    Field(
        "remote", "string", nullable=True, href="remote", description="Default: the repository's."
    ),
    Field("mirror", "boolean", default=False, description="Remove what the remote no longer has."),
    Field("sync_policy", "string", enum=("additive", "mirror_complete", "mirror_content_only")),
)

ORPHANS = (
    Field("orphan_protection_time", "integer", nullable=True, minimum=0, description="Minutes."),
    Field("content_hrefs", "array", items="string", description="Limit to these orphans."),
)

VERSION = (
    Field("pulp_href", "string", read_only=True),
    Field("pulp_created", "string", read_only=True),
    Field("number", "integer", read_only=True),
    Field("repository", "string", read_only=True),
    Field("base_version", "string", read_only=True, nullable=True),
    Field("content_summary", "object", read_only=True),
)

MODIFY = (
    Field("add_content_units", "array", items="string", description="Content hrefs to add."),
    Field("remove_content_units", "array", items="string", description="Content hrefs ('*': all)."),
    Field("base_version", "string", nullable=True, description="A version href to start from."),
)


def stamp(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a `Z` (SQLite returns naive datetimes; they are UTC)."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat() + "Z"


def repository_json(row: Repository) -> dict[str, Any]:
    own = href("repository", row.id)
    return {
        "pulp_href": own,
        "pulp_created": stamp(row.pulp_created),
        "pulp_last_updated": stamp(row.pulp_last_updated),
        "versions_href": own + "versions/",
        "pulp_labels": row.pulp_labels or {},
        "latest_version_href": version_href(row.id, row.latest_number),
        "name": row.name,
        "description": row.description,
        "retain_repo_versions": row.retain_repo_versions,
        "remote": href("remote", row.remote_id) if row.remote_id else None,
        "autopublish": row.autopublish,
    }


def remote_json(row: Remote) -> dict[str, Any]:
    """Secrets are write-only: their names and whether they are set, never their values."""
    out: dict[str, Any] = {
        "pulp_href": href("remote", row.id),
        "pulp_created": stamp(row.pulp_created),
        "pulp_last_updated": stamp(row.pulp_last_updated),
        "pulp_labels": row.pulp_labels or {},
    }
    for field in REMOTE:
        if field.name not in out and not field.write_only and not field.read_only:
            out[field.name] = getattr(row, field.name)
    out["hidden_fields"] = [{"name": n, "is_set": bool(getattr(row, n))} for n in SECRETS]
    return out


def distribution_json(row: Distribution, content_root: str) -> dict[str, Any]:
    version = row.repository_version
    return {
        "pulp_href": href("distribution", row.id),
        "pulp_created": stamp(row.pulp_created),
        "pulp_last_updated": stamp(row.pulp_last_updated),
        "pulp_labels": row.pulp_labels or {},
        "name": row.name,
        "base_path": row.base_path,
        "base_url": f"{content_root}pypi/{row.base_path}/",
        "content_guard": None,
        "hidden": row.hidden,
        "repository": href("repository", row.repository_id) if row.repository_id else None,
        "repository_version": (
            version_href(version.repository_id, version.number) if version is not None else None
        ),
        "publication": href("publication", row.publication_id) if row.publication_id else None,
        "allow_uploads": row.allow_uploads,
        "remote": href("remote", row.remote_id) if row.remote_id else None,
        "merge_remote": row.merge_remote,
    }


def content_json(row: Package) -> dict[str, Any]:
    meta = row.metadata_json or {}
    return {
        "pulp_href": href("content", row.id),
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


def task_json(row: Task) -> dict[str, Any]:
    return {
        "pulp_href": href("task", row.id),
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
        "created_resources": row.created_resources or [],
        "reserved_resources_record": row.reserved_resources or [],
        "result": row.result,
    }


def publication_json(row: Publication, distributions: list[str]) -> dict[str, Any]:
    version = row.repository_version
    return {
        "pulp_href": href("publication", row.id),
        "pulp_created": stamp(row.pulp_created),
        "repository_version": version_href(version.repository_id, version.number),
        "repository": href("repository", version.repository_id),
        "distributions": distributions,
    }


def version_json(row: RepositoryVersion, session: Session) -> dict[str, Any]:
    own = version_href(row.repository_id, row.number)
    counts = content_counts(session, row.repository_id, row.number)
    listing = href("content", "x").removesuffix("x/")

    def summary(key: str, query: str) -> dict[str, Any]:
        if not counts[key]:
            return {}
        return {"python.python": {"count": counts[key], "href": f"{listing}?{query}={own}"}}

    return {
        "pulp_href": own,
        "pulp_created": stamp(row.pulp_created),
        "number": row.number,
        "repository": href("repository", row.repository_id),
        "base_version": (
            version_href(row.repository_id, row.base_number)
            if row.base_number is not None
            else None
        ),
        "content_summary": {
            "added": summary("added", "repository_version_added"),
            "removed": summary("removed", "repository_version_removed"),
            "present": summary("present", "repository_version"),
        },
    }
