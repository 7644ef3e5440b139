"""Lists' query parameters (api.listing): a list takes its own filters and the generic parameters
and refuses any other by name, as Pulp does; each filter selects what it says, on SQLite and on
PostgreSQL alike."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Engine, func, insert, make_url, select

from pullthrough.api import kinds
from pullthrough.api.bindings import BINDINGS, CONTENT, TASKS, WORKERS
from pullthrough.api.crud import operations
from pullthrough.api.listing import COMPARED, GENERIC, apply_filters, page, parse_filters
from pullthrough.api.operations import ValidationError
from pullthrough.api.params import CONTAINS, DATE_TIME, EXACT, GTE, IN, ISNULL, LTE, Filter
from pullthrough.api.resources import VERSIONS
from pullthrough.catalog.db import Catalog, make_engine, prepare
from pullthrough.catalog.models import Base, Package, Task, Worker, worker_id
from pullthrough.services.container import EXTENSION
from support.postgres import private_database

FILTERS = TASKS.resource.filters
# fixed: the test ids name them, and every xdist worker must collect the same tests
REPOSITORY = kinds.REPOSITORY.href("0e4c1b1e-7a52-4c3e-9a4e-6f1d2c3b4a51")
DISTRIBUTION = kinds.DISTRIBUTION.href("5a7d9c2e-1f3b-4e6a-8c0d-2b4f6e8a0c12")


def parsed(args: dict[str, list[str]], filters: tuple[Filter, ...] = FILTERS) -> list[Any]:
    return [(f.filter.name, f.lookup, f.values) for f in parse_filters(args, filters)]


def refusal(args: dict[str, list[str]], filters: tuple[Filter, ...] = FILTERS) -> dict[str, Any]:
    with pytest.raises(ValidationError) as refused:
        parse_filters(args, filters)
    return refused.value.errors


# ---- which parameters a list takes -------------------------------------------------------


def test_a_parameter_that_is_not_a_filter_of_the_list_is_refused_by_name() -> None:
    """Pulp's answer (pulpcore BaseFilterSet.is_valid): 400 {"errors": ["Invalid Filter: 'x'"]},
    every unknown parameter named, in the query's order; never the whole list."""
    args = {"stat": ["failed"], "state": ["failed"], "limit": ["5"], "nme__contains": ["x"]}
    assert refusal(args) == {
        "errors": ["Invalid Filter: 'stat'", "Invalid Filter: 'nme__contains'"]
    }
    assert refusal({"name__icontains": ["x"]}) == {"errors": ["Invalid Filter: 'name__icontains'"]}
    assert refusal({"task_group": [str(uuid.uuid4())]}) == {
        "errors": ["Invalid Filter: 'task_group'"]  # tasks have no group
    }


@pytest.mark.parametrize("key", sorted(GENERIC))
def test_the_generic_parameters_are_no_filters(key: str) -> None:
    assert key in ("offset", "limit", "ordering", "fields", "exclude_fields")
    assert parsed({key: ["x"]}) == []


def invalid_filters(args: dict[str, list[str]], filters: tuple[Filter, ...]) -> list[str]:
    """The refusals of parameters as no filter (not those of a filter's value)."""
    try:
        parse_filters(args, filters)
    except ValidationError as exc:
        return exc.errors.get("errors", [])
    return []


def test_a_list_takes_every_parameter_its_document_declares_and_no_other() -> None:
    """Core's list of every type (`repositories_list`) too: it takes its typed list's filters."""
    lists = [(b, op) for b in BINDINGS for op in operations(b) if op.id.endswith("_list")]
    for binding, listing in lists:
        declared = {param.name for param in listing.params}
        filters = binding.resource.filters
        assert declared >= GENERIC, listing.id
        assert invalid_filters({key: [""] for key in declared}, filters) == [], listing.id
        misspelt = invalid_filters({f"{key}x": [""] for key in declared}, filters)
        assert len(misspelt) == len(declared), listing.id


# ---- what a filter's values become ---------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ({"name": ["a.b"]}, [("name", EXACT, ("a.b",))]),
        ({"name__contains": ["%_"]}, [("name", CONTAINS, ("%_",))]),
        # repeated keys and comma-joined values alike; empty parts are nothing
        (
            {"state__in": ["failed,completed", "waiting", ","]},
            [("state", IN, ("failed", "completed", "waiting"))],
        ),
        ({"state__in": [","], "name__in": [""]}, []),
        # an empty value filters nothing, as django-filter's (pulp-cli never sends one; curl may)
        ({"name": [""], "state": [""], "started_at__gte": [""], "created_resources": [""]}, []),
        ({"name": ["first", "second"]}, [("name", EXACT, ("first",))]),
        # pulp-cli's --started-after sends %Y-%m-%dT%H:%M:%S.%fZ; a time without a zone is UTC
        (
            {"started_at__gte": ["2999-01-01T00:00:00.000000Z"]},
            [("started_at", GTE, (datetime(2999, 1, 1, tzinfo=UTC),))],
        ),
        (
            {"finished_at__lte": ["2000-01-01T02:00:00+02:00"], "started_at__lte": ["2000-01-01"]},
            [
                ("started_at", LTE, (datetime(2000, 1, 1, tzinfo=UTC),)),
                ("finished_at", LTE, (datetime(2000, 1, 1, tzinfo=UTC),)),
            ],
        ),
        # RFC 3339 allows a lower-case t and z (core.times.read_time, as every other time)
        (
            {"started_at__gte": ["2999-01-01t00:00:00z"]},
            [("started_at", GTE, (datetime(2999, 1, 1, tzinfo=UTC),))],
        ),
        ({"created_resources": [REPOSITORY]}, [("created_resources", EXACT, (REPOSITORY,))]),
    ],
)
def test_filters_are_parsed_and_typed(args: dict[str, list[str]], expected: list[Any]) -> None:
    assert parsed(args) == expected


def test_a_value_its_filter_cannot_take_is_refused_for_that_parameter() -> None:
    assert refusal({"started_at__gte": ["yesterday"]}) == {
        "started_at__gte": ["Enter a valid date/time (RFC 3339)."]
    }
    assert refusal({"number": ["one"]}, VERSIONS.filters) == {
        "number": ["A valid integer is required."]
    }
    # a time whose UTC is out of range: a 400, not an OverflowError (a 500)
    for late in ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"):
        assert refusal({"finished_at__lt": [late]}) == {
            "finished_at__lt": ["Enter a valid date/time (RFC 3339)."]
        }
    bogus = {"state": ["Select a valid choice. bogus is not one of the available choices."]}
    assert refusal({"state": ["bogus"]}) == bogus  # not an empty list: no task can be `bogus`
    assert refusal({"state__in": ["completed,bogus"]}) == bogus


def with_worker_timeout(app: Flask, seconds: float = 30.0, dialect: str = "sqlite") -> Flask:
    """What the workers' `online` and `missing` filters read of the services: the timeout, and
    the catalog's database (PostgreSQL's clock judges heartbeats there)."""
    tasks = SimpleNamespace(worker_timeout=seconds)
    engine = SimpleNamespace(dialect=SimpleNamespace(name=dialect))
    app.extensions[EXTENSION] = SimpleNamespace(
        settings=SimpleNamespace(tasks=tasks), catalog=SimpleNamespace(engine=engine)
    )
    return app


def test_every_filter_of_every_list_compiles_for_both_databases() -> None:
    """Each declared filter is a column of its binding's model or a condition of the binding."""
    versions = f"{REPOSITORY}versions/1/"
    hrefs = {"repository_version": versions, "created_resources": versions}
    for binding in BINDINGS:
        params = []
        for declared in binding.resource.filters:
            name = declared.href or declared.name
            if declared.format == DATE_TIME:
                value = "2000-01-01T00:00:00Z"
            elif declared.type == "integer":
                value = "1"
            elif declared.type == "boolean":
                value = "false"
            elif name in kinds.KINDS:
                value = kinds.KINDS[name].href(str(uuid.uuid4()))
            elif declared.choices is not None:
                value = declared.choices[0]
            elif declared.versions:
                value = "1.0"
            else:
                value = hrefs.get(name, "x")
            params += [
                (declared.key(lookup), "true" if lookup == ISNULL else value)
                for lookup in declared.lookups
                if not (declared.versions and lookup in COMPARED)  # read: see below
            ]
        for dialect in (
            make_url(url).get_dialect()() for url in ("sqlite://", "postgresql+psycopg://")
        ):
            app = with_worker_timeout(Flask(__name__), dialect=dialect.name)
            with app.test_request_context("/", query_string=params):
                query = apply_filters(select(binding.model), binding)
            where = str(query.compile(dialect=dialect)).split("WHERE", 1)[1]
            assert where.count(" AND ") + 1 >= len(params), (binding.resource.kind.label, where)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("version__gte=10", ["10.0", "10.1rc1"]),  # as text, "9.0" comes after "10"
        ("version__gt=10.0", ["10.1rc1"]),
        ("version__lt=10.1", ["10.0", "10.1rc1", "9.0"]),  # a pre-release before its release
        ("version__lte=9", ["9.0"]),
        ("version__gte=9.0&version__lt=10.1rc1", ["10.0", "9.0"]),
        ("version=10.0", ["10.0"]),
        ("version__gt=99", []),
        ("version__gte=0", ["10.0", "10.1rc1", "9.0"]),  # a legacy version compares with none
    ],
)
def test_content_versions_compare_as_pep_440_versions(
    tmp_path: Path, query: str, expected: list[str]
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'catalog.sqlite3'}")
    try:
        prepare(engine)
        catalog = Catalog(engine)
        with catalog.session() as session:
            for version in ("9.0", "10.0", "10.1rc1", "2004d"):
                filename = f"acme-{version}.tar.gz"
                session.add(
                    Package(filename=filename, name="acme", version=version, packagetype="sdist",
                            sha256=version.ljust(64, "0"), size=1)
                )  # fmt: skip
        with Flask(__name__).test_request_context(f"/?{query}"), catalog.reading() as session:
            found = session.scalars(apply_filters(select(Package), CONTENT, session)).all()
        assert sorted(p.version for p in found) == expected
        with (
            Flask(__name__).test_request_context("/?version__gte=nope"),
            catalog.reading() as session,
            pytest.raises(ValidationError) as refused,
        ):
            apply_filters(select(Package), CONTENT, session)
        assert refused.value.errors == {
            "version__gte": ["'nope' is not a valid version (PEP 440)."]
        }
    finally:
        engine.dispose()


def test_a_version_filter_matching_more_versions_than_a_query_takes_parameters(
    postgres_url: str,
) -> None:
    """A statement takes at most 65,535 parameters on PostgreSQL (250,000 in Debian's SQLite):
    a catalog of more distinct versions than that, all matching, is still listed."""
    count = 66_000
    with private_database(postgres_url) as url:
        engine = make_engine(url)
        try:
            prepare(engine)
            rows = [
                {"filename": f"acme-1.{n}.tar.gz", "name": "acme", "version": f"1.{n}",
                 "packagetype": "sdist", "sha256": f"{n:064x}", "size": 1}
                for n in range(count)
            ]  # fmt: skip
            with engine.begin() as conn:
                conn.execute(insert(Package), rows)
            with (
                Flask(__name__).test_request_context("/?version__gte=1.5"),
                Catalog(engine).reading() as session,
            ):
                query = apply_filters(select(func.count()).select_from(Package), CONTENT, session)
                assert session.scalar(query) == count - 5
        finally:
            engine.dispose()


# ---- what the task filters select ----------------------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def tasks(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Catalog]:
    """A catalog on SQLite, or on PostgreSQL in another time zone than UTC, with three tasks: a
    sync that made version 1, a distribution's creation, an upload that failed. The tests only
    read it."""
    with (
        private_database(request.getfixturevalue("postgres_url"), timezone="Europe/Berlin")
        if request.param == "postgresql"
        else _sqlite(tmp_path_factory.mktemp("catalog"))
    ) as url:
        engine: Engine = make_engine(url)
        try:
            prepare(engine)
            catalog = Catalog(engine)
            with catalog.session() as session:
                session.add_all(_tasks())
            yield catalog
        finally:
            engine.dispose()


@contextmanager
def _sqlite(tmp_path: Path) -> Iterator[str]:
    yield f"sqlite:///{tmp_path / 'catalog.sqlite3'}"


def _at(day: int) -> datetime:
    return datetime(2020, 1, day, 12, tzinfo=UTC)


def _tasks() -> list[Base]:
    repository_id = kinds.REPOSITORY.parse(REPOSITORY)
    return [
        *(
            Worker(name=name, last_heartbeat=_at(day))
            for name, day in (("node-a-41", 2), ("node-b-7", 3))
        ),
        Task(
            name="pullthrough.tasks.repository.sync",
            state="completed",
            logging_cid="cid-sync-1",
            started_at=_at(1),
            finished_at=_at(2),
            worker="node-a-41",
            created_resources=[{"kind": "repository_version", "id": repository_id, "number": 1}],
            reserved_resources=[REPOSITORY, f"shared:{DISTRIBUTION}"],
        ),
        Task(
            name="pullthrough.tasks.distribution.create",
            state="completed",
            logging_cid="cid-dist",
            started_at=_at(3),
            finished_at=_at(3),
            worker="node-b-7",
            created_resources=[
                {"kind": "distribution", "id": kinds.DISTRIBUTION.parse(DISTRIBUTION)}
            ],
            reserved_resources=[DISTRIBUTION],
        ),
        Task(
            name="pullthrough.tasks.content.upload",
            state="failed",
            logging_cid="cid-upload",
            started_at=_at(5),
            finished_at=None,
            created_resources=[],
            reserved_resources=[],
        ),
    ]


SYNC, CREATE, UPLOAD = "repository.sync", "distribution.create", "content.upload"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", [SYNC, CREATE, UPLOAD]),
        ("name=pullthrough.tasks.content.upload", [UPLOAD]),
        ("name__contains=.create", [CREATE]),
        ("name__contains=%25", []),  # no LIKE wildcard
        ("name__contains=.CREATE", []),  # as in Pulp (and PostgreSQL): case matters
        ("logging_cid__contains=CID-", []),
        ("name__in=pullthrough.tasks.content.upload,nothing", [UPLOAD]),
        ("state=failed", [UPLOAD]),
        ("state__in=completed&state__in=canceled", [SYNC, CREATE]),
        ("logging_cid=cid-sync-1", [SYNC]),
        ("logging_cid__contains=cid-", [SYNC, CREATE, UPLOAD]),
        ("logging_cid=cid-", []),
        (f"worker={kinds.WORKER.href(worker_id('node-b-7'))}", [CREATE]),
        (
            f"worker__in={kinds.WORKER.href(worker_id('node-b-7'))},{kinds.WORKER.href(worker_id('x'))}",
            [CREATE],
        ),
        (f"worker={kinds.WORKER.href(worker_id('node-c'))}", []),  # no such worker
        ("started_at__gte=2020-01-03T12:00:00Z", [CREATE, UPLOAD]),
        ("started_at__gt=2020-01-03T12:00:00Z", [UPLOAD]),
        ("started_at__lte=2020-01-03T13:00:00%2B01:00", [SYNC, CREATE]),  # 12:00 UTC
        ("started_at__lt=2020-01-03T12:00:00Z", [SYNC]),
        ("finished_at__lte=2020-01-02T12:00:00Z", [SYNC]),
        ("finished_at__gte=2000-01-01T00:00:00Z", [SYNC, CREATE]),  # not the unfinished one
        ("started_at__gte=2999-01-01T00:00:00Z", []),
        (f"created_resources={REPOSITORY}versions/1/", [SYNC]),
        (f"created_resources={REPOSITORY}versions/10/", []),
        (f"created_resources={REPOSITORY}", []),  # its version, not itself
        (f"created_resources={DISTRIBUTION}", [CREATE]),
        (f"reserved_resources={DISTRIBUTION}", [SYNC, CREATE]),  # shared, or exclusively
        (f"exclusive_resources={DISTRIBUTION}", [CREATE]),
        (f"shared_resources={DISTRIBUTION}", [SYNC]),
        (f"exclusive_resources__in={REPOSITORY},{DISTRIBUTION}", [SYNC, CREATE]),
        (f"shared_resources={REPOSITORY}", []),
        (f"reserved_resources={REPOSITORY[:-1]}", []),  # a whole href, not a part of one
        (
            f"state=completed&worker={kinds.WORKER.href(worker_id('node-a-41'))}&name__contains=sync",
            [SYNC],
        ),
    ],
)
def test_task_filters_select_the_tasks_they_name(
    tasks: Catalog, query: str, expected: list[str]
) -> None:
    app = Flask(__name__)
    with app.test_request_context(f"/?{query}"), tasks.reading() as session:
        found = session.scalars(apply_filters(select(Task), TASKS)).all()
    assert sorted(t.name.removeprefix("pullthrough.tasks.") for t in found) == sorted(expected)


def test_an_href_of_no_kind_is_refused_for_created_resources() -> None:
    app = Flask(__name__)
    with (
        app.test_request_context("/?created_resources=/pulp/api/v3/workers/x/"),
        pytest.raises(ValidationError) as refused,
    ):
        apply_filters(select(Task), TASKS)
    assert list(refused.value.errors) == ["created_resources"]


# ---- what the worker filters select (and tasks by their worker) ----------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["node-a-41", "node-b-7"]),
        ("online=true", ["node-b-7"]),
        ("online=false", ["node-a-41"]),
        ("missing=true", ["node-a-41"]),
        ("missing=False", ["node-b-7"]),  # as DRF reads a boolean: true, false, 1, 0, any case
        ("missing=0&online=1", ["node-b-7"]),
        ("online=true&name__contains=node-a", []),
        ("name__icontains=NODE-B", ["node-b-7"]),
        ("last_heartbeat__gt=2020-01-02T12:00:00Z", ["node-b-7"]),
        ("last_heartbeat__lte=2020-01-02T12:00:00Z", ["node-a-41"]),
    ],
)
def test_worker_filters_select_the_workers_they_name(
    tasks: Catalog, query: str, expected: list[str]
) -> None:
    """Online: a heartbeat within tasks.worker_timeout - here up to a day before node-b-7's
    last one (node-a-41's is a day older still); missing: the others."""
    timeout = (datetime.now(UTC) - _at(3)).total_seconds() + 12 * 3600
    app = with_worker_timeout(Flask(__name__), timeout, tasks.engine.dialect.name)
    with app.test_request_context(f"/?{query}"), tasks.reading() as session:
        found = session.scalars(apply_filters(select(Worker), WORKERS)).all()
    assert sorted(w.name for w in found) == expected


@pytest.mark.parametrize(
    ("query", "refused"),
    [
        ("online=maybe", "online"),
        ("worker=/pulp/api/v3/workers/nope/", "worker"),  # Pulp: UUID invalid
        (f"worker={REPOSITORY}", "worker"),
        ("worker=node-a-41", "worker"),  # a name: pulp-cli sends the href it looked up
    ],
)
def test_a_worker_filter_refuses_what_names_no_worker(query: str, refused: str) -> None:
    app = with_worker_timeout(Flask(__name__))
    binding = TASKS if query.startswith("worker") else WORKERS
    with app.test_request_context(f"/?{query}"), pytest.raises(ValidationError) as caught:
        apply_filters(select(binding.model), binding)
    assert list(caught.value.errors) == [refused]


# ---- how lists are ordered ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ordering", "expected"),
    [
        ("finished_at", [SYNC, CREATE, UPLOAD]),  # unfinished (NULL) last going up
        ("-finished_at", [UPLOAD, CREATE, SYNC]),  # and first going down, as PostgreSQL
        ("started_at,-finished_at", [SYNC, CREATE, UPLOAD]),
    ],
)
def test_nulls_sort_as_postgresql_sorts_them_on_both_databases(
    tasks: Catalog, ordering: str, expected: list[str]
) -> None:
    """Pulp is on PostgreSQL: NULLS LAST ascending, NULLS FIRST descending; SQLite sorts NULL
    as the smallest value, so the same list came in another order there."""
    assert _ordered(tasks, f"ordering={ordering}") == expected


@pytest.mark.parametrize("ordering", ["state", "-state", "name", "-pulp_created"])
def test_pages_of_a_list_ordered_by_a_column_with_ties_hold_every_row_once(
    tasks: Catalog, ordering: str
) -> None:
    """Rows equal in the ordered column (two completed tasks) come in the order of their
    primary key, so pages of one row each give every row once, in the whole list's order."""
    whole = _ordered(tasks, f"ordering={ordering}")
    pages = [_ordered(tasks, f"ordering={ordering}&limit=1&offset={i}") for i in range(3)]
    assert [p[0] for p in pages] == whole and sorted(whole) == sorted([SYNC, CREATE, UPLOAD])
    with tasks.reading() as session:
        ids = {
            t.name.removeprefix("pullthrough.tasks."): t.id for t in session.scalars(select(Task))
        }
    ties = [name for name in whole if name != UPLOAD] if "state" in ordering else []
    assert ties == sorted(ties, key=ids.__getitem__)


def _ordered(tasks: Catalog, query: str) -> list[str]:
    """The task names of one page of the task list, as `query` asks."""
    app = Flask(__name__)
    with app.test_request_context(f"/?{query}"), tasks.reading() as session:
        body = page(
            session,
            select(Task),
            lambda rows: [{"name": t.name.removeprefix("pullthrough.tasks.")} for t in rows],
            TASKS,
        )
    return [item["name"] for item in body["results"]]
