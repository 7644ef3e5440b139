"""The application factory: the one place that assembles the services, the REST API and the
index's blueprints; the only entry point, for gunicorn and for tests."""

from __future__ import annotations

import errno
import logging
import math
import os
from datetime import UTC, datetime

from flask import Flask, Response, request
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from pullthrough.api import routes
from pullthrough.config import NODE_STARTED_ENV, Settings, load_settings
from pullthrough.core.metadata import MAX_METADATA_SIZE
from pullthrough.core.names import InvalidProjectName
from pullthrough.services.auth import Forbidden, TooManyFailures, Unauthorized
from pullthrough.services.container import EXTENSION, build_services
from pullthrough.services.distribution import Held, NotFound
from pullthrough.services.uploads import UploadConflict, UploadForbidden, UploadRefused
from pullthrough.storage.locks import LockTimeout
from pullthrough.storage.store import ArtifactStore, StorageFull, StorageUnavailable
from pullthrough.upstream.client import UpstreamError
from pullthrough.web import content, metrics, pages, pypi_json, simple, upload
from pullthrough.web.afterwards import Afterwards
from pullthrough.web.common import SHARED, plain_with_reason
from pullthrough.web.fastpath import WarmFiles, WarmPages
from pullthrough.web.shared import SharedRenders

log = logging.getLogger(__name__)

MAX_FORM_PARTS = 100_000  # fields of one upload's form (twine sends one per metadata value)


def create_app(settings: Settings | None = None) -> Flask:
    """Defaults, then the file named by PULLTHROUGH_CONFIG, then the environment; or `settings`."""
    if settings is None:
        settings = load_settings(os.environ.get("PULLTHROUGH_CONFIG") or None)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.server.max_upload_size
    # twine and uv send the long description as a form field: as long as the metadata file we
    # read may be, not werkzeug's 500 kB (a README with a changelog passes that)
    app.config["MAX_FORM_MEMORY_SIZE"] = MAX_METADATA_SIZE
    # and one field per requirement, extra and classifier: over werkzeug's 1000 parts for a
    # project with many extras (apache-airflow); still a bound, after the uploader is known
    app.config["MAX_FORM_PARTS"] = MAX_FORM_PARTS
    node_started = os.environ.get(NODE_STARTED_ENV) == "1"  # a gunicorn worker of a node
    services = app.extensions[EXTENSION] = build_services(settings, node_started=node_started)
    if settings.server.embedded_worker:
        services.start_worker()
    services.abort_abandoned_writes()  # a killed process's multipart uploads
    try:  # the distributions, read now rather than in this worker's first request (~10 ms)
        services.registry.all()
    except (SQLAlchemyError, OSError) as exc:  # read again at the first request
        log.warning("could not read the distributions yet: %s", exc)
    shared = SharedRenders(services.renders_cache, later=services.later)
    app.extensions[SHARED] = shared
    later_jobs = Afterwards(app.wsgi_app, services.later)  # after the answer is sent
    warm_pages = WarmPages(later_jobs, services.registry, services.metrics, shared)
    app.wsgi_app = warm_pages  # type: ignore[method-assign]
    if isinstance(services.store, ArtifactStore) and not settings.server.accel_redirect:
        warm_files = WarmFiles(
            warm_pages, services.registry, services.metrics, services.pullthrough
        )
        app.wsgi_app = warm_files  # type: ignore[method-assign]
    blueprints = (
        simple.bp,
        content.bp,
        upload.bp,
        pypi_json.bp,
        metrics.bp,
        pages.bp,
        routes.blueprint(),
    )
    for blueprint in blueprints:
        app.register_blueprint(blueprint)

    @app.errorhandler(NotFound)
    def not_found(exc: NotFound) -> Response:
        return _text(str(exc), 404)

    @app.errorhandler(Held)
    def held(exc: Held) -> Response:
        if base_path := (request.view_args or {}).get("base_path"):
            services.counters.add(base_path.strip("/"), exc.hold.kind)
        response = _text(str(exc), 403)
        if exc.hold.until is not None:
            wait = (exc.hold.until - datetime.now(UTC)).total_seconds()
            response.headers["Retry-After"] = str(max(1, math.ceil(wait)))
        return response

    @app.errorhandler(InvalidProjectName)
    def bad_name(exc: InvalidProjectName) -> Response:
        return _text(str(exc), 400)

    @app.errorhandler(UploadRefused)
    def upload_refused(exc: UploadRefused) -> Response:  # raised by the legacy upload only
        status = 403 if isinstance(exc, UploadForbidden) else 400
        return plain_with_reason(str(exc), 409 if isinstance(exc, UploadConflict) else status)

    @app.errorhandler(Unauthorized)
    def unauthorized(exc: Unauthorized) -> Response:
        response = _text(str(exc), 401)
        response.headers["WWW-Authenticate"] = 'Basic realm="pullthrough"'
        return response

    @app.errorhandler(Forbidden)
    def forbidden(exc: Forbidden) -> Response:
        return _text(f"Forbidden: {exc}", 403)

    @app.errorhandler(TooManyFailures)
    def too_many(exc: TooManyFailures) -> Response:
        response = _text(str(exc), 429)
        response.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
        return response

    @app.errorhandler(StorageFull)
    def storage_full(exc: StorageFull) -> Response:
        log.error("no space left: %s", exc)
        return _text("Insufficient storage: the server's disk is full; try again later", 507)

    @app.errorhandler(StorageUnavailable)
    def storage_unavailable(exc: StorageUnavailable) -> Response:
        log.error("%s", exc)
        response = _text("Service unavailable: the file store cannot be reached; try again", 503)
        response.headers["Retry-After"] = "10"
        return response

    @app.errorhandler(LockTimeout)
    def busy(exc: LockTimeout) -> Response:
        log.warning("%s", exc)  # e.g. an upload waiting on the same bytes' eviction or cleanup
        response = _text("Service unavailable: the same file is being stored; try again", 503)
        response.headers["Retry-After"] = "10"
        return response

    @app.errorhandler(OperationalError)
    def catalog_failed(exc: OperationalError) -> Response:
        if "full" in str(exc.orig):  # SQLite: "database or disk is full"
            return storage_full(StorageFull(errno.ENOSPC, "the catalog's disk is full"))
        # The database is down, restarting, refusing connections or busy: a 503 the client
        # (and a front's proxy_next_upstream) retries, not a 500 that looks like our bug.
        log.error("the catalog failed: %s", exc.orig)
        response = _text("Service unavailable: the catalog cannot be reached; try again", 503)
        response.headers["Retry-After"] = "10"
        return response

    @app.errorhandler(UpstreamError)
    def upstream_failed(exc: UpstreamError) -> Response:
        log.warning("%s", exc)
        return _text(f"Upstream index failed: {exc}", exc.status)

    return app


def _text(message: str, status: int) -> Response:
    return Response(message + "\n", status=status, mimetype="text/plain")
