"""The programs the benchmarks run: nginx and wrk (apt-get), proxpi (its own venv), pullthrough."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from bench.common import PROXPI_VENV, PULLTHROUGH, BenchError, log


def apt_install(packages: list[str]) -> bool:
    """apt-get install (as root only), with apt-get update only if the first attempt fails."""
    if not shutil.which("apt-get") or os.geteuid() != 0:
        return False
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]

    def install() -> bool:
        log(f"apt-get install {' '.join(packages)}")
        r = subprocess.run(cmd, env=env, capture_output=True, timeout=600, check=False)
        return r.returncode == 0

    if install():
        return True
    log("apt-get update (package lists missing or stale)")
    subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600)
    return install()


def find_program(name: str) -> str | None:
    """name on PATH, or in an sbin directory that may be missing from PATH (nginx)."""
    sbin = (f"/usr/sbin/{name}", f"/usr/local/sbin/{name}")
    return shutil.which(name) or next((p for p in sbin if os.access(p, os.X_OK)), None)


def ensure_tools(want_wrk: bool) -> tuple[str, str | None]:
    """nginx (required) and, if wanted, wrk (optional); apt-get installs the missing ones."""
    wanted = ["nginx", "wrk"] if want_wrk else ["nginx"]
    missing = [name for name in wanted if not find_program(name)]
    if missing and not apt_install(missing):
        log(f"could not install {missing} with apt-get")
    nginx = find_program("nginx")
    if not nginx:
        raise BenchError("nginx is required (apt-get install nginx)")
    wrk = find_program("wrk") if want_wrk else None
    if want_wrk and not wrk:
        log("wrk unavailable: falling back to a Python load loop (it may be the bottleneck)")
    return nginx, wrk


def ensure_proxpi() -> Path | None:
    """proxpi and gunicorn in their own venv, bench/.venvs/proxpi; its bin dir, or None."""
    bin_dir = PROXPI_VENV / "bin"
    check = [str(bin_dir / "python"), "-c", "import proxpi.server, gunicorn"]
    env = dict(os.environ, PROXPI_INDEX_URL="http://127.0.0.1:9/simple/")
    if (bin_dir / "gunicorn").exists():
        r = subprocess.run(check, capture_output=True, timeout=60, env=env, check=False)
        if r.returncode == 0:
            return bin_dir
    log(f"installing proxpi into {PROXPI_VENV}")
    try:
        if not (bin_dir / "python").exists():
            subprocess.run(
                [sys.executable, "-m", "venv", str(PROXPI_VENV)], check=True, timeout=120
            )
        subprocess.run(
            [str(bin_dir / "python"), "-m", "pip", "install", "-q", "proxpi", "gunicorn"],
            check=True,
            timeout=600,
        )
        subprocess.run(check, check=True, capture_output=True, timeout=60, env=env)
    except (subprocess.SubprocessError, OSError) as exc:
        log(f"proxpi unavailable: {exc}")
        return None
    return bin_dir


def pullthrough_available() -> tuple[bool, str]:
    """Whether `pullthrough serve` runs; if not, why."""
    if not PULLTHROUGH.exists():
        return False, f"{PULLTHROUGH} missing"
    r = subprocess.run(
        [str(PULLTHROUGH), "serve", "--help"], capture_output=True, timeout=60, check=False
    )
    if r.returncode != 0:
        err = (r.stderr or r.stdout).decode(errors="replace").strip().splitlines()
        return False, f"`pullthrough serve --help` failed: {err[-1] if err else r.returncode}"
    return True, ""
