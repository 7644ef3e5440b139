"""The upstreams nginx serves: generated valid wheels, as static PEP 503 pages with #sha256= links.

root/files/<wheel> and root/simple/index.html, root/simple/<project>/index.html; bench/run.py's
big project also has root/simple/ptbench-huge/index.json (PEP 691, which nginx answers to an
Accept header that names it) and PyPI-like file paths, root/packages/<h>/<h>/<h>/<wheel>.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
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
# (e)'s big page, sized like boto3's or sqlalchemy's on PyPI: 200 versions x 20 wheels (5 CPython
# versions x 4 platforms), each a distinct tiny valid wheel with its .metadata file
HUGE_PROJECT = "ptbench-huge"
HUGE_VERSIONS = 200
HUGE_PYTHONS = ("cp39", "cp310", "cp311", "cp312", "cp313")
HUGE_PLATFORMS = (
    "manylinux_2_17_x86_64.manylinux2014_x86_64",
    "manylinux_2_17_aarch64.manylinux2014_aarch64",
    "macosx_11_0_arm64",
    "win_amd64",
)
HUGE_YANKED_EVERY = 50  # every 50th version yanked, with a reason

_DATE = (2024, 1, 1, 0, 0, 0)  # every zip entry's timestamp


# --------------------------------------------------------------------------- wheels


def _record_hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_wheel(
    dest: Path,
    project: str,
    version: str,
    entries: list[tuple[str, bytes, int]],
    tag: str = "py3-none-any",
) -> Path:
    """dest/<dist>-<version>-<tag>.whl of entries (name, data, compression) + RECORD."""
    dist = project.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    record = "".join(f"{p},{_record_hash(d)},{len(d)}\n" for p, d, _ in entries)
    record += f"{info}/RECORD,,\n"
    path = dest / f"{dist}-{version}-{tag}.whl"
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


def write_simple(
    root: Path, pages: dict[str, list[tuple[str, str]]], also_listed: tuple[str, ...] = ()
) -> None:
    """root/simple/index.html and root/simple/<project>/index.html; links to ../../files/.

    pages: project -> [(filename, sha256 hex digest)]; also_listed: more projects in the index
    (their pages written apart).
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
    index_links += [f'    <a href="{p}/">{p}</a><br/>' for p in also_listed]
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
    huge_files: int = 0  # files on HUGE_PROJECT's page
    huge_sizes: dict[str, int] = field(default_factory=dict)  # "html", "json" -> page bytes


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
        also_listed=(HUGE_PROJECT,),
    )
    up.huge_files, up.huge_sizes = build_huge(root)
    return up


def build_huge(root: Path) -> tuple[int, dict[str, int]]:
    """HUGE_PROJECT: its wheels under root/packages/ (PyPI's path layout), each with its
    .metadata, and its page as root/simple/<project>/index.html and index.json, with what
    PyPI's pages carry (requires-python, core-metadata, yanked; in JSON size and upload-time).

    Returns the number of files and the pages' sizes in bytes ("html", "json").
    """
    dist = HUGE_PROJECT.replace("-", "_")
    meta_dir = root / "metadata"
    meta_dir.mkdir()
    entries: list[dict[str, object]] = []
    links: list[str] = []
    versions: list[str] = []
    for v in range(HUGE_VERSIONS):
        version = f"{1 + v // 100}.{v // 10 % 10}.{v % 10}"
        versions.append(version)
        metadata = (
            f"Metadata-Version: 2.1\nName: {HUGE_PROJECT}\nVersion: {version}\n"
            "Summary: pullthrough benchmark package (a big page)\nRequires-Python: >=3.8\n"
        ).encode()
        meta_path = meta_dir / f"{version}.METADATA"
        meta_path.write_bytes(metadata)
        meta_sha = hashlib.sha256(metadata).hexdigest()
        yanked: str | bool = "broken build" if v % HUGE_YANKED_EVERY == 7 else False
        for i, (py, plat) in enumerate(
            (py, plat) for py in HUGE_PYTHONS for plat in HUGE_PLATFORMS
        ):
            tag = f"{py}-{py}-{plat}"
            blake = hashlib.blake2b(f"{dist}{version}{tag}".encode(), digest_size=32).hexdigest()
            rel = f"packages/{blake[:2]}/{blake[2:4]}/{blake[4:]}"
            folder = root / rel
            folder.mkdir(parents=True)
            wheel = write_wheel(
                folder,
                HUGE_PROJECT,
                version,
                [
                    (f"{dist}/__init__.py", f'__version__ = "{version}"\n'.encode(), 0),
                    (f"{dist}-{version}.dist-info/METADATA", metadata, 0),
                    (
                        f"{dist}-{version}.dist-info/WHEEL",
                        f"Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: {tag}\n".encode(),
                        0,
                    ),
                ],
                tag,
            )
            os.link(meta_path, folder / f"{wheel.name}.metadata")
            wheel_bytes = wheel.read_bytes()
            sha = hashlib.sha256(wheel_bytes).hexdigest()
            uploaded = f"20{15 + v // 25}-{1 + v % 12:02d}-{1 + v % 28:02d}T{i:02d}:17:42.{v:06d}Z"
            entries.append(
                {
                    "core-metadata": {"sha256": meta_sha},
                    "data-dist-info-metadata": {"sha256": meta_sha},
                    "filename": wheel.name,
                    "hashes": {"sha256": sha},
                    "provenance": None,
                    "requires-python": ">=3.8",
                    "size": len(wheel_bytes),
                    "upload-time": uploaded,
                    "url": f"../../{rel}/{wheel.name}",
                    "yanked": yanked,
                }
            )
            attrs = (
                f'data-requires-python="{html.escape(">=3.8")}" '
                f'data-dist-info-metadata="sha256={meta_sha}" '
                f'data-core-metadata="sha256={meta_sha}"'
            )
            if yanked:
                attrs += f' data-yanked="{html.escape(str(yanked))}"'
            links.append(f'    <a href="../../{rel}/{wheel.name}#sha256={sha}" {attrs}>'
                         f"{wheel.name}</a><br />")  # fmt: skip
    page_dir = root / "simple" / HUGE_PROJECT
    page_dir.mkdir()
    page = (
        "<!DOCTYPE html>\n<html>\n  <head>\n"
        '    <meta name="pypi:repository-version" content="1.1">\n'
        f"    <title>Links for {HUGE_PROJECT}</title>\n  </head>\n  <body>\n"
        f"    <h1>Links for {HUGE_PROJECT}</h1>\n" + "\n".join(links) + "\n  </body>\n</html>\n"
    ).encode()
    doc = {
        "meta": {"_last-serial": 24242424, "api-version": "1.1"},
        "name": HUGE_PROJECT,
        "files": entries,
        "versions": versions,
    }
    page_json = json.dumps(doc, separators=(",", ":")).encode()
    (page_dir / "index.html").write_bytes(page)
    (page_dir / "index.json").write_bytes(page_json)
    return len(entries), {"html": len(page), "json": len(page_json)}


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
