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
    Param,
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


def _list(resource: Resource, verb: str) -> View:
    def view(call: Call) -> Response:
        query = select(resource.model)
        if resource.parent is not None:
            query = query.where(RepositoryVersion.repository_id == call.row.id)
        for declared in resource.filters:
            query = declared.apply(query)
        out = render(call)
        return json_response(
            page(
                call.session,
                query,
                lambda row: resource.to_json(row, out),
                resource.ordering,
                resource.default_order,
            )
        )

    return view


def _read(resource: Resource, verb: str) -> View:
    return lambda call: json_response(pick(resource.to_json(call.row, render(call))))


def _create(resource: Resource, verb: str) -> View:
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

        return written(call, resource, verb, work, 201)

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


def _delete(resource: Resource, verb: str) -> View:
    def view(call: Call) -> Response:
        def work(session: Session, outcome: TaskOutcome) -> None:
            if resource.before_delete is not None:
                resource.before_delete(session, call.row)
            session.delete(call.row)

        return written(call, resource, verb, work, 204)

    return view


# verb: its view, method, whether it acts on one object, its summary, its code when not a task
VERBS: dict[str, tuple[Callable[[Resource, str], View], str, bool, str, int]] = {
    LIST: (_list, "GET", False, "List {title}s", 200),
    CREATE: (_create, "POST", False, "Create a {title}", 201),
    READ: (_read, "GET", True, "Inspect a {title}", 200),
    UPDATE: (_update, "PUT", True, "Replace a {title}", 200),
    PARTIAL_UPDATE: (_update, "PATCH", True, "Update a {title}", 200),
    DELETE: (_delete, "DELETE", True, "Delete a {title}", 204),
}


def _version(session: Session, path: Mapping[str, Any]) -> Any:
    query = select(RepositoryVersion).where(
        RepositoryVersion.repository_id == path["id"], RepositoryVersion.number == path["number"]
    )
    return session.scalar(query)


def operations(resource: Resource) -> list[Operation]:
    """The resource's standard operations, as Pulp names, places and answers them."""
    kind, schema = resource.kind, resource.kind.schema
    collection, collection_doc = kind.list_href, kind.list_href
    item, item_doc = collection + "<id>/", "{" + kind.href_param + "}"
    load_item: Loader = by_id(resource.model)
    load_collection: Loader | None = None
    collection_param = None
    if resource.parent is not None:  # repository versions: <repository href>versions/<n>/
        collection_param = resource.parent.kind.href_param
        collection = resource.parent.kind.list_href + "<id>/versions/"
        collection_doc = "{" + collection_param + "}versions/"
        item = collection + "<int:number>/"
        load_collection, load_item = by_id(resource.parent.model), _version
    out = []
    for verb in resource.verbs:
        view, method, on_item, summary, code = VERBS[verb]
        writes = verb in (CREATE, UPDATE, PARTIAL_UPDATE)
        responses: dict[int, str | None] = {code: f"{schema}Response" if code != 204 else None}
        params: tuple[Param, ...] = READ_PARAMS if verb == READ else ()
        if verb == LIST:
            responses = {200: f"Paginated{schema}ResponseList"}
            params = (*PAGE_PARAMS, *(p for f in resource.filters for p in f.params()))
        elif verb in resource.tasks:
            responses = {202: TASK_RESPONSE}
        out.append(
            Operation(
                f"{kind.operation}_{verb}",
                method,
                item if on_item else collection,
                item_doc if on_item else collection_doc,
                view(resource, verb),
                summary.format(title=kind.title).replace("ys", "ies"),
                params=params,
                path_param=kind.href_param if on_item else collection_param,
                load=load_item if on_item else load_collection,
                body=resource.fields if writes else None,
                partial=verb == PARTIAL_UPDATE,
                model=resource.model if writes else None,
                check=resource.check if writes else None,
                responses=responses,
            )
        )
    return out
