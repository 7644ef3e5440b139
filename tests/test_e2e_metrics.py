"""GET /metrics: Prometheus text, summed over every gunicorn worker (multiprocess mode)."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import diskcache
import pytest
import requests
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families

from support.api import AUTH, Api, with_auth
from support.packages import build_wheel
from support.servers import STARTS, Server, config_text, wait_until
from support.upstream import Upstream

pytestmark = pytest.mark.e2e
JSON = "application/vnd.pypi.simple.v1+json"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(server: Server) -> Samples:
    resp = requests.get(server.url + "/metrics", timeout=10)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("text/plain; version=")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(resp.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def fresh_get(url: str, **headers: str) -> requests.Response:
    """A GET on a new connection, so that either worker may take it."""
    return requests.get(url, headers={"Connection": "close", **headers}, timeout=30)


def pages_per_worker(data_dir: Path) -> list[float]:
    """The page requests each worker counted, from its own file in data_dir/metrics."""
    counts = []
    for path in sorted((data_dir / "metrics").glob("counter_*.db")):
        total = 0.0
        for key, count, _, _ in MmapedDict.read_all_values_from_file(str(path)):  # type: ignore[no-untyped-call]
            name, _, labels, _ = json.loads(key)
            if name == "pullthrough_http_requests" and labels.get("kind") == "page":
                total += count
        counts.append(total)
    return counts


@pytest.mark.parametrize("start", STARTS)
def test_counts_add_up_over_the_workers(
    upstream: Upstream, gunicorn_server: Callable[..., Server], tmp_path: Path, start: str
) -> None:
    text = config_text(upstream.index_url, tmp_path / "data")
    server = gunicorn_server(text, workers=2, start=start)
    page = server.index() + "shelf-reader/"
    sent = 0
    with ThreadPoolExecutor(8) as pool:
        for _ in range(50):  # batches until both workers have answered some (one is enough)
            answers = list(pool.map(lambda _: fresh_get(page, Accept=JSON), range(40)))
            assert {r.status_code for r in answers} == {200}
            sent += len(answers)
            if sum(1 for count in pages_per_worker(server.data_dir) if count) >= 2:
                break
    assert sum(1 for count in pages_per_worker(server.data_dir) if count) == 2

    assert fresh_get(server.index()).status_code == 200
    assert fresh_get(server.index() + "no-such-project/").status_code == 404
    assert fresh_get(server.url + "/no/such/thing").status_code == 404
    wheel = next(
        f
        for f in server.json_page("main", "shelf-reader")["files"]
        if f["filename"].endswith(".whl")
    )
    file_url = server.url + "/pulp/content/main/" + wheel["filename"]
    cold, warm = fresh_get(file_url), fresh_get(file_url)
    assert cold.status_code == warm.status_code == 200 and cold.content == warm.content
    size = len(cold.content)

    scrapes: list[Samples] = []

    def stored() -> bool:  # a small file is stored just after its answer, then stops counting
        scrapes.append(scrape(server))
        return value(scrapes[-1], "pullthrough_upstream_downloads_in_flight") == 0

    assert wait_until(stored, 10)
    samples = scrapes[-1]
    requests_total = "pullthrough_http_requests_total"
    assert value(samples, requests_total, kind="page", code="200") == sent + 1  # + json_page
    assert value(samples, requests_total, kind="page", code="404") == 1
    assert value(samples, requests_total, kind="project_list", code="200") == 1
    assert value(samples, requests_total, kind="other", code="404") == 1
    assert value(samples, requests_total, kind="file", code="200") == 2
    assert value(samples, requests_total, kind="api", code="200") >= 1  # the fixture's polls
    assert value(samples, "pullthrough_cache_misses_total") == 1
    assert value(samples, "pullthrough_cache_hits_total") == 1
    assert value(samples, "pullthrough_cache_stale_total") == 0
    assert value(samples, "pullthrough_file_bytes_served_total") == 2 * size
    assert value(samples, "pullthrough_cache_size_bytes") == size
    assert value(samples, "pullthrough_cache_files") == 1
    assert value(samples, "pullthrough_cache_limit_bytes") == 20 * 10**9
    seconds = "pullthrough_upstream_request_seconds_count"
    assert value(samples, seconds, remote="up", kind="file") == 1  # the one cold download
    # shelf-reader's page (once per worker at most), the project list, no-such-project's 404
    pages_fetched = len([r for r in upstream.log if r.server == "index" and r.method == "GET"])
    assert 3 <= pages_fetched <= 4, [(r.method, r.path, r.status) for r in upstream.log]
    assert value(samples, seconds, remote="up", kind="page") == pages_fetched
    for reason in ("held", "blocked", "quarantined"):
        key = (
            "pullthrough_policy_refusals_total",
            frozenset({("distribution", "main"), ("reason", reason)}),
        )
        assert samples[key] == 0

    # A scrape is not counted in itself; the next one sees them all.
    assert value(scrape(server), requests_total, kind="other", code="200") == len(scrapes)


def test_a_remote_only_a_private_distribution_uses_is_not_named(
    upstream: Upstream, gunicorn_server: Callable[..., Server], tmp_path: Path
) -> None:
    """/metrics answers anyone: like the status page, it names no remote that only a private
    distribution uses (its requests are counted all the same, and shown to nobody)."""
    with Upstream() as internal:
        internal.add_file("corp-lib", build_wheel(tmp_path / "wheels", "corp-lib", "1.0"))
        text = config_text(upstream.index_url, tmp_path / "data")
        text += f'[[remotes]]\nname = "corp-mirror"\nurl = "{internal.index_url}"\n'
        text += '[[distributions]]\nname = "corp"\nbase_path = "corp"\nremote = "corp-mirror"\n'
        server = gunicorn_server(with_auth(text + "private = true\n"))
        corp = server.url + "/pypi/corp/simple/corp-lib/"
        assert requests.get(corp, auth=AUTH, timeout=10).status_code == 200
        assert internal.requests_for("corp-lib")  # through corp-mirror
        assert fresh_get(server.index() + "shelf-reader/").status_code == 200  # through up
        named = {dict(labels).get("remote") for _, labels in scrape(server)} - {None}
        assert named == {"up"}
        status = requests.get(server.url + "/pulp/api/v3/status/", timeout=10).json()
        assert "corp-mirror" not in json.dumps(status)  # as the status page, which never did


def test_metrics_in_one_process(
    upstream: Upstream, live_server: Callable[..., Server], tmp_path: Path
) -> None:
    """Without gunicorn (no multiprocess folder) the counts are the process's own."""
    # a cache limit of one byte: every file is evicted once it is stored
    server = live_server(
        with_auth(config_text(upstream.index_url, tmp_path / "data", cache_max_size=1))
    )
    page = server.index() + "shelf-reader/"
    for _ in range(3):  # the first through Flask, then the warm path
        assert requests.get(page, timeout=10).status_code == 200
    for filename in ("shelf_reader-0.1-py3-none-any.whl", "shelf_reader-0.2-py3-none-any.whl"):
        answer = requests.get(f"{server.url}/pulp/content/main/{filename}", timeout=10)
        assert answer.status_code == 200
    api = Api(server.url)
    api.run("POST", "orphans/cleanup/", json={"orphan_protection_time": 0})
    upstream.fail_status = 500
    assert requests.get(server.index() + "winonly/", timeout=10).status_code == 502
    samples = scrape(server)
    assert value(samples, "pullthrough_http_requests_total", kind="page", code="200") == 3
    assert value(samples, "pullthrough_http_requests_total", kind="page", code="502") == 1
    assert value(samples, "pullthrough_upstream_errors_total", remote="up", kind="error") == 1
    assert value(samples, "pullthrough_cache_files") == 0
    assert value(samples, "pullthrough_cache_evictions_total") == 2
    assert value(samples, "pullthrough_tasks", state="completed") == 1
    assert value(samples, "pullthrough_tasks", state="running") == 0


def test_every_worker_sends_a_page_another_rendered(
    upstream: Upstream, gunicorn_server: Callable[..., Server], tmp_path: Path
) -> None:
    """A page is rendered once, by one worker; the other sends that rendering from its first
    request for it (web.shared), whichever worker each connection reaches."""
    server = gunicorn_server(config_text(upstream.index_url, tmp_path / "data"), workers=2)
    page = server.index() + "shelf-reader/"
    first = fresh_get(page, Accept=JSON, **{"Accept-Encoding": "gzip"})
    assert first.status_code == 200
    with diskcache.Cache(str(server.data_dir / "renders")) as shared:  # written after the answer
        assert wait_until(lambda: len(shared) > 0, timeout=10)
    with ThreadPoolExecutor(8) as pool:
        for _ in range(10):  # batches until both workers have answered some
            answers = list(
                pool.map(
                    lambda _: fresh_get(page, Accept=JSON, **{"Accept-Encoding": "gzip"}),
                    range(40),
                )
            )
            assert all(a.content == first.content for a in answers)
            if sum(1 for count in pages_per_worker(server.data_dir) if count) >= 2:
                break
    assert sum(1 for count in pages_per_worker(server.data_dir) if count) == 2
    assert value(scrape(server), "pullthrough_page_renders_total") == 1
