"""Who may use the dashboard: token, Host allow-list, CSRF, WebSocket Origin, headers.

The model (docs/dashboard.md, "Security"):

- Bound to a loopback address (the default, 127.0.0.1) the dashboard needs no token:
  only local users reach it. Any other address requires a token, taken from the
  configuration (``[web] token``) or generated at start and printed with the URL.
  A configured token is required on loopback too.
- Browsers authenticate once with ``/?token=T``: the server answers with an HttpOnly,
  SameSite=Strict cookie and a redirect to ``/`` (so the token leaves the address bar);
  API clients send ``Authorization: Bearer T``.
- Without a token, the Host header must name the loopback (``localhost``, ``127.0.0.1``,
  ``[::1]``) or the bound address: a DNS-rebinding page gets a 421. With a token the
  token is the protection (a rebound page has no cookie for its own host name).
- Every state-changing request (POST…) needs ``X-CSRF-Token`` equal to the per-process
  token embedded in the page and ``Content-Type: application/json``: a cross-site form
  can set neither. WebSocket handshakes must come from the page's own origin (browsers
  always send Origin; a mismatch is refused before the upgrade).
- Every response carries a strict Content-Security-Policy (no inline script), nosniff,
  no framing and no referrer.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlsplit

TOKEN_COOKIE = "flowscope_token"
CSRF_HEADER = "x-csrf-token"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1", "ip6-localhost")

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self' ws: wss:; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'; object-src 'none'"
)
# FastAPI's /docs page loads Swagger UI from its CDN with an inline bootstrap script;
# only that page gets the looser policy.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; img-src 'self' data: "
    "https://fastapi.tiangolo.com; connect-src 'self'; frame-ancestors 'none'"
)
_DOCS_PATHS = ("/docs", "/docs/oauth2-redirect", "/redoc")
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def is_loopback(host: str) -> bool:
    """True for a loopback address or the name ``localhost``."""
    h = host.strip("[]")
    if h in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def resolve_token(bind_host: str, configured: str = "") -> tuple[str | None, bool]:
    """The token to require, and whether it was generated here (then it must be
    printed). Loopback without a configured token: none."""
    if configured:
        return configured, False
    if is_loopback(bind_host):
        return None, False
    return secrets.token_urlsafe(24), True


@dataclass
class SecurityPolicy:
    """The decisions, separate from the ASGI plumbing so they can be tested directly."""

    bind_host: str = "127.0.0.1"
    token: str | None = None
    csrf_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    extra_hosts: tuple[str, ...] = ()

    def host_allowed(self, host_header: str | None) -> bool:
        """Host header check (DNS rebinding); any host once a token is required."""
        if self.token is not None:
            return True
        if not host_header:
            return False
        name = _host_name(host_header)
        allowed = {*LOOPBACK_NAMES, self.bind_host.strip("[]").lower(), *self.extra_hosts}
        return name in allowed

    def authenticated(self, headers: dict[str, str]) -> bool:
        """Bearer header or cookie carries the token (always true without one)."""
        if self.token is None:
            return True
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer ") and _same(auth[7:].strip(), self.token):
            return True
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:
            return False
        got = cookie.get(TOKEN_COOKIE)
        return got is not None and _same(got.value, self.token)

    def csrf_ok(self, method: str, headers: dict[str, str]) -> bool:
        """A state-changing request carries the page's CSRF token and a JSON body type."""
        if method in _SAFE_METHODS:
            return True
        ctype = headers.get("content-type", "").split(";")[0].strip().lower()
        return ctype == "application/json" and _same(headers.get(CSRF_HEADER, ""), self.csrf_token)

    def origin_ok(self, headers: dict[str, str]) -> bool:
        """A WebSocket handshake's Origin names the same host (and port) as its Host.

        Non-browser clients send no Origin; they are still subject to the token."""
        origin = headers.get("origin")
        if origin is None:
            return True
        try:
            parts = urlsplit(origin)
        except ValueError:
            return False
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return False
        return parts.netloc.lower() == headers.get("host", "").lower()


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _host_name(host_header: str) -> str:
    h = host_header.strip().lower()
    if h.startswith("["):
        return h[1 : h.find("]")] if "]" in h else h
    return h.rsplit(":", 1)[0] if h.count(":") == 1 else h


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


class SecurityMiddleware:
    """ASGI middleware enforcing :class:`SecurityPolicy` on HTTP and WebSocket."""

    def __init__(self, app: ASGIApp, policy: SecurityPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        p = self.policy
        headers = _headers(scope)
        path: str = scope.get("path", "")
        if kind == "websocket":
            ok = p.host_allowed(headers.get("host")) and p.authenticated(headers)
            if not (ok and p.origin_ok(headers)):
                await send({"type": "websocket.close", "code": 1008})
                return
            await self.app(scope, receive, send)
            return
        if not p.host_allowed(headers.get("host")):
            await _json(send, 421, "host not allowed (use 127.0.0.1 or localhost)")
            return
        method: str = scope["method"]
        if p.token is not None and path == "/" and method == "GET":
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            given = query.get("token", [""])[0]
            if given:
                if not _same(given, p.token):
                    await _json(send, 401, "wrong token")
                    return
                await _login(send, p.token)
                return
        if not p.authenticated(headers):
            await _json(
                send, 401, "token required: open the URL printed at start, or send a bearer token"
            )
            return
        if not p.csrf_ok(method, headers):
            await _json(
                send, 403, "missing CSRF token (X-CSRF-Token) or Content-Type application/json"
            )
            return
        csp = DOCS_CSP if path in _DOCS_PATHS else CSP

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                hs = list(message.get("headers", []))
                names = {k.lower() for k, _ in hs}
                extra = [
                    (b"content-security-policy", csp.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"cross-origin-opener-policy", b"same-origin"),
                ]
                if path.startswith("/api/"):
                    extra.append((b"cache-control", b"no-store"))
                hs += [(k, v) for k, v in extra if k not in names]
                message["headers"] = hs
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _json(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"x-content-type-options", b"nosniff"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _login(send: Send, token: str) -> None:
    cookie = f"{TOKEN_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/"
    await send(
        {
            "type": "http.response.start",
            "status": 303,
            "headers": [
                (b"location", b"/"),
                (b"set-cookie", cookie.encode()),
                (b"content-length", b"0"),
                (b"referrer-policy", b"no-referrer"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": b""})
