"""powersim.scenario: the one definition of a run's inputs, and how refusals are reported."""

from __future__ import annotations

import inspect
import json
import math
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

import test_sim
from powersim.scenario import (
    MAX_FIELD_ERRORS,
    SEED,
    InvalidInput,
    MalformedInput,
    ScenarioError,
    ScenarioInput,
    field_errors,
    parse_scenario,
    scenario_json_schema,
    seed_inputs,
)

SEED_FIELDS = ("load_p_mw", "load_q_mvar", "ext_grid_vm_pu", "line_length_km")
FIELDS = (*SEED_FIELDS, "load_scaling", "sgen_scaling")  # the numbers; "network" is a string
NUMBERS = {
    "load_p_mw": 0.1,
    "load_q_mvar": 0.05,
    "ext_grid_vm_pu": 1.02,
    "line_length_km": 0.1,
    "load_scaling": 1.0,
    "sgen_scaling": 1.0,
}
DEFAULTS = {"network": "seed", **NUMBERS}  # model_dump() of the seed run, in declaration order
RANGES = {
    "load_p_mw": (-1000, 1000),
    "load_q_mvar": (-1000, 1000),
    "ext_grid_vm_pu": (0.5, 1.5),
    "line_length_km": (0.001, 100),
    "load_scaling": (0, 10),
    "sgen_scaling": (0, 10),
}


def invalid(raw: bytes | str) -> dict[str, str]:
    with pytest.raises(InvalidInput) as caught:
        parse_scenario(raw.encode() if isinstance(raw, str) else raw)
    return caught.value.fields


@pytest.mark.parametrize("raw", [b"", b"  \r\n", b"{}", b" { } "])
def test_no_body_or_an_empty_object_is_the_seed_run(raw: bytes) -> None:
    scenario = parse_scenario(raw)
    assert scenario == SEED == ScenarioInput()
    assert scenario.model_dump() == DEFAULTS


def test_the_defaults_are_test_sims_seed_values() -> None:
    for func in (test_sim.run_simulation, test_sim.run_network, test_sim.build_network):
        defaults = {name: p.default for name, p in inspect.signature(func).parameters.items()}
        assert defaults == {name: DEFAULTS[name] for name in SEED_FIELDS}
    assert test_sim.run_simulation(**seed_inputs(SEED)) == test_sim.run_simulation() == (0.1, 0.05)


def test_given_fields_are_taken_and_the_rest_default() -> None:
    scenario = parse_scenario(b'{"load_p_mw": 0.25, "line_length_km": 2.5}')
    assert scenario.model_dump() == DEFAULTS | {"load_p_mw": 0.25, "line_length_km": 2.5}


def test_json_integers_are_accepted_as_floats() -> None:
    scenario = parse_scenario(b'{"load_p_mw": 5, "load_q_mvar": -3, "ext_grid_vm_pu": 1, "line_length_km": 100}')
    assert seed_inputs(scenario) == {
        "load_p_mw": 5.0,
        "load_q_mvar": -3.0,
        "ext_grid_vm_pu": 1.0,
        "line_length_km": 100.0,
    }
    assert all(type(value) is float for value in seed_inputs(scenario).values())
    scaled = parse_scenario(b'{"network": "case9", "load_scaling": 2, "sgen_scaling": 0}')
    assert (scaled.load_scaling, scaled.sgen_scaling) == (2.0, 0.0)
    assert type(scaled.load_scaling) is float
    assert type(scaled.sgen_scaling) is float
    assert scaled.model_fields_set == {"network", "load_scaling", "sgen_scaling"}


def test_huge_integers_are_range_errors() -> None:
    assert invalid('{"load_p_mw": 100000000000000000000000000000}') == {"load_p_mw": "must be <= 1000"}


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e999", "-1e999"])
@pytest.mark.parametrize("field", FIELDS)
def test_non_finite_numbers_are_refused(field: str, value: str) -> None:
    assert invalid(f'{{"{field}": {value}}}') == {field: "must be a finite number"}


@pytest.mark.parametrize("value", ['"0.1"', '"abc"', "true", "false", "null", "[]", "[0.1]", '{"value": 0.1}'])
@pytest.mark.parametrize("field", FIELDS)
def test_anything_but_a_number_is_refused(field: str, value: str) -> None:
    assert invalid(f'{{"{field}": {value}}}') == {field: "must be a number"}


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("load_p_mw", "1000.0001", "must be <= 1000"),
        ("load_p_mw", "-1001", "must be >= -1000"),
        ("load_q_mvar", "1e4", "must be <= 1000"),
        ("load_q_mvar", "-1000.5", "must be >= -1000"),
        ("ext_grid_vm_pu", "0.49", "must be >= 0.5"),
        ("ext_grid_vm_pu", "1.51", "must be <= 1.5"),
        ("ext_grid_vm_pu", "0", "must be >= 0.5"),
        ("line_length_km", "0", "must be >= 0.001"),
        ("line_length_km", "-0.0", "must be >= 0.001"),
        ("line_length_km", "-1", "must be >= 0.001"),
        ("line_length_km", "100.01", "must be <= 100"),
    ],
)
def test_values_out_of_range_are_refused(field: str, value: str, problem: str) -> None:
    assert invalid(f'{{"{field}": {value}}}') == {field: problem}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('{"load_p_mw": -1000, "load_q_mvar": 1000}', {"load_p_mw": -1000.0, "load_q_mvar": 1000.0}),
        ('{"ext_grid_vm_pu": 0.5}', {"ext_grid_vm_pu": 0.5}),
        ('{"ext_grid_vm_pu": 1.5, "line_length_km": 100}', {"ext_grid_vm_pu": 1.5, "line_length_km": 100.0}),
        ('{"line_length_km": 0.001}', {"line_length_km": 0.001}),
        ('{"load_p_mw": -0.0}', {"load_p_mw": -0.0}),
    ],
)
def test_the_bounds_themselves_are_valid(body: str, expected: dict[str, float]) -> None:
    assert parse_scenario(body.encode()).model_dump() == DEFAULTS | expected


def test_unknown_keys_are_refused_under_their_own_names() -> None:
    assert invalid('{"load_p_kw": 100}') == {"load_p_kw": "unknown field"}
    assert invalid('{"load_p_mw": 0.2, "LOAD_Q_MVAR": 1, "": 2}') == {
        "LOAD_Q_MVAR": "unknown field",
        "": "unknown field",
    }
    long_name = "x" * 500
    assert invalid(json.dumps({long_name: 1})) == {"x" * 64 + "...": "unknown field"}


def test_nested_objects_are_refused() -> None:
    assert invalid('{"load_p_mw": {"value": 0.2}, "scenario": {"load_p_mw": 0.2}}') == {
        "load_p_mw": "must be a number",
        "scenario": "unknown field",
    }


def test_every_bad_field_is_named_at_once() -> None:
    body = (
        '{"load_p_mw": NaN, "load_q_mvar": "0.05", "ext_grid_vm_pu": 2, "line_length_km": true, "extra": 1, "more": {}}'
    )
    fields = invalid(body)
    assert fields == {
        "load_p_mw": "must be a finite number",
        "load_q_mvar": "must be a number",
        "ext_grid_vm_pu": "must be <= 1.5",
        "line_length_km": "must be a number",
        "extra": "unknown field",
        "more": "unknown field",
    }
    with pytest.raises(InvalidInput, match="load_p_mw, load_q_mvar, ext_grid_vm_pu, line_length_km, extra, more"):
        parse_scenario(body.encode())


def test_a_flood_of_unknown_keys_is_capped_after_the_declared_fields() -> None:
    body = {"load_p_mw": True} | {f"k{i}": i for i in range(100)}
    fields = invalid(json.dumps(body))
    assert len(fields) == MAX_FIELD_ERRORS + 1
    assert next(iter(fields)) == "load_p_mw"
    assert fields["..."] == f"{100 - (MAX_FIELD_ERRORS - 1)} more unknown fields"


def test_duplicate_keys_are_last_wins() -> None:
    assert parse_scenario(b'{"load_p_mw": "bad", "load_p_mw": 0.3}').load_p_mw == 0.3


@pytest.mark.parametrize(
    "raw", [b"{", b"{load_p_mw: 1}", b"{'load_p_mw': 1}", b'{"load_p_mw": 1,}', b"\xff\xfe", b"nan", b"[" * 64]
)
def test_malformed_json_is_malformed_input(raw: bytes) -> None:
    with pytest.raises(MalformedInput, match="not valid JSON"):
        parse_scenario(raw)


@pytest.mark.parametrize("raw", [b"[" * 65, b'{"load_p_mw": ' + b"[" * 64 + b"]" * 64 + b"}", b"[" * 10_000])
def test_nesting_beyond_the_rule_for_all_outside_json_is_malformed_input(raw: bytes) -> None:
    with pytest.raises(MalformedInput, match=r"nested too deeply \(more than 64 levels\)"):
        parse_scenario(raw)


@pytest.mark.parametrize("raw", [b"[]", b"null", b"0.1", b'"load_p_mw"', b"true", b'[{"load_p_mw": 0.2}]'])
def test_json_that_is_not_an_object_is_malformed_input(raw: bytes) -> None:
    with pytest.raises(MalformedInput, match="must be a JSON object"):
        parse_scenario(raw)


def test_the_two_refusals_are_distinct_value_errors() -> None:
    assert issubclass(MalformedInput, ScenarioError)
    assert issubclass(InvalidInput, ScenarioError)
    assert issubclass(ScenarioError, ValueError)
    assert not issubclass(MalformedInput, InvalidInput)
    assert not issubclass(InvalidInput, MalformedInput)
    error = InvalidInput({"load_p_mw": "must be a number"})
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), copy.fields, str(copy)) == (InvalidInput, error.fields, "invalid input: load_p_mw")


def test_field_errors_of_python_data() -> None:
    with pytest.raises(ValidationError) as caught:
        ScenarioInput.model_validate({"load_p_mw": 1.5e3, "ext_grid_vm_pu": math.nan, "other": None})
    assert field_errors(caught.value) == {
        "load_p_mw": "must be <= 1000",
        "ext_grid_vm_pu": "must be a finite number",
        "other": "unknown field",
    }
    with pytest.raises(ValidationError) as caught:
        ScenarioInput.model_validate([1, 2])
    assert field_errors(caught.value) == {"body": "must be a JSON object"}
    with pytest.raises(ValidationError) as caught:
        ScenarioInput.model_validate({"load_p_mw": "0.1"})  # strict: no string coercion from Python either
    assert field_errors(caught.value) == {"load_p_mw": "must be a number"}


def test_the_model_is_frozen() -> None:
    with pytest.raises(ValidationError):
        SEED.load_p_mw = 0.2  # type: ignore[misc]
    assert hash(SEED) == hash(ScenarioInput())


def test_the_json_schema_documents_every_field() -> None:
    schema = scenario_json_schema()
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert "required" not in schema
    assert list(schema["properties"]) == list(DEFAULTS)
    network = schema["properties"].pop("network")
    assert (network["type"], network["default"]) == ("string", "seed")
    assert network["pattern"] == "^[a-z0-9][a-z0-9_.-]{0,63}$"
    for field, prop in schema["properties"].items():
        assert prop["type"] == "number"
        assert prop["default"] == DEFAULTS[field]
        assert prop["description"]
        low, high = RANGES[field]
        assert prop["maximum"] == high
        assert prop["minimum"] == low
    assert any(
        unit in schema["properties"][f]["description"] for f in FIELDS for unit in ("MW", "MVAr", "per unit", "km")
    )
    for field, unit in zip(SEED_FIELDS, ("MW", "MVAr", "per unit", "km"), strict=True):
        assert unit in schema["properties"][field]["description"]
    schema["properties"].clear()  # a fresh dict on every call
    assert scenario_json_schema()["properties"]


INTEGERS = {
    "load_p_mw": (-1000, 1000),
    "load_q_mvar": (-1000, 1000),
    "ext_grid_vm_pu": (1, 1),
    "line_length_km": (1, 100),
    "load_scaling": (0, 10),
    "sgen_scaling": (0, 10),
}


@given(
    st.fixed_dictionaries(
        {},
        optional={field: st.one_of(st.floats(*RANGES[field]), st.integers(*INTEGERS[field])) for field in FIELDS},
    )
)
def test_every_value_in_range_is_accepted_exactly(body: dict[str, float]) -> None:
    scenario = parse_scenario(json.dumps(body).encode())
    assert scenario.model_dump() == DEFAULTS | {field: float(value) for field, value in body.items()}
