"""A distribution file on disk as a catalog package: validated, its metadata stored for PEP 658."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

from proxy.catalog.models import Package
from proxy.core.filenames import parse_filename
from proxy.core.metadata import InvalidDistribution, check_filename_matches, read_metadata


def python_version_of(filename: str, packagetype: str) -> str:
    """PyPI's `python_version`: 'source' for sdists, the python tag(s) for wheels."""
    if packagetype == "sdist":
        return "source"
    parts = filename.removesuffix(".whl").split("-")
    return parts[-3] if len(parts) >= 5 else ""


def package_from_file(
    path: Path,
    filename: str,
    *,
    sha256: str | None = None,
) -> tuple[Package, bytes]:
    """The package (not yet added to a session) and its METADATA file's bytes; storing those
    for PEP 658 is the caller's choice (`metadata_sha256` stays None until then).

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
    if sha256 is None:
        with open(path, "rb") as fh:
            sha256 = hashlib.file_digest(fh, "sha256").hexdigest()
    metadata = {k: v for k, v in dataclasses.asdict(meta).items() if k != "raw"}
    package = Package(
        filename=filename,
        name=info.name,
        version=meta.version,
        packagetype=info.packagetype,
        python_version=python_version_of(filename, info.packagetype),
        sha256=sha256,
        size=path.stat().st_size,
        requires_python=meta.requires_python,
        metadata_json=metadata,
    )
    return package, meta.raw
