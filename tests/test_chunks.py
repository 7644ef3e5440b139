"""Chunked uploads' decisions (core.chunks): Content-Range headers, a chunk's fit, coverage."""

from __future__ import annotations

import pytest

from pullthrough.core.chunks import (
    ChunkRefused,
    ContentRange,
    check_complete,
    check_length,
    check_range,
    parse_content_range,
)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes 0-99/1000", ContentRange(0, 99, 1000)),
        ("bytes 900-999/1000", ContentRange(900, 999, 1000)),
        ("bytes 5-5/*", ContentRange(5, 5, None)),
        (" bytes 0-0/1 ", ContentRange(0, 0, 1)),
    ],
)
def test_content_ranges_are_read(header: str, expected: ContentRange) -> None:
    assert parse_content_range(header) == expected


@pytest.mark.parametrize(
    "header",
    [None, "", "0-99/1000", "bytes 0-99", "bytes=0-99/1000", "bytes -1-5/10", "bytes a-b/c",
     "bytes 0-99/1000, bytes 100-199/1000"],
)  # fmt: skip
def test_malformed_content_ranges_are_refused_in_pulps_words(header: str | None) -> None:
    with pytest.raises(ChunkRefused, match=r"^Invalid or missing content range header\.$"):
        parse_content_range(header)


@pytest.mark.parametrize(
    "header",
    [
        "bytes 0-" + "9" * 5000 + "/*",
        "bytes 0-9/" + "1" * 5000,
        "bytes " + "9" * 5000 + "-" + "9" * 5000 + "/*",
    ],
)
def test_numbers_too_long_to_read_are_refused_not_failed_on(header: str) -> None:
    """Python reads no integer of more than 4300 digits (a ValueError that is no refusal: a
    500 at the API); a header of such numbers is refused as any other malformed one."""
    with pytest.raises(ChunkRefused):
        parse_content_range(header)


def test_a_range_that_ends_before_it_starts_is_refused() -> None:
    with pytest.raises(ChunkRefused, match="no range of bytes"):
        parse_content_range("bytes 10-5/20")


@pytest.mark.parametrize(
    ("header", "size", "message"),
    [
        ("bytes 0-1000/1000", 1000, "End byte is greater than upload size."),
        ("bytes 0-9/11", 10, r"total \(11 bytes\) is not the upload's size \(10 bytes\)"),
    ],
)
def test_a_range_must_fit_the_upload(header: str, size: int, message: str) -> None:
    with pytest.raises(ChunkRefused, match=message):
        check_range(parse_content_range(header), size)


def test_ranges_that_fit_pass() -> None:
    check_range(parse_content_range("bytes 0-999/1000"), 1000)
    check_range(parse_content_range("bytes 10-19/*"), 20)


@pytest.mark.parametrize("received", [9, 11, 0])
def test_a_chunk_of_another_length_than_its_range_is_refused(received: int) -> None:
    with pytest.raises(ChunkRefused, match=r"^Chunk size does not match content range\.$"):
        check_length(ContentRange(0, 9, 10), received)
    check_length(ContentRange(0, 9, 10), 10)


@pytest.mark.parametrize(
    ("chunks", "size"),
    [([], 0), ([(0, 10)], 10), ([(10, 5), (0, 10)], 15), ([(0, 1), (1, 1), (2, 1)], 3)],
)
def test_chunks_that_cover_the_file_exactly_are_complete(
    chunks: list[tuple[int, int]], size: int
) -> None:
    check_complete(chunks, size)


@pytest.mark.parametrize(
    ("chunks", "size", "message"),
    [
        ([], 10, r"incomplete: bytes 0-9 of 10 were not uploaded"),
        ([(0, 5)], 10, r"incomplete: bytes 5-9 of 10 were not uploaded"),
        ([(0, 5), (7, 3)], 10, r"incomplete: bytes 5-6 of 10 were not uploaded"),
        ([(0, 6), (5, 5)], 10, r"Chunks overlap: bytes 5-5 were uploaded more than once"),
        ([(0, 10), (2, 3)], 10, r"Chunks overlap: bytes 2-4 were uploaded more than once"),
        ([(0, 12)], 10, r"The chunks hold 12 bytes; the upload's size is 10"),
    ],
)
def test_missing_overlapping_and_extra_bytes_are_named(
    chunks: list[tuple[int, int]], size: int, message: str
) -> None:
    with pytest.raises(ChunkRefused, match=message):
        check_complete(chunks, size)
