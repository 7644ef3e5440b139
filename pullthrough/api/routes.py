"""Every operation of the REST API, listed: the resource table's CRUD, the hand-written actions,
status and the API document."""

from __future__ import annotations

from flask import Blueprint

from pullthrough.api import (
    actions,
    artifacts,
    crud,
    openapi,
    operations,
    status,
    unsupported,
    uploads,
)
from pullthrough.api.bindings import BINDINGS


def all_operations() -> list[operations.Operation]:
    listed = [op for binding in BINDINGS for op in crud.operations(binding)]
    listed += [*actions.OPERATIONS, *artifacts.OPERATIONS, *uploads.OPERATIONS, status.STATUS]
    listed += unsupported.operations()
    return [*listed, openapi.document_operation(listed)]


def blueprint() -> Blueprint:
    return operations.blueprint(all_operations())
