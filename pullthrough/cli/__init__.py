"""The command line: server processes (server) and the REST verbs (resources, client)."""

from pullthrough.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
