"""The throwaway PostgreSQL server the catalog tests run against."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text

from support.postgres import postgres_available, postgres_server


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A SQLAlchemy URL to an empty database on a PostgreSQL server started for this session.
    Skipped where the server binaries are missing, except on CI (CI set), where that fails."""
    reason = postgres_available()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must test against PostgreSQL: {reason}")
        pytest.skip(reason)
    with postgres_server(tmp_path_factory.mktemp("postgres")) as url:
        yield url


def test_postgres_round_trip(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    try:
        assert engine.dialect.name == "postgresql"
        assert engine.dialect.driver == "psycopg"
        with engine.connect() as conn:
            version = conn.execute(text("select version()")).scalar_one()
            assert version.startswith("PostgreSQL ")
            conn.execute(text("create table fixture_check (id serial primary key, name text)"))
            conn.execute(
                text("insert into fixture_check (name) values (:name)"),
                [{"name": "shelf-reader"}, {"name": "meta-lib"}],
            )
            names = conn.execute(text("select name from fixture_check order by id")).scalars()
            assert names.all() == ["shelf-reader", "meta-lib"]
            conn.rollback()  # the session's database stays empty for the tests that share it
    finally:
        engine.dispose()
