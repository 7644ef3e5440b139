"""Times as indexes write them: RFC 3339 read (PEP 700's `upload-time`, the config's moments),
and written back in UTC with a `Z`."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from pullthrough.core.lines import lines_pattern

PRESIGNED_MAX = 7 * 24 * 3600  # seconds: SigV4's longest presigned URL (S3 refuses more)
# PEP 700's upload-time: `yyyy-mm-ddThh:mm:ss.ffffffZ` (the fraction optional, up to 6 digits)
_UPLOAD_TIME = (
    r"[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
    r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?Z"
)
UPLOAD_TIME = re.compile(_UPLOAD_TIME)
UPLOAD_TIME_LINES = lines_pattern(_UPLOAD_TIME)  # a page's at once (core.lines)


def read_time(text: str) -> datetime:
    """An RFC 3339 (ISO 8601) time; its T and Z may be lower case, as RFC 3339 5.6 allows (and
    fromisoformat does not). Naive when it names no zone; ValueError when unreadable."""
    return datetime.fromisoformat(text.strip().upper())


def utc(when: datetime) -> datetime:
    """A time aware and in UTC: one naming no zone is UTC (SQLite gives stored times so;
    PostgreSQL gives them in the session's zone)."""
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def read_utc(text: str) -> datetime:
    """`read_time`, in UTC (`utc`); ValueError also for a time whose UTC leaves the calendar
    (0001-01-01T00:00:00+14:00 is before the year 1 there)."""
    when = read_time(text)
    try:
        return utc(when)
    except OverflowError:
        raise ValueError(f"a time out of range: {text!r}") from None


def stamp(when: datetime) -> str:
    """`when` in UTC, to the second: `2026-01-31T00:00:00Z`."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def upload_time(text: str | None) -> str | None:
    """An index's upload time as PEP 700 has it written (`yyyy-mm-ddThh:mm:ss.ffffffZ`, UTC):
    as it is when so written; else read as RFC 3339 (one naming no zone is UTC, as the policy
    reads it) and written so; None when absent or unreadable. Relayed as an upstream wrote it,
    `2022-01-01 00:00:00` made uv refuse our whole page ("failed to find offset component")."""
    if not text or UPLOAD_TIME.fullmatch(text) is not None:
        return text or None
    try:
        when = read_utc(text)
    except ValueError:
        return None
    return when.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
