"""The standard operations of every resource in the table - list, create, read, update,
partial_update, delete - with Pulp's operationIds, paths and response codes."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from flask import Response, request
from sqlalchemy import select
from sqlalchemy.orm import Session

from pullthrough.api.listing import PAGE_PARAMS, READ_PARAMS, page, pick
from pullthrough.api.operations import (
    Call,
    Loader,
    Operation,
    View,
    by_id,
    json_response,
    task_answer,
)
from pullthrough.api.resources import (
    CREATE,
    DELETE,
    LIST,
    PARTIAL_UPDATE,
    READ,
    UPDATE,
    Render,
    Resource,
)
from pullthrough.catalog.models import RepositoryVersion
from pullthrough.services.tasks import Ref, TaskOutcome

TASK_RESPONSE = "AsyncOperationResponse"
Work = Callable[[Session, TaskOutcome], None]


def render(call: Call) -> Render:
    return Render(call.session, request.host_url)


def written(call: Call, resource: Resource, verb: str, work: Work, status: int) -> Response:
    """A write done in the request's transaction: answered with the object (`status`), or for
    the verbs the resource runs as tasks, 202 with a completed task recording it."""
    if verb in resource.tasks:
        task_verb = "update" if verb == PARTIAL_UPDATE else verb
        return task_answer(call, f"pullthrough.tasks.{resource.kind.label}.{task_verb}", work)
    call.changed()
    outcome = TaskOutcome()
    work(call.session, outcome)
    if outcome.result is None:
        return Response(status=status)
    return json_response(outcome.result, status)


def _list(resource: Resource) -> View:
    def view(call: Call) -> Response:
        query = select(resource.model)
        if resource.parent is not None:
            query = query.where(RepositoryVersion.repository_id == call.row.id)
        for declared in resource.filters:
            query = declared.apply(query)
        out = render(call)
        body = page(
            call.session,
            query,
            lambda row: resource.to_json(row, out),
            resource.ordering,
            resource.default_order,
        )
        return json_response(body)

    return view


def _read(resource: Resource) -> View:
    return lambda call: json_response(pick(resource.to_json(call.row, render(call))))


def _create(resource: Resource) -> View:
    def view(call: Call) -> Response:
        def work(session: Session, outcome: TaskOutcome) -> None:
            values = {**resource.create_defaults, **call.values}
            if resource.build is not None:
                row = resource.build(session, values)
            else:
                row = resource.model()
                resource.write_values(row, values)
            session.add(row)
            session.flush()
            if resource.after_create is not None:
                resource.after_create(session, row)
            session.refresh(row)
            outcome.created.append(Ref(resource.kind.label, row.id))
            outcome.result = resource.to_json(row, render(call))

        return written(call, resource, CREATE, work, 201)

    return view


def _update(resource: Resource, verb: str) -> View:
    def view(call: Call) -> Response:
        def work(session: Session, outcome: TaskOutcome) -> None:
            resource.write_values(call.row, call.values)
            session.flush()
            session.refresh(call.row)
            outcome.result = resource.to_json(call.row, render(call))

        return written(call, resource, verb, work, 200)

    return view


def _delete(resource: Resource) -> View:
    def view(call: Call) -> Response:
        def work(session: Session, outcome: TaskOutcome) -> None:
            if resource.before_delete is not None:
                resource.before_delete(session, call.row)
            session.delete(call.row)

        return written(call, resource, DELETE, work, 204)

    return view


def _version(session: Session, path: Mapping[str, Any]) -> Any:
    query = select(RepositoryVersion).where(
        RepositoryVersion.repository_id == path["id"], RepositoryVersion.number == path["number"]
    )
    return session.scalar(query)


def _plural(title: str) -> str:
    return title[:-1] + "ies" if title.endswith("y") else title + "s"


def operations(resource: Resource) -> list[Operation]:
    kind = resource.kind
    schema = kind.schema
    collection, collection_doc = kind.list_href, kind.list_href
    item, item_doc = collection + "<id>/", "{" + kind.href_param + "}"
    load_item: Loader = by_id(resource.model)
    load_collection: Loader | None = None
    if resource.parent is not None:  # repository versions: <repository href>versions/<n>/
        parent = resource.parent.kind
        collection = parent.list_href + "<id>/versions/"
        collection_doc = "{" + parent.href_param + "}versions/"
        item = collection + "<int:number>/"
        load_collection = by_id(resource.parent.model)
        load_item = _version
    filters = tuple(p for f in resource.filters for p in f.params())

    def answer(verb: str, direct: int) -> dict[int, str | None]:
        if verb in resource.tasks:
            return {202: TASK_RESPONSE}
        return {direct: f"{schema}Response" if direct != 204 else None}

    specs: dict[str, dict[str, Any]] = {
        LIST: dict(
            method="GET",
            rule=collection,
            doc_path=collection_doc,
            view=_list(resource),
            summary=f"List {_plural(kind.title)}",
            params=(*PAGE_PARAMS, *filters),
            load=load_collection,
            path_param=resource.parent.kind.href_param if resource.parent else None,
            responses={200: f"Paginated{schema}ResponseList"},
        ),
        CREATE: dict(
            method="POST",
            rule=collection,
            doc_path=collection_doc,
            view=_create(resource),
            summary=f"Create a {kind.title}",
            body=resource.fields,
            responses=answer(CREATE, 201),
        ),
        READ: dict(
            method="GET",
            rule=item,
            doc_path=item_doc,
            view=_read(resource),
            summary=f"Inspect a {kind.title}",
            params=READ_PARAMS,
            load=load_item,
            responses={200: f"{schema}Response"},
        ),
        UPDATE: dict(
            method="PUT",
            rule=item,
            doc_path=item_doc,
            view=_update(resource, UPDATE),
            summary=f"Replace a {kind.title}",
            load=load_item,
            body=resource.fields,
            responses=answer(UPDATE, 200),
        ),
        PARTIAL_UPDATE: dict(
            method="PATCH",
            rule=item,
            doc_path=item_doc,
            view=_update(resource, PARTIAL_UPDATE),
            summary=f"Update a {kind.title}",
            load=load_item,
            body=resource.fields,
            partial=True,
            responses=answer(PARTIAL_UPDATE, 200),
        ),
        DELETE: dict(
            method="DELETE",
            rule=item,
            doc_path=item_doc,
            view=_delete(resource),
            summary=f"Delete a {kind.title}",
            load=load_item,
            responses=answer(DELETE, 204),
        ),
    }
    out = []
    for verb in resource.verbs:
        spec = specs[verb]
        if spec["doc_path"] == item_doc:
            spec.setdefault("path_param", kind.href_param)
        if "body" in spec:
            spec.update(model=resource.model, check=resource.check)
        out.append(Operation(id=f"{kind.operation}_{verb}", **spec))
    return out
