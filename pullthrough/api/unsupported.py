"""Pulp core's APIs this server does not have, answered 404 with a message that says so.

pulp-cli finds an operation by its operationId in the API document and ends in a traceback
(`KeyError: 'users_list'`) when the document lacks it: for core's nouns it asks no version or
plugin first (we must claim core's version for everything else). Listing their list and create
operations, each answering 404 `{"detail": ...}` (no such thing here; a 5xx would say the
server failed), turns `pulp user list` into one line,
`Error: {"detail": "Not supported by pullthrough: ..."}`; the document says the same. Their
read too: `show`, `update`, `destroy` and the rest given an href read the object first, so
the refusal of the read is what every one of them prints. So are the actions Pulp has on
objects this server does have (roles on tasks, reclaim, repair_metadata, scan).
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Response

from pullthrough.api.kinds import API_ROOT, REPOSITORY, TASK, VERSION
from pullthrough.api.operations import Call, Operation, View, json_response
from pullthrough.api.params import (
    CONTAINS,
    EXACT,
    ICONTAINS,
    IN,
    PAGE_PARAMS,
    READ_PARAMS,
    Filter,
    Param,
)

NO_USERS = "it has one administrator ([auth]) and API tokens (/pulp/api/v3/tokens/)"
NO_GUARDS = "a distribution with private = true serves only to tokens that may read it"


@dataclass(frozen=True)
class Unsupported:
    """One of Pulp core's nouns: its operationId prefix, path, pulp-cli's name for one's href
    (the read's path parameter; None: it reads none), the filter pulp-cli looks it up by, what
    to use instead, and the nouns below one that pulp-cli reads by href (`exports`)."""

    operation: str
    path: str  # below API_ROOT
    what: str
    href: str | None
    lookup: str | None = "name"
    instead: str = ""
    below: tuple[tuple[str, str], ...] = ()  # (its path below one, its href's name)

    def detail(self) -> str:
        reason = f": {self.instead}" if self.instead else ""
        return f"Not supported by pullthrough: {self.what} ({API_ROOT}{self.path}){reason}."


UNSUPPORTED = (
    Unsupported(
        "access_policies", "access_policies/", "access policies", "access_policy_href",
        "viewset_name", NO_USERS,
    ),
    Unsupported("users", "users/", "users", "auth_user_href", "username", NO_USERS),
    Unsupported("groups", "groups/", "groups", "group_href", instead=NO_USERS),
    Unsupported("roles", "roles/", "roles", "role_href", instead=NO_USERS),
    Unsupported("domains", "domains/", "domains", "domain_href"),
    Unsupported("contentguards", "contentguards/", "content guards", None, instead=NO_GUARDS),
    *(
        Unsupported(
            f"contentguards_core_{kind}", f"contentguards/core/{kind}/", what, href, None,
            NO_GUARDS,
        )
        for kind, what, href in (
            ("rbac", "RBAC content guards", "r_b_a_c_content_guard_href"),
            ("composite", "composite content guards", "composite_content_guard_href"),
            (
                "content_redirect",
                "content redirect content guards",
                "content_redirect_content_guard_href",
            ),
            ("header", "header content guards", "header_content_guard_href"),
        )
    ),
    Unsupported(
        "signing_services", "signing-services/", "signing services", "signing_service_href"
    ),
    Unsupported(
        "importers_core_pulp",
        "importers/core/pulp/",
        "Pulp importers",
        "pulp_importer_href",
        instead="`pullthrough import` loads a bundle",
    ),
    Unsupported(
        "exporters_core_pulp",
        "exporters/core/pulp/",
        "Pulp exporters",
        "pulp_exporter_href",
        instead="`pullthrough export` writes a repository version to a bundle",
        below=(("exports/", "pulp_pulp_export_href"),),
    ),
    Unsupported(
        "task_groups", "task-groups/", "task groups", "task_group_href", None,
        "every task stands alone",
    ),
    Unsupported(
        "upstream_pulps", "upstream-pulps/", "upstream Pulps (replication)", "upstream_pulp_href"
    ),
    Unsupported(
        "vuln_report", "vuln_report/", "vulnerability reports", "vulnerability_report_href", None
    ),
)  # fmt: skip


@dataclass(frozen=True)
class Action:
    """An action of Pulp's on an object of a kind this server has, which it lacks: its
    operationId, method, the object's path (a Flask rule below API_ROOT; "" for an action on
    none) and the document's name for its href, the action's path below it, what it does,
    what to use instead, and whether pulp-cli sends a body (it must be declared, or absent)."""

    operation: str
    method: str
    item: str
    href: str | None
    path: str
    what: str
    instead: str = ""
    body: bool = False

    def detail(self) -> str:
        reason = f": {self.instead}" if self.instead else ""
        return f"Not supported by pullthrough: {self.what}{reason}."


TASK_ITEM = f"{TASK.path}<id>/"
VERSION_ITEM = f"{REPOSITORY.path}<id>/versions/<int:number>/"
UNSUPPORTED_ACTIONS = (
    *(
        Action(f"tasks_{verb}", method, TASK_ITEM, TASK.href_param, f"{verb}/",
               "roles and permissions on tasks", NO_USERS, body=method == "POST")
        for verb, method in (
            ("list_roles", "GET"), ("add_role", "POST"), ("remove_role", "POST"),
            ("my_permissions", "GET"),
        )
    ),
    Action("tasks_profile_artifacts", "GET", TASK_ITEM, TASK.href_param, "profile_artifacts/",
           "task profiles"),
    Action("repositories_reclaim_space_reclaim", "POST", "", None, "repositories/reclaim_space/",
           "reclaiming the disk space of repositories' files",
           "`pulp orphan cleanup` removes the files no repository version holds", body=True),
    Action(f"{REPOSITORY.operation}_repair_metadata", "POST", f"{REPOSITORY.path}<id>/",
           REPOSITORY.href_param, "repair_metadata/", "repairing packages' metadata",
           "it is read from each file as it is stored; `pulp python repository version repair` "
           "checks the files"),
    Action(f"{VERSION.operation}_scan", "POST", VERSION_ITEM, VERSION.href_param, "scan/",
           "vulnerability scans of repository versions"),
)  # fmt: skip


def _refuse(detail: str) -> View:
    """A view answering 404 with `detail`."""

    def view(call: Call) -> Response:
        return json_response({"detail": detail}, 404)

    return view


def _refusal(
    operation_id: str,
    detail: str,
    method: str,
    rule: str,
    *,
    doc_path: str | None = None,
    href: str | None = None,
    params: tuple[Param, ...] = (),
    body: bool = False,
) -> Operation:
    """The operation answering 404 `detail`: at `rule` (the document's path: `doc_path`, or
    the rule), on the object `href` names if given; with `body`, it takes one (no fields)."""
    return Operation(
        operation_id,
        method,
        rule,
        doc_path or rule,
        _refuse(detail),
        detail,
        params=params,
        path_param=href,
        body=() if body else None,
        transaction=False,
        responses={404: "NotFoundResponse"},
    )


def operations() -> list[Operation]:
    out = []
    for noun in UNSUPPORTED:
        path, detail = API_ROOT + noun.path, noun.detail()
        # what pulp-cli sends (a declared parameter or its own refusal): lookups, name filters
        lookup: tuple[Param, ...] = (
            (Param(noun.lookup),) if noun.lookup not in (None, "name") else ()
        )
        lookup += Filter("name", (EXACT, CONTAINS, ICONTAINS, IN)).params()
        list_params = (*PAGE_PARAMS, *lookup)
        out.append(_refusal(f"{noun.operation}_list", detail, "GET", path, params=list_params))
        out.append(_refusal(f"{noun.operation}_create", detail, "POST", path, body=True))
        reads = [(f"{noun.operation}_read", path + "<item>/", noun.href)]  # by href, as Pulp
        reads += [
            (f"{noun.operation}_{below.strip('/')}_read", f"{path}<owner>/{below}<item>/", href)
            for below, href in noun.below
        ]
        for operation_id, rule, href in reads:
            if href is not None:
                read = _refusal(operation_id, detail, "GET", rule, doc_path="{" + href + "}",
                                href=href, params=READ_PARAMS)  # fmt: skip
                out.append(read)
    for action in UNSUPPORTED_ACTIONS:
        below = API_ROOT if action.href is None else "{" + action.href + "}"
        rule = API_ROOT + action.item + action.path
        doc_path = below + action.path
        out.append(_refusal(action.operation, action.detail(), action.method, rule,
                            doc_path=doc_path, href=action.href, body=action.body))  # fmt: skip
    return out
