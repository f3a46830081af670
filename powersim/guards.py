"""Who may do what, and how much: body size, bearer tokens, websocket origins and count."""

from __future__ import annotations

import hmac

from aiohttp import web
from aiohttp.typedefs import Handler

from .constants import MAX_BODY_BYTES
from .errors import Forbidden, Overloaded, PayloadTooLarge, Unauthorized
from .keys import SETTINGS, WS_GAUGE
from .settings import Settings

# Always open: probes and the API description carry no data worth protecting.
OPEN_PATHS = frozenset({"/healthz", "/openapi.json"})
# Changes state: needs POWERSIM_API_TOKEN when set (GraphQL mutations are checked in the resolver).
WRITE_ROUTES = frozenset({("POST", "/run-simulation")})


def _bearer(request: web.Request) -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


def _matches(given: str | None, token: str) -> bool:
    # Constant-time: the comparison must not tell an attacker how many characters were right.
    return given is not None and hmac.compare_digest(given.encode(), token.encode())


def may_write(request: web.Request, settings: Settings) -> bool:
    return settings.api_token is None or _matches(_bearer(request), settings.api_token)


def may_read(request: web.Request, settings: Settings) -> bool:
    """The read token, or the API token (whoever may run simulations may read them)."""
    if settings.read_token is None:
        return True
    given = _bearer(request)
    return _matches(given, settings.read_token) or (
        settings.api_token is not None and _matches(given, settings.api_token)
    )


def origin_allowed(origin: str | None, host: str, allowed: tuple[str, ...]) -> bool:
    """Browsers send Origin on websocket handshakes; other clients don't and are not at risk."""
    if not allowed or origin is None or "*" in allowed:
        return True
    origin = origin.lower().rstrip("/")
    return origin.partition("://")[2] == host.lower() or origin in allowed


@web.middleware
async def request_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"request body is larger than {MAX_BODY_BYTES} bytes")
    if request.path not in OPEN_PATHS:
        if (request.method, request.path) in WRITE_ROUTES:
            if not may_write(request, settings):
                raise Unauthorized("this needs the API token: Authorization: Bearer <POWERSIM_API_TOKEN>")
        elif not may_read(request, settings):
            raise Unauthorized("this needs the read token: Authorization: Bearer <POWERSIM_READ_TOKEN>")
    return await handler(request)


@web.middleware
async def websocket_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.headers.get("Upgrade", "").lower() != "websocket":
        return await handler(request)
    settings = request.app[SETTINGS]
    origin = request.headers.get("Origin")
    if not origin_allowed(origin, request.host, settings.allowed_origins):
        raise Forbidden(f"websocket connections from origin {origin[:100]!r} are not allowed")
    gauge = request.app[WS_GAUGE]
    if gauge.count >= settings.max_subscribers:
        raise Overloaded(f"too many websocket connections (POWERSIM_MAX_SUBSCRIBERS={settings.max_subscribers})", 5)
    gauge.count += 1
    try:
        return await handler(request)
    finally:
        gauge.count -= 1
