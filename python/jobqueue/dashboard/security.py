"""The guard in front of every request: authentication, the refusal of cross-site and
forged writes, and the headers that keep the page to its own script and styles.

Writes (every method but GET and HEAD) need the page's CSRF token in the ``X-CSRF-Token``
header. The token is random per app and only readable from the page itself, which a
browser keeps from other sites; a custom header also makes a cross-site request a CORS
preflight, which the dashboard never grants. A write whose ``Origin`` is neither the
dashboard's host nor one of ``allowed_origins``, or that the browser marks as coming from
another site (``Sec-Fetch-Site``), is refused as well.

With ``allowed_hosts`` a request whose ``Host`` header names another host is refused
before anything else: a dashboard without a password on localhost is otherwise open to
DNS rebinding (a site whose name resolves to 127.0.0.1 reads it as its own origin).
"""

from __future__ import annotations

import hmac
import inspect
import secrets
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .auth import AuthHook

CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD"})

#: No inline script or style, nothing from another origin, no framing, no plugins.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def _origin_key(origin: str) -> str:
    """``scheme://host[:port]`` lowered, the form a browser sends in ``Origin``."""
    parts = urlsplit(origin.strip())
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def _host_name(host: str) -> str:
    """The name in a ``Host`` header, without its port (``[::1]:8080`` -> ``::1``)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


class Guard:
    """ASGI middleware: see the module's docstring."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        auth: AuthHook | None,
        csrf_token: str,
        read_only: bool,
        allowed_origins: Iterable[str] = (),
        allowed_hosts: Iterable[str] | None = None,
    ) -> None:
        self.app = app
        self.auth = auth
        self.csrf_token = csrf_token
        self.read_only = read_only
        self.allowed_origins = frozenset(_origin_key(o) for o in allowed_origins)
        self.allowed_hosts = (
            None if allowed_hosts is None else frozenset(h.lower() for h in allowed_hosts)
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in message.get("headers", [])}
                extra = [h for h in SECURITY_HEADERS if h[0] not in names]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        refusal = await self.refusal(scope)
        if refusal is not None:
            await refusal(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)

    async def refusal(self, scope: Scope) -> Response | None:
        """The response that refuses this request, or None to let it through."""
        headers = Headers(scope=scope)
        if self.allowed_hosts is not None:
            host = _host_name(headers.get("host", ""))
            if host not in self.allowed_hosts:
                return PlainTextResponse(f"host {host!r} not allowed", status_code=400)
        if self.auth is not None:
            allowed = self.auth(Request(scope))
            if inspect.isawaitable(allowed):
                allowed = await allowed
            if not allowed:
                challenge = getattr(self.auth, "challenge", None)
                return PlainTextResponse(
                    "authentication required",
                    status_code=401,
                    headers={"WWW-Authenticate": challenge} if challenge else None,
                )
        if scope["method"] in SAFE_METHODS:
            return None
        if self.read_only:
            return JSONResponse({"error": "the dashboard is read-only"}, status_code=403)
        origin = headers.get("origin")
        listed = origin is not None and _origin_key(origin) in self.allowed_origins
        fetch_site = headers.get("sec-fetch-site")
        if not listed and fetch_site not in (None, "same-origin", "none"):
            return JSONResponse({"error": f"{fetch_site} request refused"}, status_code=403)
        if origin is not None and not listed and not self.same_host(origin, headers.get("host")):
            return JSONResponse({"error": f"origin {origin!r} not allowed"}, status_code=403)
        token = headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(token.encode(), self.csrf_token.encode()):
            return JSONResponse({"error": "missing or wrong CSRF token"}, status_code=403)
        return None

    def same_host(self, origin: str, host: str | None) -> bool:
        key = _origin_key(origin)
        # The dashboard's own host, by either scheme: behind a TLS proxy the request the
        # app sees is plain HTTP while the browser's origin is https.
        netloc = urlsplit(key).netloc
        return (
            host is not None
            and key.startswith(("http://", "https://"))
            and (netloc == host.lower())
        )
