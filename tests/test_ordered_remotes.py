"""A distribution with several remotes, in-process over two real upstreams on loopback: a project
comes from the first remote that has it (its filters and policy), never from a later one, and
the project list is the union."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.utils import NormalizedName

from pullthrough.config import load_settings
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
