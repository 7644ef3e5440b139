"""The README does not drift from the code: every setting documented with its key, every file it
names present, and CI running exactly the test command it gives."""

from __future__ import annotations

import re
from pathlib import Path

from pullthrough.config import DISTRIBUTION_FIELDS, REMOTE_FIELDS, SECTIONS
from pullthrough.core.fields import fields_of

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def declared_keys() -> list[str]:
    keys = [f"{section}.{f.name}" for section, cls in SECTIONS.items() for f in fields_of(cls)]
    keys += ["remotes[].name", "distributions[].name"]
    keys += [f"remotes[].{f.name}" for f in REMOTE_FIELDS]
    return keys + [f"distributions[].{f.name}" for f in DISTRIBUTION_FIELDS]


def test_every_setting_has_a_row_in_the_configuration_table() -> None:
    rows = set(re.findall(r"^\| `([^`]+)` \|", README, re.MULTILINE))
    assert len(declared_keys()) > 40
    assert [key for key in declared_keys() if key not in rows] == []
    keys = {row for row in rows if re.fullmatch(r"[a-z_]+(\[\])?\.[a-z_]+", row)}
    assert keys - set(declared_keys()) == set()


def test_files_the_readme_names_exist() -> None:
    """Paths in backquotes, from the repository's root or (the architecture section's) from
    the package's."""
    named = re.findall(r"`([\w.-]+/[\w./-]*\.(?:py|toml|md|example|service)|\.ci/run)`", README)
    assert len(named) > 20
    missing = [
        n for n in named if not (ROOT / n).exists() and not (ROOT / "pullthrough" / n).exists()
    ]
    assert missing == []


def test_ci_runs_the_readme_test_command_with_lint_and_types_between() -> None:
    commands = re.findall(r"```sh\n(.+?)\n```", README)
    install, test = commands[1].split(" && ")[:-1], commands[1].split(" && ")[-1]
    assert test == ".venv/bin/pytest"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    lint = ".venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy"
    assert ci[-3:] == [" && ".join(install), lint, test]
