from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from pullthrough.core.filenames import python_version
from pullthrough.core.metadata import PackageMetadata, read_metadata
from pullthrough.core.pypi_json import ReleaseFile, UnknownVersion, render_project, sort_versions
from support.packages import build_wheel, sha256_of

INFO_KEYS = {
    "author",
    "author_email",
    "bugtrack_url",
    "classifiers",
    "description",
    "description_content_type",
    "docs_url",
    "download_url",
    "downloads",
    "dynamic",
    "home_page",
    "keywords",
    "license",
    "license_expression",
    "license_files",
    "maintainer",
    "maintainer_email",
    "name",
    "package_url",
    "platform",
    "project_url",
    "project_urls",
    "provides_extra",
    "release_url",
    "requires_dist",
    "requires_python",
    "summary",
    "version",
    "yanked",
    "yanked_reason",
}
FILE_KEYS = {
    "comment_text",
    "digests",
    "downloads",
    "filename",
    "has_sig",
    "md5_digest",
    "packagetype",
    "python_version",
    "requires_python",
    "size",
    "upload_time",
    "upload_time_iso_8601",
    "url",
    "yanked",
    "yanked_reason",
}


def wheel(
    version: str, *, yanked: str | None = None, requires_python: str | None = None
) -> ReleaseFile:
    filename = f"shelf_reader-{version}-py3-none-any.whl"
    return ReleaseFile(
        filename=filename,
        version=version,
        packagetype="bdist_wheel",
        sha256="ab" * 32,
        size=1234,
        requires_python=requires_python,
        yanked=yanked is not None,
        yanked_reason=yanked or None,
        upload_time="2024-05-01T12:30:45.123456Z",
        url=f"https://files.example/{filename}",
    )


def sdist(version: str, *, yanked: str | None = None) -> ReleaseFile:
    filename = f"shelf_reader-{version}.tar.gz"
    return ReleaseFile(
        filename=filename,
        version=version,
        packagetype="sdist",
        sha256="cd" * 32,
        size=99,
        requires_python=None,
        yanked=yanked is not None,
        yanked_reason=yanked or None,
        upload_time=None,
        url=f"https://files.example/{filename}",
        md5="ef" * 16,
        blake2b_256="01" * 32,
    )


def shown(files: Sequence[ReleaseFile], **kwargs: Any) -> str | None:
    version: str | None = render_project("shelf-reader", files, None, **kwargs)["info"]["version"]
    return version


@pytest.mark.parametrize(
    ("files", "versions", "expected"),
    [
        ([wheel("1.0"), wheel("2.0"), wheel("1.5")], None, "2.0"),
        ([wheel("1.0"), wheel("2.0", yanked="broken")], None, "1.0"),
        ([wheel("1.0"), wheel("2.0rc1")], None, "1.0"),
        ([wheel("1.0"), wheel("2.0.dev1")], None, "1.0"),
        ([wheel("1.0"), wheel("10.0")], None, "10.0"),  # PEP 440 order, not string order
        # A release is yanked only when all its files are.
        ([wheel("1.0"), wheel("2.0", yanked="x"), sdist("2.0")], None, "2.0"),
        # Only prereleases: the latest of them (pypi.org prefers an unyanked prerelease).
        ([wheel("1.0rc1"), wheel("1.0rc2")], None, "1.0rc2"),
        ([wheel("1.0rc1"), wheel("2.0", yanked="x")], None, "1.0rc1"),
        # Everything yanked: as if nothing were (pypi.org's `test_all_releases_yanked`).
        ([wheel("1.0", yanked="x"), wheel("2.0rc1", yanked="x")], None, "1.0"),
        ([wheel(v, yanked="x") for v in ("1.0", "2.0", "4.0.dev0", "3.0")], None, "3.0"),
        ([wheel("1.0rc1", yanked="x"), wheel("2.0rc1", yanked="x")], None, "2.0rc1"),
        # Releases without files are not installable, so not chosen while others are.
        ([wheel("1.0")], ["1.0", "3.0"], "1.0"),
        ([], ["1.0", "3.0"], "3.0"),
        # Invalid versions sort last and lose to any valid one.
        ([wheel("1.0"), wheel("banana")], None, "1.0"),
        ([wheel("banana")], None, "banana"),
        ([], None, None),
    ],
)
def test_latest_version_selection(
    files: list[ReleaseFile], versions: list[str] | None, expected: str | None
) -> None:
    assert shown(files, versions=versions) == expected


def test_project_document_shape() -> None:
    files = [sdist("1.0"), wheel("1.0"), wheel("2.0rc1"), wheel("0.9", yanked="bad build")]
    data = render_project("shelf-reader", files, None, versions=["0.5", "1.0"])
    assert list(data) == ["info", "last_serial", "releases", "urls", "vulnerabilities"]
    assert set(data["info"]) == INFO_KEYS
    assert data["last_serial"] == 0
    assert data["vulnerabilities"] == []
    assert list(data["releases"]) == ["0.5", "0.9", "1.0", "2.0rc1"]
    assert data["releases"]["0.5"] == []
    assert [f["filename"] for f in data["releases"]["1.0"]] == [
        "shelf_reader-1.0.tar.gz",
        "shelf_reader-1.0-py3-none-any.whl",
    ]
    assert data["urls"] == data["releases"]["1.0"]
    assert data["releases"]["0.9"][0]["yanked_reason"] == "bad build"
    json.dumps(data)  # serializable as it is
    served = render_project("shelf-reader", files, None, last_serial=20145137)
    assert served["last_serial"] == 20145137  # the upstream's, which mirroring tools compare


def page_url(version: str | None) -> str:
    page = "https://idx.example/project/shelf-reader/"
    return page if version is None else f"{page}#{version}"


def test_info_without_metadata_comes_from_the_files() -> None:
    files = [wheel("1.0", requires_python=">=3.9"), sdist("1.0")]
    info = render_project("shelf-reader", files, None, page_url=page_url)["info"]
    assert info == {
        "author": None,
        "author_email": None,
        "bugtrack_url": None,  # pypi.org's keys kept for its clients: always null
        "classifiers": [],
        "description": None,
        "description_content_type": None,
        "docs_url": None,  # (pythonhosted.org's documentation: none here)
        "download_url": None,
        "downloads": {"last_day": -1, "last_month": -1, "last_week": -1},  # always -1
        "dynamic": None,
        "home_page": None,
        "keywords": None,
        "license": None,
        "license_expression": None,
        "license_files": None,
        "maintainer": None,
        "maintainer_email": None,
        "name": "shelf-reader",
        "package_url": "https://idx.example/project/shelf-reader/",
        "platform": None,
        "project_url": "https://idx.example/project/shelf-reader/",
        "project_urls": None,
        "provides_extra": None,
        "release_url": "https://idx.example/project/shelf-reader/#1.0",
        "requires_dist": None,
        "requires_python": ">=3.9",
        "summary": None,
        "version": "1.0",
        "yanked": False,
        "yanked_reason": None,
    }


def test_info_from_metadata() -> None:
    meta = PackageMetadata(
        name="Shelf.Reader",
        version="2.0",
        summary="Reads shelves",
        description="# Hi",
        description_content_type="text/markdown",
        author="Ann",
        license="MIT",
        license_expression="MIT OR Apache-2.0",
        license_files=("LICENSE", "licenses/NOTICE.txt"),
        keywords="books, shelves",
        classifiers=("Programming Language :: Python :: 3",),
        home_page="https://example.org",
        project_urls={"Source": "https://example.org/src"},
        requires_dist=("requests>=2",),
        requires_python=">=3.10",
        provides_extra=("pretty",),
        platforms=("linux",),
        dynamic=("Requires-Dist",),
    )
    info = render_project("shelf-reader", [wheel("2.0")], meta)["info"]
    assert set(info) == INFO_KEYS
    assert info["name"] == "Shelf.Reader"
    assert info["version"] == "2.0"
    assert info["summary"] == "Reads shelves"
    assert info["description"] == "# Hi"
    assert info["classifiers"] == ["Programming Language :: Python :: 3"]
    assert info["project_urls"] == {
        "Homepage": "https://example.org",
        "Source": "https://example.org/src",
    }
    assert info["requires_dist"] == ["requests>=2"]
    assert info["requires_python"] == ">=3.10"
    assert info["provides_extra"] == ["pretty"]
    assert info["platform"] == "linux"
    assert info["keywords"] == "books, shelves"
    assert info["license"] == "MIT"
    assert info["license_expression"] == "MIT OR Apache-2.0"  # PEP 639, as pypi.org shows it
    assert info["license_files"] == ["LICENSE", "licenses/NOTICE.txt"]
    assert info["dynamic"] == ["Requires-Dist"]  # PEP 643


def test_info_from_a_real_wheel(tmp_path: Path) -> None:
    path = build_wheel(tmp_path, "Shelf.Reader", "1.0", requires_dist=["attrs"])
    meta = read_metadata(path, path.name)
    file = ReleaseFile(
        filename=path.name,
        version="1.0",
        packagetype="bdist_wheel",
        sha256=sha256_of(path),
        size=path.stat().st_size,
        requires_python=None,
        yanked=False,
        yanked_reason=None,
        upload_time=None,
        url=f"https://files.example/{path.name}",
    )
    data = render_project("shelf-reader", [file], meta)
    assert data["info"]["requires_dist"] == ["attrs"]
    assert data["urls"][0]["digests"] == {"sha256": sha256_of(path)}


def test_page_links_name_the_release_shown() -> None:
    files = [wheel("1.0"), wheel("2.0")]
    latest = render_project("shelf-reader", files, None, page_url=page_url)["info"]
    older = render_project("shelf-reader", files, None, version="1.0", page_url=page_url)["info"]
    assert latest["package_url"] == latest["project_url"] == page_url(None)
    assert (latest["release_url"], older["release_url"]) == (page_url("2.0"), page_url("1.0"))
    assert (
        render_project("shelf-reader", [], None, page_url=page_url)["info"]["release_url"] is None
    )
    no_pages = render_project("shelf-reader", files, None)["info"]
    assert (no_pages["package_url"], no_pages["release_url"]) == (None, None)


def releases(files: Sequence[ReleaseFile], versions: list[str] | None) -> dict[str, list[str]]:
    data = render_project("shelf-reader", files, None, versions=versions)
    return {v: [f["filename"] for f in fs] for v, fs in data["releases"].items()}


@pytest.mark.parametrize(
    ("files", "versions", "expected"),
    [
        # PyPI keeps old releases' versions as uploaded; a wheel's name gives the normal form.
        (
            [sdist("0.6c11"), wheel("0.6rc11")],
            ["0.6c11"],
            {"0.6c11": ["shelf_reader-0.6c11.tar.gz", "shelf_reader-0.6rc11-py3-none-any.whl"]},
        ),
        (
            [wheel("0.6rc11"), sdist("0.6c11")],
            ["0.6c11"],
            {"0.6c11": ["shelf_reader-0.6rc11-py3-none-any.whl", "shelf_reader-0.6c11.tar.gz"]},
        ),
        # Without PEP 700 `versions`: the version as the first file's name writes it.
        (
            [wheel("1.0.0"), sdist("1.0")],
            None,
            {"1.0.0": ["shelf_reader-1.0.0-py3-none-any.whl", "shelf_reader-1.0.tar.gz"]},
        ),
        ([sdist("0.6c11")], None, {"0.6c11": ["shelf_reader-0.6c11.tar.gz"]}),
        # A legacy version is its own text, with or without `versions`.
        (
            [sdist("2004d"), wheel("1.0")],
            ["1.0", "2004d"],
            {"1.0": ["shelf_reader-1.0-py3-none-any.whl"], "2004d": ["shelf_reader-2004d.tar.gz"]},
        ),
        (
            [sdist("2004d"), sdist("2004D")],
            None,
            {
                "2004D": ["shelf_reader-2004D.tar.gz"],
                "2004d": ["shelf_reader-2004d.tar.gz"],
            },
        ),
        # A listed release without files stays, under its listed name.
        (
            [wheel("1.0")],
            ["0.5.0", "1.0"],
            {"0.5.0": [], "1.0": ["shelf_reader-1.0-py3-none-any.whl"]},
        ),
    ],
)
def test_one_release_per_version_under_the_index_s_name(
    files: list[ReleaseFile], versions: list[str] | None, expected: dict[str, list[str]]
) -> None:
    assert releases(files, versions) == expected


@pytest.mark.parametrize(
    ("version", "expected_version", "expected_urls"),
    [
        ("0.6c11", "0.6c11", 2),
        ("0.6rc11", "0.6c11", 2),  # any spelling of the version finds the release
        ("0.6.0c11", "0.6c11", 2),
        ("2004d", "2004d", 1),
    ],
)
def test_a_given_version_has_every_file_of_its_release(
    version: str, expected_version: str, expected_urls: int
) -> None:
    files = [sdist("0.6c11"), wheel("0.6rc11"), sdist("2004d")]
    data = render_project("p", files, None, version=version, versions=["0.6c11", "2004d"])
    assert data["info"]["version"] == expected_version
    assert len(data["urls"]) == expected_urls


def test_the_latest_release_is_named_as_the_index_names_it() -> None:
    files = [wheel("0.5"), sdist("1.0.0"), wheel("1.0")]
    data = render_project("p", files, None, versions=["0.5", "1.0.0"])
    assert data["info"]["version"] == "1.0.0"
    assert [f["filename"] for f in data["urls"]] == [
        "shelf_reader-1.0.0.tar.gz",
        "shelf_reader-1.0-py3-none-any.whl",
    ]


def test_a_given_version() -> None:
    files = [wheel("1.0"), wheel("2.0"), sdist("2.0", yanked="oops")]
    data = render_project("shelf-reader", files, None, version="1.0")
    assert list(data) == ["info", "last_serial", "urls", "vulnerabilities"]  # no releases
    assert data["info"]["version"] == "1.0"
    assert [f["filename"] for f in data["urls"]] == ["shelf_reader-1.0-py3-none-any.whl"]


@pytest.mark.parametrize(
    ("files", "versions", "version", "expected_version", "expected_urls"),
    [
        ([wheel("1.0")], None, "1.0.0", "1.0", 1),  # an equal PEP 440 version
        ([wheel("1.0")], ["1.0", "0.5"], "0.5", "0.5", 0),  # a release without files
        ([wheel("1.0", yanked="x")], None, "1.0", "1.0", 1),  # yanked versions stay reachable
        ([wheel("banana")], None, "banana", "banana", 1),
    ],
)
def test_given_version_lookup(
    files: list[ReleaseFile],
    versions: list[str] | None,
    version: str,
    expected_version: str,
    expected_urls: int,
) -> None:
    data = render_project("shelf-reader", files, None, version=version, versions=versions)
    assert data["info"]["version"] == expected_version
    assert len(data["urls"]) == expected_urls


def test_a_yanked_given_version() -> None:
    info = render_project("p", [wheel("1.0", yanked="broken")], None, version="1.0")["info"]
    assert (info["yanked"], info["yanked_reason"]) == (True, "broken")


@pytest.mark.parametrize("version", ["3.0", "1.0rc1", "banana"])
def test_unknown_version(version: str) -> None:
    with pytest.raises(UnknownVersion, match=f"has no version '{version}'") as caught:
        render_project("shelf-reader", [wheel("1.0")], None, version=version, versions=["2.0"])
    assert isinstance(caught.value, KeyError)
    assert isinstance(caught.value, LookupError)


def test_file_entries() -> None:
    data = render_project("shelf-reader", [wheel("1.0"), sdist("1.0")], None)
    whl, tgz = data["urls"]
    assert set(whl) == FILE_KEYS
    assert whl == {
        "comment_text": "",
        "digests": {"sha256": "ab" * 32},
        "downloads": -1,
        "filename": "shelf_reader-1.0-py3-none-any.whl",
        "has_sig": False,
        "md5_digest": None,
        "packagetype": "bdist_wheel",
        "python_version": "py3",
        "requires_python": None,
        "size": 1234,
        "upload_time": "2024-05-01T12:30:45",
        "upload_time_iso_8601": "2024-05-01T12:30:45.123456Z",
        "url": "https://files.example/shelf_reader-1.0-py3-none-any.whl",
        "yanked": False,
        "yanked_reason": None,
    }
    assert tgz["digests"] == {"sha256": "cd" * 32, "md5": "ef" * 16, "blake2b_256": "01" * 32}
    assert tgz["md5_digest"] == "ef" * 16
    assert tgz["python_version"] == "source"
    assert (tgz["upload_time"], tgz["upload_time_iso_8601"]) == (None, None)


@pytest.mark.parametrize(
    ("stored", "upload_time", "iso"),
    [
        ("2024-05-01T12:30:45Z", "2024-05-01T12:30:45", "2024-05-01T12:30:45Z"),
        ("2024-05-01T14:30:45+02:00", "2024-05-01T12:30:45", "2024-05-01T12:30:45Z"),
        ("2024-05-01T12:30:45.5", "2024-05-01T12:30:45", "2024-05-01T12:30:45.500000Z"),
        ("yesterday", None, "yesterday"),
    ],
)
def test_upload_times(stored: str, upload_time: str | None, iso: str) -> None:
    file = replace(wheel("1.0"), upload_time=stored)
    (entry,) = render_project("p", [file], None)["urls"]
    assert (entry["upload_time"], entry["upload_time_iso_8601"]) == (upload_time, iso)


@pytest.mark.parametrize(
    ("filename", "packagetype", "expected"),
    [
        ("shelf_reader-1.0.tar.gz", "sdist", "source"),
        ("shelf_reader-1.0.zip", "sdist", "source"),
        ("shelf_reader-1.0-py3-none-any.whl", "bdist_wheel", "py3"),
        ("six-1.16.0-py2.py3-none-any.whl", "bdist_wheel", "py2.py3"),
        ("numpy-2.1.0-cp311-cp311-win_amd64.whl", "bdist_wheel", "cp311"),
        ("lib-1.0-1-cp312-abi3-manylinux_2_17_x86_64.whl", "bdist_wheel", "cp312"),
        ("foo-1.0-py2.7.egg", "bdist_egg", "2.7"),
        ("foo-1.0.win32.exe", "bdist_wininst", "any"),
    ],
)
def test_python_version(filename: str, packagetype: str, expected: str) -> None:
    assert python_version(filename, packagetype) == expected


def test_sort_versions() -> None:
    assert sort_versions(["1.0", "banana", "10.0", "2.0rc1", "1.0", "apple", "2.0"]) == [
        "1.0",
        "2.0rc1",
        "2.0",
        "10.0",
        "apple",
        "banana",
    ]
    assert sort_versions(["1.0.0", "1.0"]) == ["1.0", "1.0.0"]
