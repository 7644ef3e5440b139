"""Many short strings checked with one regular expression match instead of one each: a big
page's 4,000 names, digests or links are joined as lines, and a pattern of one value matches
them a line at a time."""

from __future__ import annotations

import re
from collections.abc import Iterable


def as_lines(values: Iterable[object]) -> str | None:
    """Each value followed by a newline; None when one holds a newline itself (it would read as
    two lines) or is not a string."""
    values = list(values)
    if not values:
        return ""
    try:
        text = "\n".join(values) + "\n"  # type: ignore[arg-type]  # not str: TypeError
    except TypeError:
        return None
    return text if text.count("\n") == len(values) else None


def lines_pattern(one: str) -> re.Pattern[str]:
    """What fullmatches `as_lines` text whose every line matches `one`, a pattern of one value
    (in which `$` is its line's end). The repeat is possessive: a line that fails is not retried
    against the lines before it, so a failure at the 4,000th costs what a success does."""
    return re.compile(rf"(?:(?:{one})\n)*+", re.MULTILINE)


def every_line(pattern: re.Pattern[str], values: Iterable[object]) -> bool:
    """Whether every value is a line `pattern` (a `lines_pattern`) matches."""
    lines = as_lines(values)
    return lines is not None and pattern.fullmatch(lines) is not None
