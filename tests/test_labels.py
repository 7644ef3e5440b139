from __future__ import annotations

import re

import pytest

from pullthrough.core.labels import (
    CONTAINS,
    DIFFERS,
    EQUALS,
    HAS,
    LACKS,
    InvalidLabel,
    InvalidSelector,
    Term,
    check_label,
    check_labels,
    parse_selector,
)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("env", "prod"),
        ("app.kubernetes.io-name", "x"),
        ("team name", "Core Infra, EU"),  # commas are fine in a value
        ("ключ_1", "значение"),  # \w is any letter
        ("k", ""),
        ("k", None),  # Pulp keeps null values
    ],
)
def test_labels_pulp_accepts(key: str, value: str | None) -> None:
    check_label(key, value)
    assert check_labels({key: value}) == {key: value}


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("", "x", "Key '' contains invalid characters"),
        ("a/b", "x", "Key 'a/b' contains invalid characters"),
        ("a=b", "x", "Key 'a=b' contains invalid characters"),
        ("a,b", "x", "Key 'a,b' contains invalid characters"),
        ("k\n", "x", "Key 'k\\n' contains invalid characters"),
        ("k", "f(x)", "Key 'k' contains value with parenthesis."),
        ("k", 3, "a label's value is a string or null"),
    ],
)
def test_labels_pulp_refuses(key: str, value: object, message: str) -> None:
    with pytest.raises(InvalidLabel, match=re.escape(message)):
        check_label(key, value)
    with pytest.raises(InvalidLabel):
        check_labels({key: value})


@pytest.mark.parametrize(
    ("text", "terms"),
    [
        ("env=prod", [Term("env", EQUALS, "prod")]),
        ("env=", [Term("env", EQUALS, "")]),
        ("env!=prod", [Term("env", DIFFERS, "prod")]),
        ("env~PRO", [Term("env", CONTAINS, "PRO")]),
        ("env", [Term("env", HAS)]),
        ("!env", [Term("env", LACKS)]),
        ("a=b=c", [Term("a", EQUALS, "b=c")]),  # the value is the rest of the term
        (r"a=x\,y,b", [Term("a", EQUALS, "x,y"), Term("b", HAS)]),  # an escaped comma
        ("team name~core,app.io-x", [Term("team name", CONTAINS, "core"), Term("app.io-x", HAS)]),
    ],
)
def test_a_selector_parses_into_its_terms(text: str, terms: list[Term]) -> None:
    assert list(parse_selector(text)) == terms


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "Invalid search term: ''."),
        ("=prod", "Invalid search term: '=prod'."),
        ("env,,x", "Invalid search term: ''."),
        ("!", "Invalid search term: '!'."),
        ("a/b=c", "Invalid search term: 'a/b=c'."),
        ("a$b", "Invalid search term: 'a$b'."),  # Pulp would read `a`; refused rather
        ("!env=prod", "Cannot use an operator with '!env'."),
        ("!env~x", "Cannot use an operator with '!env'."),
    ],
)
def test_a_selector_that_does_not_parse_is_named(text: str, message: str) -> None:
    with pytest.raises(InvalidSelector) as raised:
        parse_selector(text)
    assert str(raised.value) == message
