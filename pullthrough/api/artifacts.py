"""Pulp core's artifacts, the operations that are not generated: create (a multipart upload of
the bytes, answered 201 with the artifact) and delete (204; 409 while content uses it), as
pulpcore's ArtifactViewSet. Listing and reading are the resource table's (api.resources)."""

from __future__ import annotations

from flask import Response, request

from pullthrough.api import kinds
from pullthrough.api.bindings import ARTIFACTS, Render
from pullthrough.api.operations import (
    Call,
    Operation,
    ValidationError,
    address,
    by_id,
    json_response,
)
from pullthrough.catalog.models import Artifact
from pullthrough.core.digests import NAMED as DIGESTS
from pullthrough.core.fields import Field
from pullthrough.services.artifacts import ArtifactInUse, ArtifactRefused

CREATE = (
    Field("file", "string", required=True, help="The file (binary)."),
    *(Field(d, "string", nullable=True, help=f"The file's {d}, checked.") for d in DIGESTS),
)


def create(call: Call) -> Response:
    """Outside the request's transaction: the bytes are stored (streamed, hashed), then
    recorded in a transaction of their own."""
    svc = call.services
    digests = {d: call.values[d] for d in DIGESTS if call.values.get(d)}
    try:
        artifact = svc.artifacts.create(
            call.values["file"].stream,
            digests=digests,
            actor=call.actor,
            subject=kinds.ARTIFACT.href,
            address=address(),
        )
    except ArtifactRefused as exc:
        raise ValidationError({"non_field_errors": [str(exc)]}) from None
    with svc.catalog.reading() as session:
        return json_response(ARTIFACTS.to_json(artifact, Render(session, request.host_url)), 201)


def delete(call: Call) -> Response:
    try:
        call.services.artifacts.delete(
            call.row, actor=call.actor, subject=kinds.ARTIFACT.href, address=address()
        )
    except ArtifactInUse as exc:
        return json_response({"detail": str(exc)}, 409)
    return Response(status=204)


KIND = kinds.ARTIFACT
OPERATIONS = [
    Operation(
        f"{KIND.operation}_create",
        "POST",
        KIND.list_href,
        KIND.list_href,
        create,
        "Create an artifact",
        body=CREATE,
        multipart=True,
        transaction=False,
        responses={201: f"{KIND.schema}Response"},
    ),
    Operation(
        f"{KIND.operation}_delete",
        "DELETE",
        KIND.list_href + "<id>/",
        f"{{{KIND.href_param}}}",
        delete,
        "Delete an artifact no content uses",
        path_param=KIND.href_param,
        load=by_id(Artifact),
        transaction=False,
        responses={204: None, 409: None},
    ),
]
