"""Label selectors (core.labels) as SQL on a `pulp_labels` column (a JSON object), alike on
SQLite and PostgreSQL: the database picks the rows, so counts and pages stay its own."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import String, and_, func, literal, or_
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from pullthrough.catalog.db import SQLITE_LOWER
from pullthrough.core.labels import CONTAINS, DIFFERS, EQUALS, HAS, LACKS, Term


class _LabelType(FunctionElement[str]):
    """The JSON type of a label's value (`string`, `null`); SQL NULL when the key is absent -
    which the value alone cannot tell from a null value. Its arguments: the column, the key,
    and the key's JSON path (SQLite's), all of them the statement's own parameters (the
    compiled statement is cached, and bound anew)."""

    type = String()
    inherit_cache = True


class _LabelValue(FunctionElement[str]):
    """A label's value as text; SQL NULL for a null value and for an absent key alike. Its
    arguments as _LabelType's."""

    type = String()
    inherit_cache = True


def _arguments(column: Any, key: str) -> tuple[Any, ...]:
    """The column, the key, and its SQLite JSON path: the key as the labels' JSON text writes
    it (json.dumps escapes letters beyond ASCII, `\\u00e9`), which SQLite before 3.45 compares
    as written; keys are [\\w .-] (core.labels): nothing else to quote."""
    path = f'$."{json.dumps(key)[1:-1]}"'
    return column, literal(key, String), literal(path, String)


@compiles(_LabelValue, "sqlite")
def _sqlite_LabelValue(element: _LabelValue, compiler: SQLCompiler, **kw: Any) -> str:
    column, _, path = element.clauses
    return str(compiler.process(func.json_extract(column, path), **kw))


@compiles(_LabelValue, "postgresql")
def _postgresql_LabelValue(element: _LabelValue, compiler: SQLCompiler, **kw: Any) -> str:
    column, key, _ = element.clauses
    return str(compiler.process(column.op("->>")(key), **kw))


@compiles(_LabelType, "sqlite")
def _sqlite_LabelType(element: _LabelType, compiler: SQLCompiler, **kw: Any) -> str:
    column, _, path = element.clauses
    return str(compiler.process(func.json_type(column, path), **kw))


@compiles(_LabelType, "postgresql")
def _postgresql_LabelType(element: _LabelType, compiler: SQLCompiler, **kw: Any) -> str:
    column, key, _ = element.clauses
    return str(compiler.process(func.json_typeof(column.op("->")(key)), **kw))


class _Lowered(FunctionElement[str]):
    """A value in lower case, in every script: SQLite's own lower() leaves `Ü` as it is, so
    `~zürich` would not find `ZÜRICH` (PostgreSQL folds as its database's locale does)."""

    type = String()
    inherit_cache = True


@compiles(_Lowered)
def _default_Lowered(element: _Lowered, compiler: SQLCompiler, **kw: Any) -> str:
    return str(compiler.process(func.lower(*element.clauses), **kw))


@compiles(_Lowered, "sqlite")
def _sqlite_Lowered(element: _Lowered, compiler: SQLCompiler, **kw: Any) -> str:
    return str(compiler.process(getattr(func, SQLITE_LOWER)(*element.clauses), **kw))


def _term(column: Any, term: Term) -> ColumnElement[bool]:
    present = _LabelType(*_arguments(column, term.key)).is_not(None)
    value: ColumnElement[str] = _LabelValue(*_arguments(column, term.key))
    if term.op == HAS:
        return present
    if term.op == LACKS:
        return ~present
    if term.op == EQUALS:
        return value == term.value
    if term.op == DIFFERS:
        return and_(present, or_(value.is_(None), value != term.value))
    assert term.op == CONTAINS
    lowered: ColumnElement[str] = _Lowered(value)
    return lowered.contains(term.value.lower(), autoescape=True)


def selected(column: Any, terms: Sequence[Term]) -> ColumnElement[bool]:
    """The rows whose labels in `column` satisfy every term."""
    return and_(*(_term(column, term) for term in terms))
