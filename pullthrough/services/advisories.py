"""Advisories, offline: OSV records imported from files into the catalog, and each project's
advisories for the distributions that screen pages with them.

`pullthrough advisories import PATH` reads a record file, a directory of them or a zip as OSV
publishes them (https://osv-vulnerabilities.storage.googleapis.com/PyPI/all.zip). A record is
stored as published, keyed by its id: importing the same record again changes nothing, a newer
`modified` replaces it, and a record that comes back `withdrawn` lifts what it blocked.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.utils import NormalizedName
from sqlalchemy import Select, delete, select

from pullthrough.catalog.db import Catalog
from pullthrough.catalog.models import AdvisoryProject, AdvisoryRecord
from pullthrough.core.advisories import Advisory, InvalidAdvisory, parse_bytes

BATCH = 500  # records per transaction while importing
MAX_RECORD_BYTES = 16 * 1024 * 1024  # a record file larger than this is not one


@dataclass
class ImportReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    withdrawn: int = 0  # of those added or updated, how many are withdrawn
    other_ecosystems: int = 0  # records naming no PyPI package: not stored
    invalid: list[str] = field(default_factory=list)  # "source: what is wrong"

    def summary(self) -> str:
        return (
            f"{self.added} added, {self.updated} updated, {self.unchanged} unchanged"
            f" ({self.withdrawn} withdrawn), {self.other_ecosystems} not for PyPI,"
            f" {len(self.invalid)} invalid"
        )


def record_files(path: Path) -> Iterator[tuple[str, bytes | None]]:
    """(source, bytes) of every record file: the file itself, every *.json below a directory
    (in name order), or every *.json member of a zip; None for a file too large to be a record.
    OSError or BadZipFile for a path that cannot be read."""
    if path.is_dir():
        for found in sorted(p for p in path.rglob("*.json") if p.is_file()):
            yield str(found), _read(found)
    elif zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if info.filename.endswith(".json") and not info.is_dir():
                    small = info.file_size <= MAX_RECORD_BYTES
                    yield f"{path}:{info.filename}", archive.read(info) if small else None
    else:
        yield str(path), _read(path)


def _read(path: Path) -> bytes | None:
    return path.read_bytes() if path.stat().st_size <= MAX_RECORD_BYTES else None


def _in_force(*columns: Any) -> Select[Any]:
    """`columns` of the (advisory, project it names) pairs whose advisory is not withdrawn."""
    return (
        select(*columns)
        .select_from(AdvisoryRecord)
        .join(AdvisoryProject, AdvisoryProject.advisory_id == AdvisoryRecord.id)
        .where(AdvisoryRecord.withdrawn.is_(None))
    )


class Advisories:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def lookup(self) -> Callable[[NormalizedName], tuple[Advisory, ...]]:
        """`for_project`, asked only for the projects some advisory in force names (read now,
        once per catalog generation by the registry): any other project costs no query - a
        query per cold page was a fifth of its time."""
        with self.catalog.reading() as session:
            named = frozenset(session.scalars(_in_force(AdvisoryProject.name).distinct()))

        def lookup(name: NormalizedName) -> tuple[Advisory, ...]:
            return self.for_project(name) if name in named else ()

        return lookup

    def for_project(self, name: NormalizedName) -> tuple[Advisory, ...]:
        """The project's advisories that are in force (not withdrawn)."""
        query = (
            _in_force(AdvisoryRecord.id, AdvisoryRecord.record)
            .where(AdvisoryProject.name == name)
            .order_by(AdvisoryRecord.id)
        )
        with self.catalog.reading() as session:
            records = session.execute(query).all()
        return tuple(parse_bytes(ident, record.encode()) for ident, record in records)

    def import_path(self, path: Path) -> ImportReport:
        report = ImportReport()
        batch: list[tuple[Advisory, str]] = []
        for source, body in record_files(path):
            if body is None:
                report.invalid.append(f"{source}: larger than {MAX_RECORD_BYTES} bytes")
                continue
            try:
                advisory = parse_bytes(source, body)
            except InvalidAdvisory as exc:
                report.invalid.append(str(exc))
                continue
            if not advisory.affected:
                report.other_ecosystems += 1
                continue
            batch.append((advisory, body.decode()))  # parse_bytes has checked it is UTF-8
            if len(batch) >= BATCH:
                self._store(batch, report)
                batch = []
        self._store(batch, report)
        return report

    def _store(self, batch: list[tuple[Advisory, str]], report: ImportReport) -> None:
        if not batch:
            return
        ids = [a.id for a, _ in batch]
        with self.catalog.session() as session:
            known = {
                row.id: row
                for row in session.scalars(select(AdvisoryRecord).where(AdvisoryRecord.id.in_(ids)))
            }
            for advisory, record in batch:
                row = known.get(advisory.id)
                if row is not None and row.modified == advisory.modified and row.record == record:
                    report.unchanged += 1
                    continue
                if row is None:
                    row = known[advisory.id] = AdvisoryRecord(id=advisory.id)
                    session.add(row)
                    report.added += 1
                else:
                    report.updated += 1
                row.modified, row.withdrawn, row.record = (
                    advisory.modified,
                    advisory.withdrawn,
                    record,
                )
                report.withdrawn += advisory.withdrawn is not None
                session.flush()
                session.execute(
                    delete(AdvisoryProject).where(AdvisoryProject.advisory_id == advisory.id)
                )
                names = sorted({entry.name for entry in advisory.affected})
                session.add_all(AdvisoryProject(advisory_id=advisory.id, name=n) for n in names)
