"""The result type every layer shares, its wire format, and validation of values read from Redis."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from .constants import MAX_VALUE_BYTES

_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


class InvalidResult(ValueError):
    """A value is not a result; the message says why (it goes into a log line)."""


@dataclass(frozen=True, slots=True)
class SimulationResult:
    """One simulation outcome. `id` and `launched_at` are None for values outside writers set."""

    id: int | None
    active_power: float
    reactive_power: float
    launched_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "active_power": self.active_power,
            "reactive_power": self.reactive_power,
            "launched_at": format_time(self.launched_at) if self.launched_at else None,
        }

    def to_json(self) -> str:
        return dumps(self.to_dict())


@lru_cache(maxsize=8)
def power_bodies(result: SimulationResult) -> tuple[bytes, bytes]:
    """The GET /active-power and /reactive-power bodies, serialized once per result: the latest
    result changes a few times a second at most and is read thousands of times a second."""
    body = result.to_dict()
    active = {"id": body["id"], "active_power": body["active_power"], "launched_at": body["launched_at"]}
    reactive = {"id": body["id"], "reactive_power": body["reactive_power"], "launched_at": body["launched_at"]}
    return dumps(active).encode(), dumps(reactive).encode()


# The snapshot a websocket client gets before any result exists: same keys, null values.
EMPTY_RESULT_JSON = '{"id":null,"active_power":null,"reactive_power":null,"launched_at":null}'


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False)


def format_time(moment: datetime) -> str:
    """Fixed-width UTC ISO 8601 with microseconds: sorts as text, which the Redis script relies on."""
    return moment.astimezone(UTC).strftime(_TIME_FORMAT)


def parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError("it has no time zone")
    return moment.astimezone(UTC)


def parse_result(raw: bytes | str) -> SimulationResult:
    """Validate a value read from Redis (ours or an outside writer's) into a result."""
    if len(raw) > MAX_VALUE_BYTES:
        raise InvalidResult(f"value is larger than {MAX_VALUE_BYTES} bytes")
    try:
        obj = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidResult(f"not JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise InvalidResult(f"not a JSON object but {type(obj).__name__}")
    return SimulationResult(
        id=_optional_id(obj.get("id")),
        active_power=_finite(obj, "active_power"),
        reactive_power=_finite(obj, "reactive_power"),
        launched_at=_optional_time(obj.get("launched_at")),
    )


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number")


def _finite(obj: dict[str, Any], key: str) -> float:
    if key not in obj:
        raise InvalidResult(f"{key} is missing")
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidResult(f"{key} is not a number: {value!r:.40}")
    try:
        number = float(value)
    except OverflowError:
        raise InvalidResult(f"{key} is too large") from None
    if not math.isfinite(number):
        raise InvalidResult(f"{key} is not finite")
    return number


def _optional_id(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidResult(f"id is not a positive integer: {value!r:.40}")
    return value


def _optional_time(value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidResult(f"launched_at is not a string: {value!r:.40}")
    try:
        return parse_time(value)
    except ValueError as exc:
        raise InvalidResult(f"launched_at is not an ISO 8601 time ({exc})") from None
