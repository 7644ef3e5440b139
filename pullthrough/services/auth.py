"""Who a request is: the admin from configuration, or an API token with scopes.

Without a configured password one is generated on first start, kept in the data folder (0600),
and printed once by `pullthrough serve`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from pullthrough.catalog.db import Catalog
from pullthrough.catalog.models import ApiToken
from pullthrough.config import AuthSettings
from pullthrough.core.access import Principal, admin_principal, client_address, parse_scope
from pullthrough.core.times import utc

log = logging.getLogger(__name__)

PASSWORD_FILE = "admin-password"


def admin_password(auth: AuthSettings, data_dir: Path) -> tuple[str, bool]:
    """The admin password, and whether it was generated just now."""
    if auth.admin_password:
        return auth.admin_password, False
    path = data_dir / PASSWORD_FILE
    for _ in range(50):  # bounded: another worker may be creating it right now
        try:
            password = path.read_text().strip()
        except FileNotFoundError:
            password = ""
        if password:
            return password, False
        # Written whole to a private temporary file, then linked into place: whoever links
        # first wins, and nobody ever reads a half-written or empty file.
        password = secrets.token_urlsafe(18)
        tmp = data_dir / f".{PASSWORD_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(password + "\n")
        try:
            os.link(tmp, path)
            return password, True
        except FileExistsError:
            continue
        finally:
            tmp.unlink()
    raise RuntimeError(f"could not read or create {path}")


class Unauthorized(Exception):
    """No credentials, or wrong ones, where some are needed (401 with a Basic challenge)."""


class Forbidden(Exception):
    """Valid credentials without the right (403, saying which)."""


class TooManyFailures(Exception):
    """This address failed to log in too often (429 with Retry-After)."""

    def __init__(self, retry_after: float) -> None:
        super().__init__("Too many failed logins from this address; try again later")
        self.retry_after = retry_after


TOKEN_PREFIX = "pt_"
TOKEN_USERNAME = "__token__"  # PyPI's convention: the token is the password
_KEY_LENGTH = 16


def token_actor(name: str) -> str:
    """Who a token's requests act as, in the audit trail and on what it uploads."""
    return f"token:{name}"


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> tuple[str, str, str]:
    """A new token: (the token, its public key, its digest). The key is the token's start, so a
    token is found by it and checked by its digest; the secret part has 256 bits."""
    key = TOKEN_PREFIX + secrets.token_hex(_KEY_LENGTH // 2 - 1)[: _KEY_LENGTH - len(TOKEN_PREFIX)]
    token = key + "." + secrets.token_urlsafe(32)
    return token, key, token_digest(token)


class FailureLimit:
    """Failed logins per client address in a sliding window; per process (gunicorn workers
    count apart, so the effective burst is workers x burst)."""

    def __init__(self, burst: int, window: float, clock: Callable[[], float] = time.monotonic):
        self.burst, self.window, self.clock = burst, window, clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, address: str, now: float) -> deque[float]:
        times = self._failures.get(address) or deque()
        while times and times[0] <= now - self.window:
            times.popleft()
        return times

    def check(self, address: str) -> None:
        """Raise TooManyFailures while `address` is over the burst."""
        with self._lock:
            now = self.clock()
            times = self._recent(address, now)
            if len(times) >= self.burst:
                raise TooManyFailures(times[0] + self.window - now)

    def failed(self, address: str) -> None:
        with self._lock:
            now = self.clock()
            times = self._recent(address, now)
            times.append(now)
            self._failures[address] = times
            if len(self._failures) > 100_000:  # bounded memory: forget the quiet addresses
                for quiet in [a for a, t in self._failures.items() if not self._recent(a, now)]:
                    del self._failures[quiet]


class Authenticator:
    """Who a request's Authorization header says it is: the configured admin (basic auth or
    the admin token), or an API token (basic auth as `__token__`, or Bearer). Secrets are
    compared in constant time; a token is looked up by its public key."""

    def __init__(
        self,
        catalog: Catalog,
        username: str,
        password: str,
        token: str = "",
        limit: FailureLimit | None = None,
    ) -> None:
        self.catalog = catalog
        self.username = username
        self._password = password
        self._token = token
        self.limit = limit or FailureLimit(10, 60.0)
        # The proxies whose X-Forwarded-For names the client: gunicorn's own setting.
        trusted = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
        self.trusted_proxies = frozenset(a.strip() for a in trusted.split(",") if a.strip())

    def client_address(self, peer: str | None, forwarded_for: str | None) -> str:
        return client_address(peer or "", forwarded_for, self.trusted_proxies)

    def identify(self, authorization: str | None, address: str) -> Principal | None:
        """The principal, or None without credentials; Unauthorized for wrong ones (counted
        against the address), TooManyFailures while the address is over its burst."""
        if not authorization:
            return None
        self.limit.check(address)
        principal = self._principal(authorization)
        if principal is None:
            self.limit.failed(address)
            log.warning("failed authentication from %s", address)
            raise Unauthorized("Invalid credentials")
        return principal

    def require(self, authorization: str | None, address: str) -> Principal:
        """Someone with valid credentials (401 otherwise)."""
        principal = self.identify(authorization, address)
        if principal is None:
            raise Unauthorized("Authentication required")
        return principal

    def require_admin(self, authorization: str | None, address: str) -> Principal:
        principal = self.require(authorization, address)
        if not principal.is_admin:
            raise Forbidden(f"{principal.actor} is not an admin")
        return principal

    def require_reader(self, authorization: str | None, address: str, base_path: str) -> None:
        principal = self.require(authorization, address)
        if not principal.may_read(base_path):
            raise Forbidden(f"{principal.actor} may not read {base_path!r} (no read:{base_path})")

    def _principal(self, authorization: str) -> Principal | None:
        scheme, _, value = authorization.partition(" ")
        scheme, value = scheme.lower(), value.strip()
        if scheme in ("token", "bearer"):
            if self._token and hmac.compare_digest(value.encode(), self._token.encode()):
                return admin_principal(self.username)
            return self._api_token(value)
        if scheme != "basic":
            return None
        try:
            user, sep, password = base64.b64decode(value, validate=True).decode().partition(":")
        except ValueError:  # binascii.Error, UnicodeDecodeError, or text past ASCII to decode
            return None
        if not sep:
            return None
        if user == TOKEN_USERNAME:
            return self._api_token(password)
        if self._password and all(  # an empty password never opens anything
            (
                hmac.compare_digest(user.encode(), self.username.encode()),
                hmac.compare_digest(password.encode(), self._password.encode()),
            )
        ):
            return admin_principal(self.username)
        return None

    def _api_token(self, token: str) -> Principal | None:
        key = token.partition(".")[0]
        if not key.startswith(TOKEN_PREFIX) or len(key) != _KEY_LENGTH:
            return None
        with self.catalog.reading() as session:
            row = session.scalar(select(ApiToken).where(ApiToken.key == key))
            if row is None or not hmac.compare_digest(row.digest, token_digest(token)):
                return None
            if row.revoked_at is not None or (
                row.expires_at is not None and utc(row.expires_at) <= datetime.now(UTC)
            ):
                return None
            scopes = tuple(parse_scope(text) for text in row.scopes)
            return Principal(token_actor(row.name), scopes, token_id=row.id)
