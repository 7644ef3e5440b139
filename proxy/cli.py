"""The `pullthrough` command: `serve` runs the server under gunicorn."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from proxy import __version__
from proxy.config import ConfigError, _bind, load_settings
from proxy.services.auth import PASSWORD_FILE, admin_password


def _serve(args: argparse.Namespace) -> int:
    config = str(Path(args.config).resolve()) if args.config else None
    try:
        if args.bind:
            _bind(args.bind)
        settings = load_settings(config)
    except (ConfigError, ValueError) as exc:
        print(f"pullthrough: invalid configuration: {exc}", file=sys.stderr)
        return 2
    env = dict(os.environ)
    if config:
        env["PULLTHROUGH_CONFIG"] = config
    # Workers resolve the data folder from the same working directory; make it absolute now.
    env["PULLTHROUGH_SERVER__DATA_DIR"] = str(settings.server.data_dir.resolve())
    env["PULLTHROUGH_BIND"] = args.bind or settings.server.bind
    env["PULLTHROUGH_WORKERS"] = str(args.workers or settings.server.workers)
    env["PULLTHROUGH_THREADS"] = str(settings.server.threads)
    settings.server.data_dir.mkdir(parents=True, exist_ok=True)
    password, generated = admin_password(settings.auth, settings.server.data_dir)
    if generated:
        print(
            f"pullthrough: generated the admin password (user {settings.auth.admin_username!r}):"
            f" {password}\n  kept in {settings.server.data_dir.resolve() / PASSWORD_FILE};"
            " set auth.admin_password to choose one",
            file=sys.stderr,
        )
    print(
        f"pullthrough {__version__}: serving {', '.join(sorted(d.base_path for d in settings.distributions))}"
        f" on http://{env['PULLTHROUGH_BIND']}/ (data in {env['PULLTHROUGH_SERVER__DATA_DIR']})",
        file=sys.stderr,
        flush=True,
    )
    argv = [sys.executable, "-m", "gunicorn", "-c", "python:proxy.gunicorn_conf"]
    os.execve(sys.executable, argv, env)
    return 0  # not reached


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pullthrough", description="Python package index server")
    parser.add_argument("--version", action="version", version=f"pullthrough {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the server under gunicorn")
    serve.add_argument("--config", help="TOML configuration file (default: embedded defaults)")
    serve.add_argument("--bind", help="HOST:PORT to listen on (default: from config)")
    serve.add_argument("--workers", type=int, default=0, help="worker processes (default: auto)")
    serve.set_defaults(func=_serve)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
