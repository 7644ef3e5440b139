"""A remote's filters: includes/excludes, prereleases, package types, excluded platforms."""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

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


def _any_name(rules: Iterable[Rule]) -> Callable[[str], bool]:
    """Whether any of the rules names a project: their exact names in a set, their patterns in
    one regex (fnmatchcase's own translation), whatever the number of rules."""
    rules = list(rules)
    exact = frozenset(r.name for r in rules if not r.is_pattern)
    patterns = [fnmatch.translate(r.name) for r in rules if r.is_pattern]
    regex = re.compile("|".join(patterns)) if patterns else None

    def matches(name: str) -> bool:
        return name in exact or (regex is not None and regex.match(name) is not None)

    return matches


@dataclass(frozen=True, slots=True)
class FilterSpec:
    includes: tuple[Rule, ...] = ()
    excludes: tuple[Rule, ...] = ()
    prereleases: bool = True
    package_types: frozenset[str] = frozenset()  # empty: every type
    exclude_platforms: frozenset[str] = frozenset()

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
        if self.includes and not any(r.matches_name(name) for r in self.includes):
            return False
        return not any(r.matches_name(name) and r.specifier is None for r in self.excludes)

    def allows_version(self, name: NormalizedName, version: Version | None) -> bool:
        return self._versions_of(name)(version)

    def _versions_of(self, name: NormalizedName) -> Callable[[Version | None], bool]:
        """`allows_version` for one project: the rules naming it are found once, so that a
        page's versions are not each matched against an allow-list of hundreds of names."""
        includes = [r for r in self.includes if r.matches_name(name)]
        excludes = [r for r in self.excludes if r.matches_name(name)]
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
        allows = functools.lru_cache(maxsize=None)(self._versions_of(name))  # once per version
        files = tuple(f for f in page.files if self._allows_file(name, f.filename, allows))
        versions = page.versions
        if versions is not None:
            versions = tuple(v for v in versions if allows(parse_version(v)))
        return replace(page, files=files, versions=versions)

    def filter_names(self, names: Iterable[str]) -> list[str]:
        """`allows_project` over a whole project list (PyPI's 700,000 names): the rules'
        exact names looked up in a set and their patterns in one regex, not each in turn."""
        included = _any_name(self.includes)
        excluded = _any_name(r for r in self.excludes if r.specifier is None)
        allowed = []
        for n in names:
            name = canonicalize_name(n)
            if (not self.includes or included(name)) and not excluded(name):
                allowed.append(n)
        return allowed

    def listed_names(self) -> list[str] | None:
        """The project list implied by includes alone, or None when it needs the upstream's list."""
        if not self.includes or any(r.is_pattern for r in self.includes):
            return None
        seen: dict[str, str] = {}
        for rule in self.includes:
            seen.setdefault(rule.name, rule.name)
        return self.filter_names(seen)
