"""Many short strings checked with one regular expression match instead of one each: a big
page's 4,000 names, digests or links are joined as lines, and the pattern matches a line at a
time (`(?:<one>\n)*+`, fullmatch: possessive, so a line that fails is not retried against
the lines before it - a 4,000-line failure costs what a success does)."""

from __future__ import annotations

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
