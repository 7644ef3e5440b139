"""Lists as Pulp answers them: filters, ordering, offset/limit, `fields`/`exclude_fields`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from flask import request
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from pullthrough.api.bindings import Binding
from pullthrough.api.operations import ValidationError, invalid
from pullthrough.api.params import CONTAINS, EXACT, GTE, ICONTAINS, IN, LT, STARTSWITH, Filter
from pullthrough.catalog.models import utc
from pullthrough.core.fields import INT_MAX

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_OFFSET = INT_MAX  # beyond any real list; larger numbers overflow the database's integers


def apply_filters(query: Select[Any], binding: Binding) -> Select[Any]:
    """The request's filters of the binding's resource: lookups on a column of the model, or
    the binding's own condition for a filter that takes an href."""
    for declared in binding.resource.filters:
        if declared.href is not None:
            if value := request.args.get(declared.name):
                query = query.where(binding.conditions[declared.name](value))
            continue
        column = getattr(binding.model, declared.name)
        for lookup in declared.lookups:
            key = declared.key(lookup)
            if lookup == IN:
                if values := _many(key):
                    query = query.where(column.in_([_coerce(declared, v) for v in values]))
                continue
            value = request.args.get(key)
            if value is None:
                continue
            if lookup == EXACT:
                query = query.where(column == _coerce(declared, value))
            elif lookup == CONTAINS:
                query = query.where(column.contains(value, autoescape=True))
            elif lookup == ICONTAINS:
                query = query.where(func.lower(column).contains(value.lower(), autoescape=True))
            elif lookup == STARTSWITH:
                query = query.where(column.startswith(value, autoescape=True))
            elif lookup == GTE:
                query = query.where(column >= _moment(key, value))
            elif lookup == LT:
                query = query.where(column < _moment(key, value))
    return query


def _moment(key: str, value: str) -> datetime:
    """A time to compare with: RFC 3339; one without a zone is UTC."""
    try:
        return utc(datetime.fromisoformat(value))
    except ValueError:
        raise invalid(key, "Enter a valid date/time (RFC 3339).") from None


def _coerce(declared: Filter, value: str) -> object:
    if declared.type == "integer":
        try:
            number = int(value)
        except ValueError:
            raise invalid(declared.name, "A valid integer is required.") from None
        if abs(number) > INT_MAX:
            raise invalid(declared.name, f"Ensure this value is at most {INT_MAX} in size.")
        return number
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
    """Repeated keys (fields=a&fields=b) and comma-joined values alike."""
    return [part for value in request.args.getlist(name) for part in value.split(",") if part]


def page(
    session: Session,
    query: Select[Any],
    serialize: Callable[[Any], dict[str, Any]],
    binding: Binding,
) -> dict[str, Any]:
    """One page of `query`, ordered as asked among the resource's orderings, serialized, with
    absolute `next`/`previous` links."""
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
        query = query.order_by(column.desc() if key.startswith("-") else column.asc())
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
        "results": [pick(serialize(row)) for row in rows],
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
