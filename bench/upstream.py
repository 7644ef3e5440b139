"""The upstreams nginx serves: generated valid wheels, as static PEP 503 pages with #sha256= links.

root/files/<wheel> and root/simple/index.html, root/simple/<project>/index.html.
"""

from __future__ import annotations

import base64
import hashlib
import html
import os
import random
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

# bench/run.py's upstream
N_PROJECTS = 25
PAGE_PROJECT = "ptbench-00"  # the warm page of (a): many versions, like a real project
PAGE_PROJECT_VERSIONS = 40
BIG_PROJECT = "ptbench-big"
BIG_SIZE = 32 * 2**20
SMALL_PAYLOAD = 48 * 1024  # incompressible bytes inside each small wheel

_DATE = (2024, 1, 1, 0, 0, 0)  # every zip entry's timestamp


# --------------------------------------------------------------------------- wheels


def _record_hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_wheel(
    dest: Path, project: str, version: str, entries: list[tuple[str, bytes, int]]
) -> Path:
    """dest/<dist>-<version>-py3-none-any.whl of entries (name, data, compression) + RECORD."""
    dist = project.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    record = "".join(f"{p},{_record_hash(d)},{len(d)}\n" for p, d, _ in entries)
    record += f"{info}/RECORD,,\n"
    path = dest / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for p, data, compress in entries:
            zf.writestr(zipfile.ZipInfo(p, _DATE), data, compress_type=compress)
        zf.writestr(zipfile.ZipInfo(f"{info}/RECORD", _DATE), record)
    return path


def build_wheel(dest: Path, project: str, version: str, payload: bytes) -> Path:
    """A valid wheel holding payload (stored, not deflated) and a deflated __init__.py."""
    dist = project.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    metadata = (
        f"Metadata-Version: 2.1\nName: {project}\nVersion: {version}\n"
        f"Summary: pullthrough benchmark package\nRequires-Python: >=3.8\n"
    )
    wheel = (
        b"Wheel-Version: 1.0\nGenerator: pullthrough-bench\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n"
    )
    return write_wheel(
        dest,
        project,
        version,
        [
            (f"{dist}/__init__.py", f'__version__ = "{version}"\n'.encode(), zipfile.ZIP_DEFLATED),
            (f"{dist}/payload.bin", payload, zipfile.ZIP_STORED),
            (f"{info}/METADATA", metadata.encode(), zipfile.ZIP_DEFLATED),
            (f"{info}/WHEEL", wheel, zipfile.ZIP_DEFLATED),
        ],
    )


def tiny_wheel(dest: Path, project: str) -> Path:
    """A valid ~0.6 KB wheel, version 1.0.0, nothing compressed."""
    dist = project.replace("-", "_")
    info = f"{dist}-1.0.0.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {project}\nVersion: 1.0.0\n"
    wheel = b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    return write_wheel(
        dest,
        project,
        "1.0.0",
        [
            (f"{dist}/__init__.py", b"", zipfile.ZIP_STORED),
            (f"{info}/METADATA", metadata.encode(), zipfile.ZIP_STORED),
            (f"{info}/WHEEL", wheel, zipfile.ZIP_STORED),
        ],
    )


# --------------------------------------------------------------------------- pages


def write_simple(root: Path, pages: dict[str, list[tuple[str, str]]]) -> None:
    """root/simple/index.html and root/simple/<project>/index.html; links to ../../files/.

    pages: project -> [(filename, sha256 hex digest)].
    """
    simple = root / "simple"
    simple.mkdir(parents=True)
    index_links = []
    for project, files in pages.items():
        links = "\n".join(
            f'    <a href="../../files/{fn}#sha256={digest}" '
            f'data-requires-python="{html.escape(">=3.8")}">{fn}</a><br/>'
            for fn, digest in files
        )
        (simple / project).mkdir()
        (simple / project / "index.html").write_text(
            "<!DOCTYPE html>\n<html>\n  <head>\n"
            '    <meta name="pypi:repository-version" content="1.0">\n'
            f"    <title>Links for {project}</title>\n  </head>\n  <body>\n"
            f"    <h1>Links for {project}</h1>\n{links}\n  </body>\n</html>\n"
        )
        index_links.append(f'    <a href="{project}/">{project}</a><br/>')
    (simple / "index.html").write_text(
        "<!DOCTYPE html>\n<html><head><title>Simple index</title></head><body>\n"
        + "\n".join(index_links)
        + "\n</body></html>\n"
    )


# --------------------------------------------------------------------------- bench/run.py


@dataclass
class Upstream:
    root: Path
    projects: list[str] = field(default_factory=list)  # normalized names, pip's targets
    files: dict[str, Path] = field(default_factory=dict)  # filename -> path
    big_file: str = ""


def build_upstream(root: Path) -> Upstream:
    """~25 small wheel projects + one big wheel, as static PEP 503 pages under root/simple."""
    up = Upstream(root)
    files_dir = root / "files"
    files_dir.mkdir(parents=True)
    rnd = os.urandom(SMALL_PAYLOAD)
    by_project: dict[str, list[str]] = {}
    for i in range(N_PROJECTS):
        project = f"ptbench-{i:02d}"
        n_versions = PAGE_PROJECT_VERSIONS if project == PAGE_PROJECT else 3
        versions = [f"{1 + v // 10}.{v % 10}.0" for v in range(n_versions)]
        for v in versions:
            payload = hashlib.sha256(f"{project}{v}".encode()).digest() + rnd
            path = build_wheel(files_dir, project, v, payload)
            up.files[path.name] = path
            by_project.setdefault(project, []).append(path.name)
        up.projects.append(project)
    # The big file: a valid wheel of incompressible bytes, stored (not deflated).
    big = build_wheel(files_dir, BIG_PROJECT, "1.0.0", os.urandom(BIG_SIZE))
    up.files[big.name] = big
    up.big_file = big.name
    by_project[BIG_PROJECT] = [big.name]
    write_simple(
        root,
        {
            project: [(fn, sha256_file(up.files[fn])) for fn in names]
            for project, names in by_project.items()
        },
    )
    return up


# --------------------------------------------------------------------------- bench/sync.py


def build_small(root: Path, n_projects: int, n_versions: int) -> tuple[list[str], int, int]:
    """n_projects x n_versions valid wheels of 30-60 KB (incompressible payload).

    Returns the projects, the number of files and their total size in bytes.
    """
    files_dir = root / "files"
    files_dir.mkdir(parents=True)
    rng = random.Random(1234)
    noise = os.urandom(64 * 1024)
    pages: dict[str, list[tuple[str, str]]] = {}
    total = 0
    for i in range(n_projects):
        project = f"ptsync-{i:03d}"
        for v in range(n_versions):
            version = f"1.{v}.0"
            size = rng.randint(30 * 1024, 58 * 1024)
            payload = hashlib.sha256(f"{project}{version}".encode()).digest() + noise[:size]
            path = build_wheel(files_dir, project, version, payload)
            data = path.read_bytes()
            total += len(data)
            pages.setdefault(project, []).append((path.name, hashlib.sha256(data).hexdigest()))
    write_simple(root, pages)
    return list(pages), n_projects * n_versions, total


def build_many(root: Path, n_projects: int) -> list[str]:
    """n_projects projects of one tiny wheel each."""
    files_dir = root / "files"
    files_dir.mkdir(parents=True)
    pages = {}
    for i in range(n_projects):
        project = f"ptmany-{i:04d}"
        path = tiny_wheel(files_dir, project)
        pages[project] = [(path.name, sha256_file(path))]
    write_simple(root, pages)
    return list(pages)
