"""The REST contract: the OpenAPI document matches the routes and the code's own definitions
(ScenarioInput, grid.SECTIONS), schemathesis fuzzes the live server against it, and hypothesis
throws arbitrary bytes at the outside-writer path."""

from __future__ import annotations

import asyncio
import importlib
import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast, get_args, get_type_hints

import aiohttp
import jsonschema_rs
import pytest
import redis
import schemathesis
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from schemathesis.config import SchemathesisConfig

from powersim import grid
from powersim.app import create_app
from powersim.constants import LATEST_KEY, MAX_VALUE_BYTES
from powersim.grid.loading import COUNTED
from powersim.models import STATUSES, SimulationResult
from powersim.networks import NetworkEntry, Source
from powersim.scenario import ScenarioInput, scenario_json_schema
from powersim.settings import Settings

from .processes import server_env, start_server, wait_healthy
from .redis_server import RedisServer
from .test_models import documents

SPEC_PATH = Path(__file__).resolve().parent.parent / "powersim" / "openapi.json"
SPEC = json.loads(SPEC_PATH.read_text())
NOT_IN_SPEC = {("GET", "/simulator-subscribe"), ("*", "/graphql")}  # websocket and GraphQL


def test_spec_matches_the_routes(tmp_path: Path) -> None:
    app = create_app(Settings(database_path=tmp_path / "x.db"))
    routes = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    }
    documented = {(method.upper(), path) for path, ops in SPEC["paths"].items() for method in ops}
    assert routes - NOT_IN_SPEC == documented


async def test_spec_is_served(client: Any) -> None:
    resp = await client.get("/openapi.json")
    assert resp.status == 200
    assert await resp.json() == SPEC


def _schema(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = SPEC["components"]["schemas"][name]
    return schema


def _referenced(schema: dict[str, Any]) -> dict[str, Any]:
    ref: str = schema["$ref"]
    return _schema(ref.removeprefix("#/components/schemas/"))


def test_the_run_inputs_have_one_definition() -> None:
    """The document's ScenarioInput is pydantic's own schema of the model requests are validated with."""
    assert _schema("ScenarioInput") == scenario_json_schema()
    body = SPEC["paths"]["/run-simulation"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ScenarioInput"}


def test_details_have_exactly_the_columns_the_worker_reports() -> None:
    """Every section of Details lists the index, the name, then grid.SECTIONS' columns, in that
    order, all required and nothing else; losses and violations have the keys of their TypedDicts."""
    details = _schema("Details")
    assert list(details["properties"]) == list(get_type_hints(grid.Details))
    assert details["required"] == list(details["properties"])
    for section in grid.SECTIONS:
        row = _referenced(details["properties"][section.key]["items"])
        columns = ["index", "name", *section.own, *section.results]
        assert list(row["properties"]) == columns, section.key
        assert row["required"] == columns, section.key
        assert row["additionalProperties"] is False
    losses = _referenced(details["properties"]["losses"])
    assert list(losses["properties"]) == losses["required"] == list(get_type_hints(grid.Losses))
    violation = _referenced(details["properties"]["violations"]["items"])
    hints = get_type_hints(grid.Violation)
    assert list(violation["properties"]) == violation["required"] == list(hints)
    for key in ("element", "kind"):
        assert violation["properties"][key]["enum"] == list(get_args(hints[key]))


def test_statuses_are_the_models() -> None:
    """A stored run has one of the statuses; Redis (the compact result) only ever holds converged."""
    assert _schema("Run")["properties"]["status"]["enum"] == list(STATUSES)
    assert _schema("Result")["properties"]["status"]["enum"] == ["converged", None]
    parameters = SPEC["paths"]["/simulations"]["get"]["parameters"]
    status = next(p for p in parameters if p["name"] == "status")
    assert status["schema"]["enum"] == list(STATUSES)


def test_runs_and_networks_have_the_keys_the_code_writes() -> None:
    """Results, runs and network entries list the keys the code writes, in its order; a
    network's counts are loading.COUNTED's and its inputs are ScenarioInput's fields."""
    run = SimulationResult(1, None, None, None)
    assert list(_schema("Result")["properties"]) == _schema("Result")["required"] == list(run.to_dict())
    assert list(_schema("Run")["properties"]) == _schema("Run")["required"] == list(run.to_run_dict())
    with_details = [*run.to_run_dict(), "details"]
    assert list(_schema("RunWithDetails")["properties"]) == _schema("RunWithDetails")["required"] == with_details
    assert _schema("RunWithDetails")["properties"]["status"] == _schema("Run")["properties"]["status"]
    upload = NetworkEntry("upload-1", "x", "upload", {}, ())
    entry = _schema("NetworkEntry")
    assert list(entry["properties"]) == list(upload.to_dict())
    assert entry["required"] == list(NetworkEntry("seed", "x", "builtin", {}, ()).to_dict())
    assert entry["properties"]["source"]["enum"] == list(get_args(Source))
    assert entry["properties"]["inputs"]["items"]["enum"] == [
        name for name in ScenarioInput.model_fields if name != "network"
    ]
    counts = _schema("NetworkCounts")
    assert list(counts["properties"]) == counts["required"] == list(COUNTED)


def conforms(name: str, body: Any) -> None:
    """Assert that `body` is valid against the document's schema `name` (JSON Schema 2020-12,
    the dialect of OpenAPI 3.1, validated by jsonschema_rs as schemathesis does)."""
    root = {"$ref": f"#/components/schemas/{name}", "components": SPEC["components"]}
    errors = [error.message for error in jsonschema_rs.validator_for(root).iter_errors(body)]
    assert errors == [], f"{name}: {errors}"


def _answer(name: str, path: str, method: str, status: int) -> None:
    """The document answers `status` on this operation with schema `name`."""
    content = SPEC["paths"][path][method]["responses"][str(status)]["content"]["application/json"]
    assert content["schema"] == {"$ref": f"#/components/schemas/{name}"}


async def test_real_answers_conform_to_the_document(make_client: Any) -> None:
    """Every kind of answer a real power flow gives, checked against the schemas by name, each
    case also shown to be the one it is meant to be (schemathesis rarely reaches a converged run
    with details, or an existing id)."""
    _answer("Result", "/run-simulation", "post", 200)
    _answer("RunUnprocessable", "/run-simulation", "post", 422)
    _answer("RunWithDetails", "/simulations/{id}", "get", 200)
    _answer("Page", "/simulations", "get", 200)
    client = await make_client(simulation="test_sim:run_network")
    converged = await client.post("/run-simulation")
    assert converged.status == 200
    conforms("Result", await converged.json())
    heavier = await client.post("/run-simulation", json={"load_p_mw": 0.15})
    assert (heavier.status, (await heavier.json())["inputs"]["load_p_mw"]) == (200, 0.15)
    failed = await client.post("/run-simulation", json={"load_p_mw": 1000})
    assert failed.status == 422
    conforms("NotConverged", await failed.json())
    invalid = await client.post("/run-simulation", json={"load_p_mw": "x", "vm": 1})
    assert invalid.status == 422
    conforms("InvalidInput", await invalid.json())
    for answer in (await failed.json(), await invalid.json()):
        conforms("RunUnprocessable", answer)
    runs = [await (await client.get(f"/simulations/{run_id}")).json() for run_id in (1, 2, 3)]
    assert [len(run["details"]["violations"]) if run["details"] else None for run in runs] == [1, 2, None]
    for run in runs:
        conforms("RunWithDetails", run)
    page = await (await client.get("/simulations?status=not_converged")).json()
    assert [run["id"] for run in page["simulations"]] == [3]
    conforms("Page", page)


async def test_runs_without_details_or_inputs_conform_too(make_client: Any) -> None:
    """A simulation that returns (P, Q) has runs without details; one that takes no inputs has
    runs with inputs null."""
    for simulation, inputs_given in (("test_sim:run_simulation", True), ("tests.sims:fixed", False)):
        client = await make_client(simulation=simulation)
        posted = await (await client.post("/run-simulation")).json()
        conforms("Result", posted)
        run = await (await client.get(f"/simulations/{posted['id']}")).json()
        assert (run["details"], run["inputs"] is not None) == (None, inputs_given)
        conforms("RunWithDetails", run)
        await client.close()


async def test_network_answers_conform_to_the_document(make_client: Any) -> None:
    """Uploads, their entries and document, runs on them and their history, checked against the
    schemas by name (schemathesis never makes a usable network, so it only sees the refusals)."""
    # By name, as the workers do: a second or two to import, for this test only (and untyped).
    pandapower = importlib.import_module("pandapower")
    test_sim = importlib.import_module("test_sim")
    _answer("NetworkEntry", "/networks", "post", 201)
    _answer("NetworkEntry", "/networks", "post", 200)
    _answer("NetworkList", "/networks", "get", 200)
    _answer("PandapowerNetwork", "/networks/{id}/json", "get", 200)
    document = pandapower.to_json(test_sim.build_network()).encode()
    client = await make_client(simulation="test_sim:run_network", workers=2)
    headers = {"Content-Type": "application/json"}
    created = await client.post("/networks?name=three%20buses", data=document, headers=headers)
    entry = await created.json()
    assert (created.status, created.headers["Location"], entry["name"]) == (201, "/networks/upload-1", "three buses")
    conforms("NetworkEntry", entry)
    again = await client.post("/networks?name=other", data=document, headers=headers)
    assert (again.status, again.headers["Location"], await again.json()) == (200, "/networks/upload-1", entry)
    listed = await (await client.get("/networks")).json()
    conforms("NetworkList", listed)
    sources = [network["source"] for network in listed["networks"]]
    assert (sources[0], sources[-1], sources.count("catalog")) == ("builtin", "upload", len(sources) - 2)
    stored = await client.get("/networks/upload-1/json")
    assert (stored.status, await stored.read()) == (200, document)
    conforms("PandapowerNetwork", json.loads(document))
    ran = await client.post("/run-simulation", json={"network": "upload-1", "load_scaling": 2})
    posted = await ran.json()
    assert (ran.status, posted["network"], posted["inputs"]) == (200, "upload-1", {"load_scaling": 2.0})
    conforms("Result", posted)
    assert (await client.delete("/networks/upload-1")).status == 204
    gone = await client.get("/networks/upload-1")
    assert gone.status == 404
    conforms("Error", await gone.json())
    page = await (await client.get("/simulations?network=upload-1")).json()
    conforms("Page", page)
    assert [(run["id"], run["network_sha256"]) for run in page["simulations"]] == [(posted["id"], entry["sha256"])]
    conforms("RunWithDetails", await (await client.get(f"/simulations/{posted['id']}")).json())
    unsafe = await client.post("/networks", json={"_module": "os", "_class": "system", "_object": "id"})
    assert unsafe.status == 422
    refused = await unsafe.json()
    assert refused["error"].startswith("the network is refused: ")
    conforms("Error", refused)


async def test_stopped_and_failed_runs_conform_to_the_document(make_client: Any) -> None:
    """A run stopped at the time limit (504) and one whose worker died (500) are stored and
    returned with their own schemas; a simulation that raises is a plain error (500)."""
    _answer("RunTimedOut", "/run-simulation", "post", 504)
    for simulation, run_timeout, status, name, stored in (
        ("tests.sims:slow", 0.3, 504, "RunTimedOut", ["timed_out"]),
        ("tests.sims:dies", 60.0, 500, "RunFailed", ["failed", "timed_out"]),
        ("tests.sims:fails", 60.0, 500, "Error", ["failed", "timed_out"]),  # nothing stored
    ):
        client = await make_client(simulation=simulation, run_timeout=run_timeout)  # one database for all
        response = await client.post("/run-simulation")
        body = await response.json()
        assert response.status == status, body
        conforms(name, body)
        page = await (await client.get("/simulations")).json()
        assert [run["status"] for run in page["simulations"]] == stored
        conforms("Page", page)
        await client.close()


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[str]:
    """A real server process (schemathesis's tests are synchronous, so not the in-loop client),
    running real power flows: generated inputs mostly do not converge, which is a documented 422."""
    env = server_env(
        tmp_path_factory.mktemp("live"),
        redis_server.url,
        POWERSIM_WORKERS="2",
        POWERSIM_SIMULATION="test_sim:run_network",
    )
    proc = start_server(env)
    try:
        wait_healthy(proc, env["PORT"])
        yield f"http://127.0.0.1:{env['PORT']}"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


# Valid inputs answer 422 when the power flow does not converge (most generated inputs, far from
# the seed network's operating point): an outcome the document lists, not a rejected request.
ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]
# A schema-valid upload is a pandapowerNet of any tables, almost never a usable network (422), and
# a generated name may be all whitespace or hold unprintable characters (400): both documented.
UPLOAD_ACCEPTED = [*ACCEPTED, "400"]
CONFIG = SchemathesisConfig.from_dict(
    {
        "operations": [
            {
                "include-operation-id": "runSimulation",
                "checks": {"positive_data_acceptance": {"expected-statuses": ACCEPTED}},
            },
            {
                "include-operation-id": "addNetwork",
                "checks": {"positive_data_acceptance": {"expected-statuses": UPLOAD_ACCEPTED}},
            },
        ]
    }
)
schema = schemathesis.openapi.from_path(SPEC_PATH, config=CONFIG)


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_spec(case: schemathesis.Case[Any], live_server: str) -> None:
    """No 5xx for any generated input, and every response matches the document."""
    case.call_and_validate(base_url=live_server)


def commandstat_calls(client: redis.Redis, command: str) -> int:
    info = cast(dict[str, Any], client.info("commandstats"))  # a sync client: never an Awaitable
    stats = info.get(f"cmdstat_{command}", {})
    return int(stats.get("calls", 0))


def _as_case(case: tuple[Any, dict[str, Any] | None]) -> tuple[bytes, dict[str, Any] | None]:
    doc, expected = case
    try:
        raw = json.dumps(doc).encode()
    except RecursionError:
        return b"[" * 1500 + b"]" * 1500, None
    return raw, expected if len(raw) <= MAX_VALUE_BYTES else None


# Expected outcomes come from how each value was generated (tests/test_models.py), never from
# the parser under test. Bytes that do not start an object are rejected by the contract itself.
NOT_OBJECTS = st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)).filter(
    lambda raw: not raw.lstrip().startswith(b"{")
)
CASES = st.one_of(documents().map(_as_case), NOT_OBJECTS.map(lambda raw: (raw, None)))


@given(case=CASES)
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_any_value_is_pushed_exactly_as_the_contract_says(
    live_server: str, redis_server: RedisServer, case: tuple[bytes, dict[str, Any] | None]
) -> None:
    """Whatever an outside writer stores, subscribers see it only if it is a valid result,
    exactly as the contract reads it, and the watcher keeps working afterwards."""
    raw, expected = case
    event("valid result" if expected is not None else "rejected")
    asyncio.run(_write_and_observe(live_server, redis_server, raw, expected))


async def _write_and_observe(base: str, redis_server: RedisServer, raw: bytes, expected: dict[str, Any] | None) -> None:
    client = redis_server.client()
    # Unique per example: an equal sentinel would (rightly) not be pushed again.
    sentinel = {
        "id": None,
        "active_power": -float(time.monotonic_ns()),
        "reactive_power": -1.0,
        "launched_at": None,
        "status": None,
        "network": None,
        "inputs": None,
    }
    try:
        async with aiohttp.ClientSession() as session, session.ws_connect(f"{base}/simulator-subscribe") as ws:
            current = await ws.receive_json(timeout=5)
            for value in (raw, json.dumps(sentinel).encode()):
                # Wait for the watcher's read of each write (reads are EVALSHA calls), so that
                # nothing is coalesced away and every value is judged on its own.
                before = commandstat_calls(client, "evalsha")
                client.set(LATEST_KEY, value)
                for _ in range(500):
                    if commandstat_calls(client, "evalsha") > before:
                        break
                    await asyncio.sleep(0.002)
            received: list[Any] = []
            while not received or received[-1] != sentinel:
                received.append(await ws.receive_json(timeout=5))
    finally:
        client.close()
    pushed = received[:-1]
    if expected is None or expected == current:
        assert pushed == [], f"{raw!r} was pushed as {pushed}"
    else:
        assert pushed == [expected]
