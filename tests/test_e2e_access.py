"""Who may read and who may upload, over HTTP: tokens with scopes, private distributions, the
audit trail and the failed-login limit (the real clients: test_e2e_access_clients.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from support.api import AUTH, PASSWORD, Api, legacy_upload, with_auth
from support.packages import build_wheel
from support.servers import Server, config_text
from support.upstream import Upstream

pytestmark = pytest.mark.e2e

JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}
WHEEL = "meta_lib-2.0-py3-none-any.whl"  # with PEP 658 metadata upstream


def private_config(upstream: Upstream, data_dir: Path, burst: int = 1000) -> str:
    """`main` public and `corp` private, both pull-through from the same upstream."""
    text = config_text(upstream.index_url, data_dir)
    text += '[[distributions]]\nname = "corp"\nbase_path = "corp"\nremote = "up"\nprivate = true\n'
    return with_auth(text) + f"failure_burst = {burst}\n"


def token(api: Api, name: str, *scopes: str, expires_at: str | None = None) -> str:
    created = api.create("tokens/", name=name, scopes=list(scopes), expires_at=expires_at)
    assert created["scopes"] == list(scopes)
    secret: str = created["token"]
    return secret


def get(url: str, **kwargs: Any) -> requests.Response:
    with requests.get(url, timeout=30, **kwargs) as resp:
        _ = resp.content
    return resp


@pytest.fixture
def server(upstream: Upstream, live_server: Callable[..., Server], tmp_path: Path) -> Server:
    return live_server(private_config(upstream, tmp_path / "d"))


def test_a_private_distribution_answers_only_its_readers(server: Server) -> None:
    api = Api(server.url)
    soon = datetime.now(UTC) + timedelta(seconds=1)  # a token cannot be made expired already
    tokens = {
        "reader": token(api, "reader", "read:corp"),
        "bearer": token(api, "bearer", "read:corp"),
        "main-reader": token(api, "main-reader", "read:main"),
        "uploader": token(api, "uploader", "upload:corp"),
        "expired": token(api, "expired", "read:corp", expires_at=soon.isoformat()),
        "revoked": token(api, "revoked", "read:corp"),
        "admin-token": token(api, "admin-token", "admin"),
    }
    href = api.one("tokens/", name="revoked")["pulp_href"]
    assert api.request("POST", href + "revoke/").json()["revoked_at"] is not None

    time.sleep(max(0.0, (soon - datetime.now(UTC)).total_seconds()) + 0.1)
    corp = server.index("corp")
    # the admin warms every page first: a memo must not let anyone else read it afterwards
    urls = {
        "index": corp,
        "page": corp + "meta-lib/",
        "json page": corp + "meta-lib/",
        "file": f"{server.url}/pulp/content/corp/{WHEEL}",
        "metadata": f"{server.url}/pulp/content/corp/{WHEEL}.metadata",
        "json api": f"{server.url}/pypi/corp/pypi/meta-lib/json",
    }
    for what, url in urls.items():
        headers = JSON if what == "json page" else {}
        assert get(url, auth=AUTH, headers=headers).status_code == 200, what
    # not offered to other sites' scripts, as a public distribution's JSON API is
    assert "Access-Control-Allow-Origin" not in get(urls["json api"], auth=AUTH).headers

    def status(url: str, who: str | None, headers: dict[str, str]) -> int:
        if who is None:
            resp = get(url, headers=headers)
        elif who == "admin":
            resp = get(url, headers=headers, auth=AUTH)
        elif who == "bearer":
            resp = get(url, headers={**headers, "Authorization": f"Bearer {tokens[who]}"})
        else:
            resp = get(url, headers=headers, auth=("__token__", tokens[who]))
        if resp.status_code == 401:
            assert resp.headers["WWW-Authenticate"] == 'Basic realm="pullthrough"'
        if resp.status_code == 403:
            assert "may not read 'corp'" in resp.text
        return resp.status_code

    expected = {
        None: 401,
        "reader": 200,
        "bearer": 200,
        "main-reader": 403,
        "uploader": 403,  # upload does not imply read
        "expired": 401,
        "revoked": 401,
        "admin-token": 200,
        "admin": 200,
    }
    for what, url in urls.items():
        headers = JSON if what == "json page" else {}
        for who, code in expected.items():
            assert status(url, who, headers) == code, (what, who)
    reader = get(urls["file"], auth=("__token__", tokens["reader"]))
    assert reader.content == get(urls["file"], auth=AUTH).content
    for what in ("page", "json api"):  # no shared cache may keep what only readers may see
        answer = get(urls[what], auth=("__token__", tokens["reader"]))
        assert answer.headers["Cache-Control"].endswith(", private"), what
        assert "Authorization" in answer.headers["Vary"], what
    public = get(server.index("main") + "meta-lib/")
    assert public.headers["Cache-Control"].endswith(", public")

    # the status page, open to anyone, does not name private distributions
    listed = get(f"{server.url}/pulp/api/v3/status/").json()
    assert listed["distributions"] == ["main"] and list(listed["refused"]) == ["main"]

    # public distributions stay public, whatever credentials come along
    assert get(server.index("main") + "meta-lib/").status_code == 200
    assert get(f"{server.url}/pulp/content/main/{WHEEL}").status_code == 200


# Every kind of URL under /pypi/<base_path>/ and /pulp/content/<base_path>/, as a prober
# would try them: pages with and without their slash, unnormalized names, the upload URL, the
# JSON API with a trailing slash.
PROBED = [
    *("/pypi/{}", "/pypi/{}/", "/pypi/{}/simple", "/pypi/{}/simple/", "/pypi/{}/legacy"),
    *("/pypi/{}/legacy/", "/pypi/{}/simple/meta-lib", "/pypi/{}/simple/meta-lib/"),
    *("/pypi/{}/simple/Meta_Lib/", "/pypi/{}/project/meta-lib/", "/pypi/{}/project/Meta_Lib/"),
    *("/pypi/{}/pypi/meta-lib/json", "/pypi/{}/pypi/meta-lib/json/"),
    *("/pypi/{}/pypi/Meta_Lib/2.0/json/", f"/pulp/content/{{}}/{WHEEL}"),
    f"/pulp/content/{{}}/{WHEEL}.metadata",
]
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS")


Answer = tuple[int, str, str, str, str, bytes]  # status, 4 headers, body


def answer(server: Server, method: str, path: str, **kwargs: Any) -> Answer:
    """What a client sees of an answer: status, Location, Allow, WWW-Authenticate,
    Content-Type and body."""
    with requests.request(
        method, server.url + path, allow_redirects=False, timeout=30, **kwargs
    ) as resp:
        location, allow, challenge, kind = (
            resp.headers.get(h, "").replace(server.url, "")
            for h in ("Location", "Allow", "WWW-Authenticate", "Content-Type")
        )
        return resp.status_code, location, allow, challenge, kind, resp.content


def renamed(found: Answer, old: str, new: str) -> Answer:
    status, location, allow, challenge, kind, body = found
    return (
        status,
        location.replace(old, new),
        allow,
        challenge,
        kind,
        body.replace(old.encode(), new.encode()),
    )


def test_a_private_distribution_is_a_missing_one_to_those_who_may_not_read_it(
    server: Server,
) -> None:
    """Before its reader is checked, nothing answers for a private distribution: a redirect
    (a JSON API URL with a slash) or a 405 (a GET of the upload URL) told anyone that it
    exists. To those who may not read it, it answers as a distribution that does not exist -
    but for the 401 challenge pip needs to send credentials (and a token's 403 saying it
    may not read, or upload), on the pages, files and API a reader reads."""
    api = Api(server.url)
    others = token(api, "others", "read:main")
    reader = token(api, "reader", "read:corp")
    callers: dict[str, dict[str, Any]] = {
        "anonymous": {},
        "wrong password": {"auth": ("admin", "wrong")},
        "another distribution's reader": {"auth": ("__token__", others)},
    }
    challenged = []
    for who, kwargs in callers.items():
        for method in METHODS:
            for path in PROBED:
                private = answer(server, method, path.format("corp"), **kwargs)
                missing = answer(server, method, path.format("xyzw"), **kwargs)
                if renamed(private, "corp", "xyzw") == missing:
                    continue
                status = private[0]
                if who == "another distribution's reader":  # told it may not (HEAD: no body)
                    assert status == 403, (method, path)
                    assert method == "HEAD" or b"may not" in private[-1], (method, path)
                else:
                    assert status == 401 and private[3] == 'Basic realm="pullthrough"', (
                        who, method, path, private[:3], missing[:3]
                    )  # fmt: skip
                challenged.append((who, method, path))
    assert ("anonymous", "GET", "/pypi/{}/simple/") in challenged  # pip asks, then sends them
    assert ("anonymous", "GET", "/pypi/{}/legacy/") not in challenged

    # its readers are answered as before
    as_reader = {"auth": ("__token__", reader)}
    assert answer(server, "GET", "/pypi/corp/legacy/", **as_reader)[:3] == (405, "", "POST")
    moved = answer(server, "GET", "/pypi/corp/pypi/meta-lib/json/", **as_reader)
    assert moved[:2] == (301, "/pypi/corp/pypi/meta-lib/json")
    assert answer(server, "GET", "/pypi/corp/simple/meta-lib/", **as_reader)[0] == 200


def test_uploads_follow_the_token_scopes_and_record_the_uploader(
    upstream: Upstream, live_server: Callable[..., Server], tmp_path: Path
) -> None:
    server = live_server(with_auth(config_text(upstream.index_url, tmp_path / "d")))
    api = Api(server.url)
    repo = api.repository("corp")
    api.distribution("corp", repository=repo["pulp_href"])
    upload_any = token(api, "ci", "upload:corp")
    upload_acme = token(api, "acme-ci", "upload:corp:acme-*")
    other = token(api, "other", "upload:elsewhere")
    reader = token(api, "reader", "read:corp")

    def upload(path: Path, secret: str | None) -> requests.Response:
        with path.open("rb") as fh:
            return requests.post(
                f"{server.url}/pypi/corp/legacy/",
                data={":action": "file_upload"},
                files={"content": (path.name, fh)},
                auth=("__token__", secret) if secret else None,
                timeout=30,
            )

    acme = build_wheel(tmp_path / "w", "acme-tools", "1.0")
    lib = build_wheel(tmp_path / "w", "corelib", "1.0")
    assert upload(acme, None).status_code == 401
    for secret, path, why in (
        (other, acme, "token:other may not upload to 'corp' (it has no upload:corp)"),
        (reader, acme, "token:reader may not upload to 'corp'"),
        (upload_acme, lib, "token:acme-ci may upload only acme-* to 'corp', not 'corelib'"),
    ):
        resp = upload(path, secret)
        assert resp.status_code == 403 and why in resp.text, resp.text
    assert upload(acme, upload_acme).status_code == 200
    assert upload(lib, upload_any).status_code == 200
    extra = build_wheel(tmp_path / "w", "corelib", "2.0")
    assert legacy_upload(server.url, "corp", extra).status_code == 200

    uploaded = {
        c["filename"]: c["uploaded_by"]
        for c in api.get("content/python/packages/", limit=100)["results"]
    }
    assert uploaded == {
        acme.name: "token:acme-ci",
        lib.name: "token:ci",
        extra.name: "admin",
    }
    assert server.page_files("corp", "corelib") == {lib.name, extra.name}

    events = api.get("audit/", action="upload")["results"]
    assert [(e["actor"], e["subject"]) for e in events] == [
        ("admin", extra.name),
        ("token:ci", lib.name),
        ("token:acme-ci", acme.name),
    ]
    assert events[0]["detail"]["distribution"] == "corp"
    assert events[0]["address"] == "127.0.0.1"


def test_tokens_are_admin_business_and_their_secrets_are_shown_once(server: Server) -> None:
    api = Api(server.url)
    secret = token(api, "ci", "upload:corp", "read:corp")
    shown = api.one("tokens/", name="ci")
    assert shown["token"] is None and secret.startswith(shown["key"])
    assert secret not in str(api.get("tokens/")) and secret not in str(api.get("audit/"))
    for body, field in (
        ({"name": "x", "scopes": ["write:corp"]}, "scopes"),
        ({"name": "x", "scopes": []}, "scopes"),
        ({"name": "x", "scopes": ["read:corp"], "expires_at": "soon"}, "expires_at"),
        (
            {"name": "x", "scopes": ["read:corp"], "expires_at": "2020-01-01T00:00:00Z"},
            "expires_at",
        ),
        ({"name": "ci", "scopes": ["read:corp"]}, "name"),
        *(  # times whose UTC is past the years 1 to 9999: 400, not 500
            ({"name": "x", "scopes": ["read:corp"], "expires_at": moment}, "expires_at")
            for moment in ("9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00")
        ),
    ):
        resp = api.request("POST", "tokens/", json=body)
        assert resp.status_code == 400 and field in resp.json(), resp.text
    # a token without the admin scope is not an admin
    with requests.get(f"{server.url}/pulp/api/v3/tokens/", auth=("__token__", secret)) as resp:
        assert resp.status_code == 403
    admin = token(api, "root", "admin")
    with requests.get(f"{server.url}/pulp/api/v3/tokens/", auth=("__token__", admin)) as resp:
        assert resp.status_code == 200 and resp.json()["count"] == 2


def test_the_audit_trail_records_every_write_without_secrets(server: Server) -> None:
    api = Api(server.url)
    remote = api.remote("secretive", "http://user:hunter2@127.0.0.1:9/simple/", password="pw-123")
    api.request("PATCH", remote["pulp_href"], json={"proxy_password": "pp-456"})
    secret = token(api, "ci", "read:corp")
    href = api.one("tokens/", name="ci")["pulp_href"]
    api.request("POST", href + "revoke/")
    repo = api.repository("audited")
    api.run("DELETE", repo["pulp_href"])

    events = api.get("audit/", limit=100)["results"]
    actions = [(e["actor"], e["action"]) for e in events]
    assert actions[:6] == [
        ("admin", "repositories_python_python_delete"),
        ("admin", "repositories_python_python_create"),
        ("admin", "tokens_revoke"),
        ("admin", "tokens_create"),
        ("admin", "remotes_python_python_partial_update"),
        ("admin", "remotes_python_python_create"),
    ]
    assert events[1]["subject"] == repo["pulp_href"]
    assert ("config", "distribution_configured") in actions
    text = str(events)
    for hidden in ("hunter2", "pw-123", "pp-456", secret, PASSWORD):
        assert hidden not in text
    # filters: by actor, by action, by time
    assert {e["actor"] for e in api.get("audit/", actor="config")["results"]} == {"config"}
    since = events[2]["pulp_created"]
    recent = api.get("audit/", pulp_created__gte=since)["results"]
    assert [e["action"] for e in recent] == [a for _, a in actions[:3]]
    bad = api.request("GET", "audit/", params={"pulp_created__gte": "yesterday"})
    assert bad.status_code == 400
    with requests.get(f"{server.url}/pulp/api/v3/audit/", timeout=30) as resp:
        assert resp.status_code == 401


def test_failed_logins_are_limited_per_address(
    upstream: Upstream, live_server: Callable[..., Server], tmp_path: Path
) -> None:
    server = live_server(private_config(upstream, tmp_path / "d", burst=5))
    page = server.index("corp")
    for _ in range(5):
        assert get(page, auth=("__token__", "pt_0123456789abc.guess")).status_code == 401
    locked = get(page, auth=AUTH)  # even the right password, while the address is locked out
    assert locked.status_code == 429
    assert 1 <= int(locked.headers["Retry-After"]) <= 60
    assert get(server.index("main")).status_code == 200  # public reads go on
    # behind the nginx front (a loopback peer), each client is the address nginx saw
    front = {"X-Forwarded-For": "203.0.113.9"}
    assert get(page, auth=AUTH, headers=front).status_code == 200
    events = Api(server.url).request("GET", "audit/", headers={"X-Forwarded-For": "203.0.113.8"})
    assert events.status_code == 200
