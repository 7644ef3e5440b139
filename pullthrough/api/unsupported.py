"""Pulp core's APIs this server does not have, answered 404 with a message that says so.

pulp-cli finds an operation by its operationId in the API document and ends in a traceback
(`KeyError: 'users_list'`) when the document lacks it: for core's nouns it asks no version or
plugin first (we must claim core's version for everything else). Listing their list and create
operations, each answering 404 `{"detail": ...}` (no such thing here; a 5xx would say the
server failed), turns `pulp user list` into one line,
`Error: {"detail": "Not supported by pullthrough: ..."}`; the document says the same.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Response

from pullthrough.api.kinds import API_ROOT
from pullthrough.api.operations import Call, Operation, View, json_response
from pullthrough.api.params import CONTAINS, EXACT, ICONTAINS, IN, PAGE_PARAMS, Filter, Param

NO_USERS = "it has one administrator ([auth]) and API tokens (/pulp/api/v3/tokens/)"
NO_GUARDS = "a distribution with private = true serves only to tokens that may read it"


@dataclass(frozen=True)
class Unsupported:
    """One of Pulp core's nouns: its operationId prefix, path, the filter pulp-cli looks it up
    by, and what to use instead."""

    operation: str
    path: str  # below API_ROOT
    what: str
    lookup: str | None = "name"
    instead: str = ""

    def detail(self) -> str:
        reason = f": {self.instead}" if self.instead else ""
        return f"Not supported by pullthrough: {self.what} ({API_ROOT}{self.path}){reason}."


UNSUPPORTED = (
    Unsupported("access_policies", "access_policies/", "access policies", "viewset_name", NO_USERS),
    Unsupported("users", "users/", "users", "username", NO_USERS),
    Unsupported("groups", "groups/", "groups", instead=NO_USERS),
    Unsupported("roles", "roles/", "roles", instead=NO_USERS),
    Unsupported("domains", "domains/", "domains"),
    Unsupported("contentguards", "contentguards/", "content guards", instead=NO_GUARDS),
    *(
        Unsupported(
            f"contentguards_core_{kind}", f"contentguards/core/{kind}/", what, None, NO_GUARDS
        )
        for kind, what in (
            ("rbac", "RBAC content guards"),
            ("composite", "composite content guards"),
            ("content_redirect", "content redirect content guards"),
            ("header", "header content guards"),
        )
    ),
    Unsupported("signing_services", "signing-services/", "signing services"),
    Unsupported(
        "importers_core_pulp",
        "importers/core/pulp/",
        "Pulp importers",
        instead="`pullthrough import` loads a bundle",
    ),
    Unsupported(
        "exporters_core_pulp",
        "exporters/core/pulp/",
        "Pulp exporters",
        instead="`pullthrough export` writes a repository version to a bundle",
    ),
    Unsupported("task_groups", "task-groups/", "task groups", None, "every task stands alone"),
    Unsupported("upstream_pulps", "upstream-pulps/", "upstream Pulps (replication)"),
    Unsupported("vuln_report", "vuln_report/", "vulnerability reports", None),
)


def _refuse(unsupported: Unsupported) -> View:
    """A view answering 404 with what `unsupported` says."""

    def view(call: Call) -> Response:
        return json_response({"detail": unsupported.detail()}, 404)

    return view


def operations() -> list[Operation]:
    out = []
    for noun in UNSUPPORTED:
        path = API_ROOT + noun.path
        # what pulp-cli sends (a declared parameter or its own refusal): lookups, name filters
        lookup: tuple[Param, ...] = (
            (Param(noun.lookup),) if noun.lookup not in (None, "name") else ()
        )
        lookup += Filter("name", (EXACT, CONTAINS, ICONTAINS, IN)).params()
        summary = noun.detail()
        for verb, method, params, body in (
            ("list", "GET", (*PAGE_PARAMS, *lookup), None),
            ("create", "POST", (), ()),
        ):
            out.append(
                Operation(
                    f"{noun.operation}_{verb}",
                    method,
                    path,
                    path,
                    _refuse(noun),
                    summary,
                    params=params,
                    body=body,
                    transaction=False,
                    responses={404: "NotFoundResponse"},
                )
            )
    return out
