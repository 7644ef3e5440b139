"""Pulp core's chunked uploads, the operations that are not generated: a chunk (`PUT <upload>`,
multipart `file` and `sha256`, header `Content-Range`), commit (`POST <upload>commit/`: a task
making an artifact) and delete, as pulpcore's UploadViewSet. Create, list and read are the
resource table's (api.resources); access is the artifacts' (the admin's)."""

from __future__ import annotations

from flask import Response, request

from pullthrough.api import kinds
from pullthrough.api.actions import queued
from pullthrough.api.bindings import UPLOADS, Render
from pullthrough.api.crud import TASK_RESPONSE
from pullthrough.api.operations import (
    NOT_FOUND,
    Call,
    Operation,
    ValidationError,
    address,
    by_id,
    json_response,
)
from pullthrough.api.params import Param
from pullthrough.catalog.models import Upload
from pullthrough.core.chunks import ChunkRefused, check_complete
from pullthrough.core.fields import Field
from pullthrough.services.chunked_uploads import COMMIT, UploadGone

CONTENT_RANGE = Param(
    "Content-Range",
    location="header",
    required=True,
    description="The Content-Range header specifies the location of the file chunk within the"
    " file: bytes START-END/SIZE.",
)
CHUNK = (
    Field("file", "string", required=True, help="A chunk of the uploaded file."),
    Field("sha256", "string", nullable=True, help="The SHA-256 checksum of the chunk, checked."),
)
FINISH = (Field("sha256", "string", required=True, help="The expected sha256 of the file."),)


def update(call: Call) -> Response:
    """Outside the request's transaction: the chunk is stored (hashed), then recorded."""
    svc = call.services
    upload: Upload = call.row
    try:
        svc.chunked_uploads.add_chunk(
            upload.id,
            call.values["file"].stream,
            request.headers.get("Content-Range"),
            call.values.get("sha256"),
            actor=call.actor,
            subject=KIND.href(upload.id),
            address=address(),
        )
    except ChunkRefused as exc:
        raise ValidationError({"non_field_errors": [str(exc)]}) from None
    except UploadGone:
        return json_response(NOT_FOUND, 404)
    with svc.catalog.reading() as session:
        row = session.get(Upload, upload.id)
        if row is None:  # committed or deleted since
            return json_response(NOT_FOUND, 404)
        return json_response(UPLOADS.to_json(row, Render(session, request.host_url)))


def commit(call: Call) -> Response:
    """A task (any worker, any node) makes the artifact; the upload goes when it has. Chunks
    that do not make the whole file are a 400 now, as content made of the upload answers:
    Pulp's task would fail on them (its checksum), nothing else could come of it."""
    upload: Upload = call.row
    try:
        check_complete([(chunk.offset, chunk.size) for chunk in upload.chunks], upload.size)
    except ChunkRefused as exc:
        raise ValidationError({"non_field_errors": [str(exc)]}) from None
    args = {
        "upload_id": call.row.id,
        "sha256": call.values["sha256"],
        "actor": call.actor,
        "address": address(),
        "artifacts": kinds.ARTIFACT.list_href,
    }
    return queued(call, COMMIT, args)


def delete(call: Call) -> Response:
    try:
        call.services.chunked_uploads.delete(
            call.row.id, actor=call.actor, subject=KIND.href(call.row.id), address=address()
        )
    except UploadGone:
        return json_response(NOT_FOUND, 404)
    return Response(status=204)


KIND = kinds.UPLOAD
ITEM, ITEM_DOC = KIND.list_href + "<id>/", f"{{{KIND.href_param}}}"
OPERATIONS = [
    Operation(
        f"{KIND.operation}_update",
        "PUT",
        ITEM,
        ITEM_DOC,
        update,
        "Upload a file chunk",
        params=(CONTENT_RANGE,),
        path_param=KIND.href_param,
        load=by_id(Upload),
        body=CHUNK,
        multipart=True,
        transaction=False,
        responses={200: f"{KIND.schema}Response"},
    ),
    Operation(
        f"{KIND.operation}_commit",
        "POST",
        ITEM + "commit/",
        ITEM_DOC + "commit/",
        commit,
        "Finish an upload: a task makes an artifact of it",
        path_param=KIND.href_param,
        load=by_id(Upload),
        body=FINISH,
        responses={202: TASK_RESPONSE},
    ),
    Operation(
        f"{KIND.operation}_delete",
        "DELETE",
        ITEM,
        ITEM_DOC,
        delete,
        "Delete an upload and its chunks",
        path_param=KIND.href_param,
        load=by_id(Upload),
        transaction=False,
        responses={204: None},
    ),
]
