"""API operations as data: route, parameters, body and responses in one place, for the Flask
routes and the API document alike.

Everything a view needs is checked before it runs: credentials, the object its path names (404
`Not found.`), and the body - types, choices, uniqueness, and hrefs resolved to the objects they
name (400 with DRF-style field messages). A view gets a `Call` and only does the work, in the
same transaction as the checks: it commits when the view returns, and nothing is written when a
check or the view fails.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from flask import Blueprint, Response, abort, current_app, g, json, request
from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.datastructures import FileStorage

from pullthrough.api.kinds import (
    ARTIFACT,
    CONTENT,
    DISTRIBUTION,
    PUBLICATION,
    REMOTE,
    REPOSITORY,
    TASK,
    UPLOAD,
    VERSION,
    BadHref,
    Kind,
    parse_version,
)
from pullthrough.api.params import Param
from pullthrough.catalog.db import in_batches
from pullthrough.catalog.models import (
    Artifact,
    Base,
    Distribution,
    Package,
    Publication,
    Remote,
    Repository,
    RepositoryVersion,
    Task,
    Upload,
    width,
)
from pullthrough.core.access import Principal
from pullthrough.core.fields import Field
from pullthrough.services import audit
from pullthrough.services.container import EXTENSION, Services
from pullthrough.services.tasks import TaskOutcome, record_completed

JSON_TYPE = "application/json"
HIDDEN = "********"  # a secret's place in a value shown: credentials in URLs, header values
NOT_FOUND = {"detail": "Not found."}
NOT_A_FILE = "The submitted data was not a file. Check the encoding type on the form."  # DRF's
NULL_CHARACTERS = "Null characters are not allowed."  # DRF's, for every string field


class ValidationError(Exception):
    """Field errors, sent as 400 `{"field": ["message", ...]}`."""

    def __init__(self, errors: Mapping[str, list[str]]) -> None:
        super().__init__(dict(errors))
        self.errors = dict(errors)


def invalid(field: str, message: str) -> ValidationError:
    return ValidationError({field: [message]})


@dataclass
class Call:
    """One request, checked: what the path names and what the body says."""

    services: Services
    transaction: Session | None  # None for operations that manage their own (uploads)
    row: Any  # the object the path names, or None
    values: dict[str, Any]  # the body's fields, validated; hrefs replaced by their objects
    cid: str  # the correlation id
    after: list[Callable[[], None]] = field(default_factory=list)  # once committed
    principal: Principal | None = None  # who asks (None: an operation open to anyone)
    subject: str = ""  # what a write changed, for the audit trail (default: the path's object)

    @property
    def actor(self) -> str:
        return self.principal.actor if self.principal is not None else "anonymous"

    @property
    def session(self) -> Session:
        if self.transaction is None:
            raise RuntimeError("this operation runs outside the request's transaction")
        return self.transaction

    def changed(self) -> None:
        """The catalog changes: every process reloads its view of the distributions."""
        self.after.append(self.services.registry.changed)


View = Callable[[Call], Response]
Loader = Callable[[Session, Mapping[str, Any]], Any]
Check = Callable[[Session, dict[str, Any], Any], None]


@dataclass
class Operation:
    id: str  # Pulp's operationId
    method: str
    rule: str  # the Flask rule
    doc_path: str  # the path as the API document writes it
    view: View
    summary: str
    params: tuple[Param, ...] = ()
    path_param: str | None = None  # the document's name for the href in doc_path
    load: Loader | None = None  # the object the path names (None: 404)
    body: tuple[Field, ...] | None = None
    partial: bool = False  # PATCH: no field is required
    model: type[Base] | None = None  # where `unique` fields must be unique
    check: Check | None = None  # what the fields cannot say alone (cross-field rules)
    multipart: bool = False
    # False: the view runs after the checks' transaction has ended, for views that take long or
    # open sessions of their own (SQLite would make a second one wait for the first).
    transaction: bool = True
    responses: dict[int, str | None] = field(default_factory=dict)  # code -> schema name
    auth: bool = True  # for the admin (or a token with the admin scope) only
    redact: Callable[[dict[str, Any]], dict[str, Any]] | None = None  # secrets in given values


def json_response(body: object, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype=JSON_TYPE)


def task_answer(
    call: Call,
    name: str,
    work: Callable[[Session, TaskOutcome], None],
    reserved: Sequence[str] = (),
) -> Response:
    """A quick write, done now in `call`'s transaction and recorded as a completed task: 202
    with the task, as Pulp answers its writes. `reserved`: what it acts on (record_completed)."""
    call.changed()
    task_id = record_completed(call.session, name, work, cid=call.cid, reserved=reserved)
    return json_response({"task": TASK.href(task_id)}, 202)


def by_id(model: type[Base]) -> Loader:
    """The loader of an object by the `<id>` in its path: its `id` column (a worker's is not its
    primary key)."""
    column = inspect(model).columns["id"]
    return lambda session, path: session.scalar(select(model).where(column == path["id"]))


def services() -> Services:
    return cast(Services, current_app.extensions[EXTENSION])


# ---- references ---------------------------------------------------------------------------


def _version(session: Session, value: object) -> RepositoryVersion | None:
    repository_id, number = parse_version(value)
    query = select(RepositoryVersion).where(
        RepositoryVersion.repository_id == repository_id, RepositoryVersion.number == number
    )
    return session.scalar(query)


def _getter(model: type[Base], kind: Kind) -> Callable[[Session, object], Any]:
    return lambda session, value: session.get(model, kind.parse(value))


# The kinds whose href holds a row's primary key, with their tables
TABLES: dict[str, tuple[type[Base], Kind]] = {
    kind.label: (model, kind)
    for model, kind in (
        (Repository, REPOSITORY),
        (Remote, REMOTE),
        (Distribution, DISTRIBUTION),
        (Publication, PUBLICATION),
        (Package, CONTENT),
        (Artifact, ARTIFACT),
        (Upload, UPLOAD),
    )
}
RESOLVERS: dict[str, Callable[[Session, object], Any]] = {
    **{label: _getter(model, kind) for label, (model, kind) in TABLES.items()},
    VERSION.label: _version,
}


def resolve(session: Session, kind: str, value: object, field: str) -> Any:
    """The object an href names; a 400 for `field` if it is malformed or names nothing."""
    try:
        found = RESOLVERS[kind](session, value)
    except BadHref as exc:
        raise invalid(field, str(exc)) from None
    if found is None:
        raise invalid(field, f"Invalid hyperlink - Object does not exist: {value}")
    return found


def resolve_all(session: Session, kind: str, values: Sequence[object], field: str) -> list[Any]:
    """The objects a list of hrefs names, in its order, read IN_BATCH at a time (a modify may
    list tens of thousands); the 400 of `resolve` for the first that is malformed or names
    nothing."""
    if kind not in TABLES:
        return [resolve(session, kind, v, field) for v in values]
    model, of = TABLES[kind]
    ids: list[str] = []
    for value in values:
        try:
            ids.append(of.parse(value))
        except BadHref as exc:
            resolve_all(session, kind, values[: len(ids)], field)  # one before it names nothing
            raise invalid(field, str(exc)) from None
    key = inspect(model).primary_key[0]
    found = {
        getattr(row, key.name): row
        for chunk in in_batches(sorted(set(ids)))
        for row in session.scalars(select(model).where(key.in_(chunk)))
    }
    for value, id_ in zip(values, ids, strict=True):
        if id_ not in found:
            raise invalid(field, f"Invalid hyperlink - Object does not exist: {value}")
    return [found[id_] for id_ in ids]


# ---- validation ---------------------------------------------------------------------------


def _body() -> dict[str, Any]:
    try:
        data = request.get_json(silent=True)
    except RecursionError:  # nested deeper than the parser goes: not an object we could use
        data = "too deeply nested JSON"
    if not isinstance(data, dict):
        kind = "nothing" if data is None else type(data).__name__
        raise ValidationError(
            {"non_field_errors": [f"Invalid data. Expected a JSON object, got {kind}."]}
        )
    return data


def _multipart() -> dict[str, Any]:
    """A form's fields and files, by name (an empty field is a missing one)."""
    fields = {k: v for k, v in request.form.to_dict().items() if v != ""}
    return {**fields, **request.files.to_dict()}


def _holds_null(value: object) -> bool:
    """Whether a value of a query or a body, or any string inside it, holds a NUL character."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, Mapping):
        return any(_holds_null(k) or _holds_null(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_null(item) for item in value)
    return False  # numbers, booleans, null, a form's file part


def refuse_null_characters(args: Mapping[str, Sequence[str]], body: Mapping[str, Any]) -> None:
    """A 400 naming the query parameters and body fields that hold a NUL character, as DRF
    refuses them in every string field: no text column of PostgreSQL can hold one (psycopg
    refuses to send it), so a name, a filter or a description with one was a 500 there."""
    errors = {key: [NULL_CHARACTERS] for key, values in args.items() if _holds_null(values)}
    errors |= {str(key): [NULL_CHARACTERS] for key, value in body.items() if _holds_null(value)}
    if errors:
        raise ValidationError(errors)


def validate(session: Session, op: Operation, body: Mapping[str, Any], row: Any) -> dict[str, Any]:
    """The body's writable fields, checked; unknown and read-only keys are ignored (as DRF)."""
    assert op.body is not None
    errors: dict[str, list[str]] = {}
    values: dict[str, Any] = {}
    for declared in op.body:
        if declared.read_only:
            continue
        if declared.name not in body:
            if declared.required and not op.partial:
                errors[declared.name] = ["This field is required."]
            continue
        value = body[declared.name]
        try:
            if not (op.multipart and declared.name == "file"):
                value = declared.validate(value)
            elif not isinstance(value, FileStorage):  # a form's text field, not a file part
                raise ValueError(NOT_A_FILE)
            if isinstance(value, str) and len(value) > (most := width(op.model, declared.name)):
                raise ValueError(f"Ensure this field has no more than {most} characters.")
            if declared.href and isinstance(value, list):
                value = resolve_all(session, declared.href, value, declared.name)
            elif declared.href and value is not None:
                value = resolve(session, declared.href, value, declared.name)
            if declared.unique and op.model is not None:
                key, column = inspect(op.model).primary_key[0], getattr(op.model, declared.name)
                existing = session.scalar(select(key).where(column == value))
                if existing is not None and (row is None or existing != row.id):
                    raise ValueError("This field must be unique.")
        except ValidationError as exc:
            errors.update(exc.errors)
            continue
        except ValueError as exc:
            errors[declared.name] = [str(exc)]
            continue
        values[declared.name] = value
    if errors:
        raise ValidationError(errors)
    if op.check is not None:
        op.check(session, values, row)
    return values


def _checked(op: Operation) -> Callable[..., Response]:
    """The Flask view: credentials, then the path's object, then the body, then op.view."""

    def view(**path: Any) -> Response:
        svc = services()
        principal = None
        if op.auth:
            principal = svc.auth.require_admin(request.headers.get("Authorization"), address())
        body = None
        if op.body is not None:
            body = _multipart() if op.multipart else _body()
        # (an operation without parameters reads no query: its arguments are ignored)
        refuse_null_characters(request.args.to_dict(flat=False) if op.params else {}, body or {})
        if _holds_null(path):  # an id no object has (PostgreSQL could not even look it up)
            abort(json_response(NOT_FOUND, 404))
        call = Call(svc, None, None, {}, g.get("correlation_id", ""), principal=principal)
        if op.transaction or op.load is not None or body is not None:
            # A GET reads: it does not wait for a writer (a sync's commit), nor hold one up.
            begin = svc.catalog.reading if op.method == "GET" else svc.catalog.session
            with begin() as session:
                if op.load is not None and (row := op.load(session, path)) is None:
                    abort(json_response(NOT_FOUND, 404))
                call.row = row if op.load is not None else None
                if body is not None:
                    call.values = validate(session, op, body, call.row)
                if op.transaction:
                    call.transaction = session
                    response = op.view(call)
                    if op.method != "GET" and response.status_code < 400:
                        _audit(session, op, call, body or {})
        if not op.transaction:
            response = op.view(call)
        for then in call.after:
            then()
        return response

    view.__name__ = op.id
    return view


def address() -> str:
    """The client's address (behind the nginx front: the one it saw)."""
    return services().auth.client_address(
        request.remote_addr, request.headers.get("X-Forwarded-For")
    )


def _audit(session: Session, op: Operation, call: Call, body: Mapping[str, Any]) -> None:
    """Record a write in the write's own transaction (they stand or fall together): the
    operation, what it changed, and the fields the request gave (secrets shown as HIDDEN)."""
    detail = {
        f.name: HIDDEN if f.write_only else body[f.name]
        for f in op.body or ()
        if f.name in body and not f.read_only and not (op.multipart and f.name == "file")
    }
    if op.redact is not None:
        detail = op.redact(detail)
    subject = call.subject or (request.path if op.load is not None else "")
    audit.record(session, call.actor, op.id, subject, address=address(), detail=detail)


def blueprint(operations: list[Operation]) -> Blueprint:
    bp = Blueprint("api", __name__)

    @bp.before_request
    def correlation() -> None:
        given = request.headers.get("Correlation-ID", "")
        # kept with the tasks it starts: one too wide for that is replaced, as a missing one
        g.correlation_id = (
            given if 0 < len(given) <= width(Task, "logging_cid") else uuid.uuid4().hex
        )

    @bp.after_request
    def echo_correlation(resp: Response) -> Response:
        resp.headers["Correlation-ID"] = g.get("correlation_id", "")
        return resp

    @bp.errorhandler(ValidationError)
    def refused(exc: ValidationError) -> Response:
        return json_response(exc.errors, 400)

    @bp.errorhandler(IntegrityError)
    def conflict(exc: IntegrityError) -> Response:
        """What the request checked changed before it committed (a package evicted while
        being added, a name taken at the same moment): nothing was written; try again."""
        detail = "Conflict: the catalog changed while this request ran; nothing was changed."
        return json_response({"detail": detail}, 409)

    for op in operations:
        bp.add_url_rule(op.rule, op.id, _checked(op), methods=[op.method])
    return bp
