"""A tiny PEP 517 build backend written with the standard library only.

This file has two roles:

* :mod:`packages` copies its source verbatim into every test sdist as ``backend.py``
  (``pyproject.toml`` points at it with ``backend-path = ["."]`` and ``requires = []``), so
  ``pip install <sdist>`` builds it fully offline, with build isolation, downloading nothing.
* :mod:`packages` imports its helpers (``write_wheel``, ``write_sdist``, ...) to build wheels and
  sdists directly, so both paths produce identical archives.

It must therefore stay importable on its own: standard library only, no relative imports.
The hooks work on the current directory, which must be an unpacked sdist of the shape
written by :func:`packages.build_sdist` (``PKG-INFO``, ``pyproject.toml``, ``backend.py`` and
one top-level import package named after the normalized distribution name).
"""

from __future__ import annotations

import base64
import email.parser
import gzip
import hashlib
import io
import os
import re
import tarfile
import zipfile
from collections.abc import Iterable, Mapping, Sequence

# Fixed timestamps make the archives byte-for-byte reproducible.
ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)
TAR_MTIME = 315532800  # 1980-01-01T00:00:00Z

GENERATOR = "pullthrough-test-support 1.0"


def normalize_dist_name(name: str) -> str:
    """Distribution name as used in wheel and sdist file names (``My.Pkg`` -> ``my_pkg``)."""
    return re.sub(r"[-_.]+", "_", name).lower()


def import_name_for(name: str) -> str:
    """Name of the top-level import package of a test distribution."""
    return normalize_dist_name(name).replace("-", "_")


def filename_version(version: str) -> str:
    """Version as written in file names (the wheel spec forbids ``-`` there)."""
    return version.replace("-", "_")


def record_hash(data: bytes) -> str:
    """``sha256=<urlsafe base64, unpadded>`` as used in wheel RECORD files."""
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def metadata_text(
    name: str,
    version: str,
    *,
    requires_python: str | None = None,
    requires_dist: Sequence[str] = (),
    author: str | None = None,
) -> str:
    """Core metadata (Metadata-Version 2.1) for METADATA / PKG-INFO."""
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    if author is not None:
        lines.append(f"Author: {author}")
    if requires_python is not None:
        lines.append(f"Requires-Python: {requires_python}")
    lines.extend(f"Requires-Dist: {req}" for req in requires_dist)
    return "\n".join(lines) + "\n\n"


def expand_tags(python_tag: str, abi_tag: str, platform_tag: str) -> list[str]:
    """Expand compressed tag sets (``py2.py3``) into the individual ``Tag:`` values."""
    return [
        f"{py}-{abi}-{plat}"
        for py in python_tag.split(".")
        for abi in abi_tag.split(".")
        for plat in platform_tag.split(".")
    ]


def wheel_text(tags: Iterable[str]) -> str:
    """The ``.dist-info/WHEEL`` file."""
    lines = ["Wheel-Version: 1.0", f"Generator: {GENERATOR}", "Root-Is-Purelib: true"]
    lines.extend(f"Tag: {tag}" for tag in tags)
    return "\n".join(lines) + "\n"


def _zip_info(arcname: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(arcname, date_time=ZIP_DATE_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info


def dist_info_files(dist_info: str, metadata: bytes, tags: Iterable[str]) -> dict[str, bytes]:
    """METADATA and WHEEL of a ``.dist-info`` directory (RECORD is added by write_wheel)."""
    return {
        f"{dist_info}/METADATA": metadata,
        f"{dist_info}/WHEEL": wheel_text(tags).encode("utf-8"),
    }


def write_wheel(
    path: str | os.PathLike[str],
    files: Mapping[str, bytes],
    dist_info: str,
    metadata: bytes,
    tags: Iterable[str],
) -> None:
    """Write a wheel: ``files`` (archive path -> bytes), then dist-info METADATA, WHEEL, RECORD."""
    entries = dict(files)
    entries.update(dist_info_files(dist_info, metadata, tags))
    record_name = f"{dist_info}/RECORD"
    record_lines = [f"{arc},{record_hash(data)},{len(data)}" for arc, data in entries.items()]
    record_lines.append(f"{record_name},,")
    entries[record_name] = ("\n".join(record_lines) + "\n").encode("utf-8")
    with zipfile.ZipFile(path, "w") as zf:
        for arc, data in entries.items():
            zf.writestr(_zip_info(arc), data)


def write_sdist(path: str | os.PathLike[str], files: Mapping[str, bytes]) -> None:
    """Write a reproducible ``.tar.gz`` holding ``files`` (archive path -> bytes)."""
    with (
        open(path, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for arc, data in files.items():
            info = tarfile.TarInfo(arc)
            info.size = len(data)
            info.mtime = TAR_MTIME
            info.mode = 0o644
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))


# --------------------------------------------------------------------------------------------
# PEP 517 hooks. They operate on the current directory (an unpacked test sdist).


def _pkg_info() -> tuple[str, str, bytes]:
    with open("PKG-INFO", "rb") as fh:
        raw = fh.read()
    msg = email.parser.BytesHeaderParser().parsebytes(raw)
    return str(msg["Name"]), str(msg["Version"]), raw


def _base_name() -> tuple[str, str, str, bytes]:
    name, version, raw = _pkg_info()
    base = f"{normalize_dist_name(name)}-{filename_version(version)}"
    return name, version, base, raw


def _package_files(import_name: str) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for root, dirs, names in os.walk(import_name):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for fname in sorted(names):
            if fname.endswith((".pyc", ".pyo")):
                continue
            full = os.path.join(root, fname)
            with open(full, "rb") as fh:
                files[full.replace(os.sep, "/")] = fh.read()
    return files


_TAGS = ["py3-none-any"]


def get_requires_for_build_wheel(config_settings: object = None) -> list[str]:
    return []


def get_requires_for_build_sdist(config_settings: object = None) -> list[str]:
    return []


def get_requires_for_build_editable(config_settings: object = None) -> list[str]:
    return []


def prepare_metadata_for_build_wheel(
    metadata_directory: str, config_settings: object = None
) -> str:
    _name, _version, base, raw = _base_name()
    dist_info = f"{base}.dist-info"
    for arc, data in dist_info_files(dist_info, raw, _TAGS).items():
        target = os.path.join(metadata_directory, *arc.split("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as fh:
            fh.write(data)
    return dist_info


prepare_metadata_for_build_editable = prepare_metadata_for_build_wheel


def build_wheel(
    wheel_directory: str,
    config_settings: object = None,
    metadata_directory: str | None = None,
) -> str:
    name, _version, base, raw = _base_name()
    filename = f"{base}-py3-none-any.whl"
    files = _package_files(import_name_for(name))
    write_wheel(os.path.join(wheel_directory, filename), files, f"{base}.dist-info", raw, _TAGS)
    return filename


def build_editable(
    wheel_directory: str,
    config_settings: object = None,
    metadata_directory: str | None = None,
) -> str:
    name, _version, base, raw = _base_name()
    filename = f"{base}-py3-none-any.whl"
    pth = {f"__editable__.{normalize_dist_name(name)}.pth": (os.getcwd() + "\n").encode()}
    write_wheel(os.path.join(wheel_directory, filename), pth, f"{base}.dist-info", raw, _TAGS)
    return filename


def build_sdist(sdist_directory: str, config_settings: object = None) -> str:
    name, _version, base, raw = _base_name()
    files: dict[str, bytes] = {f"{base}/PKG-INFO": raw}
    for extra in ("pyproject.toml", "backend.py"):
        with open(extra, "rb") as fh:
            files[f"{base}/{extra}"] = fh.read()
    for arc, data in _package_files(import_name_for(name)).items():
        files[f"{base}/{arc}"] = data
    filename = f"{base}.tar.gz"
    write_sdist(os.path.join(sdist_directory, filename), files)
    return filename
