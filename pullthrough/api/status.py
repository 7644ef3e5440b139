"""/pulp/api/v3/status/: versions, storage use, cache use and upstream reachability."""

from __future__ import annotations

import shutil
import threading
import time
from datetime import timedelta

from flask import Response, json, request
from sqlalchemy import select

from pullthrough.api.openapi import APP_VERSIONS
from pullthrough.api.operations import operation
from pullthrough.catalog.models import Worker, now
from pullthrough.upstream.client import UpstreamClient, describe_url
from pullthrough.web.common import services

_REACHABILITY_SECONDS = 30.0  # a status poll must not become a load on the upstream
_checked: dict[str, tuple[float, bool]] = {}
_lock = threading.Lock()


def _reachable(client: UpstreamClient) -> tuple[bool, float]:
    now = time.time()
    with _lock:
        seen = _checked.get(client.root)
    if seen is None or now - seen[0] > _REACHABILITY_SECONDS:
        seen = (now, client.reachable())
        with _lock:
            _checked[client.root] = seen
    return seen[1], seen[0]


@operation(
    "status_read", "GET", "/pulp/api/v3/status/", "/pulp/api/v3/status/",
    "Status: versions, storage, cache and upstream reachability",
    auth=False, responses={200: "StatusResponse"},
)  # fmt: skip
def status() -> Response:
    svc = services()
    disk = shutil.disk_usage(svc.settings.server.data_dir)
    remotes = []
    for client in svc.registry.clients():
        name = client.remote.name
        reachable, checked = _reachable(client)
        remotes.append(
            {
                "name": name,
                "url": describe_url(client.root),
                "reachable": reachable,
                "checked_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(checked)),
            }
        )
    body = {
        "versions": [
            {
                "component": component,
                "version": version,
                "package": "pullthrough",
                "module": "pullthrough",
                "domain_compatible": False,
            }
            for component, version in APP_VERSIONS.items()
        ],
        "online_workers": _online_workers(),
        "database_connection": {"connected": True},
        "redis_connection": None,
        "content_settings": {"content_origin": request.host_url, "content_path_prefix": "/pypi/"},
        "domain_enabled": False,
        "storage": {"total": disk.total, "used": disk.used, "free": disk.free},
        "cache": {
            "size": svc.ledger.total(),
            "max_size": svc.settings.cache.max_size,
            "files": svc.ledger.count(),
        },
        "remotes": remotes,
        "distributions": sorted(b for b, d in svc.registry.all().items() if not d.hidden),
    }
    return Response(json.dumps(body), mimetype="application/json")


def _online_workers() -> list[dict[str, object]]:
    cutoff = now() - timedelta(seconds=30)
    with services().catalog.session() as session:
        rows = session.scalars(select(Worker).where(Worker.last_heartbeat >= cutoff)).all()
        return [{"name": w.name, "last_heartbeat": w.last_heartbeat.isoformat()} for w in rows]
