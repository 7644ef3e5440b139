"""Chunked uploads (Pulp core's `uploads/`), the decisions: where a chunk goes (its
`Content-Range` header), whether it fits the upload, and whether the chunks make the whole file.

Pure functions of plain values; the messages are Pulp's where Pulp has one (pulp-cli shows them
as they are), and say what is wrong with which bytes where it has none.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")  # as Pulp's CONTENT_RANGE_PATTERN
SIZE_MAX = 2**63 - 1  # the catalog's sizes are 64-bit


class ChunkRefused(ValueError):
    """A chunk, or the chunks of an upload, cannot be used; the message says why."""


@dataclass(frozen=True)
class ContentRange:
    """`bytes START-END/TOTAL`: the chunk's first and last byte, and the file's size (None: *)."""

    start: int
    end: int
    total: int | None

    @property
    def length(self) -> int:
        return self.end - self.start + 1


def parse_content_range(header: str | None) -> ContentRange:
    """The range a `Content-Range` header names; ChunkRefused if it is absent or malformed."""
    match = _CONTENT_RANGE.fullmatch((header or "").strip())
    if match is None:
        raise ChunkRefused("Invalid or missing content range header.")
    start, end = _number(match[1]), _number(match[2])
    total = None if match[3] == "*" else _number(match[3])
    if end < start or end > SIZE_MAX or (total is not None and total > SIZE_MAX):
        raise ChunkRefused(
            f"Invalid content range: bytes {match[1]}-{match[2]} is no range of bytes."
        )
    return ContentRange(start, end, total)


def _number(digits: str) -> int:
    """A header's number; one of more digits than SIZE_MAX has is only known to be larger
    (Python reads no integer of more than 4300 digits: a header may hold more)."""
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= len(str(SIZE_MAX)) else SIZE_MAX + 1


def check_range(content_range: ContentRange, upload_size: int) -> None:
    """A chunk's range fits an upload of `upload_size` bytes (before its bytes are read)."""
    if content_range.end > upload_size - 1:
        raise ChunkRefused("End byte is greater than upload size.")
    if content_range.total is not None and content_range.total != upload_size:
        raise ChunkRefused(
            f"The content range's total ({content_range.total} bytes) is not the upload's"
            f" size ({upload_size} bytes)."
        )


def check_length(content_range: ContentRange, received: int) -> None:
    """The bytes received are as many as the range says."""
    if received != content_range.length:
        raise ChunkRefused("Chunk size does not match content range.")


def check_complete(chunks: Iterable[tuple[int, int]], size: int) -> None:
    """The chunks, (offset, size) pairs, cover bytes 0 to `size` - 1 exactly once: no byte
    missing, none uploaded twice (by chunks at different offsets)."""
    expected = 0
    for offset, length in sorted(chunks):
        if offset < expected:
            raise ChunkRefused(
                f"Chunks overlap: bytes {offset}-{min(expected, offset + length) - 1} were"
                " uploaded more than once."
            )
        if offset > expected:
            raise ChunkRefused(
                f"The upload is incomplete: bytes {expected}-{offset - 1} of {size} were not"
                " uploaded."
            )
        expected = offset + length
    if expected < size:
        raise ChunkRefused(
            f"The upload is incomplete: bytes {expected}-{size - 1} of {size} were not uploaded."
        )
    if expected > size:  # only if the upload's size changed under its chunks
        raise ChunkRefused(f"The chunks hold {expected} bytes; the upload's size is {size}.")
