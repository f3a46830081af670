"""GraphQL on /graphql against the real app and Redis: queries, mutation, subscriptions, limits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient
from graphql import get_introspection_query

from powersim.constants import LATEST_KEY
from powersim.gql import schema

from .conftest import ClientFactory

Client = TestClient[Any, Any]
RESULT_FIELDS = (
    "id activePower reactivePower launchedAt status network inputs { loadPMw loadQMvar extGridVmPu lineLengthKm }"
)
INPUT_FIELDS = {"loadPMw": "load_p_mw", "loadQMvar": "load_q_mvar", "extGridVmPu": "ext_grid_vm_pu"} | {
    "lineLengthKm": "line_length_km"
}


async def gql(client: Client, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    resp = await client.post("/graphql", json={"query": query, "variables": variables or {}})
    assert resp.status < 500, await resp.text()
    assert resp.content_type == "application/json"
    return await resp.json()  # type: ignore[no-any-return]


def as_rest(result: dict[str, Any]) -> dict[str, Any]:
    """The REST shape (the compact form) of a GraphQL SimulationResult."""
    inputs = result["inputs"]
    return {
        "id": int(result["id"]) if result["id"] is not None else None,
        "active_power": result["activePower"],
        "reactive_power": result["reactivePower"],
        "launched_at": result["launchedAt"],
        "status": result["status"],
        "network": result["network"],
        "inputs": {INPUT_FIELDS[name]: value for name, value in inputs.items()} if inputs is not None else None,
    }


async def test_queries_before_any_run(client: Client) -> None:
    body = await gql(client, "{ latest { id } activePower reactivePower simulations { id } }")
    assert body == {"data": {"latest": None, "activePower": None, "reactivePower": None, "simulations": []}}


async def test_mutation_uses_the_rest_path(client: Client, redis_client: aioredis.Redis) -> None:
    body = await gql(client, f"mutation {{ runSimulation {{ {RESULT_FIELDS} }} }}")
    result = body["data"]["runSimulation"]
    assert result["id"] == "1"
    assert (result["activePower"], result["reactivePower"]) == (0.1, 0.05)
    assert (result["status"], result["inputs"]) == ("converged", None)  # tests.sims:fixed takes no inputs
    # Same storage and the same Redis write as POST /run-simulation.
    stored = as_rest(result) | {"network_sha256": None, "message": None, "details": None}
    assert await (await client.get("/simulations/1")).json() == stored
    assert json.loads(await redis_client.get(LATEST_KEY)) == as_rest(result)
    rest_run = await (await client.post("/run-simulation")).json()
    assert rest_run["id"] == 2

    body = await gql(
        client,
        f"query($id: ID!) {{ latest {{ {RESULT_FIELDS} }} activePower reactivePower simulation(id: $id) {{ id }} }}",
        {"id": "1"},
    )
    assert as_rest(body["data"]["latest"]) == rest_run
    assert (body["data"]["activePower"], body["data"]["reactivePower"]) == (0.1, 0.05)
    assert body["data"]["simulation"] == {"id": "1"}


async def test_simulations_page_like_rest(client: Client) -> None:
    for _ in range(5):
        await client.post("/run-simulation")
    first = await gql(client, "{ simulations(limit: 2) { id } }")
    assert first["data"]["simulations"] == [{"id": "5"}, {"id": "4"}]
    second = await gql(client, '{ simulations(limit: 2, before: "4") { id } }')
    assert second["data"]["simulations"] == [{"id": "3"}, {"id": "2"}]
    assert (await gql(client, '{ simulation(id: "42") { id } }'))["data"] == {"simulation": None}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("{ simulations(limit: 0) { id } }", "limit must be between 1 and 500, got 0"),
        ('{ simulations(before: "x") { id } }', "before must be an integer, got 'x'"),
        ('{ simulation(id: "abc") { id } }', "id must be an integer, got 'abc'"),
        ("{ latest { voltage } }", "Cannot query field 'voltage'"),
        ("{ latest { id }", "Syntax Error"),
        ("mutation { runSimulation }", "must have a selection of subfields"),
    ],
)
async def test_bad_queries_are_graphql_errors(client: Client, query: str, message: str) -> None:
    body = await gql(client, query)
    assert body.get("data") is None or all(v is None for v in body["data"].values())
    assert message in body["errors"][0]["message"], body


@pytest.mark.parametrize(
    ("method", "body", "content_type", "status", "message"),
    [
        ("POST", b"hello", "text/plain", 400, "Unsupported content type"),
        ("POST", b"{bad", "application/json", 400, "Unable to parse request body as JSON"),
        ("POST", b"[]", "application/json", 400, "Batching is not enabled"),
        ("POST", b'{"query": 5}', "application/json", 400, "must be a string"),
        ("PUT", b"x", "text/plain", 405, "only supports GET and POST"),
    ],
)
async def test_malformed_graphql_requests_get_json_errors(
    client: Client, method: str, body: bytes, content_type: str, status: int, message: str
) -> None:
    resp = await client.request(method, "/graphql", data=body, headers={"Content-Type": content_type})
    assert resp.status == status
    assert resp.content_type == "application/json"
    assert message in (await resp.json())["error"]


async def test_failed_simulation_is_reported_not_masked(make_client: ClientFactory) -> None:
    client = await make_client(simulation="tests.sims:fails")
    body = await gql(client, "mutation { runSimulation { id } }")
    assert body["data"] is None
    assert "power flow did not converge" in body["errors"][0]["message"]


async def test_hostile_queries_are_rejected(client: Client) -> None:
    # Introspection types are cyclic; each level multiplies the answer.
    deep = "{ __schema { types { fields { type { fields { type { fields { type { fields { name } } } } } } } } } }"
    body = await gql(client, deep)
    assert body["errors"][0]["message"] == "Maximum introspection depth exceeded", body
    assert body.get("data") is None
    aliases = "{ " + " ".join(f"a{i}: activePower" for i in range(50)) + " }"
    body = await gql(client, aliases)
    assert "aliases found" in body["errors"][0]["message"].lower(), body
    tokens = "{ " + "a " * 1100 + "}"  # over 1000 tokens, under the 8 KiB query cap
    body = await gql(client, tokens)
    assert "token" in body["errors"][0]["message"].lower(), body


async def test_graphiql_introspection_still_works(client: Client) -> None:
    body = await gql(client, get_introspection_query(descriptions=True))
    assert "errors" not in body, body
    names = {t["name"] for t in body["data"]["__schema"]["types"]}
    assert {"SimulationResult", "Query", "Mutation", "Subscription", "DateTime"} <= names


async def next_payload(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    msg = await ws.receive_json(timeout=5)
    assert msg["type"] == "next", msg
    return msg["payload"]["data"]["simulationResults"]  # type: ignore[no-any-return]


async def test_subscription_sees_rest_runs_and_outside_writers(client: Client, redis_client: aioredis.Redis) -> None:
    existing = await (await client.post("/run-simulation")).json()
    async with client.ws_connect("/graphql", protocols=["graphql-transport-ws"]) as ws:
        await ws.send_json({"type": "connection_init"})
        assert (await ws.receive_json(timeout=5))["type"] == "connection_ack"
        await ws.send_json(
            {
                "id": "1",
                "type": "subscribe",
                "payload": {"query": f"subscription {{ simulationResults {{ {RESULT_FIELDS} }} }}"},
            }
        )
        assert as_rest(await next_payload(ws)) == existing
        ran = await (await client.post("/run-simulation")).json()
        assert as_rest(await next_payload(ws)) == ran
        await redis_client.set(LATEST_KEY, json.dumps({"active_power": 0.25, "reactive_power": 0.125}))
        outside = await next_payload(ws)
        assert outside == {
            "id": None,
            "activePower": 0.25,
            "reactivePower": 0.125,
            "launchedAt": None,
            "status": None,
            "network": None,
            "inputs": None,
        }
        # An outside writer's own input names have no field: only the seed network's are shown.
        written = {"active_power": 1, "reactive_power": 2, "status": "converged"}
        await redis_client.set(LATEST_KEY, json.dumps(written | {"inputs": {"load_p_mw": 0.3, "wind_speed": 7}}))
        assert as_rest(await next_payload(ws)) == {
            "id": None,
            "active_power": 1.0,
            "reactive_power": 2.0,
            "launched_at": None,
            "status": "converged",
            "network": None,
            "inputs": {"load_p_mw": 0.3, "load_q_mvar": None, "ext_grid_vm_pu": None, "line_length_km": None},
        }
        await ws.send_json({"id": "1", "type": "complete"})


async def test_legacy_graphql_ws_protocol(client: Client) -> None:
    async with client.ws_connect("/graphql", protocols=["graphql-ws"]) as ws:
        await ws.send_json({"type": "connection_init"})
        assert (await ws.receive_json(timeout=5))["type"] == "connection_ack"
        await ws.send_json(
            {"id": "1", "type": "start", "payload": {"query": "subscription { simulationResults { id } }"}}
        )
        ran = await (await client.post("/run-simulation")).json()
        while True:  # keep-alive frames may come first
            msg = await ws.receive_json(timeout=5)
            if msg["type"] == "data":
                break
        assert msg["payload"]["data"]["simulationResults"] == {"id": str(ran["id"])}


async def test_graphiql_is_served_to_browsers(client: Client) -> None:
    resp = await client.get("/graphql", headers={"Accept": "text/html"})
    assert resp.status == 200
    assert resp.content_type == "text/html"
    assert "graphiql" in (await resp.text()).lower()


def test_committed_schema_matches_the_code() -> None:
    committed = (Path(__file__).resolve().parent.parent / "schema.graphql").read_text()
    assert committed == schema.as_str() + "\n", "schema drifted: run `python -m powersim.gql > schema.graphql`"
