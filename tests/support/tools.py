"""Run real pip / uv against loopback servers, isolated from the machine's configuration."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["clean_env", "make_venv", "ok", "poetry_settings", "run", "run_pip"]

_DROP_PREFIXES = ("PIP_", "UV_")
_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


def clean_env(**extra: str) -> dict[str, str]:
    """os.environ without PIP_*/UV_*/proxy variables, with ``PIP_CONFIG_FILE=/dev/null``.

    Loopback traffic is never proxied (``NO_PROXY=127.0.0.1,localhost``). ``extra`` is added
    last.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.upper().startswith(_DROP_PREFIXES) and k.lower() not in _PROXY_VARS
    }
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env.update(extra)
    return env


def run_pip(
    args: Sequence[str],
    *,
    python: Path | str | None = None,
    timeout: float = 60,
    check: bool = True,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``<this python> -m pip --isolated --no-cache-dir [--python PY] <args>``.

    Output is captured as text; on failure (``check=True``) the AssertionError shows it.
    """
    cmd = [sys.executable, "-m", "pip", "--isolated", "--no-cache-dir", "--timeout", "10"]
    if python is not None:
        cmd += ["--python", str(python)]
    cmd += list(args)
    proc = subprocess.run(
        cmd,
        env=env if env is not None else clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"pip failed ({proc.returncode}): {cmd}\n--- stdout\n{proc.stdout}\n"
            f"--- stderr\n{proc.stderr}"
        )
    return proc


def make_venv(path: Path, *, timeout: float = 60) -> Path:
    """Create a venv without pip (``uv venv``, offline); return its python executable.

    Install into it with ``run_pip([...], python=<returned path>)``.
    """
    subprocess.run(
        [
            sys.executable,
            "-m",
            "uv",
            "venv",
            "--quiet",
            "--offline",
            "--python",
            sys.executable,
            str(path),
        ],
        env=clean_env(),
        check=True,
        capture_output=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    scripts = "Scripts" if os.name == "nt" else "bin"
    exe = "python.exe" if os.name == "nt" else "python"
    return path / scripts / exe


def run(
    cmd: Sequence[str], env: dict[str, str], cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """A client's command line, its output captured, no input; it may fail (see `ok`)."""
    return subprocess.run(
        list(cmd),
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    """The finished command, which must have succeeded (else its output is the message)."""
    assert proc.returncode == 0, f"{proc.args}: {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def poetry_settings(root: Path) -> dict[str, str]:
    """poetry's environment, kept in `root`: its config, cache and data there, no keyring, no
    questions, this venv's python, the project's venv in the project."""
    return {
        "POETRY_CONFIG_DIR": str(root / "poetry-config"),
        "POETRY_CACHE_DIR": str(root / "poetry-cache"),
        "POETRY_DATA_DIR": str(root / "poetry-data"),
        "POETRY_KEYRING_ENABLED": "false",
        "POETRY_NO_INTERACTION": "1",
        "POETRY_VIRTUALENVS_USE_POETRY_PYTHON": "true",  # this venv's python, no other
        "POETRY_VIRTUALENVS_IN_PROJECT": "true",
        "POETRY_REQUESTS_TIMEOUT": "20",
    }
