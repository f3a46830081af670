"""Runs as what-if studies over REST, against the real app, a real worker running test_sim and a
real Redis: every number a run returns or stores is pandapower's own for a freshly built seed
network with the same inputs; refused inputs leave no trace; a diverging power flow is an outcome."""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from typing import Any

import aiohttp
import pandapower as pp
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

import test_sim
from powersim.constants import LATEST_KEY
from powersim.scenario import INPUT_NAMES, seed_inputs
from powersim.scenario import SEED as SEED_INPUT

from .conftest import ClientFactory

Client = TestClient[Any, Any]
Json = dict[str, Any]

SIMULATION = "test_sim:run_network"
SEED: dict[str, float] = {"load_p_mw": 0.1, "load_q_mvar": 0.05, "ext_grid_vm_pu": 1.02, "line_length_km": 0.1}
COMPACT_KEYS = ["id", "active_power", "reactive_power", "launched_at", "status", "network", "inputs"]
RUN_KEYS = [*COMPACT_KEYS, "network_sha256", "message"]
DEFAULT_BAND = (0.95, 1.05)
NOT_CONVERGED_PREFIX = "power flow did not converge: "

# The list of what `details` reports, written out here rather than read from
# powersim.grid, so that the test holds the code to the issue and not to itself.
OWN_COLUMNS = {"bus": ("vn_kv",)}
RESULT_COLUMNS = {
    "bus": ("vm_pu", "va_degree", "p_mw", "q_mvar"),
    "line": ("loading_percent", "p_from_mw", "q_from_mvar", "pl_mw", "ql_mvar", "i_ka"),
    "trafo": ("loading_percent", "pl_mw", "ql_mvar"),
    "ext_grid": ("p_mw", "q_mvar"),
}
SECTION_TABLES = {"buses": "bus", "lines": "line", "transformers": "trafo", "external_grids": "ext_grid"}


pytestmark = pytest.mark.usefixtures("quiet_pandapower")  # numba is not installed on purpose


@pytest.fixture
async def sim(make_client: ClientFactory) -> Client:
    """The app running the real power flow (the test settings' default takes no inputs)."""
    return await make_client(simulation=SIMULATION)


def solve(inputs: Mapping[str, float]) -> tuple[Any, str | None]:
    """pandapower's own answer for a freshly built seed network: (solved net, None), or (None,
    the solver's message) when the power flow does not converge."""
    net = test_sim.build_network(**inputs)
    with warnings.catch_warnings():
        # On its way to diverging, Newton-Raphson may divide by ~0 or meet a singular Jacobian;
        # pandapower then raises LoadflowNotConverged, which is what the test compares.
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.filterwarnings("ignore", "Matrix is exactly singular")  # scipy's MatrixRankWarning
        try:
            pp.runpp(net)
        except pp.LoadflowNotConverged as exc:
            return None, str(exc)
    return net, None


def solved(inputs: Mapping[str, float]) -> Any:
    net, message = solve(inputs)
    assert net is not None, f"pandapower does not converge for {inputs}: {message}"
    return net


def _rows(net: Any, table: str) -> list[Json]:
    rows = []
    for label in net[table].index:
        row: Json = {"index": int(label), "name": net[table].at[label, "name"]}
        row |= {column: float(net[table].at[label, column]) for column in OWN_COLUMNS.get(table, ())}
        row |= {column: float(net[f"res_{table}"].at[label, column]) for column in RESULT_COLUMNS[table]}
        rows.append(row)
    return rows


def expected_violations(net: Any, band: tuple[float, float] = DEFAULT_BAND) -> list[Json]:
    """Buses outside the band, then lines, then transformers over 100 % (the seed network sets
    no limits of its own)."""
    low, high = band
    found: list[Json] = []
    for label, vm in net.res_bus.vm_pu.items():
        name = net.bus.at[label, "name"]
        if vm < low:
            found.append(dict(element="bus", index=int(label), name=name, kind="undervoltage", value=vm, limit=low))
        elif vm > high:
            found.append(dict(element="bus", index=int(label), name=name, kind="overvoltage", value=vm, limit=high))
    for element, table in (("line", "line"), ("transformer", "trafo")):
        for label, loading in net[f"res_{table}"].loading_percent.items():
            if loading > 100.0:
                name = net[table].at[label, "name"]
                found.append(
                    dict(element=element, index=int(label), name=name, kind="overload", value=loading, limit=100.0)
                )
    return found


def expected_details(net: Any, band: tuple[float, float] = DEFAULT_BAND) -> Json:
    """`details` as the issue defines it, straight from pandapower's tables."""
    details: Json = {key: _rows(net, table) for key, table in SECTION_TABLES.items()}
    details["losses"] = {
        "p_mw": float(net.res_line.pl_mw.sum() + net.res_trafo.pl_mw.sum()),
        "q_mvar": float(net.res_line.ql_mvar.sum() + net.res_trafo.ql_mvar.sum()),
    }
    details["violations"] = expected_violations(net, band)
    return details


def assert_details(actual: Json, expected: Json) -> None:
    """Equal field by field: tables exactly (the same floats, through JSON and back), the loss
    totals (sums of two cells) within 1e-12."""
    assert list(actual) == list(expected)
    for key in SECTION_TABLES:
        assert actual[key] == expected[key], key
    assert actual["losses"] == pytest.approx(expected["losses"], abs=1e-12, rel=0)
    assert actual["violations"] == expected["violations"]


async def post(client: Client, body: Any = None) -> aiohttp.ClientResponse:
    if body is None:
        return await client.post("/run-simulation")
    return await client.post("/run-simulation", json=body)


async def run(client: Client, body: Any = None) -> Json:
    resp = await post(client, body)
    assert resp.status == 200, await resp.text()
    answer: Json = await resp.json()
    assert list(answer) == COMPACT_KEYS
    return answer


async def stored(client: Client, run_id: int) -> Json:
    resp = await client.get(f"/simulations/{run_id}")
    assert resp.status == 200, await resp.text()
    body: Json = await resp.json()
    assert list(body) == [*RUN_KEYS, "details"]
    return body


async def history(client: Client, status: str | None = None) -> list[Json]:
    resp = await client.get("/simulations", params={"status": status} if status else {})
    assert resp.status == 200, await resp.text()
    body: Json = await resp.json()
    assert body["next_before"] is None
    simulations: list[Json] = body["simulations"]
    return simulations


async def latest(client: Client) -> tuple[int, Json]:
    resp = await client.get("/active-power")
    body: Json = await resp.json()
    return resp.status, body


async def next_json(ws: aiohttp.ClientWebSocketResponse, wait: float = 5.0) -> Json:
    msg = await ws.receive(timeout=wait)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    return json.loads(msg.data)  # type: ignore[no-any-return]


def run_row(answer: Json) -> Json:
    """A converged POST answer as the history lists it."""
    return answer | {"network_sha256": None, "message": None}


def test_the_seed_here_is_the_scenario_seed() -> None:
    assert seed_inputs(SEED_INPUT) == SEED
    assert tuple(SEED) == INPUT_NAMES


# Valid inputs near the seed, where the power flow mostly converges (not always: the 0.4 MVA
# transformer and the line give out for heavy loads on long lines). Omitted fields are drawn too.
NEAR_SEED = st.fixed_dictionaries(
    {},
    optional={
        "load_p_mw": st.floats(0.0, 0.3),
        "load_q_mvar": st.floats(-0.1, 0.15),
        "ext_grid_vm_pu": st.floats(0.95, 1.08),
        "line_length_km": st.floats(0.01, 0.3),
    },
)


@given(inputs=NEAR_SEED)
@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# Each inclusive bound is a valid input; some of them diverge, which is an outcome, not a refusal.
@example(inputs={"load_p_mw": 1000})
@example(inputs={"load_p_mw": -1000})
@example(inputs={"load_q_mvar": -1000})
@example(inputs={"ext_grid_vm_pu": 0.5})
@example(inputs={"ext_grid_vm_pu": 1.5})
@example(inputs={"line_length_km": 100})
@example(inputs={"line_length_km": 0.001})
@example(inputs={"load_p_mw": 0.2, "line_length_km": 0.5})  # diverges although near the seed
async def test_every_run_is_pandapowers_own_result(sim: Client, inputs: dict[str, float]) -> None:
    """Returned, stored and detailed numbers are those of a fresh pandapower run with the same
    (resolved) inputs; where that run diverges, the API answers 422 not_converged."""
    resolved = SEED | inputs
    resp = await post(sim, inputs)
    body: Json = await resp.json()
    net, message = solve(resolved)
    if net is None:
        event("not converged")
        assert resp.status == 422, body
        assert body["error"] == NOT_CONVERGED_PREFIX + str(message)
        run_ = body["simulation"]
        assert list(run_) == RUN_KEYS
        assert (run_["status"], run_["active_power"], run_["reactive_power"]) == ("not_converged", None, None)
        assert run_["inputs"] == resolved
        assert run_["message"] == message
        assert await stored(sim, run_["id"]) == run_ | {"details": None}
        return
    event("converged")
    assert resp.status == 200, body
    assert list(body) == COMPACT_KEYS
    assert body["status"] == "converged"
    assert body["inputs"] == resolved
    assert (body["active_power"], body["reactive_power"]) == (net.res_load.p_mw[0], net.res_load.q_mvar[0])
    row = await stored(sim, body["id"])
    assert {key: row[key] for key in COMPACT_KEYS} == body
    assert row["message"] is None
    assert_details(row["details"], expected_details(net))
    assert await latest(sim) == (
        200,
        {"id": body["id"], "active_power": body["active_power"], "launched_at": body["launched_at"]},
    )


async def test_each_input_moves_what_it_should(sim: Client) -> None:
    """Two runs differing in one input only: the quantity that input drives changes (and is
    pandapower's value for it), quantities it cannot affect stay put."""
    base = await run(sim, {})
    base_details = (await stored(sim, base["id"]))["details"]

    async def changed(name: str, value: float) -> tuple[Json, Json]:
        answer = await run(sim, {name: value})
        assert answer["inputs"] == SEED | {name: value}
        details = (await stored(sim, answer["id"]))["details"]
        assert_details(details, expected_details(solved(SEED | {name: value})))
        return answer, details

    answer, details = await changed("ext_grid_vm_pu", 1.0)
    for bus, before in zip(details["buses"], base_details["buses"], strict=True):
        assert bus["vm_pu"] < before["vm_pu"], bus  # every bus, the grid's own included
    assert details["buses"][0]["vm_pu"] == 1.0
    assert (answer["active_power"], answer["reactive_power"]) == (0.1, 0.05)  # a constant-power load

    answer, details = await changed("line_length_km", 0.2)
    [line], [base_line] = details["lines"], base_details["lines"]
    assert line["pl_mw"] > base_line["pl_mw"]
    assert line["ql_mvar"] > base_line["ql_mvar"]
    assert details["losses"]["p_mw"] > base_details["losses"]["p_mw"]
    assert (answer["active_power"], answer["reactive_power"]) == (0.1, 0.05)

    answer, details = await changed("load_p_mw", 0.15)
    assert (answer["active_power"], answer["reactive_power"]) == (0.15, 0.05)
    assert details["external_grids"][0]["p_mw"] > base_details["external_grids"][0]["p_mw"]

    answer, details = await changed("load_q_mvar", 0.08)
    assert (answer["active_power"], answer["reactive_power"]) == (0.1, 0.08)
    assert details["external_grids"][0]["q_mvar"] > base_details["external_grids"][0]["q_mvar"]


async def test_omitted_inputs_take_the_seed_values(sim: Client) -> None:
    """No body, whitespace and `{}` are today's run: the same numbers as test_sim.run_simulation(),
    the same keys (plus status and inputs); a partial body fills in the rest from the seed."""
    expected = test_sim.run_simulation()
    assert expected == pytest.approx((0.1, 0.05), abs=1e-12, rel=0)
    no_body = await run(sim)
    empty = await run(sim, {})
    whitespace_resp = await sim.post("/run-simulation", data=b" \r\n\t", headers={"Content-Type": "text/plain"})
    assert whitespace_resp.status == 200, await whitespace_resp.text()
    whitespace = await whitespace_resp.json()
    for answer in (no_body, empty, whitespace):
        assert list(answer) == COMPACT_KEYS
        assert (answer["active_power"], answer["reactive_power"]) == expected
        assert (answer["status"], answer["inputs"]) == ("converged", SEED)
    assert [no_body["id"], empty["id"], whitespace["id"]] == [1, 2, 3]
    seed_details = expected_details(solved(SEED))
    for answer in (no_body, empty, whitespace):
        assert_details((await stored(sim, answer["id"]))["details"], seed_details)

    partial = await run(sim, {"line_length_km": 0.15})
    assert partial["inputs"] == SEED | {"line_length_km": 0.15}
    assert (await stored(sim, partial["id"]))["inputs"] == SEED | {"line_length_km": 0.15}
    assert_details((await stored(sim, partial["id"]))["details"], expected_details(solved(partial["inputs"])))


JSON = {"Content-Type": "application/json"}


def refused(fields: dict[str, str]) -> tuple[int, Json]:
    return 422, {"error": f"invalid input: {', '.join(fields)}", "fields": fields}


NOT_JSON = (400, {"error": "the body is not valid JSON"})
NOT_OBJECT = (400, {"error": "the body must be a JSON object"})
FINITE = "must be a finite number"
NUMBER = "must be a number"

# (what it is, body, headers, expected status and body)
INVALID: list[tuple[str, bytes, dict[str, str], tuple[int, Json]]] = [
    ("truncated JSON", b'{"load_p_mw": 0.2', JSON, NOT_JSON),
    ("single quotes", b"{'load_p_mw': 0.2}", JSON, NOT_JSON),
    ("missing value", b'{"load_p_mw": }', JSON, NOT_JSON),
    ("trailing garbage", b"{} x", JSON, NOT_JSON),
    ("not UTF-8", b'{"load_p_mw": "\xff"}', JSON, NOT_JSON),
    ("nested too deep", b"[" * 10_000, JSON, (400, {"error": "the body is nested too deeply (more than 64 levels)"})),
    ("array", b"[]", JSON, NOT_OBJECT),
    ("array of an object", b'[{"load_p_mw": 0.2}]', JSON, NOT_OBJECT),
    ("string", b'"load_p_mw"', JSON, NOT_OBJECT),
    ("number", b"0.2", JSON, NOT_OBJECT),
    ("null", b"null", JSON, NOT_OBJECT),
    ("boolean", b"true", JSON, NOT_OBJECT),
    ("NaN", b'{"load_p_mw": NaN}', JSON, refused({"load_p_mw": FINITE})),
    ("Infinity", b'{"load_q_mvar": Infinity}', JSON, refused({"load_q_mvar": FINITE})),
    ("-Infinity", b'{"ext_grid_vm_pu": -Infinity}', JSON, refused({"ext_grid_vm_pu": FINITE})),
    ("1e999", b'{"line_length_km": 1e999}', JSON, refused({"line_length_km": FINITE})),
    ("-1e999", b'{"load_p_mw": -1e999}', JSON, refused({"load_p_mw": FINITE})),
    ("numeric string", b'{"load_p_mw": "0.2"}', JSON, refused({"load_p_mw": NUMBER})),
    ("boolean value", b'{"load_q_mvar": true}', JSON, refused({"load_q_mvar": NUMBER})),
    ("null value", b'{"ext_grid_vm_pu": null}', JSON, refused({"ext_grid_vm_pu": NUMBER})),
    ("object value", b'{"line_length_km": {"km": 1}}', JSON, refused({"line_length_km": NUMBER})),
    ("array value", b'{"load_p_mw": [0.2]}', JSON, refused({"load_p_mw": NUMBER})),
    ("P above", b'{"load_p_mw": 1000.0000000001}', JSON, refused({"load_p_mw": "must be <= 1000"})),
    ("P below", b'{"load_p_mw": -1001}', JSON, refused({"load_p_mw": "must be >= -1000"})),
    ("P huge integer", b'{"load_p_mw": 1' + b"0" * 40 + b"}", JSON, refused({"load_p_mw": "must be <= 1000"})),
    ("Q above", b'{"load_q_mvar": 1000.5}', JSON, refused({"load_q_mvar": "must be <= 1000"})),
    ("Q below", b'{"load_q_mvar": -1000.0000000001}', JSON, refused({"load_q_mvar": "must be >= -1000"})),
    ("vm below", b'{"ext_grid_vm_pu": 0.4999999}', JSON, refused({"ext_grid_vm_pu": "must be >= 0.5"})),
    ("vm zero", b'{"ext_grid_vm_pu": 0}', JSON, refused({"ext_grid_vm_pu": "must be >= 0.5"})),
    ("vm above", b'{"ext_grid_vm_pu": 1.5000001}', JSON, refused({"ext_grid_vm_pu": "must be <= 1.5"})),
    ("length 0", b'{"line_length_km": 0}', JSON, refused({"line_length_km": "must be >= 0.001"})),
    ("length -0.0", b'{"line_length_km": -0.0}', JSON, refused({"line_length_km": "must be >= 0.001"})),
    ("length 1e-400", b'{"line_length_km": 1e-400}', JSON, refused({"line_length_km": "must be >= 0.001"})),
    ("length 5e-324", b'{"line_length_km": 5e-324}', JSON, refused({"line_length_km": "must be >= 0.001"})),
    ("length below a metre", b'{"line_length_km": 0.000999}', JSON, refused({"line_length_km": "must be >= 0.001"})),
    ("length negative", b'{"line_length_km": -0.1}', JSON, refused({"line_length_km": "must be >= 0.001"})),
    ("length above", b'{"line_length_km": 100.001}', JSON, refused({"line_length_km": "must be <= 100"})),
    ("unknown key", b'{"load_p_kw": 100}', JSON, refused({"load_p_kw": "unknown field"})),
    (
        "unknown key beside a valid one",
        b'{"load_p_mw": 0.2, "Load_P_MW": 0.2}',
        JSON,
        refused({"Load_P_MW": "unknown field"}),
    ),
    (
        "several bad fields",
        b'{"bogus": 1, "line_length_km": 0, "ext_grid_vm_pu": "high", "load_p_mw": 5000, "load_q_mvar": NaN}',
        JSON,
        # declared fields in declaration order, then unknown keys
        refused(
            {
                "load_p_mw": "must be <= 1000",
                "load_q_mvar": FINITE,
                "ext_grid_vm_pu": NUMBER,
                "line_length_km": "must be >= 0.001",
                "bogus": "unknown field",
            }
        ),
    ),
    (
        "text/plain",
        b'{"load_p_mw": 0.2}',
        {"Content-Type": "text/plain"},
        (415, {"error": "send the inputs as a JSON object (application/json); got text/plain"}),
    ),
    (
        "a form",
        b"load_p_mw=0.2",
        {"Content-Type": "application/x-www-form-urlencoded"},
        (
            415,
            {"error": "send the inputs as a JSON object (application/json); got application/x-www-form-urlencoded"},
        ),
    ),
    (
        "no content type",
        b'{"load_p_mw": 0.2}',
        {},
        (415, {"error": "send the inputs as a JSON object (application/json); got application/octet-stream"}),
    ),
]


async def test_invalid_bodies_are_refused_without_a_trace(sim: Client) -> None:
    """Each refused body: the right status and fields, no row, no push, the latest unchanged.
    After each, a valid run is made: a subscriber's next message must be that run, so nothing
    was pushed in between."""
    runs: list[Json] = []
    async with sim.ws_connect("/simulator-subscribe") as ws:
        snapshot = await next_json(ws)
        assert snapshot["id"] is None  # nothing has run yet
        for i, (what, raw, headers, (status, expected)) in enumerate(INVALID):
            latest_before = await latest(sim)
            resp = await sim.post("/run-simulation", data=raw, headers=headers)
            assert resp.status == status, what
            assert resp.content_type == "application/json", what
            assert await resp.json() == expected, what
            assert await history(sim) == [run_row(r) for r in reversed(runs)], what
            assert await latest(sim) == latest_before, what
            valid = await run(sim, {"load_p_mw": 0.05 + i / 1000})
            assert await next_json(ws) == valid, what
            runs.append(valid)
    assert [r["id"] for r in runs] == list(range(1, len(INVALID) + 1))  # no id was taken either


async def test_a_diverging_run_is_stored_but_not_published(sim: Client, redis_client: aioredis.Redis) -> None:
    """422 with the stored run; in history with its status; latest, Redis and subscribers keep
    the previous converged run; the next valid run works and is pushed."""
    async with sim.ws_connect("/simulator-subscribe") as ws:
        await next_json(ws)  # the snapshot
        first = await run(sim)
        assert await next_json(ws) == first

        resp = await post(sim, {"load_p_mw": 1000})
        assert resp.status == 422
        body = await resp.json()
        _, message = solve(SEED | {"load_p_mw": 1000})
        assert message
        assert list(body) == ["error", "simulation"]
        assert body["error"].startswith(NOT_CONVERGED_PREFIX)
        assert body["error"] == NOT_CONVERGED_PREFIX + message
        diverged = body["simulation"]
        assert list(diverged) == RUN_KEYS
        assert diverged["id"] == first["id"] + 1
        assert (diverged["status"], diverged["active_power"], diverged["reactive_power"]) == (
            "not_converged",
            None,
            None,
        )
        assert diverged["inputs"] == SEED | {"load_p_mw": 1000}
        assert diverged["message"] == message
        assert diverged["launched_at"] > first["launched_at"]
        assert await stored(sim, diverged["id"]) == diverged | {"details": None}

        assert await history(sim) == [diverged, run_row(first)]
        assert json.loads(await redis_client.get(LATEST_KEY)) == first
        active = {"id": first["id"], "active_power": first["active_power"], "launched_at": first["launched_at"]}
        assert await latest(sim) == (200, active)

        after = await run(sim, {"load_p_mw": 0.12})
        assert after["id"] == diverged["id"] + 1
        assert (after["status"], after["active_power"]) == ("converged", 0.12)
        assert await next_json(ws) == after  # the diverged run was never pushed

    assert await history(sim) == [run_row(after), diverged, run_row(first)]
    assert await history(sim, "not_converged") == [diverged]
    assert await history(sim, "converged") == [run_row(after), run_row(first)]
    resp = await sim.get("/simulations", params={"status": "bogus"})
    assert resp.status == 400
    assert await resp.json() == {
        "error": "status must be one of converged, not_converged, timed_out, failed, got 'bogus'"
    }
    assert json.loads(await redis_client.get(LATEST_KEY)) == after


def undervoltage_buses(details: Json) -> list[int]:
    return [v["index"] for v in details["violations"] if v["kind"] == "undervoltage"]


async def test_violations_of_the_default_band(sim: Client) -> None:
    """The seed overloads its line, and only that; a low grid voltage puts exactly the buses
    pandapower finds below 0.95 pu into undervoltage; a high one, those above 1.05 into overvoltage."""
    default = (await stored(sim, (await run(sim))["id"]))["details"]
    loading = solved(SEED).res_line.loading_percent[0]
    assert default["violations"] == [
        {"element": "line", "index": 0, "name": "Line", "kind": "overload", "value": loading, "limit": 100.0}
    ]
    assert 117.5 < loading < 118.0

    # 0.93: every bus is low; 0.96: the grid's own bus is within the band, the other two are not.
    for vm, low_buses in ((0.93, [0, 1, 2]), (0.96, [1, 2])):
        net = solved(SEED | {"ext_grid_vm_pu": vm})
        assert [int(i) for i, v in net.res_bus.vm_pu.items() if v < 0.95] == low_buses  # pandapower's own
        details = (await stored(sim, (await run(sim, {"ext_grid_vm_pu": vm}))["id"]))["details"]
        assert undervoltage_buses(details) == low_buses
        assert all(v["limit"] == 0.95 for v in details["violations"] if v["element"] == "bus")
        assert details["violations"] == expected_violations(net)

    net = solved(SEED | {"ext_grid_vm_pu": 1.06})
    details = (await stored(sim, (await run(sim, {"ext_grid_vm_pu": 1.06}))["id"]))["details"]
    high = [v["index"] for v in details["violations"] if v["kind"] == "overvoltage"]
    assert high == [int(i) for i, v in net.res_bus.vm_pu.items() if v > 1.05]
    assert 0 < len(high) < 3  # some buses, not all: the band is checked bus by bus
    assert details["violations"] == expected_violations(net)


async def test_the_voltage_band_comes_from_settings(make_client: ClientFactory) -> None:
    """POWERSIM_VOLTAGE_BAND (here 0.8 to 1.2) is the band buses are held to."""
    band = (0.8, 1.2)
    client = await make_client(simulation=SIMULATION, voltage_band=band)
    details = (await stored(client, (await run(client, {"ext_grid_vm_pu": 0.93}))["id"]))["details"]
    assert undervoltage_buses(details) == []  # all three are below 0.95 but above 0.8
    assert [v["element"] for v in details["violations"]] == ["line"]

    net = solved(SEED | {"ext_grid_vm_pu": 0.85})
    low = [int(i) for i, v in net.res_bus.vm_pu.items() if v < 0.8]
    assert 0 < len(low) < 3
    details = (await stored(client, (await run(client, {"ext_grid_vm_pu": 0.85}))["id"]))["details"]
    assert undervoltage_buses(details) == low
    assert details["violations"] == expected_violations(net, band)
    assert_details(details, expected_details(net, band))


async def test_a_simulation_without_inputs_refuses_them(client: Client) -> None:
    """tests.sims:fixed takes no inputs: `{}`, no body, and the seed values (which GraphQL's
    defaults send) run it with inputs null; any other value is refused with 422, naming only
    the fields that differ, and nothing is stored."""
    empty = await run(client, {})
    no_body = await run(client)
    seed_values = await run(client, {"load_p_mw": 0.1, "ext_grid_vm_pu": 1.02})
    for answer in (empty, no_body, seed_values):
        assert (answer["active_power"], answer["reactive_power"], answer["status"]) == (0.1, 0.05, "converged")
        assert answer["inputs"] is None
    assert (await stored(client, empty["id"]))["details"] is None
    not_taken = "not taken by this simulation (tests.sims:fixed)"
    for body, fields in (
        ({"load_p_mw": 0.2}, {"load_p_mw": not_taken}),
        ({"load_p_mw": 0.2, "load_q_mvar": 0.05}, {"load_p_mw": not_taken}),
        ({"line_length_km": 0.2, "ext_grid_vm_pu": 1.0}, {"ext_grid_vm_pu": not_taken, "line_length_km": not_taken}),
    ):
        resp = await post(client, body)
        assert (resp.status, await resp.json()) == refused(fields), body
    assert await history(client) == [run_row(seed_values), run_row(no_body), run_row(empty)]
    assert (await latest(client))[1]["id"] == seed_values["id"]
