"""Times as indexes write them: RFC 3339 read (PEP 700's `upload-time`, the config's moments),
and written back in UTC with a `Z`."""

from __future__ import annotations

from datetime import UTC, datetime

PRESIGNED_MAX = 7 * 24 * 3600  # seconds: SigV4's longest presigned URL (S3 refuses more)


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
