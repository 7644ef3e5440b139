"""Lists as Pulp answers them: filters, ordering, offset/limit, `fields`/`exclude_fields`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode

from flask import request
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from pullthrough.api.schema import ValidationError

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def _int_arg(name: str, default: int, maximum: int | None = None) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError({name: ["A valid integer is required."]}) from None
    if value < 0:
        raise ValidationError({name: ["Ensure this value is greater than or equal to 0."]})
    return min(value, maximum) if maximum else value


def _many(name: str) -> list[str]:
    """Repeated keys (fields=a&fields=b) and comma-joined values alike."""
    return [part for value in request.args.getlist(name) for part in value.split(",") if part]


def apply_filters(query: Select[Any], model: type, columns: Mapping[str, Any]) -> Select[Any]:
    """`name`, `name__in`, `name__contains`, `name__icontains`, `name__startswith` for each
    filterable column."""
    for key, column in columns.items():
        if (value := request.args.get(key)) is not None:
            query = query.where(column == _coerce(column, value))
        if values := _many(f"{key}__in"):
            query = query.where(column.in_([_coerce(column, v) for v in values]))
        if (value := request.args.get(f"{key}__contains")) is not None:
            query = query.where(column.contains(value, autoescape=True))
        if (value := request.args.get(f"{key}__icontains")) is not None:
            query = query.where(func.lower(column).contains(value.lower(), autoescape=True))
        if (value := request.args.get(f"{key}__startswith")) is not None:
            query = query.where(column.startswith(value, autoescape=True))
    return query


def _coerce(column: Any, value: str) -> object:
    python_type = getattr(column.type, "python_type", str)
    if python_type is bool:
        return value.lower() in ("1", "true", "yes")
    if python_type is int:
        try:
            return int(value)
        except ValueError:
            raise ValidationError({column.key: ["A valid integer is required."]}) from None
    return value


def page(
    session: Session,
    query: Select[Any],
    serialize: Callable[[Any], dict[str, Any]],
    orderable: Mapping[str, Any],
    default_order: str,
) -> dict[str, Any]:
    """One page of `query`, serialized, with absolute `next`/`previous` links."""
    offset = _int_arg("offset", 0)
    limit = _int_arg("limit", DEFAULT_LIMIT, MAX_LIMIT) or DEFAULT_LIMIT
    order = _many("ordering") or [default_order]
    for key in order:
        column = orderable.get(key.lstrip("-"))
        if column is None:
            choices = ", ".join(sorted(orderable))
            raise ValidationError(
                {"ordering": [f"Cannot order by {key!r}; choose from {choices}."]}
            )
        query = query.order_by(column.desc() if key.startswith("-") else column.asc())
    count = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    rows = session.scalars(query.offset(offset).limit(limit)).all()
    results = [pick(serialize(row)) for row in rows]
    return {
        "count": count,
        "next": _link(offset + limit, limit) if offset + limit < count else None,
        "previous": _link(max(offset - limit, 0), limit) if offset > 0 else None,
        "results": results,
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
