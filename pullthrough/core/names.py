"""Project names (PEP 503 normalization) as the web layer receives them."""

from __future__ import annotations

from functools import lru_cache

from packaging.utils import InvalidName, NormalizedName, canonicalize_name


class InvalidProjectName(ValueError):
    pass


@lru_cache(maxsize=65536)
def normalize_project(name: str) -> NormalizedName:
    """The normalized name; raises InvalidProjectName for names that are not valid project names."""
    try:
        return canonicalize_name(name, validate=True)
    except InvalidName:
        raise InvalidProjectName(f"Invalid project name: {name!r}") from None
