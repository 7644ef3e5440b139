"""Configuration: defaults, then a TOML file, then PULLTHROUGH_<SECTION>__<KEY> environment values.

Invalid configuration raises ConfigError naming the key and the problem, so the server refuses to
start instead of misbehaving later.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pullthrough.core.filters import FilterSpec

ENV_PREFIX = "PULLTHROUGH_"
DEFAULT_BIND = "127.0.0.1:24817"


class ConfigError(ValueError):
    """Invalid configuration; the message names the key."""


_SIZE_UNITS = {
    "": 1, "b": 1,
    "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
}  # fmt: skip
_DURATION_UNITS = {"ms": 0.001, "s": 1, "": 1, "m": 60, "h": 3600, "d": 86400}


def parse_size(value: object) -> int:
    """`20GB`, `512MiB`, `1000` (bytes) -> bytes."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(value))
    if not m or m.group(2).lower() not in _SIZE_UNITS:
        raise ValueError(f"expected a size like '20GB' or '512MiB', got {value!r}")
    return int(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])


def parse_duration(value: object) -> float:
    """`10m`, `30s`, `500ms`, `1.5` (seconds) -> seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|)\s*", str(value))
    if not m:
        raise ValueError(f"expected a duration like '10m', '30s' or '500ms', got {value!r}")
    return float(m.group(1)) * _DURATION_UNITS[m.group(2)]


def _bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def _str_list(value: object) -> list[str]:
    if isinstance(value, str):  # from the environment: a JSON array, or one item
        text = value.strip()
        value = json.loads(text) if text.startswith("[") else [text]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"expected a list of strings, got {value!r}")
    return list(value)


def _headers(value: object) -> dict[str, str]:
    if isinstance(value, str):
        value = json.loads(value)
    if isinstance(value, list):  # Pulp's shape: [{"name": "value"}, ...]
        merged: dict[str, Any] = {}
        for item in value:
            if not isinstance(item, dict):
                raise ValueError(f"expected a table of header names and values, got {value!r}")
            merged.update(item)
        value = merged
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ValueError(f"expected a table of header names and values, got {value!r}")
    return {str(k): v for k, v in value.items()}


def _http_url(value: object) -> str:
    text = str(value).strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"expected an http(s) URL, got {value!r}")
    return text


def _optional_str(value: object) -> str | None:
    return str(value) if value not in (None, "") else None


def _optional_duration(value: object) -> float | None:
    return None if value in (None, "", 0) else parse_duration(value)


def _name(value: object) -> str:
    text = str(value)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", text):
        raise ValueError(f"expected a name of letters, digits, '.', '_' and '-', got {value!r}")
    return text


def parse_base_path(value: object) -> str:
    text = str(value).strip("/")
    if not re.fullmatch(r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*", text) or ".." in text.split("/"):
        raise ValueError(f"expected a path like 'pypi' or 'team/pypi', got {value!r}")
    return text


def parse_bind(value: object) -> str:
    text = str(value)
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    return text


def _non_negative_int(value: object) -> int:
    number = int(str(value))
    if number < 0:
        raise ValueError(f"expected a whole number >= 0, got {value!r}")
    return number


@dataclass(frozen=True)
class ServerSettings:
    bind: str = DEFAULT_BIND
    data_dir: Path = Path("pullthrough-data")
    database_url: str = ""
    workers: int = 0  # 0: two per core
    threads: int = 32  # per worker; downloads are I/O bound
    max_upload_size: int = 2 * 2**30  # bytes; larger uploads get 413
    embedded_worker: bool = True  # run background tasks in the server processes too

    _parsers = {
        "bind": parse_bind,
        "data_dir": lambda v: Path(str(v)),
        "database_url": str,
        "workers": _non_negative_int,
        "threads": _non_negative_int,
        "max_upload_size": parse_size,
        "embedded_worker": _bool,
    }


@dataclass(frozen=True)
class CacheSettings:
    max_size: int = 20 * 10**9  # bytes of pull-through (orphaned) files
    index_ttl: float = 600.0  # seconds an upstream page is used before revalidation

    _parsers = {"max_size": parse_size, "index_ttl": parse_duration}


@dataclass(frozen=True)
class AuthSettings:
    admin_username: str = "admin"
    admin_password: str = field(default="", repr=False)  # empty: generated once, in data_dir
    admin_token: str = field(
        default="", repr=False
    )  # empty: no token; else `Authorization: Token <t>`

    _parsers = {"admin_username": str, "admin_password": str, "admin_token": str}


@dataclass(frozen=True)
class RemoteSettings:
    name: str
    url: str
    filters: FilterSpec = field(default_factory=FilterSpec)
    connect_timeout: float = 10.0
    sock_read_timeout: float = 60.0
    total_timeout: float | None = None
    max_retries: int = 3
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    proxy_url: str | None = None
    proxy_username: str | None = None
    proxy_password: str | None = field(default=None, repr=False)
    tls_validation: bool = True
    ca_cert: str | None = None  # a path to a PEM bundle
    client_cert: str | None = None  # a path to a PEM certificate
    client_key: str | None = field(default=None, repr=False)  # a path to its PEM key

    _parsers = {
        "url": _http_url,
        "connect_timeout": parse_duration,
        "sock_read_timeout": parse_duration,
        "total_timeout": _optional_duration,
        "max_retries": _non_negative_int,
        "username": _optional_str,
        "password": _optional_str,
        "headers": _headers,
        "proxy_url": lambda v: _http_url(v) if v else None,
        "proxy_username": _optional_str,
        "proxy_password": _optional_str,
        "tls_validation": _bool,
        "ca_cert": _optional_str,
        "client_cert": _optional_str,
        "client_key": _optional_str,
    }
    _filter_keys = {
        "includes": _str_list,
        "excludes": _str_list,
        "prereleases": _bool,
        "package_types": _str_list,
        "exclude_platforms": _str_list,
    }


@dataclass(frozen=True)
class DistributionSettings:
    name: str
    base_path: str
    remote: str | None = None

    _parsers = {"base_path": parse_base_path, "remote": _optional_str}


@dataclass(frozen=True)
class Settings:
    server: ServerSettings = ServerSettings()
    cache: CacheSettings = CacheSettings()
    auth: AuthSettings = AuthSettings()
    remotes: tuple[RemoteSettings, ...] = ()
    distributions: tuple[DistributionSettings, ...] = ()

    def remote(self, name: str) -> RemoteSettings:
        return next(r for r in self.remotes if r.name == name)


DEFAULT_REMOTES = [{"name": "pypi", "url": "https://pypi.org/"}]
DEFAULT_DISTRIBUTIONS = [{"name": "pypi", "base_path": "pypi", "remote": "pypi"}]


def _section(cls: type, raw: object, where: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a table")
    parsers = cls._parsers  # type: ignore[attr-defined]
    values = {}
    for key, value in raw.items():
        if key not in parsers:
            known = ", ".join(sorted(parsers))
            raise ConfigError(f"{where}.{key}: unknown setting (known: {known})")
        try:
            values[key] = parsers[key](value)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{where}.{key}: {exc}") from None
    return values


def _remote(raw: object, where: str) -> RemoteSettings:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a table")
    raw = dict(raw)
    name = raw.pop("name", None)
    if "url" not in raw:
        raise ConfigError(f"{where}.url: required")
    try:
        name = _name(name)
    except ValueError as exc:
        raise ConfigError(f"{where}.name: {exc}") from None
    filter_values: dict[str, Any] = {}
    for key, parse in RemoteSettings._filter_keys.items():
        if key in raw:
            try:
                filter_values[key] = parse(raw.pop(key))
            except (ValueError, TypeError) as exc:
                raise ConfigError(f"{where}.{key}: {exc}") from None
    try:
        filters = FilterSpec.build(**filter_values)
    except ValueError as exc:
        raise ConfigError(f"{where} ({name}): {exc}") from None
    return RemoteSettings(name=name, filters=filters, **_section(RemoteSettings, raw, where))


def _distribution(raw: object, where: str) -> DistributionSettings:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a table")
    raw = dict(raw)
    try:
        name = _name(raw.pop("name", None))
    except ValueError as exc:
        raise ConfigError(f"{where}.name: {exc}") from None
    if "base_path" not in raw:
        raise ConfigError(f"{where}.base_path: required")
    return DistributionSettings(name=name, **_section(DistributionSettings, raw, where))


def _apply_env(data: dict[str, Any], environ: Mapping[str, str]) -> None:
    """PULLTHROUGH_SERVER__BIND=..., PULLTHROUGH_REMOTES__PYPI__URL=... (lists by item name)."""
    for var, value in environ.items():
        if not var.startswith(ENV_PREFIX) or "__" not in var:
            continue
        path = var[len(ENV_PREFIX) :].lower().split("__")
        if path[0] in ("remotes", "distributions") and len(path) == 3:
            items = data.setdefault(path[0], [])
            wanted = path[1].replace("_", "-")
            for item in items:
                if str(item.get("name", "")).lower().replace("_", "-") == wanted:
                    item[path[2]] = value
                    break
            else:
                raise ConfigError(f"{var}: no {path[0][:-1]} named {path[1].lower()!r} to override")
        elif len(path) == 2 and path[0] in ("server", "cache", "auth"):
            data.setdefault(path[0], {})[path[1]] = value
        else:
            raise ConfigError(f"{var}: expected PULLTHROUGH_<SECTION>__<KEY>")


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
            data = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"{where}: file not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{where}: invalid TOML: {exc}") from None
    if "remotes" not in data and "distributions" not in data:
        data["remotes"] = [dict(r) for r in DEFAULT_REMOTES]
        data["distributions"] = [dict(d) for d in DEFAULT_DISTRIBUTIONS]
    _apply_env(data, environ)
    try:
        return build_settings(data)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def build_settings(data: Mapping[str, Any]) -> Settings:
    known = {f.name for f in fields(Settings)}
    if unknown := set(data) - known:
        raise ConfigError(
            f"{sorted(unknown)[0]}: unknown section (known: {', '.join(sorted(known))})"
        )
    remotes = tuple(_remote(r, f"remotes[{i}]") for i, r in enumerate(data.get("remotes", [])))
    dists = tuple(
        _distribution(d, f"distributions[{i}]") for i, d in enumerate(data.get("distributions", []))
    )
    _unique([r.name for r in remotes], "remotes", "name")
    _unique([d.name for d in dists], "distributions", "name")
    _unique([d.base_path for d in dists], "distributions", "base_path")
    remote_names = {r.name for r in remotes}
    for i, dist in enumerate(dists):
        if dist.remote is not None and dist.remote not in remote_names:
            raise ConfigError(f"distributions[{i}].remote: no remote named {dist.remote!r}")
    return Settings(
        server=ServerSettings(**_section(ServerSettings, data.get("server", {}), "server")),
        cache=CacheSettings(**_section(CacheSettings, data.get("cache", {}), "cache")),
        auth=AuthSettings(**_section(AuthSettings, data.get("auth", {}), "auth")),
        remotes=remotes,
        distributions=dists,
    )


def _unique(values: list[str], section: str, key: str) -> None:
    seen: set[str] = set()
    for i, value in enumerate(values):
        if value in seen:
            raise ConfigError(f"{section}[{i}].{key}: {value!r} is used twice")
        seen.add(value)
