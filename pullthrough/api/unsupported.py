"""Pulp core's APIs this server does not have, answered 404 with a message that says so.

pulp-cli finds an operation by its operationId in the API document and ends in a traceback
(`KeyError: 'users_list'`) when the document lacks it: for core's nouns it asks no version or
plugin first (we must claim core's version for everything else). Listing their list and create
operations, each answering 404 `{"detail": ...}` (no such thing here; a 5xx would say the
server failed), turns `pulp user list` into one line,
`Error: {"detail": "Not supported by pullthrough: ..."}`; the document says the same. Their
read too: `show`, `update`, `destroy` and the rest given an href read the object first, so
the refusal of the read is what every one of them prints.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Response

from pullthrough.api.kinds import API_ROOT
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


def _refuse(unsupported: Unsupported) -> View:
    """A view answering 404 with what `unsupported` says."""

    def view(call: Call) -> Response:
        return json_response({"detail": unsupported.detail()}, 404)

    return view


def _refusal(
    noun: Unsupported,
    verb: str,
    method: str,
    rule: str,
    *,
    href: str | None = None,
    params: tuple[Param, ...] = (),
    body: tuple[()] | None = None,
) -> Operation:
    """The operation `<noun>_<verb>` answering 404 with what `noun` says; with `href`, on one
    object (the document's path is that parameter, as Pulp's)."""
    return Operation(
        f"{noun.operation}_{verb}",
        method,
        rule,
        rule if href is None else "{" + href + "}",
        _refuse(noun),
        noun.detail(),
        params=params,
        path_param=href,
        body=body,
        transaction=False,
        responses={404: "NotFoundResponse"},
    )


def operations() -> list[Operation]:
    out = []
    for noun in UNSUPPORTED:
        path = API_ROOT + noun.path
        # what pulp-cli sends (a declared parameter or its own refusal): lookups, name filters
        lookup: tuple[Param, ...] = (
            (Param(noun.lookup),) if noun.lookup not in (None, "name") else ()
        )
        lookup += Filter("name", (EXACT, CONTAINS, ICONTAINS, IN)).params()
        out.append(_refusal(noun, "list", "GET", path, params=(*PAGE_PARAMS, *lookup)))
        out.append(_refusal(noun, "create", "POST", path, body=()))
        if noun.href is not None:
            item = path + "<item>/"
            out.append(_refusal(noun, "read", "GET", item, href=noun.href, params=READ_PARAMS))
        for below, href in noun.below:
            rule = f"{path}<owner>/{below}<item>/"
            verb = f"{below.strip('/')}_read"
            out.append(_refusal(noun, verb, "GET", rule, href=href, params=READ_PARAMS))
    return out
