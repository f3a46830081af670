"""Domain errors, raised in the core and translated to HTTP (or GraphQL) only at the edge."""


class PowerSimError(Exception):
    """Base of every error powersim reports to a client; `status` is its HTTP status."""

    status = 500


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


class Unavailable(PowerSimError):
    """A dependency cannot serve right now (database, worker pool)."""

    status = 503
