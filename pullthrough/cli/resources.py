"""The REST verbs, `pullthrough <noun> <verb>` as `pulp python <noun> <verb>` (pulp-cli).

list/show/create/update/destroy are built once (`standard_verbs`), with options generated from
the resource table's field and filter declarations (type, choices, help); a noun adds only what
is its own (sync, versions, content modification, uploads).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pullthrough.api import kinds
from pullthrough.api.kinds import Kind
from pullthrough.api.params import EXACT, IN, Filter
from pullthrough.api.resources import (
    ARTIFACTS,
    AUDIT_EVENTS,
    CONTENT,
    DELETE,
    DISTRIBUTIONS,
    PROJECT_STATUSES,
    REMOTES,
    REPOSITORIES,
    TASKS,
    TOKENS,
    VERSIONS,
    YANKS,
    Resource,
)
from pullthrough.cli.client import Client, CliError
from pullthrough.cli.tree import Handler, Tree, flag, non_negative
from pullthrough.config import parse_duration, parse_moment
from pullthrough.core.access import SCOPE_HELP
from pullthrough.core.fields import Field

METAVARS = {"string": "TEXT", "integer": "N", "number": "NUMBER", "array": "JSON"}
Options = Callable[[argparse.ArgumentParser, bool], None]  # (parser, creating)
Body = Callable[[Client, argparse.Namespace, dict[str, Any]], dict[str, Any]]


# ---- options from declarations ------------------------------------------------------------


def _typed(field: Field) -> Callable[[str], Any]:
    """An argparse type: the field's own reading of text (`10m`, JSON lists, `@file`)."""

    def convert(text: str) -> Any:
        try:
            if field.type == "array" and text.startswith("@"):
                text = Path(text[1:]).read_text(encoding="utf-8")
            if field.type == "array" and not text.lstrip().startswith("["):
                raise ValueError("not a list")
            return field.parse(text)
        except (OSError, ValueError) as exc:
            if field.type == "array":
                raise argparse.ArgumentTypeError(
                    f"expected a JSON list, e.g. '[\"name\"]' or @file ({exc})"
                ) from None
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = field.type
    return convert


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def settable(resource: Resource, skip: Sequence[str] = ()) -> list[Field]:
    """The fields a user sets with options: writable, not the name (the lookup key), not an
    object (labels), not one the noun handles itself."""
    return [
        f
        for f in resource.fields
        if not f.read_only and f.name != "name" and f.type != "object" and f.name not in skip
    ]


def add_field_options(
    parser: argparse.ArgumentParser, fields: Sequence[Field], creating: bool
) -> None:
    for f in fields:
        help = f.help + (" (never shown)" if f.write_only else "")
        if f.href and f.type == "array":
            help += f' (a {f.href} name, repeatable, in order; "": none)'
            parser.add_argument(_option(f.name), action="append", metavar="NAME", help=help)
        elif f.href:
            help += f' (a {f.href} name; "": none)'
            required = creating and f.required
            parser.add_argument(_option(f.name), metavar="NAME", required=required, help=help)
        elif f.type == "boolean":
            flag(parser, f.name.replace("_", "-"), help)
        else:
            parser.add_argument(
                _option(f.name),
                type=_typed(f),
                choices=f.choices,
                required=creating and f.required,
                metavar=None if f.choices else METAVARS[f.type],
                help=help,
            )


def body_of(client: Client, args: argparse.Namespace, fields: Sequence[Field]) -> dict[str, Any]:
    """The fields the user gave (options left out are not sent); a reference by name becomes
    its href (`""`: null, which clears it)."""
    body: dict[str, Any] = {}
    for f in fields:
        value = getattr(args, f.name, None)
        if value is None:
            continue
        if f.href and isinstance(value, list):
            body[f.name] = [client.href_of(kinds.KINDS[f.href], v) for v in value if v]
        else:
            body[f.name] = client.href_of(kinds.KINDS[f.href], value) if f.href else value
    return body


def add_list_options(
    parser: argparse.ArgumentParser, filters: Sequence[Filter], renamed: dict[str, str]
) -> None:
    """Paging, fields and ordering, and the resource's filters: `--name`, `--name-contains`,
    `--name-in N` (repeatable), ... (custom filters are the noun's own)."""
    parser.add_argument(
        "--limit", type=non_negative, default=25, metavar="N", help="at most this many (25)"
    )
    parser.add_argument(
        "--offset", type=non_negative, default=0, metavar="N", help="skip this many (0)"
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
    for declared in filters:
        if declared.href is not None:  # the noun names it its own way (--repository NAME)
            continue
        for lookup in declared.lookups:
            key = declared.key(lookup)
            name = _option(renamed.get(key, key).replace("__", "_"))
            if lookup == IN:
                help = f"{declared.name}: any of these (repeatable)"
                parser.add_argument(name, dest=_dest(key), action="append", metavar="V", help=help)
            else:
                choices = declared.choices if lookup == EXACT else None
                help = f"{declared.name} {lookup or 'equal to'} this"
                parser.add_argument(name, dest=_dest(key), choices=choices, metavar="V", help=help)


def _dest(key: str) -> str:
    return f"filter__{key}"  # apart from the noun's own options (content list --version)


def list_params(args: argparse.Namespace, filters: Sequence[Filter]) -> dict[str, Any]:
    params: dict[str, Any] = {"offset": args.offset, "limit": args.limit}
    for declared in filters:
        for lookup in declared.lookups if declared.href is None else ():
            key = declared.key(lookup)
            value = getattr(args, _dest(key), None)
            if value is not None:
                params[key] = ",".join(value) if isinstance(value, list) else value
    if args.field:
        params["fields"] = args.field
    if args.exclude_field:
        params["exclude_fields"] = args.exclude_field
    if args.ordering:
        params["ordering"] = ",".join(args.ordering)
    return params


def standard_verbs(
    tree: Tree,
    resource: Resource,
    noun: str,
    *,
    skip: Sequence[str] = (),
    options: Options | None = None,
    body: Body | None = None,
    renamed: dict[str, str] | None = None,
) -> None:
    """list, show, destroy - and create and update where the API has them - for one noun.
    `options` adds the noun's own options to create/update, `body` turns them into the body."""
    kind = resource.kind
    fields = settable(resource, skip)

    def request_body(
        client: Client, args: argparse.Namespace, current: dict[str, Any]
    ) -> dict[str, Any]:
        out = body_of(client, args, fields)
        return body(client, args, current) | out if body is not None else out

    def create(client: Client, args: argparse.Namespace) -> Any:
        return client.create(kind, {"name": args.name, **request_body(client, args, {})})

    def update(client: Client, args: argparse.Namespace) -> Any:
        current = client.find(kind, args.name)
        return client.update(kind, current["pulp_href"], request_body(client, args, current))

    writes = {
        "create": (create, f"create a {kind.title}"),
        "update": (update, f"change a {kind.title}"),
    }
    for verb, (handler, help) in writes.items():
        if verb in resource.verbs:
            parser = tree.verb(verb, help, handler)
            parser.add_argument("--name", required=True, help=f"the {kind.title}'s name")
            add_field_options(parser, fields, creating=verb == "create")
            if options is not None:
                options(parser, verb == "create")
    show = tree.verb(
        "show", f"show a {kind.title}", lambda client, args: client.find(kind, args.name)
    )
    show.add_argument("--name", required=True)
    parser = tree.verb(
        "list",
        f"list {noun}",
        lambda client, args: client.page(kind, list_params(args, resource.filters)),
    )
    add_list_options(parser, resource.filters, renamed or {})
    if DELETE in resource.verbs:
        destroy = tree.verb(
            "destroy",
            f"delete a {kind.title}",
            lambda client, args: client.destroy(kind, client.find(kind, args.name)["pulp_href"]),
        )
        destroy.add_argument("--name", required=True)


# ---- repositories -------------------------------------------------------------------------


def _version_href(repository: dict[str, Any], number: int | None) -> str:
    if number is None:
        return str(repository["latest_version_href"])
    return f"{repository['versions_href']}{number}/"


def version_list(client: Client, args: argparse.Namespace) -> Any:
    repository = client.find(kinds.REPOSITORY, args.repository)
    params = list_params(args, VERSIONS.filters)
    return client.page(kinds.VERSION, params, href=repository["versions_href"])


def version_show(client: Client, args: argparse.Namespace) -> Any:
    repository = client.find(kinds.REPOSITORY, args.repository)
    return client.get(_version_href(repository, args.version), f"{kinds.VERSION.operation}_read")


def version_repair(client: Client, args: argparse.Namespace) -> Any:
    repository = client.find(kinds.REPOSITORY, args.repository)
    return client.repair(_version_href(repository, args.version), args.verify_checksums)


def version_destroy(client: Client, args: argparse.Namespace) -> Any:
    repository = client.find(kinds.REPOSITORY, args.repository)
    return client.destroy(kinds.VERSION, _version_href(repository, args.version))


def repository_sync(client: Client, args: argparse.Namespace) -> Any:
    repository = client.find(kinds.REPOSITORY, args.name)
    remote = client.href_of(kinds.REMOTE, args.remote) if args.remote else None
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


def content_modify(client: Client, args: argparse.Namespace) -> Any:
    """`modify --add-content H --remove-content H`, and `add`/`remove --href H` alike."""
    repository = client.find(kinds.REPOSITORY, args.repository)
    base = None if args.base_version is None else _version_href(repository, args.base_version)
    add, remove = getattr(args, "add_content", None), getattr(args, "remove_content", None)
    return client.modify(repository, add or [], remove or [], base)


def _blocklist_entries(client: Client, args: argparse.Namespace) -> tuple[str, list[Any]]:
    """The repository's blocklist href, and its entries the options name (all: none given)."""
    href = client.find(kinds.REPOSITORY, args.repository)["pulp_href"] + "blocklist_entries/"
    params = {k: v for k in ("name", "version", "filename") if (v := getattr(args, k, None))}
    return href, client.page(kinds.BLOCKLIST_ENTRY, params, href=href)


def blocklist_add(client: Client, args: argparse.Namespace) -> Any:
    href = client.find(kinds.REPOSITORY, args.repository)["pulp_href"] + "blocklist_entries/"
    body = {k: v for k in ("name", "version", "filename") if (v := getattr(args, k)) is not None}
    operation = f"{kinds.BLOCKLIST_ENTRY.operation}_create"
    return client.call("POST", href, operation, json=body)


def blocklist_list(client: Client, args: argparse.Namespace) -> Any:
    return _blocklist_entries(client, args)[1]


def blocklist_remove(client: Client, args: argparse.Namespace) -> Any:
    """Removes the entry of exactly these fields (an entry of a name without --version: the
    one for every version)."""
    _, found = _blocklist_entries(client, args)
    found = [e for e in found if e["version"] == args.version]
    if len(found) != 1:
        raise CliError(f"Could not find one blocklist entry of {args.repository!r} so named.")
    operation = f"{kinds.BLOCKLIST_ENTRY.operation}_delete"
    return client.call("DELETE", found[0]["pulp_href"], operation)


def _add_blocklist(repo: Tree) -> None:
    """`blocklist add|list|remove --repository N [--name P [--version V] | --filename F]`: the
    packages kept out of the repository (not a distribution's --blocklist)."""
    group = repo.group("blocklist", "packages kept out of a repository (Pulp's blocklist)")
    for verb, help, func in (
        ("add", "block a project (every version, or --version), or a filename", blocklist_add),
        ("list", "list the entries (those of --name, --version or --filename)", blocklist_list),
        ("remove", "remove the entry of exactly these fields", blocklist_remove),
    ):
        parser = group.verb(verb, help, func)
        parser.add_argument("--repository", required=True, metavar="NAME")
        parser.add_argument("--name", help="a project")
        parser.add_argument("--version", help="one version of --name")
        parser.add_argument("--filename", help="one file")


def _add_repository(tree: Tree) -> None:
    repo = tree.group("repository", "repositories: versioned sets of packages")
    standard_verbs(repo, REPOSITORIES, "repositories")
    _add_labels(repo, kinds.REPOSITORY)
    _add_blocklist(repo)
    parser = repo.verb(
        "sync", "fill the repository from a remote (a task; shows progress)", repository_sync
    )
    parser.add_argument("--name", required=True, help="the repository's name")
    parser.add_argument("--remote", metavar="NAME", help="the remote (default: the repository's)")
    flag(parser, "mirror", "make the new version exactly what the remote offers")
    versions = repo.group("version", "a repository's versions (0, 1, 2 ...)")
    parser = versions.verb("list", "list the versions, newest first", version_list)
    parser.add_argument("--repository", required=True, metavar="NAME")
    add_list_options(parser, VERSIONS.filters, {})
    parser = versions.verb("show", "show a version (the latest without --version)", version_show)
    parser.add_argument("--repository", required=True, metavar="NAME")
    parser.add_argument("--version", type=int, metavar="K", help="the version number")
    parser = versions.verb(
        "repair",
        "fetch again the version's files that are missing or damaged (the latest without"
        " --version)",
        version_repair,
    )
    parser.add_argument("--repository", required=True, metavar="NAME")
    parser.add_argument("--version", type=int, metavar="K", help="the version number")
    _verify_flag(parser)
    parser = versions.verb(
        "destroy",
        "delete a version (the latest without --version): its changes go into the next one; not"
        " the only version, nor one a distribution serves",
        version_destroy,
    )
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
    for parser in content.parsers.values():
        parser.add_argument("--repository", required=True, metavar="NAME")
        parser.add_argument("--base-version", type=int, metavar="K", help="start from version K")


# ---- distributions ------------------------------------------------------------------------


def _served_options(parser: argparse.ArgumentParser, creating: bool) -> None:
    parser.add_argument("--repository", metavar="NAME", help='serve its latest version ("": none)')
    parser.add_argument("--version", type=int, metavar="K", help="serve version K instead")
    parser.add_argument("--publication", metavar="HREF", help='serve this publication ("": none)')


def _served(client: Client, args: argparse.Namespace, current: dict[str, Any]) -> dict[str, Any]:
    """What the distribution serves: `--repository` (its latest version), or with `--version`
    that version (of `--repository`, else of the repository it serves now), or
    `--publication`; naming one clears the others, as pulp-cli does."""
    if args.publication is not None:
        return {
            "repository": None,
            "repository_version": None,
            "publication": args.publication or None,
        }
    if args.repository is None and args.version is None:
        return {}
    if args.repository == "":
        return {"repository": None, "repository_version": None, "publication": None}
    if args.version is None:
        href = client.href_of(kinds.REPOSITORY, args.repository)
        return {"repository": href, "repository_version": None, "publication": None}
    if args.repository is not None:
        repository = client.find(kinds.REPOSITORY, args.repository)
    else:
        href = (
            current.get("repository")
            or (current.get("repository_version") or "").split("versions/")[0]
        )
        if not href:
            raise CliError("--version needs --repository: the distribution serves no repository.")
        repository = client.show(kinds.REPOSITORY, href)
    version = _version_href(repository, args.version)
    return {"repository": None, "repository_version": version, "publication": None}


def _add_distribution(tree: Tree) -> None:
    dist = tree.group("distribution", "distributions: the indexes pip and twine talk to")
    _add_labels(dist, kinds.DISTRIBUTION)
    standard_verbs(
        dist,
        DISTRIBUTIONS,
        "distributions",
        skip=("repository", "repository_version", "publication", "content_guard"),
        options=_served_options,
        body=_served,
    )


# ---- remotes, publications, content, tasks ------------------------------------------------


def publication_create(client: Client, args: argparse.Namespace) -> Any:
    repository = client.find(kinds.REPOSITORY, args.repository)
    if args.version is None:
        body = {"repository": repository["pulp_href"]}
    else:
        body = {"repository_version": _version_href(repository, args.version)}
    return client.create(kinds.PUBLICATION, body)


def publication_list(client: Client, args: argparse.Namespace) -> Any:
    params: dict[str, Any] = {"offset": args.offset, "limit": args.limit}
    if args.repository:
        params["repository"] = client.href_of(kinds.REPOSITORY, args.repository)
    return client.page(kinds.PUBLICATION, params)


def _by_href(tree: Tree, verb: str, help: str, kind: Kind, action: Handler | None = None) -> None:
    handler = action or (lambda client, args: client.show(kind, args.href))
    tree.verb(verb, help, handler).add_argument("--href", required=True)


def _add_publication(tree: Tree) -> None:
    pub = tree.group("publication", "publications: frozen indexes of a repository version")
    parser = pub.verb("create", "publish a repository version", publication_create)
    parser.add_argument("--repository", required=True, metavar="NAME")
    parser.add_argument("--version", type=int, metavar="K", help="the version (default: latest)")
    parser = pub.verb("list", "list publications", publication_list)
    parser.add_argument("--repository", metavar="NAME", help="only this repository's")
    parser.add_argument("--limit", type=non_negative, default=25, metavar="N")
    parser.add_argument("--offset", type=non_negative, default=0, metavar="N")
    _by_href(pub, "show", "show a publication", kinds.PUBLICATION)
    destroy: Handler = lambda client, args: client.destroy(kinds.PUBLICATION, args.href)  # noqa: E731
    _by_href(pub, "destroy", "delete a publication", kinds.PUBLICATION, destroy)


def content_upload(client: Client, args: argparse.Namespace) -> Any:
    path = Path(args.file)
    if not path.is_file():
        raise CliError(f"No such file: {path}.")
    repository = client.href_of(kinds.REPOSITORY, args.repository)
    return client.upload(path, args.relative_path or path.name, repository)


def content_list(client: Client, args: argparse.Namespace) -> Any:
    params = list_params(args, CONTENT.filters)
    if args.repository:
        repository = client.find(kinds.REPOSITORY, args.repository)
        params["repository_version"] = _version_href(repository, args.version)
    elif args.version is not None:
        raise CliError("--version needs --repository.")
    return client.page(kinds.CONTENT, params)


def _add_content(tree: Tree) -> None:
    content = tree.group("content", "content: the package files (wheels, sdists)")
    parser = content.verb("upload", "upload a wheel or sdist", content_upload)
    parser.add_argument("--file", required=True, metavar="PATH", help="the file to upload")
    parser.add_argument("--relative-path", metavar="NAME", help="its filename (default: PATH's)")
    parser.add_argument("--repository", metavar="NAME", help="add it to this repository")
    parser = content.verb("list", "list packages", content_list)
    add_list_options(parser, CONTENT.filters, {"version": "package_version"})
    parser.add_argument("--repository", metavar="NAME", help="present in this repository")
    parser.add_argument("--version", type=int, metavar="K", help="... in its version K")
    _by_href(content, "show", "show a package", kinds.CONTENT)


def artifact_upload(client: Client, args: argparse.Namespace) -> Any:
    path = Path(args.file)
    if not path.is_file():
        raise CliError(f"No such file: {path}.")
    return client.upload_artifact(path)


def _add_artifact(tree: Tree) -> None:
    artifact = tree.group("artifact", "artifacts: stored files, by sha256, to make content from")
    parser = artifact.verb("upload", "store a file as an artifact", artifact_upload)
    parser.add_argument("--file", required=True, metavar="PATH", help="the file to store")
    parser = artifact.verb(
        "list",
        "list artifacts, newest first",
        lambda client, args: client.page(kinds.ARTIFACT, list_params(args, ARTIFACTS.filters)),
    )
    add_list_options(parser, ARTIFACTS.filters, {})
    _by_href(artifact, "show", "show an artifact", kinds.ARTIFACT)


def task_list(client: Client, args: argparse.Namespace) -> Any:
    params = list_params(args, TASKS.filters)
    if args.worker:
        params["worker"] = client.href_of(kinds.WORKER, args.worker)
    return client.page(kinds.TASK, params)


def _add_task(tree: Tree) -> None:
    task = tree.group("task", "tasks: the record of write operations")
    _by_href(task, "show", "show a task", kinds.TASK)
    parser = task.verb("list", "list tasks, newest first", task_list)
    add_list_options(parser, TASKS.filters, {})
    parser.add_argument("--worker", metavar="NAME", help="run by this task worker")


# ---- yanks ---------------------------------------------------------------------------------


def _yank_target(client: Client, args: argparse.Namespace) -> dict[str, Any]:
    if (args.repository is None) == (args.distribution is None):
        raise CliError("Give --repository or --distribution (one of them).")
    if args.repository is not None:
        return {"repository": client.href_of(kinds.REPOSITORY, args.repository)}
    return {"distribution": client.href_of(kinds.DISTRIBUTION, args.distribution)}


def _yank_subject(args: argparse.Namespace) -> dict[str, Any]:
    if (args.version is None) == (args.filename is None):
        raise CliError("Give --version or --filename (one of them).")
    return {"version": args.version} if args.version is not None else {"filename": args.filename}


def yank_add(client: Client, args: argparse.Namespace) -> Any:
    body = {"name": args.name, **_yank_target(client, args), **_yank_subject(args)}
    return client.create(kinds.YANK, {**body, "reason": args.reason})


def yank_remove(client: Client, args: argparse.Namespace) -> Any:
    params = {"name": args.name, **_yank_target(client, args), **_yank_subject(args)}
    # An empty (or cleared) value filters nothing: the one yank of some other project, release
    # or place would be taken for it.
    found = (
        client.page(kinds.YANK, {**params, "offset": 0, "limit": 2}) if all(params.values()) else []
    )
    if len(found) != 1:
        raise CliError(
            f"Could not find the yank of {args.version or args.filename} of {args.name!r}."
        )
    return client.destroy(kinds.YANK, found[0]["pulp_href"])


def yank_list(client: Client, args: argparse.Namespace) -> Any:
    params = list_params(args, YANKS.filters)
    if args.repository or args.distribution:
        params.update(_yank_target(client, args))
    return client.page(kinds.YANK, params)


def _add_yank(tree: Tree) -> None:
    yank = tree.group(
        "yank", "yank releases or files (PEP 592): pip and uv skip them unless pinned (==)"
    )
    add = yank.verb("add", "yank a release or one file", yank_add)
    remove = yank.verb("remove", "un-yank it (an upstream's own yank stays)", yank_remove)
    for parser in (add, remove):
        parser.add_argument("--name", required=True, help="the project")
        parser.add_argument("--version", help="the release")
        parser.add_argument("--filename", help="or one file of it")
    add.add_argument("--reason", help="shown to clients")
    listing = yank.verb("list", "list the yanks", yank_list)
    add_list_options(listing, YANKS.filters, {})
    for parser in (add, remove, listing):
        where = parser.add_mutually_exclusive_group()
        where.add_argument("--repository", metavar="NAME", help="in this repository")
        where.add_argument("--distribution", metavar="NAME", help="on this distribution")


# ---- tokens and the audit trail -----------------------------------------------------------


def _token_options(parser: argparse.ArgumentParser, creating: bool) -> None:
    parser.add_argument(
        "--scope",
        action="append",
        required=True,
        metavar="SCOPE",
        help=f"{SCOPE_HELP} (repeatable)",
    )
    parser.add_argument(
        "--expires",
        type=_expiry,
        metavar="WHEN",
        help="when it stops working: a duration from now (90d, 12h) or an RFC 3339 time",
    )


def _expiry(text: str) -> str:
    try:
        seconds = parse_duration(text)
    except ValueError:
        try:
            return parse_moment(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a duration (90d, 12h) or an RFC 3339 time, got {text!r}"
            ) from None
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def _token_body(
    client: Client, args: argparse.Namespace, current: dict[str, Any]
) -> dict[str, Any]:
    return {"scopes": args.scope, "expires_at": args.expires}


def token_revoke(client: Client, args: argparse.Namespace) -> Any:
    href = client.find(kinds.TOKEN, args.name)["pulp_href"]
    return client.call("POST", href + "revoke/", f"{kinds.TOKEN.operation}_revoke")


def _add_token(tree: Tree) -> None:
    tokens = tree.group(
        "token", "API tokens: the password of user __token__ (twine, pip, uv), or Bearer"
    )
    standard_verbs(
        tokens,
        TOKENS,
        "tokens",
        skip=("scopes", "expires_at"),
        options=_token_options,
        body=_token_body,
    )
    revoke = tokens.verb("revoke", "stop a token working (it stays listed)", token_revoke)
    revoke.add_argument("--name", required=True)
    audit = tree.group("audit", "the audit trail: every write, who made it, and when")
    listing = audit.verb(
        "list",
        "list events, newest first",
        lambda client, args: client.page(
            kinds.AUDIT_EVENT, list_params(args, AUDIT_EVENTS.filters)
        ),
    )
    add_list_options(listing, AUDIT_EVENTS.filters, {})


def _add_labels(group: Tree, kind: Kind) -> None:
    """`label set|unset|show --name N --key K [--value V]`: Pulp's labels, one at a time."""

    def set_label(client: Client, args: argparse.Namespace) -> Any:
        href = client.find(kind, args.name)["pulp_href"]
        body = {"key": args.key, "value": args.value}
        return client.call("POST", href + "set_label/", f"{kind.operation}_set_label", json=body)

    def unset_label(client: Client, args: argparse.Namespace) -> Any:
        href = client.find(kind, args.name)["pulp_href"]
        operation = f"{kind.operation}_unset_label"
        return client.call("POST", href + "unset_label/", operation, json={"key": args.key})

    def show_label(client: Client, args: argparse.Namespace) -> Any:
        labels = client.find(kind, args.name).get("pulp_labels") or {}
        if args.key not in labels:
            raise CliError(f"No label {args.key!r} on {kind.label} {args.name!r}.")
        return labels[args.key]

    labels = group.group("label", f"the {kind.label}'s labels (Pulp's pulp_labels)")
    for verb, help, func in (
        ("set", "set a label", set_label),
        ("unset", "remove a label", unset_label),
        ("show", "show a label's value", show_label),
    ):
        parser = labels.verb(verb, help, func)
        parser.add_argument("--name", required=True, help=f"the {kind.label}'s name or href")
        parser.add_argument("--key", required=True)
        if verb == "set":
            parser.add_argument("--value", required=True)


def _verify_flag(parser: argparse.ArgumentParser) -> None:
    flag(parser, "verify-checksums", "check every file's sha256, not only that it is there")


def orphans_cleanup(client: Client, args: argparse.Namespace) -> Any:
    return client.orphans_cleanup(args.protection_time)


def add_commands(tree: Tree) -> None:
    _add_repository(tree)
    remote = tree.group("remote", "remotes: upstream indexes to proxy or sync")
    standard_verbs(remote, REMOTES, "remotes")
    _add_labels(remote, kinds.REMOTE)
    _add_distribution(tree)
    _add_content(tree)
    _add_artifact(tree)
    _add_task(tree)
    _add_publication(tree)
    statuses = tree.group(
        "project-status", "local projects' status (PEP 792): archived, quarantined, deprecated"
    )
    standard_verbs(statuses, PROJECT_STATUSES, "project statuses")
    _add_yank(tree)
    _add_token(tree)
    orphans = tree.group("orphans", "content in no repository version")
    cleanup = orphans.verb("cleanup", "remove orphaned packages and their files", orphans_cleanup)
    cleanup.add_argument(
        "--protection-time",
        type=non_negative,
        metavar="MINUTES",
        help="keep orphans younger than this (server default: 1440)",
    )
    repair = tree.verb(
        "repair",
        "fetch again every stored file that is missing or damaged",
        lambda client, args: client.repair(None, args.verify_checksums),
    )
    _verify_flag(repair)
    tree.verb(
        "status", "show the server's status (no login needed)", lambda client, args: client.status()
    )
