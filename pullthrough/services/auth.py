"""Who may write: the admin from configuration, by HTTP basic auth or a token.

Without a configured password one is generated on first start, kept in the data folder (0600),
and printed once by `pullthrough serve`.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import secrets
from pathlib import Path

from pullthrough.config import AuthSettings

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
    """The request needs the admin's credentials (401 with a Basic challenge)."""


class Authenticator:
    def __init__(self, username: str, password: str, token: str = "") -> None:
        self.username = username
        self._password = password
        self._token = token

    def require(self, authorization: str | None) -> None:
        """Raise Unauthorized unless the Authorization header is the admin's."""
        if not self.allows(authorization):
            raise Unauthorized("Authentication required")

    def allows(self, authorization: str | None) -> bool:
        """Check an Authorization header; comparisons take constant time."""
        if not authorization:
            return False
        scheme, _, value = authorization.partition(" ")
        scheme, value = scheme.lower(), value.strip()
        if scheme in ("token", "bearer"):
            return bool(self._token) and hmac.compare_digest(value.encode(), self._token.encode())
        if scheme != "basic" or not self._password:  # an empty password never opens anything
            return False
        try:
            user, sep, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return bool(sep) and all(
            (
                hmac.compare_digest(user.encode(), self.username.encode()),
                hmac.compare_digest(password.encode(), self._password.encode()),
            )
        )
