"""The pages for people in a real browser (headless Chromium) against the server under gunicorn:
what each page must tell a person, read from the DOM the browser built, and screenshots."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from lxml import html

from pullthrough.web.page_models import human_size
from support.api import Api, legacy_upload, with_auth
from support.browser import dump_dom, screenshot, text_of, with_class
from support.packages import build_wheel
from support.servers import PROXY_UA, Server, config_text, stored_files, wait_until
from support.tools import run_pip
from support.upstream import Upstream

pytestmark = pytest.mark.e2e
FREEZE = "2022-06-01T00:00:00Z"  # shelf-reader 0.4rc1 (2023) is held; 0.3 (2022-01), yanked, is not
WHEEL = "shelf_reader-0.2-py3-none-any.whl"


def _rows(doc: html.HtmlElement) -> dict[str, html.HtmlElement]:
    return {row.get("data-filename"): row for row in with_class(doc, "tr", "file")}


def _cell(row: html.HtmlElement, css_class: str) -> html.HtmlElement:
    (cell,) = with_class(row, "td", css_class)
    return cell


def _looks_like_a_page(png: Path) -> None:
    data = png.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n"), png
    assert len(data) > 10_000, f"{png}: {len(data)} bytes - a blank page?"


@pytest.mark.slow
@pytest.mark.usefixtures("chromium")
def test_a_person_finds_a_project_and_sees_where_its_files_come_from(
    upstream: Upstream, gunicorn_server: Callable[..., Server], tmp_path: Path
) -> None:
    config = config_text(upstream.index_url, tmp_path / "d", exclude_newer=FREEZE)
    proxy = gunicorn_server(with_auth(config))
    index_url = f"{proxy.url}/pypi/main/simple/"

    # The front page: the lines to copy, with this server's URL.
    home = dump_dom(proxy.url + "/")
    (pip_conf,) = with_class(home.get_element_by_id("dist-main"), "pre", "pip-conf")
    assert f"index-url = {index_url}" in pip_conf.text_content().splitlines()
    (poetry,) = with_class(home, "pre", "poetry-command")
    assert text_of(poetry) == f"poetry source add --priority=primary main {index_url}"
    _looks_like_a_page(screenshot(proxy.url + "/", tmp_path / "home.png"))

    # The search finds the project and links to its page.
    found = dump_dom(f"{proxy.url}/pypi/main/?q=Shelf")
    links = [(a.text, a.get("href")) for a in found.xpath("//ul[@class='results']//a")]
    assert links == [("shelf-reader", "/pypi/main/project/shelf-reader/")]

    # The project page: versions, files with their sizes, the yank and the hold with reasons.
    project_url = proxy.url + links[0][1]
    page = dump_dom(project_url)
    versions = [t.get("data-version") for t in with_class(page, "table", "files")]
    assert versions == ["0.4rc1", "0.3", "0.2", "0.1"]
    rows = _rows(page)
    files = {f.filename: f for f in upstream.files_for("shelf-reader")}
    assert set(rows) == set(files)
    for filename, row in rows.items():
        if filename == "shelf_reader-0.4rc1-py3-none-any.whl":
            continue
        size = _cell(row, "size")
        assert size.get("data-bytes") == str(files[filename].size), filename
        assert size.text == human_size(files[filename].size)
        uploaded, given = _cell(row, "uploaded"), files[filename].upload_time or ""
        assert uploaded.get("data-time") == given
        assert uploaded.text == given.replace("T", " ")[:16]  # in UTC, to the minute
        assert _cell(row, "source").text == "upstream", filename
    (reason,) = with_class(rows["shelf_reader-0.3-py3-none-any.whl"], "span", "yank-reason")
    assert reason.text == "broken"
    held = with_class(rows["shelf_reader-0.4rc1-py3-none-any.whl"], "span", "held-reason")
    assert held and f"after the freeze at {FREEZE}" in held[0].text, text_of(page)

    # pip downloads a file through the server: its source becomes the cache.
    run_pip(
        ["download", "--no-deps", "-d", str(tmp_path / "dl"), "-i", index_url, "shelf-reader==0.2"]
    )
    agents = [r.header("user-agent") or "" for r in upstream.requests_for(WHEEL, server="files")]
    assert agents and all(a.startswith(PROXY_UA) for a in agents), agents
    assert wait_until(lambda: stored_files(proxy.data_dir), timeout=10)
    after = _rows(dump_dom(project_url))
    assert _cell(after[WHEEL], "source").text == "cache"
    others = {f: _cell(r, "source").text for f, r in after.items() if f != WHEEL}
    assert others == {f: ("-" if "0.4rc1" in f else "upstream") for f in others}
    _looks_like_a_page(screenshot(project_url, tmp_path / "project.png"))

    # A distribution with a repository and the remote: uploaded files are the repository's.
    api = Api(proxy.url)
    repo, remote = api.repository("corp"), api.one("remotes/python/python/", name="up")
    api.distribution(
        "corp", repository=repo["pulp_href"], remote=remote["pulp_href"], merge_remote=True
    )
    ours = build_wheel(tmp_path / "ours", "shelf-reader", "9.0")
    assert legacy_upload(proxy.url, "corp", ours).status_code == 200
    corp = _rows(dump_dom(f"{proxy.url}/pypi/corp/project/shelf-reader/"))
    assert _cell(corp[ours.name], "source").text == "repository"
    assert _cell(corp[ours.name], "size").get("data-bytes") == str(ours.stat().st_size)
    assert _cell(corp[WHEEL], "source").text == "cache"
    assert _cell(corp["shelf_reader-0.1.tar.gz"], "source").text == "upstream"

    # The status page: the cache's use against its limit.
    status = dump_dom(proxy.url + "/status/")
    size = with_class(status, "td", "cache-size")[0]
    assert size.get("data-bytes") == str(files[WHEEL].size)
    assert with_class(status, "td", "cache-limit")[0].get("data-bytes") == str(20 * 10**9)
    assert with_class(status, "td", "cache-files")[0].text == "1"
    ratio = text_of(with_class(status, "td", "hit-ratio")[0])
    assert ratio.startswith("0%") and "1 downloaded" in ratio, ratio
    assert status.xpath("//tr[@data-remote='up']/td[@class='reachable']")[0].text == "yes"
    _looks_like_a_page(screenshot(proxy.url + "/status/", tmp_path / "status.png"))
