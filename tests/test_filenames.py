from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.utils import parse_wheel_filename
from packaging.version import Version

from pullthrough.core.filenames import (
    InvalidFilename,
    file_identity,
    offerable,
    parse_filename,
    platform_of_tag,
    project_candidates,
)
from support.calls import counted_parses


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


@pytest.mark.parametrize(
    ("filename", "version_text"),
    [
        ("setuptools-0.6c11.tar.gz", "0.6c11"),  # not the normal form, 0.6rc11
        ("setuptools-0.6rc11-py3-none-any.whl", "0.6rc11"),
        ("zope.interface-3.4.0.zip", "3.4.0"),
        ("foo-bar-1.0.0.tar.gz", "1.0.0"),
        ("pytz-2004d.tar.gz", "2004d"),  # a legacy version: no PEP 440 version, the text
        ("foo-1.0RC1-py2.7.egg", "1.0RC1"),
        ("foo-1.0.win32.exe", "1.0"),
    ],
)
def test_the_version_as_the_filename_writes_it(filename: str, version_text: str) -> None:
    assert parse_filename(filename).version_text == version_text


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


# Wheel names from parts that are valid or nearly so: the project names, versions, build tags
# and tag sets packaging accepts, and their broken neighbours (a dash too many or too few, a
# double underscore, an empty component, an invalid version or build tag).
_PART = st.sampled_from(
    ["demo", "Demo_Lib", "a", "x__y", "", "1.0", "2.0rc1", "1.0.post1", "bad!", "1_a", "12",
     "py3", "cp311", "none", "abi3", "any", "win_amd64", "py2.py3", "cp39.cp310", "py3.", ".any",
     "manylinux_2_17_x86_64.manylinux2014_x86_64", "macosx_11_0_arm64", "demo-1.0"]
)  # fmt: skip


_NAMED = st.builds(
    lambda *parts: "-".join(p for p in parts if p is not None),
    st.sampled_from(["demo", "Demo_Lib", "a1", "ab.c"]),
    st.sampled_from(["1.0", "2.0rc1", "1.0.post1", "1!2.0", "01.0"]),
    st.one_of(st.none(), st.sampled_from(["1", "12abc"])),
    st.sampled_from(["py3", "cp311", "py2.py3", "cp39.cp310"]),
    st.sampled_from(["none", "abi3", "cp311"]),
    st.sampled_from(["any", "win_amd64", "macosx_11_0_arm64", "linux_x86_64.win32"]),
)  # valid names; the random joins of _PART make the broken ones


@settings(derandomize=True, database=None, deadline=None, max_examples=400)
@given(st.one_of(_NAMED, st.lists(_PART, min_size=1, max_size=7).map("-".join)))
def test_a_wheel_name_reads_as_packaging_reads_it(base: str) -> None:
    """parse_filename reads a wheel's name in two remembered parts; what it says, or the
    error it raises, is packaging's on the whole name."""
    filename = base + ".whl"
    try:
        name, version, _build, tags = parse_wheel_filename(filename)
    except ValueError as exc:
        with pytest.raises(InvalidFilename) as raised:
            parse_filename(filename)
        assert str(raised.value) == str(exc)
        return
    info = parse_filename(filename)
    assert (info.name, info.version, info.packagetype) == (name, version, "bdist_wheel")
    assert info.platforms == {p for t in tags if (p := platform_of_tag(t.platform))}


def test_a_big_page_s_wheel_names_are_parsed_by_version_and_by_tag_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A page of 200 versions x 20 wheels (boto3's size): packaging reads each version's
    `name-version` once and each tag set once, not 4,000 whole names (100 ms)."""
    stems, tag_sets = counted_parses(monkeypatch)
    tags = [f"cp3{py}-cp3{py}-{plat}" for py in range(9, 14) for plat in ("win_amd64",
            "macosx_11_0_arm64", "manylinux_2_17_x86_64", "musllinux_1_1_aarch64")]  # fmt: skip
    infos = [parse_filename(f"big-1.{v}-{t}.whl") for v in range(200) for t in tags]
    assert [i.version for i in infos[::20]] == [Version(f"1.{v}") for v in range(200)]
    assert {i.platforms for i in infos} == {frozenset({p}) for p in ("windows", "macos", "linux")}
    assert len(stems) == 200 and set(stems.values()) == {1}
    assert len(tag_sets) == 20 and set(tag_sets.values()) == {1}


WHEEL_6 = "pyyaml-6.0-cp312-cp312-manylinux_2_17_x86_64.whl"


@pytest.mark.parametrize(
    ("one", "other", "same"),
    [
        (WHEEL_6, "PyYAML-6.0-cp312-cp312-manylinux_2_17_x86_64.whl", True),
        (WHEEL_6, "PyYAML-6.0.0-cp312-cp312-manylinux_2_17_x86_64.whl", True),
        (WHEEL_6, "pyyaml-6.0-cp312-cp312-manylinux_2_17_aarch64.whl", False),  # another build
        (WHEEL_6, "pyyaml-6.0-1-cp312-cp312-manylinux_2_17_x86_64.whl", False),  # a build tag
        (WHEEL_6, "pyyaml-6.0.1-cp312-cp312-manylinux_2_17_x86_64.whl", False),
        (WHEEL_6, "pyyaml-6.0+cpu-cp312-cp312-manylinux_2_17_x86_64.whl", False),
        ("six-1.16.0-py2.py3-none-any.whl", "Six-1.16-py3.py2-none-any.whl", True),  # tag sets
        ("zope.interface-6.0.tar.gz", "zope_interface-6.0.tar.gz", True),
        ("PyYAML-6.0.tar.gz", "pyyaml-6.0.0.tar.gz", True),
        ("PyYAML-6.0.tar.gz", "PyYAML-6.0.zip", False),  # another archive: another file
        ("PyYAML-6.0.tar.gz", "PyYAML-6.0-py3-none-any.whl", False),
    ],
)
def test_which_names_are_one_file(one: str, other: str, same: bool) -> None:
    assert file_identity(one) is not None and file_identity(other) is not None
    assert (file_identity(one) == file_identity(other)) is same


@pytest.mark.parametrize(
    "filename", ["foo-1.0.tar.bz2", "foo-1.0-py2.7.egg", "foo-1.0.win32.exe", "foo.tar.gz", "x.whl"]
)
def test_a_name_packaging_cannot_read_is_only_itself(filename: str) -> None:
    assert file_identity(filename) is None


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
