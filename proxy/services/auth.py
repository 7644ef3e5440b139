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

from proxy.config import AuthSettings

PASSWORD_FILE = "admin-password"


def admin_password(auth: AuthSettings, data_dir: Path) -> tuple[str, bool]:
    """The admin password, and whether it was generated just now."""
    if auth.admin_password:
        return auth.admin_password, False
    path = data_dir / PASSWORD_FILE
    try:
        return path.read_text().strip(), False
    except FileNotFoundError:
        pass
    password = secrets.token_urlsafe(18)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(password + "\n")
    return password, True


class Authenticator:
    def __init__(self, username: str, password: str, token: str = "") -> None:
        self.username = username
        self._password = password
        self._token = token

    def allows(self, authorization: str | None) -> bool:
        """Check an Authorization header; comparisons take constant time."""
        if not authorization:
            return False
        scheme, _, value = authorization.partition(" ")
        scheme, value = scheme.lower(), value.strip()
        if scheme in ("token", "bearer"):
            return bool(self._token) and hmac.compare_digest(value.encode(), self._token.encode())
        if scheme != "basic":
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
