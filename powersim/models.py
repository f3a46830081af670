"""The result type every layer shares, its wire format, and validation of values read from Redis."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Final, Literal

from .constants import MAX_VALUE_BYTES
from .jsonin import JSONTooDeep, loads


class InvalidResult(ValueError):
    """A value is not a result; the message says why (it goes into a log line)."""


Status = Literal["converged", "not_converged", "timed_out", "failed"]
CONVERGED: Final = "converged"
NOT_CONVERGED: Final = "not_converged"
TIMED_OUT: Final = "timed_out"  # stopped at POWERSIM_RUN_TIMEOUT by replacing its worker
FAILED: Final = "failed"  # its worker ran out of memory (POWERSIM_WORKER_MEMORY_MB) or died
STATUSES: tuple[Status, ...] = (CONVERGED, NOT_CONVERGED, TIMED_OUT, FAILED)
# A network's id: the catalog's names ("case9", "cigre_mv"), "seed", and uploads' "upload-<n>".
NETWORK_ID = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
SEED_NETWORK: Final = "seed"
# An outside writer's inputs: names like ours, so that the Redis script can check them cheaply.
MAX_INPUT_NAME_CHARS = 64


@dataclass(frozen=True, slots=True)
class SimulationResult:
    """One run, or a value an outside writer set (then `id`, `launched_at`, `status`,
    `network` and `inputs` may be None). Only a converged run has powers; only the history
    holds the others. `network_sha256` is an upload's, at the time of the run.

    `inputs` and `message` stay out of the hash (a dict has none), not out of equality.
    `details_json` is the stored JSON text, passed through, never parsed on the way; it derives
    from the rest, so it is left out of comparisons too.
    """

    id: int | None
    active_power: float | None
    reactive_power: float | None
    launched_at: datetime | None
    status: Status | None = None
    inputs: Mapping[str, float] | None = field(default=None, hash=False)
    message: str | None = field(default=None, hash=False)
    details_json: str | None = field(default=None, hash=False, compare=False, repr=False)
    network: str | None = None
    network_sha256: str | None = None

    @property
    def converged(self) -> bool:
        return self.status is None or self.status == CONVERGED

    def to_dict(self) -> dict[str, Any]:
        """The compact form: Redis, pushes, the POST answer; keys in a fixed order."""
        return {
            "id": self.id,
            "active_power": self.active_power,
            "reactive_power": self.reactive_power,
            "launched_at": format_time(self.launched_at) if self.launched_at else None,
            "status": self.status,
            "network": self.network,
            "inputs": dict(self.inputs) if self.inputs is not None else None,
        }

    def to_run_dict(self) -> dict[str, Any]:
        """A stored run as the history shows it: the compact form, an upload's sha256 and the
        message (the solver's, or why the run failed)."""
        return self.to_dict() | {"network_sha256": self.network_sha256, "message": self.message}

    def to_json(self) -> str:
        return dumps(self.to_dict())

    def to_run_json(self, with_details: bool = False) -> str:
        """The run; with `details` (null when it has none) spliced in as stored, unparsed."""
        text = dumps(self.to_run_dict())
        if not with_details:
            return text
        return f'{text[:-1]},"details":{self.details_json or "null"}}}'


@lru_cache(maxsize=8)
def power_bodies(result: SimulationResult) -> tuple[bytes, bytes]:
    """The GET /active-power and /reactive-power bodies, serialized once per result: the latest
    result changes a few times a second at most and is read thousands of times a second."""
    body = result.to_dict()
    active = {"id": body["id"], "active_power": body["active_power"], "launched_at": body["launched_at"]}
    reactive = {"id": body["id"], "reactive_power": body["reactive_power"], "launched_at": body["launched_at"]}
    return dumps(active).encode(), dumps(reactive).encode()


# The snapshot a websocket client gets before any result exists: same keys, null values.
EMPTY_RESULT_JSON = (
    '{"id":null,"active_power":null,"reactive_power":null,"launched_at":null,"status":null,"network":null,'
    '"inputs":null}'
)


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False)


def format_time(moment: datetime) -> str:
    """Fixed-width UTC ISO 8601 with microseconds: sorts as text, which the Redis script relies on.

    Written out field by field: strftime's %Y does not pad years before 1000 on glibc.
    """
    m = moment.astimezone(UTC)
    return f"{m.year:04d}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:{m.second:02d}.{m.microsecond:06d}Z"


def parse_time(text: str) -> datetime:
    """An ISO 8601 time with a zone, in UTC; ValueError for anything else, out-of-range included."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError("it has no time zone")
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is a year-0 instant in UTC
        raise ValueError("it lies outside the years 1 to 9999 in UTC") from None


def parse_result(raw: bytes | str) -> SimulationResult:
    """Validate a value read from Redis (ours or an outside writer's) into a result.

    Total over its input: every value, however hostile, is a result or an InvalidResult.
    """
    if len(raw) > MAX_VALUE_BYTES:
        raise InvalidResult(f"value is larger than {MAX_VALUE_BYTES} bytes")
    try:
        obj = loads(raw, parse_constant=_reject_constant)
    except JSONTooDeep as exc:  # 4 KiB of brackets would nest deeper than the parser's stack
        raise InvalidResult(exc.msg) from None
    except ValueError as exc:  # UnicodeDecodeError included
        raise InvalidResult(f"not JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise InvalidResult(f"not a JSON object but {type(obj).__name__}")
    return SimulationResult(
        id=_optional_id(obj.get("id")),
        active_power=_finite(obj, "active_power"),
        reactive_power=_finite(obj, "reactive_power"),
        launched_at=_optional_time(obj.get("launched_at")),
        status=_optional_status(obj.get("status")),
        inputs=_optional_inputs(obj.get("inputs")),
        network=_optional_network(obj.get("network")),
    )


def _describe(value: Any) -> str:
    """A short, escaped description for the log line: containers by type only, since the repr
    of a deeply nested one would itself overflow the stack."""
    if value is None or isinstance(value, bool | int | float | str):
        text = repr(value)
        return text if len(text) <= 40 else text[:40] + "..."
    return f"a JSON {'array' if isinstance(value, list) else 'object'}"


def _cut(text: str) -> str:
    """The parser's messages quote the whole value: keep the log line short."""
    return text if len(text) <= 80 else text[:80] + "..."


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number")


def _finite(obj: dict[str, Any], key: str, label: str | None = None) -> float:
    label = label or key
    if key not in obj:
        raise InvalidResult(f"{label} is missing")
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidResult(f"{label} is not a number: {_describe(value)}")
    try:
        number = float(value)
    except OverflowError:
        raise InvalidResult(f"{label} is too large") from None
    if not math.isfinite(number):
        raise InvalidResult(f"{label} is not finite")
    return number


def _optional_id(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidResult(f"id is not a positive integer: {_describe(value)}")
    return value


def _optional_status(value: Any) -> Status | None:
    """Redis holds converged results only: a not-converged run is never the latest."""
    if value is None or value == CONVERGED:
        return value  # type: ignore[no-any-return]
    raise InvalidResult(f"status is not null or {CONVERGED!r}: {_describe(value)}")


def _optional_network(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not NETWORK_ID.fullmatch(value):
        raise InvalidResult(f"network is not a network id: {_describe(value)}")
    return value


def _optional_inputs(value: Any) -> dict[str, float] | None:
    """Any names (an outside writer's simulation may have its own inputs), each a finite number."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidResult(f"inputs is not a JSON object: {_describe(value)}")
    inputs: dict[str, float] = {}
    for name in value:
        if len(name) > MAX_INPUT_NAME_CHARS:
            raise InvalidResult(f"inputs has a name longer than {MAX_INPUT_NAME_CHARS} characters")
        inputs[name] = _finite(value, name, f"inputs.{_cut(name)}")
    return inputs


def _optional_time(value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidResult(f"launched_at is not a string: {_describe(value)}")
    try:
        return parse_time(value)
    except ValueError as exc:
        raise InvalidResult(f"launched_at is not an ISO 8601 time ({_cut(str(exc))})") from None
