"""Build small, valid, installable distributions for tests (no setuptools, no network).

* :func:`build_wheel` writes a pure-zipfile wheel with correct METADATA, WHEEL and RECORD.
* :func:`build_sdist` writes a PEP 625 ``.tar.gz`` sdist whose in-tree, stdlib-only PEP 517
  backend (``backend.py``, see :mod:`sdist_backend`) lets ``pip install`` build it offline
  with build isolation (``requires = []``: nothing is downloaded).

Every distribution contains one import package, named after the normalized distribution name
(``My.Pkg`` -> ``my_pkg``), whose ``__init__.py`` sets ``__version__``. Archives are
reproducible: building the same arguments twice gives byte-identical files (same sha256).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from .sdist_backend import (
    expand_tags,
    filename_version,
    import_name_for,
    metadata_text,
    normalize_dist_name,
    write_sdist,
    write_wheel,
)

__all__ = [
    "build_sdist",
    "build_wheel",
    "import_name_for",
    "normalize_dist_name",
    "sha256_of",
]

_BACKEND_SOURCE = (Path(__file__).parent / "sdist_backend.py").read_bytes()

_PYPROJECT = b"""\
[build-system]
requires = []
build-backend = "backend"
backend-path = ["."]
"""


def _init_py(version: str) -> bytes:
    return f'__version__ = "{version}"\n'.encode()


def build_wheel(
    out_dir: Path,
    name: str,
    version: str,
    *,
    requires_python: str | None = None,
    requires_dist: Sequence[str] = (),
    platform_tag: str = "any",
    python_tag: str = "py3",
    abi_tag: str = "none",
    payload: bytes = b"",
    author: str | None = None,
) -> Path:
    """Write ``<dist>-<version>-<python>-<abi>-<platform>.whl`` into ``out_dir``; return its path.
    A ``payload`` is a data file of the package (random bytes make a wheel of their size).

    Compressed tag sets (``python_tag="py2.py3"``) produce one ``Tag:`` line per combination.
    ``requires_dist`` entries are written verbatim as ``Requires-Dist:`` lines.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    dist = normalize_dist_name(name)
    fversion = filename_version(version)
    filename = f"{dist}-{fversion}-{python_tag}-{abi_tag}-{platform_tag}.whl"
    metadata = metadata_text(
        name, version, requires_python=requires_python, requires_dist=requires_dist, author=author
    ).encode("utf-8")
    files = {f"{import_name_for(name)}/__init__.py": _init_py(version)}
    if payload:
        files[f"{import_name_for(name)}/payload.bin"] = payload
    path = out_dir / filename
    write_wheel(
        path,
        files,
        f"{dist}-{fversion}.dist-info",
        metadata,
        expand_tags(python_tag, abi_tag, platform_tag),
    )
    return path


def build_sdist(
    out_dir: Path,
    name: str,
    version: str,
    *,
    requires_python: str | None = None,
    requires_dist: Sequence[str] = (),
) -> Path:
    """Write ``<dist>-<version>.tar.gz`` (PEP 625) into ``out_dir``; return its path.

    Contents, under ``<dist>-<version>/``: ``PKG-INFO``, ``pyproject.toml``, ``backend.py``
    (stdlib-only PEP 517 backend) and ``<import_name>/__init__.py``.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    base = f"{normalize_dist_name(name)}-{filename_version(version)}"
    pkg_info = metadata_text(
        name, version, requires_python=requires_python, requires_dist=requires_dist
    ).encode("utf-8")
    files = {
        f"{base}/PKG-INFO": pkg_info,
        f"{base}/pyproject.toml": _PYPROJECT,
        f"{base}/backend.py": _BACKEND_SOURCE,
        f"{base}/{import_name_for(name)}/__init__.py": _init_py(version),
    }
    path = out_dir / f"{base}.tar.gz"
    write_sdist(path, files)
    return path


def sha256_of(path: Path | str) -> str:
    """Hex sha256 digest of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()
