"""Subcommand plumbing for argparse: nouns (`group`) and runnable verbs (`verb`)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from pullthrough.cli.client import Client

Handler = Callable[[Client, argparse.Namespace], Any]


def formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=36)


class Tree:
    """`group()` for a noun, `verb()` for a command that runs a Handler against the API."""

    def __init__(self, actions: Any) -> None:
        self.actions = actions

    def group(self, name: str, help: str) -> Tree:
        parser = self.actions.add_parser(
            name, help=help, description=help, formatter_class=formatter
        )
        return Tree(parser.add_subparsers(dest=f"{name}_verb", required=True, metavar="VERB"))

    def verb(self, name: str, help: str, func: Handler) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = self.actions.add_parser(
            name, help=help, description=help, formatter_class=formatter
        )
        parser.set_defaults(func=func)
        return parser

    @property
    def parsers(self) -> dict[str, argparse.ArgumentParser]:
        return dict(self.actions.choices)


def flag(parser: argparse.ArgumentParser, name: str, help: str) -> None:
    """`--x/--no-x`; unset when neither is given (the server's value or default stays)."""
    parser.add_argument(f"--{name}", action=argparse.BooleanOptionalAction, help=help)


def non_negative(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return number


def positive_float(value: str) -> float:
    number = float(value)
    if number <= 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return number
