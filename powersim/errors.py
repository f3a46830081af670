"""Domain errors, raised in the core and translated to HTTP (or GraphQL) only at the edge."""

from typing import Any


class PowerSimError(Exception):
    """Base of every error powersim reports to a client; `status` is its HTTP status."""

    status = 500

    @property
    def headers(self) -> dict[str, str]:
        return {}

    @property
    def extra(self) -> dict[str, Any]:
        """Keys the JSON error body carries beside "error"."""
        return {}

    @property
    def extensions(self) -> dict[str, Any] | None:
        """graphql-core copies an original error's `extensions` into the GraphQL error it reports."""
        return self.extra or None


class SettingsError(PowerSimError):
    """A setting has a bad value; start-up stops with this message."""


class StartupError(PowerSimError):
    """A dependency (Redis, the database, the workers) could not be brought up."""


class BadRequest(PowerSimError):
    status = 400


class NotFound(PowerSimError):
    status = 404


class SimulationFailed(PowerSimError):
    """The simulation raised or returned something that is not a result."""

    status = 500


class Unauthorized(PowerSimError):
    status = 401

    @property
    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="powersim"'}


class Forbidden(PowerSimError):
    status = 403


class PayloadTooLarge(PowerSimError):
    status = 413


class UnsupportedMediaType(PowerSimError):
    status = 415


class Unavailable(PowerSimError):
    """A dependency cannot serve right now (database, worker pool)."""

    status = 503


class Overloaded(Unavailable):
    """Too much work queued; the client should come back after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class Unprocessable(PowerSimError):
    """Well-formed but refused: an upload that is not a usable, safe network."""

    status = 422


class Conflict(PowerSimError):
    status = 409
