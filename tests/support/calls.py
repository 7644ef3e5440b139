"""Count the calls of a function or method while letting each one through: how a test sees that
a page's work is done once per name or version, not once per file."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest


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
