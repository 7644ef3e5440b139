"""`pullthrough export` and `pullthrough import`: offline bundles, run on the server's host with
its configuration (the catalog and the file store, whichever backends it uses), like
`advisories import`. A running server sees an import at its next request."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import Any

from pullthrough import __version__
from pullthrough.cli.server import CONFIG_HELP, open_services, server_settings


def _actor() -> str:
    """Who imported: the operating-system user running the command (for the audit trail)."""
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):  # no user name for this uid (a container)
        return "cli"


def export(args: argparse.Namespace) -> int:
    settings = server_settings(args.config)
    if settings is None:
        return 2
    from pullthrough.services.bundles import BundleError, Bundles
    from pullthrough.storage.store import StorageUnavailable

    target = Path(args.file)
    if not target.parent.is_dir():
        print(f"pullthrough: no folder {target.parent} to write the bundle in", file=sys.stderr)
        return 2
    services = open_services(settings)
    if services is None:
        return 1
    try:
        report = Bundles.of(services).export(
            args.repository, args.version, target, generator=f"pullthrough {__version__}"
        )
    except BundleError as exc:
        print(f"pullthrough: cannot export: {exc}", file=sys.stderr)
        return 1
    except (StorageUnavailable, OSError) as exc:
        print(f"pullthrough: cannot write {target}: {exc}", file=sys.stderr)
        return 1
    finally:
        services.close()
    print(f"exported {report.summary()} to {target}")
    return 0


def import_(args: argparse.Namespace) -> int:
    settings = server_settings(args.config)
    if settings is None:
        return 2
    from pullthrough.core.bundles import InvalidBundle
    from pullthrough.services.bundles import BundleError, Bundles
    from pullthrough.storage.store import StorageFull, StorageUnavailable

    source = Path(args.file)
    if not source.is_file():
        print(f"pullthrough: cannot read {source}: no such file", file=sys.stderr)
        return 2
    services = open_services(settings)
    if services is None:
        return 1
    try:
        report = Bundles.of(services).import_bundle(
            source, args.repository, add_only=args.add, actor=_actor()
        )
    except InvalidBundle as exc:
        print(f"pullthrough: refused {source}, nothing imported: {exc}", file=sys.stderr)
        return 1
    except BundleError as exc:
        print(f"pullthrough: cannot import {source}, nothing imported: {exc}", file=sys.stderr)
        return 1
    except (StorageFull, StorageUnavailable, OSError) as exc:
        print(f"pullthrough: cannot import {source}, nothing imported: {exc}", file=sys.stderr)
        return 1
    finally:
        services.close()
    print(f"imported {source}: {report.summary()}")
    return 0


def _version(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        number = -1
    if number < 0:
        raise argparse.ArgumentTypeError(f"not a version number: {text!r}")
    return number


def add_commands(sub: Any) -> None:
    parser = sub.add_parser(
        "export",
        help="write a repository version to one file, for a site with no network",
        description="Writes a tar file: manifest.json (every package's filename, project,"
        " version, sha256, size, upload time, requires-python, yanked, uploader; the"
        " repository's yanks and project statuses), the files under files/ and their PEP 658"
        " metadata under metadata/. Runs on the server's host with its --config (the catalog"
        " and the file store); the server may be running. Every file must be stored here:"
        " on-demand content not fetched yet cannot be exported.",
    )
    parser.add_argument("file", metavar="FILE", help="the bundle to write (replaced if there)")
    parser.add_argument("--repository", required=True, help="the repository's name")
    parser.add_argument("--version", type=_version, help="the version number (default: the latest)")
    parser.add_argument("--config", help=CONFIG_HELP)
    parser.set_defaults(func=export, api=False)
    parser = sub.add_parser(
        "import",
        help="load a bundle written by `pullthrough export` into a repository",
        description="Checks the manifest and every file's size and sha256 first: a bundle"
        " with any problem is refused whole (exit status 1, nothing changed). Then stores"
        " the files (one already stored with the same sha256 is reused) and makes ONE new"
        " version of the repository holding the bundle's packages, with its yanks and"
        " project statuses. Importing the same bundle again makes no version. Runs on the"
        " server's host with its --config; a running server sees the new version at once.",
    )
    parser.add_argument("file", metavar="FILE", help="the bundle")
    parser.add_argument(
        "--repository",
        help="the repository to import into (default: the bundle's; created if missing)",
    )
    parser.add_argument(
        "--add",
        action="store_true",
        help="add the bundle's packages to what the repository holds (default: the new"
        " version holds exactly the bundle's, and its yanks and statuses are the bundle's)",
    )
    parser.add_argument("--config", help=CONFIG_HELP)
    parser.set_defaults(func=import_, api=False)
