"""The REST API's operations (repositories, versions, remotes, distributions, content, tasks)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Response, abort, g, request
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from pullthrough.api import hrefs, resources
from pullthrough.api.listing import apply_filters, page, pick
from pullthrough.api.operations import (
    PAGE_PARAMS,
    READ_PARAMS,
    Param,
    body_json,
    json_response,
    operation,
)
from pullthrough.api.schema import Field, ValidationError, validate
from pullthrough.api.tasks import TaskOutcome, run_as_task
from pullthrough.catalog.models import (
    Distribution,
    Package,
    Publication,
    Remote,
    Repository,
    RepositoryContent,
    RepositoryVersion,
    Task,
)
from pullthrough.catalog.versions import create_repository, new_version, present_in
from pullthrough.config import parse_base_path
from pullthrough.core.filters import FilterSpec
from pullthrough.services.uploads import UploadRefused
from pullthrough.services.worker import enqueue
from pullthrough.web.common import services

V3 = hrefs.API_ROOT
REPOS, REMOTES = V3 + hrefs.PATHS["repository"], V3 + hrefs.PATHS["remote"]
DISTS, CONTENT, TASKS = V3 + hrefs.PATHS["distribution"], V3 + hrefs.PATHS["content"], V3 + "tasks/"
NAME_FILTERS = (
    Param("name"),
    Param("name__in", array=True, explode=False),
    Param("name__contains"),
    Param("name__icontains"),
    Param("name__startswith"),
)


def _not_found() -> Response:
    abort(json_response({"detail": "Not found."}, 404))


def _get(session: Session, model: type, id: str) -> Any:
    return session.get(model, id) or _not_found()


def _task_response(task_id: str) -> Response:
    return json_response({"task": hrefs.href("task", task_id)}, 202)


def _as_task(name: str, work: Callable[[Session, TaskOutcome], None]) -> Response:
    svc = services()
    task_id = run_as_task(svc.catalog, name, work, cid=g.get("correlation_id", ""))
    svc.registry.changed()
    return _task_response(task_id)


def _unique(session: Session, model: Any, field: str, value: object, own_id: str | None) -> None:
    existing = session.scalar(select(model.id).where(getattr(model, field) == value))
    if existing is not None and existing != own_id:
        raise ValidationError({field: ["This field must be unique."]})


def _href_field(values: dict[str, Any], key: str, kind: str, session: Session) -> None:
    """Replace an href by its row id (checked to exist) under `<key>_id`."""
    if key not in values:
        return
    value = values.pop(key)
    if value is None:
        values[f"{key}_id"] = None
        return
    try:
        target = hrefs.parse(value, kind)
    except hrefs.BadHref as exc:
        raise ValidationError({key: [str(exc)]}) from None
    model = {"remote": Remote, "repository": Repository}[kind]
    if session.get(model, target) is None:
        raise ValidationError({key: [f"Invalid hyperlink - Object does not exist: {value}"]})
    values[f"{key}_id"] = target


def _update(
    model: Any,
    fields: tuple[Field, ...],
    id: str,
    partial: bool,
    check: Callable[[Session, dict[str, Any]], None],
    serialize: Callable[[Any], dict[str, Any]],
) -> Response:
    """PATCH/PUT: validate and check now (400s), apply as a task whose result is the object."""
    values = validate(fields, body_json(), partial=partial)
    with services().catalog.session() as session:
        _get(session, model, id)
        check(session, values)

    def work(session: Session, outcome: TaskOutcome) -> None:
        row = _get(session, model, id)
        for key, value in values.items():
            setattr(row, key, value)
        session.flush()
        session.refresh(row)
        outcome.result = serialize(row)

    return _as_task(f"pullthrough.tasks.{model.__name__.lower()}.update", work)


def _delete(model: Any, id: str, before: Callable[[Session], None] | None = None) -> Response:
    """DELETE as a task (404 first if there is no such object)."""
    with services().catalog.session() as session:
        _get(session, model, id)

    def work(session: Session, outcome: TaskOutcome) -> None:
        if before is not None:
            before(session)
        session.delete(_get(session, model, id))

    return _as_task(f"pullthrough.tasks.{model.__name__.lower()}.delete", work)


# ---- repositories -------------------------------------------------------------------------


@operation(
    "repositories_python_python_list", "GET", REPOS, REPOS, "List python repositories",
    params=(*PAGE_PARAMS, *NAME_FILTERS), responses={200: "Paginatedpython.PythonRepositoryResponseList"},
)  # fmt: skip
def repositories_list() -> Response:
    with services().catalog.session() as session:
        query = apply_filters(select(Repository), Repository, {"name": Repository.name})
        orderable = {"name": Repository.name, "pulp_created": Repository.pulp_created}
        return json_response(page(session, query, resources.repository_json, orderable, "name"))


@operation(
    "repositories_python_python_create", "POST", REPOS, REPOS, "Create a python repository",
    body=resources.REPOSITORY, responses={201: "python.PythonRepositoryResponse"},
)  # fmt: skip
def repositories_create() -> Response:
    values = validate(resources.REPOSITORY, body_json(), partial=False)
    with services().catalog.session() as session:
        _unique(session, Repository, "name", values["name"], None)
        _href_field(values, "remote", "remote", session)
        values["pulp_labels"] = values.get("pulp_labels") or {}
        repo = create_repository(session, **values)
        body = resources.repository_json(repo)
    return json_response(body, 201)


@operation(
    "repositories_python_python_read", "GET", REPOS + "<id>/", "{python_python_repository_href}",
    "Inspect a python repository", path_param="python_python_repository_href",
    params=READ_PARAMS,
    responses={200: "python.PythonRepositoryResponse"},
)  # fmt: skip
def repositories_read(id: str) -> Response:
    with services().catalog.session() as session:
        return json_response(pick(resources.repository_json(_get(session, Repository, id))))


def _update_repository(id: str, partial: bool) -> Response:
    def check(session: Session, values: dict[str, Any]) -> None:
        if "name" in values:
            _unique(session, Repository, "name", values["name"], id)
        _href_field(values, "remote", "remote", session)

    return _update(Repository, resources.REPOSITORY, id, partial, check, resources.repository_json)


@operation(
    "repositories_python_python_partial_update", "PATCH", REPOS + "<id>/",
    "{python_python_repository_href}", "Update a python repository",
    path_param="python_python_repository_href", body=resources.REPOSITORY,
    responses={202: "AsyncOperationResponse"},
)  # fmt: skip
def repositories_partial_update(id: str) -> Response:
    return _update_repository(id, partial=True)


@operation(
    "repositories_python_python_update", "PUT", REPOS + "<id>/", "{python_python_repository_href}",
    "Replace a python repository", path_param="python_python_repository_href",
    body=resources.REPOSITORY, responses={202: "AsyncOperationResponse"},
)  # fmt: skip
def repositories_update(id: str) -> Response:
    return _update_repository(id, partial=False)


@operation(
    "repositories_python_python_delete", "DELETE", REPOS + "<id>/",
    "{python_python_repository_href}", "Delete a python repository",
    path_param="python_python_repository_href", responses={202: "AsyncOperationResponse"},
)  # fmt: skip
def repositories_delete(id: str) -> Response:
    def memberships(session: Session) -> None:
        session.execute(delete(RepositoryContent).where(RepositoryContent.repository_id == id))

    return _delete(Repository, id, before=memberships)


@operation(
    "repositories_python_python_modify", "POST", REPOS + "<id>/modify/",
    "{python_python_repository_href}modify/", "Add and remove content",
    path_param="python_python_repository_href", body=resources.MODIFY,
    responses={202: "AsyncOperationResponse"},
)  # fmt: skip
def repositories_modify(id: str) -> Response:
    values = validate(resources.MODIFY, body_json(), partial=True)
    svc = services()
    with svc.catalog.session() as session:
        repo = _get(session, Repository, id)
        base = None
        if values.get("base_version"):
            repo_id, base = hrefs.parse_version(values["base_version"])
            if (
                repo_id != id
                or session.scalar(
                    select(RepositoryVersion.id).where(
                        RepositoryVersion.repository_id == id, RepositoryVersion.number == base
                    )
                )
                is None
            ):
                raise ValidationError({"base_version": ["No such version of this repository."]})
        add = [
            _content_id(session, h, "add_content_units")
            for h in values.get("add_content_units", [])
        ]
        removing = values.get("remove_content_units", [])
        if removing == ["*"]:
            remove = list(
                session.scalars(
                    select(RepositoryContent.package_id).where(present_in(id, repo.latest_number))
                )
            )
        else:
            remove = [_content_id(session, h, "remove_content_units") for h in removing]
    shas = []

    def work(session: Session, outcome: TaskOutcome) -> None:
        if base is not None:
            current = set(
                session.scalars(select(RepositoryContent.package_id).where(present_in(id, base)))
            )
            latest = _get(session, Repository, id).latest_number
            now_present = set(
                session.scalars(select(RepositoryContent.package_id).where(present_in(id, latest)))
            )
            wanted = (current | set(add)) - set(remove)
            version = new_version(
                session, id, add=wanted - now_present, remove=now_present - wanted, base=base
            )
        else:
            version = new_version(session, id, add=add, remove=remove)
        if version is not None:
            outcome.created.append(hrefs.version_href(id, version.number))
        shas.extend(session.scalars(select(Package.sha256).where(Package.id.in_(add))))

    response = _as_task("pullthrough.tasks.repository.modify", work)
    for sha in shas:  # promoted into a repository: no longer evictable cache
        svc.ledger.forget(sha)
    return response


def _content_id(session: Session, value: str, field: str) -> str:
    try:
        content_id = hrefs.parse(value, "content")
    except hrefs.BadHref as exc:
        raise ValidationError({field: [str(exc)]}) from None
    if session.get(Package, content_id) is None:
        raise ValidationError({field: [f"Invalid hyperlink - Object does not exist: {value}"]})
    return content_id


@operation(
    "repositories_python_python_versions_list", "GET", REPOS + "<id>/versions/",
    "{python_python_repository_href}versions/", "List repository versions",
    path_param="python_python_repository_href",
    params=(*PAGE_PARAMS, Param("number", "integer")),
    responses={200: "PaginatedRepositoryVersionResponseList"},
)  # fmt: skip
def versions_list(id: str) -> Response:
    with services().catalog.session() as session:
        _get(session, Repository, id)
        query = apply_filters(
            select(RepositoryVersion).where(RepositoryVersion.repository_id == id),
            RepositoryVersion,
            {"number": RepositoryVersion.number},
        )
        orderable = {
            "number": RepositoryVersion.number,
            "pulp_created": RepositoryVersion.pulp_created,
        }
        return json_response(
            page(session, query, lambda v: resources.version_json(v, session), orderable, "-number")
        )


@operation(
    "repositories_python_python_versions_read", "GET", REPOS + "<id>/versions/<int:number>/",
    "{python_python_repository_version_href}", "Inspect a repository version",
    path_param="python_python_repository_version_href",
    params=READ_PARAMS,
    responses={200: "RepositoryVersionResponse"},
)  # fmt: skip
def versions_read(id: str, number: int) -> Response:
    with services().catalog.session() as session:
        version = (
            session.scalar(
                select(RepositoryVersion).where(
                    RepositoryVersion.repository_id == id, RepositoryVersion.number == number
                )
            )
            or _not_found()
        )
        return json_response(pick(resources.version_json(version, session)))


# ---- remotes ------------------------------------------------------------------------------


def _check_remote_values(values: dict[str, Any]) -> None:
    """What the schema cannot say: filters parse, the URL is http(s)."""
    try:
        FilterSpec.build(
            includes=values.get("includes") or (),
            excludes=values.get("excludes") or (),
            package_types=values.get("package_types") or (),
            exclude_platforms=values.get("exclude_platforms") or (),
        )
    except ValueError as exc:
        key = "includes" if "includ" in str(exc) else "excludes"
        raise ValidationError({key: [str(exc)]}) from None
    url = values.get("url")
    if url is not None and not str(url).startswith(("http://", "https://")):
        raise ValidationError({"url": ["Enter a valid http(s) URL."]})
    headers = values.get("headers")
    if headers is not None and not all(
        isinstance(h, dict) and all(isinstance(v, str) for v in h.values()) for h in headers
    ):
        raise ValidationError({"headers": ["Expected a list of {name: value} objects."]})


@operation(
    "remotes_python_python_list", "GET", REMOTES, REMOTES, "List python remotes",
    params=(*PAGE_PARAMS, *NAME_FILTERS), responses={200: "Paginatedpython.PythonRemoteResponseList"},
)  # fmt: skip
def remotes_list() -> Response:
    with services().catalog.session() as session:
        query = apply_filters(select(Remote), Remote, {"name": Remote.name})
        orderable = {"name": Remote.name, "pulp_created": Remote.pulp_created}
        return json_response(page(session, query, resources.remote_json, orderable, "name"))


@operation(
    "remotes_python_python_create", "POST", REMOTES, REMOTES, "Create a python remote",
    body=resources.REMOTE, responses={201: "python.PythonRemoteResponse"},
)  # fmt: skip
def remotes_create() -> Response:
    values = validate(resources.REMOTE, body_json(), partial=False)
    _check_remote_values(values)
    with services().catalog.session() as session:
        _unique(session, Remote, "name", values["name"], None)
        remote = Remote(**{k: v for k, v in values.items() if v is not None or k != "policy"})
        session.add(remote)
        session.flush()
        body = resources.remote_json(remote)
    return json_response(body, 201)


@operation(
    "remotes_python_python_read", "GET", REMOTES + "<id>/", "{python_python_remote_href}",
    "Inspect a python remote", path_param="python_python_remote_href",
    params=READ_PARAMS,
    responses={200: "python.PythonRemoteResponse"},
)  # fmt: skip
def remotes_read(id: str) -> Response:
    with services().catalog.session() as session:
        return json_response(pick(resources.remote_json(_get(session, Remote, id))))


def _update_remote(id: str, partial: bool) -> Response:
    def check(session: Session, values: dict[str, Any]) -> None:
        _check_remote_values(values)
        if "name" in values:
            _unique(session, Remote, "name", values["name"], id)

    return _update(Remote, resources.REMOTE, id, partial, check, resources.remote_json)


@operation(
    "remotes_python_python_partial_update", "PATCH", REMOTES + "<id>/", "{python_python_remote_href}",
    "Update a python remote", path_param="python_python_remote_href", body=resources.REMOTE,
    responses={202: "AsyncOperationResponse"},
)  # fmt: skip
def remotes_partial_update(id: str) -> Response:
    return _update_remote(id, partial=True)


@operation(
    "remotes_python_python_update", "PUT", REMOTES + "<id>/", "{python_python_remote_href}",
    "Replace a python remote", path_param="python_python_remote_href", body=resources.REMOTE,
    responses={202: "AsyncOperationResponse"},
)  # fmt: skip
def remotes_update(id: str) -> Response:
    return _update_remote(id, partial=False)


@operation(
    "remotes_python_python_delete", "DELETE", REMOTES + "<id>/", "{python_python_remote_href}",
    "Delete a python remote", path_param="python_python_remote_href",
    responses={202: "AsyncOperationResponse"},
)  # fmt: skip
def remotes_delete(id: str) -> Response:
    return _delete(Remote, id)


# ---- distributions ------------------------------------------------------------------------


def _distribution_values(session: Session, values: dict[str, Any], own_id: str | None) -> None:
    if "base_path" in values:
        try:
            values["base_path"] = parse_base_path(values["base_path"])
        except ValueError as exc:
            raise ValidationError({"base_path": [str(exc)]}) from None
        _unique(session, Distribution, "base_path", values["base_path"], own_id)
    if "name" in values:
        _unique(session, Distribution, "name", values["name"], own_id)
    if "publication" in values:
        value = values.pop("publication")
        values["publication_id"] = None
        if value is not None:
            try:
                values["publication_id"] = hrefs.parse(value, "publication")
            except hrefs.BadHref as exc:
                raise ValidationError({"publication": [str(exc)]}) from None
            if session.get(Publication, values["publication_id"]) is None:
                raise ValidationError({"publication": [f"Object does not exist: {value}"]})
    chosen = [k for k in ("repository", "repository_version", "publication_id") if values.get(k)]
    if len(chosen) > 1:
        raise ValidationError(
            {"non_field_errors": ["Only one of repository, repository_version and publication."]}
        )
    if values.get("publication_id"):
        values["repository_id"] = None
        values["repository_version_id"] = None
    if values.get("content_guard") is not None:
        raise ValidationError({"content_guard": ["Content guards are not supported."]})
    values.pop("content_guard", None)
    _href_field(values, "repository", "repository", session)
    _href_field(values, "remote", "remote", session)
    if "repository_version" in values:
        value = values.pop("repository_version")
        values["repository_version_id"] = None
        if value is not None:
            try:
                repo_id, number = hrefs.parse_version(value)
            except hrefs.BadHref as exc:
                raise ValidationError({"repository_version": [str(exc)]}) from None
            version = session.scalar(
                select(RepositoryVersion).where(
                    RepositoryVersion.repository_id == repo_id, RepositoryVersion.number == number
                )
            )
            if version is None:
                raise ValidationError({"repository_version": [f"Object does not exist: {value}"]})
            values["repository_version_id"] = version.id
            values["repository_id"] = None
            values["publication_id"] = None
    if values.get("repository_id"):
        values["repository_version_id"] = None
        values["publication_id"] = None


def _content_root() -> str:
    return request.host_url


@operation(
    "distributions_python_pypi_list", "GET", DISTS, DISTS, "List python distributions",
    params=(*PAGE_PARAMS, *NAME_FILTERS, Param("base_path"), Param("base_path__contains")),
    responses={200: "Paginatedpython.PythonDistributionResponseList"},
)  # fmt: skip
def distributions_list() -> Response:
    root = _content_root()
    with services().catalog.session() as session:
        query = apply_filters(
            select(Distribution),
            Distribution,
            {"name": Distribution.name, "base_path": Distribution.base_path},
        )
        orderable = {
            "name": Distribution.name,
            "base_path": Distribution.base_path,
            "pulp_created": Distribution.pulp_created,
        }
        return json_response(
            page(session, query, lambda d: resources.distribution_json(d, root), orderable, "name")
        )


@operation(
    "distributions_python_pypi_create", "POST", DISTS, DISTS, "Create a python distribution",
    body=resources.DISTRIBUTION, responses={202: "AsyncOperationResponse"},
)  # fmt: skip
def distributions_create() -> Response:
    values = validate(resources.DISTRIBUTION, body_json(), partial=False)
    root = _content_root()
    with services().catalog.session() as session:
        _distribution_values(session, values, None)

    def work(session: Session, outcome: TaskOutcome) -> None:
        values["pulp_labels"] = values.get("pulp_labels") or {}
        dist = Distribution(**values)
        session.add(dist)
        session.flush()
        session.refresh(dist)
        outcome.created.append(hrefs.href("distribution", dist.id))
        outcome.result = resources.distribution_json(dist, root)

    return _as_task("pullthrough.tasks.distribution.create", work)


@operation(
    "distributions_python_pypi_read", "GET", DISTS + "<id>/", "{python_python_distribution_href}",
    "Inspect a python distribution", path_param="python_python_distribution_href",
    params=READ_PARAMS,
    responses={200: "python.PythonDistributionResponse"},
)  # fmt: skip
def distributions_read(id: str) -> Response:
    with services().catalog.session() as session:
        dist = _get(session, Distribution, id)
        return json_response(pick(resources.distribution_json(dist, _content_root())))


def _update_distribution(id: str, partial: bool) -> Response:
    root = _content_root()

    def check(session: Session, values: dict[str, Any]) -> None:
        _distribution_values(session, values, id)

    return _update(
        Distribution, resources.DISTRIBUTION, id, partial, check,
        lambda row: resources.distribution_json(row, root),
    )  # fmt: skip


@operation(
    "distributions_python_pypi_partial_update", "PATCH", DISTS + "<id>/",
    "{python_python_distribution_href}", "Update a python distribution",
    path_param="python_python_distribution_href", body=resources.DISTRIBUTION,
    responses={202: "AsyncOperationResponse"},
)  # fmt: skip
def distributions_partial_update(id: str) -> Response:
    return _update_distribution(id, partial=True)


@operation(
    "distributions_python_pypi_update", "PUT", DISTS + "<id>/", "{python_python_distribution_href}",
    "Replace a python distribution", path_param="python_python_distribution_href",
    body=resources.DISTRIBUTION, responses={202: "AsyncOperationResponse"},
)  # fmt: skip
def distributions_update(id: str) -> Response:
    return _update_distribution(id, partial=False)


@operation(
    "distributions_python_pypi_delete", "DELETE", DISTS + "<id>/",
    "{python_python_distribution_href}", "Delete a python distribution",
    path_param="python_python_distribution_href", responses={202: "AsyncOperationResponse"},
)  # fmt: skip
def distributions_delete(id: str) -> Response:
    return _delete(Distribution, id)


# ---- content ------------------------------------------------------------------------------

CONTENT_FILTERS = (
    Param("filename"),
    Param("sha256"),
    Param("version"),
    Param("packagetype"),
    Param("packagetype__in", array=True, explode=False),
    Param("origin"),
    Param("repository_version"),
    Param("repository_version_added"),
    Param("repository_version_removed"),
)


@operation(
    "content_python_packages_list", "GET", CONTENT, CONTENT, "List python packages",
    params=(*PAGE_PARAMS, *NAME_FILTERS, *CONTENT_FILTERS),
    responses={200: "Paginatedpython.PythonPackageContentResponseList"},
)  # fmt: skip
def content_list() -> Response:
    with services().catalog.session() as session:
        columns = {
            "name": Package.name,
            "filename": Package.filename,
            "sha256": Package.sha256,
            "version": Package.version,
            "packagetype": Package.packagetype,
            "origin": Package.origin,
        }
        query = apply_filters(select(Package), Package, columns)
        for key, column in (
            ("repository_version", None),
            ("repository_version_added", RepositoryContent.version_added),
            ("repository_version_removed", RepositoryContent.version_removed),
        ):
            if value := request.args.get(key):
                try:
                    repo_id, number = hrefs.parse_version(value)
                except hrefs.BadHref as exc:
                    raise ValidationError({key: [str(exc)]}) from None
                rc = RepositoryContent
                condition = (
                    present_in(repo_id, number)
                    if column is None
                    else ((rc.repository_id == repo_id) & (column == number))
                )
                query = query.where(Package.id.in_(select(rc.package_id).where(condition)))
        orderable = {
            "name": Package.name,
            "filename": Package.filename,
            "version": Package.version,
            "pulp_created": Package.pulp_created,
        }
        return json_response(page(session, query, resources.content_json, orderable, "filename"))


@operation(
    "content_python_packages_read", "GET", CONTENT + "<id>/",
    "{python_python_package_content_href}", "Inspect a python package",
    path_param="python_python_package_content_href",
    params=READ_PARAMS,
    responses={200: "python.PythonPackageContentResponse"},
)  # fmt: skip
def content_read(id: str) -> Response:
    with services().catalog.session() as session:
        return json_response(pick(resources.content_json(_get(session, Package, id))))


UPLOAD_FIELDS = (
    Field("file", "string", required=True, description="The distribution file (binary)."),
    Field("relative_path", "string", required=True, description="The file's name."),
    Field("repository", "string", nullable=True, description="A repository to add it to."),
    Field("sha256", "string", description="The file's sha256, checked."),
)


@operation(
    "content_python_packages_create", "POST", CONTENT, CONTENT, "Upload a python package",
    body=UPLOAD_FIELDS, multipart=True, responses={202: "AsyncOperationResponse"},
)  # fmt: skip
def content_create() -> Response:
    svc = services()
    upload = request.files.get("file")
    relative_path = request.form.get("relative_path") or (upload.filename if upload else None)
    errors = {}
    if upload is None:
        errors["file"] = ["No file was submitted."]
    if not relative_path:
        errors["relative_path"] = ["This field is required."]
    if errors:
        raise ValidationError(errors)
    assert upload is not None and relative_path is not None
    repository = request.form.get("repository") or None
    with svc.catalog.session() as session:
        repo_id = None
        if repository:
            try:
                repo_id = hrefs.parse(repository, "repository")
            except hrefs.BadHref as exc:
                raise ValidationError({"repository": [str(exc)]}) from None
            if session.get(Repository, repo_id) is None:
                raise ValidationError({"repository": [f"Object does not exist: {repository}"]})
    try:
        package, number = svc.uploads.upload(
            repo_id,
            upload.stream,
            relative_path,
            digests={"sha256": request.form.get("sha256", "")},
        )
    except UploadRefused as exc:
        raise ValidationError({"file": [str(exc)]}) from None

    def work(session: Session, outcome: TaskOutcome) -> None:
        if repo_id is not None and number is not None:
            outcome.created.append(hrefs.version_href(repo_id, number))
        outcome.created.append(hrefs.href("content", package.id))
        outcome.result = resources.content_json(package)

    return _as_task("pullthrough.tasks.content.upload", work)


# ---- tasks --------------------------------------------------------------------------------


@operation(
    "tasks_list", "GET", TASKS, TASKS, "List tasks",
    params=(*PAGE_PARAMS, Param("state"), Param("state__in", array=True, explode=False), Param("name")),
    responses={200: "PaginatedTaskResponseList"},
)  # fmt: skip
def tasks_list() -> Response:
    with services().catalog.session() as session:
        query = apply_filters(select(Task), Task, {"state": Task.state, "name": Task.name})
        orderable = {"pulp_created": Task.pulp_created, "name": Task.name, "state": Task.state}
        return json_response(page(session, query, resources.task_json, orderable, "-pulp_created"))


@operation(
    "tasks_read", "GET", TASKS + "<id>/", "{task_href}", "Inspect a task", path_param="task_href",
    params=READ_PARAMS,
    responses={200: "TaskResponse"},
)  # fmt: skip
def tasks_read(id: str) -> Response:
    with services().catalog.session() as session:
        return json_response(pick(resources.task_json(_get(session, Task, id))))


@operation(
    "tasks_cancel", "PATCH", TASKS + "<id>/", "{task_href}", "Cancel a task", path_param="task_href",
    body=(Field("state", "string", required=True, enum=("canceled",)),),
    responses={200: "TaskResponse", 409: None},
)  # fmt: skip
def tasks_cancel(id: str) -> Response:
    validate(
        (Field("state", "string", required=True, enum=("canceled",)),), body_json(), partial=False
    )
    with services().catalog.session() as session:
        task = _get(session, Task, id)
        if task.state in ("completed", "failed", "canceled", "skipped"):
            return json_response(
                {"detail": f"The task is already in a final state: {task.state}."}, 409
            )
        task.state = "canceled" if task.state == "waiting" else "canceling"
        return json_response(resources.task_json(task))


# ---- sync, publications, orphans ------------------------------------------------------------

PUBS = V3 + hrefs.PATHS["publication"]


@operation(
    "repositories_python_python_sync", "POST", REPOS + "<id>/sync/",
    "{python_python_repository_href}sync/", "Sync from a remote",
    path_param="python_python_repository_href", body=resources.SYNC,
    responses={202: "AsyncOperationResponse"},
)  # fmt: skip
def repositories_sync(id: str) -> Response:
    values = validate(resources.SYNC, body_json(), partial=True)
    svc = services()
    with svc.catalog.session() as session:
        repo = _get(session, Repository, id)
        remote_id = repo.remote_id
        if values.get("remote"):
            _href_field(values, "remote", "remote", session)
            remote_id = values["remote_id"]
        if remote_id is None:
            raise ValidationError({"remote": ["A remote must be given, or set on the repository."]})
    mirror = bool(values.get("mirror")) or values.get("sync_policy", "additive") != "additive"
    task_id = enqueue(
        svc,
        "pullthrough.tasks.sync",
        {"repository_id": id, "remote_id": remote_id, "mirror": mirror},
        cid=g.get("correlation_id", ""),
    )
    return _task_response(task_id)


def _publication_distributions(session: Session, publication_id: str) -> list[str]:
    ids = session.scalars(
        select(Distribution.id).where(Distribution.publication_id == publication_id)
    )
    return [hrefs.href("distribution", d) for d in ids]


def _publication_json(session: Session, row: Publication) -> dict[str, Any]:
    return resources.publication_json(row, _publication_distributions(session, row.id))


@operation(
    "publications_python_pypi_list", "GET", PUBS, PUBS, "List python publications",
    params=(*PAGE_PARAMS, Param("repository"), Param("repository_version")),
    responses={200: "Paginatedpython.PythonPublicationResponseList"},
)  # fmt: skip
def publications_list() -> Response:
    with services().catalog.session() as session:
        query = select(Publication).join(RepositoryVersion)
        if repository := request.args.get("repository"):
            try:
                query = query.where(
                    RepositoryVersion.repository_id == hrefs.parse(repository, "repository")
                )
            except hrefs.BadHref as exc:
                raise ValidationError({"repository": [str(exc)]}) from None
        if value := request.args.get("repository_version"):
            try:
                repo_id, number = hrefs.parse_version(value)
            except hrefs.BadHref as exc:
                raise ValidationError({"repository_version": [str(exc)]}) from None
            query = query.where(
                RepositoryVersion.repository_id == repo_id, RepositoryVersion.number == number
            )
        orderable = {"pulp_created": Publication.pulp_created}
        return json_response(
            page(
                session, query, lambda p: _publication_json(session, p), orderable, "-pulp_created"
            )
        )


@operation(
    "publications_python_pypi_create", "POST", PUBS, PUBS, "Publish a repository version",
    body=resources.PUBLICATION, responses={202: "AsyncOperationResponse"},
)  # fmt: skip
def publications_create() -> Response:
    values = validate(resources.PUBLICATION, body_json(), partial=True)
    with services().catalog.session() as session:
        if values.get("repository_version"):
            try:
                repo_id, number = hrefs.parse_version(values["repository_version"])
            except hrefs.BadHref as exc:
                raise ValidationError({"repository_version": [str(exc)]}) from None
        elif values.get("repository"):
            try:
                repo_id = hrefs.parse(values["repository"], "repository")
            except hrefs.BadHref as exc:
                raise ValidationError({"repository": [str(exc)]}) from None
            repo = session.get(Repository, repo_id)
            if repo is None:
                raise ValidationError(
                    {"repository": [f"Object does not exist: {values['repository']}"]}
                )
            number = repo.latest_number
        else:
            raise ValidationError(
                {"non_field_errors": ["Either repository or repository_version is required."]}
            )
        version = session.scalar(
            select(RepositoryVersion).where(
                RepositoryVersion.repository_id == repo_id, RepositoryVersion.number == number
            )
        )
        if version is None:
            raise ValidationError({"repository_version": ["Object does not exist."]})
        version_id = version.id

    def work(session: Session, outcome: TaskOutcome) -> None:
        publication = Publication(repository_version_id=version_id)
        session.add(publication)
        session.flush()
        session.refresh(publication)
        outcome.created.append(hrefs.href("publication", publication.id))
        outcome.result = _publication_json(session, publication)

    return _as_task("pullthrough.tasks.publication.create", work)


@operation(
    "publications_python_pypi_read", "GET", PUBS + "<id>/", "{python_python_publication_href}",
    "Inspect a python publication", path_param="python_python_publication_href",
    params=READ_PARAMS,
    responses={200: "python.PythonPublicationResponse"},
)  # fmt: skip
def publications_read(id: str) -> Response:
    with services().catalog.session() as session:
        return json_response(pick(_publication_json(session, _get(session, Publication, id))))


@operation(
    "publications_python_pypi_delete", "DELETE", PUBS + "<id>/", "{python_python_publication_href}",
    "Delete a python publication", path_param="python_python_publication_href",
    responses={204: None},
)  # fmt: skip
def publications_delete(id: str) -> Response:
    svc = services()
    with svc.catalog.session() as session:
        session.delete(_get(session, Publication, id))
    svc.registry.changed()
    return Response(status=204)


@operation(
    "orphans_cleanup_cleanup", "POST", V3 + "orphans/cleanup/", V3 + "orphans/cleanup/",
    "Remove content in no repository version, and its files", body=resources.ORPHANS,
    responses={202: "AsyncOperationResponse"},
)  # fmt: skip
def orphans_cleanup() -> Response:
    values = validate(resources.ORPHANS, body_json(), partial=True)
    ids = None
    if values.get("content_hrefs"):
        with services().catalog.session() as session:
            ids = [_content_id(session, h, "content_hrefs") for h in values["content_hrefs"]]
    task_id = enqueue(
        services(),
        "pullthrough.tasks.orphan_cleanup",
        {"orphan_protection_time": values.get("orphan_protection_time"), "content_ids": ids},
        cid=g.get("correlation_id", ""),
    )
    return _task_response(task_id)
