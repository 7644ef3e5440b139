"""/pulp/api/v3/status/: versions, storage use, cache use and upstream reachability."""

from __future__ import annotations

import shutil
import threading
import time

from flask import Response, request
from sqlalchemy import select

from pullthrough.api.kinds import API_ROOT
from pullthrough.api.openapi import APP_VERSIONS
from pullthrough.api.operations import Call, Operation, json_response
from pullthrough.catalog.models import Worker
from pullthrough.services.tasks import online_since
from pullthrough.upstream.client import UpstreamClient, describe_url

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


def status(call: Call) -> Response:
    svc = call.services
    # Anyone may read this: private distributions are left out, as hidden ones.
    shown = svc.registry.shown()
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
        "online_workers": _online_workers(call),
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
        "distributions": sorted(shown),
        "refused": {base_path: svc.counters.of(base_path) for base_path in sorted(shown)},
    }
    return json_response(body)


def _online_workers(call: Call) -> list[dict[str, object]]:
    alive = online_since(call.services.settings.tasks.worker_timeout)
    with call.services.catalog.session() as session:
        rows = session.scalars(select(Worker).where(Worker.last_heartbeat >= alive)).all()
        return [{"name": w.name, "last_heartbeat": w.last_heartbeat.isoformat()} for w in rows]


STATUS = Operation(
    "status_read",
    "GET",
    API_ROOT + "status/",
    API_ROOT + "status/",
    status,
    "Status: versions, storage, cache and upstream reachability",
    auth=False,
    transaction=False,  # it asks the upstreams: no catalog lock meanwhile
    responses={200: "StatusResponse"},
)
