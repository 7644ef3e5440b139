"""The pages for people: their view models (web/page_models.py), pure, and the pages through
Flask's test client (access rules, routes that must not collide, escaping)."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from lxml import html
from werkzeug.test import TestResponse

from pullthrough.app import create_app
from pullthrough.config import load_settings
from pullthrough.core.models import DistFile, ProjectPage
from pullthrough.core.policy import BLOCKED, Hold
from pullthrough.services.container import ORPHAN_CLEANUP
from pullthrough.services.health import REACHABILITY_WAIT_SECONDS, online_workers
from pullthrough.services.metrics import Metrics
from pullthrough.services.tasks import enqueue
from pullthrough.web import page_models as pm
from support.api import PASSWORD, with_auth
from support.browser import with_class
from support.packages import build_wheel
from support.servers import config_text, wait_until
from support.upstream import Upstream

# ---- view models ----------------------------------------------------------------------------


def test_client_setup_gives_the_lines_to_copy() -> None:
    setup = pm.client_setup("http://pypi.corp:8080/", "team/py", "team py")
    url = "http://pypi.corp:8080/pypi/team/py/simple/"
    assert setup.index_url == url
    assert setup.pip_conf.splitlines() == [
        "[global]",
        f"index-url = {url}",
        "trusted-host = pypi.corp",  # pip ignores a plain-http index unless trusted
    ]
    assert setup.uv_command == f"uv pip install --index-url {url} PACKAGE"
    assert setup.uv_toml.splitlines() == [
        "[[tool.uv.index]]",
        'name = "team-py"',
        f'url = "{url}"',
        "default = true",
    ]
    assert setup.poetry_command == f"poetry source add --priority=primary team-py {url}"


@pytest.mark.parametrize(
    ("root", "trusted"),
    [
        ("https://pypi.corp/", False),
        ("http://127.0.0.1:5000/", False),
        ("http://localhost/prefix/", False),
        ("http://10.0.0.5/", True),
    ],
)
def test_pip_needs_trusted_host_only_for_plain_http_elsewhere(root: str, trusted: bool) -> None:
    setup = pm.client_setup(root, "main", "main")
    assert setup.index_url == root + "pypi/main/simple/"
    assert ("trusted-host" in setup.pip_conf) is trusted


def test_search_ranks_exact_then_prefix_then_substring_and_is_bounded() -> None:
    names = ["django-rest", "Django", "my_django", "flask", "django.utils", "pydjango"]
    found, total = pm.search(pm.search_index(names), " DJANGO ")
    assert found == ["Django", "django-rest", "django.utils", "my_django", "pydjango"]
    assert total == 5
    found, total = pm.search(pm.search_index(f"pkg-{i:03}" for i in range(500)), "pkg", limit=7)
    assert found == [f"pkg-{i:03}" for i in range(7)] and total == 500
    assert pm.search(pm.search_index(names), "Django_Rest")[0] == ["django-rest"]
    assert pm.search(pm.search_index(names), "   ") == ([], 0)
    assert pm.search(pm.search_index(names), "nothing") == ([], 0)


@pytest.mark.parametrize(
    ("size", "text"),
    [(None, "?"), (0, "0 B"), (999, "999 B"), (1000, "1.0 kB"), (1_234_567, "1.2 MB"),
     (20 * 10**9, "20.0 GB"), (3 * 10**15, "3000.0 TB")],
)  # fmt: skip
def test_human_size(size: int | None, text: str) -> None:
    assert pm.human_size(size) == text


def _file(filename: str, **fields: object) -> DistFile:
    return DistFile(filename, "https://files.example/" + filename, **fields)  # type: ignore[arg-type]


def test_project_model_groups_files_by_version_newest_first() -> None:
    page = ProjectPage(
        "shelf-reader",
        (
            _file("shelf_reader-0.1.tar.gz", size=900, upload_time="2020-01-01T00:00:00Z"),
            _file("shelf_reader-0.1-py3-none-any.whl", size=1000),
            _file("shelf_reader-0.10-py3-none-any.whl", yanked=True),
            _file("shelf_reader-0.3-py3-none-any.whl", yanked="broken", requires_python=">=3.8"),
            _file("shelf_reader-0.4rc1-py3-none-any.whl"),
        ),
    )
    until = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    held = {
        "shelf_reader-0.5-py3-none-any.whl": Hold("held by the remote's policy: too new", until),
        "not-a-dist.zip": Hold("blocked by the blocklist", kind=BLOCKED),
    }
    sources = {
        "shelf_reader-0.1.tar.gz": pm.CACHE,
        "shelf_reader-0.3-py3-none-any.whl": pm.REPOSITORY,
    }
    model = pm.project_model(page, held, lambda f: sources.get(f.filename, pm.UPSTREAM))

    assert [g.version for g in model.versions] == ["0.10", "0.5", "0.4rc1", "0.3", "0.1", "other"]
    assert model.file_count == 7
    by_name = {f.filename: f for g in model.versions for f in g.files}
    assert [f.filename for f in model.versions[4].files] == [
        "shelf_reader-0.1-py3-none-any.whl",
        "shelf_reader-0.1.tar.gz",
    ]
    sdist = by_name["shelf_reader-0.1.tar.gz"]
    assert (sdist.size_text, sdist.upload_time, sdist.source) == (
        "900 B",
        "2020-01-01T00:00:00Z",
        "cache",
    )
    assert by_name["shelf_reader-0.3-py3-none-any.whl"].yanked == "broken"
    assert sdist.uploaded_text == "2020-01-01 00:00"
    assert by_name["shelf_reader-0.3-py3-none-any.whl"].source == "repository"
    assert by_name["shelf_reader-0.10-py3-none-any.whl"].yanked == ""  # yanked, no reason
    assert by_name["shelf_reader-0.1-py3-none-any.whl"].yanked is None
    assert by_name["shelf_reader-0.1-py3-none-any.whl"].source == "upstream"
    new = by_name["shelf_reader-0.5-py3-none-any.whl"]
    assert new.held == "held by the remote's policy: too new (available from 2030-01-02T03:04:05Z)"
    assert new.source is None and new.size is None
    assert by_name["not-a-dist.zip"].held == "blocked by the blocklist"
    yanked = {g.version: g.yanked for g in model.versions}
    assert yanked == {"0.10": True, "0.5": False, "0.4rc1": False, "0.3": True, "0.1": False,
                      "other": False}  # fmt: skip


@pytest.mark.parametrize(
    ("version", "group"),
    [  # as any index names it: the JSON API's key may be the index's `versions` entry
        ("0.6c11", "0.6rc11"),
        ("0.6rc11", "0.6rc11"),
        ("2004d", "other"),
        ("2.0", "2.0.0"),
        ("2", "2.0.0"),
    ],
)
def test_a_version_s_anchor_is_the_heading_of_the_group_holding_its_files(
    version: str, group: str
) -> None:
    files = (
        "oldver-0.6c11.tar.gz",
        "oldver-0.6rc11-py3-none-any.whl",
        "oldver-2004d.tar.gz",
        "oldver-2.0.0-py3-none-any.whl",
        "oldver-2.0.tar.gz",  # the same release: one heading with both files
    )
    page = ProjectPage("oldver", tuple(_file(f) for f in files))
    model = pm.project_model(page, {}, lambda f: pm.UPSTREAM)
    (holding,) = (g for g in model.versions if g.version == group)
    assert pm.version_anchor(version) == holding.anchor
    assert len(next(g for g in model.versions if g.version == "2.0.0").files) == 2
    assert len({g.anchor for g in model.versions}) == len(model.versions)  # one id per heading


def test_a_project_page_shows_the_newest_versions_and_asks_sources_only_for_them() -> None:
    page = ProjectPage("many", tuple(_file(f"many-{v}.tar.gz") for v in range(1, 301)))
    asked: list[str] = []

    def source(f: DistFile) -> str:
        asked.append(f.filename)
        return pm.UPSTREAM

    model = pm.project_model(page, {}, source, max_versions=100)
    assert [g.version for g in model.versions] == [str(v) for v in range(300, 200, -1)]
    assert model.more_versions == 200 and len(asked) == 100
    every = pm.project_model(page, {}, source, max_versions=None)
    assert len(every.versions) == 300 and every.more_versions == 0


@pytest.mark.parametrize(
    ("given", "text"),
    [
        (None, ""),
        ("2024-05-01T13:45:59.123456Z", "2024-05-01 13:45"),
        ("2024-05-01T13:45:00", "2024-05-01 13:45"),  # naive: UTC
        ("2024-05-01T15:45:00+02:00", "2024-05-01 13:45"),
        ("yesterday", "yesterday"),
    ],
)
def test_upload_times_are_shown_in_utc_to_the_minute(given: str | None, text: str) -> None:
    assert pm.FileRow("x.whl", upload_time=given).uploaded_text == text


def test_counters_are_read_from_the_exposition() -> None:
    metrics = Metrics()
    metrics.cache_hits.inc(3)
    metrics.cache_misses.inc()
    metrics.upstream_errors.labels("pypi", "timeout").inc(2)
    metrics.upstream_errors.labels("pypi", "error").inc()
    metrics.upstream_errors.labels("other", "refused")  # a series never counted
    counters = pm.counter_values(metrics.exposition())
    cache = pm.CacheUse(
        size=250,
        limit=1000,
        files=2,
        hits=pm.counter_sum(counters, "pullthrough_cache_hits"),
        misses=pm.counter_sum(counters, "pullthrough_cache_misses"),
    )
    assert (cache.hits, cache.misses, cache.hit_ratio, cache.percent) == (3, 1, 0.75, 25.0)
    assert pm.upstream_errors(counters) == {"pypi": {"timeout": 2, "error": 1}}
    assert pm.CacheUse(0, 0, 0, 0, 0).hit_ratio is None
    assert pm.CacheUse(0, 0, 0, 0, 0).percent == 0.0


# ---- the pages, in process --------------------------------------------------------------------

EXTRA = (
    # a remote that only the private distribution uses: its name and address stay unsaid
    '[[remotes]]\nname = "corp-mirror"\nurl = "http://10.1.2.3:9/internal/simple/"\n'
    '[[distributions]]\nname = "corp-index"\nbase_path = "corp"\nremotes = ["corp-mirror", "up"]\n'
    "private = true\n"
    '[[distributions]]\nname = "secret"\nbase_path = "team/secret"\nremote = "up"\nhidden = true\n'
)


@pytest.fixture
def client(upstream: Upstream, tmp_path: Path) -> Iterator[FlaskClient]:
    config = tmp_path / "pullthrough.toml"
    config.write_text(with_auth(config_text(upstream.index_url, tmp_path / "data")) + EXTRA)
    app = create_app(load_settings(config, environ={}))
    try:
        yield app.test_client()
    finally:
        app.extensions["pullthrough"].close()


def _admin() -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()}


def _doc(body: bytes) -> html.HtmlElement:
    return html.document_fromstring(body)


def test_home_lists_what_anyone_may_see_with_the_request_host(client: FlaskClient) -> None:
    answer = client.get("/", base_url="http://pypi.example:8080")
    assert answer.status_code == 200 and answer.mimetype == "text/html"
    doc = _doc(answer.data)
    assert [s.get("id") for s in with_class(doc, "section", "dist")] == ["dist-main"]
    (pip_conf,) = with_class(doc.get_element_by_id("dist-main"), "pre", "pip-conf")
    assert "index-url = http://pypi.example:8080/pypi/main/simple/" in pip_conf.text
    assert b"team/secret" not in answer.data and b"corp" not in answer.data
    # The admin sees the private distribution too (never the hidden one); wrong credentials: 401.
    admin = _doc(client.get("/", headers=_admin()).data)
    assert [s.get("id") for s in with_class(admin, "section", "dist")] == ["dist-corp", "dist-main"]
    wrong = client.get("/", headers={"Authorization": "Basic " + base64.b64encode(b"a:b").decode()})
    assert wrong.status_code == 401 and "WWW-Authenticate" in wrong.headers


def test_private_pages_follow_the_simple_pages_rules(client: FlaskClient) -> None:
    for url in ("/pypi/corp/", "/pypi/corp/?q=shelf", "/pypi/corp/project/shelf-reader/"):
        assert client.get(url).status_code == 401, url
        assert client.get(url, headers=_admin()).status_code == 200, url
    assert client.get("/pypi/corp/project/shelf-reader/").status_code == (
        client.get("/pypi/corp/simple/shelf-reader/").status_code
    )
    # A hidden distribution is left out of lists, not locked.
    assert client.get("/pypi/team/secret/project/shelf-reader/").status_code == 200


def test_search_and_project_pages(client: FlaskClient) -> None:
    doc = _doc(client.get("/pypi/main/?q=SHELF").data)
    links = [(a.text, a.get("href")) for a in doc.xpath("//ul[@class='results']//a")]
    assert links == [("shelf-reader", "/pypi/main/project/shelf-reader/")]
    assert with_class(_doc(client.get("/pypi/main/?q=zzz").data), "p", "results-empty")
    moved = client.get("/pypi/main/project/Shelf_Reader/?all=1")
    assert moved.status_code == 301
    assert moved.headers["Location"] == "/pypi/main/project/shelf-reader/?all=1"
    page = _doc(client.get("/pypi/main/project/shelf-reader/").data)
    versions = [t.get("data-version") for t in with_class(page, "table", "files")]
    assert versions == ["0.4rc1", "0.3", "0.2", "0.1"]
    rows = {r.get("data-filename"): r for r in with_class(page, "tr", "file")}
    yanked = rows["shelf_reader-0.3-py3-none-any.whl"]
    assert with_class(yanked, "span", "yank-reason")[0].text == "broken"
    assert {with_class(r, "td", "source")[0].text for r in rows.values()} == {"upstream"}
    assert client.get("/pypi/main/project/no-such-thing/").status_code == 404
    assert client.get("/pypi/nowhere/").status_code == 404


def test_the_new_routes_leave_the_others_alone(client: FlaskClient) -> None:
    json_page = {"Accept": "application/vnd.pypi.simple.v1+json"}
    assert client.get("/pypi/main/simple/", headers=json_page).is_json
    assert client.get("/pypi/main/simple/shelf-reader/", headers=json_page).is_json
    assert client.get("/pypi/main/pypi/shelf-reader/json").is_json
    assert client.get("/pypi/team/secret/").status_code == 200  # a base path with a slash
    # A project named like a route's word is still a project.
    assert b"not found in distribution" in client.get("/pypi/main/project/simple/").data


def test_status_page(client: FlaskClient) -> None:
    client.get("/pulp/content/main/shelf_reader-0.2-py3-none-any.whl").close()  # a miss
    client.get("/pulp/content/main/shelf_reader-0.2-py3-none-any.whl").close()  # a hit
    svc = client.application.extensions["pullthrough"]
    with svc.catalog.session() as session:
        enqueue(session, ORPHAN_CLEANUP, {})
    assert wait_until(lambda: svc.ledger.total() > 0)  # its storing ends after its answer
    # the app's embedded worker says it is alive from its own thread, soon after start-up
    assert wait_until(lambda: online_workers(svc.catalog, svc.settings.tasks.worker_timeout))
    answer = client.get("/status/")
    assert answer.status_code == 200
    doc = _doc(answer.data)
    assert with_class(doc, "td", "cache-limit")[0].get("data-bytes") == str(20 * 10**9)
    assert int(with_class(doc, "td", "cache-size")[0].get("data-bytes")) > 0
    assert with_class(doc, "td", "cache-files")[0].text == "1"
    assert with_class(doc, "td", "hit-ratio")[0].text.strip() == "50%"
    assert doc.xpath("//tr[@data-remote='up']/td[@class='reachable']")[0].text == "yes"
    assert doc.xpath("//ul[@class='workers']/li")  # the app's embedded worker
    (task,) = doc.xpath("//table[@class='tasks']/tbody/tr")
    assert task.xpath("td")[0].text == ORPHAN_CLEANUP
    assert b"team/secret" not in answer.data and b"corp" not in answer.data
    assert b"10.1.2.3" not in answer.data and b"internal" not in answer.data
    assert "under 0.1% of the limit" in with_class(doc, "td", "cache-size")[0].text


def test_status_answers_in_time_while_upstreams_hang(upstream: Upstream, tmp_path: Path) -> None:
    """Three remotes whose index takes connections and never answers: the status endpoint and
    the status page (a load balancer's health check) answer within one wait, not one per
    remote, and say they are not reachable; each index is asked once, not once per request."""
    config = tmp_path / "pullthrough.toml"
    more = "".join(
        f'[[remotes]]\nname = "up{n}"\nurl = "{upstream.index_url}?mirror={n}"\n'
        f'[[distributions]]\nname = "d{n}"\nbase_path = "d{n}"\nremote = "up{n}"\n'
        for n in (2, 3)
    )
    config.write_text(config_text(upstream.index_url, tmp_path / "data") + more)
    app = create_app(load_settings(config, environ={}))
    upstream.delay, upstream.fault_scope = 30.0, "index"
    answers: dict[str, tuple[TestResponse, float]] = {}

    def ask(path: str) -> None:
        started = time.monotonic()
        answer = app.test_client().get(path)
        answers[path] = (answer, time.monotonic() - started)

    try:
        paths = ["/pulp/api/v3/status/", "/status/", "/pulp/api/v3/status/?again"]
        threads = [threading.Thread(target=ask, args=(path,)) for path in paths]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert sorted(answers) == sorted(paths)
        assert all(took < REACHABILITY_WAIT_SECONDS + 1.5 for _, took in answers.values())
        api, _ = answers["/pulp/api/v3/status/"]
        assert [r["reachable"] for r in api.get_json()["remotes"]] == [False] * 3
        doc = _doc(answers["/status/"][0].data)
        shown = doc.xpath("//tr[@data-remote]/td[@class='reachable']")
        assert [td.text for td in shown] == ["NO"] * 3
        assert len([r for r in upstream.log if r.method == "HEAD"]) == 3
    finally:
        app.extensions["pullthrough"].close()


def test_metrics_and_the_status_page_do_not_wait_for_a_catalog_writer(
    client: FlaskClient,
) -> None:
    """A long write (a sync's or an import's commit) holds SQLite's write lock: Prometheus's
    scrape and the status page only read, so they answer meanwhile (README)."""
    svc = client.application.extensions["pullthrough"]
    writing, done = threading.Event(), threading.Event()

    def long_write() -> None:
        with svc.catalog.session() as session:
            enqueue(session, ORPHAN_CLEANUP, {})
            session.flush()  # the write lock is held from here to the commit
            writing.set()
            done.wait(10)

    writer = threading.Thread(target=long_write)
    writer.start()
    try:
        assert writing.wait(10)
        for path in ("/metrics", "/status/"):
            started = time.monotonic()
            assert client.get(path).status_code == 200
            assert time.monotonic() - started < 2.0, path
    finally:
        done.set()
        writer.join(timeout=10)


def test_the_json_api_with_a_trailing_slash_moves_and_takes_no_other_page(
    upstream: Upstream, tmp_path: Path
) -> None:
    """`.../json/` is sent on to the API's URL, as pypi.org does, but a distribution whose
    base path ends in `/pypi` keeps its project `json`: its simple page is not taken for it."""
    config = tmp_path / "pullthrough.toml"
    more = '[[distributions]]\nname = "team"\nbase_path = "team/pypi"\nremote = "up"\n'
    config.write_text(config_text(upstream.index_url, tmp_path / "data") + more)
    app = create_app(load_settings(config, environ={}))
    try:
        client = app.test_client()
        moved = client.get("/pypi/main/pypi/Shelf_Reader/0.2/json/?x=1")
        assert moved.status_code == 301
        assert moved.headers["Location"].endswith("/pypi/main/pypi/shelf-reader/0.2/json?x=1")
        page = client.get("/pypi/team/pypi/simple/shelf-reader/")
        assert page.status_code == 200
        upstream.add_file("json", build_wheel(tmp_path / "w", "json", "1.0"))
        named_json = client.get("/pypi/team/pypi/simple/json/")
        assert named_json.status_code == 200 and b"json-1.0-py3-none-any.whl" in named_json.data
        assert client.get("/pypi/nowhere/pypi/x/json/").status_code == 404
    finally:
        app.extensions["pullthrough"].close()


def test_text_from_upstreams_is_escaped(tmp_path: Path) -> None:
    from flask import Flask, render_template

    from pullthrough.web.pages import bp

    app = Flask(__name__)
    app.register_blueprint(bp)
    page = ProjectPage("evil", (_file("evil-1.0.tar.gz", yanked="<script>alert(1)</script>"),))
    model = pm.project_model(page, {}, lambda _: pm.UPSTREAM)
    with app.test_request_context("/"):
        body = render_template("pages/project.html", dist=_Dist(), project=model)
    assert "<script>alert" not in body and "&lt;script&gt;alert(1)&lt;/script&gt;" in body


class _Dist:
    name = "main"
    base_path = "main"


def test_the_upload_url_is_not_a_page(client: FlaskClient) -> None:
    answer = client.get("/pypi/main/legacy/")
    assert answer.status_code == 405 and answer.headers["Allow"] == "POST"
