"""Validation of values read from Redis: what an outside writer may put there."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from powersim.constants import MAX_VALUE_BYTES
from powersim.models import InvalidResult, SimulationResult, parse_result


def test_minimal_outside_value() -> None:
    assert parse_result(b'{"active_power": 0.25, "reactive_power": 0.125}') == SimulationResult(None, 0.25, 0.125, None)


def test_full_value_round_trips_and_extra_keys_are_dropped() -> None:
    ours = SimulationResult(12, 0.1, 0.05, datetime(2026, 11, 24, 10, 0, 0, 123456, tzinfo=UTC))
    assert json.loads(ours.to_json()) == {
        "id": 12,
        "active_power": 0.1,
        "reactive_power": 0.05,
        "launched_at": "2026-11-24T10:00:00.123456Z",
    }
    assert parse_result(ours.to_json()) == ours
    extra = json.dumps(ours.to_dict() | {"note": "x", "nested": {"a": 1}})
    assert parse_result(extra) == ours


def test_integers_and_offsets_are_normalized() -> None:
    result = parse_result(b'{"active_power": 1, "reactive_power": -2, "launched_at": "2026-11-24T12:00:00+02:00"}')
    assert (result.active_power, result.reactive_power) == (1.0, -2.0)
    assert result.to_dict()["launched_at"] == "2026-11-24T10:00:00.000000Z"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"garbage", "not JSON"),
        (b"", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[0.1, 0.05]", "not a JSON object but list"),
        (b'"0.1"', "not a JSON object but str"),
        (b"0.1", "not a JSON object but float"),
        (b"null", "not a JSON object but NoneType"),
        (b'{"reactive_power": 0.1}', "active_power is missing"),
        (b'{"active_power": 0.1}', "reactive_power is missing"),
        (b'{"active_power": "0.1", "reactive_power": 0.1}', "active_power is not a number"),
        (b'{"active_power": true, "reactive_power": 0.1}', "active_power is not a number"),
        (b'{"active_power": null, "reactive_power": 0.1}', "active_power is not a number"),
        (b'{"active_power": NaN, "reactive_power": 0.1}', "NaN is not a number"),
        (b'{"active_power": Infinity, "reactive_power": 0.1}', "Infinity is not a number"),
        (b'{"active_power": 0.1, "reactive_power": -Infinity}', "-Infinity is not a number"),
        (b'{"active_power": 1e999, "reactive_power": 0.1}', "active_power is not finite"),
        (b'{"active_power": 1' + b"0" * 400 + b', "reactive_power": 0.1}', "active_power is too large"),
        (b'{"active_power": 0.1, "reactive_power": 0.1, "id": -4}', "id is not a positive integer"),
        (b'{"active_power": 0.1, "reactive_power": 0.1, "id": "7"}', "id is not a positive integer"),
        (b'{"active_power": 0.1, "reactive_power": 0.1, "launched_at": 5}', "launched_at is not a string"),
        (b'{"active_power": 0.1, "reactive_power": 0.1, "launched_at": "noon"}', "launched_at is not an ISO"),
        (b'{"active_power": 0.1, "reactive_power": 0.1, "launched_at": "2026-11-24T10:00:00"}', "no time zone"),
        (b'{"active_power": 0.1, "reactive_power": 0.1, "pad": "' + b"x" * MAX_VALUE_BYTES + b'"}', "larger than"),
    ],
)
def test_rejected_values(raw: bytes, reason: str) -> None:
    with pytest.raises(InvalidResult, match=reason):
        parse_result(raw)
