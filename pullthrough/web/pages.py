"""Pages for people (HTML, no script): the distributions and how to use them (/), a
distribution's project search (/pypi/<base_path>/), a project's versions and files
(/pypi/<base_path>/project/<name>/) and the server's status (/status/).

A private distribution's pages follow the simple pages' rules (web.common.distribution);
hidden ones are never listed, but their pages answer whoever knows the base path, as the
simple pages do. The view models are built in web/page_models.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import cast

from flask import Blueprint, Response, abort, render_template, request
from packaging.utils import canonicalize_name
from werkzeug.wrappers import Response as BaseResponse

from pullthrough.core.models import DistFile
from pullthrough.core.names import normalize_project
from pullthrough.services.distribution import Distribution, NotFound
from pullthrough.services.health import online_workers, reachable, recent_tasks
from pullthrough.upstream.client import describe_url
from pullthrough.web import page_models as pm
from pullthrough.web.common import (
    address,
    authorization,
    distribution,
    moved_to,
    readable,
    services,
)
from pullthrough.web.pypi_json import moved_from_slash

bp = Blueprint("pages", __name__, template_folder="templates")


def _html(body: str, *, private: bool = False) -> Response:
    response = Response(body, mimetype="text/html")
    response.headers["Cache-Control"] = "private, no-cache" if private else "no-cache"
    return response


def _setup(dist: Distribution) -> pm.ClientSetup:
    return pm.client_setup(request.url_root, dist.base_path, dist.name)


@bp.get("/")
def home() -> Response:
    svc = services()
    dists = sorted(svc.registry.all().values(), key=lambda d: d.base_path)
    principal = None
    if any(d.private for d in dists):  # credentials matter only then (wrong ones: 401)
        principal = svc.auth.identify(authorization(), address())
    shown = [
        (dist, _setup(dist))
        for dist in dists
        if not dist.hidden
        and (not dist.private or (principal is not None and principal.may_read(dist.base_path)))
    ]
    return _html(render_template("pages/home.html", shown=shown), private=principal is not None)


@bp.get("/pypi/<path:base_path>/")
def distribution_page(base_path: str) -> BaseResponse:
    upload_url = base_path.endswith("/legacy")
    if upload_url and readable(base_path.removesuffix("/legacy")) is not None:
        abort(405, valid_methods=["POST"])  # twine's upload URL (web.upload), not a page
    try:
        dist = distribution(base_path)
    except NotFound:
        if (moved := moved_from_slash(base_path)) is not None:  # `.../json/`
            return moved
        raise
    query = request.args.get("q", "").strip()[:200]
    matches: list[tuple[str, str]] = []  # (name, normalized: the link)
    total = 0
    if query:
        listed = dist.projects()
        if (index := listed.renders.get(pm.search_index)) is None:  # once per project list
            index = listed.renders[pm.search_index] = pm.search_index(listed.names)
        found, total = pm.search(cast(tuple[tuple[str, str], ...], index), query)
        matches = [(name, canonicalize_name(name)) for name in found]
    body = render_template(
        "pages/distribution.html",
        dist=dist,
        setup=_setup(dist),
        query=query,
        matches=matches,
        total=total,
        limit=pm.SEARCH_LIMIT,
    )
    return _html(body, private=dist.private)


@bp.get("/pypi/<path:base_path>/project/<name>/")
def project_page(base_path: str, name: str) -> BaseResponse:
    dist = distribution(base_path)
    normal = normalize_project(name)
    if normal != name:
        return moved_to(".project_page", base_path=dist.base_path, name=normal)
    view = dist.project(normal)
    local = dist.local.project(normal) if dist.local is not None else None
    in_repository = {f.filename for f in local.files} if local is not None else set()
    svc = services()

    def source(entry: DistFile) -> str:
        if entry.filename in in_repository:
            return pm.REPOSITORY
        sha = svc.pullthrough.servable_sha(dist, entry, view)  # not another remote's copy
        return pm.CACHE if sha is not None and svc.ledger.tracks(sha) else pm.UPSTREAM

    every = request.args.get("all") == "1"
    model = pm.project_model(
        view.page,
        view.held,
        source,
        stale=view.stale,
        max_versions=None if every else pm.MAX_VERSIONS,
    )
    body = render_template("pages/project.html", dist=dist, project=model)
    return _html(body, private=dist.private)


@bp.get("/status/")
def status() -> Response:
    svc = services()
    counters = pm.counter_values(svc.metrics.exposition())
    cache = pm.CacheUse(
        size=svc.ledger.total(),
        limit=svc.settings.cache.max_size,
        files=svc.ledger.count(),
        hits=pm.counter_sum(counters, "pullthrough_cache_hits"),
        misses=pm.counter_sum(counters, "pullthrough_cache_misses"),
    )
    errors = pm.upstream_errors(counters)
    remotes = []
    clients = svc.registry.shown_clients()
    for client, (ok, checked) in zip(clients, reachable(clients), strict=True):
        remotes.append(
            pm.RemoteHealth(
                client.remote.name,
                describe_url(client.root),
                ok,
                datetime.fromtimestamp(checked, UTC),
                errors.get(client.remote.name, {}),
            )
        )
    body = render_template(
        "pages/status.html",
        cache=cache,
        remotes=remotes,
        workers=online_workers(svc.catalog, svc.settings.tasks.worker_timeout),
        tasks=recent_tasks(svc.catalog),
        shown=sorted(svc.registry.shown()),
        refused={b: svc.counters.of(b) for b in svc.registry.shown()},
        human_size=pm.human_size,
    )
    return _html(body)
