"""HTTP Basic authentication of every request of the dashboard."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass, field

from ..errors import InvalidOptionError


def _digest(text: str) -> bytes:
    # Compared as fixed-length digests, so the comparison time tells nothing of the length.
    return hashlib.sha256(text.encode()).digest()


@dataclass(frozen=True)
class BasicAuth:
    """One user name and password; the browser asks for them once per session. Serve the
    dashboard over TLS (a reverse proxy) beyond localhost: Basic credentials are only
    encoded, not encrypted."""

    username: str
    password: str = field(repr=False)

    def __post_init__(self) -> None:
        if not self.username or ":" in self.username:
            raise InvalidOptionError("username", "must be non-empty and without ':'")
        if not self.password:
            raise InvalidOptionError("password", "must not be empty")

    def accepts(self, authorization: str | None) -> bool:
        """Whether an ``Authorization`` header carries this user and password."""
        if authorization is None:
            return False
        scheme, _, encoded = authorization.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        username, sep, password = decoded.partition(":")
        # Both compared always, so a wrong user name takes as long as a wrong password.
        user_ok = hmac.compare_digest(_digest(username), _digest(self.username))
        password_ok = hmac.compare_digest(_digest(password), _digest(self.password))
        return bool(sep) and user_ok and password_ok
