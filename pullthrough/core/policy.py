"""What enters: a remote's policy holds back files younger than a minimum age (a cooldown),
files uploaded after a freeze date and - unless told otherwise - files whose upload time nobody
knows; a distribution's blocklist refuses what it names, whatever its source.

Pure decisions of (file, policy, now). Only the upstream's upload time counts, never the time
this server first saw a file: a file that was on PyPI for a week is not new because it is new
here. A page filtered by a policy lives no longer than until its first held file matures.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from pullthrough.core.filenames import (
    DIST_SUFFIXES,
    FileIdentity,
    file_identity,
    parse_filename,
    parse_version,
)
from pullthrough.core.filters import NameSet, Rule, naming, parse_rule
from pullthrough.core.models import QUARANTINED, DistFile, ProjectPage, file_versions
from pullthrough.core.times import read_utc, stamp

ENFORCE, AUDIT = POLICY_MODES = ("enforce", "audit")
# What refused a file (the status endpoint counts each).
HELD, BLOCKED, QUARANTINE = "held", "blocked", "quarantined"


@dataclass(frozen=True)
class Policy:
    min_age: timedelta | None = None  # a file must be this old (its upstream upload time)
    exclude_newer: datetime | None = None  # files uploaded after this are held (a freeze)
    exempt: tuple[Rule, ...] = ()  # names, patterns, requirement strings the holds spare
    mode: str = ENFORCE  # AUDIT: hold nothing, report what would have been held
    hold_unknown: bool = True  # a file with no (readable) upload time is held

    @property
    def active(self) -> bool:
        return self.min_age is not None or self.exclude_newer is not None


NO_POLICY = Policy()


@dataclass(frozen=True)
class Hold:
    """Why a file is refused, and from when it is available (None: not by waiting)."""

    reason: str  # "held by the remote's policy: ...", "blocked by ..."
    until: datetime | None = None
    kind: str = HELD

    def message(self, filename: str) -> str:
        when = f"; it becomes available at {stamp(self.until)}" if self.until else ""
        return f"{filename} is {self.reason}{when}."


def upload_time_of(entry: DistFile) -> datetime | None:
    """The upstream's upload time, aware (a naive one is UTC); None when absent or unreadable."""
    if not entry.upload_time:
        return None
    try:
        return read_utc(entry.upload_time)
    except ValueError:
        return None


def hold_of(
    policy: Policy, name: NormalizedName, version: Version | None, entry: DistFile, now: datetime
) -> Hold | None:
    """The hold on one file (whatever the mode), or None."""
    if not policy.active:
        return None
    if any(r.matches_name(name) and r.matches_version(version) for r in policy.exempt):
        return None
    uploaded = upload_time_of(entry)
    held = "held by the remote's policy: "
    if uploaded is None:
        return Hold(held + "its upload time is unknown") if policy.hold_unknown else None
    if policy.exclude_newer is not None and uploaded > policy.exclude_newer:
        freeze = stamp(policy.exclude_newer)
        return Hold(held + f"uploaded {stamp(uploaded)}, after the freeze at {freeze}")
    if policy.min_age is not None and uploaded + policy.min_age > now:
        days = policy.min_age / timedelta(days=1)
        return Hold(
            held + f"uploaded {stamp(uploaded)}, younger than the minimum age of {days:g} days",
            uploaded + policy.min_age,
        )
    return None


@dataclass(frozen=True)
class Screened:
    """A page as the policy lets it through."""

    page: ProjectPage
    held: dict[str, Hold]  # filename -> hold (in audit mode: what would have been held)
    matures_at: datetime | None  # the first held file's availability: the page expires then


def screen(policy: Policy, page: ProjectPage, now: datetime) -> Screened:
    """Held files leave the page (not in audit mode), and so does a PEP 700 version none of
    whose files is left; `matures_at` says when the screening will change."""
    if not policy.active:
        return Screened(page, {}, None)
    name = canonicalize_name(page.name)
    policy = replace(policy, exempt=naming(policy.exempt, name))
    versions = file_versions(page) if policy.exempt else {}  # only an exemption reads them
    held = {}
    for entry in page.files:
        if (hold := hold_of(policy, name, versions.get(entry.filename), entry, now)) is not None:
            held[entry.filename] = hold
    untils = [h.until for h in held.values() if h.until is not None]
    matures_at = min(untils) if untils else None
    if not held or policy.mode == AUDIT:
        return Screened(page, held, matures_at)
    return Screened(without(page, held), held, matures_at)


def without(page: ProjectPage, refused: Mapping[str, object]) -> ProjectPage:
    """The page without the refused files, and without a PEP 700 version none of whose files
    is left (a version listed with no files stays)."""
    if not refused:
        return page
    versions = file_versions(page)
    files = tuple(f for f in page.files if f.filename not in refused)
    kept_versions = page.versions
    if kept_versions is not None:
        emptied = {versions[f] for f in refused if f in versions} - {
            versions[f.filename] for f in files if f.filename in versions
        }
        kept_versions = tuple(v for v in kept_versions if parse_version(v) not in emptied)
    return replace(page, files=files, versions=kept_versions)


def quarantined(page: ProjectPage) -> dict[str, Hold]:
    """A quarantined project (PEP 792) offers no file at all, cached or not."""
    if page.status != QUARANTINED:
        return {}
    why = f": {page.status_reason}" if page.status_reason else ""
    hold = Hold(f"refused: the project is quarantined{why}", kind=QUARANTINE)
    return dict.fromkeys((f.filename for f in page.files), hold)


@dataclass(frozen=True)
class Blocklist:
    """A distribution's blocklist: requirement strings (`evil`, `lib==1.2`, `lib<2`), name
    patterns (`evil-*`) and filenames (`lib-1.2-py3-none-any.whl`). A filename blocks the file
    of that name however it is spelt (`PyYAML-6.0-...` is `pyyaml-6.0.0-...`: `file_identity`);
    one packaging cannot read blocks only that exact name."""

    rules: tuple[Rule, ...] = ()
    filenames: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> Blocklist:
        """Raises ValueError naming an entry that is neither a filename nor a requirement."""
        rules, filenames = [], set()
        for entry in entries:
            if entry.endswith(DIST_SUFFIXES):
                parse_filename(entry)  # InvalidFilename (a ValueError) names it
                filenames.add(entry)
            else:
                rules.append(parse_rule(entry))
        return cls(tuple(rules), frozenset(filenames))

    def __bool__(self) -> bool:
        return bool(self.rules or self.filenames)

    @functools.cached_property
    def _identities(self) -> dict[FileIdentity, str]:
        """The filenames packaging reads, by what they name: identity -> the entry."""
        found = {e: file_identity(e) for e in sorted(self.filenames)}
        return {identity: e for e, identity in found.items() if identity is not None}

    @functools.cached_property
    def _file_projects(self) -> frozenset[NormalizedName]:
        return frozenset(name for name, _ in self._identities)

    @functools.cached_property
    def _file_releases(self) -> frozenset[tuple[NormalizedName, object]]:
        """(project, version) of each filename entry packaging reads: only a file of one of
        those releases is read (`file_identity`: ~5 us a name, 20 ms for a 4,000-file page)."""
        return frozenset((name, named[1]) for name, named in self._identities)

    @functools.cached_property
    def _whole(self) -> NameSet:
        return NameSet.of(r for r in self.rules if r.specifier is None)

    def unlisted(self, names: Iterable[str]) -> tuple[str, ...]:
        """The project list without the projects it blocks whole (`evil`, `evil-*`): their
        pages offer nothing, and their names are not shown either."""
        if not any(r.specifier is None for r in self.rules):
            return tuple(names)
        whole = self._whole
        return tuple(n for n in names if canonicalize_name(n) not in whole)

    def hold_for(self, name: NormalizedName, version: Version | None, filename: str) -> Hold | None:
        """The hold naming the entry that blocks this file, or None."""
        return self._holds(name, naming(self.rules, name))(filename, version)

    def refused(self, page: ProjectPage) -> dict[str, Hold]:
        """The page's blocked files, each with the entry that blocks it. The rules are matched
        against the page's name once and against each version once, not file by file: a
        list of 1,000 known-bad names took 418 ms on a 2,800-file page."""
        if not self:
            return {}
        name = canonicalize_name(page.name)
        rules = naming(self.rules, name)
        # (parse_filename's, cached: the page's other screens read them too)
        versions = file_versions(page) if rules or name in self._file_projects else {}
        hold = self._holds(name, rules)
        out = {}
        for entry in page.files:
            if found := hold(entry.filename, versions.get(entry.filename)):
                out[entry.filename] = found
        return out

    def _holds(
        self, name: NormalizedName, rules: tuple[Rule, ...]
    ) -> Callable[[str, Version | None], Hold | None]:
        """`hold_for` for one project, given the rules that name it: each version is matched
        once, and a file's name is read only when a filename entry names its release (or its
        version is not known)."""
        first_match = functools.cache(functools.partial(_first_match, rules))
        identities, releases = self._identities, self._file_releases
        read = name in self._file_projects

        def hold(filename: str, version: Version | None) -> Hold | None:
            if filename in self.filenames:
                return _blocked(filename)
            if (
                read
                and (version is None or (name, version) in releases)
                and (identity := file_identity(filename)) in identities
            ):
                return _blocked(identities[identity])
            found = first_match(version)
            return _blocked(found) if found else None

        return hold


def _first_match(rules: Iterable[Rule], version: Version | None) -> str | None:
    """The first rule (of those naming the project) that takes in this version: its text."""
    return next((r.text for r in rules if r.matches_version(version)), None)


def _blocked(entry: str) -> Hold:
    return Hold(f"blocked by the blocklist entry {entry!r}", kind=BLOCKED)


NO_BLOCKLIST = Blocklist()
