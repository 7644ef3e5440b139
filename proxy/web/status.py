"""/pulp/api/v3/status/: versions, storage use, cache use and upstream reachability."""

from __future__ import annotations

import shutil
import threading
import time

from flask import Blueprint, Response, json

from proxy import __version__
from proxy.upstream.client import UpstreamClient, describe_url
from proxy.web.common import services

bp = Blueprint("status", __name__)

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


@bp.get("/pulp/api/v3/status/")
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
                "component": "pullthrough",
                "version": __version__,
                "package": "pullthrough",
                "module": "proxy",
                "domain_compatible": False,
            }
        ],
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
