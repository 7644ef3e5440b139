"""deploy/nginx.conf agrees with pullthrough's settings, and the tests' rendering of it keeps
every directive but the addresses and paths (tests/test_e2e_slow_clients.py runs it)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pullthrough import gunicorn_conf
from pullthrough.config import ServerSettings
from pullthrough.web.content import SEND_HERE
from pullthrough.web.rendered import accepts_gzip, rendered
from support.nginx import DEPLOY_SITE, Directive, find, parse, render_site
from support.upstream import HTML_V1, JSON_V1

SITE = parse(DEPLOY_SITE.read_text())
UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30}
SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600}


def one(name: str, directives: list[Directive] = SITE) -> list[str]:
    found = find(directives, name)
    assert len(found) == 1, f"{name}: {len(found)} directives"
    return found[0].args


def location(name: str) -> list[Directive]:
    """The block of the site's one `location <name>`."""
    (found,) = [d for d in find(SITE, "location") if d.args == [name]]
    assert found.block is not None
    return found.block


def size(value: str) -> int:
    return int(value.rstrip("kmgKMG")) * UNITS[value[-1].lower() if value[-1].isalpha() else ""]


def seconds(value: str) -> float:
    return float(value.rstrip("smh")) * SECONDS[value[-1] if value[-1].isalpha() else ""]


def test_uploads_up_to_the_servers_limit_are_buffered_whole() -> None:
    assert size(one("client_max_body_size")[0]) == ServerSettings().max_upload_size
    assert one("proxy_request_buffering") == ["on"]


def test_answers_are_buffered_so_slow_readers_hold_no_gunicorn_thread() -> None:
    assert one("proxy_buffering") == ["on"]
    assert size(one("proxy_max_temp_file_size")[0]) >= 2**30


def test_slow_clients_are_bounded_in_time() -> None:
    for name in ("client_header_timeout", "client_body_timeout", "send_timeout"):
        assert 0 < seconds(one(name)[0]) <= 60, name


def test_upstream_connections_are_kept_alive_and_closed_by_nginx_first() -> None:
    upstream = [d for d in SITE if d.name == "upstream"]
    assert len(upstream) == 1 and upstream[0].block is not None
    assert int(one("keepalive", upstream[0].block)[0]) > 0
    assert seconds(one("keepalive_timeout", upstream[0].block)[0]) < gunicorn_conf.keepalive
    # every location that proxies (the cached one inherits from `/`)
    for name in ("/", "@pullthrough_sends"):
        block = location(name)
        assert one("proxy_http_version", block) == ["1.1"], name
        headers = {d.args[0]: d.args[1] for d in find(block, "proxy_set_header")}
        assert headers["Connection"] == '""', name
        assert headers["Host"] == "$http_host", name
        assert headers["X-Forwarded-Proto"] == "$scheme", name
        assert headers["X-Forwarded-For"] == "$proxy_add_x_forwarded_for", name


def test_index_pages_and_api_answers_are_compressed() -> None:
    assert one("gzip") == ["on"]
    assert {JSON_V1, HTML_V1, "application/json"} <= set(one("gzip_types"))  # text/html: always


def flatten(directives: list[Directive]) -> list[Directive]:
    out = []
    for d in directives:
        out.append(d)
        out.extend(flatten(d.block or []))
    return out


def test_the_tests_rendering_changes_only_addresses_and_paths() -> None:
    rendered = parse(
        render_site(DEPLOY_SITE.read_text(), port=1234, upstream_port=5678, logs=Path("/l"))
    )
    servers = [d for d in rendered if d.name == "server"]
    assert len(servers) == 1  # the port-80 redirect is left out
    everything = flatten(rendered)
    assert [d.args for d in everything if d.name == "listen"] == [["127.0.0.1:1234"]]
    upstream_servers = [d.args for d in everything if d.name == "server" and d.block is None]
    assert upstream_servers == [["127.0.0.1:5678"]]
    assert not [d.name for d in everything if d.name.startswith("ssl")]
    logs = [d.args[0] for d in everything if d.name in ("access_log", "error_log")]
    assert logs and all(path.startswith("/l/") for path in logs)

    def kept(directives: list[Directive]) -> list[tuple[str, list[str]]]:
        changed = {"listen", "server", "access_log", "error_log"}
        return [
            (d.name, d.args)
            for d in flatten(directives)
            if d.name not in changed and not d.name.startswith("ssl")
        ]

    front = [d for d in SITE if d.name == "server" and find(d.block or [], "proxy_pass")]
    assert kept(front) == kept(servers)
    assert kept([d for d in SITE if d.name == "upstream"]) == kept(
        [d for d in rendered if d.name == "upstream"]
    )


# ---- the page cache


def map_value(variable: str, value: str) -> str:
    """What the site's `map ... $variable` gives for `value` (nginx: exact strings first, then
    the regexes in order, `~*` ignoring case; else the default)."""
    found = [d for d in SITE if d.name == "map" and d.args[1] == variable]
    assert len(found) == 1 and found[0].block is not None, variable
    entries = [(d.name.strip("\"'"), d.args[0].strip("\"'")) for d in found[0].block]
    default = dict(entries).get("default", "")
    for pattern, result in entries:
        if pattern == value and not pattern.startswith("~"):
            return result
    for pattern, result in entries:
        if pattern.startswith("~"):
            flags = re.IGNORECASE if pattern.startswith("~*") else 0
            if re.search(pattern.lstrip("~*"), value, flags):
                return result
    return default


@pytest.mark.parametrize(
    "header",
    ["", "gzip", "gzip, deflate", "gzip, deflate, br", "br, gzip", "deflate", "identity",
     "GZIP", "x-gzip", "gzip;q=0", "gzip; q=0.0, deflate", "deflate, gzip;q=0.5", "br;q=1, gzip",
     "gzipped", "*", "gzip;q=1.0"],
)  # fmt: skip
def test_the_cache_keys_gzip_as_the_app_decides_it(header: str) -> None:
    """The key's encoding (also what the app is sent) never says gzip where the app would not
    compress; `*` alone is sent as identity, which such a client takes too."""
    mapped = map_value("$pullthrough_gzip", header)
    assert mapped in ("", "gzip")
    assert (mapped == "gzip") == (accepts_gzip(header) and header != "*"), header
    if mapped == "gzip":
        assert accepts_gzip(mapped)


def test_only_public_reusable_answers_are_stored() -> None:
    def stored(cache_control: str) -> bool:
        return map_value("$pullthrough_no_store", cache_control) == "0"

    public = rendered(b"x", "text/html", stale=False, max_age=600)
    private = rendered(b"x", "text/html", stale=False, max_age=600, private=True)
    repository = rendered(b"x", "text/html", stale=False, max_age=0)
    assert stored(dict(public.headers)["Cache-Control"])
    assert not stored(dict(private.headers)["Cache-Control"])
    assert not stored(dict(repository.headers)["Cache-Control"])
    for other in (
        "",
        "no-cache",
        "private, no-cache",
        "no-store",
        "public, no-cache",
        "max-age=31536000, immutable",
        "max-age=00, public",
        "PRIVATE, max-age=9",
    ):
        assert not stored(other), other
    assert stored("public, max-age=1") and stored("max-age=10, public")


def test_the_page_cache_leaves_freshness_and_access_to_the_app() -> None:
    locations = find(SITE, "location")
    cached = [d for d in locations if any(c.name == "proxy_cache" for c in d.block or [])]
    assert len(cached) == 1 and cached[0].block is not None
    block = cached[0].block
    pattern = re.compile(cached[0].args[-1])
    for path in (
        "/pypi/main/simple/",
        "/pypi/main/simple/demo/",
        "/pypi/a/b/simple/demo/",
        "/pypi/main/pypi/demo/json",
        "/pypi/main/pypi/demo/1.0/json",
    ):
        assert pattern.search(path), path
    for path in (
        "/pypi/main/",
        "/pypi/main/legacy/",
        "/pulp/content/main/demo-1.0.tar.gz",
        "/pulp/api/v3/status/",
        "/pypi/main/simple/demo/x/",
        "/metrics",
    ):
        assert not pattern.search(path), path
    assert one("proxy_cache_valid", block) == ["200", "1s"]  # the documented bound: 2 s
    assert set(one("proxy_ignore_headers", block)) == {"Cache-Control", "Expires", "Vary"}
    assert one("proxy_no_cache", block) == ["$pullthrough_no_store"]
    assert one("proxy_cache_bypass", block) == ["$http_authorization"]
    # a 304 would keep the stored headers: a max-age the app has counted down since
    assert one("proxy_cache_revalidate", block) == ["off"]
    assert one("proxy_cache_lock", block) == ["off"]
    assert not find(block, "proxy_cache_use_stale")
    key = one("proxy_cache_key", block)[0]
    for part in ("$scheme", "$http_host", "$request_uri", "$http_accept", "$pullthrough_gzip"):
        assert part in key, part
    headers = {d.args[0]: d.args[1] for d in find(location("/"), "proxy_set_header")}
    assert headers["Accept-Encoding"] == "$pullthrough_gzip"  # the app is asked what is keyed


def test_the_tests_rendering_moves_the_page_cache() -> None:
    rendered_site = parse(
        render_site(DEPLOY_SITE.read_text(), port=1, upstream_port=2, logs=Path("/t/logs"))
    )
    original, moved = one("proxy_cache_path"), one("proxy_cache_path", rendered_site)
    assert moved == ["/t/cache", *original[1:]]


def test_stored_files_come_from_an_internal_location_only() -> None:
    files = [d for d in find(SITE, "location") if d.args == ["/_pullthrough/files/"]]
    assert len(files) == 1 and files[0].block is not None
    assert one("internal", files[0].block) == []  # X-Accel-Redirect only, never a client
    assert one("alias", files[0].block)[0].endswith("/artifacts/")  # data_dir/artifacts
    assert ServerSettings().accel_redirect == ""  # off unless set to that prefix
    # not found there (evicted meanwhile): the app is asked again and sends it itself; the
    # header that asks it to is nginx's alone (a client's is cleared)
    assert one("error_page", files[0].block) == ["404", "=", "@pullthrough_sends"]
    again = location("@pullthrough_sends")
    sent = {d.args[0]: d.args[1] for d in find(again, "proxy_set_header")}
    assert sent[SEND_HERE] == "1" and one("proxy_pass", again)[0].endswith("$request_uri")
    cleared = {d.args[0]: d.args[1] for d in find(location("/"), "proxy_set_header")}
    assert cleared[SEND_HERE] == '""'
