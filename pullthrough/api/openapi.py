"""The API document (/pulp/api/v3/docs/api.json), generated from the operations and the
resource table.

pulp-cli reads it to find operations, parameters, body schemas, response codes and which
operations need credentials, and `info.x-pulp-app-versions` for its version checks; it is served
without credentials. The versions claimed are the Pulp releases whose API this one follows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flask import Response, json

from pullthrough import __version__
from pullthrough.api.actions import SCHEMAS
from pullthrough.api.bindings import BINDINGS
from pullthrough.api.crud import ERRORS_RESPONSE
from pullthrough.api.kinds import API_ROOT
from pullthrough.api.operations import JSON_TYPE, Call, Operation
from pullthrough.api.params import Param
from pullthrough.core.fields import Field

# The Pulp API this server follows (pulp-cli gates features on these), and our own version.
APP_VERSIONS = {"core": "3.123.0", "python": "3.36.0", "pullthrough": __version__}
SECURITY: list[dict[str, list[str]]] = [{"basicAuth": []}]
_DESCRIPTIONS = {
    200: "OK",
    201: "Created",
    202: "Accepted: the work runs as the task named in the body",
    204: "No content",
    400: "Invalid: the body or a parameter, with a message for each",
    401: "Credentials needed",
    404: "Not found",
    409: "Conflict",
}


def _object(fields: Sequence[Field], *, request: bool, partial: bool = False) -> dict[str, Any]:
    shown = [f for f in fields if not (f.read_only if request else f.write_only)]
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {f.name: f.schema() for f in shown},
    }
    required = [f.name for f in shown if f.required and request and not partial]
    if required:
        schema["required"] = required
    return schema


def _components() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for resource in (binding.resource for binding in BINDINGS):  # every resource has one
        name = resource.kind.schema
        schemas[name] = _object(resource.fields, request=True)
        schemas[f"{name}Response"] = _object(resource.fields, request=False)
        schemas[f"Paginated{name}ResponseList"] = {
            "type": "object",
            "required": ["count", "results"],
            "properties": {
                "count": {"type": "integer"},
                "next": {"type": "string", "format": "uri", "nullable": True},
                "previous": {"type": "string", "format": "uri", "nullable": True},
                "results": {
                    "type": "array",
                    "items": {"$ref": f"#/components/schemas/{name}Response"},
                },
            },
        }
    for name, fields in SCHEMAS.items():  # the answers of the actions that are not a resource
        schemas[name] = _object(fields, request=False)
    schemas["AsyncOperationResponse"] = {
        "type": "object",
        "required": ["task"],
        "properties": {"task": {"type": "string", "format": "uri-reference"}},
    }
    schemas["ValidationErrorResponse"] = {
        "type": "object",
        "description": "Field name (or non_field_errors) to messages.",
        "additionalProperties": {"type": "array", "items": {"type": "string"}},
    }
    schemas[ERRORS_RESPONSE] = {"type": "array", "items": {"type": "string"}}
    schemas["NotFoundResponse"] = {
        "type": "object",
        "required": ["detail"],
        "properties": {"detail": {"type": "string"}},
    }
    schemas["StatusResponse"] = {"type": "object", "additionalProperties": True}
    return {
        "schemas": schemas,
        "securitySchemes": {"basicAuth": {"type": "http", "scheme": "basic"}},
    }


def _parameter(param: Param) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": param.type}
    if param.format:
        schema["format"] = param.format
    if param.choices:
        schema["enum"] = list(param.choices)
    if param.minimum is not None:
        schema["minimum"] = param.minimum
    if param.maximum is not None:
        schema["maximum"] = param.maximum
    if param.array:
        schema = {"type": "array", "items": schema}
    out: dict[str, Any] = {"name": param.name, "in": param.location, "schema": schema}
    if param.required:
        out["required"] = True
    if param.array:
        out["style"], out["explode"] = "form", param.explode
    if param.description:
        out["description"] = param.description
    return out


def _operation(op: Operation) -> dict[str, Any]:
    out: dict[str, Any] = {
        "operationId": op.id,
        "summary": op.summary,
        "tags": [op.id.split("_")[0]],
    }
    parameters = [_parameter(p) for p in op.params]
    if op.path_param:
        parameters.insert(
            0, {"name": op.path_param, "in": "path", "required": True, "schema": {"type": "string"}}
        )
    if parameters or op.method == "GET":
        out["parameters"] = parameters
    if op.body is not None:
        body = _object(op.body, request=True, partial=op.partial)
        if op.multipart:
            body["properties"]["file"] = {"type": "string", "format": "binary"}
            content = {"multipart/form-data": {"schema": body}}
        else:
            content = {JSON_TYPE: {"schema": body}}
        out["requestBody"] = {"content": content, "required": op.method in ("POST", "PUT")}
    responses: dict[str, Any] = {}
    for code, name in (op.responses | _errors(op)).items():
        entry: dict[str, Any] = {"description": _DESCRIPTIONS.get(code, "Response")}
        if name is not None:
            entry["content"] = {JSON_TYPE: {"schema": {"$ref": f"#/components/schemas/{name}"}}}
        responses[str(code)] = entry
    out["responses"] = responses
    if op.auth:
        out["security"] = SECURITY
    return out


def _errors(op: Operation) -> dict[int, str | None]:
    """The refusals an operation may answer with besides its own codes."""
    errors: dict[int, str | None] = {}
    if op.body is not None or op.params:
        errors[400] = "ValidationErrorResponse"
    if op.auth:
        errors[401] = None  # text/plain, with a Basic challenge
    if op.load is not None:
        errors[404] = "NotFoundResponse"
    return errors


def document(operations: Sequence[Operation]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(op.doc_path, {})[op.method.lower()] = _operation(op)
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "pullthrough API",
            "version": __version__,
            "description": "A Python package index server; Pulp python plugin shaped REST API.",
            "x-pulp-app-versions": APP_VERSIONS,
            "x-pulp-domain-enabled": False,
        },
        "paths": paths,
        "components": _components(),
    }


def document_operation(operations: Sequence[Operation]) -> Operation:
    """The operation serving the document of `operations` (itself included)."""
    rendered: list[bytes] = []

    def view(call: Call) -> Response:
        if not rendered:  # the operations do not change while the process runs
            rendered.append(json.dumps(document([*operations, op])).encode())
        return Response(rendered[0], mimetype=JSON_TYPE)

    path = API_ROOT + "docs/api.json"
    op = Operation(
        "docs_api_json",
        "GET",
        path,
        path,
        view,
        "This API's OpenAPI document",
        auth=False,
        transaction=False,
        responses={200: "StatusResponse"},
    )
    return op
