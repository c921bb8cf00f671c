"""Who may use the dashboard: ``auth`` is a hook, request -> allowed (sync or async), and
these are the ready ones. A hook with a ``challenge`` attribute has it sent as the 401's
``WWW-Authenticate`` header (so a browser asks for Basic credentials)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import ClassVar

from starlette.requests import Request

from ..errors import InvalidOptionError

#: ``auth``: True lets the request in.
AuthHook = Callable[[Request], "bool | Awaitable[bool]"]


def _same(given: str, expected: str) -> bool:
    # Compared as fixed-length digests, so the comparison time tells nothing of the length.
    return hmac.compare_digest(
        hashlib.sha256(given.encode()).digest(), hashlib.sha256(expected.encode()).digest()
    )


@dataclass(frozen=True)
class BasicAuth:
    """One user name and password; the browser asks for them once per session. Serve the
    dashboard over TLS (a reverse proxy) beyond localhost: Basic credentials are only
    encoded, not encrypted."""

    username: str
    password: str = field(repr=False)
    challenge: ClassVar[str] = 'Basic realm="jobqueue", charset="UTF-8"'

    def __post_init__(self) -> None:
        if not self.username or ":" in self.username:
            raise InvalidOptionError("username", "must be non-empty and without ':'")
        if not self.password:
            raise InvalidOptionError("password", "must not be empty")

    def __call__(self, request: Request) -> bool:
        return self.accepts(request.headers.get("authorization"))

    def accepts(self, authorization: str | None) -> bool:
        """Whether an ``Authorization`` header carries this user and password."""
        scheme, _, encoded = (authorization or "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        username, sep, password = decoded.partition(":")
        # Both compared always, so a wrong user name takes as long as a wrong password.
        user_ok = _same(username, self.username)
        password_ok = _same(password, self.password)
        return bool(sep) and user_ok and password_ok


@dataclass(frozen=True)
class TokenAuth:
    """A shared secret in an ``Authorization: Bearer <token>`` header: for scripts, and
    for a proxy in front that authenticates people and adds the header."""

    token: str = field(repr=False)
    challenge: ClassVar[str] = 'Bearer realm="jobqueue"'

    def __post_init__(self) -> None:
        if len(self.token) < 16:
            raise InvalidOptionError("token", "must be at least 16 characters")

    def __call__(self, request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and _same(token.strip(), self.token)
