"""Declared fields: one declaration gives a setting's or an API field's type, default, help,
validation, how it is read from text (config file, environment, command line) and its JSON
schema, so the config parser, the REST API, its document and the CLI cannot drift apart.

Settings are dataclass attributes declared with `setting(...)`; the attribute's annotation gives
the JSON type (`float | None` is a nullable number), `fields_of(cls)` the declarations.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list, tuple),
    "object": (dict,),
}
INT_MAX = 2**31 - 1  # the catalog's integer columns are 32-bit on PostgreSQL
_PYTHON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean", Path: "string"}
_META = "pullthrough.field"


@dataclass(frozen=True)
class Field:
    name: str
    type: str  # a key of JSON_TYPES
    help: str = ""
    default: Any = None
    required: bool = False  # on create
    nullable: bool = False
    # null accepted and kept (shown null, as Pulp shows it); the setting's value is then the
    # default (Pulp's "if not set ..."): its dataclass fills it in
    null_default: bool = False
    read_only: bool = False
    write_only: bool = False  # secrets: accepted, stored, never shown
    choices: tuple[str, ...] | None = None
    items: str | None = None  # an array's item type
    item_choices: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None  # integers: at most INT_MAX unless said otherwise
    href: str | None = None  # a reference to a resource of this kind (a name in files and CLI)
    format: str | None = None  # a string's OpenAPI format: "date-time" (pulp-cli sends a time)
    unique: bool = False
    clean: Callable[[Any], Any] | None = None  # checks a well-typed value; may normalize it
    coerce: Callable[[object], Any] | None = None  # reads a file's or a flag's value ("10m")

    def schema(self) -> dict[str, Any]:
        """The field's JSON schema (OpenAPI 3.0: `nullable` rather than a "null" type)."""
        out: dict[str, Any] = {"type": self.type}
        if self.nullable or self.null_default:
            out["nullable"] = True
        if self.href:
            out["format"] = "uri-reference"  # an href: /pulp/api/v3/...
        elif self.format:
            out["format"] = self.format
        if self.choices:
            out["enum"] = list(self.choices)
        if self.type == "array":
            item: dict[str, Any] = {"type": self.items or "string"}
            if self.item_choices:
                item["enum"] = list(self.item_choices)
            if item["type"] == "object":
                item["additionalProperties"] = True
            out["items"] = item
        if self.type == "object":
            out["additionalProperties"] = True
        if self.minimum is not None:
            out["minimum"] = self.minimum
        if (maximum := self.most) is not None:
            out["maximum"] = maximum
        if self.help:
            out["description"] = self.help
        if self.read_only:
            out["readOnly"] = True
        if self.write_only:
            out["writeOnly"] = True
        return out

    @property
    def most(self) -> float | None:
        """The largest value allowed: `maximum`; an integer without one at most INT_MAX (the
        catalog's columns), one that says more (a size, kept in 64 bits) up to it."""
        if self.type == "integer" and self.maximum is None:
            return INT_MAX
        return self.maximum

    @property
    def trimmed(self) -> bool:
        """Text whose leading and trailing whitespace goes, as DRF's CharField (Pulp's text
        fields) trims it: not a choice nor a reference (DRF's ChoiceField and related fields
        take them as sent), nor a secret (Pulp declares its passwords untrimmed)."""
        return self.type == "string" and not (self.choices or self.href or self.write_only)

    def validate(self, value: object) -> Any:
        """The value, checked (and normalized by `clean`); ValueError says what is wrong."""
        if value is None:
            if self.nullable or self.null_default:
                return None
            raise ValueError("This field may not be null.")
        _check_type(value, self.type, "")
        if self.trimmed:
            value = str(value).strip()
        if self.type == "string" and self.required and not str(value).strip():
            raise ValueError("This field may not be blank.")
        if self.choices and value not in self.choices:
            raise ValueError(
                f'"{value}" is not a valid choice; choose from {", ".join(self.choices)}.'
            )
        if self.minimum is not None and isinstance(value, int | float) and value < self.minimum:
            raise ValueError(f"Ensure this value is greater than or equal to {self.minimum:g}.")
        if self.type == "integer" and isinstance(value, int) and value < -INT_MAX - 1:
            raise ValueError(f"Ensure this value is greater than or equal to {-INT_MAX - 1}.")
        most = self.most
        if most is not None and isinstance(value, int | float) and not value <= most:
            raise ValueError(f"Ensure this value is less than or equal to {most:g}.")
        if self.type == "array":
            assert isinstance(value, list | tuple)
            for item in value:
                _check_type(item, self.items or "string", " items")
                if self.item_choices and item not in self.item_choices:
                    choices = ", ".join(self.item_choices)
                    raise ValueError(f'"{item}" is not a valid choice; choose from {choices}.')
            value = list(value)
        return self.clean(value) if self.clean is not None else value

    def parse(self, value: object) -> Any:
        """A value from a config file, the environment or the command line, read by `coerce`
        (`"10m"` -> 600.0) or from text as the field's type (`true`, `3`, a JSON array; empty:
        null), then validated."""
        if self.nullable and value == "":
            value = None
        elif self.coerce is not None and value is not None:
            value = self.coerce(value)
        elif isinstance(value, str):
            value = self._from_text(value)
        return self.validate(value)

    def _from_text(self, text: str) -> Any:
        if self.type == "string":
            return text
        if self.type == "boolean":
            return parse_bool(text)
        if self.type in ("integer", "number"):
            try:
                return int(text) if self.type == "integer" else float(text)
            except ValueError:
                raise ValueError(f"expected a {self.type}, got {text!r}") from None
        try:  # arrays and objects: JSON, or one item
            return json.loads(text) if text.strip()[:1] in ("[", "{") else [text]
        except (ValueError, RecursionError) as exc:
            raise ValueError(f"expected a JSON {self.type} ({exc})") from None


def _check_type(value: object, kind: str, what: str) -> None:
    kinds = JSON_TYPES[kind]
    if isinstance(value, bool) and bool not in kinds:
        raise ValueError(f"Expected {kind}{what}, got a boolean.")
    if not isinstance(value, kinds):
        raise ValueError(f"Expected {kind}{what}, got {type(value).__name__}.")


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def setting(
    default: Any = dataclasses.MISSING,
    *,
    default_factory: Callable[[], Any] | None = None,
    help: str,
    **declared: Any,
) -> Any:
    """A dataclass attribute declared as a setting (see Field for the keywords)."""
    metadata = {_META: {"help": help, **declared}}
    if default_factory is not None:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(
        default=default, metadata=metadata, repr=not declared.get("write_only")
    )


def fields_of(cls: type) -> tuple[Field, ...]:
    """The declared settings of a dataclass, in order, with their JSON types and defaults."""
    hints = typing.get_type_hints(cls)
    out = []
    for attribute in dataclasses.fields(cls):
        declared = attribute.metadata.get(_META)
        if declared is None:
            continue
        kind, items, nullable = _json_type(hints[attribute.name])
        if attribute.default is not dataclasses.MISSING:
            default = attribute.default
        elif attribute.default_factory is not dataclasses.MISSING:
            default = attribute.default_factory()
        else:
            default = None
        inferred = {
            "items": items,
            "nullable": nullable,
            "required": default is None and not nullable,
        }
        out.append(Field(attribute.name, kind, default=default, **{**inferred, **declared}))
    return tuple(out)


def _json_type(hint: Any) -> tuple[str, str | None, bool]:
    """(JSON type, item type, nullable) of an annotation."""
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        (inner,) = [a for a in args if a is not type(None)]
        kind, items, _ = _json_type(inner)
        return kind, items, True
    if hint in _PYTHON_TYPES:
        return _PYTHON_TYPES[hint], None, False
    origin = typing.get_origin(hint)
    if origin in (list, tuple, Sequence):
        item_kind = _json_type(args[0])[0] if args else "string"
        return "array", item_kind, False
    if origin in (dict, Mapping):
        return "object", None, False
    raise TypeError(f"no JSON type for {hint!r}")


def parse_section(fields: Sequence[Field], raw: Mapping[str, object], where: str) -> dict[str, Any]:
    """Config values (a TOML table, environment strings) parsed by their declarations; a
    ValueError names the key (`remotes[0].max_retries: ...`)."""
    known = {f.name: f for f in fields}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in known:
            raise ValueError(f"{where}.{key}: unknown setting (known: {', '.join(sorted(known))})")
        try:
            values[key] = known[key].parse(value)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{where}.{key}: {exc}") from None
    for field in fields:
        if field.required and field.name not in values:
            raise ValueError(f"{where}.{field.name}: required")
    return values


def fingerprint(value: object) -> str:
    """A short digest of a setting's value, to tell later whether it is still that value
    without keeping it (it may be a secret)."""
    text = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def fingerprints(values: Mapping[str, object]) -> dict[str, str]:
    return {key: fingerprint(value) for key, value in values.items()}


def withdrawn(
    before: Mapping[str, str], given: frozenset[str], current: Mapping[str, object]
) -> set[str]:
    """The settings a config file set (`before`: their fingerprints at its last reading) and
    no longer gives, that still hold the file's value: they go back to their defaults. One
    changed since (by the API or CLI) keeps its value."""
    return {
        key
        for key, mark in before.items()
        if key not in given and key in current and fingerprint(current[key]) == mark
    }
