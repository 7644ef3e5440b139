"""Configuration: defaults, then a TOML file, then PULLTHROUGH_<SECTION>__<KEY> environment values.

Every setting is declared once, as an attribute of a section's dataclass (`setting(...)`, see
core.fields): the file and environment parser, the catalog's copy of remotes and distributions,
the REST API's fields and document, and the CLI's options all derive from that declaration.
Invalid configuration raises ConfigError naming the key and the problem, so the server refuses to
start instead of misbehaving later.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pullthrough.core.access import overlaps, parse_base_path
from pullthrough.core.fields import Field, fields_of, parse_section, setting
from pullthrough.core.filenames import PACKAGE_TYPES, PLATFORMS
from pullthrough.core.filters import FilterSpec, parse_rule
from pullthrough.core.links import without_userinfo
from pullthrough.core.policy import ENFORCE, POLICY_MODES, Blocklist, Policy
from pullthrough.core.remotes import ordered
from pullthrough.core.times import PRESIGNED_MAX, read_utc

ENV_PREFIX = "PULLTHROUGH_"
# Set for a node's gunicorn workers once the node's setup is done (cli.server.start_node) and
# found the catalog one it knows: a worker, the first or one started in place of a dead one
# while the others serve, does not do it again (services.container.prepare_data), and goes on
# when a newer node has upgraded the catalog since (catalog.db.migrate)
NODE_STARTED_ENV = "PULLTHROUGH_NODE_STARTED"
DEFAULT_BIND = "127.0.0.1:24817"
POLICIES = IMMEDIATE, ON_DEMAND, STREAMED = ("immediate", "on_demand", "streamed")  # Pulp's


class ConfigError(ValueError):
    """Invalid configuration; the message names the key."""


_SIZE_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
_SIZE_UNITS |= {"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_DURATION_UNITS = {"ms": 0.001, "s": 1, "": 1, "m": 60, "h": 3600, "d": 86400}


MAX_SIZE = 2**62  # bytes: beyond any disk, within every integer type we store sizes in
MAX_DURATION = 10 * 365 * 86400.0  # seconds: ten years, within every timeout a socket takes


def parse_size(value: object) -> int:
    """`20GB`, `512MiB`, `1000` (bytes) -> bytes."""
    size = value if isinstance(value, int) and not isinstance(value, bool) else None
    if size is None:
        m = re.fullmatch(r"\s*(\d{1,30}(?:\.\d{1,30})?)\s*([a-zA-Z]*)\s*", str(value)[:100])
        if not m or m.group(2).lower() not in _SIZE_UNITS:
            raise ValueError(f"expected a size like '20GB' or '512MiB', got {value!r}")
        size = int(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])
    if not 0 <= size <= MAX_SIZE:
        raise ValueError(f"expected a size from 0 to {MAX_SIZE} bytes, got {value!r}")
    return size


_ISO_DURATION = re.compile(
    r"P(?:(\d{1,9})W)?(?:(\d{1,9})D)?(?:T(?:(\d{1,9})H)?(?:(\d{1,9})M)?(?:(\d{1,9}(?:\.\d{1,9})?)S)?)?"
)


def parse_duration(value: object) -> float:
    """`10m`, `30s`, `500ms`, `7d`, `1.5` (seconds), ISO 8601 `P7D`, `PT12H` -> seconds."""
    text = str(value).strip().upper()
    iso = (
        _ISO_DURATION.fullmatch(text)
        if isinstance(value, str) and text not in ("P", "PT")
        else None
    )
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value) if abs(value) <= MAX_DURATION else math.inf
    elif iso is not None:
        weeks, days, hours, minutes, secs = (float(part or 0) for part in iso.groups())
        seconds = (((weeks * 7 + days) * 24 + hours) * 60 + minutes) * 60 + secs
    else:
        m = re.fullmatch(r"\s*(\d{1,30}(?:\.\d{1,30})?)\s*(ms|s|m|h|d|)\s*", str(value)[:100])
        if not m:
            raise ValueError(f"expected a duration like '10m', '30s' or '500ms', got {value!r}")
        seconds = float(m.group(1)) * _DURATION_UNITS[m.group(2)]
    if not 0 <= seconds <= MAX_DURATION:  # also NaN and infinity
        raise ValueError(f"expected a duration from 0 to ten years, got {value!r}")
    return seconds


def parse_bind(value: object) -> str:
    text = str(value)
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    return text


def _uri_prefix(value: object) -> str:
    text = str(value)
    if text and not re.fullmatch(r"/([A-Za-z0-9._~-]+/)+", text):
        raise ValueError(f"expected empty or a path such as /_pullthrough/files/, got {value!r}")
    return text


def _presign_expiry(value: float) -> float:
    """0, or a presigned URL's life: whole seconds (X-Amz-Expires) from 1 s to 7 days; S3
    refuses URLs whose expiry is 0 (expired at once) or over a week (400)."""
    if value and not 1 <= value <= PRESIGNED_MAX:
        raise ValueError(
            f"expected 0 or from 1s to 7d (S3's limit for presigned URLs), got {value:g}s"
        )
    return float(math.ceil(value))


def _name(value: object) -> str:
    text = str(value)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", text):
        raise ValueError(f"expected a name of letters, digits, '.', '_' and '-', got {value!r}")
    return text


def _http_url(value: str) -> str:
    """An http(s) URL whose host (and port) parse: a user or password with a `/`, `?` or `#`
    not percent-encoded would end the host early (`http://bob:pa/ss@host/` names the host `bob`,
    the port `pa`) and leave the rest of the password in the path, query or fragment, shown and
    logged: an `@` before the first `/` after the host is refused (`bob:12/ss@host/`,
    `bob:12?ss@host/`, `tok?en@host/`). An `@` further on is the index's own (Azure Artifacts'
    `/_packaging/feed@Local/pypi/simple/`, a query's token after the path)."""
    text = value.strip()
    parts = urlsplit(text)
    shown = without_userinfo(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an http(s) URL, got {shown!r}")
    after_host = urlunsplit(("", "", parts.path, parts.query, parts.fragment))
    if "@" in after_host.removeprefix("/").partition("/")[0]:
        raise ValueError(
            f"expected an http(s) URL, got {shown!r}: a user or password holding '/', '?', '#'"
            " or '@' must have them percent-encoded (%2F, %3F, %23, %40)"
        )
    try:
        parts.port  # noqa: B018 - read for its check
    except ValueError:
        raise ValueError(
            f"expected an http(s) URL, got {shown!r}: its port is no number from 0 to 65535"
        ) from None
    return text


DATABASE_DRIVERS = ("sqlite", "sqlite+pysqlite", "postgresql+psycopg")


def _database_url(value: str) -> str:
    """A catalog URL of a driver pullthrough ships (`postgresql://` means psycopg 3's)."""
    from sqlalchemy.engine import make_url  # here: the CLI's REST verbs start without it
    from sqlalchemy.exc import ArgumentError

    text = value.strip()
    if not text:
        return text
    try:
        url = make_url(text)
    except ArgumentError:
        raise ValueError(f"expected a database URL, got {without_userinfo(text)!r}") from None
    if url.drivername in ("postgresql", "postgres"):
        return url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    if url.drivername not in DATABASE_DRIVERS:
        raise ValueError(
            f"expected a URL of SQLite or PostgreSQL (postgresql+psycopg://user@host/db),"
            f" got one of {url.drivername!r}"
        )
    return text


def _duration_text(value: str) -> str:
    """A duration kept as written (`7d`, `P7D`), once it reads as one."""
    parse_duration(value)
    return value.strip()


def parse_moment(value: str) -> str:
    """An RFC 3339 time, kept in UTC ISO 8601 form (a time without a zone is UTC)."""
    try:
        when = read_utc(value)
    except ValueError:  # unreadable, or out of range in UTC
        raise ValueError(
            f"expected an RFC 3339 time like 2026-01-31T00:00:00Z, got {value!r}"
        ) from None
    return when.isoformat().replace("+00:00", "Z")


def _text_of(value: object) -> str:
    """A TOML number or date given where the setting's text is (`min_age = 3600`)."""
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _distinct(names: list[str]) -> list[str]:
    if len(set(names)) != len(names):
        raise ValueError("A remote may be listed once.")
    return names


def _blocklist(values: list[str]) -> list[str]:
    Blocklist.parse(values)  # raises ValueError naming the entry
    return values


def _rules(values: list[str]) -> list[str]:
    for text in values:
        parse_rule(text)  # raises ValueError naming the entry
    return values


_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _headers(value: object) -> list[dict[str, str]]:
    """A table of header names and values (a file), JSON text (the environment), or Pulp's
    list of one-entry objects (the API): as Pulp's list."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except RecursionError:
            raise ValueError("expected a table of header names and values") from None
    if isinstance(value, dict):
        value = [{k: v} for k, v in value.items()]
    if not isinstance(value, list):
        # not shown: header values are secrets
        raise ValueError(f"expected a table of header names and values, got {type(value).__name__}")
    return value


def _check_headers(items: list[Any]) -> list[dict[str, str]]:
    for item in items:
        if not isinstance(item, dict):
            raise ValueError("Expected a list of {name: value} objects.")
        for name, value in item.items():
            if not _TOKEN.fullmatch(name):
                raise ValueError(f"{name!r} is not a valid header name.")
            if not isinstance(value, str) or any(c in value for c in "\r\n\0"):
                raise ValueError(f"The value of header {name!r} must be one line of text.")
    return items


def _pem(value: object) -> str:
    """PEM text as given, or read from the file a path names."""
    text = str(value)
    if text.lstrip().startswith("-----BEGIN"):
        return text
    try:
        return Path(text).read_text()
    except (OSError, ValueError) as exc:  # the text is not shown: it may be a key
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ValueError(
            f"expected PEM text (-----BEGIN ...) or the path of a readable file ({why})"
        ) from None


def size(default: int, *, help: str, minimum: int = 0) -> Any:
    """A setting in bytes: `20GB`, `512MiB` or a number, up to MAX_SIZE (not INT_MAX)."""
    return setting(default, minimum=minimum, maximum=MAX_SIZE, coerce=parse_size, help=help)


def duration(default: float | None, *, help: str, **declared: Any) -> Any:
    """A setting in seconds: `10m`, `30s`, `500ms` or a number, at most ten years."""
    return setting(
        default, minimum=0, maximum=MAX_DURATION, coerce=parse_duration, help=help, **declared
    )


@dataclass(frozen=True)
class ServerSettings:
    bind: str = setting(DEFAULT_BIND, clean=parse_bind, help="HOST:PORT to listen on.")
    data_dir: Path = setting(
        Path("pullthrough-data"),
        clean=Path,
        help="Files, the catalog (SQLite), the page cache, cache bookkeeping and locks.",
    )
    database_url: str = setting(
        "", clean=_database_url, help="Empty: SQLite in data_dir; or postgresql+psycopg://..."
    )
    workers: int = setting(
        0, minimum=0, help="gunicorn worker processes (0: one per core, at least 2)."
    )
    threads: int = setting(32, minimum=1, help="Threads per worker (requests wait on I/O).")
    max_upload_size: int = size(2 * 2**30, help="Bytes; larger uploads get 413.")
    embedded_worker: bool = setting(True, help="Run background tasks in the server processes.")
    accel_redirect: str = setting(
        "",
        clean=_uri_prefix,
        help="Empty: stored files are sent by the server. Else the prefix of the nginx front's"
        " internal location for data_dir/artifacts (deploy/nginx.conf: /_pullthrough/files/):"
        " a stored file, once its access is checked, is answered with X-Accel-Redirect and"
        " nginx sends it (local storage only).",
    )


@dataclass(frozen=True)
class CacheSettings:
    max_size: int = size(20 * 10**9, help="Bytes of pull-through (orphaned) files; LRU beyond.")
    index_ttl: float = duration(600.0, help="Seconds an upstream page is used before revalidation.")


STORAGE_BACKENDS = ("local", "s3")
ADDRESSING_STYLES = ("auto", "path", "virtual")


@dataclass(frozen=True)
class StorageSettings:
    """Where files live: the data folder (one host), or S3-compatible object storage."""

    backend: str = setting(
        "local", choices=STORAGE_BACKENDS, help="local (data_dir/artifacts) or s3."
    )
    s3_endpoint_url: str = setting(
        "",
        clean=lambda text: _http_url(text) if text.strip() else "",
        help="The S3 endpoint (http://seaweedfs:8333, https://minio...); empty: AWS.",
    )
    s3_bucket: str = setting("", help="The bucket (it must exist).")
    s3_region: str = setting("us-east-1", help="The bucket's region.")
    s3_prefix: str = setting("", help="Keys start with this (several servers in one bucket).")
    s3_access_key_id: str = setting(
        "", write_only=True, help="Empty: boto3's own lookup (environment, instance role)."
    )
    s3_secret_access_key: str = setting("", write_only=True, help="The access key's secret.")
    s3_addressing_style: str = setting(
        "auto", choices=ADDRESSING_STYLES, help="path for most S3-compatible servers."
    )
    s3_redirect: float = duration(
        0.0,
        clean=_presign_expiry,
        help="0: files stream through the server; else clients are redirected to presigned"
        " URLs valid this long (1s to 7d, in whole seconds).",
    )
    s3_public_endpoint_url: str = setting(
        "",
        clean=lambda text: _http_url(text) if text.strip() else "",
        help="The S3 endpoint clients reach, which presigned redirect URLs name and are signed"
        " for (the server may reach the store at an internal address); empty: s3_endpoint_url.",
    )


@dataclass(frozen=True)
class AuthSettings:
    admin_username: str = setting("admin", help="The bootstrap administrator.")
    admin_password: str = setting(
        "", write_only=True, help="Empty: generated at first start, printed once, kept in data_dir."
    )
    admin_token: str = setting(
        "", write_only=True, help="If set, `Authorization: Token <value>` is accepted too."
    )
    failure_burst: int = setting(
        10,
        minimum=1,
        help="Failed logins a client address may make per failure_window before answers are 429.",
    )
    failure_window: float = duration(60.0, help="The window failed logins are counted over.")


@dataclass(frozen=True)
class TaskSettings:
    heartbeat: float = duration(5.0, help="Seconds between a task worker's heartbeats.")
    worker_timeout: float = duration(
        30.0,
        help="A worker silent this long is presumed dead and its running task failed.",
    )


@dataclass(frozen=True)
class RemoteSettings:
    """A remote: an upstream index to proxy or sync from (Pulp's python remote)."""

    name: str
    url: str = setting(
        clean=_http_url, help="The index root (https://pypi.org/) or its simple URL."
    )
    includes: list[str] = setting(
        default_factory=list,
        clean=_rules,
        help="Only these projects: requirement strings (django~=2.0,!=2.0.1) or name patterns (acme-*).",
    )
    excludes: list[str] = setting(
        default_factory=list, clean=_rules, help="Never these (same forms as includes)."
    )
    prereleases: bool = setting(True, help="Offer pre-release versions.")
    package_types: list[str] = setting(
        default_factory=list,
        item_choices=tuple(sorted(PACKAGE_TYPES)),
        help="Only these package types (empty: all).",
    )
    exclude_platforms: list[str] = setting(
        default_factory=list,
        item_choices=tuple(sorted(PLATFORMS)),
        help="Leave out wheels only for these platforms.",
    )
    keep_latest_packages: int = setting(
        0, minimum=0, help="Sync: only the newest K versions of each project (0: all)."
    )
    policy: str = setting(
        ON_DEMAND,
        choices=POLICIES,
        help="Sync: immediate (download everything), on_demand (when first asked), streamed (sent, not kept).",
    )
    download_concurrency: int | None = setting(
        None, minimum=1, maximum=100, help="Sync: parallel downloads (default 4)."
    )
    connect_timeout: float = duration(
        10.0, null_default=True, help="Seconds to connect to the upstream (null: 10)."
    )
    sock_connect_timeout: float | None = duration(None, help="Pulp's name for the connect timeout.")
    sock_read_timeout: float = duration(
        60.0, null_default=True, help="Seconds without a byte from the upstream (null: 60)."
    )
    total_timeout: float | None = duration(None, help="Seconds for a whole page or file.")
    max_retries: int = setting(
        3,
        minimum=0,
        maximum=100,
        null_default=True,
        help="Retries of a failed or 5xx request (null: 3).",
    )
    rate_limit: int | None = setting(
        None, minimum=0, help="Accepted as in Pulp; not enforced by pullthrough."
    )
    username: str | None = setting(
        None, write_only=True, help="Basic auth, sent to the index's own host only."
    )
    password: str | None = setting(None, write_only=True, help="Basic auth password.")
    headers: list[dict[str, str]] = setting(
        default_factory=list,
        coerce=_headers,
        clean=_check_headers,
        help="Extra request headers for the index's own host: [{name: value}, ...].",
    )
    proxy_url: str | None = setting(None, clean=_http_url, help="An HTTP(S) proxy to go through.")
    proxy_username: str | None = setting(None, write_only=True, help="The proxy's user.")
    proxy_password: str | None = setting(None, write_only=True, help="The proxy's password.")
    tls_validation: bool = setting(True, help="Check the upstream's TLS certificate.")
    min_age: str | None = setting(
        None,
        coerce=_text_of,
        clean=_duration_text,
        help="Hold files younger than this on the upstream (by its upload time): 7d, 12h, P7D.",
    )
    exclude_newer: str | None = setting(
        None,
        coerce=_text_of,
        clean=parse_moment,
        help="Hold files uploaded after this RFC 3339 time: the upstream frozen as of then.",
    )
    policy_exempt: list[str] = setting(
        default_factory=list,
        clean=_rules,
        help="Names, patterns or requirement strings the holds spare (acme-*, django==5.2.9).",
    )
    policy_mode: str = setting(
        ENFORCE,
        choices=POLICY_MODES,
        help="enforce: held files are hidden and refused; audit: served, and logged as held.",
    )
    hold_unknown_upload_time: bool = setting(
        True, help="Under min_age or exclude_newer, hold files the upstream gives no upload time."
    )
    allow_private_addresses: bool = setting(
        False,
        help="Fetch files from loopback, link-local or private addresses even when the index is"
        " not at one (off: only addresses of the kinds the index itself is at).",
    )
    allow_unhashed: bool = setting(
        False, help="Fetch files the index lists without a sha256 (their bytes go unchecked)."
    )
    max_page_size: int = size(
        100 * 10**6, minimum=1, help="Bytes; a larger upstream page is refused."
    )
    max_page_files: int = setting(
        200_000, minimum=1, help="A project page listing more files is refused."
    )
    ca_cert: str | None = setting(
        None, coerce=_pem, help="PEM CA certificates (in a file: its path)."
    )
    client_cert: str | None = setting(None, coerce=_pem, help="PEM client certificate.")
    client_key: str | None = setting(
        None, write_only=True, coerce=_pem, help="PEM key of the client certificate."
    )
    given: frozenset[str] = field(default=frozenset(), compare=False, repr=False)
    embedded: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    @functools.cached_property
    def filters(self) -> FilterSpec:
        return FilterSpec.build(
            includes=self.includes,
            excludes=self.excludes,
            prereleases=self.prereleases,
            package_types=self.package_types,
            exclude_platforms=self.exclude_platforms,
        )

    @functools.cached_property
    def holds(self) -> Policy:
        """What the remote holds back (core.policy)."""
        return Policy(
            min_age=timedelta(seconds=parse_duration(self.min_age)) if self.min_age else None,
            exclude_newer=datetime.fromisoformat(self.exclude_newer)
            if self.exclude_newer
            else None,
            exempt=tuple(parse_rule(text) for text in self.policy_exempt),
            mode=self.policy_mode,
            hold_unknown=self.hold_unknown_upload_time,
        )

    @property
    def header_map(self) -> dict[str, str]:
        return {k: v for item in self.headers for k, v in item.items()}

    def values(self) -> dict[str, Any]:
        """Every declared setting, JSON-ready (the catalog keeps remotes this way)."""
        return {f.name: getattr(self, f.name) for f in REMOTE_FIELDS}

    @classmethod
    def from_values(cls, name: str, values: Mapping[str, Any]) -> RemoteSettings:
        """From stored values: settings declared since they were stored take their defaults,
        settings no longer declared are ignored."""
        return cls(name=name, **_effective(values))


def _effective(values: Mapping[str, Any]) -> dict[str, Any]:
    """A remote's declared settings among `values`; a null one that stands for its default
    (`null_default`: a timeout reset, as Pulp allows) left out, so the default applies."""
    return {
        f.name: values[f.name]
        for f in REMOTE_FIELDS
        if f.name in values and not (f.null_default and values[f.name] is None)
    }


@dataclass(frozen=True)
class DistributionSettings:
    """A distribution: a base path that pip and twine talk to."""

    name: str
    base_path: str = setting(
        clean=parse_base_path, unique=True, help="Served at /pypi/<base_path>/simple/."
    )
    remote: str | None = setting(
        None, href="remote", help="The remote whose projects it serves (pull-through)."
    )
    remotes: list[str] = setting(
        default_factory=list,
        clean=_distinct,
        href="remote",
        help="Its remotes in order: a project comes from the first that has it, the project"
        " list is their union; `remote` is the first (setting it alone keeps the others).",
    )
    allow_uploads: bool = setting(True, help="Accept uploads into the repository it serves.")
    merge_remote: bool = setting(
        False, help="Serve the remote's files of a project held locally too (off: shadowed)."
    )
    hidden: bool = setting(False, help="Leave it out of the status page's list.")
    private: bool = setting(
        False, help="Serve pages and files only to tokens with read:<base_path> (and the admin)."
    )
    blocklist: list[str] = setting(
        default_factory=list,
        clean=_blocklist,
        help="Refused whatever their source: names, name patterns, requirement strings"
        " (lib==1.2) and filenames.",
    )
    block_malicious: bool = setting(
        True,
        help="Block the versions that imported malicious-package advisories (OSV MAL-) name.",
    )
    hold_advisories: bool = setting(
        False, help="Hold the versions that an imported advisory (OSV) says are vulnerable."
    )
    given: frozenset[str] = field(default=frozenset(), compare=False, repr=False)
    # The keys the embedded defaults gave (no file, no environment variable): applied when the
    # object is created, never over what the API or CLI set since.
    embedded: frozenset[str] = field(default=frozenset(), compare=False, repr=False)


REMOTE_FIELDS: tuple[Field, ...] = fields_of(RemoteSettings)
DISTRIBUTION_FIELDS: tuple[Field, ...] = fields_of(DistributionSettings)
SECTIONS: dict[str, type] = {
    "server": ServerSettings,
    "cache": CacheSettings,
    "auth": AuthSettings,
    "tasks": TaskSettings,
    "storage": StorageSettings,
}


@dataclass(frozen=True)
class Settings:
    server: ServerSettings = ServerSettings()
    cache: CacheSettings = CacheSettings()
    auth: AuthSettings = AuthSettings()
    tasks: TaskSettings = TaskSettings()
    storage: StorageSettings = StorageSettings()
    remotes: tuple[RemoteSettings, ...] = ()
    distributions: tuple[DistributionSettings, ...] = ()

    def remote(self, name: str) -> RemoteSettings:
        return next(r for r in self.remotes if r.name == name)


DEFAULT_REMOTES = [{"name": "pypi", "url": "https://pypi.org/"}]
DEFAULT_DISTRIBUTIONS = [{"name": "pypi", "base_path": "pypi", "remote": "pypi"}]


def _named(raw: object, where: str) -> tuple[str, dict[str, Any]]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a table")
    values = dict(raw)
    try:
        return _name(values.pop("name", None)), values
    except ValueError as exc:
        raise ConfigError(f"{where}.name: {exc}") from None


def _parse(declared: tuple[Field, ...], raw: Mapping[str, object], where: str) -> dict[str, Any]:
    try:
        return parse_section(declared, raw, where)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _apply_env(data: dict[str, Any], environ: Mapping[str, str]) -> None:
    """PULLTHROUGH_SERVER__BIND=..., PULLTHROUGH_REMOTES__PYPI__URL=... (lists by item name)."""
    for var, value in environ.items():
        if not var.startswith(ENV_PREFIX) or "__" not in var:
            continue
        path = var[len(ENV_PREFIX) :].lower().split("__")
        if path[0] in ("remotes", "distributions") and len(path) == 3:
            items = _tables(data.setdefault(path[0], []), path[0])
            # `_` in a variable's name stands for any of a name's `-`, `_` and `.`
            found = [i for i in items if _env_name(str(i.get("name", ""))) == _env_name(path[1])]
            if not found:
                raise ConfigError(f"{var}: no {path[0][:-1]} named {path[1].lower()!r} to override")
            if len(found) > 1:
                names = ", ".join(repr(i.get("name")) for i in found)
                raise ConfigError(f"{var}: names more than one {path[0][:-1]} ({names})")
            found[0][path[2]] = value
        elif len(path) == 2 and path[0] in SECTIONS:
            section = data.setdefault(path[0], {})
            if not isinstance(section, dict):
                raise ConfigError(f"{path[0]}: expected a table")
            section[path[1]] = value
        else:
            raise ConfigError(f"{var}: expected PULLTHROUGH_<SECTION>__<KEY>")


def _env_name(name: str) -> str:
    """A remote's or distribution's name as an environment variable spells it."""
    return re.sub(r"[-_.]", "_", name.lower())


def _tables(value: object, where: str) -> list[dict[str, Any]]:
    """`[[remotes]]` and `[[distributions]]`: a list of tables."""
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise ConfigError(f"{where}: expected a list of tables ([[{where}]])")
    return value


def load_settings(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Defaults, then the TOML file (if any), then the environment."""
    environ = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    where = "config"
    if path is not None:
        where = str(path)
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{where}: file not found") from None
        except OSError as exc:  # a folder, no permission
            raise ConfigError(f"{where}: cannot read it: {exc.strerror or exc}") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{where}: not UTF-8 text (byte {exc.start})") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{where}: invalid TOML: {exc}") from None
    embedded = "remotes" not in data and "distributions" not in data
    if embedded:
        data["remotes"] = [dict(r) for r in DEFAULT_REMOTES]
        data["distributions"] = [dict(d) for d in DEFAULT_DISTRIBUTIONS]
    _apply_env(data, environ)
    try:
        settings = build_settings(data)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return _mark_embedded(settings) if embedded else settings


def _mark_embedded(settings: Settings) -> Settings:
    """Note which keys of the default remote and distribution still hold the embedded values."""

    def marked(declared: Any, defaults: list[dict[str, str]]) -> Any:
        (default,) = [d for d in defaults if d["name"] == declared.name] or [{}]
        same = {k for k, v in default.items() if k != "name" and getattr(declared, k) == v}
        return replace(declared, embedded=frozenset(same))

    return replace(
        settings,
        remotes=tuple(marked(r, DEFAULT_REMOTES) for r in settings.remotes),
        distributions=tuple(marked(d, DEFAULT_DISTRIBUTIONS) for d in settings.distributions),
    )


def build_settings(data: Mapping[str, Any]) -> Settings:
    known = {f.name for f in fields(Settings)}
    if unknown := set(data) - known:
        raise ConfigError(
            f"{sorted(unknown)[0]}: unknown section (known: {', '.join(sorted(known))})"
        )
    sections: dict[str, Any] = {}
    for key, cls in SECTIONS.items():
        raw = data.get(key, {})
        if not isinstance(raw, dict):
            raise ConfigError(f"{key}: expected a table")
        sections[key] = cls(**_parse(fields_of(cls), raw, key))
    if sections["storage"].backend == "s3" and not sections["storage"].s3_bucket:
        raise ConfigError("storage.s3_bucket: required with backend = 's3'")
    remotes = []
    for i, raw in enumerate(_tables(data.get("remotes", []), "remotes")):
        name, values = _named(raw, f"remotes[{i}]")
        parsed = _parse(REMOTE_FIELDS, values, f"remotes[{i}]")
        remotes.append(RemoteSettings(name=name, given=frozenset(parsed), **_effective(parsed)))
    dists = []
    for i, raw in enumerate(_tables(data.get("distributions", []), "distributions")):
        name, values = _named(raw, f"distributions[{i}]")
        parsed = _parse(DISTRIBUTION_FIELDS, values, f"distributions[{i}]")
        dists.append(DistributionSettings(name=name, given=frozenset(parsed), **parsed))
    _unique([r.name for r in remotes], "remotes", "name")
    _unique([d.name for d in dists], "distributions", "name")
    for i, dist in enumerate(dists):
        for other in dists[:i]:
            if overlaps(dist.base_path, other.base_path):
                raise ConfigError(
                    f"distributions[{i}].base_path: {dist.base_path!r} overlaps the base path"
                    f" {other.base_path!r} of distribution {other.name!r}"
                )
    remote_names = {r.name for r in remotes}
    for i, dist in enumerate(dists):
        for key, named in (
            ("remote", [dist.remote] if dist.remote else []),
            ("remotes", dist.remotes),
        ):
            for missing in [n for n in named if n not in remote_names]:
                raise ConfigError(f"distributions[{i}].{key}: no remote named {missing!r}")
        if {"remote", "remotes"} <= dist.given:
            try:
                ordered([], dist.remote, dist.remotes)
            except ValueError as exc:
                raise ConfigError(f"distributions[{i}].remote: {exc}") from None
    return Settings(**sections, remotes=tuple(remotes), distributions=tuple(dists))


def _unique(values: list[str], section: str, key: str) -> None:
    seen: set[str] = set()
    for i, value in enumerate(values):
        if value in seen:
            raise ConfigError(f"{section}[{i}].{key}: {value!r} is used twice")
        seen.add(value)
