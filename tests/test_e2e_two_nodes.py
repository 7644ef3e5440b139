"""Two nodes, one cluster: two gunicorn servers with their own data folders, one PostgreSQL
catalog and one S3 bucket (SeaweedFS). Cold downloads are fetched once whatever node is asked,
an upload through one node is served by the other within a second, eviction keeps the bucket
under the cache limit across both, and a node killed mid-download leaves nothing behind."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine, make_url, text

from pullthrough.services.coordination import CHANGE_POLL_SECONDS, AdvisoryLocks
from pullthrough.storage.locks import stored_bytes
from support.api import PASSWORD, Api, legacy_upload, report, with_auth
from support.faults import kill_server
from support.packages import build_sdist, build_wheel
from support.postgres import private_database
from support.seaweed import S3Server
from support.servers import Server, config_text, wait_until
from support.tools import clean_env, run_pip
from support.upstream import Upstream

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

WHEEL = "shelf_reader-0.2-py3-none-any.whl"


@dataclass
class Cluster:
    a: Server
    b: Server
    s3: S3Server
    bucket: str
    database: str  # the catalog's URL

    def objects(self) -> dict[str, int]:
        listed = self.s3.client().list_objects_v2(Bucket=self.bucket)
        return {o["Key"]: o["Size"] for o in listed.get("Contents", [])}


def node_config(
    upstream: Upstream, data_dir: Path, database: str, s3: S3Server, bucket: str, max_size: int
) -> str:
    text = config_text(upstream.index_url, data_dir, cache_max_size=max_size)
    text = text.replace("[server]\n", f'[server]\ndatabase_url = "{database}"\n', 1)
    storage = {
        "backend": "s3",
        "s3_endpoint_url": s3.endpoint_url,
        "s3_bucket": bucket,
        "s3_access_key_id": s3.access_key,
        "s3_secret_access_key": s3.secret_key,
        "s3_addressing_style": "path",
    }
    text += "[storage]\n" + "".join(f'{k} = "{v}"\n' for k, v in storage.items())
    return with_auth(text)


@pytest.fixture
def cluster_of(
    upstream: Upstream,
    postgres_url: str,
    s3_server: S3Server,
    gunicorn_server: Callable[..., Server],
    tmp_path: Path,
) -> Iterator[Callable[[int], Cluster]]:
    with private_database(postgres_url) as database:

        def start(max_size: int = 10**9) -> Cluster:
            bucket = s3_server.bucket(f"cluster-{uuid.uuid4().hex[:12]}")
            nodes = [
                gunicorn_server(
                    node_config(upstream, tmp_path / name, database, s3_server, bucket, max_size)
                )
                for name in ("a", "b")
            ]
            return Cluster(nodes[0], nodes[1], s3_server, bucket, database)

        yield start


def get(url: str, timeout: float = 60, **kwargs: Any) -> requests.Response:
    with requests.get(url, timeout=timeout, **kwargs) as resp:
        _ = resp.content
    return resp


def test_cold_requests_on_both_nodes_fetch_the_file_once(
    cluster_of: Callable[..., Cluster], upstream: Upstream
) -> None:
    cluster = cluster_of()
    upstream.slow_files = 0.4  # the download lasts while every request arrives
    wanted = next(f for f in upstream.files_for("shelf-reader") if f.filename == WHEEL)
    urls = [f"{node.url}/pulp/content/main/{WHEEL}" for node in (cluster.a, cluster.b)] * 10
    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(get, urls))
    assert [r.status_code for r in answers] == [200] * 20
    assert {hashlib.sha256(r.content).hexdigest() for r in answers} == {wanted.sha256}
    assert len(upstream.requests_for(WHEEL, server="files", method="GET")) == 1
    key = f"{wanted.sha256[:2]}/{wanted.sha256[2:4]}/{wanted.sha256}"
    assert cluster.objects() == {key: wanted.size}


def test_an_upload_through_one_node_installs_through_the_other(
    cluster_of: Callable[..., Cluster], tmp_path: Path
) -> None:
    cluster = cluster_of()
    for node in (cluster.a, cluster.b):  # both have the distribution's page memo warm
        assert get(node.index() + "corp-tool/").status_code == 404
    requests.post(
        f"{cluster.a.url}/pulp/api/v3/repositories/python/python/",
        json={"name": "corp"},
        auth=("admin", PASSWORD),
        timeout=30,
    ).raise_for_status()
    wheel = build_wheel(tmp_path / "dist", "corp-tool", "1.0")
    repo = get(
        f"{cluster.a.url}/pulp/api/v3/repositories/python/python/?name=corp",
        auth=("admin", PASSWORD),
    ).json()["results"][0]
    requests.post(
        f"{cluster.a.url}/pulp/api/v3/distributions/python/pypi/",
        json={"name": "corp", "base_path": "corp", "repository": repo["pulp_href"]},
        auth=("admin", PASSWORD),
        timeout=30,
    ).raise_for_status()
    assert wait_until(lambda: get(cluster.b.index("corp")).status_code == 200, timeout=5)
    # Every process (node a's other gunicorn worker too) sees the new distribution within the
    # change signal's poll: node b seeing it says nothing of when node a's second worker does.
    time.sleep(CHANGE_POLL_SECONDS)
    cmd = [sys.executable, "-m", "twine", "upload", "--non-interactive"]
    cmd += ["--repository-url", f"{cluster.a.url}/pypi/corp/legacy/"]
    cmd += ["-u", "admin", "-p", PASSWORD, str(wheel)]
    proc = subprocess.run(
        cmd, env=clean_env(), capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    uploaded = time.monotonic()
    page = cluster.b.index("corp") + "corp-tool/"
    assert wait_until(lambda: wheel.name in get(page).text, timeout=1.0, interval=0.05)
    seen = time.monotonic() - uploaded
    assert seen <= 1.0, seen

    dest = tmp_path / "dl"
    run_pip(["download", "--no-deps", "-d", str(dest), "-i", cluster.b.index("corp"), "corp-tool"])
    assert (dest / wheel.name).read_bytes() == wheel.read_bytes()


def test_eviction_keeps_the_bucket_under_the_limit_across_nodes(
    cluster_of: Callable[..., Cluster], upstream: Upstream
) -> None:
    names = ("shelf-reader", "meta-lib", "winonly", "app-with-dep")
    files = [f for name in names for f in upstream.files_for(name) if f.filename.endswith(".whl")]
    limit = 3 * max(f.size for f in files)  # room for a few, not for all
    assert sum(f.size for f in files) > limit
    cluster = cluster_of(limit)
    for i, f in enumerate(files):
        node = (cluster.a, cluster.b)[i % 2]
        assert get(f"{node.url}/pulp/content/main/{f.filename}").status_code == 200

    def within() -> bool:
        return sum(cluster.objects().values()) <= limit

    assert wait_until(within, timeout=10), cluster.objects()
    kept = cluster.objects()
    last = files[-1]  # the most recent stays
    assert f"{last.sha256[:2]}/{last.sha256[2:4]}/{last.sha256}" in kept, kept


def _descendants(pid: int) -> list[int]:
    """A process's children, grandchildren...: from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def test_a_node_killed_mid_download_leaves_nothing_and_the_other_serves(
    cluster_of: Callable[..., Cluster], upstream: Upstream
) -> None:
    cluster = cluster_of()
    wanted = next(f for f in upstream.files_for("shelf-reader") if f.filename == WHEEL)
    upstream.chunk_size = 64
    upstream.slow_files = 0.2  # several seconds for the whole file
    started = threading.Event()

    def download_on_a() -> None:
        try:
            with requests.get(
                f"{cluster.a.url}/pulp/content/main/{WHEEL}", stream=True, timeout=30
            ) as resp:
                started.set()
                for _ in resp.iter_content(64):
                    pass
        except requests.RequestException:
            pass  # cut off by the kill
        finally:
            started.set()

    thread = threading.Thread(target=download_on_a)
    thread.start()
    assert wait_until(
        lambda: upstream.requests_for(WHEEL, server="files", method="GET"), timeout=10
    )
    time.sleep(0.5)
    assert cluster.a.pid is not None
    for pid in [cluster.a.pid, *_descendants(cluster.a.pid)]:
        os.kill(pid, signal.SIGKILL)
    thread.join(timeout=30)
    assert cluster.objects() == {}  # nothing partial is visible

    upstream.slow_files = 0.0
    body = get(f"{cluster.b.url}/pulp/content/main/{WHEEL}", timeout=30).content
    assert hashlib.sha256(body).hexdigest() == wanted.sha256
    # stored just after the client has its last byte
    assert wait_until(lambda: list(cluster.objects().values()) == [wanted.size])


def test_a_node_killed_before_it_records_a_file_leaves_no_object_counted_by_nothing(
    cluster_of: Callable[..., Cluster], upstream: Upstream
) -> None:
    """A cold file is put in the bucket and entered in the cache ledger (`cache_entries`): a
    node killed between the two must not leave an object nothing records - never counted in
    the cache's size, never evicted, never removed. Here the ledger's table is held locked (as
    a long transaction would hold it), the node's write to it waits, and it is killed there."""
    cluster = cluster_of()
    wanted = next(f for f in upstream.files_for("shelf-reader") if f.filename == WHEEL)
    waiting = text(
        "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
        " WHERE c.relname = 'cache_entries' AND NOT l.granted"
    )
    url = f"{cluster.a.url}/pulp/content/main/{WHEEL}"
    engine = create_engine(cluster.database)
    try:
        with engine.connect() as holder, engine.connect() as observer:
            holder.execute(text("LOCK TABLE cache_entries IN EXCLUSIVE MODE"))
            with ThreadPoolExecutor(1) as pool:
                answer = pool.submit(get, url, 30)
                assert wait_until(lambda: observer.execute(waiting).scalar(), timeout=30)
                kill_server(cluster.a)
                holder.rollback()
                with contextlib.suppress(requests.RequestException):
                    answer.result(timeout=30)
        with engine.connect() as conn:
            entries = set(conn.execute(text("SELECT sha256 FROM cache_entries")).scalars())
    finally:
        engine.dispose()
    packages = {p["sha256"] for p in Api(cluster.b.url).packages()}
    stored = {name.rpartition("/")[2] for name in cluster.objects()}
    assert stored <= entries | packages, (stored, entries, packages)

    body = get(f"{cluster.b.url}/pulp/content/main/{WHEEL}").content
    assert hashlib.sha256(body).hexdigest() == wanted.sha256
    assert wait_until(lambda: list(cluster.objects().values()) == [wanted.size])


def test_orphan_cleanup_aborts_the_uploads_of_dead_writers_only(
    cluster_of: Callable[..., Cluster],
) -> None:
    """Multipart uploads begun and never finished under the cluster's keys: orphan cleanup
    (on any node) aborts those no live writer holds the bytes' lock of - a killed node's -
    and leaves the one a writer on another node is sending right now, however old, and the
    keys that are not the cluster's."""
    cluster = cluster_of()
    client = cluster.s3.client()
    dead, live = hashlib.sha256(b"dead").hexdigest(), hashlib.sha256(b"live").hexdigest()
    keys = {sha: f"{sha[:2]}/{sha[2:4]}/{sha}" for sha in (dead, live)}
    foreign = "notes/f4/1e/not-ours"
    for name in [*keys.values(), foreign]:
        upload = client.create_multipart_upload(Bucket=cluster.bucket, Key=name)
        client.upload_part(
            Bucket=cluster.bucket,
            Key=name,
            UploadId=upload["UploadId"],
            PartNumber=1,
            Body=os.urandom(5 * 1024 * 1024),
        )

    def unfinished() -> set[str]:
        found = client.list_multipart_uploads(Bucket=cluster.bucket).get("Uploads", [])
        return {u["Key"] for u in found}

    api = Api(cluster.b.url)
    locks = AdvisoryLocks(make_url(cluster.database))
    writer = stored_bytes(locks, live)  # held as a node storing those bytes holds it
    try:
        with writer.held(timeout=10):
            task = api.run("POST", "orphans/cleanup/", json={"orphan_protection_time": 0})
            assert unfinished() == {keys[live], foreign}
            assert report(task, "clean-up.unfinished")["done"] == 1
        task = api.run("POST", "orphans/cleanup/", json={"orphan_protection_time": 0})
        assert unfinished() == {foreign}
        assert report(task, "clean-up.unfinished")["done"] == 1
    finally:
        locks.close()


def test_an_s3_outage_is_a_503_on_every_node_and_both_resume(
    cluster_of: Callable[..., Cluster], upstream: Upstream
) -> None:
    cluster = cluster_of()
    urls = [f"{node.url}/pulp/content/main/{WHEEL}" for node in (cluster.a, cluster.b)]
    body = get(urls[0]).content
    auth = ("admin", PASSWORD)
    content = f"{cluster.b.url}/pulp/api/v3/content/python/packages/"
    assert wait_until(lambda: get(content, auth=auth).json()["count"] == 1)
    with cluster.s3.stopped():
        for url in urls:
            down = get(url)
            assert down.status_code == 503 and "file store" in down.text, down.text
        cold = get(f"{cluster.b.url}/pulp/content/main/meta_lib-2.0-py3-none-any.whl")
        assert cold.status_code == 503
    assert [get(url).content for url in urls] == [body, body]
    assert get(content, auth=auth).json()["count"] == 1  # the catalog is as it was


def _corp_distribution(cluster: Cluster) -> None:
    """A repository `corp` and its distribution (uploads allowed), made through node a and
    seen by both nodes' every worker."""
    api = Api(cluster.a.url)
    repo = api.call("POST", "repositories/python/python/", json={"name": "corp"})
    body = {"name": "corp", "base_path": "corp", "repository": repo["pulp_href"]}
    api.call("POST", "distributions/python/pypi/", json=body)
    assert wait_until(lambda: get(cluster.b.index("corp")).status_code == 200, timeout=5)
    time.sleep(CHANGE_POLL_SECONDS)  # every worker of both nodes


def test_one_filename_uploaded_with_other_bytes_on_both_nodes_at_once_is_refused_once(
    cluster_of: Callable[..., Cluster], tmp_path: Path
) -> None:
    """Two uploads of one new filename, different bytes, through two nodes at the same moment:
    one is kept, the other refused as a file that exists (400), as one after the other is -
    never a 500 (PostgreSQL runs both transactions at once; SQLite one after the other)."""
    cluster = cluster_of()
    _corp_distribution(cluster)

    def at_once(files: list[Path]) -> tuple[int, ...]:
        barrier = threading.Barrier(2)

        def send(node: Server, path: Path) -> int:
            barrier.wait()
            return legacy_upload(node.url, "corp", path).status_code

        with ThreadPoolExecutor(2) as pool:
            return tuple(sorted(pool.map(send, (cluster.a, cluster.b), files)))

    answers = []
    for n in range(6):
        wheels = [
            # other metadata too: not one lock of the same metadata's bytes for both
            build_wheel(tmp_path / side, "corp-tool", f"1.{n}", requires_dist=[side])
            for side in ("x", "y")
        ]
        assert wheels[0].name == wheels[1].name
        answers.append(at_once(wheels))
        # and one sdist per release: 2.n and 2.n.0, the same release
        sdists = [build_sdist(tmp_path / f"s{n}", "corp-tool", v) for v in (f"2.{n}", f"2.{n}.0")]
        answers.append(at_once(sdists))
    assert answers == [(200, 400)] * 12, answers
    content = Api(cluster.b.url).get("content/python/packages/", limit=100)
    assert content["count"] == 12


def test_requests_waiting_for_a_download_outlive_the_end_of_their_database_sessions(
    cluster_of: Callable[..., Cluster], upstream: Upstream, postgres_url: str
) -> None:
    """Every session of the catalog ended at once (a pooler or failover restarting, an
    operator's pg_terminate_backend) while requests on both nodes wait for one cold download:
    the catalog answers again at once, so they go on waiting (or fetch the file themselves,
    the lock having ended with its holder's session) and get the verified file, not a 503."""
    cluster = cluster_of()
    wanted = next(f for f in upstream.files_for("shelf-reader") if f.filename == WHEEL)
    upstream.chunk_size = 64
    upstream.slow_files = 0.1  # about 1.5 s for the whole file
    url = f"/pulp/content/main/{WHEEL}"
    nodes = (cluster.a, cluster.b, cluster.b, cluster.a)
    with ThreadPoolExecutor(len(nodes)) as pool:
        first = pool.submit(get, cluster.a.url + url)
        assert wait_until(
            lambda: upstream.requests_for(WHEEL, server="files", method="GET"), timeout=10
        )
        waiting = [pool.submit(get, node.url + url) for node in nodes[1:]]
        time.sleep(0.5)  # they wait for the download's lock
        admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                ended = conn.execute(
                    text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                        " WHERE datname = :n AND pid <> pg_backend_pid()"
                    ),
                    {"n": make_url(cluster.database).database},
                ).scalar()
        finally:
            admin.dispose()
        assert ended
        answers = [first.result(), *(w.result() for w in waiting)]
    assert [(r.status_code, r.text[:80] if r.status_code != 200 else "") for r in answers] == [
        (200, "")
    ] * len(answers)
    assert {hashlib.sha256(r.content).hexdigest() for r in answers} == {wanted.sha256}
    key = f"{wanted.sha256[:2]}/{wanted.sha256[2:4]}/{wanted.sha256}"
    assert wait_until(lambda: cluster.objects() == {key: wanted.size}), cluster.objects()


def test_a_revoked_token_and_a_distribution_made_private_hold_on_the_other_node_at_once(
    cluster_of: Callable[..., Cluster],
) -> None:
    """Access changed through one node holds on the other within the change signal's poll,
    however warm its pages: a token revoked through node a is refused by node b, and a
    distribution made private through node a serves no anonymous reader on node b."""
    cluster = cluster_of()
    api = Api(cluster.a.url)
    secret = api.create("tokens/", name="ci", scopes=["admin"])["token"]
    remotes = f"{cluster.b.url}/pulp/api/v3/remotes/python/python/"
    urls = [
        cluster.b.index(),
        cluster.b.index() + "shelf-reader/",
        f"{cluster.b.url}/pulp/content/main/{WHEEL}",
        f"{cluster.b.url}/pypi/main/pypi/shelf-reader/json",
    ]
    for _ in range(2):  # warm, in both of node b's workers (most likely)
        assert get(remotes, auth=("__token__", secret)).status_code == 200
        assert [get(url).status_code for url in urls] == [200] * len(urls)

    api.call("POST", api.one("tokens/", name="ci")["pulp_href"] + "revoke/")
    assert get(remotes, auth=("__token__", secret)).status_code == 401
    main = api.one("distributions/python/pypi/", base_path="main")
    api.call("PATCH", main["pulp_href"], json={"private": True})
    changed = time.monotonic()
    time.sleep(CHANGE_POLL_SECONDS)
    for _ in range(2):
        assert [get(url).status_code for url in urls] == [401] * len(urls)
    assert time.monotonic() - changed < 5
    assert get(urls[2], auth=("admin", PASSWORD)).status_code == 200
