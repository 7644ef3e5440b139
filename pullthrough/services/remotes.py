"""Remotes between the config file, the catalog and the upstream client."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from pullthrough.catalog.models import Remote
from pullthrough.config import RemoteSettings
from pullthrough.core.filters import FilterSpec

# The client's defaults where a remote leaves a setting empty.
_DEFAULTS = RemoteSettings(name="-", url="http://-/")


def row_values(settings: RemoteSettings) -> dict[str, Any]:
    """A config file's remote as catalog column values."""
    f = settings.filters
    return {
        "url": settings.url,
        "includes": [r.text for r in f.includes],
        "excludes": [r.text for r in f.excludes],
        "prereleases": f.prereleases,
        "package_types": sorted(f.package_types),
        "exclude_platforms": sorted(f.exclude_platforms),
        "connect_timeout": settings.connect_timeout,
        "sock_read_timeout": settings.sock_read_timeout,
        "total_timeout": settings.total_timeout,
        "max_retries": settings.max_retries,
        "username": settings.username,
        "password": settings.password,
        "headers": [{k: v} for k, v in settings.headers.items()],
        "proxy_url": settings.proxy_url,
        "proxy_username": settings.proxy_username,
        "proxy_password": settings.proxy_password,
        "tls_validation": settings.tls_validation,
        "ca_cert": _read(settings.ca_cert),
        "client_cert": _read(settings.client_cert),
        "client_key": _read(settings.client_key),
    }


def _read(path: str | None) -> str | None:
    return Path(path).read_text() if path else None


def _pem_file(pem: str | None, tls_dir: Path) -> str | None:
    """The catalog keeps PEM text (as Pulp does); requests wants a file."""
    if not pem:
        return None
    path = tls_dir / (hashlib.sha256(pem.encode()).hexdigest()[:32] + ".pem")
    if not path.exists():
        tls_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(pem)
        tmp.chmod(0o600)
        tmp.replace(path)
    return str(path)


def settings_of(row: Remote, tls_dir: Path) -> RemoteSettings:
    """A catalog remote as the client's settings."""
    headers: dict[str, str] = {}
    for item in row.headers or []:
        headers.update(item)
    return RemoteSettings(
        name=row.name,
        url=row.url,
        filters=FilterSpec.build(
            includes=row.includes or (),
            excludes=row.excludes or (),
            prereleases=row.prereleases,
            package_types=row.package_types or (),
            exclude_platforms=row.exclude_platforms or (),
        ),
        connect_timeout=row.connect_timeout
        or row.sock_connect_timeout
        or _DEFAULTS.connect_timeout,
        sock_read_timeout=row.sock_read_timeout or _DEFAULTS.sock_read_timeout,
        total_timeout=row.total_timeout,
        max_retries=_DEFAULTS.max_retries if row.max_retries is None else row.max_retries,
        username=row.username,
        password=row.password,
        headers=headers,
        proxy_url=row.proxy_url,
        proxy_username=row.proxy_username,
        proxy_password=row.proxy_password,
        tls_validation=row.tls_validation,
        ca_cert=_pem_file(row.ca_cert, tls_dir),
        client_cert=_pem_file(row.client_cert, tls_dir),
        client_key=_pem_file(row.client_key, tls_dir),
    )
