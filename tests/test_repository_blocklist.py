"""A repository's package blocklist (core.repository_blocklist): which packages an entry keeps
out, and which entries are well formed - pure, no server."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from pullthrough.core.repository_blocklist import (
    BOTH,
    VERSION_WITH_FILENAME,
    VERSION_WITHOUT_NAME,
    Entry,
    PackagesBlocked,
    blocked,
    blocks,
    entry_problem,
)


@dataclass(frozen=True)
class Pkg:
    name: str
    version: str
    filename: str


WHL = Pkg("shelf-reader", "0.1", "shelf_reader-0.1-py3-none-any.whl")


CASES = [
    (Entry(name="shelf-reader"), True),
    (Entry(name="Shelf_Reader"), True),  # PEP 503: compared normalized
    (Entry(name="shelf.reader"), True),
    (Entry(name="shelf-reader", version="0.1"), True),
    (Entry(name="shelf-reader", version="0.1.0"), True),  # PEP 440 equality
    (Entry(name="shelf-reader", version="0.2"), False),
    (Entry(name="shelf-reader", version="not a version"), False),  # compared as written
    (Entry(name="shelf-reader", version="1" * 5000), False),  # past int()'s digits: no 500
    (Entry(name="shelf-readers"), False),
    (Entry(filename="shelf_reader-0.1-py3-none-any.whl"), True),
    (Entry(filename="shelf_reader-0.1.tar.gz"), False),  # exact filename only
    (Entry(filename="Shelf_Reader-0.1-py3-none-any.whl"), False),
]


@pytest.mark.parametrize(("entry", "expected"), CASES)
def test_blocks(entry: Entry, expected: bool) -> None:
    assert blocks(entry, name=WHL.name, version=WHL.version, filename=WHL.filename) is expected


def test_blocked_says_what_blocks_says_with_entries_looked_up_by_name_and_filename() -> None:
    """`blocked` looks entries up instead of trying each on each package: the same answers,
    one entry at a time and all of them at once (beside others of other projects)."""
    others = [Entry(name="other"), Entry(name="other", version="0.1"), Entry(filename="x.whl")]
    for entry, expected in CASES:
        assert blocked([entry], [WHL]) == ([WHL] if expected else []), entry
        assert blocked([*others, entry], [WHL]) == ([WHL] if expected else []), entry
    assert blocked([e for e, _ in CASES], [WHL]) == [WHL]


def test_blocked_keeps_the_order_of_the_packages_and_needs_one_entry() -> None:
    other = Pkg("other", "1.0", "other-1.0.tar.gz")
    sdist = Pkg("shelf-reader", "0.2", "shelf_reader-0.2.tar.gz")
    entries = [Entry(name="shelf-reader", version="0.2"), Entry(filename="other-1.0.tar.gz")]
    assert blocked(entries, [WHL, other, sdist]) == [other, sdist]
    assert blocked([], [WHL, other]) == []


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"name": "x"}, None),
        ({"name": "x", "version": "1.0"}, None),
        ({"filename": "x-1.0.tar.gz"}, None),
        ({}, BOTH),
        ({"name": "x", "filename": "x-1.0.tar.gz"}, BOTH),
        ({"version": "1.0"}, VERSION_WITHOUT_NAME),
        ({"version": "1.0", "filename": "x-1.0.tar.gz"}, VERSION_WITH_FILENAME),
    ],
)
def test_entry_problem(fields: dict[str, str], expected: str | None) -> None:
    name, version, filename = (fields.get(k) for k in ("name", "version", "filename"))
    assert entry_problem(name, version, filename) == expected


def test_the_refusal_names_the_files_as_pulp_does() -> None:
    message = str(PackagesBlocked(["b-1.0.tar.gz", "a-1.0.tar.gz"]))
    assert message == (
        "Blocklisted packages cannot be added to this repository: a-1.0.tar.gz, b-1.0.tar.gz"
    )
