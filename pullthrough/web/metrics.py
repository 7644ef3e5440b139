"""GET /metrics (Prometheus text format), and the count of every request Flask answers.

Like the status endpoint it needs no credentials: it shows counts, never names of private or
hidden distributions. Warm pages answered below Flask are counted by web/fastpath.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from flask import Blueprint, Response, request
from prometheus_client import CONTENT_TYPE_LATEST, Counter

from pullthrough.services.metrics import (
    API,
    FILE,
    JSON_API,
    METADATA,
    OTHER,
    PAGE,
    PROJECT_LIST,
    UPLOAD,
)
from pullthrough.web.common import services

bp = Blueprint("metrics", __name__)

_KIND_OF_BLUEPRINT = {"pypi_json": JSON_API, "upload": UPLOAD, "api": API}
_KIND_OF_ENDPOINT = {"simple.project_page": PAGE, "simple.project_list": PROJECT_LIST}


@bp.get("/metrics")
def metrics() -> Response:
    body = services().metrics.exposition()
    return Response(
        body, headers={"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"}
    )


def route_kind() -> str:
    """The `kind` label of the request being answered."""
    endpoint = request.endpoint or ""
    if endpoint == "content.content":
        filename = (request.view_args or {}).get("filename", "")
        return METADATA if filename.endswith(".metadata") else FILE
    return _KIND_OF_ENDPOINT.get(endpoint) or _KIND_OF_BLUEPRINT.get(request.blueprint or "", OTHER)


@bp.after_app_request
def count(response: Response) -> Response:
    metrics = services().metrics
    kind = route_kind()
    metrics.requests.labels(kind, str(response.status_code)).inc()
    if kind == FILE and request.method == "GET" and response.status_code in (200, 206):
        if response.content_length is not None:
            metrics.file_bytes.inc(response.content_length)
        elif response.is_streamed:  # a download without a length: counted as it is sent
            response.response = _counted(response.response, metrics.file_bytes)
    return response


def _counted(body: Iterable[bytes], counter: Counter) -> Iterator[bytes]:
    try:
        for chunk in body:
            counter.inc(len(chunk))
            yield chunk
    finally:
        if (close := getattr(body, "close", None)) is not None:
            close()  # a StreamedFile's tail must end with the response
