"""The server process commands: `serve` (gunicorn) and `worker` (background tasks).

They import the server's stack when they run, not when the CLI starts: the REST verbs stay
fast to start."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Iterator, MutableMapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pullthrough import __version__
from pullthrough.config import (
    NODE_STARTED_ENV,
    ConfigError,
    Settings,
    load_settings,
    parse_bind,
)

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from pullthrough.services.container import Services


def server_settings(config: str | None) -> Settings | None:
    """The settings of `--config`, else of the file PULLTHROUGH_CONFIG names (as the workers
    read it), else the embedded defaults; each with the environment's overrides."""
    config = config or os.environ.get("PULLTHROUGH_CONFIG") or None
    try:
        return load_settings(str(Path(config).resolve()) if config else None)
    except ConfigError as exc:
        print(f"pullthrough: invalid configuration: {exc}", file=sys.stderr)
        return None


def cannot_start(exc: Exception) -> str:
    """One line on why the data folder or the catalog cannot be used (a folder that is a file,
    no permission, a database that does not answer)."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    cause = getattr(exc, "orig", None) or exc  # SQLAlchemy's: the driver's own error
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[0] if lines else ''}"


def open_services(settings: Settings) -> Services | None:
    """The services, or None once stderr says why they cannot start."""
    from sqlalchemy.exc import SQLAlchemyError

    from pullthrough.catalog.db import NewerCatalog
    from pullthrough.services.container import build_services
    from pullthrough.services.ledger_rebuild import LedgerInUse

    try:
        return build_services(settings)
    except ConfigError as exc:  # the file against the catalog (an overlapping base path)
        print(f"pullthrough: invalid configuration: {exc}", file=sys.stderr)
        return None
    except (OSError, SQLAlchemyError) as exc:
        print(f"pullthrough: cannot start: {cannot_start(exc)}", file=sys.stderr)
        return None
    except (NewerCatalog, LedgerInUse) as exc:
        print(f"pullthrough: cannot start: {exc}", file=sys.stderr)
        return None


def serve(args: argparse.Namespace) -> int:
    if args.bind:
        try:
            parse_bind(args.bind)
        except ValueError as exc:
            print(f"pullthrough: invalid configuration: {exc}", file=sys.stderr)
            return 2
    settings = server_settings(args.config)
    if settings is None:
        return 2
    env = dict(os.environ)
    if args.config:
        env["PULLTHROUGH_CONFIG"] = str(Path(args.config).resolve())
    env["PULLTHROUGH_BIND"] = args.bind or settings.server.bind
    env["PULLTHROUGH_WORKERS"] = str(args.workers or settings.server.workers)
    env["PULLTHROUGH_THREADS"] = str(settings.server.threads)
    if status := start_node(settings, env, [env["PULLTHROUGH_BIND"]]):
        return status
    argv = [sys.executable, "-m", "gunicorn", "-c", "python:pullthrough.gunicorn_conf"]
    os.execve(sys.executable, argv, env)
    return 0  # not reached


def start_node(settings: Settings, env: MutableMapping[str, str], binds: Sequence[str]) -> int:
    """A node's one-time setup, before gunicorn starts its workers: the data folder and catalog
    (prepare_data), the renderings of its last run discarded, an empty folder where all its
    workers count; and in `env`, the environment the workers get, what they read of it (that
    the setup is done: NODE_STARTED_ENV). `serve` runs it before it starts gunicorn; gunicorn
    run directly, in its master (start_in_gunicorn). 0, or the exit status once stderr says why
    the node cannot start."""
    from sqlalchemy.exc import SQLAlchemyError

    from pullthrough.catalog.db import NewerCatalog
    from pullthrough.services.auth import PASSWORD_FILE  # the server's stack, not the CLI's
    from pullthrough.services.container import discard_renderings, prepare_data
    from pullthrough.services.ledger_rebuild import LedgerInUse
    from pullthrough.services.metrics import MULTIPROCESS_ENV, prepare_multiprocess_dir

    data = settings.server.data_dir.resolve()
    # Workers resolve the data folder from the same working directory; make it absolute now.
    env["PULLTHROUGH_SERVER__DATA_DIR"] = str(data)
    try:
        with setup_warnings():  # a busy catalog, a damaged cache ledger set aside
            password, generated = prepare_data(settings)  # before any worker starts
    except ConfigError as exc:  # the file against the catalog (an overlapping base path)
        print(f"pullthrough: invalid configuration: {exc}", file=sys.stderr)
        return 2
    except (OSError, SQLAlchemyError) as exc:
        print(f"pullthrough: cannot start: {cannot_start(exc)}", file=sys.stderr)
        return 1
    except (NewerCatalog, LedgerInUse) as exc:
        print(f"pullthrough: cannot start: {exc}", file=sys.stderr)
        return 1
    env[NODE_STARTED_ENV] = "1"
    discard_renderings(data)  # perhaps an older release's
    # Every worker counts into the same folder, emptied now: /metrics sums them all.
    env[MULTIPROCESS_ENV] = str(prepare_multiprocess_dir(data))
    if generated:
        print(
            f"pullthrough: generated the admin password (user {settings.auth.admin_username!r}):"
            f" {password}\n  kept in {data / PASSWORD_FILE}; set auth.admin_password to choose one",
            file=sys.stderr,
        )
    served = ", ".join(sorted(d.base_path for d in settings.distributions))
    urls = ", ".join(f"http://{bind}/" for bind in binds)
    print(
        f"pullthrough {__version__}: serving {served} on {urls} (data in {data})",
        file=sys.stderr,
        flush=True,
    )
    return 0


def start_in_gunicorn(binds: Sequence[str]) -> None:
    """gunicorn run directly with pullthrough's app (`gunicorn -c deploy/gunicorn.conf.py`):
    the node's setup for gunicorn's master, before it starts the workers, which inherit its
    environment; exits, as `serve` would, when the node cannot start. Nothing when `serve`
    started gunicorn: it did the setup.

    The setup runs in a child process: it imports the server's stack, and the workers the
    master forks would inherit what that made at import, its process id in a task worker's
    name for one (as under `serve`, the master imports none of it)."""
    if os.environ.get(NODE_STARTED_ENV) == "1":
        return
    settings = server_settings(None)
    if settings is None:
        sys.exit(2)
    import multiprocessing

    fork = multiprocessing.get_context("fork")
    receive, send = fork.Pipe(duplex=False)
    child = fork.Process(target=_start_node_child, args=(settings, binds, send))
    child.start()
    send.close()
    child.join()
    if child.exitcode != 0:
        sys.exit(child.exitcode if child.exitcode and child.exitcode > 0 else 1)
    os.environ.update(receive.recv())
    receive.close()


def _start_node_child(settings: Settings, binds: Sequence[str], send: Connection) -> None:
    env: dict[str, str] = {}
    if status := start_node(settings, env, binds):
        sys.exit(status)
    send.send(env)


@contextmanager
def setup_warnings() -> Iterator[None]:
    """What the setup warns of, on stderr with the time, unless logging is set up already."""
    root = logging.getLogger()
    if root.handlers:
        yield
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)


def worker(args: argparse.Namespace) -> int:
    """A task worker beside (or instead of) the ones embedded in the server processes."""
    settings = server_settings(args.config)
    if settings is None:
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    services = open_services(settings)
    if services is None:
        return 1
    task_worker = services.new_worker()
    signal.signal(signal.SIGTERM, lambda *_: task_worker.stop(timeout=0))
    print(f"pullthrough worker {task_worker.name}: waiting for tasks", file=sys.stderr, flush=True)
    try:
        task_worker.run()
    except KeyboardInterrupt:
        pass
    finally:
        services.close()
    return 0


def advisories_import(args: argparse.Namespace) -> int:
    """Load OSV records into the catalog; every process screens pages with them at once."""
    settings = server_settings(args.config)
    if settings is None:
        return 2
    services = open_services(settings)
    if services is None:
        return 1
    try:
        report = services.advisories.import_path(Path(args.path))
    except OSError as exc:
        print(f"pullthrough: cannot read {args.path}: {exc}", file=sys.stderr)
        return 2
    finally:
        services.registry.changed()
        services.close()
    for problem in report.invalid:
        print(f"pullthrough: skipped an invalid record: {problem}", file=sys.stderr)
    print(f"advisories from {args.path}: {report.summary()}")
    return 1 if report.invalid else 0


CONFIG_HELP = "TOML configuration file (default: $PULLTHROUGH_CONFIG, else embedded defaults)"


def add_commands(sub: Any) -> None:
    parser = sub.add_parser("serve", help="run the server under gunicorn")
    parser.add_argument("--config", help=CONFIG_HELP)
    parser.add_argument("--bind", help="HOST:PORT to listen on (default: from config)")
    parser.add_argument("--workers", type=int, default=0, help="worker processes (default: auto)")
    parser.set_defaults(func=serve, api=False)
    parser = sub.add_parser("worker", help="run background tasks (sync, orphan cleanup)")
    parser.add_argument("--config", help=CONFIG_HELP)
    parser.set_defaults(func=worker, api=False)
    advisories = sub.add_parser("advisories", help="security advisories (OSV), offline")
    verbs = advisories.add_subparsers(dest="verb", required=True, metavar="VERB")
    parser = verbs.add_parser(
        "import",
        help="load OSV records: a .json file, a directory of them, or a zip as OSV publishes",
        description="Malicious-package records (MAL-) block the versions they name on every"
        " distribution (block_malicious); the others show in the JSON API's `vulnerabilities`"
        " and hold versions where hold_advisories is on. Importing again is idempotent; a"
        " record withdrawn since lifts what it blocked. Exit status 1 when a record was invalid"
        " (the valid ones are loaded).",
    )
    parser.add_argument("path", metavar="PATH")
    parser.add_argument("--config", help=CONFIG_HELP)
    parser.set_defaults(func=advisories_import, api=False)
