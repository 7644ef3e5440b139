"""The README does not drift from the code: every setting documented with its key and default,
every configuration example and environment variable it (or deploy/) shows accepted, every file
it names present, and CI running exactly the test command it gives."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

from pullthrough.cli.main import build_parser
from pullthrough.config import (
    DISTRIBUTION_FIELDS,
    REMOTE_FIELDS,
    SECTIONS,
    ConfigError,
    load_settings,
)
from pullthrough.core.fields import Field, fields_of

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def declared_keys() -> list[str]:
    keys = [f"{section}.{f.name}" for section, cls in SECTIONS.items() for f in fields_of(cls)]
    keys += ["remotes[].name", "distributions[].name"]
    keys += [f"remotes[].{f.name}" for f in REMOTE_FIELDS]
    return keys + [f"distributions[].{f.name}" for f in DISTRIBUTION_FIELDS]


def declared_fields() -> dict[str, Field]:
    fields = {f"{section}.{f.name}": f for section, cls in SECTIONS.items() for f in fields_of(cls)}
    fields |= {f"remotes[].{f.name}": f for f in REMOTE_FIELDS}
    return fields | {f"distributions[].{f.name}": f for f in DISTRIBUTION_FIELDS}


def test_every_setting_has_a_row_in_the_configuration_table() -> None:
    rows = set(re.findall(r"^\| `([^`]+)` \|", README, re.MULTILINE))
    assert len(declared_keys()) > 40
    assert [key for key in declared_keys() if key not in rows] == []
    keys = {row for row in rows if re.fullmatch(r"[a-z_]+(\[\])?\.[a-z_]+", row)}
    assert keys - set(declared_keys()) == set()


def test_the_configuration_table_gives_each_setting_its_default() -> None:
    """The default column read as the setting's own parser reads a value (`2GiB`, `10m`,
    `[]`; `none` is null) equals the declared default."""
    cells = dict(re.findall(r"^\| `([^`]+)` \| ([^|]+?) \|", README, re.MULTILINE))
    wrong = {}
    for key, field in declared_fields().items():
        cell = cells[key]
        quoted = re.match(r"`([^`]*)`", cell)
        if field.required:
            documented, expected = cell, "(required)"
        elif cell.startswith("none"):
            documented, expected = None, field.default
        elif quoted is not None:
            text = "" if quoted.group(1) == '""' else quoted.group(1)
            documented, expected = field.parse(text), field.default
        else:
            documented, expected = cell, f"`{field.default}`"
        if documented != expected:
            wrong[key] = (
                f"README says {cell}, the code {'(required)' if field.required else repr(field.default)}"
            )
    assert wrong == {}


def test_the_readmes_toml_examples_and_the_example_file_load(tmp_path: Path) -> None:
    """Each ```toml block is a config file a user may copy as it is."""
    blocks = re.findall(r"```toml\n(.+?)```", README, re.DOTALL)
    assert len(blocks) >= 3
    files = [ROOT / "config" / "pullthrough.example.toml"]
    for number, block in enumerate(blocks):
        files.append(tmp_path / f"readme-{number}.toml")
        files[-1].write_text(block, encoding="utf-8")
    refused = {}
    for path in files:
        try:
            load_settings(path, environ={})
        except ConfigError as exc:
            refused[path.name] = str(exc).replace(str(path), path.name)
    assert refused == {}


def test_environment_variables_named_in_the_docs_exist() -> None:
    """PULLTHROUGH_<SECTION>__<KEY> (and a remote's or distribution's) name a declared setting;
    the others (PULLTHROUGH_URL, PULLTHROUGH_ACCESS_LOG, ...) are read by the code."""
    texts = [README] + [
        path.read_text(encoding="utf-8")
        for folder in ("deploy", "config")
        for path in sorted((ROOT / folder).iterdir())
    ]
    found = [hit for text in texts for hit in re.findall(r"\b(PULLTHROUGH_[A-Z0-9_]+)(<?)", text)]
    named = {var.rstrip("_") for var, placeholder in found if not placeholder}  # not ..._<KEY>
    assert len(named) > 15
    source = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "pullthrough").rglob("*.py"))
    keys = set(declared_fields())
    unknown = []
    for var in sorted(named):
        path = var.removeprefix("PULLTHROUGH_").lower().split("__")
        if len(path) == 1:
            known = f'"{var}"' in source
        elif path[0] in ("remotes", "distributions"):
            known = len(path) == 3 and f"{path[0]}[].{path[2]}" in keys
        else:
            known = len(path) == 2 and ".".join(path) in keys
        if not known:
            unknown.append(var)
    assert unknown == []


def pullthrough_commands() -> list[str]:
    """The arguments of every `pullthrough` command line in README's ```sh blocks (comments
    dropped; `[--option value]` taken as given)."""
    blocks = re.findall(r"^```sh\n(.*?)^```", README, re.DOTALL | re.MULTILINE)
    lines = [line.split("  #")[0] for block in blocks for line in block.splitlines()]
    found = [
        m for line in lines for m in re.findall(r"(?:^|&& )\S*pullthrough (.+?)(?= && |$)", line)
    ]
    return [re.sub(r"\[(--[^\]]+)\]", r"\1", command).strip() for command in found]


def test_the_cli_accepts_every_command_the_readme_shows() -> None:
    commands = pullthrough_commands()
    assert len(commands) > 20
    refused = {}
    for command in commands:
        errors = io.StringIO()
        try:
            with contextlib.redirect_stderr(errors):
                build_parser().parse_args(shlex.split(command))
        except SystemExit:
            refused[command] = errors.getvalue().strip().splitlines()[-1]
    assert refused == {}


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
