"""A distribution's remotes, in order, after a write that gives `remote` (Pulp's one remote),
`remotes` (the list), or both: one rule for the config file, the REST API and the CLI."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, TypeVar

T = TypeVar("T")


class Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = Unset()  # the write does not give it


def ordered(
    current: Sequence[T], remote: T | Unset | None = UNSET, remotes: Sequence[T] | Unset = UNSET
) -> list[T]:
    """`remotes` sets the list; `remote` alone puts that remote first and keeps the others after
    it (null clears them all); given both, `remote` must be the first of `remotes` (ValueError)."""
    if not isinstance(remotes, Unset):
        if not isinstance(remote, Unset) and list(remotes[:1]) != (
            [] if remote is None else [remote]
        ):
            raise ValueError("The remote must be the first of remotes.")
        return list(remotes)
    if isinstance(remote, Unset):
        return list(current)
    if remote is None:
        return []
    return [remote] + [r for r in current if r != remote]
