"""The throwaway PostgreSQL server the catalog tests run against (`postgres_url`, in conftest)."""

from __future__ import annotations

from sqlalchemy import create_engine, text


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
