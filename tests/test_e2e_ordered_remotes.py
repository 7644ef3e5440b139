"""Ordered remotes over HTTP: the API's `remotes` beside Pulp's `remote`, and pip through a
distribution whose remotes are a second index and another pullthrough (a chain)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from support.api import Api, with_auth
from support.packages import build_wheel
from support.servers import PROXY_UA, Server, config_text, free_port, settle, stored_files
from support.tools import make_venv, run_pip
from support.upstream import Upstream

pytestmark = pytest.mark.e2e


@pytest.fixture
def corp(tmp_path: Path) -> Iterator[Upstream]:
    with Upstream() as up:
        up.add_file("shelf-reader", build_wheel(tmp_path / "corp", "shelf-reader", "5.0"))
        yield up


def test_the_api_keeps_remotes_in_order_and_remote_as_the_first(
    gunicorn_server: Callable[..., Server], tmp_path: Path
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/"
    api = Api(gunicorn_server(with_auth(config_text(dead, tmp_path / "data"))).url)
    a, b, c = (api.remote(name, dead)["pulp_href"] for name in ("a", "b", "c"))
    dist = api.distribution("d", remotes=[a, b])
    assert (dist["remote"], dist["remotes"]) == (a, [a, b])

    def patched(**body: object) -> dict[str, object]:
        api.run("PATCH", dist["pulp_href"], json=body)
        return api.get(dist["pulp_href"])

    # pulp-cli sets `remote` alone: it comes first, the others stay after it
    assert patched(remote=c)["remotes"] == [c, a, b]
    assert patched(remote=b)["remotes"] == [b, c, a]  # moved to the front, not listed twice
    reordered = patched(remotes=[b, a])
    assert (reordered["remote"], reordered["remotes"]) == (b, [b, a])
    # a full update (PUT) that gives only `remote` is the same write
    whole = {k: v for k, v in api.get(dist["pulp_href"]).items() if k not in ("remotes",)}
    api.run("PUT", dist["pulp_href"], json={**whole, "remote": a})
    assert api.get(dist["pulp_href"])["remotes"] == [a, b]

    for body, field, message in (
        ({"remote": a, "remotes": [b]}, "remote", "must be the first of remotes"),
        ({"remotes": [a, a]}, "remotes", "listed once"),
        ({"remotes": ["/pulp/api/v3/remotes/python/python/nope/"]}, "remotes", ""),
    ):
        resp = api.request("PATCH", dist["pulp_href"], json=body)
        assert resp.status_code == 400, resp.text
        assert message in " ".join(resp.json()[field])

    api.run("PATCH", dist["pulp_href"], json={"remotes": [b, c, a]})
    api.request("DELETE", c)  # one in the middle: the others keep their order
    assert api.get(dist["pulp_href"])["remotes"] == [b, a]
    api.request("DELETE", b)  # the first: the next takes its place
    shown = api.get(dist["pulp_href"])
    assert (shown["remote"], shown["remotes"]) == (a, [a])
    assert patched(remote=None)["remotes"] == []


@pytest.mark.slow
def test_pip_installs_through_ordered_remotes_and_a_chained_pullthrough(
    gunicorn_server: Callable[..., Server],
    upstream: Upstream,
    corp: Upstream,
    tmp_path: Path,
) -> None:
    first_hop = gunicorn_server(config_text(upstream.index_url, tmp_path / "hop"))
    text = (
        f'[server]\ndata_dir = "{tmp_path / "edge"}"\n'
        f'[[remotes]]\nname = "corp"\nurl = "{corp.index_url}"\nmax_retries = 1\n'
        f'[[remotes]]\nname = "hop"\nurl = "{first_hop.index()}"\nmax_retries = 1\n'
        '[[distributions]]\nname = "main"\nbase_path = "main"\nremotes = ["corp", "hop"]\n'
    )
    edge = gunicorn_server(text)
    python = make_venv(tmp_path / "venv")
    run_pip(["install", "--index-url", edge.index(), "app-with-dep"], python=python)

    code = "import app_with_dep, shelf_reader; print(shelf_reader.__version__)"
    out = subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    assert out.stdout.split() == ["5.0"]  # corp's shelf-reader shadows the public one

    # app-with-dep came from the public index through both hops; shelf-reader from corp alone
    agents = {r.header("user-agent") or "" for r in upstream.log}
    assert agents and all(a.startswith(PROXY_UA) for a in agents), agents
    assert upstream.requests_for("app_with_dep-1.0-py3-none-any.whl", server="files")
    assert not upstream.requests_for("shelf")
    assert corp.requests_for("shelf_reader-5.0-py3-none-any.whl", server="files")
    (app,) = [f.sha256 for f in upstream.files_for("app-with-dep") if f.filename.endswith(".whl")]
    (ours,) = [f.sha256 for f in corp.files_for("shelf-reader")]
    assert settle(first_hop.data_dir) and settle(edge.data_dir)
    assert app in {p.name for p in stored_files(first_hop.data_dir)}
    assert {app, ours} <= {p.name for p in stored_files(edge.data_dir)}
