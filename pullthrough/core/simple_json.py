"""PEP 691 JSON: parse an upstream's pages and render ours."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from operator import attrgetter
from typing import Any

import msgspec
from packaging.utils import canonicalize_name

from pullthrough.core import jsontext
from pullthrough.core.filenames import all_offerable, offerable
from pullthrough.core.lines import every_line
from pullthrough.core.links import (
    PLAIN_ABSOLUTE,
    all_plain_absolute,
    quoted,
    resolve,
    resolve_all,
    shown_link,
)
from pullthrough.core.models import (
    DistFile,
    ProjectList,
    ProjectPage,
    all_one_sha256,
    api_version,
    clean_hashes,
    one_sha256,
)
from pullthrough.core.simple_html import LIST_CHUNK, InvalidPage, readable_version
from pullthrough.core.times import UPLOAD_TIME, UPLOAD_TIME_LINES, upload_time

CONTENT_TYPE = "application/vnd.pypi.simple.v1+json"
_SURROGATE = re.compile("[\ud800-\udfff]")
API_VERSION = "1.1"


def _load(body: bytes) -> dict[str, Any]:
    try:
        data = jsontext.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidPage(f"unreadable JSON index page: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidPage("unreadable JSON index page: not an object")
    return data


def _readable(meta: object) -> None:
    """`readable_version` of a page's `meta.api-version`."""
    readable_version(meta.get("api-version") if isinstance(meta, dict) else None)


def _text(value: object) -> str | None:
    """A string field as text that can be written out again (a lone surrogate, which JSON can
    carry and UTF-8 cannot, becomes U+FFFD); anything not a string: None."""
    if not isinstance(value, str):
        return None
    return value if value.isascii() else _SURROGATE.sub("\ufffd", value)


def _metadata(value: object) -> bool | dict[str, str]:
    if isinstance(value, dict):
        return clean_hashes(value) or True
    return bool(value)


def _file(entry: Mapping[str, Any], page_url: str) -> DistFile:
    """A file entry; a field of the wrong type counts as absent (an upstream's `3` where
    requires-python should be a string must not reach our renderers)."""
    filename, link = _text(entry["filename"]), _text(entry["url"])
    if not filename or link is None:
        raise TypeError("a file entry needs a filename and a url that are strings")
    url, _ = resolve(page_url, link)
    yanked = entry.get("yanked", False)
    metadata = entry.get("core-metadata", entry.get("dist-info-metadata", False))
    size = entry.get("size")
    gpg = entry.get("gpg-sig")
    hashes = entry.get("hashes")
    return DistFile(
        filename=filename,
        url=url,
        hashes=clean_hashes(hashes) if isinstance(hashes, dict) else {},
        requires_python=_text(entry.get("requires-python")) or None,
        yanked=_text(yanked) or True if isinstance(yanked, str) and yanked else bool(yanked),
        core_metadata=_metadata(metadata),
        size=size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None,
        upload_time=upload_time(_text(entry.get("upload-time"))),
        gpg_sig=None if gpg is None else bool(gpg),
        provenance=shown_link(page_url, _text(entry.get("provenance"))),
    )


class _TypedPage(msgspec.Struct):
    """A PEP 691 project page as msgspec decodes it when every file entry has its PEP's types:
    the entries straight into DistFile (its field names are the JSON keys); the page's own
    fields as they are, read by the same code as in the tolerant reading."""

    files: list[DistFile] = []
    name: Any = None
    versions: Any = None
    meta: Any = None
    project_status: Any = msgspec.field(default=None, name="project-status")


_TYPED = msgspec.json.Decoder(_TypedPage)


class _MetadataKeys(msgspec.Struct, gc=False):
    """Which of PEP 714's two keys an entry has (UNSET: absent), whatever their values."""

    new: object = msgspec.field(default=msgspec.UNSET, name="core-metadata")
    old: object = msgspec.field(default=msgspec.UNSET, name="dist-info-metadata")


class _MetadataKeysPage(msgspec.Struct):
    files: list[_MetadataKeys]


_METADATA_KEYS = msgspec.json.Decoder(_MetadataKeysPage)


def _old_key_alone(body: bytes) -> bool:
    """Whether an entry has `dist-info-metadata` without `core-metadata` (which then says what
    it means: PEP 714); True where the page does not even read so."""
    try:
        entries = _METADATA_KEYS.decode(body).files
    except msgspec.DecodeError:
        return True
    return any(e.old is not msgspec.UNSET and e.new is msgspec.UNSET for e in entries)


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def parse_project_page(body: bytes, page_url: str, name: str, *, typed: bool = True) -> ProjectPage:
    """An upstream's PEP 691 page. Nearly every page decodes typed (msgspec: a 4,000-file page
    in ~20 ms instead of ~50); a page it cannot (a field of another type, a lone surrogate, an
    index of before PEP 714) is read the tolerant way, entry by entry, with the same result.
    `typed=False` reads it the tolerant way (the tests compare the two)."""
    fields: Mapping[str, Any]
    if not typed or (read := _typed(body, page_url)) is None:
        fields = _load(body)
        try:
            files = tuple(
                f
                for f in (_file(entry, page_url) for entry in fields.get("files", []))
                if offerable(f.filename)
            )
        except (KeyError, TypeError, AttributeError, ValueError) as exc:  # ValueError: urljoin
            raise InvalidPage(f"unreadable JSON index page: bad file entry ({exc})") from None
    else:
        files, fields = read
    versions = fields.get("versions")
    status = fields.get("project-status")
    status = status if isinstance(status, Mapping) else {}
    meta = fields.get("meta") or {}
    _readable(meta)
    serial = meta.get("_last-serial") if isinstance(meta, dict) else None
    return ProjectPage(
        name=_text(fields.get("name")) or name,
        files=files,
        versions=(
            tuple(v for v in map(_text, versions) if v is not None)
            if isinstance(versions, list)
            else None
        ),
        last_serial=serial if isinstance(serial, int) and not isinstance(serial, bool) else None,
        status=_text(status.get("status")) or None,
        status_reason=_text(status.get("reason")) or None,
    )


def _typed(body: bytes, page_url: str) -> tuple[tuple[DistFile, ...], dict[str, Any]] | None:
    """The files and the page's fields, or None where only the tolerant reading can say: a
    field of another type (msgspec refuses the page), a surrogate escape (which `_text` turns
    into U+FFFD), an entry with `dist-info-metadata` (PEP 714's old name) but no
    `core-metadata` (the typed reading knows only the new name), an entry without a filename
    or with a link urljoin refuses (the tolerant reading refuses the page, saying why)."""
    if _SURROGATE_ESCAPE.search(body) is not None or (
        b'"dist-info-metadata"' in body  # one scan of the page where PEP 714's old key is absent
        and _old_key_alone(body)
    ):
        return None
    try:
        data = _TYPED.decode(body)
    except msgspec.DecodeError:  # ValidationError too
        return None
    files = _plain_files(data.files, page_url)
    if files is None:
        kept = []
        try:
            for f in data.files:
                if not f.filename:
                    return None
                if offerable(f.filename):
                    kept.append(_cleaned(f, page_url))
        except ValueError:  # a link urljoin refuses
            return None
        files = tuple(kept)
    fields = {"name": data.name, "versions": data.versions, "meta": data.meta}
    fields["project-status"] = data.project_status
    return files, fields


_FILENAME, _URL, _HASHES, _METADATA, _UPLOADED, _PROVENANCE = (
    attrgetter(a)
    for a in ("filename", "url", "hashes", "core_metadata", "upload_time", "provenance")
)
_MAY_BE_EMPTY = tuple(
    attrgetter(a) for a in ("requires_python", "upload_time", "provenance", "yanked")
)


def _plain_files(files: list[DistFile], page_url: str) -> tuple[DistFile, ...] | None:
    """`_cleaned` for a page whose every entry it would keep as it is but for the link: PyPI's
    and pypiserver's (offerable names, one well-formed sha256 and the metadata's, no empty
    string, upload times as PEP 700 writes them, links `resolve_all` resolves, provenance links
    absolute). A few passes over the whole page instead of a
    dozen calls per entry: the whole parse of the bench's 4,000-file pypiserver-shaped page
    (relative links) in three quarters of the time; PyPI's (absolute links, which need no
    resolving) in about the same. None for any other page."""
    metadata = [m for m in map(_METADATA, files) if m is not True and m is not False]
    if not (
        all_offerable(map(_FILENAME, files))
        and all_one_sha256(list(map(_HASHES, files)))
        and all_one_sha256(metadata)
        and not any("" in set(map(field, files)) for field in _MAY_BE_EMPTY)
        and every_line(UPLOAD_TIME_LINES, [t for t in map(_UPLOADED, files) if t is not None])
        and all_plain_absolute([p for p in map(_PROVENANCE, files) if p is not None])
    ):
        return None
    urls = resolve_all(page_url, list(map(_URL, files)))
    if urls is None:
        return None
    replace = msgspec.structs.replace
    return tuple(
        f if url == f.url else replace(f, url=url) for f, url in zip(files, urls, strict=True)
    )


def _cleaned(f: DistFile, page_url: str) -> DistFile:
    """A typed entry as `_file` reads it: its link resolved, its hashes cleaned, empty strings
    as absent. Nearly every entry is left as it is, or gets only its link resolved: PyPI's
    every entry is seen to be so at once (a plain absolute link, sha256 digests, no empty
    string), and so is a `../../packages/...` link's."""
    metadata, uploaded, provenance = f.core_metadata, f.upload_time, f.provenance
    url = f.url if PLAIN_ABSOLUTE.fullmatch(f.url) is not None else resolve(page_url, f.url)[0]
    if (
        one_sha256(f.hashes)
        and (metadata is True or metadata is False or one_sha256(metadata))
        and "" not in (f.requires_python, f.yanked)
        and (uploaded is None or UPLOAD_TIME.fullmatch(uploaded) is not None)
        and (provenance is None or PLAIN_ABSOLUTE.fullmatch(provenance) is not None)
    ):
        return f if url == f.url else msgspec.structs.replace(f, url=url)
    changes: dict[str, Any] = {} if url == f.url else {"url": url}
    if (hashes := clean_hashes(f.hashes)) != f.hashes:
        changes["hashes"] = hashes
    if not isinstance(metadata, bool) and (cleaned := clean_hashes(metadata) or True) != metadata:
        changes["core_metadata"] = cleaned
    if (written := upload_time(uploaded)) != uploaded:
        changes["upload_time"] = written
    if (resolved := shown_link(page_url, provenance)) != provenance:
        changes["provenance"] = resolved
    if f.requires_python == "":
        changes["requires_python"] = None
    if f.yanked == "":
        changes["yanked"] = False
    return msgspec.structs.replace(f, **changes) if changes else f


class _Listed(msgspec.Struct, gc=False):
    name: str


class _TypedList(msgspec.Struct):
    projects: list[_Listed] = []
    meta: Any = None


_TYPED_LIST = msgspec.json.Decoder(_TypedList)


def parse_project_list(body: bytes, *, typed: bool = True) -> ProjectList:
    """An upstream's PEP 691 project list. PyPI's (700,000 names, 34 MB) decodes typed: only
    the names are built, not a dict per project (a third of the memory and time); any other
    list is read the tolerant way, with the same result (`typed=False`: that way only)."""
    if typed and _SURROGATE_ESCAPE.search(body) is None:
        try:
            listed = _TYPED_LIST.decode(body)
        except msgspec.DecodeError:
            pass
        else:
            _readable(listed.meta)
            return ProjectList(tuple(p.name for p in listed.projects if p.name))
    data = _load(body)
    _readable(data.get("meta"))
    try:
        names = [_text(p["name"]) for p in data.get("projects", [])]
    except (KeyError, TypeError) as exc:
        raise InvalidPage(f"unreadable JSON project list: {exc}") from None
    return ProjectList(tuple(n for n in names if n))


class _FileOut(msgspec.Struct, kw_only=True, omit_defaults=True, gc=False):
    """One file's entry as we write it: a field at its default is left out (yanked never is);
    `dist-info-metadata` repeats `core-metadata` for clients of before PEP 714."""

    filename: str
    url: str
    hashes: Mapping[str, str]
    requires_python: str | None = msgspec.field(default=None, name="requires-python")
    core_metadata: bool | Mapping[str, str] = msgspec.field(default=False, name="core-metadata")
    dist_info_metadata: bool | Mapping[str, str] = msgspec.field(
        default=False, name="dist-info-metadata"
    )
    gpg_sig: bool | None = msgspec.field(default=None, name="gpg-sig")
    yanked: bool | str
    size: int | None = None
    upload_time: str | None = msgspec.field(default=None, name="upload-time")
    provenance: str | None = None


_PAGE_OUT = msgspec.json.Encoder()


def _file_out(f: DistFile, url_prefix: str) -> _FileOut:
    """4,000 of these for a big page: built and written by msgspec, without a dict each (the
    render of a 4,000-file page in two thirds of the time of dicts written by orjson). msgspec
    writes dicts, not other mappings."""
    hashes, metadata = f.hashes, f.core_metadata or False
    if metadata is not True and metadata is not False and type(metadata) is not dict:
        metadata = dict(metadata)
    return _FileOut(
        filename=f.filename,
        url=url_prefix + quoted(f.filename),
        hashes=hashes if type(hashes) is dict else dict(hashes),
        requires_python=f.requires_python or None,
        core_metadata=metadata,
        dist_info_metadata=metadata,
        gpg_sig=False if f.gpg_sig is False else None,  # we serve no `.asc`: never `true`
        yanked=f.yanked,
        size=f.size,
        upload_time=f.upload_time or None,
        provenance=f.provenance or None,
    )


def render_project_page(page: ProjectPage, url_prefix: str, versions: list[str]) -> bytes:
    data: dict[str, Any] = {
        "meta": {"api-version": api_version(page, json=True)},
        "name": canonicalize_name(page.name),  # PEP 691: normalized (an upload's is as written)
        "files": [_file_out(f, url_prefix) for f in page.files],
        "versions": versions,
    }
    if page.status is not None:
        data["project-status"] = {"status": page.status}
        if page.status_reason:
            data["project-status"]["reason"] = page.status_reason
    return _PAGE_OUT.encode(data)


def render_project_list(names: Sequence[str]) -> bytes:
    """`{"meta": ..., "projects": [{"name": ...}, ...]}`, written LIST_CHUNK names at a time:
    PyPI's 700,000 never exist as dicts all at once (~160 MB)."""
    parts: list[bytes | memoryview] = [
        b'{"meta":{"api-version":"' + API_VERSION.encode() + b'"},"projects":['
    ]
    for start in range(0, len(names), LIST_CHUNK):
        chunk = jsontext.dumps([{"name": n} for n in names[start : start + LIST_CHUNK]])
        parts += (b"," if start else b"", memoryview(chunk)[1:-1])
    parts.append(b"]}")
    return b"".join(parts)
