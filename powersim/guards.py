"""Who may do what, and how much: Host and Origin (cross-site use), body size, bearer tokens,
websocket count."""

from __future__ import annotations

import functools
import hmac
import ipaddress

from aiohttp import web
from aiohttp.typedefs import Handler

from .constants import MAX_BODY_BYTES
from .errors import BadRequest, Forbidden, Overloaded, PayloadTooLarge, Unauthorized
from .keys import SETTINGS, WS_GAUGE
from .settings import Settings, normalize_origin

# Always open: probes and the API description carry no data worth protecting.
OPEN_PATHS = frozenset({"/healthz", "/openapi.json"})
# Changes state: needs POWERSIM_API_TOKEN when set (GraphQL mutations are checked in the resolver).
WRITE_ROUTES = frozenset({("POST", "/run-simulation"), ("POST", "/networks")})
# Uploads are networks, megabytes long: their own cap (POWERSIM_MAX_NETWORK_BYTES), checked here
# against Content-Length and while reading a body sent without one.
UPLOAD_ROUTE = ("POST", "/networks")
# Methods a browser page may send cross-site without asking (they change nothing here, and without
# CORS headers the page cannot read the answer). Every other method, and every websocket
# handshake (which the page can read), must come from the same origin or an allowed one.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


# Headers that aiohttp and strawberry quote in their own error texts, which then fail to encode
# when the header holds bytes that are not UTF-8 (a 500). They are ASCII by their RFCs.
ASCII_HEADERS = (
    "Upgrade",
    "Connection",
    "Sec-WebSocket-Key",
    "Sec-WebSocket-Version",
    "Sec-WebSocket-Protocol",
    "Sec-WebSocket-Extensions",
)


def check_ascii_headers(request: web.Request) -> None:
    if "Upgrade" not in request.headers:  # only a handshake gets its headers quoted back
        return
    for name in ASCII_HEADERS:
        if not all(value.isascii() for value in request.headers.getall(name, ())):
            raise BadRequest(f"the {name} header must be ASCII")


def _bearer(request: web.Request) -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


def _matches(given: str | None, token: str) -> bool:
    if given is None:
        return False
    try:  # aiohttp keeps non-UTF-8 header bytes as surrogate escapes: compare the bytes sent
        sent = given.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return False
    # Constant-time: the comparison must not tell an attacker how many characters were right.
    return hmac.compare_digest(sent, token.encode())


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


def host_name(host_header: str) -> str:
    """The host of a Host header, lowercased, without port or trailing dot ("" when malformed)."""
    host = host_header.strip().lower()
    if host.startswith("["):  # [v6]:port
        name, bracket, port = host[1:].partition("]")
        return name if bracket and (port == "" or (port[0] == ":" and _digits(port[1:]))) else ""
    name, colon, port = host.rpartition(":")
    if not colon:
        return host.rstrip(".")
    return name.rstrip(".") if port == "" or _digits(port) else ""


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()  # str.isdigit alone accepts "١٢"


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


@functools.lru_cache(maxsize=256)  # the same few Host values, on every request
def host_allowed(name: str, settings: Settings) -> bool:
    """Localhost names and IP literals always (no outsider can make a browser's page have them as
    its own origin); then HOST when it is a name, then POWERSIM_ALLOWED_HOSTS. A page on an
    attacker's name that resolves to this server (DNS rebinding) sends that name: refused."""
    if name == "localhost" or name.endswith(".localhost") or _is_ip(name):
        return True
    if name and name == settings.host.lower().rstrip("."):
        return True
    return any(
        entry in ("*", name) or (entry.startswith(".") and (name == entry[1:] or name.endswith(entry)))
        for entry in settings.allowed_hosts
    )


def origin_allowed(origin: str | None, host: str, settings: Settings, fetch_site: str | None = None) -> bool:
    """Same origin (Origin's host[:port] is the Host, already validated) or listed; `*` is any.
    No Origin: not a browser (curl, websocat, scripts), unless Sec-Fetch-Site says cross-site."""
    if "*" in settings.allowed_origins:
        return True
    if origin is None:
        return (fetch_site or "").strip().lower() != "cross-site"
    origin = normalize_origin(origin)
    if origin == "null":  # sandboxed frames, file: pages, redirects: never a known page
        return False
    scheme, sep, netloc = origin.partition("://")
    # The Host of a same-origin request has the port only when it is not the scheme's default.
    same = bool(sep and netloc) and netloc == normalize_origin(f"{scheme}://{host}").partition("://")[2]
    return same or origin in settings.allowed_origins


def check_site(request: web.Request, settings: Settings) -> None:
    """Refuse a Host that is not ours (400), then a cross-origin page's websocket or write (403)."""
    host = request.headers.get("Host")
    if host:  # absent: HTTP/1.0 from a script; browsers always send one
        name = host_name(host)
        if not host_allowed(name, settings):
            raise BadRequest(f"host {name or host[:100]!r} is not served here; list it in POWERSIM_ALLOWED_HOSTS")
    if request.method in SAFE_METHODS and "Upgrade" not in request.headers:
        return
    origin = request.headers.get("Origin")
    if not origin_allowed(origin, host or "", settings, request.headers.get("Sec-Fetch-Site")):
        who = repr(origin[:100]) if origin is not None else "another site"
        raise Forbidden(
            f"cross-origin requests from {who} are not allowed; list the page's origin in POWERSIM_ALLOWED_ORIGINS"
        )


def too_large(limit: int, upload: bool) -> str:
    """The 413 message, the same whether the length was announced or counted while reading."""
    return f"request body is larger than {limit} bytes" + (" (POWERSIM_MAX_NETWORK_BYTES)" if upload else "")


@web.middleware
async def request_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    check_site(request, settings)
    check_ascii_headers(request)
    upload = (request.method, request.path) == UPLOAD_ROUTE
    limit = settings.max_network_bytes if upload else MAX_BODY_BYTES
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(too_large(limit, upload))
    if request.path not in OPEN_PATHS:
        if (request.method, request.path) in WRITE_ROUTES or request.method == "DELETE":
            if not may_write(request, settings):
                raise Unauthorized("this needs the API token: Authorization: Bearer <POWERSIM_API_TOKEN>")
        elif not may_read(request, settings):
            raise Unauthorized("this needs the read token: Authorization: Bearer <POWERSIM_READ_TOKEN>")
    return await handler(request)


@web.middleware
async def websocket_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Counts websockets against POWERSIM_MAX_SUBSCRIBERS (their Origin is checked in request_guard)."""
    if request.headers.get("Upgrade", "").lower() != "websocket":
        return await handler(request)
    settings = request.app[SETTINGS]
    gauge = request.app[WS_GAUGE]
    if gauge.count >= settings.max_subscribers:
        raise Overloaded(f"too many websocket connections (POWERSIM_MAX_SUBSCRIBERS={settings.max_subscribers})", 5)
    gauge.count += 1
    try:
        return await handler(request)
    finally:
        gauge.count -= 1
