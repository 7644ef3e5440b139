"""Lists as Pulp answers them: filters, ordering, offset/limit, `fields`/`exclude_fields`."""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from flask import request
from packaging.version import Version
from sqlalchemy import Select, bindparam, func, inspect, or_, select
from sqlalchemy.orm import Session

from pullthrough.api.bindings import Binding
from pullthrough.api.kinds import VERSION, BadHref
from pullthrough.api.operations import RESOLVERS, ValidationError, invalid
from pullthrough.api.params import (
    CONTAINS,
    DATE_TIME,
    GT,
    GTE,
    ICONTAINS,
    IN,
    ISNULL,
    LT,
    LTE,
    PAGE_PARAMS,
    STARTSWITH,
    Filter,
)
from pullthrough.core.fields import INT_MAX
from pullthrough.core.filenames import parse_version
from pullthrough.core.times import read_utc

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_OFFSET = INT_MAX  # beyond any real list; larger numbers overflow the database's integers
GENERIC = frozenset(p.name for p in PAGE_PARAMS)  # not filters: paging, ordering, fields
BOOLEANS = {"true": True, "1": True, "false": False, "0": False}  # as DRF reads a query's


@dataclass(frozen=True)
class Lookup:
    """One filter a query gives: which, how it compares, and its values (several for `__in`),
    typed as the filter says."""

    filter: Filter
    lookup: str
    values: tuple[Any, ...]


def parse_filters(args: Mapping[str, Sequence[str]], filters: Sequence[Filter]) -> list[Lookup]:
    """The filters a query's parameters (name -> values) give. Any other parameter but the
    generic ones is refused, all of them named, as Pulp does (pulpcore's BaseFilterSet): a
    mistyped or unsupported filter must not answer as if every object matched."""
    declared = {f.key(lookup): (f, lookup) for f in filters for lookup in f.lookups}
    unknown = [key for key in args if key not in declared and key not in GENERIC]
    if unknown:
        raise ValidationError({"errors": [f"Invalid Filter: '{key}'" for key in unknown]})
    found = []
    for key, (one, lookup) in declared.items():
        given = list(args.get(key) or [])
        if lookup == IN:
            given = _split(given)
        # as django-filter's form fields: trimmed, and then an empty value is no filter
        given = [value.strip() for value in given]
        given = [value for value in given if value != ""]
        if given:
            values = given if lookup == IN else given[:1]
            found.append(Lookup(one, lookup, tuple(_typed(one, lookup, v) for v in values)))
    return found


def apply_filters(
    query: Select[Any], binding: Binding, session: Session | None = None
) -> Select[Any]:
    """The request's filters of the binding's resource, each a lookup on the column of its name
    or the binding's condition for it; a 400 for any other parameter (parse_filters). With the
    session, a 400 too for a repository version filter naming no version (_version_exists);
    versions compared (a filter of `versions`) need it."""
    for found in parse_filters(request.args.to_dict(flat=False), binding.resource.filters):
        if session is not None and found.filter.href == VERSION.label:
            _version_exists(session, found)
        query = query.where(_condition(binding, found, session))
    return query


def _version_exists(session: Session, found: Lookup) -> None:
    """As Pulp's RepositoryVersionFilter: a version that is not there (never made, or deleted)
    is a 400 with its message, not an empty list that reads as an empty version. A malformed
    href is left to the filter's condition, which names what is wrong with it."""
    for value in found.values:
        try:
            version = RESOLVERS[VERSION.label](session, value)
        except BadHref:
            continue
        if version is None:
            key = found.filter.key(found.lookup)
            raise invalid(key, f"URI {value} not found for repositoryversion.")


def _condition(binding: Binding, found: Lookup, session: Session | None) -> Any:
    name, lookup, values = found.filter.name, found.lookup, found.values
    if (own := binding.conditions.get(name)) is not None:
        return or_(*(own(value) for value in values))
    column = binding.columns[name] if name in binding.columns else getattr(binding.model, name)
    value = values[0]
    if found.filter.versions and lookup in COMPARED:
        assert session is not None, "versions are compared in the catalog's session"
        matched = _versions_compared(session, column, lookup, value)
        # written into the statement: a catalog may hold more versions than a statement takes
        # parameters (65,535 on PostgreSQL)
        return column.in_(bindparam(None, matched, expanding=True, literal_execute=True))
    if lookup == IN:
        return column.in_(values)
    if lookup == ISNULL:
        return column.is_(None) if value else column.is_not(None)
    if lookup == CONTAINS:
        return column.contains(value, autoescape=True)
    if lookup == ICONTAINS:
        return func.lower(column).contains(value.lower(), autoescape=True)
    if lookup == STARTSWITH:
        return column.startswith(value, autoescape=True)
    if lookup == GT:
        return column > value
    if lookup == GTE:
        return column >= value
    if lookup == LT:
        return column < value
    if lookup == LTE:
        return column <= value
    return column == value


COMPARED = {GT: operator.gt, GTE: operator.ge, LT: operator.lt, LTE: operator.le}


def _versions_compared(session: Session, column: Any, lookup: str, than: Version) -> list[str]:
    """The versions the catalog holds that compare with `than` as asked, as PEP 440 orders
    them (a database compares text: "9.0" after "10.0"); one that is not PEP 440 never does.
    Read as the distinct versions, fewer than the packages that have them."""
    compare = COMPARED[lookup]
    held = session.scalars(select(column).distinct())
    return [text for text in held if (v := parse_version(text)) is not None and compare(v, than)]


def _typed(declared: Filter, lookup: str, value: str) -> object:
    """A value as its filter compares it: a time, an integer, a version, or the text itself
    (a text's lookups - contains, icontains, startswith - take any text), read by the filter's
    `clean` first."""
    if declared.clean is not None:
        try:
            value = declared.clean(value)
        except ValueError as exc:
            raise invalid(declared.key(lookup), str(exc)) from None
    if declared.versions and lookup in COMPARED:
        if (version := parse_version(value)) is None:
            raise invalid(declared.key(lookup), f"{value!r} is not a valid version (PEP 440).")
        return version
    if lookup in (CONTAINS, ICONTAINS, STARTSWITH):
        return value
    if lookup == ISNULL:
        if value.lower() not in BOOLEANS:
            raise invalid(declared.key(lookup), "Must be a valid boolean: true or false.")
        return BOOLEANS[value.lower()]
    if declared.format == DATE_TIME:
        return _moment(declared.key(lookup), value)
    return _coerce(declared, value)


def _moment(key: str, value: str) -> datetime:
    """A time to compare with: RFC 3339 (core.times: a lower-case t or z too); one without a
    zone is UTC. One whose UTC leaves the calendar (year 1 at +14:00) is refused as well."""
    try:
        return read_utc(value)
    except ValueError:
        raise invalid(key, "Enter a valid date/time (RFC 3339).") from None


def _coerce(declared: Filter, value: str) -> object:
    if declared.type == "boolean":
        if value.lower() not in BOOLEANS:
            raise invalid(declared.name, "Must be a valid boolean: true or false.")
        return BOOLEANS[value.lower()]
    if declared.type == "integer":
        try:
            number = int(value)
        except ValueError:
            raise invalid(declared.name, "A valid integer is required.") from None
        if abs(number) > INT_MAX:
            raise invalid(declared.name, f"Ensure this value is at most {INT_MAX} in size.")
        return number
    if declared.choices is not None and value not in declared.choices:
        raise invalid(  # as Pulp: a value no object can have is a mistake, not an empty list
            declared.name, f"Select a valid choice. {value} is not one of the available choices."
        )
    return value


def _int_arg(name: str, default: int, maximum: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise invalid(name, "A valid integer is required.") from None
    if value < 0:
        raise invalid(name, "Ensure this value is greater than or equal to 0.")
    if value > maximum and name == "offset":
        raise invalid(name, f"Ensure this value is less than or equal to {maximum}.")
    return min(value, maximum)


def _many(name: str) -> list[str]:
    return _split(request.args.getlist(name))


def _split(values: Sequence[str]) -> list[str]:
    """Repeated keys (a=x&a=y) and comma-joined values (a=x,y) alike."""
    return [part for value in values for part in value.split(",") if part]


def page(
    session: Session,
    query: Select[Any],
    serialize: Callable[[list[Any]], list[dict[str, Any]]],
    binding: Binding,
) -> dict[str, Any]:
    """One page of `query`, ordered as asked among the resource's orderings, serialized, with
    absolute `next`/`previous` links.

    NULLs sort as PostgreSQL (Pulp's database) sorts them by default, on SQLite too: last going
    up, first going down. The primary key breaks ties: without it, rows equal in the ordered
    columns come in any order, and pages of one list could repeat or skip them."""
    offset = _int_arg("offset", 0, MAX_OFFSET)
    limit = _int_arg("limit", DEFAULT_LIMIT, MAX_LIMIT) or DEFAULT_LIMIT
    orderable = binding.resource.ordering
    for key in _many("ordering") or [binding.resource.default_order]:
        if key.lstrip("-") not in orderable:
            choices = ", ".join(sorted(orderable))
            raise ValidationError(
                {"ordering": [f"Cannot order by {key!r}; choose from {choices}."]}
            )
        column = getattr(binding.model, key.lstrip("-"))
        if key.startswith("-"):
            query = query.order_by(column.desc().nulls_first())
        else:
            query = query.order_by(column.asc().nulls_last())
    query = query.order_by(*(key.asc() for key in inspect(binding.model).primary_key))
    # The count comes with the page, from one statement: under READ COMMITTED two statements
    # could disagree (rows added between them), a count past the results on the same page.
    counted = session.execute(
        query.add_columns(func.count().over()).offset(offset).limit(limit)
    ).all()
    rows = [row[0] for row in counted]
    if counted:
        count = int(counted[0][1])
    else:  # past the end (or nothing): the count alone
        total = select(func.count()).select_from(query.order_by(None).subquery())
        count = session.scalar(total) or 0
    return {
        "count": count,
        "next": _link(offset + limit, limit) if offset + limit < count else None,
        "previous": _link(max(offset - limit, 0), limit) if offset > 0 else None,
        "results": [pick(item) for item in serialize(rows)],
    }


def _link(offset: int, limit: int) -> str:
    args = [(k, v) for k, v in request.args.items(multi=True) if k not in ("offset", "limit")]
    return f"{request.base_url}?{urlencode([*args, ('limit', limit), ('offset', offset)])}"


def pick(item: dict[str, Any]) -> dict[str, Any]:
    """`fields` / `exclude_fields` applied to one object."""
    if fields := _many("fields"):
        item = {k: v for k, v in item.items() if k in fields}
    if excluded := _many("exclude_fields"):
        item = {k: v for k, v in item.items() if k not in excluded}
    return item
