"""Count the calls of a function or method while letting each one through: how a test sees that
a page's work is done once per name or version, not once per file."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from pullthrough.core import filenames


def counted(
    monkeypatch: pytest.MonkeyPatch, owner: object, attribute: str, key: Callable[..., str]
) -> Counter[str]:
    """`owner.attribute` (a class's method or a module's function) counts its calls by
    `key(*args)` in the returned Counter until the test ends."""
    calls: Counter[str] = Counter()
    original = getattr(owner, attribute)

    def counting(*args: Any) -> Any:
        calls[key(*args)] += 1
        return original(*args)

    monkeypatch.setattr(owner, attribute, counting)
    return calls


def counted_parses(monkeypatch: pytest.MonkeyPatch) -> tuple[Counter[str], Counter[str]]:
    """packaging's parses of wheel names and of tag sets as pullthrough calls them, counted by
    their argument, from forgotten memos (parse_filename's and its parts')."""
    for memo in (filenames.parse_filename, filenames._wheel_stem, filenames._wheel_platforms):
        memo.cache_clear()
    return (
        counted(monkeypatch, filenames, "parse_wheel_filename", str),
        counted(monkeypatch, filenames, "parse_tag", str),
    )
