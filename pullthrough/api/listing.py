"""Lists as Pulp answers them: filters, ordering, offset/limit, `fields`/`exclude_fields`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from flask import request
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from pullthrough.api.operations import Param, ValidationError, invalid

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_OFFSET = 2**31 - 1  # beyond any real list; larger numbers overflow the database's integers
EXACT, IN, CONTAINS, ICONTAINS, STARTSWITH = "", "in", "contains", "icontains", "startswith"
TEXT_LOOKUPS = (EXACT, IN, CONTAINS, ICONTAINS, STARTSWITH)

READ_PARAMS = (
    Param("fields", array=True, description="A list of fields to include in the response."),
    Param("exclude_fields", array=True, description="A list of fields to exclude."),
)
PAGE_PARAMS = (
    Param("offset", "integer", description="The initial index from which to return the results."),
    Param("limit", "integer", description="Number of results to return per page."),
    Param("ordering", array=True, explode=False, description="Order by these fields."),
    *READ_PARAMS,
)


@dataclass(frozen=True)
class Filter:
    """A list's query parameters: lookups on a column (`name`, `name__in`, `name__contains`,
    ...), or one parameter with a condition of its own (`condition(value)`)."""

    name: str
    column: Any = None
    lookups: tuple[str, ...] = (EXACT,)
    condition: Callable[[str], Any] | None = None
    type: str = "string"
    choices: tuple[str, ...] | None = None

    def key(self, lookup: str) -> str:
        return f"{self.name}__{lookup}" if lookup else self.name

    def params(self) -> tuple[Param, ...]:
        return tuple(
            Param(self.key(lookup), self.type, lookup == IN, lookup != IN, choices=self.choices)
            for lookup in self.lookups
        )

    def apply(self, query: Select[Any]) -> Select[Any]:
        if self.condition is not None:
            if value := request.args.get(self.name):
                query = query.where(self.condition(value))
            return query
        column = self.column
        for lookup in self.lookups:
            key = self.key(lookup)
            if lookup == IN:
                if values := _many(key):
                    query = query.where(column.in_([self._coerce(v) for v in values]))
                continue
            value = request.args.get(key)
            if value is None:
                continue
            if lookup == EXACT:
                query = query.where(column == self._coerce(value))
            elif lookup == CONTAINS:
                query = query.where(column.contains(value, autoescape=True))
            elif lookup == ICONTAINS:
                query = query.where(func.lower(column).contains(value.lower(), autoescape=True))
            elif lookup == STARTSWITH:
                query = query.where(column.startswith(value, autoescape=True))
        return query

    def _coerce(self, value: str) -> object:
        if self.type == "integer":
            try:
                return int(value)
            except ValueError:
                raise invalid(self.name, "A valid integer is required.") from None
        if self.type == "boolean":
            return value.lower() in ("1", "true", "yes")
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
    orderable: Mapping[str, Any],
    default_order: str,
) -> dict[str, Any]:
    """One page of `query`, serialized, with absolute `next`/`previous` links."""
    offset = _int_arg("offset", 0, MAX_OFFSET)
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
