"""Count the calls of a function or method while letting each one through: how a test sees that
a page's work is done once per name or version, not once per file; and count the threads
inside a stretch of code at once (`Occupancy`): how a test sees that a lock held."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


class Occupancy:
    """How many threads are inside a stretch of code at once: `most` is 1 when a lock kept
    them out of it one from another; `visits` counts the stays."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self.inside = self.most = self.visits = 0

    @contextmanager
    def stay(self, seconds: float) -> Iterator[None]:
        """Be inside for `seconds` (long enough for another thread to come in, if it could)."""
        with self._guard:
            self.inside += 1
            self.most = max(self.most, self.inside)
        time.sleep(seconds)
        yield
        with self._guard:
            self.inside -= 1
            self.visits += 1
