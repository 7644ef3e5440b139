"""Pulp labels (`pulp_labels`): what a label may be, and the label selector of lists
(`pulp_label_select`), as pulpcore has them.

A key is one or more letters, digits, underscores, spaces, dots or hyphens (pulpcore's
`LABEL_KEY_REGEX`); a value is a string without parentheses, or null (pulpcore's
`pulp_labels_validator`). A selector is terms joined by commas (a `\\,` is a comma inside a
value), all of which must hold: `key=value`, `key!=value` (has the key, another value),
`key~text` (the value contains text, case aside), `key` (has it), `!key` (has it not).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

KEY_CHARS = r"[\w .\-]"  # pulpcore.constants.LABEL_KEY_CHARS
_KEY = re.compile(f"{KEY_CHARS}+")
_TERM = re.compile(f"(!?)({KEY_CHARS}+)(?:(=|!=|~)(.*))?", re.DOTALL)
_UNESCAPED_COMMA = re.compile(r"(?<!\\),")

Labels = dict[str, str | None]

HAS, LACKS, EQUALS, DIFFERS, CONTAINS = "has", "lacks", "=", "!=", "~"


class InvalidLabel(ValueError):
    """A label pulpcore would refuse; the message names the key."""


class InvalidSelector(ValueError):
    """A label selector that does not parse; the message names the term."""


@dataclass(frozen=True)
class Term:
    """One condition of a selector: the label `key`, how it is compared (`op`), with what."""

    key: str
    op: str  # HAS, LACKS, EQUALS, DIFFERS or CONTAINS
    value: str = ""


def check_label(key: object, value: object) -> None:
    """InvalidLabel unless `key` may name a label and `value` may be its value."""
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise InvalidLabel(
            f"Key {key!r} contains invalid characters. Only alphanumerics, underscores,"
            " spaces, hyphens, and dots are allowed."
        )
    if value is not None and not isinstance(value, str):
        raise InvalidLabel(f"Key {key!r}: a label's value is a string or null.")
    if value is not None and re.search(r"[()]", value):
        raise InvalidLabel(f"Key {key!r} contains value with parenthesis.")


def check_labels(labels: Mapping[str, object]) -> Labels:
    """The labels, each checked (check_label)."""
    for key, value in labels.items():
        check_label(key, value)
    return cast(Labels, dict(labels))


def parse_selector(text: str) -> tuple[Term, ...]:
    """The terms of a selector, in order; InvalidSelector for a term that is none of the five
    forms (pulpcore's message), or `!key` with an operator."""
    terms = []
    for raw in _UNESCAPED_COMMA.split(text):
        match = _TERM.fullmatch(raw)
        if match is None:
            raise InvalidSelector(f"Invalid search term: '{raw}'.")
        bang, key, op, value = match.groups()
        if bang and op:
            raise InvalidSelector(f"Cannot use an operator with '!{key}'.")
        if op is None:
            terms.append(Term(key, LACKS if bang else HAS))
        else:
            terms.append(Term(key, op, value.replace("\\,", ",")))
    return tuple(terms)
