"""The operations that are not CRUD, written by hand as in Pulp's ViewSets: modify a repository's
content, sync it, cancel a task, clean up orphans, upload content."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from datetime import timedelta
from typing import Any

from flask import Response, request
from sqlalchemy import select
from sqlalchemy.orm import Session

from pullthrough.api import kinds
from pullthrough.api.bindings import BINDINGS, CONTENT, TASKS, TOKENS, Binding, Render
from pullthrough.api.crud import ERRORS_RESPONSE, TASK_RESPONSE, load_version
from pullthrough.api.operations import (
    Call,
    Operation,
    ValidationError,
    View,
    address,
    by_id,
    invalid,
    json_response,
    resolve_all,
    task_answer,
)
from pullthrough.catalog.db import in_batches
from pullthrough.catalog.models import (
    ApiToken,
    Artifact,
    Base,
    Package,
    Repository,
    RepositoryVersion,
    Task,
    Upload,
    now,
)
from pullthrough.catalog.repository_blocklist import blocked_packages
from pullthrough.catalog.versions import (
    DistributedVersion,
    VersionGone,
    is_distributed,
    new_version,
)
from pullthrough.config import parse_moment
from pullthrough.core.chunks import ChunkRefused
from pullthrough.core.fields import Field
from pullthrough.core.labels import InvalidLabel, check_label
from pullthrough.core.repository_blocklist import PackagesBlocked
from pullthrough.core.tasks import FINAL_TASK_STATES
from pullthrough.services.chunked_uploads import UploadGone
from pullthrough.services.container import (
    DELETE_VERSION,
    ORPHAN_CLEANUP,
    PURGE_TASKS,
    REPAIR,
    SYNC,
)
from pullthrough.services.tasks import Ref, TaskOutcome, enqueue
from pullthrough.services.uploads import NO_ATTESTATIONS, UploadConflict, UploadRefused
from pullthrough.storage.store import from_start


def queued(
    call: Call, name: str, args: dict[str, object], reserved: Sequence[str] = ()
) -> Response:
    """A background task (`reserved`: what it acts on, as enqueue's): 202 with it."""
    task_id = enqueue(call.session, name, args, cid=call.cid, reserved=reserved)
    call.after.append(call.services.wake_workers)
    return json_response({"task": kinds.TASK.href(task_id)}, 202)


# ---- modify ---------------------------------------------------------------------------------

MODIFY = (
    Field("add_content_units", "array", href="content", help="Content hrefs to add."),
    Field("remove_content_units", "array", help="Content hrefs to remove ('*': all)."),
    Field(
        "base_version",
        "string",
        nullable=True,
        href="repository_version",
        help="A version href to start from.",
    ),
)


EVERYTHING = ["*"]  # remove_content_units: all the version holds


def _modify(session: Session, values: dict[str, object], repo: Repository) -> None:
    """`remove_content_units` as packages (EVERYTHING left as it is: what the version holds
    is read when it is made). A base version may be any repository's, as Pulp's."""
    removing = values.get("remove_content_units") or []
    assert isinstance(removing, list)
    if removing != EVERYTHING:
        values["remove_content_units"] = resolve_all(
            session, kinds.CONTENT.label, removing, "remove_content_units"
        )


def modify(call: Call) -> Response:
    repo: Repository = call.row
    adding = call.values.get("add_content_units") or []
    if repo.error_on_reject and (rejected := blocked_packages(call.session, repo.id, adding)):
        # As Pulp: refused at once (400, its ValidationError's list), before any task
        return json_response([str(PackagesBlocked(p.filename for p in rejected))], 400)
    add = {p.id for p in adding}
    # Pulp removes first, then adds: a unit in both lists (remove ["*"], add [X]) stays
    everything = call.values["remove_content_units"] == EVERYTHING
    remove = set() if everything else {p.id for p in call.values["remove_content_units"]} - add
    base: RepositoryVersion | None = call.values.get("base_version")

    def work(session: Session, outcome: TaskOutcome) -> None:
        try:  # from the base, if any: what it holds, changed as asked, whatever the latest holds
            version = new_version(
                session,
                repo.id,
                add=add,
                remove=remove,
                exactly=everything,
                base=None if base is None else base.number,
                base_repository=None if base is None else base.repository_id,
            )
        except VersionGone:  # deleted since the request named it
            raise invalid("base_version", "No such version (deleted meanwhile).") from None
        if version is not None:
            outcome.created.append(Ref(kinds.VERSION.label, repo.id, version.number))

    # Promoted into a repository: no longer cache, never evicted. The ledger tracks only
    # pull-through copies' bytes: one transaction each, not one for every package added.
    copies = select(Package.sha256).where(Package.origin == "cache")
    promoted = [
        sha
        for chunk in in_batches(sorted(add))
        for sha in call.session.scalars(copies.where(Package.id.in_(chunk)))
    ]

    def forget() -> None:
        for sha in promoted:
            call.services.ledger.forget(sha)

    call.after.append(forget)
    try:
        reserved = [kinds.REPOSITORY.href(repo.id)]
        return task_answer(call, "pullthrough.tasks.repository.modify", work, reserved)
    except PackagesBlocked as exc:  # a base version's package the blocklist names now
        call.after.clear()
        return json_response([str(exc)], 400)


# ---- sync -----------------------------------------------------------------------------------

SYNC_FIELDS = (
    Field("remote", "string", nullable=True, href="remote", help="Default: the repository's."),
    Field("mirror", "boolean", default=False, help="Remove what the remote no longer has."),
    Field("sync_policy", "string", choices=("additive", "mirror_complete", "mirror_content_only")),
)


def sync(call: Call) -> Response:
    repo: Repository = call.row
    remote = call.values.get("remote")
    remote_id = remote.id if remote is not None else repo.remote_id
    if remote_id is None:
        raise invalid("remote", "A remote must be given, or set on the repository.")
    policy = call.values.get("sync_policy", "additive")
    mirror = bool(call.values.get("mirror")) or policy != "additive"
    args = {"repository_id": repo.id, "remote_id": remote_id, "mirror": mirror}
    reserved = [kinds.REPOSITORY.href(repo.id), "shared:" + kinds.REMOTE.href(remote_id)]
    return queued(call, SYNC, args, reserved)


# ---- tasks: cancel --------------------------------------------------------------------------

CANCEL = (Field("state", "string", required=True, choices=("canceled",)),)


def cancel(call: Call) -> Response:
    task: Task = call.row
    # Read again under a row lock: a worker claiming the task meanwhile (PostgreSQL) commits
    # `running` first, then this sees it; else `canceled` overwrote `running`, and the task
    # ran to its end all the same.
    call.session.refresh(task, with_for_update=True)
    if task.state in FINAL_TASK_STATES:
        return json_response(
            {"detail": f"The task is already in a final state: {task.state}."}, 409
        )
    if task.state == "waiting":  # it ends now, as Pulp's: when it did too (a purge reads it)
        task.state, task.finished_at = "canceled", now()
    else:
        task.state = "canceling"
    return json_response(TASKS.to_json(task, Render(call.session, request.host_url)))


# ---- tasks: purge ---------------------------------------------------------------------------

PURGE = (
    Field(
        "finished_before",
        "string",
        format="date-time",
        clean=parse_moment,
        help="Purge the tasks that finished before this time (default: 30 days ago).",
    ),
    Field(
        "states",
        "array",
        item_choices=FINAL_TASK_STATES,
        help="Purge the tasks in these final states (default: completed).",
    ),
)


def purge(call: Call) -> Response:
    """`pulp task purge`, as Pulp's: a task that deletes the records of finished tasks."""
    before = call.values.get("finished_before") or (now() - timedelta(days=30)).isoformat()
    states = sorted(set(call.values.get("states", ["completed"])))
    return queued(call, PURGE_TASKS, {"finished_before": before, "states": states})


# ---- orphans --------------------------------------------------------------------------------

ORPHANS = (
    Field(
        "orphan_protection_time",
        "integer",
        nullable=True,
        minimum=0,
        maximum=10**8,  # minutes: 190 years (more would reach before the year 1)
        help="Minutes.",
    ),
    Field("content_hrefs", "array", href="content", help="Limit to these orphans."),
)


def orphans_cleanup(call: Call) -> Response:
    ids = [p.id for p in call.values.get("content_hrefs") or []] or None
    minutes = call.values.get("orphan_protection_time")
    return queued(call, ORPHAN_CLEANUP, {"orphan_protection_time": minutes, "content_ids": ids})


# ---- repair ---------------------------------------------------------------------------------

REPAIR_FIELDS = (
    Field(
        "verify_checksums",
        "boolean",
        default=True,
        help="Whether to check every stored file's sha256 (else look for missing files only).",
    ),
)


def repair_version(call: Call) -> Response:
    version: RepositoryVersion = call.row
    verify = call.values.get("verify_checksums", True)
    args = {"repository_id": version.repository_id, "number": version.number}
    reserved = [kinds.REPOSITORY.href(version.repository_id)]
    return queued(call, REPAIR, {**args, "verify_checksums": verify}, reserved)


def repair_all(call: Call) -> Response:
    verify = call.values.get("verify_checksums", True)
    return queued(call, REPAIR, {"repository_id": None, "verify_checksums": verify})


# ---- delete a version -------------------------------------------------------------------------


def delete_version(call: Call) -> Response:
    """A task, as Pulp's: a version a distribution serves is refused now (400, with Pulp's
    message as a list, as its ValidationError), the only version by the task."""
    version: RepositoryVersion = call.row
    if is_distributed(call.session, version):
        return json_response([str(DistributedVersion())], 400)
    args = {"repository_id": version.repository_id, "number": version.number}
    return queued(call, DELETE_VERSION, args, [kinds.REPOSITORY.href(version.repository_id)])


# ---- content upload -------------------------------------------------------------------------

UPLOAD = (
    Field(
        "file", "string", help="The distribution file (binary); or give an artifact or an upload."
    ),
    Field(
        "artifact",
        "string",
        href="artifact",
        help="An artifact href: the content is made from its bytes (relative_path required).",
    ),
    Field(
        "upload",
        "string",
        href="upload",
        help="An uncommitted upload href: the content is made from its chunks, and the upload"
        " goes (relative_path required).",
    ),
    Field("relative_path", "string", help="The file's name (default: the uploaded file's)."),
    Field("repository", "string", nullable=True, href="repository", help="Add it to this one."),
    Field("sha256", "string", help="The file's sha256, checked."),
    Field(
        "attestations",
        "string",
        help="Not supported: PEP 740 attestations are not kept, and a file sent with them is"
        " refused (400).",
    ),
    Field(
        "file_url",
        "string",
        help="Not supported: the server downloads no file for content from a URL (400).",
    ),
)
NO_FILE_URL = (
    "Not supported by pullthrough: it downloads no file for content from a URL; send the file"
    " (pulp-cli: --file), or sync it from a remote."
)


UPLOAD_TASK = "pullthrough.tasks.content.upload"
SOURCES = ("file", "upload", "artifact")  # what content is made from


def _one_source(session: Session, values: dict[str, Any], row: Any) -> None:
    """A file, an artifact or an upload (whose name the relative path gives), as Pulp's python
    plugin; not a URL to download it from (Pulp's `file_url`): refused, not ignored."""
    if "file_url" in values:
        raise invalid("file_url", NO_FILE_URL)
    if sum(source in values for source in SOURCES) != 1:
        sources = ", ".join(SOURCES)
        raise ValidationError(
            {"non_field_errors": [f"Exactly one of {sources} must be specified."]}
        )
    if "file" not in values and not values.get("relative_path"):
        raise invalid("relative_path", "This field is required.")
    if values.get("attestations", "").strip():  # as the legacy upload: not dropped unseen
        raise invalid("attestations", f"{NO_ATTESTATIONS} (pulp-cli: leave out --attestation).")


def upload(call: Call) -> Response:
    """Outside the request's transaction: the file is stored first (streamed, hash-checked),
    then catalogued in a transaction of its own. From an artifact, its stored bytes are
    uploaded as the file would be: the same checks, the same package and new version; so are
    an upload's chunks, once they are complete, and the upload goes."""
    svc = call.services
    artifact: Artifact | None = call.values.get("artifact")
    chunked: Upload | None = call.values.get("upload")
    with ExitStack() as held:
        if chunked is not None:
            try:
                stream = held.enter_context(svc.chunked_uploads.assembled(chunked.id))
            except (ChunkRefused, UploadGone) as exc:
                message = str(exc) if isinstance(exc, ChunkRefused) else "Removed meanwhile."
                raise invalid("upload", message) from None
            filename, field, digests = None, "upload", {}
        elif artifact is not None:
            # Read from now (on S3 a GET under way): an artifact deleted meanwhile is read whole
            opened = svc.store.open(artifact.sha256, read_from=from_start)
            if opened is None:
                raise invalid("artifact", "The artifact's file is not stored (removed meanwhile).")
            stream, filename, field = held.enter_context(opened.file), None, "artifact"
            digests = {"sha256": artifact.sha256}
        else:
            file = call.values["file"]
            stream, filename, field = file.stream, file.filename, "file"
            digests = {"sha256": call.values.get("sha256", "")}
        filename = call.values.get("relative_path") or filename
        if not filename:
            raise invalid("relative_path", "This field is required.")
        repo = call.values.get("repository")
        try:
            package, number = svc.uploads.upload(
                repo.id if repo is not None else None,
                stream,
                filename,
                digests=digests,
                actor=call.actor,
                address=address(),
            )
        except UploadConflict as exc:  # as the legacy upload's, and the API's other conflicts
            return json_response({"detail": str(exc)}, 409)
        except (UploadRefused, ChunkRefused) as exc:
            raise invalid(field, str(exc)) from None
    if chunked is not None:
        svc.chunked_uploads.discard(chunked.id)  # used, as Pulp: it cannot make more

    def work(session: Session, outcome: TaskOutcome) -> None:
        if repo is not None and number is not None:
            outcome.created.append(Ref(kinds.VERSION.label, repo.id, number))
        outcome.created.append(Ref(kinds.CONTENT.label, package.id))
        outcome.result = CONTENT.to_json(package, Render(session, request.host_url))

    with svc.catalog.session() as session:
        reserved = [kinds.REPOSITORY.href(repo.id)] if repo is not None else []
        answered = Call(svc, session, None, {}, call.cid, call.after)
        return task_answer(answered, UPLOAD_TASK, work, reserved)


def _action(
    kind: kinds.Kind,
    model: type[Base],
    name: str,
    view: View,
    summary: str,
    *,
    partial: bool = True,
    responses: dict[int, str | None] | None = None,
    **declared: Any,
) -> Operation:
    """`POST <href><name>/` on one object of `kind`: every field optional, answered with a
    task, unless said."""
    param = kind.href_param
    return Operation(
        f"{kind.operation}_{name}",
        "POST",
        f"{kind.list_href}<id>/{name}/",
        f"{{{param}}}{name}/",
        view,
        summary,
        path_param=param,
        load=by_id(model),
        partial=partial,
        responses=responses or {202: TASK_RESPONSE},
        **declared,
    )


def _repository_action(name: str, view: View, summary: str, **declared: Any) -> Operation:
    return _action(kinds.REPOSITORY, Repository, name, view, summary, **declared)


# ---- labels: set_label, unset_label (Pulp's LabelsMixin) ------------------------------------

SET_LABEL = (
    Field("key", "string", required=True, help="The label's key."),
    Field("value", "string", nullable=True, help="Its value (required; may be null)."),
)
UNSET_LABEL = (
    Field("key", "string", required=True, help="The label's key."),
    Field("value", "string", read_only=True, nullable=True, help="The value it had."),
)
# The answers' schemas, for the API document: what was set, what was removed.
SCHEMAS = {"SetLabelResponse": SET_LABEL, "UnsetLabelResponse": UNSET_LABEL}


def _settable(session: Session, values: dict[str, Any], row: Any) -> None:
    """A value given (null is one), and a label Pulp would take (else, as Pulp, an error of
    the whole body)."""
    if "value" not in values:
        raise invalid("value", "This field is required.")
    try:
        check_label(values["key"], values["value"])
    except InvalidLabel as exc:
        raise ValidationError({"non_field_errors": [str(exc)]}) from None


def set_label(call: Call) -> Response:
    """Sets one label, answered (201) with it, as Pulp does: read under a row lock, so two at
    once each keep the other's label."""
    call.session.refresh(call.row, with_for_update=True)
    key, value = call.values["key"], call.values["value"]
    call.row.pulp_labels = {**(call.row.pulp_labels or {}), key: value}  # a new object: seen
    return json_response({"key": key, "value": value}, 201)


def unset_label(call: Call) -> Response:
    """Removes one label, answered (201) with its key and the value it had; a key the object
    has no label of is a 400, as in Pulp."""
    call.session.refresh(call.row, with_for_update=True)
    key, labels = call.values["key"], dict(call.row.pulp_labels or {})
    if key not in labels:
        raise invalid("key", f"Label '{key}' is not set on the object.")
    value = labels.pop(key)
    call.row.pulp_labels = labels
    return json_response({"key": key, "value": value}, 201)


def _label_actions(binding: Binding) -> list[Operation]:
    kind, model = binding.resource.kind, binding.model
    return [
        _action(kind, model, "set_label", set_label, "Set a label", body=SET_LABEL,
                partial=False, check=_settable, responses={201: "SetLabelResponse"}),
        _action(kind, model, "unset_label", unset_label, "Unset a label", body=UNSET_LABEL,
                partial=False, responses={201: "UnsetLabelResponse"}),
    ]  # fmt: skip


def revoke(call: Call) -> Response:
    """A token stops working at once, and stays listed (with when it was revoked)."""
    call.subject = kinds.TOKEN.href(call.row.id)
    if call.row.revoked_at is None:
        call.row.revoked_at = now()
    call.session.flush()
    return json_response(TOKENS.to_json(call.row, Render(call.session, request.host_url)))


OPERATIONS = [
    _repository_action("modify", modify, "Add and remove content", body=MODIFY, check=_modify),
    _repository_action("sync", sync, "Sync from a remote", body=SYNC_FIELDS),
    Operation(
        "tasks_cancel",
        "PATCH",
        kinds.TASK.list_href + "<id>/",
        f"{{{kinds.TASK.href_param}}}",
        cancel,
        "Cancel a task",
        path_param=kinds.TASK.href_param,
        load=by_id(Task),
        body=CANCEL,
        responses={200: f"{kinds.TASK.schema}Response", 409: None},
    ),
    Operation(
        "tasks_purge",
        "POST",
        kinds.TASK.list_href + "purge/",
        kinds.TASK.list_href + "purge/",
        purge,
        "Purge the records of finished tasks",
        body=PURGE,
        partial=True,
        responses={202: TASK_RESPONSE},
    ),
    Operation(
        "orphans_cleanup_cleanup",
        "POST",
        kinds.API_ROOT + "orphans/cleanup/",
        kinds.API_ROOT + "orphans/cleanup/",
        orphans_cleanup,
        "Remove content in no repository version, and its files",
        body=ORPHANS,
        partial=True,
        responses={202: TASK_RESPONSE},
    ),
    Operation(
        f"{kinds.VERSION.operation}_repair",
        "POST",
        f"{kinds.REPOSITORY.list_href}<id>/versions/<int:number>/repair/",
        f"{{{kinds.VERSION.href_param}}}repair/",
        repair_version,
        "Repair the version's stored files",
        path_param=kinds.VERSION.href_param,
        load=load_version,
        body=REPAIR_FIELDS,
        partial=True,
        responses={202: TASK_RESPONSE},
    ),
    Operation(
        f"{kinds.VERSION.operation}_delete",
        "DELETE",
        f"{kinds.REPOSITORY.list_href}<id>/versions/<int:number>/",
        f"{{{kinds.VERSION.href_param}}}",
        delete_version,
        "Delete a repository version (its changes go into the next one)",
        path_param=kinds.VERSION.href_param,
        load=load_version,
        responses={202: TASK_RESPONSE, 400: ERRORS_RESPONSE},
    ),
    Operation(
        "repair_post",
        "POST",
        kinds.API_ROOT + "repair/",
        kinds.API_ROOT + "repair/",
        repair_all,
        "Repair every stored file",
        body=REPAIR_FIELDS,
        partial=True,
        responses={202: TASK_RESPONSE},
    ),
    Operation(
        f"{kinds.TOKEN.operation}_revoke",
        "POST",
        kinds.TOKEN.list_href + "<id>/revoke/",
        f"{{{kinds.TOKEN.href_param}}}revoke/",
        revoke,
        "Revoke a token",
        path_param=kinds.TOKEN.href_param,
        load=by_id(ApiToken),
        responses={200: f"{kinds.TOKEN.schema}Response"},
    ),
    *(op for b in BINDINGS if b.resource.labelled for op in _label_actions(b)),
    Operation(
        f"{kinds.CONTENT.operation}_create",
        "POST",
        kinds.CONTENT.list_href,
        kinds.CONTENT.list_href,
        upload,
        "Upload a python package",
        body=UPLOAD,
        check=_one_source,
        multipart=True,
        transaction=False,
        responses={202: TASK_RESPONSE, 409: None},
    ),
]
