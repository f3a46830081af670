"""Every error leaves as JSON `{"error": "..."}` with the right status."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler

from .errors import Overloaded, PowerSimError
from .logs import loggable
from .models import dumps

log = logging.getLogger(__name__)


def describe(request: web.Request) -> str:
    """`METHOD /path` of a request, for log lines."""
    return f"{loggable(request.method)} {loggable(request.path)}"


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None, extra: Mapping[str, Any] | None = None
) -> web.Response:
    return web.json_response({"error": message} | dict(extra or {}), status=status, headers=headers, dumps=dumps)


def _http_message(request: web.Request, exc: web.HTTPException) -> str:
    if isinstance(exc, web.HTTPNotFound) and exc.text == "404: Not Found":
        return f"no such endpoint: {request.method} {request.path}"
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        return f"method {exc.method} is not allowed on {request.path}; use {allowed}"
    text = exc.text or exc.reason
    return text.partition(": ")[2] if text.startswith(f"{exc.status}: ") else text


def _kept_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """An error's own headers (Allow, Retry-After...), minus those of the body it replaces."""
    return {k: v for k, v in headers.items() if k.lower() not in ("content-type", "content-length")}


def _as_json(response: web.StreamResponse) -> web.StreamResponse:
    """Handlers we don't own (strawberry's view) return plain-text errors; reword them as JSON."""
    if response.status < 400 or not isinstance(response, web.Response) or response.content_type != "text/plain":
        return response
    return error_response(response.status, response.text or response.reason, _kept_headers(response.headers))


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return _as_json(await handler(request))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(exc.status, _http_message(request, exc), _kept_headers(exc.headers))
    except (web.RequestPayloadError, HttpProcessingError) as exc:  # a body we cannot read or decode
        return error_response(400, f"the request body could not be read: {type(exc).__name__}")
    except ConnectionResetError:  # the client left while we read its body: nobody to answer
        log.debug("%s: the client left mid-request", describe(request))
        return error_response(400, "the client left mid-request")
    except PowerSimError as exc:
        if isinstance(exc, Overloaded):  # a limit doing its job, not a fault: no ERROR per refusal
            log.info("%s refused: %s", describe(request), loggable(str(exc)))
        elif exc.status >= 500:
            log.error("%s failed: %s", describe(request), loggable(str(exc), 2000))
        return error_response(exc.status, str(exc), exc.headers, exc.extra)
    except Exception:  # the edge: whatever escaped is a bug, logged with its traceback
        log.exception("%s raised", describe(request))
        return error_response(500, "internal server error")
