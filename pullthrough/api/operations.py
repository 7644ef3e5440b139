"""API operations declared as data: routes, parameters, bodies and responses in one place, for the
Flask routes and the API document alike."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Response, g, json, request

from pullthrough.api.hrefs import BadHref
from pullthrough.api.schema import Field, ValidationError
from pullthrough.web.common import require_admin

JSON_TYPE = "application/json"


@dataclass(frozen=True)
class Param:
    name: str
    type: str = "string"
    array: bool = False
    explode: bool = True  # False: comma-joined (name__in=a,b)
    description: str = ""


@dataclass
class Operation:
    id: str  # Pulp's operationId
    method: str
    rule: str  # the Flask rule
    doc_path: str  # the path as the API document writes it
    view: Callable[..., Response]
    summary: str
    params: tuple[Param, ...] = ()
    path_param: str | None = None  # the document's name for the href in doc_path
    body: tuple[Field, ...] | None = None
    multipart: bool = False
    responses: dict[int, str | None] = field(default_factory=dict)  # code -> schema name
    auth: bool = True


OPERATIONS: list[Operation] = []

READ_PARAMS = (
    Param("fields", array=True, description="A list of fields to include in the response."),
    Param("exclude_fields", array=True, description="A list of fields to exclude."),
)
PAGE_PARAMS = (
    Param("offset", "integer", description="The initial index from which to return the results."),
    Param("limit", "integer", description="Number of results to return per page."),
    Param("ordering", array=True, explode=False, description="Order by these fields."),
    *READ_PARAMS,
)


def operation(
    op_id: str, method: str, rule: str, doc_path: str, summary: str, **kwargs: Any
) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
    def register(view: Callable[..., Response]) -> Callable[..., Response]:
        OPERATIONS.append(Operation(op_id, method, rule, doc_path, view, summary, **kwargs))
        return view

    return register


def json_response(body: object, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype=JSON_TYPE)


def body_json() -> Any:
    data = request.get_json(silent=True)
    if data is None:
        raise ValidationError({"non_field_errors": ["Expected a JSON object in the request body."]})
    return data


def blueprint() -> Blueprint:
    bp = Blueprint("api", __name__)

    @bp.before_request
    def correlation() -> None:
        g.correlation_id = request.headers.get("Correlation-ID") or uuid.uuid4().hex

    @bp.after_request
    def echo_correlation(resp: Response) -> Response:
        resp.headers["Correlation-ID"] = g.get("correlation_id", "")
        return resp

    @bp.errorhandler(ValidationError)
    def invalid(exc: ValidationError) -> Response:
        return json_response(exc.errors, 400)

    @bp.errorhandler(BadHref)
    def bad_href(exc: BadHref) -> Response:
        return json_response({"non_field_errors": [str(exc)]}, 400)

    for op in OPERATIONS:
        bp.add_url_rule(op.rule, op.id, _guarded(op), methods=[op.method])
    return bp


def _guarded(op: Operation) -> Callable[..., Response]:
    def view(**kwargs: Any) -> Response:
        if op.auth:
            require_admin()
        return op.view(**kwargs)

    view.__name__ = op.id
    return view
