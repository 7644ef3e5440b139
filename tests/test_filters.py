from __future__ import annotations

import pytest
from packaging.utils import NormalizedName

from pullthrough.core.filters import FilterSpec, parse_rule
from pullthrough.core.models import DistFile, ProjectPage


def page(name: str, *filenames: str, versions: tuple[str, ...] | None = None) -> ProjectPage:
    return ProjectPage(
        name, tuple(DistFile(f, f"https://files.example/{f}") for f in filenames), versions
    )


def kept(spec: FilterSpec, p: ProjectPage) -> list[str]:
    return [f.filename for f in spec.filter_page(p).files]


DJANGO = page(
    "Django",
    "Django-1.11.tar.gz",
    "Django-2.0.tar.gz",
    "Django-2.0.1.tar.gz",
    "Django-2.0.2-py3-none-any.whl",
    "Django-2.1rc1.tar.gz",
    "Django-3.0.tar.gz",
    versions=("1.11", "2.0", "2.0.1", "2.0.2", "2.1rc1", "3.0"),
)


def test_includes_with_specifiers() -> None:
    spec = FilterSpec.build(includes=["django~=2.0,!=2.0.1"])
    assert kept(spec, DJANGO) == [
        "Django-2.0.tar.gz",
        "Django-2.0.2-py3-none-any.whl",
        "Django-2.1rc1.tar.gz",
    ]
    assert spec.filter_page(DJANGO).versions == ("2.0", "2.0.2", "2.1rc1")


def test_prereleases_off() -> None:
    spec = FilterSpec.build(includes=["django~=2.0"], prereleases=False)
    assert "Django-2.1rc1.tar.gz" not in kept(spec, DJANGO)


def test_bare_name_means_every_version() -> None:
    assert kept(FilterSpec.build(includes=["Django"]), DJANGO) == [f.filename for f in DJANGO.files]


def test_excludes_with_specifier_and_whole_project() -> None:
    spec = FilterSpec.build(excludes=["django<2", "django==3.0"])
    assert kept(spec, DJANGO) == [f.filename for f in DJANGO.files[1:5]]
    assert spec.allows_project(NormalizedName("django"))
    assert not FilterSpec.build(excludes=["django"]).allows_project(NormalizedName("django"))


def test_includes_limit_projects() -> None:
    spec = FilterSpec.build(includes=["shelf-reader"])
    assert spec.allows_project(NormalizedName("shelf-reader"))
    assert not spec.allows_project(NormalizedName("django"))
    assert spec.listed_names() == ["shelf-reader"]


def test_name_patterns() -> None:
    spec = FilterSpec.build(excludes=["acme-*"])
    assert not spec.allows_project(NormalizedName("acme-utils"))
    assert not spec.allows_project(NormalizedName("acme-internal-tools"))
    assert spec.allows_project(NormalizedName("acmeutils"))
    inc = FilterSpec.build(includes=["acme_*", "six"])
    assert inc.allows_project(NormalizedName("acme-utils")) and inc.allows_project(
        NormalizedName("six")
    )
    assert not inc.allows_project(NormalizedName("requests"))
    assert inc.listed_names() is None  # a pattern needs the upstream's list
    assert inc.filter_names(["Acme.Utils", "requests", "six"]) == ["Acme.Utils", "six"]


def test_package_types_and_platforms() -> None:
    p = page(
        "lib",
        "lib-1.0.tar.gz",
        "lib-1.0-py3-none-any.whl",
        "lib-1.0-cp311-cp311-win_amd64.whl",
        "lib-1.0-cp311-cp311-manylinux_2_17_x86_64.whl",
        "lib-1.0-cp311-cp311-macosx_11_0_arm64.whl",
    )
    assert kept(FilterSpec.build(package_types=["sdist"]), p) == ["lib-1.0.tar.gz"]
    no_windows = kept(FilterSpec.build(exclude_platforms=["windows", "macos"]), p)
    assert no_windows == [
        "lib-1.0.tar.gz",
        "lib-1.0-py3-none-any.whl",
        "lib-1.0-cp311-cp311-manylinux_2_17_x86_64.whl",
    ]


def test_files_of_other_projects_are_dropped() -> None:
    p = page("lib", "lib-1.0.tar.gz", "other-1.0.tar.gz", "garbage.txt")
    assert kept(FilterSpec.build(prereleases=False), p) == ["lib-1.0.tar.gz"]


@pytest.mark.parametrize(
    "text", ["django>=", "django; python_version<'3'", "requests[socks]", "a b c", "acme-*>=1"]
)
def test_invalid_rules_name_the_entry(text: str) -> None:
    with pytest.raises(ValueError, match="invalid"):
        parse_rule(text)


def test_unknown_package_type_and_platform() -> None:
    with pytest.raises(ValueError, match="package types"):
        FilterSpec.build(package_types=["wheel"])
    with pytest.raises(ValueError, match="platforms"):
        FilterSpec.build(exclude_platforms=["beos"])
