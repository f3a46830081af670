"""Logging: one line per event, whatever outsiders send (paths, headers, Redis values)."""

from __future__ import annotations

import logging

from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from .constants import LOG_FIELD_CHARS


def loggable(text: str, limit: int = LOG_FIELD_CHARS) -> str:
    """Outside text (a percent-decoded path, a header) made safe for one log line: control and
    non-ASCII characters escaped, so `/%0aFAKE%20ERROR` cannot start a forged line, and cut short."""
    return text[:limit].encode("unicode_escape").decode("ascii")


class MalformedRequests(logging.Filter):
    """aiohttp logs each malformed request (a duplicate Host, a bad character, a line too long)
    at ERROR with a traceback, so any client could fill the log. Like a REST 4xx, it is the
    client's mistake: one escaped DEBUG line, or nothing when DEBUG is off."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError | RequestPayloadError):
            return True
        if not logging.getLogger("powersim").isEnabledFor(logging.DEBUG):
            return False
        peer = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        record.msg, record.args = "malformed request from %s: %s", (peer, loggable(f"{type(exc).__name__}: {exc}"))
        record.exc_info = record.exc_text = None
        return True


def configure(level: str) -> None:
    """The server process's logging (workers set up their own)."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet_malformed_requests()


def quiet_malformed_requests() -> None:
    """Install MalformedRequests on aiohttp's server logger, once per process."""
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, MalformedRequests) for f in server_log.filters):
        server_log.addFilter(MalformedRequests())
