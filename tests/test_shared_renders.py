"""Renderings shared by the workers (web.shared), in process: two apps over one data folder
stand for two gunicorn workers. A page one renders, the other sends from its first request,
rendering nothing; a catalog change or the page's expiry ends the sharing; private pages are
never shared."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from pullthrough.app import create_app
from pullthrough.catalog.models import Distribution
from pullthrough.config import load_settings
from pullthrough.services.container import EXTENSION, Services
from support.api import AUTH, with_auth
from support.servers import config_text
from support.upstream import Upstream

JSON = "application/vnd.pypi.simple.v1+json"
PAGE = "/pypi/main/simple/shelf-reader/"
ADMIN = "Basic " + base64.b64encode(":".join(AUTH).encode()).decode()


@pytest.fixture
def workers(upstream: Upstream, tmp_path: Path) -> Iterator[tuple[Flask, Flask]]:
    config = tmp_path / "pullthrough.toml"
    config.write_text(with_auth(config_text(upstream.index_url, tmp_path / "data")))
    apps = [create_app(load_settings(config, environ={})) for _ in range(2)]
    try:
        yield apps[0], apps[1]
    finally:
        for app in apps:
            app.extensions[EXTENSION].close()


def services_of(app: Flask) -> Services:
    services: Services = app.extensions[EXTENSION]
    return services


def renders(app: Flask) -> float:
    services = services_of(app)
    return services.metrics.registry.get_sample_value("pullthrough_page_renders_total") or 0.0


def get(client: FlaskClient, **headers: str) -> tuple[int, bytes, str]:
    """A GET read to its end and closed, as a WSGI server does (its background work starts)."""
    with client.get(PAGE, headers={"Accept": JSON, **headers}) as answer:
        return answer.status_code, answer.data, answer.headers.get("Content-Encoding", "identity")


def test_a_page_one_worker_rendered_is_sent_by_the_others_as_it_is(
    workers: tuple[Flask, Flask], upstream: Upstream
) -> None:
    first, second = workers
    one, two = first.test_client(), second.test_client()
    rendered = get(one, **{"Accept-Encoding": "gzip"})
    assert rendered[0] == 200 and rendered[2] == "gzip"
    plain = get(one)
    assert renders(first) == 1 and renders(second) == 0
    assert services_of(first).later.wait()  # shared once its client has it

    upstream.clear_log()
    for _ in range(3):
        assert get(two, **{"Accept-Encoding": "gzip"}) == rendered  # the very bytes, gzipped
        assert get(two) == plain
    assert renders(second) == 0  # nothing rendered, read, or asked upstream
    assert not upstream.log
    # a conditional request is answered 304 from the shared rendering too
    etag = two.get(PAGE, headers={"Accept": JSON}).headers["ETag"]
    assert two.get(PAGE, headers={"Accept": JSON, "If-None-Match": etag}).status_code == 304


def test_a_catalog_change_ends_the_sharing(workers: tuple[Flask, Flask]) -> None:
    first, second = workers
    get(first.test_client())
    services: Services = first.extensions[EXTENSION]
    with services.catalog.session() as session:
        dist = session.scalars(select(Distribution).where(Distribution.name == "main")).one()
        dist.blocklist = ["shelf-reader==0.2"]
    services.registry.changed()
    status, body, _ = get(second.test_client())
    assert status == 200 and b"shelf_reader-0.2-" not in body
    assert renders(second) == 1  # rendered anew: the shared one is of the old catalog


def test_a_private_page_is_never_shared(workers: tuple[Flask, Flask]) -> None:
    first, _ = workers
    services: Services = first.extensions[EXTENSION]
    with services.catalog.session() as session:
        dist = session.scalars(select(Distribution).where(Distribution.name == "main")).one()
        dist.private = True
    services.registry.changed()
    client = first.test_client()
    assert get(client)[0] == 401
    assert get(client, Authorization=ADMIN)[0] == 200  # rendered for the admin...
    assert renders(first) == 1
    assert services.later.wait()
    assert len(services.renders_cache) == 0  # ...and kept from the other workers
