"""Who may do what: base paths, token scopes, and the principal a request acts as.

Scopes are PyPI-like strings: `read:<base_path>`, `upload:<base_path>` (optionally limited to
project names or patterns: `upload:corp:acme-*`), and `admin`. Pure: the server decides with
these, the catalog only stores the strings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from packaging.utils import NormalizedName

from pullthrough.core.filters import Rule, parse_rule

READ, UPLOAD, ADMIN = "read", "upload", "admin"
ACTIONS = (READ, UPLOAD, ADMIN)
SCOPE_HELP = "read:<base_path>, upload:<base_path>[:<project or pattern>] or admin"


def parse_base_path(value: object) -> str:
    text = str(value).strip("/")
    if not re.fullmatch(r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*", text) or ".." in text.split("/"):
        raise ValueError(f"expected a path like 'pypi' or 'team/pypi', got {value!r}")
    return text


def overlaps(base_path: str, other: str) -> bool:
    """Whether two base paths are the same or one is inside the other (`team`, `team/pypi`):
    as in Pulp, a distribution's URLs never fall under another's (`main/simple` would have
    its project list answered by `main`, as its project `simple`)."""
    return (
        base_path == other or other.startswith(base_path + "/") or base_path.startswith(other + "/")
    )


@dataclass(frozen=True, slots=True)
class Scope:
    action: str  # READ, UPLOAD or ADMIN
    base_path: str = ""  # "" for ADMIN
    projects: Rule | None = None  # UPLOAD only: the names it may upload (None: any)

    def __str__(self) -> str:
        parts = [self.action, self.base_path, self.projects.text if self.projects else ""]
        return ":".join(p for p in parts if p)


def parse_scope(text: object) -> Scope:
    """A scope from its string; ValueError saying what is wrong."""
    if not isinstance(text, str):
        raise ValueError(f"expected a scope string ({SCOPE_HELP}), got {text!r}")
    action, _, rest = text.strip().partition(":")
    if action == ADMIN and not rest:
        return Scope(ADMIN)
    if action not in (READ, UPLOAD) or not rest:
        raise ValueError(f"{text!r} is not a scope: expected {SCOPE_HELP}")
    base_path, _, names = rest.partition(":")
    try:
        path = parse_base_path(base_path)
    except ValueError as exc:
        raise ValueError(f"{text!r}: {exc}") from None
    if not names:
        return Scope(action, path)
    if action != UPLOAD:
        raise ValueError(f"{text!r}: only upload scopes name projects")
    try:
        rule = parse_rule(names)
    except ValueError as exc:
        raise ValueError(f"{text!r}: {exc}") from None
    if rule.specifier is not None:
        raise ValueError(f"{text!r}: a project name or pattern, without versions")
    return Scope(UPLOAD, path, rule)


def parse_scopes(value: object) -> list[str]:
    """The API's `scopes` field: a non-empty list of scopes, each checked, kept as written."""
    if not isinstance(value, list) or not value:
        raise ValueError(f"expected a non-empty list of scopes ({SCOPE_HELP})")
    return [str(parse_scope(item)) for item in value]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts as: the configured admin, or a token with its scopes."""

    actor: str  # as the audit trail and packages name it: "admin", "token:ci-upload"
    scopes: tuple[Scope, ...]
    token_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return any(s.action == ADMIN for s in self.scopes)

    def may_read(self, base_path: str) -> bool:
        return self.is_admin or any(
            s.action == READ and s.base_path == base_path for s in self.scopes
        )

    def upload_refusal(self, base_path: str, project: NormalizedName | None = None) -> str | None:
        """Why this principal may not upload `project` to `base_path` (without a project:
        anything at all, asked before the file is read); None if it may."""
        if self.is_admin:
            return None
        scopes = [s for s in self.scopes if s.action == UPLOAD and s.base_path == base_path]
        if not scopes:
            return f"{self.actor} may not upload to {base_path!r} (it has no upload:{base_path})"
        if project is None or any(
            s.projects is None or s.projects.matches_name(project) for s in scopes
        ):
            return None
        allowed = ", ".join(sorted(s.projects.text for s in scopes if s.projects))
        return f"{self.actor} may upload only {allowed} to {base_path!r}, not {project!r}"


def client_address(peer: str, forwarded_for: str | None, trusted: frozenset[str]) -> str:
    """Who a request comes from: the peer, or behind a trusted proxy (nginx in front, which
    appends the address it saw to X-Forwarded-For) the last address that proxy added."""
    if forwarded_for and (peer in trusted or "*" in trusted):
        last = forwarded_for.rsplit(",", 1)[-1].strip()
        if last:
            return last[:64]
    return peer


def admin_principal(username: str) -> Principal:
    return Principal(username, (Scope(ADMIN),))
