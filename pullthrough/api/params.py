"""Query parameters of the REST API's operations, and the filters of its lists."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pullthrough.core.fields import INT_MAX

EXACT, IN, CONTAINS, ICONTAINS, STARTSWITH = "", "in", "contains", "icontains", "startswith"
TEXT_LOOKUPS = (EXACT, IN, CONTAINS, ICONTAINS, STARTSWITH)
GT, GTE, LT, LTE = "gt", "gte", "lt", "lte"  # comparisons: after, from, before, until
TIME_LOOKUPS = (GT, GTE, LT, LTE)
ISNULL = "isnull"  # a boolean: whether the column is null
DATE_TIME = "date-time"  # the OpenAPI format of a time (RFC 3339); pulp-cli sends datetimes


@dataclass(frozen=True)
class Param:
    name: str
    type: str = "string"
    array: bool = False
    explode: bool = True  # False: comma-joined (name__in=a,b)
    description: str = ""
    choices: tuple[str, ...] | None = None
    minimum: int | None = None
    maximum: int | None = None
    format: str | None = None
    location: str = "query"  # or "header" (a chunk's Content-Range)
    required: bool = False


@dataclass(frozen=True)
class Filter:
    """A list's filter: lookups on the column of its name (`name`, `name__in`,
    `name__contains`, ...), or on a condition of the binding's for that name (a filter that is no
    column's: `__in` is any of its values). With `href`, one parameter naming an object of that
    kind, which the CLI names its own way."""

    name: str
    lookups: tuple[str, ...] = (EXACT,)
    type: str = "string"
    choices: tuple[str, ...] | None = None
    href: str | None = None
    format: str | None = None  # DATE_TIME: values are times
    clean: Callable[[str], str] | None = None  # reads a value (normalizes it); ValueError: 400
    # Values are PEP 440 versions: gt/gte/lt/lte compare as versions (10.0 after 9.0), not text
    versions: bool = False

    def key(self, lookup: str) -> str:
        return f"{self.name}__{lookup}" if lookup else self.name

    def params(self) -> tuple[Param, ...]:
        return tuple(
            Param(
                self.key(lookup),
                "boolean" if lookup == ISNULL else self.type,
                lookup == IN,
                lookup != IN,
                choices=self.choices,
                format=self.format,
            )
            for lookup in self.lookups
        )


READ_PARAMS = (
    Param("fields", array=True, description="A list of fields to include in the response."),
    Param("exclude_fields", array=True, description="A list of fields to exclude."),
)
PAGE_PARAMS = (
    Param(
        "offset",
        "integer",
        description="The initial index from which to return the results.",
        minimum=0,
        maximum=INT_MAX,
    ),
    Param("limit", "integer", description="Number of results to return per page.", minimum=0),
    Param("ordering", array=True, explode=False, description="Order by these fields."),
    *READ_PARAMS,
)
