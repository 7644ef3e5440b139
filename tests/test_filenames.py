from __future__ import annotations

import pytest
from packaging.version import Version

from pullthrough.core.filenames import (
    InvalidFilename,
    offerable,
    parse_filename,
    project_candidates,
)


@pytest.mark.parametrize(
    ("filename", "name", "version", "packagetype", "platforms"),
    [
        ("shelf_reader-0.1-py3-none-any.whl", "shelf-reader", "0.1", "bdist_wheel", set()),
        ("numpy-2.1.0-cp311-cp311-win_amd64.whl", "numpy", "2.1.0", "bdist_wheel", {"windows"}),
        (
            "numpy-2.1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
            "numpy",
            "2.1.0",
            "bdist_wheel",
            {"linux"},
        ),
        ("lib-1.0-cp311-cp311-macosx_11_0_arm64.whl", "lib", "1.0", "bdist_wheel", {"macos"}),
        ("lib-1.0-cp311-cp311-musllinux_1_1_x86_64.whl", "lib", "1.0", "bdist_wheel", {"linux"}),
        ("Django-2.0.1.tar.gz", "django", "2.0.1", "sdist", set()),
        ("acme_utils-1.0rc1.zip", "acme-utils", "1.0rc1", "sdist", set()),
        ("foo-1.0.tar.bz2", "foo", "1.0", "sdist", set()),
        ("foo-1.0-py2.7.egg", "foo", "1.0", "bdist_egg", set()),
        ("foo-1.0-py2.7-win32.egg", "foo", "1.0", "bdist_egg", {"windows"}),
        ("foo-1.0.win32.exe", "foo", "1.0", "bdist_wininst", {"windows"}),
    ],
)
def test_parse_filename(
    filename: str, name: str, version: str, packagetype: str, platforms: set[str]
) -> None:
    info = parse_filename(filename)
    assert info.name == name
    assert info.version == Version(version)
    assert info.packagetype == packagetype
    assert info.platforms == platforms


def test_legacy_name_with_dashes_needs_the_project() -> None:
    info = parse_filename("foo-bar-1.0-py2.7.egg", "Foo.Bar")
    assert (info.name, info.version) == ("foo-bar", Version("1.0"))


def test_legacy_version_that_is_not_pep440_is_unknown() -> None:
    info = parse_filename("foo-dev.tar.bz2")
    assert (info.name, info.version, info.packagetype) == ("foo", None, "sdist")


HUGE = "1" * 5000  # past int()'s digit limit: packaging raises a plain ValueError


def test_a_version_too_long_for_int_is_no_version() -> None:
    with pytest.raises(InvalidFilename):
        parse_filename(f"demo-{HUGE}-py3-none-any.whl")
    assert parse_filename(f"demo-{HUGE}.tar.gz").version is None


@pytest.mark.parametrize(
    "filename", ["", "..", "a/b-1.0.tar.gz", "README.txt", "foo.whl", "foo-1.0-bad.whl"]
)
def test_invalid_filenames(filename: str) -> None:
    with pytest.raises(InvalidFilename):
        parse_filename(filename)


def test_project_candidates() -> None:
    assert project_candidates("Shelf_Reader-0.1-py3-none-any.whl") == ("shelf-reader",)
    assert project_candidates("foo-bar-1.0-py2.7.egg") == ("foo-bar",)
    # bounded whatever the name: each candidate may cost an upstream page
    assert project_candidates("a-" * 1000 + "1.0.egg") == ("a-" * 999 + "a",)
    assert len(project_candidates("a-1-" * 500 + "1.0.egg")) == 3
    # nothing that is not a project name reaches an upstream URL
    assert project_candidates("x%3Fy-1.0.tar.gz") == ()
    assert project_candidates("x?y-1.0.tar.gz") == ()
    assert project_candidates("x#y-1.0-py3-none-any.whl") == ()


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("demo-1.0.tar.gz", True),
        ("d\u00e9mo-1.0.tar.gz", True),  # not a valid name, but one a page can carry
        ("", False),
        ("demo-1.0.tar.gz ", False),
        ("sub/demo-1.0.tar.gz", False),
        ("demo\x00.whl", False),
        ("demo\x7f.whl", False),
    ],
)
def test_offerable(filename: str, expected: bool) -> None:
    assert offerable(filename) is expected
