"""PEP 503 HTML and PEP 691 JSON: parsing upstream pages, rendering ours, and round trips."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pullthrough.core import simple_html, simple_json
from pullthrough.core.models import DistFile, ProjectPage, project_versions

PAGE_URL = "https://index.example/simple/lib/"
FULL = DistFile(
    filename="lib-1.0-py3-none-any.whl",
    url="https://files.example/packages/ab/lib-1.0-py3-none-any.whl",
    hashes={"sha256": "a" * 64},
    requires_python=">=3.8,<4",
    yanked="broken build",
    core_metadata={"sha256": "b" * 64},
    size=1234,
    upload_time="2024-01-02T03:04:05.000000Z",
    gpg_sig=False,
    provenance="https://index.example/integrity/lib/1.0/lib-1.0-py3-none-any.whl/provenance",
)
PLAIN = DistFile("lib-0.9.tar.gz", "https://files.example/packages/cd/lib-0.9.tar.gz")
PAGE = ProjectPage("Lib", (FULL, PLAIN), versions=("0.9", "1.0"))


def test_html_upstream_page_with_every_attribute() -> None:
    body = f"""<!DOCTYPE html><html><head><base href="https://files.example/packages/">
    <title>Links for Lib</title></head><body>
    <a href="ab/lib-1.0-py3-none-any.whl#sha256={"A" * 64}" data-requires-python="&gt;=3.8"
       data-dist-info-metadata="sha256={"b" * 64}" data-yanked="" data-gpg-sig="true">lib-1.0-py3-none-any.whl</a>
    <a href="/other/lib-0.9.tar.gz" data-core-metadata="true">lib-0.9.tar.gz</a>
    <a href="cd/lib-0.8.zip#md5={"0123" * 8}" data-yanked="security issue">lib-0.8.zip</a>
    </body></html>""".encode()
    page = simple_html.parse_project_page(body, PAGE_URL, "lib")
    first, second, third = page.files
    assert first.url == "https://files.example/packages/ab/lib-1.0-py3-none-any.whl"
    assert first.hashes == {"sha256": "a" * 64}
    assert first.requires_python == ">=3.8"
    assert first.core_metadata == {"sha256": "b" * 64}
    assert first.yanked is True
    assert first.gpg_sig is True
    assert second.url == "https://files.example/other/lib-0.9.tar.gz"
    assert second.core_metadata is True and second.yanked is False
    assert third.hashes == {"md5": "0123" * 8} and third.yanked == "security issue"


def test_html_links_to_no_distribution_file_are_not_files() -> None:
    """PEP 503 pages may carry other HTML: a link back to the index or to help is no file (it
    was offered as one, named "Back to index", a 404 at our end). A link whose text is not its
    file's name is named by its URL, as pip names it."""
    body = b"""<html><body>
    <a href="../">Back to index</a>
    <a href="https://help.example/">Help</a>
    <a href="https://files.example/lib-1.0-py3-none-any.whl#sha256=%s">lib-1.0-py3-none-any.whl</a>
    <a href="https://files.example/lib-0.9.tar.gz">Download 0.9</a>
    </body></html>""" % (b"a" * 64)
    page = simple_html.parse_project_page(body, PAGE_URL, "lib")
    assert [f.filename for f in page.files] == ["lib-1.0-py3-none-any.whl", "lib-0.9.tar.gz"]


def test_json_upstream_page() -> None:
    body = json.dumps(
        {
            "meta": {"api-version": "1.1", "_last-serial": 42},
            "name": "Lib",
            "files": [
                {
                    "filename": "lib-1.0-py3-none-any.whl",
                    "url": "../../packages/lib-1.0-py3-none-any.whl",
                    "hashes": {"sha256": "A" * 64},
                    "requires-python": ">=3.8",
                    "dist-info-metadata": {"sha256": "b" * 64},
                    "yanked": "reason",
                    "size": 10,
                    "upload-time": "2024-01-02T03:04:05Z",
                }
            ],
            "versions": ["1.0"],
        }
    ).encode()
    page = simple_json.parse_project_page(body, PAGE_URL, "lib")
    (f,) = page.files
    assert f.url == "https://index.example/packages/lib-1.0-py3-none-any.whl"
    assert (f.hashes, f.core_metadata, f.yanked, f.size) == (
        {"sha256": "a" * 64},
        {"sha256": "b" * 64},
        "reason",
        10,
    )
    assert (page.name, page.versions, page.last_serial) == ("Lib", ("1.0",), 42)


def test_pep_714_old_and_new_metadata_keys_on_one_page_each_count() -> None:
    """An index in the middle of PEP 714's move: one entry with the old key alone, one with the
    new. As many of each on the page, the fast reading took it, and lost the old key's."""
    old = {"sha256": "b" * 64}
    new = {"sha256": "c" * 64}
    entries: list[dict[str, Any]] = [
        {"filename": "lib-1.0-py3-none-any.whl", "url": "a.whl", "dist-info-metadata": old},
        {"filename": "lib-1.1-py3-none-any.whl", "url": "b.whl", "core-metadata": new},
        {"filename": "lib-1.2-py3-none-any.whl", "url": "c.whl", "core-metadata": False}
        | {"dist-info-metadata": old},  # the new key says what it means
    ]
    for files in (entries, entries[:1], entries[1:]):
        body = json.dumps({"name": "lib", "files": files}).encode()
        page = simple_json.parse_project_page(body, PAGE_URL, "lib")
        expected = [{"a.whl": old, "b.whl": new, "c.whl": False}[f["url"]] for f in files]
        assert [f.core_metadata for f in page.files] == expected
        tolerant = simple_json.parse_project_page(body, PAGE_URL, "lib", typed=False)
        assert tolerant.files == page.files


@pytest.mark.parametrize("body", [b"{", b"[]", b'{"files": [{"url": "x"}]}'])
def test_unreadable_json(body: bytes) -> None:
    with pytest.raises(simple_html.InvalidPage):
        simple_json.parse_project_page(body, PAGE_URL, "lib")


def _local(f: DistFile, prefix: str) -> DistFile:
    return f.with_url(prefix + f.filename)


@pytest.mark.parametrize("fmt", ["html", "json"])
def test_render_then_parse_keeps_every_field(fmt: str) -> None:
    prefix = "https://proxy.example/pulp/content/pypi/"
    if fmt == "html":
        body = simple_html.render_project_page(PAGE, prefix)
        parsed = simple_html.parse_project_page(body, PAGE_URL, "lib")
        # HTML has no attribute for the size; every other field survives.
        assert [f.filename for f in parsed.files] == [FULL.filename, PLAIN.filename]
        a = parsed.files[0]
        assert (a.url, a.hashes, a.requires_python, a.yanked) == (
            prefix + FULL.filename,
            FULL.hashes,
            FULL.requires_python,
            FULL.yanked,
        )
        assert (a.core_metadata, a.gpg_sig, a.provenance, a.upload_time) == (
            FULL.core_metadata,
            FULL.gpg_sig,
            FULL.provenance,
            FULL.upload_time,
        )
        assert a.size is None
    else:
        body = simple_json.render_project_page(PAGE, prefix, project_versions(PAGE))
        parsed = simple_json.parse_project_page(body, PAGE_URL, "lib")
        assert list(parsed.files) == [_local(FULL, prefix), _local(PLAIN, prefix)]
        assert parsed.versions == ("0.9", "1.0")
        assert json.loads(body)["meta"] == {"api-version": "1.3"}  # provenance is a 1.3 field
        # PEP 691: the normalized name, whatever the page's own spelling (an upload's METADATA)
        named = ProjectPage("Acme_Utils.Core", (PLAIN,))
        assert json.loads(simple_json.render_project_page(named, prefix, []))["name"] == (
            "acme-utils-core"
        )


@pytest.mark.parametrize(
    ("page", "version", "in_json"),
    [
        (ProjectPage("lib", (DistFile(PLAIN.filename, PLAIN.url, size=10),)), "1.1", "1.1"),
        # PEP 700: no size (an HTML upstream's file), no 1.1 in JSON; HTML has no size at all
        (ProjectPage("lib", (PLAIN,)), "1.1", "1.0"),
        (PAGE, "1.3", "1.3"),
        (ProjectPage("lib", (PLAIN,), status="archived"), "1.4", "1.4"),
        (
            ProjectPage("lib", (), status="quarantined", status_reason="malware <found>"),
            "1.4",
            "1.4",
        ),
    ],
)
def test_pages_declare_the_api_version_their_fields_need_and_keep_the_status(
    page: ProjectPage, version: str, in_json: str
) -> None:
    """PEP 792 (1.4): `project-status` in JSON, `pypi:project-status(-reason)` in HTML."""
    body = simple_json.render_project_page(page, "../", [])
    assert json.loads(body)["meta"]["api-version"] == in_json
    html = simple_html.render_project_page(page, "../")
    assert f'<meta name="pypi:repository-version" content="{version}">' in html.decode()
    for parsed in (
        simple_json.parse_project_page(body, PAGE_URL, "lib"),
        simple_html.parse_project_page(html, PAGE_URL, "lib"),
    ):
        assert (parsed.status, parsed.status_reason) == (page.status, page.status_reason)


def test_html_escapes_attributes_and_quotes_urls() -> None:
    f = DistFile("lib-1.0+local.tar.gz", "x", requires_python='<4,>=3"', yanked="<b>bad</b>")
    body = simple_html.render_project_page(ProjectPage("lib", (f,)), "../c/").decode()
    assert 'href="../c/lib-1.0%2Blocal.tar.gz"' in body
    assert 'data-requires-python="&lt;4,&gt;=3&quot;"' in body
    assert 'data-yanked="&lt;b&gt;bad&lt;/b&gt;"' in body


def test_project_list_round_trip() -> None:
    names = ("Django", "shelf-reader", "Zope.Interface")
    html = simple_html.render_project_list(names, "")
    assert b'<a href="zope-interface/">Zope.Interface</a>' in html
    assert simple_html.parse_project_list(html).names == names
    assert simple_json.parse_project_list(simple_json.render_project_list(names)).names == names


def test_versions_derived_from_files_when_upstream_gives_none() -> None:
    page = ProjectPage(
        "lib",
        (
            DistFile("lib-1.10.tar.gz", "u"),
            DistFile("lib-1.9-py3-none-any.whl", "u"),
            DistFile("lib-1.9.tar.gz", "u"),
            DistFile("lib-2.0rc1.tar.gz", "u"),
        ),
    )
    assert project_versions(page) == ["1.9", "1.10", "2.0rc1"]


@pytest.mark.parametrize(
    "digest",
    ["/etc/passwd", "../../../../etc/passwd", "a" * 63, "g" * 64, "a" * 64 + "/x", ""],
)
def test_digests_that_are_not_hex_of_the_right_length_are_dropped(digest: str) -> None:
    """A digest names a file in our store: an upstream must not be able to name any other."""
    html = f'<a href="lib-1.0.tar.gz#sha256={digest}">lib-1.0.tar.gz</a>'.encode()
    assert simple_html.parse_project_page(html, PAGE_URL, "lib").files[0].hashes == {}
    body = json.dumps(
        {"files": [{"filename": "lib-1.0.tar.gz", "url": "x", "hashes": {"sha256": digest},
                    "core-metadata": {"sha256": digest}}]}
    ).encode()  # fmt: skip
    (f,) = simple_json.parse_project_page(body, PAGE_URL, "lib").files
    assert f.hashes == {} and f.core_metadata is True


def test_project_list_escapes_names_in_links() -> None:
    html = simple_html.render_project_list(['x"><script>alert(1)</script>'], "").decode()
    assert "<script>" not in html and "&quot;&gt;&lt;script&gt;" in html


def test_a_project_list_longer_than_a_rendering_chunk_is_whole_and_in_order() -> None:
    """Lists are rendered LIST_CHUNK names at a time (PyPI's has 700,000): nothing lost,
    doubled or reordered at the seams, and the JSON is what one piece would have been."""
    names = [f"Proj_{i}" for i in range(2 * simple_html.LIST_CHUNK + 3)] + ["a&b", "\u00fc-x"]
    body = simple_json.render_project_list(names)
    whole = {"meta": {"api-version": "1.1"}, "projects": [{"name": n} for n in names]}
    assert json.loads(body) == whole
    assert simple_json.parse_project_list(body).names == tuple(names)
    html = simple_html.render_project_list(names, "")
    assert simple_html.parse_project_list(html).names == tuple(names)
    assert simple_json.render_project_list([]) == b'{"meta":{"api-version":"1.1"},"projects":[]}'


@pytest.mark.parametrize(
    ("body", "short"),
    [
        (b"<!DOCTYPE html><html><body><a href='x'>x</a>", True),  # its end never came
        (b"<!DOCTYPE html><html><body><a href='x'>x</a></body></html>\n", False),
        (b"<HTML><BODY></BODY></HTML>", False),  # any case
        (b"<html><body></body></html>\n<!-- served by an old proxy -->\n", False),
        (b"<a href='x-1.0.tar.gz'>x-1.0.tar.gz</a>", False),  # no <html>: nothing to tell by
        (b'{"meta": {"api-version": "1.0"}, "files": [', False),  # JSON: its parse tells
    ],
)
def test_an_html_page_is_cut_short_when_its_html_element_does_not_end(
    body: bytes, short: bool
) -> None:
    assert simple_html.cut_short(body) is short


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("2024-01-02T03:04:05Z", "2024-01-02T03:04:05Z"),
        ("2024-01-02T03:04:05.123456Z", "2024-01-02T03:04:05.123456Z"),
        ("2024-01-02 03:04:05", "2024-01-02T03:04:05.000000Z"),  # no zone: UTC
        ("2024-01-02T03:04:05+01:00", "2024-01-02T02:04:05.000000Z"),
        ("2024-01-02t03:04:05z", "2024-01-02T03:04:05.000000Z"),
        ("yesterday", None),
    ],
)
def test_upload_times_are_kept_as_pep_700_writes_them(given: str, kept: str | None) -> None:
    """PEP 700: `yyyy-mm-ddThh:mm:ss.ffffffZ`, in UTC. An upstream's time in another ISO 8601
    form is written so (uv refuses a whole page with one time that names no zone); one that
    is no time at all is left out, in either format of either side."""
    entry = {"filename": "lib-1.0.tar.gz", "url": "lib-1.0.tar.gz", "upload-time": given}
    body = json.dumps({"name": "lib", "files": [entry]}).encode()
    html = f'<a href="lib-1.0.tar.gz" data-upload-time="{given}">lib-1.0.tar.gz</a>'.encode()
    for page in (
        simple_json.parse_project_page(body, PAGE_URL, "lib"),
        simple_json.parse_project_page(body, PAGE_URL, "lib", typed=False),
        simple_html.parse_project_page(html, PAGE_URL, "lib"),
    ):
        (f,) = page.files
        assert f.upload_time == kept
        rendered = json.loads(simple_json.render_project_page(page, "../", ["1.0"]))
        assert rendered["files"][0].get("upload-time") == kept


PROVENANCE = "https://index.example/integrity/lib-1.0.tar.gz/provenance"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (PROVENANCE, PROVENANCE),
        ("../../integrity/lib-1.0.tar.gz/provenance", PROVENANCE),
        ("/integrity/lib-1.0.tar.gz/provenance", PROVENANCE),
        ("http://[::1", None),
    ],
)
def test_a_provenance_link_is_resolved_against_the_upstream_page(
    given: str, expected: str | None
) -> None:
    """PEP 740's provenance URL, like any URL of PEP 691, may be relative to the page it is on:
    relayed as it came, it pointed into our own server, where nothing is. It is resolved as
    the file links are; one that cannot be is left out, not a reason to refuse the page."""
    entry = {"filename": "lib-1.0.tar.gz", "url": "lib-1.0.tar.gz", "provenance": given}
    body = json.dumps({"name": "lib", "files": [entry]}).encode()
    html = f'<a href="lib-1.0.tar.gz" data-provenance="{given}">lib-1.0.tar.gz</a>'.encode()
    for page in (
        simple_json.parse_project_page(body, PAGE_URL, "lib"),
        simple_json.parse_project_page(body, PAGE_URL, "lib", typed=False),
        simple_html.parse_project_page(html, PAGE_URL, "lib"),
    ):
        (f,) = page.files
        assert f.provenance == expected


def test_a_signature_we_do_not_serve_is_not_announced() -> None:
    """PEP 503/691: `gpg-sig: true` says the signature is at `{file_url}.asc`. We serve no
    signatures (`<file>.asc` is a 404 here), so an upstream's `true` is not said: the key is
    left out, which PEP 691 reads as "may or may not exist". An upstream's `false` is true
    of our URLs too, and is kept."""
    signed = DistFile("lib-1.0.tar.gz", "x", gpg_sig=True)
    unsigned = DistFile("lib-0.9.tar.gz", "y", gpg_sig=False)
    page = ProjectPage("lib", (signed, unsigned))
    entries = json.loads(simple_json.render_project_page(page, "../", []))["files"]
    assert ["gpg-sig" in e for e in entries] == [False, True]
    assert entries[1]["gpg-sig"] is False
    html = simple_html.render_project_page(page, "../").decode()
    assert html.count("data-gpg-sig") == 1 and 'data-gpg-sig="false"' in html


_VERSIONED = {
    "json page": b'{"meta": {"api-version": "VERSION"}, "name": "lib", "files": []}',
    "json list": b'{"meta": {"api-version": "VERSION"}, "projects": [{"name": "lib"}]}',
    "html page": b'<html><head><meta name="pypi:repository-version" content="VERSION"></head>'
    b'<body><a href="lib-1.0.tar.gz">lib-1.0.tar.gz</a></body></html>',
    "html list": b'<html><head><meta name="pypi:repository-version" content="VERSION"></head>'
    b'<body><a href="lib/">lib</a></body></html>',
}


def _parse(kind: str, body: bytes) -> object:
    if kind == "json page":
        return simple_json.parse_project_page(body, PAGE_URL, "lib")
    if kind == "html page":
        return simple_html.parse_project_page(body, PAGE_URL, "lib")
    if kind == "json list":
        return simple_json.parse_project_list(body)
    return simple_html.parse_project_list(body)


@pytest.mark.parametrize("kind", list(_VERSIONED))
def test_a_page_of_a_major_version_we_do_not_know_is_refused(kind: str) -> None:
    """PEP 629: a client meeting a major version greater than it expects MUST fail hard (the
    page means something else); read as 1.x it was relayed as 1.x. A newer minor version
    reads as ours (PEP 629: its changes are ones a 1.x client can still use)."""
    body = _VERSIONED[kind]
    with pytest.raises(simple_html.InvalidPage, match=r"API version 2\.0; this server reads 1\.x"):
        _parse(kind, body.replace(b"VERSION", b"2.0"))
    assert _parse(kind, body.replace(b"VERSION", b"1.9")) is not None


@pytest.mark.parametrize(
    "link",
    [
        "https://user:secret@index.example/integrity/lib-1.0.tar.gz/provenance",
        "https://index.example/integrity/lib-1.0.tar.gz/provenance?token=secret",
        "/integrity/lib-1.0.tar.gz/provenance?X-Amz-Signature=secret",
        "javascript:alert(1)",
    ],
)
def test_a_provenance_link_that_may_carry_a_secret_is_not_shown(link: str) -> None:
    """Our pages show an upstream's provenance link as it is (its files' links never: they
    lead here). One with a user and password, or a query (an index's `?token=`, a presigned
    URL's signature), would hand that secret to every reader of a public distribution: it is
    left out, as a link we could not resolve is. So is one that is no web address."""
    entry = {"filename": "lib-1.0.tar.gz", "url": "lib-1.0.tar.gz", "provenance": link}
    body = json.dumps({"name": "lib", "files": [entry]}).encode()
    html = f'<a href="lib-1.0.tar.gz" data-provenance="{link}">lib-1.0.tar.gz</a>'.encode()
    for page in (
        simple_json.parse_project_page(body, PAGE_URL, "lib"),
        simple_json.parse_project_page(body, PAGE_URL, "lib", typed=False),
        simple_html.parse_project_page(html, PAGE_URL, "lib"),
    ):
        assert page.files[0].provenance is None
        assert "secret" not in simple_json.render_project_page(page, "../", []).decode()
