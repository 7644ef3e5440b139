"""The application factory: the only entry point, for gunicorn and for tests."""

from __future__ import annotations

import logging
import os

from flask import Flask, Response

from pullthrough.config import Settings, load_settings
from pullthrough.core.names import InvalidProjectName
from pullthrough.services.distribution import NotFound
from pullthrough.services.uploads import UploadRefused
from pullthrough.services.wiring import build_services
from pullthrough.upstream.client import UpstreamError

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> Flask:
    """Defaults, then the file named by PULLTHROUGH_CONFIG, then the environment; or `settings`."""
    if settings is None:
        settings = load_settings(os.environ.get("PULLTHROUGH_CONFIG") or None)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.server.max_upload_size
    services = app.extensions["pullthrough"] = build_services(settings)
    if settings.server.embedded_worker:
        services.start_worker()

    # Imported for the operations they declare: the API's, the document's, status_read.
    from pullthrough.api import openapi, operations, views  # noqa: F401
    from pullthrough.web import content, pypi_json, simple, status, upload  # noqa: F401
    from pullthrough.web.fastpath import WarmPages

    app.wsgi_app = WarmPages(app.wsgi_app, services.registry)  # type: ignore[method-assign]

    app.register_blueprint(simple.bp)
    app.register_blueprint(content.bp)
    app.register_blueprint(upload.bp)
    app.register_blueprint(pypi_json.bp)
    app.register_blueprint(operations.blueprint())

    @app.errorhandler(NotFound)
    def not_found(exc: NotFound) -> Response:
        return _text(str(exc), 404)

    @app.errorhandler(InvalidProjectName)
    def bad_name(exc: InvalidProjectName) -> Response:
        return _text(str(exc), 400)

    @app.errorhandler(UploadRefused)
    def upload_refused(exc: UploadRefused) -> Response:
        return _text(str(exc), 400)

    @app.errorhandler(UpstreamError)
    def upstream_failed(exc: UpstreamError) -> Response:
        log.warning("%s", exc)
        return _text(f"Upstream index failed: {exc}", exc.status)

    return app


def _text(message: str, status: int) -> Response:
    return Response(message + "\n", status=status, mimetype="text/plain")
