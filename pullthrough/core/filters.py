"""A remote's filters: includes/excludes, prereleases, package types, excluded platforms."""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from pullthrough.core.filenames import (
    PACKAGE_TYPES,
    PLATFORMS,
    InvalidFilename,
    parse_filename,
    parse_version,
)
from pullthrough.core.models import ProjectPage

_PATTERN_CHARS = re.compile(r"[*?]")


@dataclass(frozen=True, slots=True)
class Rule:
    """A requirement string (`django~=2.0,!=2.0.1`, a bare name: every version) or a name pattern
    (`acme-*`: every version of every matching project)."""

    text: str
    name: str  # a normalized name, or a normalized fnmatch pattern
    is_pattern: bool
    specifier: SpecifierSet | None  # None: every version

    def matches_name(self, name: NormalizedName) -> bool:
        if self.is_pattern:
            return fnmatch.fnmatchcase(name, self.name)
        return name == self.name

    def matches_version(self, version: Version | None) -> bool:
        if self.specifier is None:
            return True
        return version is not None and self.specifier.contains(version, prereleases=True)


def parse_rule(text: str) -> Rule:
    """Parse an include/exclude entry; raises ValueError naming the entry."""
    text = text.strip()
    if _PATTERN_CHARS.search(text):
        if not re.fullmatch(r"[A-Za-z0-9._*?-]+", text):
            raise ValueError(f"invalid name pattern {text!r}: only name characters, * and ?")
        pattern = re.sub(r"[-_.]+", "-", text).lower()
        return Rule(text, pattern, True, None)
    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        raise ValueError(f"invalid requirement {text!r}: {exc}") from None
    if req.url or req.marker or req.extras:
        raise ValueError(f"invalid requirement {text!r}: only a name and version specifiers")
    specifier = req.specifier if str(req.specifier) else None
    return Rule(text, canonicalize_name(req.name), False, specifier)


def naming(rules: Iterable[Rule], name: NormalizedName) -> tuple[Rule, ...]:
    """The rules that name this project: matched once per page, so that a page's files and
    versions are not each matched against a list of hundreds of names."""
    return tuple(r for r in rules if r.matches_name(name))


@dataclass(frozen=True, slots=True)
class NameSet:
    """Whether any of some rules names a project: their exact names in a set, their patterns
    in one regex (fnmatchcase's own translation), whatever the number of rules (PyPI's
    700,000 names against an allow-list of 500: 48 s rule by rule)."""

    exact: frozenset[str]
    patterns: re.Pattern[str] | None

    @classmethod
    def of(cls, rules: Iterable[Rule]) -> NameSet:
        rules = list(rules)
        patterns = [fnmatch.translate(r.name) for r in rules if r.is_pattern]
        return cls(
            frozenset(r.name for r in rules if not r.is_pattern),
            re.compile("|".join(patterns)) if patterns else None,
        )

    def __contains__(self, name: str) -> bool:
        return name in self.exact or (self.patterns is not None and bool(self.patterns.match(name)))


@dataclass(frozen=True, slots=True)
class FilterSpec:
    includes: tuple[Rule, ...] = ()
    excludes: tuple[Rule, ...] = ()
    prereleases: bool = True
    package_types: frozenset[str] = frozenset()  # empty: every type
    exclude_platforms: frozenset[str] = frozenset()
    # Derived from includes and excludes (whole-project ones), for allows_project.
    _included: NameSet = field(init=False, repr=False, compare=False)
    _excluded: NameSet = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_included", NameSet.of(self.includes))
        whole = (r for r in self.excludes if r.specifier is None)
        object.__setattr__(self, "_excluded", NameSet.of(whole))

    @classmethod
    def build(
        cls,
        *,
        includes: Iterable[str] = (),
        excludes: Iterable[str] = (),
        prereleases: bool = True,
        package_types: Iterable[str] = (),
        exclude_platforms: Iterable[str] = (),
    ) -> FilterSpec:
        types, platforms = frozenset(package_types), frozenset(exclude_platforms)
        if unknown := types - PACKAGE_TYPES:
            raise ValueError(
                f"unknown package types {sorted(unknown)}; known: {sorted(PACKAGE_TYPES)}"
            )
        if unknown := platforms - PLATFORMS:
            raise ValueError(f"unknown platforms {sorted(unknown)}; known: {sorted(PLATFORMS)}")
        return cls(
            tuple(parse_rule(t) for t in includes),
            tuple(parse_rule(t) for t in excludes),
            prereleases,
            types,
            platforms,
        )

    def allows_project(self, name: NormalizedName) -> bool:
        """False when no version of the project can pass (not included, or excluded whole)."""
        return (not self.includes or name in self._included) and name not in self._excluded

    def allows_version(self, name: NormalizedName, version: Version | None) -> bool:
        return self._versions_of(name)(version)

    def _versions_of(self, name: NormalizedName) -> Callable[[Version | None], bool]:
        """`allows_version` for one project: the rules naming it are found once, so that a
        page's versions are not each matched against an allow-list of hundreds of names."""
        includes, excludes = naming(self.includes, name), naming(self.excludes, name)
        gated = bool(self.includes)  # an include list that names no version of it: none pass

        def allows(version: Version | None) -> bool:
            if version is not None and version.is_prerelease and not self.prereleases:
                return False
            if gated and not any(r.matches_version(version) for r in includes):
                return False
            return not any(r.matches_version(version) for r in excludes)

        return allows

    def _allows_file(
        self, name: NormalizedName, filename: str, allows: Callable[[Version | None], bool]
    ) -> bool:
        try:
            info = parse_filename(filename, name)
        except InvalidFilename:
            return False  # pip would ignore it too; never serve what we cannot classify
        if info.name != name:
            return False
        if self.package_types and info.packagetype not in self.package_types:
            return False
        if info.platforms and info.platforms <= self.exclude_platforms:
            return False
        return allows(info.version)

    def allows_file(self, name: NormalizedName, filename: str) -> bool:
        return self._allows_file(name, filename, self._versions_of(name))

    @property
    def is_trivial(self) -> bool:
        return self == FilterSpec()

    def filter_page(self, page: ProjectPage) -> ProjectPage:
        """The page as this remote may show it (call allows_project first)."""
        if self.is_trivial:
            return page
        name = canonicalize_name(page.name)
        allows = functools.cache(self._versions_of(name))  # once per version
        files = tuple(f for f in page.files if self._allows_file(name, f.filename, allows))
        versions = page.versions
        if versions is not None:
            versions = tuple(v for v in versions if allows(parse_version(v)))
        return replace(page, files=files, versions=versions)

    def filter_names(self, names: Iterable[str]) -> list[str]:
        return [n for n in names if self.allows_project(canonicalize_name(n))]

    def listed_names(self) -> list[str] | None:
        """The project list implied by includes alone, or None when it needs the upstream's list."""
        if not self.includes or any(r.is_pattern for r in self.includes):
            return None
        seen: dict[str, str] = {}
        for rule in self.includes:
            seen.setdefault(rule.name, rule.name)
        return self.filter_names(seen)
