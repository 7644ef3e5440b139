"""The `pullthrough` command: `serve` runs the server under gunicorn; the other verbs drive a
server's REST API the way `pulp python ...` (pulp-cli) does, printing JSON (see pullthrough.client)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pullthrough import __version__
from pullthrough.client import (
    CONTENT,
    DEFAULT_BASE_URL,
    DISTRIBUTION,
    PUBLICATION,
    REMOTE,
    REPOSITORY,
    TASK,
    Client,
    CliError,
    Kind,
)
from pullthrough.config import ConfigError, load_settings, parse_bind
from pullthrough.services.auth import PASSWORD_FILE
from pullthrough.services.container import prepare_data


def _serve(args: argparse.Namespace) -> int:
    config = str(Path(args.config).resolve()) if args.config else None
    try:
        if args.bind:
            parse_bind(args.bind)
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
    password, generated = prepare_data(settings)  # before any worker starts
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
    argv = [sys.executable, "-m", "gunicorn", "-c", "python:pullthrough.gunicorn_conf"]
    os.execve(sys.executable, argv, env)
    return 0  # not reached


# ---- client settings ----------------------------------------------------------------------

Handler = Callable[[Client, argparse.Namespace], Any]
CLI_KEYS = ("base_url", "username", "password")


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
    return table


def _client(args: argparse.Namespace) -> Client:
    """Flag, then environment, then config file, then default - for each setting."""
    file = _read_cli_config(args.cli_config)
    env = os.environ

    def pick(flag: str | None, var: str, key: str, default: str | None) -> str | None:
        return flag or env.get(var) or file.get(key) or default

    return Client(
        pick(args.base_url, "PULLTHROUGH_URL", "base_url", DEFAULT_BASE_URL) or DEFAULT_BASE_URL,
        pick(args.api_username, "PULLTHROUGH_USERNAME", "username", "admin") or "admin",
        pick(args.api_password, "PULLTHROUGH_PASSWORD", "password", None),
        task_timeout=args.timeout,
        background=args.background,
    )


# ---- argument types -----------------------------------------------------------------------


def _json_list(value: str) -> list[str]:
    """A JSON list of strings, inline or from a file (`@path`), as pulp-cli takes them."""
    try:
        text = Path(value[1:]).read_text(encoding="utf-8") if value.startswith("@") else value
        data = json.loads(text)
    except (OSError, ValueError) as exc:
        raise argparse.ArgumentTypeError(
            f"expected a JSON list, e.g. '[\"name\"]' ({exc})"
        ) from None
    if not isinstance(data, list) or not all(isinstance(item, str) for item in data):
        raise argparse.ArgumentTypeError("expected a JSON list of strings, e.g. '[\"name\"]'")
    return data


def _non_negative(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return number


def _positive_float(value: str) -> float:
    number = float(value)
    if number <= 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return number


# ---- handlers -----------------------------------------------------------------------------


def _values(args: argparse.Namespace, *keys: str) -> dict[str, Any]:
    """The body fields the user gave (options left out stay None and are not sent)."""
    return {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}


def _with_ref(client: Client, body: dict[str, Any], key: str, kind: Kind, name: str | None) -> None:
    """`--remote NAME` -> `{"remote": href}`; `--remote ""` -> `{"remote": null}` (clears it)."""
    if name is not None:
        body[key] = client.href_of(kind, name)


def _list_params(args: argparse.Namespace, filters: dict[str, str]) -> dict[str, Any]:
    params: dict[str, Any] = {"offset": args.offset, "limit": args.limit}
    for dest, key in filters.items():
        value = getattr(args, dest, None)
        if value is not None:
            params[key] = ",".join(value) if isinstance(value, list) else value
    if args.field:
        params["fields"] = args.field
    if args.exclude_field:
        params["exclude_fields"] = args.exclude_field
    if args.ordering:
        params["ordering"] = ",".join(args.ordering)
    return params


NAME_FILTERS = {
    "name": "name",
    "name_contains": "name__contains",
    "name_icontains": "name__icontains",
    "name_startswith": "name__startswith",
    "name_in": "name__in",
}


def _lister(kind: Kind, filters: dict[str, str] = NAME_FILTERS) -> Handler:
    return lambda client, args: client.list(kind, _list_params(args, filters))


def _shower(kind: Kind) -> Handler:
    return lambda client, args: client.find(kind, args.name)


def _destroyer(kind: Kind) -> Handler:
    return lambda client, args: client.destroy(kind, client.find(kind, args.name)["pulp_href"])


REPOSITORY_FIELDS = ("description", "retain_repo_versions", "autopublish")


def _repository_body(client: Client, args: argparse.Namespace) -> dict[str, Any]:
    body = _values(args, *REPOSITORY_FIELDS)
    _with_ref(client, body, "remote", REMOTE, args.remote)
    return body


def repository_create(client: Client, args: argparse.Namespace) -> Any:
    return client.create(REPOSITORY, {"name": args.name, **_repository_body(client, args)})


def repository_update(client: Client, args: argparse.Namespace) -> Any:
    href = client.find(REPOSITORY, args.name)["pulp_href"]
    return client.update(REPOSITORY, href, _repository_body(client, args))


def version_list(client: Client, args: argparse.Namespace) -> Any:
    repository = client.find(REPOSITORY, args.repository)
    params = _list_params(args, {"number": "number"})
    return client.list(REPOSITORY, params, href=repository["versions_href"])


def _version_href(repository: dict[str, Any], number: int | None) -> str:
    if number is None:
        return repository["latest_version_href"]
    return f"{repository['versions_href']}{number}/"


def version_show(client: Client, args: argparse.Namespace) -> Any:
    repository = client.find(REPOSITORY, args.repository)
    href = _version_href(repository, args.version)
    return client.get(href, f"{REPOSITORY.operation}_versions_read")


def repository_sync(client: Client, args: argparse.Namespace) -> Any:
    repository = client.find(REPOSITORY, args.name)
    remote = client.href_of(REMOTE, args.remote) if args.remote else None
    show = None if args.background or not sys.stderr.isatty() else _progress_bar
    version = client.sync(repository, remote, bool(args.mirror), show)
    if show is not None:
        print(file=sys.stderr)
    return version


def _progress_bar(reports: list[dict[str, Any]]) -> None:
    """One line on the terminal, redrawn: the newest report with a bar."""
    running = [r for r in reports if r.get("state") == "running"] or reports[-1:]
    if not running:
        return
    report = running[-1]
    done, total = report.get("done") or 0, report.get("total")
    bar = ""
    if total:
        filled = int(30 * done / total)
        bar = f" [{'#' * filled}{'.' * (30 - filled)}] {done}/{total}"
    print(f"\r{report.get('message', '')}{bar}".ljust(78), end="", file=sys.stderr, flush=True)


def publication_create(client: Client, args: argparse.Namespace) -> Any:
    repository = client.find(REPOSITORY, args.repository)
    if args.version is None:
        body = {"repository": repository["pulp_href"]}
    else:
        body = {"repository_version": _version_href(repository, args.version)}
    return client.create(PUBLICATION, body)


def publication_list(client: Client, args: argparse.Namespace) -> Any:
    params: dict[str, Any] = {"offset": args.offset, "limit": args.limit}
    if args.repository:
        params["repository"] = client.href_of(REPOSITORY, args.repository)
    return client.list(PUBLICATION, params)


def publication_show(client: Client, args: argparse.Namespace) -> Any:
    return client.show(PUBLICATION, args.href)


def publication_destroy(client: Client, args: argparse.Namespace) -> Any:
    return client.destroy(PUBLICATION, args.href)


def orphans_cleanup(client: Client, args: argparse.Namespace) -> Any:
    return client.orphans_cleanup(args.protection_time)


def content_modify(client: Client, args: argparse.Namespace) -> Any:
    """`modify --add-content H --remove-content H`, and `add`/`remove --href H` alike."""
    repository = client.find(REPOSITORY, args.repository)
    base = None if args.base_version is None else _version_href(repository, args.base_version)
    add, remove = getattr(args, "add_content", None), getattr(args, "remove_content", None)
    return client.modify(repository, add or [], remove or [], base)


REMOTE_FIELDS = (
    "url",
    "includes",
    "excludes",
    "prereleases",
    "package_types",
    "exclude_platforms",
    "keep_latest_packages",
    "policy",
    "username",
    "password",
    "tls_validation",
)


def remote_create(client: Client, args: argparse.Namespace) -> Any:
    return client.create(REMOTE, {"name": args.name, **_values(args, *REMOTE_FIELDS)})


def remote_update(client: Client, args: argparse.Namespace) -> Any:
    href = client.find(REMOTE, args.name)["pulp_href"]
    return client.update(REMOTE, href, _values(args, *REMOTE_FIELDS))


DISTRIBUTION_FIELDS = ("base_path", "allow_uploads", "merge_remote", "hidden")


def _served(client: Client, args: argparse.Namespace, current: dict[str, Any]) -> dict[str, Any]:
    """What the distribution serves: `--repository` (its latest version), or with `--version`
    that version (of `--repository`, else of the repository it serves now)."""
    if args.repository is None and args.version is None:
        return {}
    if args.repository == "":
        return {"repository": None, "repository_version": None}
    if args.version is None:
        return {
            "repository": client.href_of(REPOSITORY, args.repository),
            "repository_version": None,
        }
    if args.repository is not None:
        repository = client.find(REPOSITORY, args.repository)
    else:
        href = (
            current.get("repository")
            or (current.get("repository_version") or "").split("versions/")[0]
        )
        if not href:
            raise CliError("--version needs --repository: the distribution serves no repository.")
        repository = client.show(REPOSITORY, href)
    return {"repository": None, "repository_version": _version_href(repository, args.version)}


def _distribution_body(
    client: Client, args: argparse.Namespace, current: dict[str, Any]
) -> dict[str, Any]:
    body = {**_values(args, *DISTRIBUTION_FIELDS), **_served(client, args, current)}
    _with_ref(client, body, "remote", REMOTE, args.remote)
    if args.publication is not None:
        body.update(repository=None, repository_version=None, publication=args.publication or None)
    elif "repository" in body or "repository_version" in body:
        body["publication"] = None
    return body


def distribution_create(client: Client, args: argparse.Namespace) -> Any:
    body = _distribution_body(client, args, {})
    if body.get("repository") is None:
        body.pop("repository", None)
    return client.create(DISTRIBUTION, {"name": args.name, **body})


def distribution_update(client: Client, args: argparse.Namespace) -> Any:
    current = client.find(DISTRIBUTION, args.name)
    body = _distribution_body(client, args, current)
    return client.update(DISTRIBUTION, current["pulp_href"], body)


def content_upload(client: Client, args: argparse.Namespace) -> Any:
    path = Path(args.file)
    if not path.is_file():
        raise CliError(f"No such file: {path}.")
    repository = client.href_of(REPOSITORY, args.repository)
    return client.upload(path, args.relative_path or path.name, repository)


CONTENT_FILTERS = {
    **NAME_FILTERS,
    "filename": "filename",
    "sha256": "sha256",
    "package_version": "version",
    "packagetype": "packagetype",
}


def content_list(client: Client, args: argparse.Namespace) -> Any:
    params = _list_params(args, CONTENT_FILTERS)
    if args.repository:
        repository = client.find(REPOSITORY, args.repository)
        params["repository_version"] = _version_href(repository, args.version)
    elif args.version is not None:
        raise CliError("--version needs --repository.")
    return client.list(CONTENT, params)


def content_show(client: Client, args: argparse.Namespace) -> Any:
    return client.show(CONTENT, args.href)


def task_show(client: Client, args: argparse.Namespace) -> Any:
    return client.show(TASK, args.href)


def status(client: Client, args: argparse.Namespace) -> Any:
    return client.status()


# ---- argument parsing ---------------------------------------------------------------------

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


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=36)


class _Tree:
    """Subcommand wiring: `group()` for a noun, `verb()` for a runnable command."""

    def __init__(self, actions: Any) -> None:
        self.actions = actions

    def group(self, name: str, help: str) -> _Tree:
        parser = self.actions.add_parser(
            name, help=help, description=help, formatter_class=_formatter
        )
        return _Tree(parser.add_subparsers(dest=f"{name}_verb", required=True, metavar="VERB"))

    def verb(self, name: str, help: str, func: Handler) -> argparse.ArgumentParser:
        parser = self.actions.add_parser(
            name, help=help, description=help, formatter_class=_formatter
        )
        parser.set_defaults(func=func)
        return parser


def _flag(parser: argparse.ArgumentParser, name: str, help: str) -> None:
    """`--x/--no-x`; unset when neither is given (the server's value or default stays)."""
    parser.add_argument(f"--{name}", action=argparse.BooleanOptionalAction, help=help)


def _list_options(parser: argparse.ArgumentParser, names: bool = True) -> None:
    parser.add_argument(
        "--limit", type=_non_negative, default=25, metavar="N", help="at most this many (25)"
    )
    parser.add_argument(
        "--offset", type=_non_negative, default=0, metavar="N", help="skip this many (0)"
    )
    parser.add_argument(
        "--field", action="append", metavar="F", help="show only this field (repeatable)"
    )
    parser.add_argument(
        "--exclude-field", action="append", metavar="F", help="leave this field out (repeatable)"
    )
    parser.add_argument(
        "--ordering", action="append", metavar="F", help="order by F (-F: descending; repeatable)"
    )
    if names:
        parser.add_argument("--name", help="exactly this name")
        parser.add_argument("--name-contains", metavar="S", help="names containing S")
        parser.add_argument("--name-icontains", metavar="S", help="... ignoring case")
        parser.add_argument("--name-startswith", metavar="S", help="names starting with S")
        parser.add_argument("--name-in", action="append", metavar="N", help="any of these names")


def _repository_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--description", help="free text")
    parser.add_argument("--remote", metavar="NAME", help='the remote to sync from ("": none)')
    parser.add_argument(
        "--retain-repo-versions", type=int, metavar="K", help="keep only the latest K versions"
    )
    _flag(parser, "autopublish", "publish each new version automatically")


def _add_repository(tree: _Tree) -> None:
    repo = tree.group("repository", "repositories: versioned sets of packages")
    for name, func, help in (
        ("create", repository_create, "create a repository"),
        ("update", repository_update, "change a repository"),
    ):
        parser = repo.verb(name, help, func)
        parser.add_argument("--name", required=True, help="the repository's name")
        _repository_options(parser)
    repo.verb("show", "show a repository", _shower(REPOSITORY)).add_argument(
        "--name", required=True
    )
    _list_options(repo.verb("list", "list repositories", _lister(REPOSITORY)))
    repo.verb("destroy", "delete a repository", _destroyer(REPOSITORY)).add_argument(
        "--name", required=True
    )
    parser = repo.verb(
        "sync", "fill the repository from a remote (a task; shows progress)", repository_sync
    )
    parser.add_argument("--name", required=True, help="the repository's name")
    parser.add_argument("--remote", metavar="NAME", help="the remote (default: the repository's)")
    _flag(parser, "mirror", "make the new version exactly what the remote offers")
    versions = repo.group("version", "a repository's versions (0, 1, 2 ...)")
    parser = versions.verb("list", "list the versions, newest first", version_list)
    parser.add_argument("--repository", required=True, metavar="NAME")
    parser.add_argument("--number", type=int, help="only this version number")
    _list_options(parser, names=False)
    parser = versions.verb("show", "show a version (the latest without --version)", version_show)
    parser.add_argument("--repository", required=True, metavar="NAME")
    parser.add_argument("--version", type=int, metavar="K", help="the version number")
    content = repo.group(
        "content", "add packages to a repository or remove them (makes a new version)"
    )
    parser = content.verb("modify", "add and remove packages by content href", content_modify)
    parser.add_argument("--add-content", action="append", metavar="HREF", help="(repeatable)")
    parser.add_argument(
        "--remove-content", action="append", metavar="HREF", help='(repeatable; "*": all)'
    )
    for name, dest, help in (
        ("add", "add_content", "add packages (pulp-cli's spelling of modify --add-content)"),
        ("remove", "remove_content", "remove packages (modify --remove-content)"),
    ):
        parser = content.verb(name, help, content_modify)
        parser.add_argument(
            "--href", dest=dest, action="append", required=True, metavar="HREF", help="(repeatable)"
        )
    for parser in content.actions.choices.values():
        parser.add_argument("--repository", required=True, metavar="NAME")
        parser.add_argument("--base-version", type=int, metavar="K", help="start from version K")


def _remote_options(parser: argparse.ArgumentParser, create: bool) -> None:
    parser.add_argument("--name", required=True, help="the remote's name")
    parser.add_argument("--url", required=create, help="the index root, e.g. https://pypi.org/")
    parser.add_argument(
        "--includes",
        type=_json_list,
        metavar="JSON",
        help='only these projects/requirements: \'["shelf-reader", "django>=4"]\' or @file',
    )
    parser.add_argument("--excludes", type=_json_list, metavar="JSON", help="never these")
    _flag(parser, "prereleases", "offer pre-release versions")
    parser.add_argument(
        "--package-types", type=_json_list, metavar="JSON", help="e.g. '[\"bdist_wheel\"]'"
    )
    parser.add_argument(
        "--exclude-platforms", type=_json_list, metavar="JSON", help="e.g. '[\"windows\"]'"
    )
    parser.add_argument(
        "--keep-latest-packages", type=_non_negative, metavar="K", help="latest K versions (0: all)"
    )
    parser.add_argument("--policy", choices=("immediate", "on_demand", "streamed"))
    parser.add_argument("--username", help="for the upstream index (never shown)")
    parser.add_argument("--password", help="for the upstream index (never shown)")
    _flag(parser, "tls-validation", "check the upstream's TLS certificate")


def _add_remote(tree: _Tree) -> None:
    remote = tree.group("remote", "remotes: upstream indexes to proxy or sync")
    _remote_options(remote.verb("create", "create a remote", remote_create), create=True)
    _remote_options(remote.verb("update", "change a remote", remote_update), create=False)
    remote.verb("show", "show a remote", _shower(REMOTE)).add_argument("--name", required=True)
    _list_options(remote.verb("list", "list remotes", _lister(REMOTE)))
    remote.verb("destroy", "delete a remote", _destroyer(REMOTE)).add_argument(
        "--name", required=True
    )


def _distribution_options(parser: argparse.ArgumentParser, create: bool) -> None:
    parser.add_argument("--name", required=True, help="the distribution's name")
    parser.add_argument("--base-path", required=create, help="served at /pypi/<base path>/simple/")
    parser.add_argument("--repository", metavar="NAME", help='serve its latest version ("": none)')
    parser.add_argument("--version", type=int, metavar="K", help="serve version K instead")
    parser.add_argument("--remote", metavar="NAME", help='proxy this remote too ("": none)')
    parser.add_argument("--publication", metavar="HREF", help='serve this publication ("": none)')
    _flag(parser, "allow-uploads", "accept twine uploads into the repository")
    _flag(parser, "merge-remote", "also offer the remote's files of projects held locally")
    _flag(parser, "hidden", "leave it out of the status page's list")


def _add_publication(tree: _Tree) -> None:
    pub = tree.group("publication", "publications: frozen indexes of a repository version")
    parser = pub.verb("create", "publish a repository version", publication_create)
    parser.add_argument("--repository", required=True, metavar="NAME")
    parser.add_argument("--version", type=int, metavar="K", help="the version (default: latest)")
    parser = pub.verb("list", "list publications", publication_list)
    parser.add_argument("--repository", metavar="NAME", help="only this repository's")
    parser.add_argument("--limit", type=_non_negative, default=25, metavar="N")
    parser.add_argument("--offset", type=_non_negative, default=0, metavar="N")
    pub.verb("show", "show a publication", publication_show).add_argument("--href", required=True)
    pub.verb("destroy", "delete a publication", publication_destroy).add_argument(
        "--href", required=True
    )


def _add_distribution(tree: _Tree) -> None:
    dist = tree.group("distribution", "distributions: the indexes pip and twine talk to")
    _distribution_options(
        dist.verb("create", "create a distribution", distribution_create), create=True
    )
    _distribution_options(
        dist.verb("update", "change a distribution", distribution_update), create=False
    )
    dist.verb("show", "show a distribution", _shower(DISTRIBUTION)).add_argument(
        "--name", required=True
    )
    parser = dist.verb(
        "list",
        "list distributions",
        _lister(
            DISTRIBUTION,
            {**NAME_FILTERS, "base_path": "base_path", "base_path_contains": "base_path__contains"},
        ),
    )
    _list_options(parser)
    parser.add_argument("--base-path", help="exactly this base path")
    parser.add_argument("--base-path-contains", metavar="S", help="base paths containing S")
    dist.verb("destroy", "delete a distribution", _destroyer(DISTRIBUTION)).add_argument(
        "--name", required=True
    )


def _add_content(tree: _Tree) -> None:
    content = tree.group("content", "content: the package files (wheels, sdists)")
    parser = content.verb("upload", "upload a wheel or sdist", content_upload)
    parser.add_argument("--file", required=True, metavar="PATH", help="the file to upload")
    parser.add_argument("--relative-path", metavar="NAME", help="its filename (default: PATH's)")
    parser.add_argument("--repository", metavar="NAME", help="add it to this repository")
    parser = content.verb("list", "list packages", content_list)
    _list_options(parser)
    parser.add_argument("--repository", metavar="NAME", help="present in this repository")
    parser.add_argument("--version", type=int, metavar="K", help="... in its version K")
    parser.add_argument("--filename")
    parser.add_argument("--sha256")
    parser.add_argument("--package-version", metavar="V", help="this release (e.g. 1.0)")
    parser.add_argument("--packagetype", choices=("bdist_wheel", "sdist"))
    content.verb("show", "show a package", content_show).add_argument("--href", required=True)


def _add_task(tree: _Tree) -> None:
    task = tree.group("task", "tasks: the record of write operations")
    task.verb("show", "show a task", task_show).add_argument("--href", required=True)
    parser = task.verb(
        "list", "list tasks, newest first", _lister(TASK, {"state": "state", "name": "name"})
    )
    _list_options(parser, names=False)
    parser.add_argument(
        "--state",
        choices=("waiting", "skipped", "running", "completed", "failed", "canceled", "canceling"),
    )
    parser.add_argument("--name", help="the task's name, e.g. pullthrough.tasks.content.upload")


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
        type=_positive_float,
        default=300.0,
        metavar="SECONDS",
        help="give up waiting for a task after this long (300)",
    )


def _worker(args: argparse.Namespace) -> int:
    """A task worker beside (or instead of) the ones embedded in the server processes."""
    import signal

    from pullthrough.services.container import build_services

    try:
        settings = load_settings(str(Path(args.config).resolve()) if args.config else None)
    except ConfigError as exc:
        print(f"pullthrough: invalid configuration: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    services = build_services(settings)
    worker = services.new_worker()
    signal.signal(signal.SIGTERM, lambda *_: worker.stop(timeout=0))
    print(f"pullthrough worker {worker.name}: waiting for tasks", file=sys.stderr, flush=True)
    try:
        worker.run()
    except KeyboardInterrupt:
        pass
    finally:
        services.close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pullthrough",
        description="Python package index server, and a client for its REST API",
        epilog=EPILOG,
        formatter_class=_formatter,
    )
    parser.add_argument("--version", action="version", version=f"pullthrough {__version__}")
    _global_options(parser)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = sub.add_parser("serve", help="run the server under gunicorn")
    serve.add_argument("--config", help="TOML configuration file (default: embedded defaults)")
    serve.add_argument("--bind", help="HOST:PORT to listen on (default: from config)")
    serve.add_argument("--workers", type=int, default=0, help="worker processes (default: auto)")
    serve.set_defaults(func=_serve, api=False)
    worker = sub.add_parser("worker", help="run background tasks (sync, orphan cleanup)")
    worker.add_argument("--config", help="TOML configuration file (default: embedded defaults)")
    worker.set_defaults(func=_worker, api=False)
    tree = _Tree(sub)
    _add_repository(tree)
    _add_remote(tree)
    _add_distribution(tree)
    _add_content(tree)
    _add_task(tree)
    _add_publication(tree)
    orphans = tree.group("orphans", "content in no repository version")
    cleanup = orphans.verb("cleanup", "remove orphaned packages and their files", orphans_cleanup)
    cleanup.add_argument(
        "--protection-time", type=_non_negative, metavar="MINUTES",
        help="keep orphans younger than this (server default: 1440)",
    )  # fmt: skip
    tree.verb("status", "show the server's status (no login needed)", status)
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


if __name__ == "__main__":
    sys.exit(main())
