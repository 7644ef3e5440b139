from __future__ import annotations

import io
import random
import tarfile
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from pullthrough.core import metadata
from pullthrough.core.metadata import (
    MAX_METADATA_SIZE,
    InvalidDistribution,
    PackageMetadata,
    check_filename_matches,
    parse_metadata,
    read_metadata,
)
from support.packages import build_sdist, build_wheel

GOOD_METADATA = b"Metadata-Version: 2.1\nName: Shelf.Reader\nVersion: 1.0\n\n"

FULL_METADATA = """\
Metadata-Version: 2.3
Name: Shelf.Reader
Version: 1.2.0rc1
Summary: Reads shelves
Home-page: https://example.org/home
Download-URL: https://example.org/download
Author: Ann Author
Author-email: ann@example.org
Maintainer: Max Maintainer
Maintainer-email: max@example.org
License: MIT
Keywords: books, shelves,reading
Platform: linux
Platform: windows
Classifier: Programming Language :: Python :: 3
Classifier: License :: OSI Approved :: MIT License
Requires-Python: >=3.9
Requires-Dist: requests>=2
Requires-Dist: rich; extra == "pretty"
Provides-Extra: pretty
Project-URL: Source, https://example.org/src
Project-URL: Issues, https://example.org/issues
Description-Content-Type: text/markdown

# Shelf reader

Reads shelves, caf\u00e9 included.
""".encode()


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def write_tar(path: Path, members: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return path


# --- parse_metadata -----------------------------------------------------------------------


def test_parse_metadata_reads_every_field() -> None:
    meta = parse_metadata(FULL_METADATA)
    assert meta == PackageMetadata(
        name="Shelf.Reader",
        version="1.2.0rc1",
        metadata_version="2.3",
        summary="Reads shelves",
        description="# Shelf reader\n\nReads shelves, caf\u00e9 included.\n",
        description_content_type="text/markdown",
        author="Ann Author",
        author_email="ann@example.org",
        maintainer="Max Maintainer",
        maintainer_email="max@example.org",
        license="MIT",
        keywords="books, shelves, reading",
        classifiers=(
            "Programming Language :: Python :: 3",
            "License :: OSI Approved :: MIT License",
        ),
        home_page="https://example.org/home",
        download_url="https://example.org/download",
        project_urls={"Source": "https://example.org/src", "Issues": "https://example.org/issues"},
        requires_dist=("requests>=2", 'rich; extra == "pretty"'),
        requires_python=">=3.9",
        provides_extra=("pretty",),
        platforms=("linux", "windows"),
        raw=FULL_METADATA,
    )
    assert meta.normalized_name == "shelf-reader"


def test_parse_metadata_reads_the_pep_639_license_fields() -> None:
    raw = (
        b"Metadata-Version: 2.4\nName: lic-new\nVersion: 1.0\n"
        b"License-Expression: MIT OR Apache-2.0\n"
        b"License-File: LICENSE\nLicense-File: licenses/NOTICE.txt\n"
    )
    meta = parse_metadata(raw)
    assert (meta.license, meta.license_expression) == (None, "MIT OR Apache-2.0")
    assert meta.license_files == ("LICENSE", "licenses/NOTICE.txt")


def test_parse_metadata_minimal_fields_default_to_empty() -> None:
    meta = parse_metadata(GOOD_METADATA)
    assert (meta.name, meta.version, meta.summary, meta.classifiers) == (
        "Shelf.Reader",
        "1.0",
        None,
        (),
    )
    assert meta.project_urls == {}


def test_parse_metadata_is_lenient_about_other_fields() -> None:
    raw = GOOD_METADATA.replace(
        b"\n\n", b"\nX-Custom: 1\nMetadata-Version: 9.9\nSummary: a\nSummary: b\n\n"
    )
    meta = parse_metadata(raw)
    assert (meta.name, meta.version, meta.summary) == ("Shelf.Reader", "1.0", None)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"Metadata-Version: 2.1\nVersion: 1.0\n\n", "no Name field"),
        (b"Name: a\nName: b\nVersion: 1.0\n\n", "a repeated or undecodable Name field"),
        (b"Name: -bad-\nVersion: 1.0\n\n", "invalid Name '-bad-'"),
        (b"Name: good\n\n", "no Version field"),
        (b"Name: good\nVersion: one\n\n", "invalid Version 'one'"),
        (b"", "no Name field"),
    ],
)
def test_parse_metadata_requires_a_name_and_a_version(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidDistribution, match=message):
        parse_metadata(raw)


# --- read_metadata: real distributions ------------------------------------------------------


@pytest.mark.parametrize("builder", [build_wheel, build_sdist])
@pytest.mark.parametrize(
    ("name", "version", "requires_python", "requires_dist"),
    [
        ("shelf-reader", "0.1", None, ()),
        ("Shelf.Reader", "2.0rc1", ">=3.8", ("requests>=2.0", 'rich; extra == "pretty"')),
        ("acme_utils", "1.0.post1+local.7", "<4,>=3.9", ("attrs",)),
    ],
)
def test_read_metadata_round_trips(
    tmp_path: Path,
    builder: Callable[..., Path],
    name: str,
    version: str,
    requires_python: str | None,
    requires_dist: tuple[str, ...],
) -> None:
    path = builder(
        tmp_path, name, version, requires_python=requires_python, requires_dist=requires_dist
    )
    meta = read_metadata(path, path.name)
    assert (meta.name, meta.version) == (name, version)
    assert meta.requires_python == requires_python
    assert meta.requires_dist == tuple(requires_dist)
    assert meta.metadata_version == "2.1"
    assert meta.raw.startswith(b"Metadata-Version: 2.1\n")
    check_filename_matches(meta, path.name)


def test_read_metadata_uses_the_filename_not_the_path_for_the_type(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path, "shelf-reader", "0.1")
    stored = wheel.rename(tmp_path / "0123abcd")
    assert read_metadata(stored, "shelf_reader-0.1-py3-none-any.whl").version == "0.1"


def test_read_metadata_of_a_zip_sdist(tmp_path: Path) -> None:
    path = write_zip(
        tmp_path / "shelf_reader-1.0.zip",
        {"shelf_reader-1.0/PKG-INFO": GOOD_METADATA, "shelf_reader-1.0/setup.py": b""},
    )
    assert read_metadata(path, path.name).raw == GOOD_METADATA


def test_read_metadata_of_a_missing_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_metadata(tmp_path / "nope.whl", "shelf_reader-1.0-py3-none-any.whl")


# --- read_metadata: broken distributions ----------------------------------------------------

WHEEL = "shelf_reader-1.0-py3-none-any.whl"
SDIST = "shelf_reader-1.0.tar.gz"
ZIP_SDIST = "shelf_reader-1.0.zip"
NOISE = random.Random(0).randbytes(4096)


def truncated_wheel(tmp_path: Path) -> Path:
    wheel = build_wheel(tmp_path / "src", "shelf-reader", "1.0")
    data = wheel.read_bytes()
    (tmp_path / "f").write_bytes(data[: len(data) // 2])
    return tmp_path / "f"


def wheel_of(members: dict[str, bytes]) -> Callable[[Path], Path]:
    return lambda tmp_path: write_zip(tmp_path / "f", members)


def sdist_of(
    members: dict[str, bytes], links: dict[str, str] | None = None
) -> Callable[[Path], Path]:
    return lambda tmp_path: write_tar(tmp_path / "f", members, links)


def raw_bytes(data: bytes) -> Callable[[Path], Path]:
    def make(tmp_path: Path) -> Path:
        (tmp_path / "f").write_bytes(data)
        return tmp_path / "f"

    return make


BIG = b"Name: shelf-reader\nVersion: 1.0\n\n" + b" " * MAX_METADATA_SIZE
DIST_INFO = "shelf_reader-1.0.dist-info"


@pytest.mark.parametrize(
    ("make", "filename", "message"),
    [
        pytest.param(truncated_wheel, WHEEL, "not a readable zip file", id="truncated-zip"),
        pytest.param(raw_bytes(NOISE), WHEEL, "not a readable zip file", id="noise-whl"),
        pytest.param(raw_bytes(NOISE), ZIP_SDIST, "not a readable zip file", id="noise-zip"),
        pytest.param(raw_bytes(NOISE), SDIST, "not a readable tar.gz file", id="noise-tar"),
        pytest.param(raw_bytes(b""), SDIST, "not a readable tar.gz file", id="empty-tar"),
        pytest.param(
            wheel_of({"shelf_reader/__init__.py": b""}), WHEEL, "no METADATA file", id="no-metadata"
        ),
        pytest.param(
            wheel_of({f"sub/{DIST_INFO}/METADATA": GOOD_METADATA}),
            WHEEL,
            "no METADATA file",
            id="nested-metadata",
        ),
        pytest.param(
            wheel_of(
                {
                    f"{DIST_INFO}/METADATA": GOOD_METADATA,
                    "other-2.0.dist-info/METADATA": GOOD_METADATA,
                }
            ),
            WHEEL,
            "2 METADATA files",
            id="two-metadata",
        ),
        pytest.param(
            wheel_of({"other-1.0.dist-info/METADATA": GOOD_METADATA}),
            WHEEL,
            "other-1.0.dist-info does not match",
            id="foreign-dist-info",
        ),
        pytest.param(
            wheel_of({"shelf_reader-1.1.dist-info/METADATA": GOOD_METADATA}),
            WHEEL,
            "does not match the wheel's name and version",
            id="other-version-dist-info",
        ),
        pytest.param(
            wheel_of({f"{DIST_INFO}/METADATA": BIG}), WHEEL, "larger than", id="huge-metadata"
        ),
        pytest.param(
            wheel_of({f"{DIST_INFO}/METADATA": b"Version: 1.0\n\n"}),
            WHEEL,
            "no Name field",
            id="metadata-without-name",
        ),
        pytest.param(
            wheel_of({f"{DIST_INFO}/METADATA": b"Name: shelf-reader\nVersion: x\n\n"}),
            WHEEL,
            "invalid Version 'x'",
            id="metadata-bad-version",
        ),
        pytest.param(
            sdist_of({"shelf_reader-1.0/setup.py": b""}),
            SDIST,
            "no PKG-INFO file",
            id="no-pkg-info",
        ),
        pytest.param(
            sdist_of({"PKG-INFO": GOOD_METADATA}),
            SDIST,
            "no PKG-INFO file",
            id="top-level-pkg-info",
        ),
        pytest.param(
            sdist_of({"shelf_reader-1.0/sub/PKG-INFO": GOOD_METADATA}),
            SDIST,
            "no PKG-INFO file",
            id="deep-pkg-info",
        ),
        pytest.param(
            sdist_of({"a/PKG-INFO": GOOD_METADATA, "b/PKG-INFO": GOOD_METADATA}),
            SDIST,
            "2 PKG-INFO files",
            id="two-pkg-info",
        ),
        pytest.param(
            sdist_of({"/etc/passwd": b"root"}, {"shelf_reader-1.0/PKG-INFO": "/etc/passwd"}),
            SDIST,
            "is not a regular file",
            id="linked-pkg-info",
        ),
        pytest.param(
            sdist_of({"shelf_reader-1.0/PKG-INFO": BIG}), SDIST, "larger than", id="huge-pkg-info"
        ),
        pytest.param(
            wheel_of({"shelf_reader-1.0/setup.py": b""}),
            ZIP_SDIST,
            "no PKG-INFO file",
            id="zip-without-pkg-info",
        ),
        pytest.param(raw_bytes(b""), "shelf_reader-1.0.egg", "Unsupported", id="egg"),
        pytest.param(raw_bytes(b""), "shelf_reader.whl", "Invalid wheel filename", id="bad-name"),
    ],
)
def test_read_metadata_rejects_broken_files(
    tmp_path: Path, make: Callable[[Path], Path], filename: str, message: str
) -> None:
    path = make(tmp_path)
    with pytest.raises(InvalidDistribution, match=message):
        read_metadata(path, filename)


def test_a_linked_metadata_in_a_wheel_is_rejected(tmp_path: Path) -> None:
    info = zipfile.ZipInfo(f"{DIST_INFO}/METADATA")
    info.external_attr = 0o120777 << 16  # a symbolic link, whose data is its target
    with zipfile.ZipFile(tmp_path / "f", "w") as zf:
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(InvalidDistribution, match="is not a regular file"):
        read_metadata(tmp_path / "f", WHEEL)


def test_error_messages_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidDistribution, match=r"^Invalid distribution 'shelf_reader-1\.0"):
        read_metadata(raw_bytes(NOISE)(tmp_path), WHEEL)


# --- check_filename_matches -----------------------------------------------------------------


@pytest.mark.parametrize(
    "filename",
    [
        "shelf_reader-1.0-py3-none-any.whl",
        "Shelf.Reader-1.0.0.tar.gz",
        "shelf-reader-1.0.zip",
        "shelf_reader-1.0-1-cp311-cp311-win_amd64.whl",
        "Shelf.Reader-1.0-py2.7.egg",
    ],
)
def test_matching_filenames(filename: str) -> None:
    check_filename_matches(parse_metadata(GOOD_METADATA), filename)


@pytest.mark.parametrize(
    "filename",
    [
        "shelf_reader-2.0-py3-none-any.whl",
        "shelf_writer-1.0-py3-none-any.whl",
        "other-1.0.tar.gz",
        "shelf_reader-1.0rc1.tar.gz",
        "shelf_reader-one.tar.gz",
        "other-1.0-py2.7.egg",
        "shelf_reader.whl",
        # read as project `shelf` wherever the name alone is read (the page, an upload token's
        # scope): split after the metadata's name, it passed, and `shelf` listed it
        "shelf-reader-1.0-x.tar.gz",
    ],
)
def test_mismatching_filenames(filename: str) -> None:
    meta = parse_metadata(GOOD_METADATA)
    with pytest.raises(InvalidDistribution) as caught:
        check_filename_matches(meta, filename)
    assert str(caught.value) == (
        f"Filename {filename!r} does not match the metadata (name 'Shelf.Reader', version '1.0')"
    )


def _sdist_with(tmp_path: Path, members: dict[str, bytes]) -> Path:
    path = tmp_path / "shelf_reader-1.0.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_an_sdist_that_inflates_past_its_limit_is_refused_before_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tar.gz is walked whole; a member of zeros 1,000 times its compressed size (a gzip
    bomb, here 4 MiB in ~4 KiB) is refused on its header, before it is inflated, wherever it
    is in the archive."""
    monkeypatch.setattr(metadata, "EXPANDED_FLOOR", 1024 * 1024)  # 50 x the file's size: less
    pkg_info = b"Metadata-Version: 2.1\nName: shelf-reader\nVersion: 1.0\n"
    zeros = bytes(4 * 1024 * 1024)
    fine = _sdist_with(tmp_path, {"shelf_reader-1.0/PKG-INFO": pkg_info})
    assert read_metadata(fine, fine.name).version == "1.0"
    for members in (
        {"shelf_reader-1.0/zeros.bin": zeros, "shelf_reader-1.0/PKG-INFO": pkg_info},
        {"shelf_reader-1.0/PKG-INFO": pkg_info, "shelf_reader-1.0/zeros.bin": zeros},
    ):
        bomb = _sdist_with(tmp_path, members)
        assert bomb.stat().st_size < 50_000
        with pytest.raises(InvalidDistribution) as refused:
            read_metadata(bomb, bomb.name)
        assert str(refused.value) == (
            "Invalid distribution 'shelf_reader-1.0.tar.gz': it expands to more than 1048576"
            " bytes (50 times its size), as a decompression bomb does"
        )


def test_walking_an_sdist_keeps_no_header_it_has_passed(tmp_path: Path) -> None:
    """tarfile keeps every header it reads: an sdist of many empty members (3 MB of them
    inflate to 520,000 members, well within the limit) took a worker's memory 235 MB up. The
    walk keeps none, so 20,000 members cost what 10 do."""
    pkg_info = b"Metadata-Version: 2.1\nName: shelf-reader\nVersion: 1.0\n"

    def peak(count: int) -> int:
        path = tmp_path / str(count) / "shelf_reader-1.0.tar.gz"
        path.parent.mkdir()
        with tarfile.open(path, "w:gz") as tar:
            info = tarfile.TarInfo("shelf_reader-1.0/PKG-INFO")
            info.size = len(pkg_info)
            tar.addfile(info, io.BytesIO(pkg_info))
            for n in range(count):
                tar.addfile(tarfile.TarInfo(f"shelf_reader-1.0/{n}"))
        tracemalloc.start()
        try:
            assert read_metadata(path, path.name).version == "1.0"
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    assert peak(20_000) - peak(10) < 1024 * 1024
