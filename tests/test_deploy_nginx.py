"""deploy/nginx.conf agrees with pullthrough's settings, and the tests' rendering of it keeps
every directive but the addresses and paths (tests/test_e2e_slow_clients.py runs it)."""

from __future__ import annotations

from pathlib import Path

from pullthrough import gunicorn_conf
from pullthrough.config import ServerSettings
from support.nginx import DEPLOY_SITE, Directive, find, parse, render_site
from support.upstream import HTML_V1, JSON_V1

SITE = parse(DEPLOY_SITE.read_text())
UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30}
SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600}


def one(name: str, directives: list[Directive] = SITE) -> list[str]:
    found = find(directives, name)
    assert len(found) == 1, f"{name}: {len(found)} directives"
    return found[0].args


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
    assert one("proxy_http_version") == ["1.1"]
    headers = {d.args[0]: d.args[1] for d in find(SITE, "proxy_set_header")}
    assert headers["Connection"] == '""'
    assert headers["Host"] == "$http_host"
    assert headers["X-Forwarded-Proto"] == "$scheme"
    assert headers["X-Forwarded-For"] == "$proxy_add_x_forwarded_for"


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
