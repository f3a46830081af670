"""Scenarios over GraphQL against the real app running test_sim: the mutation with inputs, its
validation, a diverging run as a result, details by id, and what subscriptions receive."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    build_schema,
)
from graphql.type.definition import GraphQLNamedType, GraphQLType

from powersim.gql import schema
from powersim.grid import SECTIONS
from powersim.scenario import INPUT_NAMES, ScenarioInput

from .conftest import ClientFactory
from .test_graphql import gql, next_payload
from .test_scenarios import SIMULATION, assert_details, expected_details, solve, solved, stored

Client = TestClient[Any, Any]
Json = dict[str, Any]

SEED_INPUTS = {"load_p_mw": 0.1, "load_q_mvar": 0.05, "ext_grid_vm_pu": 1.02, "line_length_km": 0.1}
INPUTS = "inputs { loadPMw loadQMvar extGridVmPu lineLengthKm }"
RUN = f"id status activePower reactivePower launchedAt network networkSha256 message {INPUTS}"
DETAILS = """details {
  buses { index name vnKv vmPu vaDegree pMw qMvar }
  lines { index name loadingPercent pFromMw qFromMvar plMw qlMvar iKa }
  transformers { index name loadingPercent plMw qlMvar }
  externalGrids { index name pMw qMvar }
  losses { pMw qMvar }
  violations { element index name kind value limit }
}"""


def snake(name: str) -> str:
    return re.sub(r"[A-Z]", lambda m: "_" + m.group().lower(), name)


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def snake_keys(value: Any) -> Any:
    """A GraphQL answer in the REST API's spelling."""
    if isinstance(value, dict):
        return {snake(key): snake_keys(item) for key, item in value.items()}
    if isinstance(value, list):
        return [snake_keys(item) for item in value]
    return value


def as_rest(result: Json) -> Json:
    """A GraphQL run (RUN's fields) as GET /simulations/{id} shows it, without details."""
    return {
        "id": int(result["id"]),
        "active_power": result["activePower"],
        "reactive_power": result["reactivePower"],
        "launched_at": result["launchedAt"],
        "status": result["status"],
        "network": result["network"],
        "inputs": snake_keys(result["inputs"]),
        "network_sha256": result["networkSha256"],
        "message": result["message"],
    }


async def data(client: Client, query: str, variables: Json | None = None) -> Json:
    body = await gql(client, query, variables)
    assert "errors" not in body, body
    result: Json = body["data"]
    return result


async def rest_history(client: Client) -> list[Json]:
    body = await (await client.get("/simulations")).json()
    simulations: list[Json] = body["simulations"]
    return simulations


async def test_mutation_with_input_is_pandapowers_run_and_the_stored_one(make_client: ClientFactory) -> None:
    client = await make_client(simulation=SIMULATION)
    result = (await data(client, f"mutation {{ runSimulation(input: {{loadPMw: 0.15}}) {{ {RUN} {DETAILS} }} }}"))[
        "runSimulation"
    ]
    inputs = SEED_INPUTS | {"load_p_mw": 0.15}
    net = solved(inputs)
    assert (result["status"], result["message"]) == ("converged", None)
    assert snake_keys(result["inputs"]) == inputs
    assert (result["activePower"], result["reactivePower"]) == (net.res_load.p_mw[0], net.res_load.q_mvar[0])
    assert result["activePower"] == 0.15

    rest = await stored(client, int(result["id"]))
    assert rest == as_rest(result) | {"details": snake_keys(result["details"])}
    assert_details(snake_keys(result["details"]), expected_details(net))

    # The mutation's variables take the same path as an inline literal, omitted fields too.
    variables = {"input": {"lineLengthKm": 0.12, "extGridVmPu": 1.0}}
    query = f"mutation($input: ScenarioInput) {{ runSimulation(input: $input) {{ {RUN} }} }}"
    second = (await data(client, query, variables))["runSimulation"]
    assert snake_keys(second["inputs"]) == SEED_INPUTS | {"line_length_km": 0.12, "ext_grid_vm_pu": 1.0}
    assert int(second["id"]) == int(result["id"]) + 1


async def test_details_are_loaded_by_id_and_null_in_lists_and_latest(make_client: ClientFactory) -> None:
    client = await make_client(simulation=SIMULATION)
    ran = await (await client.post("/run-simulation", json={"ext_grid_vm_pu": 0.93})).json()
    rest = await stored(client, ran["id"])

    query = f"query($id: ID!) {{ simulation(id: $id) {{ {RUN} {DETAILS} }} }}"
    one = (await data(client, query, {"id": str(ran["id"])}))["simulation"]
    assert as_rest(one) | {"details": snake_keys(one["details"])} == rest
    kinds = [(v["element"], v["kind"]) for v in one["details"]["violations"]]
    assert kinds == [("bus", "undervoltage")] * 3 + [("line", "overload")]

    lists = await data(
        client, "{ simulations { id details { losses { pMw } } } latest { id details { losses { pMw } } } }"
    )
    assert lists == {
        "simulations": [{"id": str(ran["id"]), "details": None}],
        "latest": {"id": str(ran["id"]), "details": None},
    }
    assert (await data(client, '{ simulation(id: "99") { id } }')) == {"simulation": None}


INVALID_INLINE = [
    (
        "{loadPMw: 5000, lineLengthKm: 0}",
        {"loadPMw": "must be <= 1000", "lineLengthKm": "must be >= 0.001"},
    ),
    ("{extGridVmPu: 0.4}", {"extGridVmPu": "must be >= 0.5"}),
    ("{loadQMvar: -1000.5, extGridVmPu: 1.6}", {"loadQMvar": "must be >= -1000", "extGridVmPu": "must be <= 1.5"}),
    ("{lineLengthKm: -1}", {"lineLengthKm": "must be >= 0.001"}),
    # Fields are nullable in the schema (omitted stays omitted), so an explicit null is ours to refuse.
    ("{loadPMw: null}", {"loadPMw": "must be a number"}),
    ('{network: "Case 9"}', {"network": "must be a network id: up to 64 lower-case letters, digits, '_', '.' or '-'"}),
    ('{network: "nowhere"}', {"network": "no network 'nowhere': see GET /networks"}),
    ('{network: "case9", loadPMw: 1}', {"loadPMw": "applies to the seed network only"}),
    ("{loadScaling: 2}", {"loadScaling": "applies to catalog and uploaded networks, not the seed"}),
]


async def test_invalid_input_is_a_graphql_error_naming_every_field(make_client: ClientFactory) -> None:
    client = await make_client(simulation=SIMULATION)
    for literal, fields in INVALID_INLINE:
        body = await gql(client, f"mutation {{ runSimulation(input: {literal}) {{ id }} }}")
        assert body["data"] is None, literal
        [error] = body["errors"]
        problems = "; ".join(f"{name} {problem}" for name, problem in fields.items())
        assert error["message"] == f"invalid input: {problems}", literal
        assert error["extensions"] == {"fields": fields}, literal
        assert error["path"] == ["runSimulation"]

    # The same through variables: graphql-core passes the numbers on, pydantic refuses them.
    query = "mutation($input: ScenarioInput) { runSimulation(input: $input) { id } }"
    body = await gql(client, query, {"input": {"loadPMw": 5000, "lineLengthKm": 0}})
    assert body["data"] is None
    assert body["errors"][0]["extensions"] == {
        "fields": {"loadPMw": "must be <= 1000", "lineLengthKm": "must be >= 0.001"}
    }

    # What GraphQL's own type system refuses in a literal, before any resolver runs.
    for literal, named in (
        ('{loadPMw: "0.2"}', "Float cannot represent non numeric value"),
        ("{bogus: 1}", "not to include unknown field 'bogus'"),
    ):
        body = await gql(client, f"mutation {{ runSimulation(input: {literal}) {{ id }} }}")
        assert body.get("data") is None, body
        assert named in body["errors"][0]["message"], body

    assert await rest_history(client) == []
    assert (await client.get("/active-power")).status == 404
    assert await data(client, "{ simulations { id } latest { id } }") == {"simulations": [], "latest": None}


async def test_a_diverging_run_is_a_result_not_an_error(make_client: ClientFactory) -> None:
    client = await make_client(simulation=SIMULATION)
    first = (await data(client, f"mutation {{ runSimulation {{ {RUN} }} }}"))["runSimulation"]
    assert (first["status"], snake_keys(first["inputs"])) == ("converged", SEED_INPUTS)

    body = await gql(client, f"mutation {{ runSimulation(input: {{loadPMw: 1000}}) {{ {RUN} {DETAILS} }} }}")
    assert "errors" not in body, body
    diverged = body["data"]["runSimulation"]
    _, message = solve(SEED_INPUTS | {"load_p_mw": 1000})
    assert message
    assert (diverged["status"], diverged["activePower"], diverged["reactivePower"]) == ("not_converged", None, None)
    assert (diverged["message"], diverged["details"]) == (message, None)
    assert snake_keys(diverged["inputs"]) == SEED_INPUTS | {"load_p_mw": 1000}
    assert await stored(client, int(diverged["id"])) == as_rest(diverged) | {"details": None}

    answer = await data(
        client,
        "{ nc: simulations(status: not_converged) { id status } ok: simulations(status: converged) { id status }"
        " latest { id } activePower }",
    )
    assert answer == {
        "nc": [{"id": diverged["id"], "status": "not_converged"}],
        "ok": [{"id": first["id"], "status": "converged"}],
        "latest": {"id": first["id"]},
        "activePower": first["activePower"],
    }
    assert (await (await client.get("/active-power")).json())["id"] == int(first["id"])


async def test_subscription_receives_status_and_inputs_of_rest_runs(make_client: ClientFactory) -> None:
    client = await make_client(simulation=SIMULATION)
    existing = await (await client.post("/run-simulation")).json()
    subscription = f"subscription {{ simulationResults {{ {RUN} details {{ losses {{ pMw }} }} }} }}"
    async with client.ws_connect("/graphql", protocols=["graphql-transport-ws"]) as ws:
        await ws.send_json({"type": "connection_init"})
        assert (await ws.receive_json(timeout=5))["type"] == "connection_ack"
        await ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": subscription}})
        current = await next_payload(ws)
        assert as_rest(current) == existing | {"network_sha256": None, "message": None}
        assert (current["status"], current["details"]) == ("converged", None)
        assert snake_keys(current["inputs"]) == SEED_INPUTS

        diverged = await client.post("/run-simulation", json={"load_p_mw": 1000})
        assert diverged.status == 422  # stored, never pushed: the next message is the run below
        ran = await (await client.post("/run-simulation", json={"load_q_mvar": 0.07, "line_length_km": 0.05})).json()
        pushed = await next_payload(ws)
        assert as_rest(pushed) == ran | {"network_sha256": None, "message": None}
        assert snake_keys(pushed["inputs"]) == SEED_INPUTS | {"load_q_mvar": 0.07, "line_length_km": 0.05}
        assert (pushed["status"], pushed["reactivePower"], pushed["details"]) == ("converged", 0.07, None)
        await ws.send_json({"id": "1", "type": "complete"})


def named(field_type: GraphQLType) -> GraphQLNamedType:
    while isinstance(field_type, GraphQLNonNull | GraphQLList):
        field_type = field_type.of_type
    assert isinstance(field_type, GraphQLNamedType)
    return field_type


def test_the_schema_types_follow_the_grid_sections_and_the_inputs() -> None:
    """The detail types carry exactly grid.SECTIONS' columns (index, name, own, results), the
    Inputs type and the ScenarioInput input type exactly scenario.INPUT_NAMES, with the seed as defaults."""
    sdl = build_schema(schema.as_str())
    details = sdl.get_type("Details")
    assert isinstance(details, GraphQLObjectType)
    assert list(details.fields) == [*(camel(s.key) for s in SECTIONS), "losses", "violations"]
    for section in SECTIONS:
        row = named(details.fields[camel(section.key)].type)
        assert isinstance(row, GraphQLObjectType)
        assert list(row.fields) == [camel(c) for c in ("index", "name", *section.own, *section.results)], section.key
    losses = named(details.fields["losses"].type)
    assert isinstance(losses, GraphQLObjectType)
    assert list(losses.fields) == ["pMw", "qMvar"]
    violation = named(details.fields["violations"].type)
    assert isinstance(violation, GraphQLObjectType)
    assert list(violation.fields) == ["element", "index", "name", "kind", "value", "limit"]
    for enum, values in (
        ("element", ["bus", "line", "transformer"]),
        ("kind", ["undervoltage", "overvoltage", "overload"]),
    ):
        enum_type = named(violation.fields[enum].type)
        assert isinstance(enum_type, GraphQLEnumType)
        assert list(enum_type.values) == values

    inputs = sdl.get_type("Inputs")
    assert isinstance(inputs, GraphQLObjectType)
    every_input = [*INPUT_NAMES, "load_scaling", "sgen_scaling"]
    assert list(inputs.fields) == [camel(name) for name in every_input]
    scenario_input = sdl.get_type("ScenarioInput")
    assert isinstance(scenario_input, GraphQLInputObjectType)
    # The same fields as the pydantic model, each optional and without a default: omitted stays
    # omitted, since which inputs apply depends on what a request gave.
    assert list(scenario_input.fields) == [camel(name) for name in ScenarioInput.model_fields]
    for name, field in scenario_input.fields.items():
        assert not isinstance(field.type, GraphQLNonNull), name
        assert field.ast_node is None or field.ast_node.default_value is None, name
        assert isinstance(field.type, GraphQLScalarType)
        assert field.type.name == ("String" if name == "network" else "Float")
        assert field.description == ScenarioInput.model_fields[snake(name)].description
    status = sdl.get_type("RunStatus")
    assert isinstance(status, GraphQLEnumType)
    assert list(status.values) == ["converged", "not_converged", "timed_out", "failed"]


BAD_VARIABLES = [
    ({"loadPMw": "x"}, "loadPMw"),
    ({"loadPMw": None}, "loadPMw"),
    ({"bogus": 1}, "bogus"),
    (5, "ScenarioInput"),
]


async def test_bad_variables_are_client_errors_naming_the_field(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    """A variable GraphQL's types refuse is the client's mistake, reported as such (the
    simulation does not matter: nothing gets past coercion)."""
    query = "mutation($input: ScenarioInput) { runSimulation(input: $input) { id } }"
    for variables, named in BAD_VARIABLES:
        body = await gql(client, query, {"input": variables})
        assert body.get("data") is None, body
        assert named in body["errors"][0]["message"], body
    assert await rest_history(client) == []
    assert not [r for r in caplog.records if r.levelname == "ERROR"], "a client's mistake logged as an error"


async def test_graphql_defaults_are_accepted_by_a_simulation_without_inputs(client: Client) -> None:
    """GraphQL fills in the input's defaults (the seed values); a simulation that takes no inputs
    accepts those, and refuses only the fields set to something else."""
    ran = await data(client, "mutation { runSimulation(input: {}) { id status inputs { loadPMw } } }")
    assert ran["runSimulation"] == {"id": "1", "status": "converged", "inputs": None}
    body = await gql(client, "mutation { runSimulation(input: {loadPMw: 0.2}) { id } }")
    assert body["errors"][0]["extensions"] == {"fields": {"loadPMw": "not taken by this simulation (tests.sims:fixed)"}}
    assert [run["id"] for run in await rest_history(client)] == [1]


async def test_element_indices_beyond_32_bits_are_served(make_client: ClientFactory) -> None:
    client = await make_client(simulation="tests.sims:big_index")
    assert (await client.post("/run-simulation")).status == 200
    rest = (await stored(client, 1))["details"]
    body = await data(client, "{ simulation(id: 1) { details { lines { index } violations { element index } } } }")
    assert (
        body["simulation"]["details"]["lines"]
        == [{"index": 3_000_000_000}]
        == [{"index": line["index"]} for line in rest["lines"]]
    )
    assert {"element": "line", "index": 3_000_000_000} in body["simulation"]["details"]["violations"]


@pytest.mark.parametrize(
    ("query", "count"),
    [
        ("{ a: simulation(id: 1) { details { losses { pMw } } } b: simulation(id: 1) { details { losses { pMw } } } "
         "c: simulation(id: 1) { details { losses { pMw } } } }", 3),
        ("{ simulation(id: 1) { a: details { losses { pMw } } b: details { losses { pMw } } "
         "c: details { losses { pMw } } } }", 3),
        ("{ a: simulation(id: 1) { ...D } b: simulation(id: 1) { ...D } c: simulation(id: 1) { ... on "
         "SimulationResult { details { losses { pMw } } } } } "
         "fragment D on SimulationResult { details { losses { pMw } } }",
         3),
        ("query { a: simulation(id: 1) { ...E } } fragment E on SimulationResult { ...D ...D ...D } "
         "fragment D on SimulationResult { details { losses { pMw } } }", 3),
    ],
)  # fmt: skip
async def test_one_operation_may_select_details_at_most_twice(client: Client, query: str, count: int) -> None:
    """However the selections are spelled (aliases, fragments spread again), each counts."""
    body = await gql(client, query)
    assert body.get("data") is None
    assert [error["message"] for error in body["errors"]] == [
        f"the operation selects `details` {count} times; at most 2 are allowed"
    ]
    two = "{ a: simulation(id: 1) { details { losses { pMw } } } b: simulation(id: 2) { details { losses { pMw } } } }"
    assert (await gql(client, two)) == {"data": {"a": None, "b": None}}
