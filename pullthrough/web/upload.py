"""The upload endpoint twine talks to: POST /pypi/<base_path>/legacy/ (PyPI's legacy API), and
POST /pypi/<base_path>/simple/ as well: Pulp takes uploads at the index URL too (one URL for
every tool, as its guide has `twine upload --repository-url .../simple/`)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from pullthrough.core.filenames import InvalidFilename, parse_filename
from pullthrough.services.uploads import NO_ATTESTATIONS
from pullthrough.web.common import (
    address,
    authorization,
    distribution,
    plain_with_reason,
    services,
)

bp = Blueprint("upload", __name__)


_text = plain_with_reason  # twine prints only the status line: the reason goes there too


@bp.errorhandler(RequestEntityTooLarge)
def too_large(_: RequestEntityTooLarge) -> Response:
    """Which limits an upload passed (werkzeug's answer names none of them)."""
    config = current_app.config
    return _text(
        f"Upload too large: at most {config['MAX_CONTENT_LENGTH']} bytes"
        f" (server.max_upload_size), a form field at most {config['MAX_FORM_MEMORY_SIZE']}"
        f" bytes, at most {config['MAX_FORM_PARTS']} fields",
        413,
    )


@bp.post("/pypi/<path:base_path>/legacy/")
@bp.post("/pypi/<path:base_path>/simple/")
def legacy_upload(base_path: str) -> Response:
    svc = services()
    principal = svc.auth.require(authorization(), address())
    dist = distribution(base_path, reading=False)
    if (why := principal.upload_refusal(dist.base_path)) is not None:  # before reading the file
        return _text(f"Forbidden: {why}", 403)
    if not dist.allow_uploads:
        return _text(f"Uploads are not allowed to distribution {dist.base_path!r}", 403)
    if dist.repository_id is None:
        return _text(
            f"Distribution {dist.base_path!r} does not serve the latest version of a repository,"
            " so there is nothing to upload into",
            403,
        )
    form = request.form
    if form.get(":action", "file_upload") != "file_upload":
        return _text(f"Unsupported :action {form.get(':action')!r}", 400)
    if form.get("attestations", "").strip():  # PEP 740: better refused than dropped unseen
        return _text(
            f"{NO_ATTESTATIONS} (twine: leave out --attestations; uv publish: --no-attestations)",
            400,
        )
    upload = request.files.get("content")
    if upload is None or not upload.filename:
        return _text("No file in the form field 'content'", 400)
    try:
        project = parse_filename(upload.filename).name
        refusal = dist.upload_refusal(upload.filename)
    except InvalidFilename as exc:
        return _text(str(exc), 400)
    if (why := principal.upload_refusal(dist.base_path, project)) is not None:
        return _text(f"Forbidden: {why}", 403)
    if refusal is not None:
        svc.counters.add(dist.base_path, refusal.kind)
        message = refusal.message(upload.filename).rstrip(".")
        return _text(f"{message} (distribution {dist.base_path!r})", 403)
    digests = {
        "sha256": form.get("sha256_digest", ""),
        "md5": form.get("md5_digest", ""),
        "blake2_256": form.get("blake2_256_digest", ""),
    }
    package, number = svc.uploads.upload(
        dist.repository_id,
        upload.stream,
        upload.filename,
        digests=digests,
        name=form.get("name"),
        version=form.get("version"),
        actor=principal.actor,
        address=address(),
        where=dist.base_path,
    )
    if number is not None:
        svc.registry.changed()
    return _text(f"Uploaded {package.filename}", 200)
