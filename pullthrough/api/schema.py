"""Declared fields: validation of request bodies (400 with DRF-style field messages) and the
JSON schema of each field, from one definition."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
}


class ValidationError(Exception):
    """Field errors, sent as 400 `{"field": ["message", ...]}`."""

    def __init__(self, errors: Mapping[str, list[str]]) -> None:
        super().__init__(dict(errors))
        self.errors = dict(errors)


@dataclass(frozen=True)
class Field:
    name: str
    type: str  # string, integer, number, boolean, array, object
    description: str = ""
    required: bool = False  # on create
    nullable: bool = False
    read_only: bool = False
    write_only: bool = False
    enum: tuple[str, ...] | None = None
    items: str | None = None  # array item type
    item_enum: tuple[str, ...] | None = None
    minimum: float | None = None
    href: str | None = None  # a string field holding an href to this resource kind
    default: Any = None

    def schema(self) -> dict[str, Any]:
        """The field's JSON schema (OpenAPI 3.1 style types)."""
        out: dict[str, Any] = {"type": [self.type, "null"] if self.nullable else self.type}
        if self.type == "string" and self.href:
            out["format"] = "uri"
        if self.enum:
            out["enum"] = list(self.enum) + ([None] if self.nullable else [])
        if self.type == "array":
            item: dict[str, Any] = {"type": self.items or "string"}
            if self.item_enum:
                item["enum"] = list(self.item_enum)
            out["items"] = item
        if self.minimum is not None:
            out["minimum"] = self.minimum
        if self.description:
            out["description"] = self.description
        if self.read_only:
            out["readOnly"] = True
        if self.write_only:
            out["writeOnly"] = True
        return out

    def check(self, value: object) -> str | None:
        """The problem with `value`, or None."""
        if value is None:
            return None if self.nullable else "This field may not be null."
        kinds = _TYPES[self.type]
        if isinstance(value, bool) and bool not in kinds:
            return f"Expected {self.type}, got a boolean."
        if not isinstance(value, kinds):
            return f"Expected {self.type}, got {type(value).__name__}."
        if self.enum and value not in self.enum:
            return f'"{value}" is not a valid choice; choose from {", ".join(self.enum)}.'
        if self.minimum is not None and value < self.minimum:  # type: ignore[operator]
            return f"Ensure this value is greater than or equal to {self.minimum:g}."
        if self.type == "array":
            item_kinds = _TYPES[self.items or "string"]
            for item in value:  # type: ignore[attr-defined]
                if not isinstance(item, item_kinds) or isinstance(item, bool) != (
                    bool in item_kinds
                ):
                    return f"Expected a list of {self.items or 'string'} items."
                if self.item_enum and item not in self.item_enum:
                    return (
                        f'"{item}" is not a valid choice; choose from {", ".join(self.item_enum)}.'
                    )
        if self.type == "string" and self.name == "name" and not str(value).strip():
            return "This field may not be blank."
        return None


def validate(fields: tuple[Field, ...], body: object, *, partial: bool) -> dict[str, Any]:
    """The writable fields of `body`, checked; unknown and read-only keys are ignored (as DRF)."""
    if not isinstance(body, dict):
        kind = type(body).__name__
        raise ValidationError(
            {"non_field_errors": [f"Invalid data. Expected an object, got {kind}."]}
        )
    errors: dict[str, list[str]] = {}
    values: dict[str, Any] = {}
    for field in fields:
        if field.read_only:
            continue
        if field.name not in body:
            if field.required and not partial:
                errors[field.name] = ["This field is required."]
            continue
        problem = field.check(body[field.name])
        if problem:
            errors[field.name] = [problem]
        else:
            values[field.name] = body[field.name]
    if errors:
        raise ValidationError(errors)
    return values
