"""Files in S3-compatible storage: a real S3 server (SeaweedFS, on loopback) under the cache,
uploads, metadata, sync, orphan cleanup and eviction; objects visible only when verified;
Range, HEAD and presigned redirects; an outage answered 503 and survived."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import pytest
import requests
from werkzeug.http import parse_options_header

from support.api import Api, legacy_upload, report, with_auth
from support.faults import big_wheel, kill_server
from support.packages import build_wheel
from support.seaweed import S3Server
from support.servers import Server, config_text, stored_files, wait_until
from support.tools import clean_env, make_venv, run_pip
from support.upstream import Upstream

pytestmark = pytest.mark.e2e

WHEEL = "shelf_reader-0.2-py3-none-any.whl"
MIB = 1024 * 1024
_buckets = itertools.count()


def s3_config(upstream: Upstream, data_dir: Path, s3: S3Server, bucket: str, **extra: Any) -> str:
    storage = {
        "backend": "s3",
        "s3_endpoint_url": s3.endpoint_url,
        "s3_bucket": bucket,
        "s3_region": s3.region,
        "s3_prefix": "files/",
        "s3_access_key_id": s3.access_key,
        "s3_secret_access_key": s3.secret_key,
        "s3_addressing_style": "path",
        **{k: v for k, v in extra.items() if k.startswith("s3_")},
    }
    cache = {k: v for k, v in extra.items() if k.startswith("cache_")}
    text = config_text(upstream.index_url, data_dir, **cache)
    text += "[storage]\n" + "".join(f'{k} = "{v}"\n' for k, v in storage.items())
    return with_auth(text)


def objects(s3: S3Server, bucket: str) -> dict[str, int]:
    """Every object in the bucket: key -> size."""
    listed = s3.client().list_objects_v2(Bucket=bucket)
    return {o["Key"]: o["Size"] for o in listed.get("Contents", [])}


def unfinished(s3: S3Server, bucket: str) -> dict[str, int]:
    """The multipart uploads begun and neither completed nor aborted under the server's
    prefix: key -> how many parts the bucket holds of it."""
    client = s3.client()
    listed = client.list_multipart_uploads(Bucket=bucket, Prefix="files/").get("Uploads", [])
    return {
        u["Key"]: len(
            client.list_parts(Bucket=bucket, Key=u["Key"], UploadId=u["UploadId"]).get("Parts", [])
        )
        for u in listed
    }


def key(sha256: str) -> str:
    return f"files/{sha256[:2]}/{sha256[2:4]}/{sha256}"


def get(url: str, timeout: float = 30, **kwargs: Any) -> requests.Response:
    with requests.get(url, timeout=timeout, **kwargs) as resp:
        _ = resp.content
    return resp


def signed_for_its_host(url: str, secret_key: str) -> bool:
    """Whether a presigned URL's SigV4 signature holds for the host it names (RFC-style
    recomputation: SeaweedFS accepts a signature made for another Host, S3 does not)."""
    parts = urlsplit(url)
    pairs = [p.split("=", 1) for p in parts.query.split("&")]
    given = dict(pairs)
    signature = given.pop("X-Amz-Signature")
    query = "&".join(f"{k}={v}" for k, v in sorted(given.items()))
    canonical = f"GET\n{parts.path}\n{query}\nhost:{parts.netloc}\n\nhost\nUNSIGNED-PAYLOAD"
    credential = unquote(given["X-Amz-Credential"])
    scope = credential.split("/", 1)[1]
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    to_sign = f"AWS4-HMAC-SHA256\n{given['X-Amz-Date']}\n{scope}\n{digest}"
    key = ("AWS4" + secret_key).encode()
    for part in scope.split("/"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.compare_digest(
        hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest(), signature
    )


@pytest.fixture
def bucket(s3_server: S3Server) -> str:
    return s3_server.bucket(f"pullthrough-{next(_buckets)}")


@pytest.fixture
def on_s3(
    upstream: Upstream,
    s3_server: S3Server,
    bucket: str,
    live_server: Callable[..., Server],
    tmp_path: Path,
) -> Callable[..., Server]:
    """Start a server (in this process) whose files are in `bucket`; `extra` settings."""
    return lambda **extra: live_server(
        s3_config(upstream, tmp_path / "d", s3_server, bucket, **extra)
    )


def test_pip_installs_through_a_cache_in_s3(
    upstream: Upstream,
    s3_server: S3Server,
    bucket: str,
    gunicorn_server: Callable[..., Server],
    tmp_path: Path,
) -> None:
    server = gunicorn_server(s3_config(upstream, tmp_path / "d", s3_server, bucket))
    python = make_venv(tmp_path / "venv")
    run_pip(["install", "--index-url", server.index(), "app-with-dep"], python=python, timeout=120)
    app = upstream.files_for("app-with-dep")[-1]
    shelf = next(f for f in upstream.files_for("shelf-reader") if f.filename == WHEEL)
    wanted = {key(app.sha256): app.size, key(shelf.sha256): shelf.size}
    # each stored just after pip had its last byte
    assert wait_until(lambda: wanted.items() <= objects(s3_server, bucket).items())
    assert stored_files(server.data_dir) == []  # nothing kept on local disk
    assert len(upstream.requests_for(WHEEL, server="files")) == 1

    # served from the bucket now: whole, by Range, and HEAD
    url = f"{server.url}/pulp/content/main/{WHEEL}"
    body = get(url).content
    assert hashlib.sha256(body).hexdigest() == shelf.sha256
    part = get(url, headers={"Range": "bytes=10-99"})
    assert part.status_code == 206 and part.content == body[10:100]
    assert part.headers["Content-Range"] == f"bytes 10-99/{len(body)}"
    tail = get(url, headers={"Range": "bytes=-20"})
    assert tail.status_code == 206 and tail.content == body[-20:]
    with requests.head(url, timeout=30) as head:
        assert int(head.headers["Content-Length"]) == len(body)
        assert head.headers["Accept-Ranges"] == "bytes"
    assert len(upstream.requests_for(WHEEL, server="files")) == 1

    # PEP 658 metadata read out of the wheel in the bucket
    metadata = get(f"{url}.metadata")
    assert metadata.status_code == 200 and b"Name: shelf-reader" in metadata.content


def test_uploads_sync_cleanup_and_eviction_in_s3(
    on_s3: Callable[..., Server],
    upstream: Upstream,
    s3_server: S3Server,
    bucket: str,
    tmp_path: Path,
) -> None:
    server = on_s3(cache_max_size=3000)
    api = Api(server.url)
    repo = api.repository("corp")
    api.distribution("corp", repository=repo["pulp_href"])
    wheel = build_wheel(tmp_path / "w", "corp-lib", "1.0")
    assert legacy_upload(server.url, "corp", wheel).status_code == 200
    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    assert objects(s3_server, bucket)[key(sha)] == wheel.stat().st_size
    served = get(f"{server.url}/pulp/content/corp/{wheel.name}")
    assert served.content == wheel.read_bytes()
    assert b"Name: corp-lib" in get(f"{server.url}/pulp/content/corp/{wheel.name}.metadata").content

    # sync a remote into a repository: its files land in the bucket
    remote = api.remote(
        "up-sync",
        upstream.index_url,
        includes=["shelf-reader"],
        policy="immediate",
        prereleases=True,
    )
    mirror = api.repository("mirror", remote=remote["pulp_href"])
    assert api.sync(mirror, remote)["state"] == "completed"
    synced = {f.sha256 for f in upstream.files_for("shelf-reader")}
    assert {key(s) for s in synced} <= set(objects(s3_server, bucket))

    # repair: a lost object and one with other bytes are fetched again and put back
    lost, rotten = sorted(synced)[:2]
    client = s3_server.client()
    client.delete_object(Bucket=bucket, Key=key(lost))
    client.put_object(Bucket=bucket, Key=key(rotten), Body=b"not the wheel")
    repaired = api.run("POST", api.latest(mirror) + "repair/", json={})
    assert [report(repaired, c)["done"] for c in ("repair.missing", "repair.corrupted")] == [1, 1]
    assert report(repaired, "repair.repaired")["done"] == 2
    for damaged in (lost, rotten):
        body = client.get_object(Bucket=bucket, Key=key(damaged))["Body"].read()
        assert hashlib.sha256(body).hexdigest() == damaged

    # eviction keeps the cached (orphaned) files within cache.max_size, across the bucket
    cached: list[str] = []
    for name in ("meta-lib", "winonly", "app-with-dep"):
        for f in upstream.files_for(name):
            assert get(f"{server.url}/pulp/content/main/{f.filename}").status_code == 200
            cached.append(key(f.sha256))
    in_bucket = objects(s3_server, bucket)
    kept = [k for k in cached if k in in_bucket]
    assert kept and len(kept) < len(cached)
    assert sum(in_bucket[k] for k in kept) <= 3000
    assert key(sha) in in_bucket  # a repository's file is never evicted

    # orphan cleanup: a package in no repository (version) goes, with its object; the
    # cache's files are the LRU's business, the synced ones are in a repository
    api.run("DELETE", repo["pulp_href"])
    api.run("POST", "orphans/cleanup/", json={"orphan_protection_time": 0})
    after = objects(s3_server, bucket)
    assert key(sha) not in after
    assert all(k in after for k in kept) and {key(s) for s in synced} <= set(after)


def test_bad_bytes_never_become_an_object(
    on_s3: Callable[..., Server],
    upstream: Upstream,
    s3_server: S3Server,
    bucket: str,
) -> None:
    server = on_s3()
    upstream.corrupt_files = True
    resp = get(f"{server.url}/pulp/content/main/{WHEEL}")
    assert resp.status_code == 502, resp.status_code
    assert objects(s3_server, bucket) == {}
    upstream.corrupt_files = False
    assert get(f"{server.url}/pulp/content/main/{WHEEL}").status_code == 200
    # stored just after the client has its last byte
    assert wait_until(lambda: len(objects(s3_server, bucket)) == 1)


@pytest.mark.slow
def test_a_server_killed_while_it_stores_a_big_file_leaves_no_parts_for_good(
    upstream: Upstream,
    s3_server: S3Server,
    bucket: str,
    gunicorn_server: Callable[..., Server],
    tmp_path: Path,
) -> None:
    """A file past the multipart threshold goes to the bucket in parts; a server killed while
    it sends them (here: the bucket hangs on a part, then the server is SIGKILLed) leaves an
    upload begun, its parts in the bucket, listed nowhere and counted by no one. The server
    started again aborts it."""
    wheel = upstream.add_file("big-wheel", big_wheel(tmp_path / "w", "big-wheel", "1.0", 70 * MIB))
    config = s3_config(upstream, tmp_path / "d", s3_server, bucket)
    server = gunicorn_server(config)
    download = ["download", "--no-deps", "big-wheel", "-d"]
    pip = subprocess.Popen(
        [sys.executable, "-m", "pip", "--isolated", "--no-cache-dir", "--timeout", "60"]
        + [*download, str(tmp_path / "got"), "--index-url", server.index()],
        env=clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_until(lambda: any(unfinished(s3_server, bucket).values()), timeout=60)
        with s3_server.paused():  # its next part hangs: the kill comes before the upload ends
            kill_server(server)
    finally:
        pip.kill()
        pip.wait(timeout=30)
    left = unfinished(s3_server, bucket)
    assert list(left) == [key(wheel.sha256)] and left[key(wheel.sha256)] >= 1
    assert objects(s3_server, bucket) == {}

    again = gunicorn_server(config)
    assert wait_until(lambda: not unfinished(s3_server, bucket), timeout=20), unfinished(
        s3_server, bucket
    )
    run_pip([*download, str(tmp_path / "again"), "--index-url", again.index()], timeout=120)
    assert wait_until(lambda: objects(s3_server, bucket) == {key(wheel.sha256): wheel.size})


def test_orphan_cleanup_removes_objects_nothing_records(
    on_s3: Callable[..., Server],
    s3_server: S3Server,
    bucket: str,
) -> None:
    """An object under the server's keys that no package, artifact, chunk or ledger entry
    records (a node of an earlier release, killed between storing a cached file and recording
    it, left such objects) is removed by orphan cleanup once past its protection time; the
    cache's files, and keys that are not the server's, stay."""
    server = on_s3()
    assert get(f"{server.url}/pulp/content/main/{WHEEL}").status_code == 200
    assert wait_until(lambda: len(objects(s3_server, bucket)) == 1)
    cached = set(objects(s3_server, bucket))
    left = b"a wheel a killed node stored and never recorded"
    sha = hashlib.sha256(left).hexdigest()
    foreign = ["files/notes.txt", f"elsewhere/{sha[:2]}/{sha[2:4]}/{sha}", f"files/{sha}"]
    client = s3_server.client()
    for name in [key(sha), *foreign]:
        client.put_object(Bucket=bucket, Key=name, Body=left)
    api = Api(server.url)

    task = api.run("POST", "orphans/cleanup/", json={})  # within the protection time: kept
    assert report(task, "clean-up.unrecorded")["done"] == 0
    assert key(sha) in objects(s3_server, bucket)
    task = api.run("POST", "orphans/cleanup/", json={"orphan_protection_time": 0})
    assert report(task, "clean-up.unrecorded")["done"] == 1
    assert set(objects(s3_server, bucket)) == cached | set(foreign)
    assert get(f"{server.url}/pulp/content/main/{WHEEL}").status_code == 200


def test_files_by_presigned_redirect(
    on_s3: Callable[..., Server],
    s3_server: S3Server,
) -> None:
    server = on_s3(s3_redirect="5m")
    url = f"{server.url}/pulp/content/main/{WHEEL}"
    first = get(url)  # cold: streamed while it is fetched
    assert first.status_code == 200
    second = get(url, allow_redirects=False)
    assert second.status_code == 302
    location = second.headers["Location"]
    assert location.startswith(s3_server.endpoint_url) and "X-Amz-Signature" in location
    direct = get(location)
    assert direct.content == first.content
    ranged = get(location, headers={"Range": "bytes=0-9"})
    assert ranged.status_code == 206 and ranged.content == first.content[:10]


def test_a_redirected_file_keeps_its_name_whatever_characters_it_holds(
    upstream: Upstream,
    s3_server: S3Server,
    bucket: str,
    gunicorn_server: Callable[..., Server],
    tmp_path: Path,
) -> None:
    """The presigned URL has the object store name the file (Content-Disposition, which pip
    saves a download under). An upstream may list a name with a quote, a semicolon or a letter
    past ASCII: the quote was written into the header unescaped, and the name came back cut
    at it (pip would have saved `acme-1.0`); one past ASCII goes in `filename*`."""
    names = ['acme-1.0"x.tar.gz', "acme-1.0;x=y.tar.gz", "acme-1.0\u00e9.tar.gz"]
    for name in names:
        (tmp_path / "up").mkdir(exist_ok=True)
        (tmp_path / "up" / name).write_bytes(b"not really an sdist: " + name.encode())
        upstream.add_file("acme", tmp_path / "up" / name)
    server = gunicorn_server(
        s3_config(upstream, tmp_path / "d", s3_server, bucket, s3_redirect="5m")
    )
    for name in names:
        url = f"{server.url}/pulp/content/main/{quote(name)}"
        assert get(url).status_code == 200, name  # stored, streamed from here
        moved = get(url, allow_redirects=False)
        assert moved.status_code == 302, name
        sent = get(moved.headers["Location"])
        assert sent.content == b"not really an sdist: " + name.encode()
        disposition = sent.headers["Content-Disposition"].encode("latin-1").decode()
        assert parse_options_header(disposition)[1].get("filename") == name, disposition


@pytest.mark.slow
def test_uv_keeps_a_redirected_file_as_it_keeps_a_streamed_one(
    upstream: Upstream,
    s3_server: S3Server,
    bucket: str,
    gunicorn_server: Callable[..., Server],
    tmp_path: Path,
) -> None:
    """A stored file never changes: its answer says so (immutable), through the object store
    too. The object store's answer said nothing, so uv, which keeps it under the URL it asked
    for, asked again on every install (302, then a conditional GET of the object)."""
    server = gunicorn_server(
        s3_config(upstream, tmp_path / "d", s3_server, bucket, s3_redirect="5m")
    )
    url = f"{server.url}/pulp/content/main/{WHEEL}"
    get(url)  # cold: streamed, then stored
    assert wait_until(lambda: len(objects(s3_server, bucket)) == 1)
    moved = get(url, allow_redirects=False)
    assert moved.status_code == 302
    direct = get(moved.headers["Location"])
    assert direct.headers["Cache-Control"] == "max-age=31536000, immutable"

    python = make_venv(tmp_path / "venv")
    uv = [sys.executable, "-m", "uv", "pip", "install", "--python", str(python), "-v",
          "--index-url", server.index(), "--cache-dir", str(tmp_path / "uv"), "--reinstall",
          "shelf-reader==0.2"]  # fmt: skip
    for _ in range(2):
        done = subprocess.run(uv, env=clean_env(), capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
    asked = [line for line in done.stderr.splitlines() if WHEEL in line and "request" in line]
    assert not asked, asked  # the second install used what uv kept


def test_a_presigned_url_is_valid_at_least_as_long_as_set(
    on_s3: Callable[..., Server],
) -> None:
    """X-Amz-Expires counts whole seconds: a fraction is rounded up, never down (500ms was a
    URL expired at once, 403 for every client; 8d was refused by S3: not accepted now), and one
    more, as X-Amz-Date is the signing second's start (a 2 s URL signed at .9 lived 1.1 s)."""
    server = on_s3(s3_redirect="1500ms")
    url = f"{server.url}/pulp/content/main/{WHEEL}"
    body = get(url).content  # cold: streamed, then stored
    moved = get(url, allow_redirects=False)
    assert moved.status_code == 302
    assert parse_qs(urlsplit(moved.headers["Location"]).query)["X-Amz-Expires"] == ["3"]
    time.sleep(1.6)  # past the 1.5 s set
    followed = get(moved.headers["Location"])
    assert followed.status_code == 200, followed.text[:300]
    assert followed.content == body


def test_an_s3_outage_is_a_clear_503_and_service_resumes(
    on_s3: Callable[..., Server],
    s3_server: S3Server,
) -> None:
    server = on_s3()
    api = Api(server.url)
    url = f"{server.url}/pulp/content/main/{WHEEL}"
    body = get(url).content

    def catalogued() -> set[str]:
        return {p["filename"] for p in api.get("content/python/packages/")["results"]}

    assert wait_until(lambda: catalogued() == {WHEEL})  # recorded once the client had it all
    with s3_server.stopped():
        down = get(url, timeout=60)
        assert down.status_code == 503, down.text
        assert "file store cannot be reached" in down.text
        assert down.headers["Retry-After"]
        cold = get(f"{server.url}/pulp/content/main/meta_lib-2.0-py3-none-any.whl", timeout=60)
        assert cold.status_code == 503, cold.status_code  # fetched and verified, not storable
    assert get(url).content == body
    assert catalogued() == {WHEEL}  # the refused download left nothing behind
    cold = get(f"{server.url}/pulp/content/main/meta_lib-2.0-py3-none-any.whl")
    assert cold.status_code == 200
    assert wait_until(lambda: catalogued() == {WHEEL, "meta_lib-2.0-py3-none-any.whl"})


def test_presigned_urls_name_the_public_endpoint_clients_reach(
    on_s3: Callable[..., Server],
    upstream: Upstream,
    s3_server: S3Server,
    bucket: str,
    tmp_path: Path,
) -> None:
    """The server reaches the object store at an internal address that clients may not reach;
    a redirect names the public one, signed for its host (SigV4 signs the Host header): here
    the server dials 127.0.0.1 and clients are sent to localhost."""
    internal = urlsplit(s3_server.endpoint_url)
    public = f"http://localhost:{internal.port}"
    server = on_s3(s3_redirect="5m", s3_public_endpoint_url=public)
    url = f"{server.url}/pulp/content/main/{WHEEL}"
    get(url)  # cold: streamed, then stored
    assert wait_until(lambda: len(objects(s3_server, bucket)) == 1)
    moved = get(url, allow_redirects=False)
    assert moved.status_code == 302
    location = moved.headers["Location"]
    assert location.startswith(f"{public}/{bucket}/files/")
    assert signed_for_its_host(location, s3_server.secret_key)
    internal_host = location.replace(f"//localhost:{internal.port}", f"//{internal.netloc}", 1)
    assert not signed_for_its_host(internal_host, s3_server.secret_key)  # SigV4 signs the Host

    shelf = next(f for f in upstream.files_for("shelf-reader") if f.filename == WHEEL)
    run_pip(["download", "--no-deps", "--dest", str(tmp_path / "got"), "--index-url",
             server.index(), "shelf-reader==0.2"], timeout=120)  # fmt: skip
    got = tmp_path / "got" / WHEEL
    assert hashlib.sha256(got.read_bytes()).hexdigest() == shelf.sha256


def test_a_redirecting_server_answers_conditions_as_a_streaming_one(
    on_s3: Callable[..., Server],
    s3_server: S3Server,
    bucket: str,
) -> None:
    """A client that holds the file (If-None-Match with its ETag) gets a 304, not a 302 that
    has it download the file again; a condition the file fails is a 412: what the same server
    streaming its files answers, with the 302 in place of the 200."""
    redirecting = on_s3(s3_redirect="5m")
    streaming = on_s3()  # the same data folder and bucket, files sent through the server
    url = f"{redirecting.url}/pulp/content/main/{WHEEL}"
    get(url)  # cold: streamed, then stored
    assert wait_until(lambda: len(objects(s3_server, bucket)) == 1)
    with requests.head(url, timeout=30) as head:  # a stored file's ETag: its sha256
        etag = head.headers["ETag"]
    cases = [  # the conditions, and what the streaming server answers
        ({"If-None-Match": etag}, 304),
        ({"If-None-Match": f'W/{etag}, "other"'}, 304),
        ({"If-None-Match": "*"}, 304),
        ({"If-None-Match": '"other"'}, 200),
        ({"If-Match": '"other"'}, 412),
        ({"If-Match": etag, "If-None-Match": etag}, 304),
        # a stored file has no Last-Modified: a date is no reason not to send it
        ({"If-Modified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"}, 200),
    ]
    streamed, redirected, expected = [], [], []
    for headers, status in cases:
        sent = get(f"{streaming.url}/pulp/content/main/{WHEEL}", headers=headers)
        moved = get(url, headers=headers, allow_redirects=False)
        streamed.append(sent.status_code)
        redirected.append(moved.status_code)
        expected.append(302 if status == 200 else status)
        if moved.status_code in (304, 412):
            assert moved.headers["ETag"] == etag and "Location" not in moved.headers
    assert streamed == [status for _, status in cases]
    assert redirected == expected


def test_a_redirect_from_a_stale_page_says_it_is_stale(
    on_s3: Callable[..., Server],
    upstream: Upstream,
    s3_server: S3Server,
    bucket: str,
) -> None:
    """With the upstream down, a file of a kept page is answered with that page's marker,
    redirected or not, and so is a 304 (as the metadata's 304 is)."""
    server = on_s3(s3_redirect="5m", cache_index_ttl="1s")
    streaming = on_s3(cache_index_ttl="1s")  # the same data folder and bucket
    url = f"{server.url}/pulp/content/main/{WHEEL}"
    first = get(url)  # cold: streamed, then stored
    assert first.status_code == 200 and "X-Pullthrough-Stale" not in first.headers
    assert wait_until(lambda: len(objects(s3_server, bucket)) == 1)
    upstream.down()
    time.sleep(1.2)  # past the TTL: the upstream is asked, fails, and the kept page is used
    moved = get(url, allow_redirects=False)
    assert moved.status_code == 302
    assert moved.headers.get("X-Pullthrough-Stale") == "true"
    assert get(moved.headers["Location"]).content == first.content
    etag = f'"{hashlib.sha256(first.content).hexdigest()}"'  # a stored file's ETag
    for base in (server.url, streaming.url):
        held = get(f"{base}/pulp/content/main/{WHEEL}", headers={"If-None-Match": etag})
        assert held.status_code == 304
        assert held.headers.get("X-Pullthrough-Stale") == "true", base


def test_a_presigned_url_outlives_the_token_that_got_it_until_it_expires(
    on_s3: Callable[..., Server],
    s3_server: S3Server,
    bucket: str,
) -> None:
    """As README says: access is checked when the 302 is answered; the object store, not
    pullthrough, checks the URL, which works until `s3_redirect` after it was made - and its
    answer, as the server's own for a private distribution, is for that client only (a shared
    cache that kept it would serve it past the expiry)."""
    server = on_s3(s3_redirect="3s")
    api = Api(server.url)
    remote = api.one("remotes/python/python/", name="up")
    api.distribution("corp", remote=remote["pulp_href"], private=True)
    created = api.create("tokens/", name="reader", scopes=["read:corp"])
    auth = {"Authorization": f"Bearer {created['token']}"}
    url = f"{server.url}/pulp/content/corp/{WHEEL}"
    cold = get(url, headers=auth)  # streamed, then stored
    body = cold.content
    assert cold.headers["Cache-Control"] == "private, max-age=31536000, immutable"
    assert wait_until(lambda: len(objects(s3_server, bucket)) == 1)
    moved = get(url, headers=auth, allow_redirects=False)
    assert moved.status_code == 302
    location = moved.headers["Location"]
    assert parse_qs(urlsplit(location).query)["X-Amz-Expires"] == ["4"]
    # The object store's answer is private too: no shared cache keeps it past the expiry
    assert get(location).headers["Cache-Control"] == "private, max-age=31536000, immutable"

    api.call("POST", created["pulp_href"] + "revoke/")
    assert get(url, headers=auth, allow_redirects=False).status_code == 401
    assert get(location).content == body  # the URL does not know the token
    time.sleep(5)  # past X-Amz-Expires (X-Amz-Date is the signing second's start)
    assert get(location).status_code == 403


def test_status_reports_no_disk_for_files_in_s3(on_s3: Callable[..., Server]) -> None:
    """With the files in S3, status has no disk to report: `storage` holds nulls, as Pulp's
    status does for storage that is not a filesystem (not the local data folder's disk,
    which holds none of the files)."""
    server = on_s3()
    status = get(server.url + "/pulp/api/v3/status/").json()
    assert status["storage"] == {"total": None, "used": None, "free": None}
