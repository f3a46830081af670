"""Validation of values read from Redis: what an outside writer may put there."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from powersim.constants import MAX_VALUE_BYTES
from powersim.jsonin import MAX_JSON_DEPTH
from powersim.models import NETWORK_ID, InvalidResult, SimulationResult, format_time, parse_result
from powersim.scenario import INPUT_NAMES

SEED_INPUTS = {"load_p_mw": 0.1, "load_q_mvar": 0.05, "ext_grid_vm_pu": 1.02, "line_length_km": 0.1}


def test_minimal_outside_value() -> None:
    result = parse_result(b'{"active_power": 0.25, "reactive_power": 0.125}')
    assert result == SimulationResult(None, 0.25, 0.125, None)
    assert (result.status, result.inputs) == (None, None)
    assert result.to_dict() == {
        "id": None,
        "active_power": 0.25,
        "reactive_power": 0.125,
        "launched_at": None,
        "status": None,
        "network": None,
        "inputs": None,
    }


def test_full_value_round_trips_and_extra_keys_are_dropped() -> None:
    ours = SimulationResult(
        12,
        0.1,
        0.05,
        datetime(2026, 11, 24, 10, 0, 0, 123456, tzinfo=UTC),
        "converged",
        dict(SEED_INPUTS),
        network="seed",
    )
    assert ours.to_json() == (
        '{"id":12,"active_power":0.1,"reactive_power":0.05,"launched_at":"2026-11-24T10:00:00.123456Z",'
        '"status":"converged","network":"seed",'
        '"inputs":{"load_p_mw":0.1,"load_q_mvar":0.05,"ext_grid_vm_pu":1.02,"line_length_km":0.1}}'
    )
    assert parse_result(ours.to_json()) == ours
    extra = json.dumps(ours.to_dict() | {"note": "x", "nested": {"a": 1}, "message": "m", "details": {"buses": []}})
    assert parse_result(extra) == ours


def test_a_value_written_before_runs_had_inputs_reads_with_null_status_and_inputs() -> None:
    old = b'{"id":3,"active_power":0.1,"reactive_power":0.05,"launched_at":"2026-11-24T10:00:00.000000Z"}'
    result = parse_result(old)
    assert result == SimulationResult(3, 0.1, 0.05, datetime(2026, 11, 24, 10, tzinfo=UTC))
    assert json.loads(result.to_json()) == json.loads(old) | {"status": None, "network": None, "inputs": None}


def test_an_outside_writers_own_input_names_are_kept() -> None:
    raw = b'{"active_power": 1, "reactive_power": 2, "status": null, "inputs": {"Wind Speed": 7, "x": -1.5e-3}}'
    assert parse_result(raw).to_dict()["inputs"] == {"Wind Speed": 7.0, "x": -0.0015}
    assert parse_result(raw.replace(b"null", b'"converged"')).status == "converged"


def test_run_forms_add_the_message_and_the_details_as_stored() -> None:
    launched = datetime(2026, 11, 24, 10, tzinfo=UTC)
    details = '{"buses":[],"losses":{"p_mw":0.001,"q_mvar":0.0}}'
    run = SimulationResult(5, 0.1, 0.05, launched, "converged", dict(SEED_INPUTS), None, details)
    compact = run.to_dict()
    assert list(compact) == ["id", "active_power", "reactive_power", "launched_at", "status", "network", "inputs"]
    more = {"network_sha256": None, "message": None}
    assert run.to_run_dict() == compact | more
    assert list(json.loads(run.to_run_json(with_details=True))) == [*compact, *more, "details"]
    assert json.loads(run.to_run_json(with_details=True)) == compact | more | {"details": json.loads(details)}
    assert json.loads(run.to_run_json()) == compact | more
    failed = SimulationResult(6, None, None, launched, "not_converged", dict(SEED_INPUTS), "did not converge")
    assert json.loads(failed.to_run_json(with_details=True)) == {
        "id": 6,
        "active_power": None,
        "reactive_power": None,
        "launched_at": "2026-11-24T10:00:00.000000Z",
        "status": "not_converged",
        "network": None,
        "inputs": SEED_INPUTS,
        "network_sha256": None,
        "message": "did not converge",
        "details": None,
    }


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
        # Redis holds converged results only: a not-converged run is never the latest.
        (b'{"active_power": 0.1, "reactive_power": 0.1, "status": "not_converged"}', "status is not null or 'conv"),
        (b'{"active_power": 0.1, "reactive_power": 0.1, "status": "CONVERGED"}', "status is not null or"),
        (b'{"active_power": 0.1, "reactive_power": 0.1, "status": 1}', "status is not null or"),
        (b'{"active_power": 0.1, "reactive_power": 0.1, "inputs": [1]}', "inputs is not a JSON object"),
        (b'{"active_power": 0.1, "reactive_power": 0.1, "inputs": "a=1"}', "inputs is not a JSON object"),
        (b'{"active_power": 0.1, "reactive_power": 0.1, "inputs": {"a": "1"}}', "inputs.a is not a number"),
        (b'{"active_power": 0.1, "reactive_power": 0.1, "inputs": {"a": true}}', "inputs.a is not a number"),
        (b'{"active_power": 0.1, "reactive_power": 0.1, "inputs": {"a": null}}', "inputs.a is not a number"),
        (b'{"active_power": 0.1, "reactive_power": 0.1, "inputs": {"a": [1]}}', "inputs.a is not a number"),
        (b'{"active_power": 0.1, "reactive_power": 0.1, "inputs": {"a": NaN}}', "NaN is not a number"),
        (b'{"active_power": 0.1, "reactive_power": 0.1, "inputs": {"a": 1e999}}', "inputs.a is not finite"),
        (b'{"active_power": 0.1, "reactive_power": 0.1, "inputs": {"a": 1' + b"0" * 400 + b"}}", "inputs.a is too"),
        (
            b'{"active_power": 0.1, "reactive_power": 0.1, "inputs": {"' + b"n" * 65 + b'": 1}}',
            "inputs has a name longer than 64 characters",
        ),
    ],
)
def test_rejected_values(raw: bytes, reason: str) -> None:
    with pytest.raises(InvalidResult, match=reason):
        parse_result(raw)


# --- property tests: an oracle built from how each value was generated, not from the parser --

INVALID = object()  # the verdict for a field value the contract rejects
DEEP = 1500  # nesting well past the JSON parser's stack, still under the 4096-byte cap as [[...]]


def _time_case(moment: datetime, offset_minutes: int, naive: bool) -> tuple[str, object]:
    """An ISO 8601 text and what the contract makes of it: its UTC instant, or INVALID."""
    if naive:
        return moment.isoformat(), INVALID  # no time zone
    zone = timezone(timedelta(minutes=offset_minutes))
    text = moment.replace(tzinfo=zone).isoformat()
    try:  # the instant in UTC must itself be a representable date (years 1 to 9999)
        utc = moment - timedelta(minutes=offset_minutes)
    except OverflowError:
        return text, INVALID
    return text, utc.replace(tzinfo=UTC)


TIME_CASES = st.one_of(
    st.builds(_time_case, st.datetimes(), st.integers(-23 * 60, 23 * 60), st.booleans()),
    st.sampled_from(
        [
            ("0001-01-01T00:00:00+01:00", INVALID),  # before year 1 in UTC
            ("9999-12-31T23:59:59-01:00", INVALID),  # after year 9999 in UTC
            ("0001-01-01T00:00:00Z", datetime(1, 1, 1, tzinfo=UTC)),
            ("2026-11-24T10:00:00Z", datetime(2026, 11, 24, 10, tzinfo=UTC)),
            ("noon", INVALID),
            ("", INVALID),
            ("2026-11-24", INVALID),
            ("2026-02-30T00:00:00Z", INVALID),
        ]
    ),
)
LEAVES = st.one_of(st.none(), st.booleans(), st.integers(-(10**20), 10**20), st.floats(), st.text(max_size=8))
ANY_JSON = st.recursive(
    LEAVES, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
)


def _power_case(value: Any) -> tuple[Any, object]:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value, INVALID
    if isinstance(value, float) and not math.isfinite(value):
        return value, INVALID
    if isinstance(value, int) and abs(value) > 10**308:  # no float holds it
        return value, INVALID
    return value, float(value)


POWER_CASES = st.one_of(st.floats(), st.integers(-(10**20), 10**20), st.integers(10**309, 10**320), ANY_JSON).map(
    _power_case
)
ID_CASES = st.one_of(st.none(), st.integers(-3, 10**30), ANY_JSON).map(
    lambda v: (v, v if v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 1) else INVALID)
)
MISSING = object()
# Numbers as a simulation's inputs look (negative, tiny, huge, integral), judged as powers are.
FINITE_CASES = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-(10**6), 10**6)).map(
    _power_case
)


def _status_case(value: Any) -> tuple[Any, object]:
    """Null or "converged" only: Redis never holds a run that did not converge."""
    return value, value if value is None or value == "converged" else INVALID


STATUS_CASES = st.one_of(
    st.sampled_from([None, "converged"]),
    st.just("converged"),
    st.sampled_from(["not_converged", "Converged", "CONVERGED", " converged", "", "null"]),
    ANY_JSON,
).map(_status_case)


def _network_case(value: Any) -> tuple[Any, object]:
    ok = value is None or (isinstance(value, str) and NETWORK_ID.fullmatch(value) is not None)
    return value, (value if ok else INVALID)


NETWORK_CASES = st.one_of(
    st.sampled_from([None, "seed", "case9", "upload-12", "a" * 64, "a" * 65, "Case9", "-x", "", "a b", "a/b"]),
    st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,63}", fullmatch=True),
    ANY_JSON,
).map(_network_case)

NAME_LIMIT = 64  # the contract: an input's name has at most 64 characters
INPUT_NAME_CASES = st.one_of(
    st.sampled_from(INPUT_NAMES),
    st.text(max_size=8),  # an outside writer's simulation may name its inputs as it likes
    st.text(min_size=NAME_LIMIT, max_size=NAME_LIMIT),  # the longest accepted
    st.text(min_size=NAME_LIMIT + 1, max_size=NAME_LIMIT + 8),
)


@st.composite
def _inputs_cases(draw: st.DrawFn) -> tuple[Any, object]:
    """Null, a non-object, or an object of names to values judged as powers are."""
    kind = draw(st.sampled_from(["null", "not an object", "numbers", "numbers", "anything"]))
    if kind == "null":
        return None, None
    if kind == "not an object":
        return draw(ANY_JSON.filter(lambda v: v is not None and not isinstance(v, dict))), INVALID
    # "numbers" draws mostly acceptable objects; both are judged entry by entry all the same.
    names = INPUT_NAME_CASES if kind == "anything" else st.one_of(st.sampled_from(INPUT_NAMES), st.text(max_size=8))
    values = POWER_CASES if kind == "anything" else FINITE_CASES
    entries = draw(st.lists(st.tuples(names, values), max_size=5, unique_by=lambda e: e[0]))
    value = {name: case[0] for name, case in entries}
    if any(len(name) > NAME_LIMIT or case[1] is INVALID for name, case in entries):
        return value, INVALID
    return value, {name: case[1] for name, case in entries}


INPUTS_CASES = _inputs_cases()


def _nest(value: Any, depth: int, as_object: bool) -> Any:
    for _ in range(depth):
        value = {"a": value} if as_object else [value]
    return value


def _has_non_finite(value: Any) -> bool:
    """NaN and Infinity are not JSON; json.dumps writes them anyway, and they must be refused.
    Iterative: the documents may be nested deeper than the interpreter's stack."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return True
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
    return False


@st.composite
def documents(draw: st.DrawFn) -> tuple[Any, dict[str, Any] | None]:
    """A JSON document and the result the contract makes of it (None: rejected), in the compact
    form the watcher pushes: every key, status and inputs included."""
    fields: dict[str, Any] = {}
    verdicts: dict[str, object] = {}
    for key, cases, optional in (
        ("active_power", POWER_CASES, False),
        ("reactive_power", POWER_CASES, False),
        ("id", ID_CASES, True),
        ("launched_at", TIME_CASES, True),
        ("status", STATUS_CASES, True),
        ("network", NETWORK_CASES, True),
        ("inputs", INPUTS_CASES, True),
    ):
        if draw(st.integers(0, 9)) == 0:  # sometimes missing
            verdicts[key] = None if optional else INVALID
            continue
        fields[key], verdicts[key] = draw(cases)
    if draw(st.booleans()):
        fields["extra"] = _nest(draw(ANY_JSON), draw(st.sampled_from([0, 1, 60, 63, 70, DEEP])), draw(st.booleans()))
    depth = draw(st.sampled_from([0, 0, 0, 1, 200, DEEP]))
    doc = _nest(fields, depth, draw(st.booleans()))
    if depth or INVALID in verdicts.values() or _has_non_finite(fields) or _max_depth(fields) > MAX_JSON_DEPTH:
        return doc, None
    launched = verdicts["launched_at"]
    return doc, {
        "id": verdicts["id"],
        "active_power": verdicts["active_power"],
        "reactive_power": verdicts["reactive_power"],
        "launched_at": format_time(launched) if isinstance(launched, datetime) else None,
        "status": verdicts["status"],
        "network": verdicts["network"],
        "inputs": verdicts["inputs"],
    }


def _max_depth(value: Any) -> int:
    """How deeply lists and dicts nest (an empty one counts as a level), without recursion."""
    deepest = 0
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, list | dict):
            deepest = max(deepest, depth + 1)
            stack.extend((child, depth + 1) for child in (item if isinstance(item, list) else item.values()))
    return deepest


@given(case=documents())
@example(case=(_nest({}, DEEP, False), None))
@example(case=({"active_power": 1, "reactive_power": 2, "launched_at": "0001-01-01T00:00:00+01:00"}, None))
@example(
    case=(
        {"active_power": 1, "reactive_power": 2, "status": "converged", "inputs": {"n" * 64: 3, "load_p_mw": -1e-3}},
        {
            "id": None,
            "active_power": 1.0,
            "reactive_power": 2.0,
            "launched_at": None,
            "status": "converged",
            "network": None,
            "inputs": {"n" * 64: 3.0, "load_p_mw": -0.001},
        },
    )
)
@example(case=({"active_power": 1, "reactive_power": 2, "inputs": {"n" * 65: 3}}, None))
@example(case=({"active_power": 1, "reactive_power": 2, "inputs": {"a": True}}, None))
@example(case=({"active_power": 1, "reactive_power": 2, "status": "not_converged", "inputs": None}, None))
@settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck))
def test_documents_are_judged_as_the_contract_says(case: tuple[Any, dict[str, Any] | None]) -> None:
    doc, expected = case
    try:
        raw = json.dumps(doc).encode()
    except RecursionError:  # the document is deeper than json.dumps goes: build the text by hand
        raw = b"[" * DEEP + b"]" * DEEP
        expected = None
    if len(raw) > MAX_VALUE_BYTES:
        expected = None
    if expected is None:
        with pytest.raises(InvalidResult):
            parse_result(raw)
    else:
        assert parse_result(raw).to_dict() == expected


@given(status=STATUS_CASES, inputs=INPUTS_CASES)
@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
def test_status_and_inputs_are_judged_as_the_contract_says(
    status: tuple[Any, object], inputs: tuple[Any, object]
) -> None:
    """The two newer keys on an otherwise valid value: documents() rarely gets that far."""
    doc = {"id": 4, "active_power": 0.5, "reactive_power": -0.25, "status": status[0], "inputs": inputs[0]}
    raw = json.dumps(doc).encode()
    if (
        INVALID in (status[1], inputs[1])
        or _has_non_finite(doc)
        or len(raw) > MAX_VALUE_BYTES
        or _max_depth(doc) > MAX_JSON_DEPTH
    ):
        with pytest.raises(InvalidResult):
            parse_result(raw)
        return
    assert parse_result(raw).to_dict() == {
        "id": 4,
        "active_power": 0.5,
        "reactive_power": -0.25,
        "launched_at": None,
        "status": status[1],
        "network": None,
        "inputs": inputs[1],
    }


@given(raw=st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode)))
@example(raw=b"[" * 1500 + b"]" * 1500)
@example(raw=b'{"a":' * 800 + b"1" + b"}" * 800)
@settings(max_examples=500, deadline=None)
def test_any_bytes_are_a_result_or_an_invalid_result(raw: bytes) -> None:
    try:
        result = parse_result(raw)
    except InvalidResult:
        return
    assert parse_result(result.to_json()) == result  # what we accept, we can write and read back
