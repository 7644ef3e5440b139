"""Hostile input, generated (hypothesis): the pure parsers and renderers raise nothing but their
documented errors, and what they promise holds for every input (round trips, idempotence,
invariants). Deterministic: derandomized, no example database, bounded example counts."""

from __future__ import annotations

import functools
import html
import io
import json
import math
import pickle
import re
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar, cast
from urllib.parse import quote, urldefrag, urljoin

import msgspec
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from pullthrough import config
from pullthrough.config import ConfigError, Settings
from pullthrough.core import (
    access,
    filenames,
    links,
    metadata,
    models,
    pypi_json,
    simple_html,
    simple_json,
)
from pullthrough.core.fields import fields_of
from pullthrough.core.filenames import InvalidFilename
from pullthrough.core.filters import FilterSpec, parse_rule
from pullthrough.core.metadata import InvalidDistribution
from pullthrough.core.models import DistFile, ProjectList, ProjectPage, clean_hashes
from pullthrough.core.names import InvalidProjectName, normalize_project
from pullthrough.core.simple_html import InvalidPage
from pullthrough.web.negotiation import ACCEPTABLE, Format, choose_format

T = TypeVar("T")

# Every test runs the same examples on every run (CI is repeatable) and writes nothing to disk.
BASE = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=60,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def few(n: int) -> settings:
    return settings(BASE, max_examples=n)


PAGE_URL = "https://index.example/simple/demo/"
PREFIX = "../../../../pulp/content/main/"  # what web/simple.py gives a base path of one segment
DIGEST_LENGTHS = {
    "md5": 32,
    "sha1": 40,
    "sha224": 56,
    "sha256": 64,
    "sha384": 96,
    "sha512": 128,
    "blake2b": 128,
    "blake2s": 64,
}
NAME_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?")
NORMALIZED_RE = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")


# ---- strategies -------------------------------------------------------------------------------

# Text a page can carry: anything but lone surrogates (not UTF-8), NUL and CR (HTML turns them
# into U+FFFD and LF). JSON carries every string, surrogates included.
page_chars = st.characters(codec="utf-8", exclude_characters="\x00\r")
page_text = st.text(page_chars, min_size=1, max_size=20)
any_text = st.text(max_size=30)
names = st.from_regex(NAME_RE, fullmatch=True).filter(lambda s: len(s) <= 40)


@st.composite
def versions(draw: st.DrawFn) -> str:
    """A PEP 440 version, normalized."""
    text = ".".join(str(n) for n in draw(st.lists(st.integers(0, 40), min_size=1, max_size=4)))
    if draw(st.booleans()):
        text = f"{draw(st.integers(1, 3))}!{text}"
    if draw(st.booleans()):
        text += f"{draw(st.sampled_from(['a', 'b', 'rc']))}{draw(st.integers(0, 9))}"
    if draw(st.booleans()):
        text += f".post{draw(st.integers(0, 9))}"
    if draw(st.booleans()):
        text += f".dev{draw(st.integers(0, 9))}"
    if draw(st.booleans()):
        text += "+" + draw(st.from_regex(r"[a-z0-9]{1,4}(\.[a-z0-9]{1,4}){0,2}", fullmatch=True))
    return str(Version(text))


@st.composite
def digests(draw: st.DrawFn) -> tuple[str, str]:
    """A known algorithm and a well-formed hex digest of it."""
    algo = draw(st.sampled_from(sorted(DIGEST_LENGTHS)))
    length = DIGEST_LENGTHS[algo]
    return algo, draw(st.text("0123456789abcdef", min_size=length, max_size=length))


hash_maps = st.lists(digests(), max_size=3).map(dict)
# What pages carry (test_filenames pins `offerable`): named as distribution files, which an
# HTML page's links must be to count as files (not "Back to index").
filenames_on_page = (
    st.tuples(page_text, st.sampled_from(filenames.DIST_SUFFIXES))
    .map("".join)
    .filter(filenames.offerable)
)


# An upload time as a parsed page holds it: PEP 700's `yyyy-mm-ddThh:mm:ss[.ffffff]Z`.
pep_700_times = st.builds(
    lambda when, spec: when.isoformat(timespec=spec) + "Z",
    st.datetimes(min_value=datetime(1000, 1, 1)),
    st.sampled_from(["seconds", "microseconds"]),
)


# A provenance link as a parsed page holds it: absolute (resolved against the upstream's page).
provenance_links = page_text.map(lambda t: "https://index.example/integrity/" + quote(t, safe=""))


@st.composite
def dist_files(draw: st.DrawFn) -> DistFile:
    """A file as a parsed page holds it: clean hashes, no empty strings where None is meant."""
    filename = draw(filenames_on_page)
    metadata_value: bool | dict[str, str] = draw(
        st.one_of(st.booleans(), st.lists(digests(), min_size=1, max_size=2).map(dict))
    )
    return DistFile(
        filename=filename,
        url=urljoin(PAGE_URL, PREFIX + quote(filename)),
        hashes=draw(hash_maps),
        requires_python=draw(st.none() | page_text),
        yanked=draw(st.booleans() | page_text),
        core_metadata=metadata_value,
        size=draw(st.none() | st.integers(0, 2**53)),
        upload_time=draw(st.none() | pep_700_times),
        gpg_sig=draw(st.none() | st.booleans()),
        provenance=draw(st.none() | provenance_links),
    )


project_pages = st.builds(
    ProjectPage,
    name=page_text,
    files=st.lists(dist_files(), max_size=4).map(tuple),
)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | any_text
    | st.sampled_from(["", "http://[::1", "//x", "../a", "#sha256=00", "true", "false"])
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(any_text, inner, max_size=3),
    max_leaves=8,
)
FILE_KEYS = [
    "filename",
    "url",
    "hashes",
    "requires-python",
    "yanked",
    "core-metadata",
    "dist-info-metadata",
    "size",
    "upload-time",
    "gpg-sig",
    "provenance",
]
json_file_entries = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"filename": any_text, "url": any_text},
        optional={
            key: json_values
            | st.dictionaries(st.sampled_from([*DIGEST_LENGTHS, "SHA256"]), any_text)
            | st.builds(lambda d: {d[0]: d[1]}, digests())
            for key in FILE_KEYS[2:]
        },
    ),
)
# Entries as real indexes write them, each field of its PEP's type, with the values the typed
# reading must clean as the tolerant one does (empty strings, hashes to clean, relative and
# dotted links); and entries it must decline (another type, a lone surrogate, PEP 714's old key).
typed_texts = st.sampled_from(["", ">=3.8", "2024-01-01T00:00:00Z", "r\u00e9ason"])
typed_digests = (
    st.builds(lambda d: {d[0]: d[1]}, digests())
    | st.dictionaries(st.sampled_from([*DIGEST_LENGTHS, "SHA256"]), any_text, max_size=2)
    | st.builds(lambda d: {"sha256": d[1].upper()}, digests())
)
typed_fields = {
    "hashes": typed_digests,
    "requires-python": typed_texts | st.none(),
    "yanked": st.booleans() | typed_texts,
    "core-metadata": st.booleans() | typed_digests,
    "size": st.none() | st.integers(0, 2**40),
    "upload-time": typed_texts | st.none(),
    "gpg-sig": st.none() | st.booleans(),
    "provenance": typed_texts | st.none(),
    "extra": json_values,
}
declined_fields = {
    "requires-python": st.integers(0, 3),
    "dist-info-metadata": st.booleans() | typed_digests,
    "size": st.integers(-2, -1) | st.booleans(),
    "gpg-sig": typed_texts,
    "provenance": st.just("\ud800"),
}
typed_entry_names = {
    "filename": st.sampled_from(["a-1.0.tar.gz", "a-1.0-py3-none-any.whl", "", " a", "a/b"]),
    "url": st.sampled_from(
        ["https://f.example.org/p/a-1.0.tar.gz", "../../p/a.whl#x", "./a.whl", "/x/./y", "a:b"]
        + ["https://f.example.org/p/../a.whl", "http://h:8/a.whl#sha256=ab", "https://h/./a"]
    ),
}
typed_file_entries = st.fixed_dictionaries(typed_entry_names, optional=typed_fields)
declined_file_entries = st.fixed_dictionaries(
    typed_entry_names, optional={**typed_fields, **declined_fields}
)
json_project_pages = st.fixed_dictionaries(
    {},
    optional={
        "name": json_values,
        "files": st.lists(json_file_entries, max_size=3) | json_values,
        "versions": st.lists(json_values, max_size=3) | json_values,
        "meta": st.fixed_dictionaries({}, optional={"_last-serial": json_values}) | json_values,
    },
)

# HTML an upstream might send: anchors with any attributes, a base, stray markup, or bytes.
attr_names = st.sampled_from(
    [
        "href",
        "data-requires-python",
        "data-yanked",
        "data-core-metadata",
        "data-dist-info-metadata",
        "data-gpg-sig",
        "data-provenance",
        "data-upload-time",
    ]
)
attr_values = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["", "true", "false", "http://[::1", "//h/a.whl", "%00", "%0D", "%20x%20"]),
    st.builds(lambda d: f"{d[0]}={d[1]}", digests()),
    st.builds(lambda n, d: f"{n}#{d[0]}={d[1]}", st.text(max_size=8), digests()),
)


def _html_attr(name: str, value: str) -> str:
    return f'{name}="{value.replace("&", "&amp;").replace(chr(34), "&quot;")}"'


anchors = st.builds(
    lambda attrs, text: f"<a {' '.join(_html_attr(k, v) for k, v in attrs.items())}>{text}</a>",
    st.dictionaries(attr_names, attr_values, max_size=4),
    st.text(max_size=12),
)
html_documents = st.one_of(
    st.binary(max_size=200),
    st.builds(
        lambda base, parts: ((base or "") + "".join(parts)).encode("utf-8", "surrogatepass"),
        st.none() | st.builds(lambda v: f'<base href="{v}">', attr_values),
        st.lists(anchors | st.text(max_size=10) | st.just("<br/>"), max_size=5),
    ),
)


def attempt(expected: type[BaseException], func: Callable[[], T]) -> T | None:
    """`func()`, or None when it raised `expected` (a documented error); anything else fails."""
    try:
        return func()
    except expected:
        return None


def same_but_url(page: ProjectPage) -> ProjectPage:
    """The page with its file URLs blanked (our renderers link files to ourselves)."""
    return replace(page, files=tuple(f.with_url("") for f in page.files))


# ---- names ------------------------------------------------------------------------------------


@BASE
@given(st.text(max_size=40) | names)
@example("\u017f")  # LATIN SMALL LETTER LONG S: no ASCII letter
@example("\u212a")  # KELVIN SIGN
@example("\u0131")  # LATIN SMALL LETTER DOTLESS I
@example("a\n")
def test_normalize_project_accepts_exactly_ascii_project_names(name: str) -> None:
    """Valid names are ASCII letters and digits with `.`, `_`, `-` inside (core metadata spec);
    everything else is InvalidProjectName. A normalized name is lowercase ASCII with runs of
    separators folded to one `-`, and normalizing it again changes nothing."""
    try:
        normalized = normalize_project(name)
    except InvalidProjectName:
        assert not NAME_RE.fullmatch(name) or not name.isascii(), name
        return
    assert NAME_RE.fullmatch(name) and name.isascii(), (name, normalized)
    assert normalized == re.sub(r"[-_.]+", "-", name).lower()
    assert NORMALIZED_RE.fullmatch(normalized), normalized
    assert normalize_project(normalized) == normalized


# ---- filenames --------------------------------------------------------------------------------

SUFFIXES = [".whl", ".tar.gz", ".zip", ".tar.bz2", ".tgz", ".egg", ".exe", ".msi", ".rpm", ".dmg"]
filename_like = st.one_of(
    st.text(max_size=40),
    st.builds(
        lambda parts, suffix: "-".join(parts) + suffix,
        st.lists(st.text(st.characters(exclude_characters="-/\\"), max_size=10), max_size=6),
        st.sampled_from(SUFFIXES),
    ),
)


@few(200)
@given(filename_like, st.none() | st.text(max_size=12) | names)
@example("foo-1.0-py3-none-any.whl", None)
@example("-.whl", None)
@example("a-b-c-d-e-f-g.whl", None)
@example("foo-1.0.tar.gz", "bar")
def test_parse_filename_raises_only_invalid_filename(filename: str, project: str | None) -> None:
    info = attempt(InvalidFilename, lambda: filenames.parse_filename(filename, project))
    if info is not None:
        assert info.packagetype in filenames.PACKAGE_TYPES
        assert info.platforms <= filenames.PLATFORMS
        assert info.name == canonicalize_name(info.name)
    # Helpers that take whatever a request or a page says never raise.
    filenames.project_candidates(filename)
    for kind in filenames.PACKAGE_TYPES:
        filenames.python_version(filename, kind)
    filenames.platform_of_tag(filename)


@few(80)
@given(
    names,
    versions(),
    st.sampled_from(["py3", "py2.py3", "cp312"]),
    st.sampled_from(
        ["any", "win_amd64", "macosx_11_0_arm64", "manylinux_2_17_x86_64", "freebsd_13_x86_64"]
    ),
)
def test_wheel_and_sdist_filenames_round_trip(
    name: str, version: str, python: str, platform: str
) -> None:
    escaped = re.sub(r"[-_.]+", "_", name)
    wheel = f"{escaped}-{version}-{python}-none-{platform}.whl"
    info = filenames.parse_filename(wheel)
    assert (info.name, info.version, info.packagetype) == (
        canonicalize_name(name),
        Version(version),
        "bdist_wheel",
    )
    expected_platform = filenames.platform_of_tag(platform)
    assert info.platforms == ({expected_platform} if expected_platform else set())
    assert filenames.project_candidates(wheel) == (canonicalize_name(name),)
    assert filenames.python_version(wheel, "bdist_wheel") == python
    for suffix in (".tar.gz", ".zip"):
        sdist = f"{name}-{version}{suffix}"
        info = filenames.parse_filename(sdist, name)
        assert (info.name, info.version, info.packagetype) == (
            canonicalize_name(name),
            Version(version),
            "sdist",
        )
        assert canonicalize_name(name) in filenames.project_candidates(sdist)


@few(80)
@given(
    names,
    versions().filter(lambda v: "+" not in v),
    st.sampled_from(
        [
            ("-py3.8.egg", "bdist_egg", set()),
            ("-py3.8-linux_x86_64.egg", "bdist_egg", {"linux"}),
            ("-py2.7-win32.egg", "bdist_egg", {"windows"}),
            (".win-amd64.exe", "bdist_wininst", {"windows"}),
            (".win32.msi", "bdist_msi", {"windows"}),
            ("-1.noarch.rpm", "bdist_rpm", set()),
            (".tar.bz2", "sdist", set()),
            (".tgz", "sdist", set()),
        ]
    ),
)
def test_legacy_filenames_round_trip_given_the_project(
    name: str, version: str, legacy: tuple[str, str, set[str]]
) -> None:
    suffix, kind, platforms = legacy
    stem = re.sub(r"[-_.]+", "_", name) if kind == "bdist_egg" else name
    filename = f"{stem}-{version}{suffix}"
    info = filenames.parse_filename(filename, name)
    assert (info.name, info.version, info.packagetype, info.platforms) == (
        canonicalize_name(name),
        Version(version),
        kind,
        frozenset(platforms),
    )
    assert canonicalize_name(name) in filenames.project_candidates(filename)


@BASE
@given(st.text(max_size=20) | versions())
def test_parse_version_is_total_and_round_trips(text: str) -> None:
    parsed = filenames.parse_version(text)
    try:
        expected: Version | None = Version(text)
    except InvalidVersion:
        expected = None
    assert parsed == expected
    if parsed is not None:
        assert filenames.parse_version(str(parsed)) == parsed


# ---- simple pages: generated pages survive our renderers and parsers ----------------------------


def _unsigned(f: DistFile) -> DistFile:
    """What our pages say of a file's signature: never that one is there (we serve none)."""
    return msgspec.structs.replace(f, gpg_sig=None) if f.gpg_sig else f


def _expected_html(f: DistFile) -> DistFile:
    """What an HTML page can say of a file: one hash (sha256 first), one metadata hash, no size,
    no signature (`_unsigned`)."""

    def one(hashes: Mapping[str, str]) -> dict[str, str]:
        if not hashes:
            return {}
        algo = "sha256" if "sha256" in hashes else next(iter(hashes))
        return {algo: hashes[algo]}

    core: bool | Mapping[str, str] = f.core_metadata
    if isinstance(core, Mapping):
        core = one(core)
    return msgspec.structs.replace(
        _unsigned(f), url="", hashes=one(f.hashes), core_metadata=core, size=None
    )


@few(80)
@given(project_pages)
@example(ProjectPage("demo", (DistFile("d\u00e9mo-1.0.tar.gz", "x", yanked="r\u00e9voqu\u00e9"),)))
def test_html_page_round_trip(page: ProjectPage) -> None:
    body = simple_html.render_project_page(page, PREFIX)
    parsed = simple_html.parse_project_page(body, PAGE_URL, page.name)
    assert [f.url for f in parsed.files] == [
        urljoin(PAGE_URL, PREFIX + quote(f.filename)) for f in page.files
    ]
    assert same_but_url(parsed) == replace(page, files=tuple(map(_expected_html, page.files)))


@few(60)
@given(project_pages, st.lists(st.text(page_chars, max_size=8), max_size=3))
def test_json_page_round_trip(page: ProjectPage, page_versions: list[str]) -> None:
    body = simple_json.render_project_page(page, PREFIX, page_versions)
    parsed = simple_json.parse_project_page(body, PAGE_URL, "ignored")
    assert [f.url for f in parsed.files] == [
        urljoin(PAGE_URL, PREFIX + quote(f.filename)) for f in page.files
    ]
    expected = replace(
        page,
        name=canonicalize_name(page.name),  # PEP 691's name is normalized
        versions=tuple(page_versions),
        files=tuple(map(_unsigned, page.files)),
    )
    assert same_but_url(parsed) == same_but_url(expected)


@few(80)
@given(
    project_pages,
    st.none() | st.lists(page_text, max_size=3).map(tuple),
    st.none() | st.integers(0, 2**62),
    st.none() | page_text,
)
@example(ProjectPage("a", (DistFile("a-\ud800.whl", "https://h/a-\ud800.whl"),)), None, None, None)
@example(
    ProjectPage("a", (DistFile("a-1.whl", "https://h/a-1.whl", size=2**64),)), None, None, None
)
def test_a_page_comes_back_from_the_page_cache_as_it_was(
    page: ProjectPage, versions: tuple[str, ...] | None, serial: int | None, status: str | None
) -> None:
    """Pickled for the page cache (its files packed as msgpack; a lone surrogate or a size past
    64 bits, which msgpack cannot carry, the old way) and read back by another worker: the
    very same page."""
    page = replace(page, versions=versions, last_serial=serial, status=status, status_reason=status)
    assert pickle.loads(pickle.dumps(page, protocol=pickle.HIGHEST_PROTOCOL)) == page


@BASE
@given(st.lists(page_text.filter(lambda s: s == s.strip()), max_size=6))
@example(["caf\u00e9"])
def test_html_project_list_round_trip(project_names: list[str]) -> None:
    body = simple_html.render_project_list(project_names, "")
    assert simple_html.parse_project_list(body) == ProjectList(tuple(project_names))


@BASE
@given(st.lists(page_text, max_size=6))
def test_json_project_list_round_trip(project_names: list[str]) -> None:
    body = simple_json.render_project_list(project_names)
    assert simple_json.parse_project_list(body) == ProjectList(tuple(project_names))


def test_lone_surrogates_from_a_json_upstream_become_replacement_characters() -> None:
    """JSON can carry a lone surrogate, UTF-8 cannot: such text is made writable when read."""
    entry = {"filename": "a-1.0.tar.gz", "url": "a.tar.gz", "requires-python": "\ud83d"}
    body = json.dumps({"name": "\ud800x", "files": [entry], "versions": ["1\udfff"]}).encode()
    page = simple_json.parse_project_page(body, PAGE_URL, "a")
    assert (page.name, page.files[0].requires_python, page.versions) == (
        "\ufffdx",
        "\ufffd",
        ("1\ufffd",),
    )
    simple_html.render_project_page(page, PREFIX)  # both renderers write it
    simple_json.render_project_page(page, PREFIX, list(page.versions or ()))
    listed = json.dumps({"projects": [{"name": "\udc80abc"}, {"name": ""}]}).encode()
    assert simple_json.parse_project_list(listed) == ProjectList(("\ufffdabc",))


URL_PIECES = st.sampled_from(
    [*"abz09/.?;#=&%:@!$'()*+,-_~ \\", "//", "..", "./", "%2e", "\t", "\u00e9", "[::1]"]
)


@settings(BASE, max_examples=2000)
@given(
    st.sampled_from(
        ["https://", "http://", "https://files.example", "http://h:8080", "HTTPS://h"]
        + ["", "../", "../../", "../../../../../", "./", "a/", "/"]
    ),
    st.lists(URL_PIECES | st.just("#sha256=ab"), max_size=14),
)
@example("https://files.example", ["/", "a", "/", ".", "/", "b"])
@example("https://", [])
@example("https://h", ["?"])
@example("", ["a", ":"])  # a scheme, not a relative path
@example("../../", ["a", "/", "..", "/", "b"])
@example("../", ["a", ":", "/", "b", "#sha256=ab"])  # a colon after `../`: still a path
@example("../../../../../", ["a", "/", "b"])  # above the root
def test_a_link_is_resolved_as_urljoin_would_resolve_it(prefix: str, pieces: list[str]) -> None:
    """The page parsers skip urljoin for plain links (a big page's parse time): the URL and
    fragment they keep are always the ones urljoin and urldefrag give, against page URLs of
    every depth."""
    link = prefix + "".join(pieces)
    for base in (PAGE_URL, "https://h/", "http://h:1/a/b/c/d/", "https://h/x/page.html"):
        try:
            expected = urldefrag(urljoin(base, link))
        except ValueError:
            with pytest.raises(ValueError):  # a link urljoin cannot read: the parsers refuse it
                links.resolve(base, link)
            continue
        assert links.resolve(base, link) == tuple(expected), (base, link)
        if links.PLAIN_ABSOLUTE.fullmatch(link) is not None:  # taken as it is, without a look
            assert tuple(expected) == (link, ""), (base, link)


@settings(BASE, max_examples=1000)
@given(
    st.sampled_from(["https://f.example", "http://h:8", "", "../", "../../", "../../../../"]),
    st.lists(st.lists(URL_PIECES | st.just("\n"), max_size=8).map("".join), max_size=4),
)
@example("https://f.example", ["/p/a.whl", "/p/b/"])
@example("../../", ["packages/a/b.whl", "packages/c.whl"])
@example("../../", ["packages/a.whl\n../../packages/b.whl"])  # a newline in a link
@example("", ["a.whl", "../b.whl"])  # not as many `../` each
@example("../", ["a/..", "b"])
@example("../", ["a/[::1]"])
def test_a_pages_links_resolve_at_once_as_one_by_one(prefix: str, paths: list[str]) -> None:
    """`resolve_all` (a page's links in two matches) gives what `resolve` gives for each, or
    leaves the page to it."""
    page_links = [prefix + path for path in paths]
    for base in (PAGE_URL, "https://h/", "http://h:1/a/b/c/d/", "https://h/x/page.html"):
        try:
            expected: list[str] | None = [links.resolve(base, link)[0] for link in page_links]
        except ValueError:
            expected = None
        at_once = links.resolve_all(base, page_links)
        assert at_once is None or at_once == expected, (base, page_links)


@given(st.lists(st.text(max_size=6) | st.sampled_from(["a-1.0.whl", "a b", "\u00e9"]), max_size=4))
@example(["a.whl\nb.whl"])
@example(["a\x85"])  # whitespace str.strip strips, no control character of ours
@example(["a", ""])
@example([])
def test_names_are_offerable_at_once_as_one_by_one(names: list[str]) -> None:
    assert filenames.all_offerable(names) is all(map(filenames.offerable, names))


@given(
    st.lists(
        st.text("0123456789abcdef", min_size=64, max_size=64).map(lambda d: {"sha256": d})
        | st.dictionaries(st.sampled_from(["sha256", "md5", "SHA256"]), any_text | st.integers()),
        max_size=4,
    )
)
@example([{"sha256": "a" * 64 + "\n" + "b" * 64}])  # two digests' lines in one value
@example([{"sha256": "a" * 64}, {}])
@example([])
def test_hashes_are_one_sha256_at_once_as_one_by_one(raws: list[dict[str, Any]]) -> None:
    assert models.all_one_sha256(raws) is all(map(models.one_sha256, raws))


@given(st.text() | st.from_regex("[A-Za-z0-9_.~+-]+", fullmatch=True))
@example("a-1.0+local.whl")
@example("a-1.0.whl\n")
def test_our_file_links_quote_as_quote_does(filename: str) -> None:
    assert links.quoted(filename) == quote(filename)


@given(st.text())
@example("a&b<c>\"d'")
def test_html_attributes_escape_as_html_escape_does(text: str) -> None:
    assert simple_html._escaped(text) == html.escape(text)


# ---- simple pages: whatever an upstream sends --------------------------------------------------


def _serve_both(page: ProjectPage) -> None:
    """What the proxy does with a parsed upstream page: render it in both formats; the JSON one
    reads back as the same page, the HTML one is a fixed point of parse-then-render."""
    body = simple_json.render_project_page(page, PREFIX, [])
    again = simple_json.parse_project_page(body, PAGE_URL, page.name)
    served = replace(page, name=canonicalize_name(page.name), versions=(), last_serial=None)
    assert same_but_url(again) == same_but_url(served)  # PEP 691's name is normalized
    html = simple_html.render_project_page(page, PREFIX)
    once = simple_html.parse_project_page(html, PAGE_URL, page.name)
    twice = simple_html.parse_project_page(
        simple_html.render_project_page(once, PREFIX), PAGE_URL, page.name
    )
    assert twice == once


@few(150)
@given(json_project_pages.map(json.dumps).map(str.encode) | st.binary(max_size=100))
@example(b'{"files": [{"filename": "a-1.0.tar.gz", "url": "http://[::1"}]}')
@example(b"[" * 100_000)
@example(b'{"files": [{"filename": "a-1.0.tar.gz", "url": "a", "requires-python": 3}]}')
@example(b'{"files": [{"filename": "a-1.0.tar.gz", "url": "a", "upload-time": 1700000000}]}')
@example(b'{"files": [{"filename": "a\\ud800-1.0.tar.gz", "url": "a"}]}')
def test_json_page_from_upstream(body: bytes) -> None:
    page = attempt(InvalidPage, lambda: simple_json.parse_project_page(body, PAGE_URL, "demo"))
    if page is not None:
        _serve_both(page)


@few(300)
@given(
    st.fixed_dictionaries(
        {"files": st.lists(typed_file_entries, max_size=4) | st.lists(declined_file_entries)},
        optional={"name": json_values, "versions": json_values, "meta": json_values},
    ).map(json.dumps)
    | json_project_pages.map(json.dumps)
)
def test_a_json_page_reads_the_same_typed_or_tolerantly(text: str) -> None:
    """The typed reading (msgspec, for speed) gives what the tolerant one gives, or declines."""
    body = text.encode()

    def read(typed: bool) -> ProjectPage | None:
        return attempt(
            InvalidPage, lambda: simple_json.parse_project_page(body, PAGE_URL, "d", typed=typed)
        )

    assert read(True) == read(False)


@pytest.mark.parametrize(
    "link",
    [
        f"https://files.example.org/packages/ab/ab/{'ab' * 30}/a-1.0-py3-none-any.whl",
        "../../packages/ab/a-1.0-py3-none-any.whl",  # pypiserver's
    ],
)
def test_pypi_shaped_pages_are_read_typed_and_at_once(link: str) -> None:
    """PyPI's and pypiserver's pages take the fast readings, typed and a whole page at a time (a
    regression would only show as time), with the result of the reading entry by entry."""
    digest = "ab" * 32
    entry = {
        "filename": "a-1.0-py3-none-any.whl",
        "url": link,
        "hashes": {"sha256": digest},
        "requires-python": ">=3.9",
        "core-metadata": {"sha256": digest},
        "data-dist-info-metadata": {"sha256": digest},
        "dist-info-metadata": {"sha256": digest},
        "yanked": False,
        "size": 612,
        "upload-time": "2024-01-01T00:00:00.000000Z",
        "provenance": None,
    }
    other: dict[str, Any] = {"filename": "a-1.1.tar.gz", "yanked": "broken"}
    other |= {"url": link.replace("1.0-py3-none-any.whl", "1.1.tar.gz")}
    other["hashes"] = {"sha256": "cd" * 32}
    page: dict[str, Any] = {"meta": {"api-version": "1.4", "_last-serial": 7}, "name": "a"}
    page["files"] = [entry, other]
    body = json.dumps({**page, "versions": ["1.0"], "project-status": {"status": "active"}})
    read = simple_json._typed(body.encode(), PAGE_URL)
    assert read is not None
    assert read[0][0].core_metadata == {"sha256": digest}
    assert read[0][1].url == urljoin(PAGE_URL, other["url"])
    decoded = simple_json._TYPED.decode(body.encode()).files
    at_once = simple_json._plain_files(decoded, PAGE_URL)
    assert at_once == tuple(simple_json._cleaned(f, PAGE_URL) for f in decoded)
    assert (
        simple_json.parse_project_page(body.encode(), PAGE_URL, "a", typed=False).files == (read[0])
    )


@few(200)
@given(html_documents)
@example(b'<a href="http://[::1">a-1.0.tar.gz</a>')
@example(b'<base href="http://[x"><a href="a-1.0.tar.gz">a</a>')
@example(b'<a href="a-1.0.tar.gz" data-yanked="\xc3\xa9">a-1.0.tar.gz</a>')
@example(b"<a href=\x01>")  # names no file: not offered
@example(b'<a href="\x00 ">')  # U+FFFD and a space: not a name HTML carries back unchanged
def test_html_page_from_upstream(body: bytes) -> None:
    page = attempt(InvalidPage, lambda: simple_html.parse_project_page(body, PAGE_URL, "demo"))
    if page is not None:
        _serve_both(page)


@few(120)
@given(
    st.one_of(
        st.binary(max_size=100),
        html_documents,
        st.fixed_dictionaries(
            {}, optional={"projects": st.lists(json_values | st.builds(dict, name=json_values))}
        )
        .map(json.dumps)
        .map(str.encode),
        st.lists(st.builds(dict, name=typed_texts | st.sampled_from(["a", "B.c"])))
        .map(lambda projects: json.dumps({"projects": projects}))
        .map(str.encode),
    )
)
@example(b'{"projects": [{"name": "\\ud800"}]}')
@example(b'{"projects": ' + b"[" * 100_000 + b"}")
def test_project_lists_from_upstream(body: bytes) -> None:
    typed = attempt(InvalidPage, lambda: simple_json.parse_project_list(body))
    assert typed == attempt(InvalidPage, lambda: simple_json.parse_project_list(body, typed=False))
    for parse in (simple_json.parse_project_list, simple_html.parse_project_list):
        listed = attempt(InvalidPage, functools.partial(parse, body))
        if listed is None:
            continue
        names = list(listed.names)
        assert simple_json.parse_project_list(simple_json.render_project_list(names)) == listed
        once = simple_html.parse_project_list(simple_html.render_project_list(names, ""))
        html = simple_html.render_project_list(once.names, "")
        assert simple_html.parse_project_list(html) == once  # a fixed point after one pass


@BASE
@given(st.dictionaries(any_text | st.sampled_from(sorted(DIGEST_LENGTHS)), any_text, max_size=4))
def test_clean_hashes_keeps_only_well_formed_digests(raw: dict[str, str]) -> None:
    cleaned = clean_hashes(cast(Mapping[object, object], raw))
    for algo, value in cleaned.items():
        assert DIGEST_LENGTHS[algo] == len(value) and set(value) <= set("0123456789abcdef")
    assert clean_hashes(cast(Mapping[object, object], cleaned)) == cleaned


# ---- filters ----------------------------------------------------------------------------------

rule_texts = st.one_of(
    st.text(max_size=30),
    st.from_regex(r"[A-Za-z0-9._*?-]{1,12}", fullmatch=True),
    st.builds(
        lambda n, op, v: f"{n}{op}{v}",
        names,
        st.sampled_from(["", "==", ">=", "~=", "!=", "<", "===", ">=1,<"]),
        st.text("0123456789.*abrcdevpost+", max_size=8),
    ),
)


@few(200)
@given(rule_texts)
@example("a" * 10_000)
@example("(" * 2000)
def test_parse_rule_raises_only_value_error(text: str) -> None:
    rule = attempt(ValueError, lambda: parse_rule(text))
    if rule is None:
        return
    if rule.is_pattern:
        assert rule.specifier is None
    else:
        assert rule.name == canonicalize_name(rule.name)
        assert rule.matches_name(canonicalize_name(rule.name))


@few(80)
@given(
    st.lists(rule_texts, max_size=3),
    st.lists(rule_texts, max_size=3),
    st.booleans(),
    st.lists(st.sampled_from(sorted(filenames.PACKAGE_TYPES)) | st.text(max_size=8), max_size=2),
    st.lists(st.sampled_from(sorted(filenames.PLATFORMS)) | st.text(max_size=8), max_size=2),
    names,
    st.lists(filename_like | st.builds(lambda v: f"demo-{v}.tar.gz", versions()), max_size=5),
    st.lists(st.text(max_size=8) | versions(), max_size=4),
)
def test_filters_build_and_apply(
    includes: list[str],
    excludes: list[str],
    prereleases: bool,
    package_types: list[str],
    exclude_platforms: list[str],
    project: str,
    files: list[str],
    page_versions: list[str],
) -> None:
    spec = attempt(
        ValueError,
        lambda: FilterSpec.build(
            includes=includes,
            excludes=excludes,
            prereleases=prereleases,
            package_types=package_types,
            exclude_platforms=exclude_platforms,
        ),
    )
    if spec is None:
        return
    name = canonicalize_name(project)
    page = ProjectPage(project, tuple(DistFile(f, "u") for f in files), tuple(page_versions))
    shown = spec.filter_page(page)
    assert all(f in page.files for f in shown.files)
    if not spec.is_trivial:  # no filters: the upstream's page as it is
        assert all(spec.allows_file(name, f.filename) for f in shown.files)
    assert set(shown.versions or ()) <= set(page_versions)
    if not spec.allows_project(name):  # "False when no version of the project can pass"
        candidates = [None, *(filenames.parse_version(v) for v in page_versions)]
        assert not any(spec.allows_version(name, v) for v in candidates)
    listed = spec.listed_names()
    if listed is not None:
        assert all(spec.allows_project(canonicalize_name(n)) for n in listed)
    assert FilterSpec().filter_page(page) == page


# ---- core metadata ----------------------------------------------------------------------------

header_text = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cc", "Zl", "Zp"]), min_size=1, max_size=20
).filter(lambda s: s == s.lstrip())


@st.composite
def metadata_files(draw: st.DrawFn) -> tuple[bytes, dict[str, Any]]:
    """A METADATA text and the fields it states."""
    fields: dict[str, Any] = {
        "name": draw(names),
        "version": draw(versions()),
        "metadata_version": draw(st.sampled_from(["1.0", "2.1", "2.2", "2.3", "2.4"])),
        "summary": draw(st.none() | header_text),
        "author": draw(st.none() | header_text),
        "license": draw(st.none() | header_text),
        "requires_python": draw(st.none() | st.sampled_from([">=3.8", "<4,>=3", "~=3.11"])),
        "classifiers": tuple(draw(st.lists(header_text, max_size=3))),
        "requires_dist": tuple(
            draw(st.lists(st.builds(lambda n, s: n + s, names, st.sampled_from(["", ">=1"]))))
        ),
        "description": draw(st.none() | st.text(page_chars, min_size=1, max_size=60)),
    }
    lines = [
        f"Metadata-Version: {fields['metadata_version']}",
        f"Name: {fields['name']}",
        f"Version: {fields['version']}",
    ]
    for key, header in (
        ("summary", "Summary"),
        ("author", "Author"),
        ("license", "License"),
        ("requires_python", "Requires-Python"),
    ):
        if fields[key] is not None:
            lines.append(f"{header}: {fields[key]}")
    lines += [f"Classifier: {c}" for c in fields["classifiers"]]
    lines += [f"Requires-Dist: {r}" for r in fields["requires_dist"]]
    text = "\n".join(lines) + "\n"
    if fields["description"] is not None:
        text += "\n" + fields["description"]
    return text.encode(), fields


def _check_metadata(meta: metadata.PackageMetadata, fields: dict[str, Any]) -> None:
    for key, value in fields.items():
        assert getattr(meta, key) == value, key


@few(50)
@given(metadata_files())
def test_parse_metadata_reads_what_was_written(generated: tuple[bytes, dict[str, Any]]) -> None:
    raw, fields = generated
    meta = metadata.parse_metadata(raw)
    _check_metadata(meta, fields)
    assert meta.raw == raw
    metadata.check_filename_matches(meta, f"{meta.name}-{meta.version}.tar.gz")


@few(100)
@given(st.binary(max_size=300) | metadata_files().map(lambda g: g[0]) | any_text.map(str.encode))
@example(b"Name: \xff\nVersion: 1\n")
@example(b"Name: a\nName: b\nVersion: 1\n")
def test_parse_metadata_raises_only_invalid_distribution(raw: bytes) -> None:
    meta = attempt(InvalidDistribution, lambda: metadata.parse_metadata(raw))
    if meta is not None:
        assert canonicalize_name(meta.name, validate=True)
        Version(meta.version)


def _wheel_bytes(name: str, version: str, raw: bytes, compression: int) -> bytes:
    buf = io.BytesIO()
    dist_info = f"{re.sub(r'[-_.]+', '_', name)}-{version}.dist-info"
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        zf.writestr(f"{dist_info}/METADATA", raw)
        zf.writestr(f"{dist_info}/WHEEL", "Wheel-Version: 1.0\n")
    return buf.getvalue()


def _sdist_bytes(
    name: str, version: str, raw: bytes, pax: Mapping[str, str] | None = None
) -> bytes:
    """A gzipped tar sdist holding `<name>-<version>/PKG-INFO`, with `pax` headers if given."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(f"{name}-{version}/PKG-INFO")
        info.size = len(raw)
        if pax:
            info.pax_headers = dict(pax)
        tar.addfile(info, io.BytesIO(raw))
    return buf.getvalue()


def _read(data: bytes, filename: str) -> metadata.PackageMetadata:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "file"
        path.write_bytes(data)
        return metadata.read_metadata(path, filename)


COMPRESSIONS = [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA]


@few(40)
@given(metadata_files(), st.sampled_from(COMPRESSIONS))
def test_read_metadata_of_generated_archives(
    generated: tuple[bytes, dict[str, Any]], compression: int
) -> None:
    raw, fields = generated
    name, version = fields["name"], fields["version"]
    wheel = f"{re.sub(r'[-_.]+', '_', name)}-{version}-py3-none-any.whl"
    for data, filename in (
        (_wheel_bytes(name, version, raw, compression), wheel),
        (_sdist_bytes(name, version, raw), f"{name}-{version}.tar.gz"),
    ):
        meta = _read(data, filename)
        _check_metadata(meta, fields)
        metadata.check_filename_matches(meta, filename)


@st.composite
def damaged(draw: st.DrawFn, data: bytes) -> bytes:
    """`data` with a few bytes changed, or cut short."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(out) - 1))
        out[i] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        out = out[: draw(st.integers(0, len(out)))]
    return bytes(out)


SAMPLE_RAW = b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n\n" + b"text\n" * 40
SAMPLE_WHEELS = [_wheel_bytes("demo", "1.0", SAMPLE_RAW, c) for c in COMPRESSIONS]
SAMPLE_SDIST = _sdist_bytes("demo", "1.0", SAMPLE_RAW)


def _lzma_wheel_with_bad_data() -> bytes:
    """A wheel whose METADATA is LZMA-compressed, with its compressed bytes spoiled."""
    data = bytearray(SAMPLE_WHEELS[3])
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf:
        info = zf.infolist()[0]
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    for i in range(start + 4, start + 20):
        data[i] ^= 0xFF
    return bytes(data)


@few(150)
@given(st.one_of(*(damaged(w) for w in SAMPLE_WHEELS)))
@example(_lzma_wheel_with_bad_data())
def test_read_metadata_of_damaged_wheels(data: bytes) -> None:
    attempt(InvalidDistribution, lambda: _read(data, "demo-1.0-py3-none-any.whl"))


PAX_KEYS = [
    "GNU.sparse.map",
    "GNU.sparse.size",
    "GNU.sparse.offset",
    "GNU.sparse.numbytes",
    "GNU.sparse.major",
    "GNU.sparse.minor",
    "GNU.sparse.name",
    "GNU.sparse.realsize",
    "size",
    "path",
    "linkpath",
    "mtime",
    "uid",
    "hdrcharset",
]


def _sdist_with_pax(pax: dict[str, str]) -> bytes:
    try:
        return _sdist_bytes("demo", "1.0", SAMPLE_RAW, pax)
    except (ValueError, tarfile.TarError):  # headers tarfile itself will not write
        return SAMPLE_SDIST


@few(150)
@given(
    damaged(SAMPLE_SDIST)
    | st.dictionaries(
        st.sampled_from(PAX_KEYS),
        st.text(st.characters(codec="utf-8", exclude_characters="\n"), max_size=10)
        | st.sampled_from(["0", "1", "1,2", "a,b", "-1", "99999999999"]),
        max_size=3,
    ).map(_sdist_with_pax)
)
@example(_sdist_bytes("demo", "1.0", SAMPLE_RAW, {"GNU.sparse.map": "a,b", "GNU.sparse.size": "1"}))
def test_read_metadata_of_damaged_sdists(data: bytes) -> None:
    attempt(InvalidDistribution, lambda: _read(data, "demo-1.0.tar.gz"))


# ---- the PyPI JSON API ------------------------------------------------------------------------

upload_times = st.one_of(
    st.none(),
    any_text,
    st.builds(
        lambda when, minutes: when.replace(tzinfo=timezone(timedelta(minutes=minutes))).isoformat(),
        st.datetimes(),
        st.integers(-23 * 60, 23 * 60),
    ),
    st.datetimes().map(datetime.isoformat),
)
release_files = st.builds(
    pypi_json.ReleaseFile,
    filename=st.builds(
        lambda v, s: f"demo-{v}{s}",
        versions() | st.text(max_size=5),
        st.sampled_from([".tar.gz", "-py3-none-any.whl", ".egg"]),
    ),
    version=versions() | st.text(max_size=6),
    packagetype=st.sampled_from(sorted(filenames.PACKAGE_TYPES)),
    sha256=st.text("0123456789abcdef", max_size=64),
    size=st.none() | st.integers(0, 2**40),
    requires_python=st.none() | any_text,
    yanked=st.booleans(),
    yanked_reason=st.none() | any_text,
    upload_time=upload_times,
    url=any_text,
)


@few(60)
@given(st.lists(st.text(max_size=8) | versions(), max_size=8))
def test_sort_versions(values: list[str]) -> None:
    ordered = pypi_json.sort_versions(values)
    assert sorted(ordered) == sorted(set(values))
    valid = [v for v in ordered if filenames.parse_version(v) is not None]
    assert ordered[: len(valid)] == valid  # valid versions first
    assert [Version(v) for v in valid] == sorted(Version(v) for v in valid)
    assert ordered[len(valid) :] == sorted(ordered[len(valid) :])


_SDIST = pypi_json.ReleaseFile(
    "demo-1.0.tar.gz", "1.0", "sdist", "", None, None, False, None, None, "u"
)


@few(60)
@given(
    st.lists(release_files, max_size=5),
    st.none() | st.text(max_size=6) | versions(),
    st.none() | st.lists(st.text(max_size=6) | versions(), max_size=3),
)
@example(
    [
        pypi_json.ReleaseFile(
            "demo-1.0.tar.gz",
            "1.0",
            "sdist",
            "",
            None,
            None,
            False,
            None,
            "0001-01-01T00:00:00+01:00",
            "u",
        )
    ],
    None,
    None,
)
@example(
    [
        pypi_json.ReleaseFile(
            "demo-1.0.tar.gz",
            "1.0",
            "sdist",
            "",
            None,
            None,
            False,
            None,
            "0900-01-01T00:00:00",
            "u",
        )
    ],
    None,
    None,
)
@example(  # one release spelt two ways, and a legacy version, both listed
    [
        _SDIST,
        replace(_SDIST, filename="demo-2004d.tar.gz", version="2004d"),
        replace(_SDIST, filename="demo-1.0.0-py3-none-any.whl", version="1.0.0"),
    ],
    None,
    ["1.0.0", "2004d"],
)
def test_render_project(
    files: list[pypi_json.ReleaseFile], version: str | None, extra: list[str] | None
) -> None:
    try:
        data = pypi_json.render_project("demo", files, None, version=version, versions=extra)
    except pypi_json.UnknownVersion:
        assert version is not None
        return
    json.dumps(data)
    shown = data["info"]["version"]
    if version is not None:
        assert shown is not None and filenames.parse_version(shown) == filenames.parse_version(
            version
        )
        assert "releases" not in data
    else:
        every = [f.version for f in files] + list(extra or ())
        keys = list(data["releases"])
        assert keys == pypi_json.sort_versions(keys)
        # One key per release (a PEP 440 version however spelt, or a legacy string), each
        # holding every file of that release.
        releases = [filenames.release_of(v) for v in keys]
        assert len(set(releases)) == len(keys)
        assert set(releases) == {filenames.release_of(v) for v in every}
        for key, release in zip(keys, releases, strict=True):
            held = [e["filename"] for e in data["releases"][key]]
            assert held == [f.filename for f in files if filenames.release_of(f.version) == release]
        # pypi.org's choice: the latest final release with a file not yanked, if there is one
        final = [
            Version(f.version)
            for f in files
            if filenames.parse_version(f.version) is not None
            and not f.yanked
            and not Version(f.version).is_prerelease
        ]
        if final:
            assert Version(shown) == max(final)
    for entry in data["urls"] + [e for es in data.get("releases", {}).values() for e in es]:
        # `YYYY-MM-DDTHH:MM:SS` and ISO 8601 with a Z, in UTC ("_times")
        if entry["upload_time"] is not None:
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", entry["upload_time"])
            assert entry["upload_time_iso_8601"].endswith("Z")
            stamp = datetime.fromisoformat(entry["upload_time_iso_8601"].removesuffix("Z"))
            assert stamp.replace(tzinfo=UTC).isoformat()[:19] == entry["upload_time"]


# ---- content negotiation ----------------------------------------------------------------------

OFFERED = {
    "text/html": Format.HTML,
    "application/vnd.pypi.simple.v1+html": Format.V1_HTML,
    "application/vnd.pypi.simple.v1+json": Format.V1_JSON,
    "application/vnd.pypi.simple.latest+html": Format.V1_HTML,
    "application/vnd.pypi.simple.latest+json": Format.V1_JSON,
}
media_ranges = st.sampled_from(
    [*OFFERED, "*/*", "text/*", "application/*", "application/json", "image/png", "*"]
)
q_values = st.sampled_from(["", ";q=0", ";q=0.0", ";q=0.5", ";q=1", ";q=0.001", ";level=1"])
accept_items = st.tuples(media_ranges, q_values)


@few(250)
@given(
    st.none()
    | st.text(max_size=40)
    | st.lists(accept_items, max_size=4).map(lambda items: ", ".join(m + q for m, q in items))
    | st.lists(
        st.text(max_size=8) | st.sampled_from([";q=nan", ";q=inf", ";q=-1", ";q=1e999"])
    ).map("".join),
    st.none() | st.text(max_size=20) | st.sampled_from([*OFFERED, " text/HTML ", "x"]),
)
@example("text/html;q=nan", None)
@example("text/html;q=1e999, application/vnd.pypi.simple.v1+json", None)
@example(",,,;;;===", None)
def test_choose_format_is_total(accept: str | None, format_param: str | None) -> None:
    chosen = choose_format(accept, format_param)
    assert chosen is None or isinstance(chosen, Format)
    if format_param:
        wanted = format_param.strip().lower().replace(" ", "+")
        assert chosen is OFFERED.get(wanted)
    elif not accept or not accept.strip():
        assert chosen is Format.HTML


@few(50)
@given(st.sampled_from(sorted(OFFERED)), st.sampled_from(["", ";q=1", ";q=0.5", ";q=0.01"]))
def test_choose_format_honours_a_single_offered_type(media_type: str, q: str) -> None:
    assert choose_format(media_type + q) is OFFERED[media_type]
    assert choose_format(media_type.upper() + q) is OFFERED[media_type]  # case-insensitive
    assert choose_format(f"image/png, {media_type}{q}") is OFFERED[media_type]


def _q(param: str) -> float:
    return float(param.split("=")[1]) if "q=" in param else 1.0


@few(200)
@given(st.lists(accept_items, min_size=1, max_size=5))
def test_choose_format_chooses_what_the_client_accepts(items: list[tuple[str, str]]) -> None:
    """Whatever is chosen, some range of the header accepts it with a q above 0; and when no
    range accepts any offered type, the answer is None (406)."""
    chosen = choose_format(", ".join(m + q for m, q in items))

    def accepts(media_range: str, offer: str) -> bool:
        if media_range in ("*/*", "*"):
            return True
        if media_range.endswith("/*"):
            return offer.startswith(media_range[:-1])
        return media_range == offer

    acceptable = {
        OFFERED[offer]
        for offer in ACCEPTABLE
        for media_range, q in items
        if accepts(media_range, offer) and _q(q) > 0
    }
    if chosen is not None:
        assert chosen in acceptable, (items, chosen)
    if not acceptable:
        assert chosen is None, (items, chosen)


# ---- configuration ----------------------------------------------------------------------------

size_texts = st.builds(
    lambda n, space, unit: f"{n}{space}{unit}",
    st.integers(0, 10**6).map(str) | st.text("0123456789", min_size=1, max_size=400),
    st.sampled_from(["", " "]),
    st.sampled_from(["", "b", "KB", "mb", "GB", "tb", "KiB", "MiB", "gib", "TiB", "xb"]),
)
odd_values = st.one_of(
    st.text(max_size=12),
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=2),
)


@few(200)
@given(size_texts | odd_values)
@example("9" * 400)
@example("1" + "0" * 308 + "TB")
def test_parse_size(value: object) -> None:
    size = attempt(ValueError, lambda: config.parse_size(value))
    if size is not None:
        assert isinstance(size, int) and size >= 0


duration_texts = st.builds(
    lambda n, unit: f"{n}{unit}",
    st.integers(0, 10**6).map(str) | st.from_regex(r"[0-9]{1,400}(\.[0-9]{1,5})?", fullmatch=True),
    st.sampled_from(["", "ms", "s", "m", "h", "d", "w"]),
)


@few(200)
@given(duration_texts | odd_values)
@example("9" * 400)
@example(10**400)
@example(float("inf"))
def test_parse_duration(value: object) -> None:
    """Seconds, a finite number: a timeout or TTL of infinity breaks every use of it
    (`int(ttl)` in Cache-Control, socket timeouts)."""
    seconds = attempt(ValueError, lambda: config.parse_duration(value))
    if seconds is not None:
        assert isinstance(seconds, float) and seconds >= 0 and math.isfinite(seconds), seconds


@BASE
@given(
    st.text(max_size=30) | st.from_regex(r"/?[a-z.]{1,5}(/[a-z._-]{0,5}){0,3}/?", fullmatch=True)
)
def test_parse_base_path(value: str) -> None:
    path = attempt(ValueError, lambda: access.parse_base_path(value))
    if path is not None:
        assert access.parse_base_path(path) == path
        assert all(part not in ("", "..") for part in path.split("/"))
        assert not path.startswith("/") and not path.endswith("/")


def _fields(cls: type) -> list[str]:
    return [f.name for f in fields_of(cls)]


SECTION_KEYS = {name: _fields(cls) for name, cls in config.SECTIONS.items()}
REMOTE_KEYS = ["name", *_fields(config.RemoteSettings)]
DIST_KEYS = ["name", *_fields(config.DistributionSettings)]
interesting_strings = st.sampled_from(
    [
        "10m",
        "20GB",
        "9" * 400,
        "inf",
        "http://[::1",
        "https://pypi.org/",
        "acme-*",
        "django~=2.0",
        "[" * 5000,
        '{"X-A": "b"}',
        '[{"X-A": 1}]',
        "pypi",
        "team/pypi",
        "127.0.0.1:0",
        "on_demand",
        "linux",
        "sdist",
        "",
    ]
)
utf8_text = st.text(st.characters(codec="utf-8"), max_size=12)
toml_scalars = st.one_of(
    utf8_text,
    interesting_strings,
    st.integers(-(2**63), 2**63 - 1),
    st.floats(),
    st.booleans(),
)
toml_values = st.recursive(
    toml_scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(utf8_text | interesting_strings, inner, max_size=3)
    ),
    max_leaves=6,
)


def _table(keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.sampled_from(keys) | utf8_text, toml_values, max_size=4)


config_tables = st.dictionaries(
    st.sampled_from([*config.SECTIONS, "remotes", "distributions"]) | utf8_text,
    st.one_of(
        *(_table(keys) for keys in SECTION_KEYS.values()),
        st.lists(_table(REMOTE_KEYS) | toml_values, max_size=2),
        st.lists(_table(DIST_KEYS) | toml_values, max_size=2),
        toml_values,
    ),
    max_size=4,
)
env_names = st.lists(
    st.sampled_from(
        [
            *(s.upper() for s in config.SECTIONS),
            "REMOTES",
            "DISTRIBUTIONS",
            "PYPI",
            "BIND",
            "MAX_SIZE",
            "INDEX_TTL",
            "URL",
            "HEADERS",
            "INCLUDES",
            "BASE_PATH",
            "X",
            "",
        ]
    ),
    min_size=1,
    max_size=4,
).map(lambda parts: "PULLTHROUGH_" + "__".join(parts))
environments = st.dictionaries(env_names, toml_scalars.map(str) | interesting_strings, max_size=3)


def _toml_string(text: str) -> str:
    out = []
    for c in text:
        if c in '"\\':
            out.append("\\" + c)
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    assert isinstance(value, dict)
    return "{" + ", ".join(f"{_toml_string(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"


def _toml(data: dict[str, Any]) -> str:
    return "".join(f"{_toml_string(k)} = {_toml_value(v)}\n" for k, v in data.items())


@few(150)
@given(config_tables)
@example({"remotes": 5})
@example({"distributions": True, "remotes": []})
@example({"cache": {"max_size": "9" * 400}})
def test_build_settings_raises_only_config_error(data: dict[str, Any]) -> None:
    built = attempt(ConfigError, lambda: config.build_settings(data))
    assert built is None or isinstance(built, Settings)


@few(100)
@given(config_tables, environments)
@example({"server": 5}, {"PULLTHROUGH_SERVER__BIND": "127.0.0.1:1"})
@example({"remotes": [1]}, {"PULLTHROUGH_REMOTES__PYPI__URL": "https://pypi.org/"})
@example({}, {"PULLTHROUGH_REMOTES__PYPI__INCLUDES": "[" * 5000})
@example({}, {"PULLTHROUGH_CACHE__INDEX_TTL": "9" * 400})
def test_load_settings_raises_only_config_error(
    data: dict[str, Any], environ: dict[str, str]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pullthrough.toml"
        path.write_text(_toml(data), encoding="utf-8")
        loaded = attempt(ConfigError, lambda: config.load_settings(path, environ=environ))
    if loaded is not None:
        assert isinstance(loaded, Settings)
        assert math.isfinite(loaded.cache.index_ttl)
