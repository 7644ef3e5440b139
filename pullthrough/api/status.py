"""/pulp/api/v3/status/: versions, storage use, cache use and upstream reachability."""

from __future__ import annotations

import time
from dataclasses import asdict

from flask import Response, request

from pullthrough.api.kinds import API_ROOT
from pullthrough.api.openapi import APP_VERSIONS
from pullthrough.api.operations import Call, Operation, json_response
from pullthrough.services.health import online_workers, reachable
from pullthrough.upstream.client import describe_url


def status(call: Call) -> Response:
    svc = call.services
    # Anyone may read this: private distributions are left out, as hidden ones.
    shown = svc.registry.shown()
    remotes = []
    clients = svc.registry.shown_clients()
    # asked at most every 30 s, waited for 2 s at most (services.health)
    for client, (ok, checked) in zip(clients, reachable(clients), strict=True):
        remotes.append(
            {
                "name": client.remote.name,
                "url": describe_url(client.root),
                "reachable": ok,
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
        "storage": _storage(call),
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


def _storage(call: Call) -> dict[str, int | None]:
    """The disk the files are on; nulls for an object store (S3), as Pulp's status reports
    storage that is not a filesystem, rather than the local data folder's disk."""
    usage = call.services.store.disk_usage()
    return asdict(usage) if usage else {"total": None, "used": None, "free": None}


def _online_workers(call: Call) -> list[dict[str, object]]:
    svc = call.services
    workers = online_workers(svc.catalog, svc.settings.tasks.worker_timeout)
    return [{"name": w.name, "last_heartbeat": w.last_heartbeat.isoformat()} for w in workers]


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
