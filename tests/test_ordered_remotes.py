"""A distribution with several remotes, in-process over two real upstreams on loopback: a project
comes from the first remote that has it (its filters and policy), never from a later one, and
the project list is the union."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.utils import NormalizedName
from sqlalchemy import select

from pullthrough.catalog.models import Distribution as DistributionRow
from pullthrough.catalog.models import Remote
from pullthrough.config import load_settings
from pullthrough.core.remotes import ordered
from pullthrough.services.container import Services, build_services
from pullthrough.services.distribution import Distribution, NotFound
from pullthrough.services.pullthrough import StoredFile, StreamedFile
from pullthrough.upstream.client import UpstreamError
from support.packages import build_wheel
from support.upstream import Upstream

CORP_WHEEL = "shelf_reader-5.0-py3-none-any.whl"


@pytest.fixture
def corp(tmp_path: Path) -> Iterator[Upstream]:
    """A second index: its own shelf-reader 5.0, a prerelease-only project, and corp-only."""
    out = tmp_path / "corp-wheels"
    with Upstream() as up:
        up.add_file("shelf-reader", build_wheel(out, "shelf-reader", "5.0"))
        up.add_file("meta-lib", build_wheel(out, "meta-lib", "9.0rc1"))
        up.add_file("corp-only", build_wheel(out, "corp-only", "1.0"))
        yield up


def start(tmp_path: Path, corp: Upstream, upstream: Upstream, **corp_settings: str) -> Services:
    extra = "".join(f"{k} = {v}\n" for k, v in corp_settings.items())
    config = tmp_path / "pullthrough.toml"
    config.write_text(
        f'[server]\ndata_dir = "{tmp_path / "data"}"\n'
        f'[[remotes]]\nname = "corp"\nurl = "{corp.index_url}"\nmax_retries = 0\n'
        f"connect_timeout = 2\n{extra}"
        f'[[remotes]]\nname = "up"\nurl = "{upstream.index_url}"\nmax_retries = 0\n'
        '[[distributions]]\nname = "main"\nbase_path = "main"\nremotes = ["corp", "up"]\n'
    )
    return build_services(load_settings(config, environ={}))


def main(svc: Services) -> Distribution:
    dist = svc.registry.get("main")
    assert dist is not None
    return dist


def files(dist: Distribution, project: str) -> set[str]:
    return {f.filename for f in dist.project(NormalizedName(project)).page.files}


def read(opened: StoredFile | StreamedFile) -> bytes:
    if isinstance(opened, StoredFile):
        with opened.file:
            return opened.file.read()
    try:
        return b"".join(opened)
    finally:
        opened.close()


def data_of(index: Upstream, project: str, filename: str) -> bytes:
    (found,) = [f.data for f in index.files_for(project) if f.filename == filename]
    return found


def test_a_project_comes_from_the_first_remote_that_has_it(
    tmp_path: Path, corp: Upstream, upstream: Upstream
) -> None:
    svc = start(tmp_path, corp, upstream, prereleases="false")
    try:
        dist = main(svc)
        # corp has shelf-reader: the public index's 0.1 and 0.2 are never offered
        assert files(dist, "shelf-reader") == {CORP_WHEEL}
        # corp lacks app-with-dep (404 there): the next remote answers
        assert "app_with_dep-1.0-py3-none-any.whl" in files(dist, "app-with-dep")
        # corp has meta-lib, only as a prerelease its filters drop: it still has the project,
        # so the public meta-lib 2.0 must not shadow it
        with pytest.raises(NotFound, match="passes the filters"):
            dist.project(NormalizedName("meta-lib"))

        # files come from the remote whose page listed them
        assert read(svc.pullthrough.open(dist, CORP_WHEEL)) == data_of(
            corp, "shelf-reader", CORP_WHEEL
        )
        assert corp.requests_for(CORP_WHEEL, server="files")
        public = "app_with_dep-1.0-py3-none-any.whl"
        assert read(svc.pullthrough.open(dist, public)) == data_of(upstream, "app-with-dep", public)
        assert upstream.requests_for(public, server="files")
        assert not upstream.requests_for("shelf-reader")  # never asked: corp answered first

        names = dist.projects().names
        assert {"corp-only", "shelf-reader", "app-with-dep", "meta-lib"} <= set(names)
        assert len(names) == len(set(names))  # each once
    finally:
        svc.close()


def test_a_remote_whose_filters_exclude_a_project_lets_the_next_answer(
    tmp_path: Path, corp: Upstream, upstream: Upstream
) -> None:
    svc = start(tmp_path, corp, upstream, excludes='["shelf-reader"]')
    try:
        dist = main(svc)
        assert files(dist, "shelf-reader") >= {
            "shelf_reader-0.1-py3-none-any.whl",
            "shelf_reader-0.2-py3-none-any.whl",
        }
        assert CORP_WHEEL not in files(dist, "shelf-reader")
        assert not corp.requests_for("shelf-reader")
        assert "corp-only" in dist.projects().names
    finally:
        svc.close()


def test_an_unreachable_first_remote_fails_rather_than_fall_through(
    tmp_path: Path, corp: Upstream, upstream: Upstream
) -> None:
    svc = start(tmp_path, corp, upstream)
    try:
        dist = main(svc)
        assert files(dist, "shelf-reader") == {CORP_WHEEL}
        corp.fail_status = 503
        # a project corp was never asked about: it might have it, so no later remote answers
        with pytest.raises(UpstreamError):
            dist.project(NormalizedName("app-with-dep"))
        assert not upstream.requests_for("app-with-dep")
    finally:
        svc.close()


def test_one_rule_orders_remotes_for_the_file_the_api_and_the_cli() -> None:
    assert ordered(["a", "b"]) == ["a", "b"]  # neither given: unchanged
    assert ordered(["a", "b"], remote="c") == ["c", "a", "b"]
    assert ordered(["a", "b"], remote="b") == ["b", "a"]  # moved, not listed twice
    assert ordered(["a", "b"], remote=None) == []
    assert ordered(["a"], remotes=["b", "c"]) == ["b", "c"]
    assert ordered([], remote="b", remotes=["b", "c"]) == ["b", "c"]
    assert ordered([], remote=None, remotes=[]) == []
    for remote, remotes in (("a", ["b", "a"]), ("a", []), (None, ["a"])):
        with pytest.raises(ValueError, match="first of remotes"):
            ordered([], remote=remote, remotes=remotes)


def test_a_failing_remote_leaves_the_project_list_to_the_others(
    tmp_path: Path, corp: Upstream, upstream: Upstream
) -> None:
    svc = start(tmp_path, corp, upstream)
    try:
        corp.fail_status = upstream.fail_status = 503
        with pytest.raises(UpstreamError):  # nothing to list at all
            main(svc).projects()
        upstream.fail_status = None
        listed = main(svc).projects()
        assert "app-with-dep" in listed.names and "corp-only" not in listed.names
        assert listed.stale  # asked for again soon
    finally:
        svc.close()


def remote_names(svc: Services, distribution: str) -> list[str]:
    with svc.catalog.session() as session:
        row = session.scalars(select(DistributionRow).where(DistributionRow.name == distribution))
        return [r.name for r in row.one().remotes]


def test_a_restart_keeps_the_order_the_api_set(tmp_path: Path) -> None:
    """The config sync at start: the embedded default's `remote` never undoes the API's list;
    a file that names `remote` puts it first and keeps the others."""
    data = tmp_path / "data"
    env = {"PULLTHROUGH_SERVER__DATA_DIR": str(data)}
    svc = build_services(load_settings(None, environ=env))
    with svc.catalog.session() as session:
        corp = Remote(name="corp", settings={"url": "http://127.0.0.1:9/simple/"})
        session.add(corp)
        dist = session.scalars(select(DistributionRow).where(DistributionRow.name == "pypi")).one()
        dist.remotes = [corp, *dist.remotes]
    svc.close()
    assert remote_names(svc, "pypi") == ["corp", "pypi"]
    build_services(load_settings(None, environ=env)).close()  # the default config again
    assert remote_names(svc, "pypi") == ["corp", "pypi"]

    config = tmp_path / "pullthrough.toml"
    config.write_text(
        f'[server]\ndata_dir = "{data}"\n'
        '[[remotes]]\nname = "pypi"\nurl = "https://pypi.org/"\n'
        '[[distributions]]\nname = "pypi"\nbase_path = "pypi"\nremote = "pypi"\n'
    )
    build_services(load_settings(config, environ={})).close()
    assert remote_names(svc, "pypi") == ["pypi", "corp"]  # the file's first, nothing lost
