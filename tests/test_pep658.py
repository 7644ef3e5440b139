"""PEP 658 metadata is offered only where installers may trust it instead of building: a wheel's
METADATA, and an sdist's PKG-INFO only from Metadata-Version 2.2 with no dependency field
Dynamic. An older PKG-INFO may leave its dependencies out (pip then installed Flask-Script
without Flask)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from packaging.utils import NormalizedName
from sqlalchemy import select

from pullthrough.catalog.db import alembic_config
from pullthrough.catalog.models import Distribution, Package
from pullthrough.catalog.versions import create_repository
from pullthrough.config import load_settings
from pullthrough.core.metadata import parse_metadata, serves_as_pep658
from pullthrough.services.container import Services, build_services
from pullthrough.services.distribution import NotFound
from support.packages import build_wheel
from support.sdist_backend import write_sdist
from support.servers import config_text


def pkg_info(version: str, *extra: str) -> bytes:
    return "\n".join(
        [f"Metadata-Version: {version}", "Name: lib", "Version: 1.0", *extra, ""]
    ).encode()


@pytest.mark.parametrize(
    ("raw", "packagetype", "trusted"),
    [
        (pkg_info("2.1"), "bdist_wheel", True),
        (pkg_info("1.1"), "bdist_wheel", True),
        (pkg_info("1.1"), "sdist", False),
        (pkg_info("2.1", "Requires-Dist: flask"), "sdist", False),
        (pkg_info("2.2"), "sdist", True),
        (pkg_info("2.4", "Requires-Dist: flask"), "sdist", True),
        (pkg_info("2.2", "Dynamic: License"), "sdist", True),
        (pkg_info("2.2", "Dynamic: Requires-Dist"), "sdist", False),
        (pkg_info("2.3", "Dynamic: requires-python"), "sdist", False),
        (pkg_info("2.2", "Dynamic: Provides-Extra"), "sdist", False),
        (pkg_info("two"), "sdist", False),
        (pkg_info("2.2"), "bdist_egg", False),
    ],
)
def test_which_metadata_is_offered(raw: bytes, packagetype: str, trusted: bool) -> None:
    assert serves_as_pep658(parse_metadata(raw), packagetype) is trusted


def sdist(out: Path, version: str, metadata_version: str, *extra: str) -> Path:
    base = f"lib-{version}"
    text = [f"Metadata-Version: {metadata_version}", "Name: lib", f"Version: {version}", *extra]
    path = out / f"{base}.tar.gz"
    write_sdist(path, {f"{base}/PKG-INFO": ("\n".join(text) + "\n\n").encode()})
    return path


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    config = tmp_path / "pullthrough.toml"
    config.write_text(config_text("http://127.0.0.1:9/", tmp_path / "data"))
    svc = build_services(load_settings(config, environ={}))
    try:
        yield svc
    finally:
        svc.close()


def test_uploaded_sdists_offer_their_metadata_only_when_it_is_final(
    services: Services, tmp_path: Path
) -> None:
    files = [
        build_wheel(tmp_path, "lib", "1.0"),
        sdist(tmp_path, "1.0", "2.1", "Requires-Dist: flask"),  # may still be incomplete
        sdist(tmp_path, "2.0", "2.2", "Requires-Dist: flask"),  # final
        sdist(tmp_path, "3.0", "2.2", "Dynamic: Requires-Dist"),  # the build decides
    ]
    with services.catalog.session() as session:
        repo_id = create_repository(session, name="local").id
    for path in files:
        with path.open("rb") as fh:
            services.uploads.upload(repo_id, fh, path.name, actor="admin")
    with services.catalog.session() as session:
        session.add(Distribution(name="local", base_path="local", repository_id=repo_id))
    services.registry.changed()
    dist = services.registry.get("local")
    assert dist is not None

    page = {f.filename: f for f in dist.project(NormalizedName("lib")).page.files}
    offered = {name for name, f in page.items() if f.core_metadata}
    assert offered == {"lib-1.0-py3-none-any.whl", "lib-2.0.tar.gz"}
    assert b"Requires-Dist: flask" in services.pullthrough.metadata(dist, "lib-2.0.tar.gz")[0]
    for name in ("lib-1.0.tar.gz", "lib-3.0.tar.gz"):
        with pytest.raises(NotFound):
            services.pullthrough.metadata(dist, name)


def test_the_upgrade_withdraws_what_older_releases_offered(
    services: Services, tmp_path: Path
) -> None:
    """Packages stored before 0004 do not record whether their PKG-INFO was final."""
    with services.catalog.session() as session:
        repo_id = create_repository(session, name="old").id
    for path in (build_wheel(tmp_path, "lib", "1.0"), sdist(tmp_path, "2.0", "2.2")):
        with path.open("rb") as fh:
            services.uploads.upload(repo_id, fh, path.name, actor="admin")
    config = alembic_config(services.catalog.engine)
    command.downgrade(config, "0003")
    with services.catalog.session() as session:  # the table as it was then: no ORM model
        packages = sa.table("packages", sa.column("metadata_sha256", sa.String()))
        session.execute(  # as before 0004
            sa.update(packages)
            .where(packages.c.metadata_sha256.is_(None))
            .values(metadata_sha256="0" * 64)
        )
    command.upgrade(config, "head")
    with services.catalog.session() as session:
        kept = {p.filename: p.metadata_sha256 is not None for p in session.scalars(select(Package))}
    assert kept == {"lib-1.0-py3-none-any.whl": True, "lib-2.0.tar.gz": False}
