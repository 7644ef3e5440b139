"""A distribution file on disk as a catalog package: validated, its metadata stored for PEP 658."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
from datetime import UTC
from pathlib import Path

from pullthrough.catalog.models import Package, width
from pullthrough.core.filenames import parse_filename, python_version
from pullthrough.core.metadata import (
    InvalidDistribution,
    check_filename_matches,
    read_metadata,
    serves_as_pep658,
)
from pullthrough.core.models import DistFile
from pullthrough.core.policy import upload_time_of

NUL = "\x00"


def apply_index_fields(package: Package, entry: DistFile) -> None:
    """What the index says of a file and its metadata does not: yanked (with the reason), the
    upload time (so --exclude-newer keeps working), requires-python when the index states it;
    the link a sync recorded (remote_url), kept without a NUL."""
    package.yanked = bool(entry.yanked)
    if package.remote_url is not None:  # a sync's record of where the file is
        # percent-encoded, as the upstream client sends it (requests asks for `%00`): the
        # same URL to fetch, which a text column of PostgreSQL can hold
        package.remote_url = package.remote_url.replace(NUL, "%00")
    # A NUL character, which no text column of PostgreSQL holds (a sync's whole record failed
    # on one): a reason is kept without it, and a requires-python holding one is no specifier
    package.yanked_reason = entry.yanked.replace(NUL, "") if isinstance(entry.yanked, str) else None
    if entry.requires_python and NUL not in entry.requires_python:
        package.requires_python = entry.requires_python
    uploaded = upload_time_of(entry)  # None for an odd value: keep our own time
    if uploaded is not None:
        # In UTC: SQLite keeps a time's digits and drops its offset, so a time given at +02:00
        # would come back two hours late.
        with contextlib.suppress(OverflowError):  # a time that leaves the calendar in UTC
            package.upload_time = uploaded.astimezone(UTC)


def package_from_file(
    path: Path,
    filename: str,
    *,
    sha256: str | None = None,
) -> tuple[Package, bytes | None]:
    """The package (not yet added to a session) and its METADATA file's bytes when they may be
    served as PEP 658 metadata (None for an sdist whose PKG-INFO may not tell its dependencies);
    storing those is the caller's choice (`metadata_sha256` stays None until then).

    Raises InvalidFilename or InvalidDistribution with a message fit for the uploader.
    """
    info = parse_filename(filename)
    if info.packagetype not in ("bdist_wheel", "sdist") or not filename.endswith(
        (".whl", ".tar.gz", ".zip")
    ):
        raise InvalidDistribution(
            f"Only wheels and sdists (.tar.gz, .zip) are accepted: {filename!r}"
        )
    meta = read_metadata(path, filename)
    check_filename_matches(meta, filename)
    if meta.requires_python is not None and NUL in meta.requires_python:
        # Kept in a text column, which on PostgreSQL cannot hold a NUL (psycopg refuses it)
        raise InvalidDistribution(
            f"Invalid distribution {filename!r}: Invalid metadata: a null character in"
            f" Requires-Python {meta.requires_python!r}"
        )
    if sha256 is None:
        with open(path, "rb") as fh:
            sha256 = hashlib.file_digest(fh, "sha256").hexdigest()
    # Its fields as they are (strings, tuples of strings, a dict of strings): asdict's deep
    # copy was a third of the time a cold file's catalog entry takes to read.
    metadata = {f.name: getattr(meta, f.name) for f in dataclasses.fields(meta) if f.name != "raw"}
    package = Package(
        filename=filename,
        name=info.name,
        version=meta.version,
        packagetype=info.packagetype,
        python_version=python_version(filename, info.packagetype),
        sha256=sha256,
        size=path.stat().st_size,
        requires_python=meta.requires_python,
        metadata_json=metadata,
    )
    for field in ("filename", "version", "python_version"):  # PostgreSQL refuses a wider one
        if len(value := getattr(package, field)) > (most := width(Package, field)):
            shown = filename if len(filename) <= 80 else filename[:77] + "..."
            raise InvalidDistribution(
                f"Invalid distribution {shown!r}: its {field} is {len(value)} characters"
                f" long; this index keeps at most {most:.0f}."
            )
    return package, meta.raw if serves_as_pep658(meta, info.packagetype) else None
