"""The standard operations of every resource in the table - list, create, read, update,
partial_update, delete - with Pulp's operationIds, paths and response codes."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from flask import Response, request
from sqlalchemy import select
from sqlalchemy.orm import Session

from pullthrough.api.bindings import Binding, Render
from pullthrough.api.kinds import API_ROOT, Kind
from pullthrough.api.listing import apply_filters, page, pick
from pullthrough.api.operations import (
    Call,
    Loader,
    Operation,
    View,
    by_id,
    json_response,
    task_answer,
)
from pullthrough.api.params import PAGE_PARAMS, READ_PARAMS, Param
from pullthrough.api.resources import (
    CREATE,
    DELETE,
    LIST,
    PARTIAL_UPDATE,
    READ,
    UPDATE,
)
from pullthrough.catalog.models import Repository, RepositoryVersion
from pullthrough.core.fields import INT_MAX
from pullthrough.services.tasks import Ref, TaskOutcome

TASK_RESPONSE = "AsyncOperationResponse"
ERRORS_RESPONSE = "ErrorListResponse"  # a refusal of the whole request: messages, as DRF's
Work = Callable[[Session, TaskOutcome], None]


def render(call: Call) -> Render:
    return Render(call.session, request.host_url)


def written(call: Call, binding: Binding, verb: str, work: Work, status: int) -> Response:
    """A write done in the request's transaction: answered with the object (`status`), or for
    the verbs the resource runs as tasks, 202 with a completed task recording it."""
    resource = binding.resource
    if verb in resource.tasks:
        task_verb = "update" if verb == PARTIAL_UPDATE else verb
        name = f"pullthrough.tasks.{resource.kind.label}.{task_verb}"
        # what it acts on, as Pulp records it: the object its path names (its href)
        reserved = [request.path] if verb in (UPDATE, PARTIAL_UPDATE, DELETE) else []
        return task_answer(call, name, work, reserved)
    call.changed()
    outcome = TaskOutcome()
    work(call.session, outcome)
    if outcome.result is None:
        return Response(status=status)
    return json_response(outcome.result, status)


def _list(binding: Binding, verb: str) -> View:
    def view(call: Call) -> Response:
        query = select(binding.model)
        if call.row is not None:  # what is below the repository its path names
            query = query.where(binding.model.repository_id == call.row.id)  # type: ignore[attr-defined]
        out = render(call)
        body = page(
            call.session,
            apply_filters(query, binding, call.session),
            lambda rows: binding.to_json_all(rows, out),
            binding,
        )
        return json_response(body)

    return view


def _read(binding: Binding, verb: str) -> View:
    return lambda call: json_response(pick(binding.to_json(call.row, render(call))))


def _create(binding: Binding, verb: str) -> View:
    def view(call: Call) -> Response:
        kind = binding.resource.kind

        def work(session: Session, outcome: TaskOutcome) -> None:
            values = {**binding.resource.create_defaults, **call.values}
            if binding.build is not None:
                row = binding.build(session, values)
            else:
                row = binding.model()
                binding.write_values(row, values)
            if binding.resource.parent is not None:  # below the repository its path names
                row.repository_id = call.row.id
            if binding.creator is not None:
                setattr(row, binding.creator, call.actor)
            session.add(row)
            session.flush()
            if binding.after_create is not None:
                binding.after_create(session, row)
            session.refresh(row)
            outcome.created.append(Ref(binding.resource.kind.label, row.id))
            outcome.result = binding.to_json(row, render(call))
            nested = binding.resource.parent is not None
            call.subject = outcome.result["pulp_href"] if nested else kind.href(row.id)

        return written(call, binding, verb, work, 201)

    return view


def _update(binding: Binding, verb: str) -> View:
    def view(call: Call) -> Response:
        def work(session: Session, outcome: TaskOutcome) -> None:
            binding.write_values(call.row, call.values)
            session.flush()
            session.refresh(call.row)
            outcome.result = binding.to_json(call.row, render(call))

        return written(call, binding, verb, work, 200)

    return view


def _delete(binding: Binding, verb: str) -> View:
    def view(call: Call) -> Response:
        def work(session: Session, outcome: TaskOutcome) -> None:
            if binding.before_delete is not None:
                binding.before_delete(session, call.row)
            session.delete(call.row)

        return written(call, binding, verb, work, 204)

    return view


# verb: its view, method, whether it acts on one object, its summary, its code when not a task
VERBS: dict[str, tuple[Callable[[Binding, str], View], str, bool, str, int]] = {
    LIST: (_list, "GET", False, "List {title}s", 200),
    CREATE: (_create, "POST", False, "Create a {title}", 201),
    READ: (_read, "GET", True, "Inspect a {title}", 200),
    UPDATE: (_update, "PUT", True, "Replace a {title}", 200),
    PARTIAL_UPDATE: (_update, "PATCH", True, "Update a {title}", 200),
    DELETE: (_delete, "DELETE", True, "Delete a {title}", 204),
}


def load_version(session: Session, path: Mapping[str, Any]) -> Any:
    """The loader of a repository version by the `<id>` and `<number>` in its path."""
    if path["number"] > INT_MAX:  # no such version, and beyond what the database compares
        return None
    query = select(RepositoryVersion).where(
        RepositoryVersion.repository_id == path["id"], RepositoryVersion.number == path["number"]
    )
    return session.scalar(query)


def _below(model: type[Any]) -> Loader:
    """The loader of an object below a repository, by the repository's `<id>` and its own
    `<item>` in the path."""
    return lambda session, path: session.scalar(
        select(model).where(model.id == path["item"], model.repository_id == path["id"])
    )


def operations(binding: Binding) -> list[Operation]:
    """The resource's standard operations, as Pulp names, places and answers them."""
    resource = binding.resource
    kind, schema = resource.kind, resource.kind.schema
    collection, collection_doc = kind.list_href, kind.list_href
    item, item_doc = collection + "<id>/", "{" + kind.href_param + "}"
    load_item: Loader = by_id(binding.model)
    load_collection: Loader | None = None
    collection_param = None
    if resource.parent is not None:  # below a repository: <repository href>versions/<n>/
        collection_param = resource.parent.kind.href_param
        below = kind.path.removeprefix(resource.parent.kind.path)  # "versions/"
        collection = resource.parent.kind.list_href + "<id>/" + below
        collection_doc = "{" + collection_param + "}" + below
        load_collection = by_id(Repository)
        if binding.model is RepositoryVersion:
            item, load_item = collection + "<int:number>/", load_version
        else:
            item, load_item = collection + "<item>/", _below(binding.model)
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
                view(binding, verb),
                summary.format(title=kind.title).replace("ys", "ies"),
                params=params,
                path_param=kind.href_param if on_item else collection_param,
                load=load_item if on_item else load_collection,
                body=resource.fields if writes else None,
                partial=verb == PARTIAL_UPDATE,
                model=binding.model if writes else None,
                check=binding.check if writes else None,
                responses=responses,
                redact=binding.redact,
            )
        )
    if kind.generic is not None and LIST in resource.verbs:
        out.append(_generic_list(kind, out[resource.verbs.index(LIST)]))
    return out


def _generic_list(kind: Kind, listed: Operation) -> Operation:
    """Core's list of every type (`repositories_list`): this server has one type of each, so
    it is the typed list at another path - the same objects, filters and schema."""
    path = API_ROOT + str(kind.generic)
    name = str(kind.generic).strip("/")
    return replace(
        listed,
        id=f"{name}_{LIST}",
        rule=path,
        doc_path=path,
        summary=f"List {name.replace('_', ' ')}",
        path_param=None,
        load=None,
    )
