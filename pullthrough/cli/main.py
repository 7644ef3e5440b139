"""The `pullthrough` command: `serve` and `worker` run the server's processes (cli.server); the
other verbs drive a server's REST API the way `pulp python ...` (pulp-cli) does, printing JSON
(cli.resources, over cli.client)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tomllib
from pathlib import Path
from typing import Any

from pullthrough import __version__
from pullthrough.cli import bundles, resources, server, warm
from pullthrough.cli.client import DEFAULT_BASE_URL, Client, CliError
from pullthrough.cli.tree import Tree, formatter, positive_float

CLI_KEYS = ("base_url", "username", "password")
EPILOG = """\
The API verbs mirror `pulp python ...` (pulp-cli) and print JSON. Names are looked up as
pulp-cli does; `--remote ""` / `--repository ""` clear a reference. Settings: flag, then
environment (PULLTHROUGH_URL, PULLTHROUGH_USERNAME, PULLTHROUGH_PASSWORD), then the [cli]
table (base_url, username, password) of --config FILE or ~/.config/pullthrough/cli.toml.
The global --config (before the verb) is the client's; `serve --config` is the server's.
Destroy commands print nothing; -b prints the task instead of waiting for it.

A private index, step by step:
  pullthrough repository create --name foo
  pullthrough distribution create --name foo --base-path foo --repository foo
  twine upload --repository-url http://HOST/pypi/foo/legacy/ -u admin dist/*
  pip install --index-url http://HOST/pypi/foo/simple/ PACKAGE
"""


def _default_cli_config() -> Path:
    root = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(root) / "pullthrough" / "cli.toml"


def _read_cli_config(explicit: str | None) -> dict[str, str]:
    """The `[cli]` table of the client's TOML file (`--config`, else the default if present)."""
    path = Path(explicit) if explicit else _default_cli_config()
    if not explicit and not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CliError(f"Could not read {path}: {exc.strerror or exc}.") from None
    except tomllib.TOMLDecodeError as exc:
        raise CliError(f"{path} is not valid TOML: {exc}.") from None
    table = data.get("cli", {})
    unknown = sorted(set(table) - set(CLI_KEYS)) if isinstance(table, dict) else ["cli"]
    if unknown:
        raise CliError(f"{path}: unknown [cli] setting(s) {', '.join(unknown)}; use {CLI_KEYS}.")
    if not all(isinstance(v, str) for v in table.values()):
        raise CliError(f"{path}: [cli] settings must be strings.")
    return dict(table)


def _client(args: argparse.Namespace) -> Client:
    """Flag, then environment, then config file, then default - for each setting."""
    file = _read_cli_config(args.cli_config)
    env = os.environ

    def pick(flag: str | None, var: str, key: str) -> str | None:
        return flag or env.get(var) or file.get(key)

    return Client(
        pick(args.base_url, "PULLTHROUGH_URL", "base_url") or DEFAULT_BASE_URL,
        pick(args.api_username, "PULLTHROUGH_USERNAME", "username") or "admin",
        pick(args.api_password, "PULLTHROUGH_PASSWORD", "password"),
        task_timeout=args.timeout,
        background=args.background,
    )


def _global_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("API client options (before the verb)")
    group.add_argument(
        "--base-url", metavar="URL", help=f"the server (env PULLTHROUGH_URL; {DEFAULT_BASE_URL})"
    )
    group.add_argument(
        "--username",
        dest="api_username",
        metavar="USER",
        help="API user (env PULLTHROUGH_USERNAME; admin)",
    )
    group.add_argument(
        "--password",
        dest="api_password",
        metavar="PASSWORD",
        help="API password (env PULLTHROUGH_PASSWORD)",
    )
    group.add_argument(
        "--config",
        dest="cli_config",
        metavar="FILE",
        help="client settings: TOML with a [cli] table (default ~/.config/pullthrough/cli.toml)",
    )
    group.add_argument(
        "-b", "--background", action="store_true", help="print the task, do not wait for it"
    )
    group.add_argument(
        "--timeout",
        type=positive_float,
        default=300.0,
        metavar="SECONDS",
        help="give up waiting for a task after this long (300)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pullthrough",
        description="Python package index server, and a client for its REST API",
        epilog=EPILOG,
        formatter_class=formatter,
    )
    parser.add_argument("--version", action="version", version=f"pullthrough {__version__}")
    _global_options(parser)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    server.add_commands(sub)
    bundles.add_commands(sub)
    resources.add_commands(Tree(sub))
    warm.add_commands(Tree(sub))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not getattr(args, "api", True):
        return int(args.func(args))
    try:
        result = args.func(_client(args), args)
    except CliError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    if result is not None:
        _print(result)
    return 0


def _print(result: Any) -> None:
    try:
        print(json.dumps(result, indent=2), flush=True)
    except BrokenPipeError:  # `| head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
