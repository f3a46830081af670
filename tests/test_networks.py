"""Runs that name their network, end to end: the real app over HTTP, real worker processes, real
Redis and SQLite. Every number is compared with pandapower run here, in the test process, on a
network built (or modified) here; uploads are checked for what is stored, refused and kept; the
run time limit and the memory cap are met by real runs that overrun them.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import hashlib
import importlib
import json
import math
import os
import re
import uuid
import warnings
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from powersim.app import create_app
from powersim.errors import StartupError
from powersim.keys import POWERSIM
from powersim.settings import Settings

from .conftest import ClientFactory
from .waiting import eventually

# pandapower and test_sim (which imports it) by name: pandapower ships no type information, and
# mypy would otherwise check them as untyped imports.
pp: Any = importlib.import_module("pandapower")
pn: Any = importlib.import_module("pandapower.networks")
test_sim: Any = importlib.import_module("test_sim")

Client = TestClient[Any, Any]
Json = dict[str, Any]

# The lists, written out here rather than read from powersim, so that the test holds the
# code to the issue and not to itself.
CATALOG_IDS = [
    "seed",
    "case9",
    "case14",
    "case30",
    "case57",
    "case118",
    "case300",
    "case1354pegase",
    "case2869pegase",
    "case9241pegase",
    "mv_oberrhein",
    "cigre_mv",
]
SEED_INPUTS = ["load_p_mw", "load_q_mvar", "ext_grid_vm_pu", "line_length_km"]
NETWORK_INPUTS = ["load_scaling", "sgen_scaling", "ext_grid_vm_pu"]
BUILDERS: dict[str, Callable[[], Any]] = {
    "seed": lambda: test_sim.build_network(),
    "case9": lambda: pn.case9(),
    "case14": lambda: pn.case14(),
    "case118": lambda: pn.case118(),
    "case1354pegase": lambda: pn.case1354pegase(),
    "mv_oberrhein": lambda: pn.mv_oberrhein(),
    "cigre_mv": lambda: pn.create_cigre_network_mv(),
}
# What GET /networks counts, as sums of the lengths of pandapower's tables.
COUNTED = {
    "buses": ("bus",),
    "lines": ("line",),
    "transformers": ("trafo", "trafo3w"),
    "loads": ("load",),
    "generators": ("gen", "sgen"),
    "external_grids": ("ext_grid",),
}
ENTRY_KEYS = ["id", "name", "source", "counts", "inputs"]
UPLOAD_KEYS = [*ENTRY_KEYS, "sha256", "size_bytes", "created_at"]
COMPACT_KEYS = ["id", "active_power", "reactive_power", "launched_at", "status", "network", "inputs"]
RUN_KEYS = [*COMPACT_KEYS, "network_sha256", "message"]
DETAIL_KEYS = ["buses", "lines", "transformers", "external_grids", "losses", "violations"]
# details: (section, pandapower table, columns of the element table, columns of its result table)
SECTIONS = (
    ("buses", "bus", ("vn_kv",), ("vm_pu", "va_degree", "p_mw", "q_mvar")),
    ("lines", "line", (), ("loading_percent", "p_from_mw", "q_from_mvar", "pl_mw", "ql_mvar", "i_ka")),
    ("transformers", "trafo", (), ("loading_percent", "pl_mw", "ql_mvar")),
    ("external_grids", "ext_grid", (), ("p_mw", "q_mvar")),
)
DEFAULT_BAND = (0.95, 1.05)
# The same library on the same network with the same inputs: anything beyond rounding is a bug.
VM_TOLERANCE = 1e-9  # per unit
TOLERANCE = 1e-9  # relative, for degrees, MW, MVAr, kA and percent
JSON_HEADERS = {"Content-Type": "application/json"}
ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


pytestmark = pytest.mark.usefixtures("quiet_pandapower")  # numba is not installed on purpose


# ---- pandapower, directly ----


def build(network_id: str) -> Any:
    with warnings.catch_warnings():  # pandapower's stored files predate its 3.0 tap tables
        warnings.filterwarnings("ignore", "tap_dependency_table is missing", DeprecationWarning)
        return BUILDERS[network_id]()


def solve(net: Any, inputs: Mapping[str, float]) -> Any:
    """A copy of `net` solved with the run's inputs, applied the way pandapower's own `scaling`
    column works: a factor on each element's scaling, which runpp multiplies into p and q."""
    net = copy.deepcopy(net)
    net.load["scaling"] = net.load["scaling"] * inputs.get("load_scaling", 1.0)
    net.sgen["scaling"] = net.sgen["scaling"] * inputs.get("sgen_scaling", 1.0)
    if "ext_grid_vm_pu" in inputs:
        net.ext_grid["vm_pu"] = inputs["ext_grid_vm_pu"]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "tap_dependency_table is missing", DeprecationWarning)
        pp.runpp(net)
    return net


def _number(cell: Any) -> float | None:
    value = float(cell)
    return value if math.isfinite(value) else None


def _name(cell: Any) -> str | None:
    if cell is None or (isinstance(cell, float) and math.isnan(cell)):
        return None
    return str(cell)


def load_totals(net: Any) -> tuple[float, float]:
    serving = net.load["in_service"].astype(bool)
    return math.fsum(net.res_load.p_mw[serving]), math.fsum(net.res_load.q_mvar[serving])


def expected_details(net: Any, band: tuple[float, float] = DEFAULT_BAND) -> Json:
    details: Json = {}
    for key, table, own, results in SECTIONS:
        rows = []
        for label in net[table].index:
            row: Json = {"index": int(label), "name": _name(net[table].at[label, "name"])}
            row |= {column: _number(net[table].at[label, column]) for column in own}
            row |= {column: _number(net[f"res_{table}"].at[label, column]) for column in results}
            rows.append(row)
        details[key] = rows
    details["losses"] = {
        "p_mw": math.fsum([*net.res_line.pl_mw, *net.res_trafo.pl_mw]),
        "q_mvar": math.fsum([*net.res_line.ql_mvar, *net.res_trafo.ql_mvar]),
    }
    details["violations"] = expected_violations(net, band)
    return details


def _limit(net: Any, table: str, column: str, label: Any, default: float) -> float:
    if column not in net[table].columns or _number(net[table].at[label, column]) is None:
        return default
    return float(net[table].at[label, column])


def expected_violations(net: Any, band: tuple[float, float]) -> list[Json]:
    """Buses outside their own min/max_vm_pu (the band where unset), then lines, then
    transformers over their max_loading_percent (100 where unset); in-service elements only."""
    found: list[Json] = []
    for label in net.bus.index:
        vm = _number(net.res_bus.at[label, "vm_pu"])
        if vm is None or not net.bus.at[label, "in_service"]:
            continue
        low = _limit(net, "bus", "min_vm_pu", label, band[0])
        high = _limit(net, "bus", "max_vm_pu", label, band[1])
        kind, limit = ("undervoltage", low) if vm < low else ("overvoltage", high) if vm > high else (None, 0.0)
        if kind is not None:
            name = _name(net.bus.at[label, "name"])
            found.append(
                {"element": "bus", "index": int(label), "name": name, "kind": kind, "value": vm, "limit": limit}
            )
    for element, table in (("line", "line"), ("transformer", "trafo")):
        for label in net[table].index:
            loading = _number(net[f"res_{table}"].at[label, "loading_percent"])
            limit = _limit(net, table, "max_loading_percent", label, 100.0)
            if loading is not None and net[table].at[label, "in_service"] and loading > limit:
                name = _name(net[table].at[label, "name"])
                found.append(
                    {"element": element, "index": int(label), "name": name, "kind": "overload"}
                    | {"value": loading, "limit": limit}
                )
    return found


def assert_rows(actual: list[Json], expected: list[Json], section: str) -> None:
    assert [row["index"] for row in actual] == [row["index"] for row in expected], section
    for got, want in zip(actual, expected, strict=True):
        where = f"{section}[{want['index']}]"
        assert list(got) == list(want), where
        for key, value in want.items():
            if value is None or isinstance(value, int | str):
                assert got[key] == value, f"{where}.{key}"
            elif key == "vm_pu":
                assert got[key] == pytest.approx(value, rel=0, abs=VM_TOLERANCE), f"{where}.{key}"
            else:
                assert got[key] == pytest.approx(value, rel=TOLERANCE, abs=TOLERANCE), f"{where}.{key}"


def assert_details(actual: Json, expected: Json) -> None:
    """Field by field: every row of every section, the losses, the violations."""
    assert list(actual) == DETAIL_KEYS
    for key, *_ in SECTIONS:
        assert_rows(actual[key], expected[key], key)
    assert actual["losses"] == pytest.approx(expected["losses"], rel=TOLERANCE, abs=TOLERANCE)
    assert_rows(actual["violations"], expected["violations"], "violations")


def counts_of(net: Any) -> dict[str, int]:
    return {key: sum(len(net[table]) for table in tables if table in net) for key, tables in COUNTED.items()}


def inputs_of(net: Any) -> list[str]:
    """The network inputs that change something: loads (static generators) in service with power
    and a non-zero scaling; an external grid in service."""

    def scaled(table: Any) -> bool:
        powered = (table.p_mw != 0) | (table.q_mvar != 0)
        return bool((table.in_service.astype(bool) & (table.scaling != 0) & powered).any())

    found = {
        "load_scaling": scaled(net.load),
        "sgen_scaling": scaled(net.sgen),
        "ext_grid_vm_pu": bool(net.ext_grid.in_service.astype(bool).any()),
    }
    return [name for name in NETWORK_INPUTS if found[name]]


# ---- the API ----


async def post_run(client: Client, body: Json) -> tuple[int, Json]:
    resp = await client.post("/run-simulation", json=body)
    answer: Json = await resp.json()
    return resp.status, answer


async def run(client: Client, body: Json) -> Json:
    status, answer = await post_run(client, body)
    assert status == 200, answer
    assert list(answer) == COMPACT_KEYS
    assert answer["status"] == "converged"
    return answer


async def get_json(client: Client, path: str, status: int = 200) -> Any:
    resp = await client.get(path)
    body = await resp.json()
    assert resp.status == status, body
    return body


async def stored(client: Client, run_id: int) -> Json:
    body: Json = await get_json(client, f"/simulations/{run_id}")
    assert list(body) == [*RUN_KEYS, "details"]
    return body


async def history(client: Client, network: str | None = None) -> list[Json]:
    body: Json = await get_json(client, "/simulations" + (f"?network={network}" if network else ""))
    assert body["next_before"] is None
    simulations: list[Json] = body["simulations"]
    return simulations


async def upload(client: Client, document: bytes, name: str | None = None) -> tuple[int, Json, str | None]:
    resp = await client.post("/networks", params={"name": name} if name else {}, data=document, headers=JSON_HEADERS)
    body: Json = await resp.json()
    return resp.status, body, resp.headers.get("Location")


async def health(client: Client) -> Json:
    resp = await client.get("/healthz")
    body: Json = await resp.json()
    return body


async def wait_for_workers(client: Client, workers: int, within: float = 20.0) -> None:
    """Poll /healthz until it reports `workers` (a replacement warms in the background)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while (answer := await health(client))["workers"] != workers:
        if loop.time() > deadline:
            pytest.fail(f"/healthz still says {answer} after {within} s, not {workers} workers")
        await asyncio.sleep(0.1)


def spawned_workers() -> list[int]:
    """Pids of this process's live (not zombie) children started by multiprocessing's spawn:
    the pool's workers, as the operating system sees them."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:  # gone meanwhile
            continue
        state, ppid = stat.rpartition(")")[2].split()[:2]
        if int(ppid) == os.getpid() and state != "Z" and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return found


# ---- 1. catalog runs are pandapower's own ----

# Inputs per network; sgen_scaling only where static generators in service have power (case1354pegase).
CATALOG_CASES: dict[str, list[dict[str, float]]] = {
    "case9": [{"load_scaling": 1.2}, {"ext_grid_vm_pu": 1.04}, {"load_scaling": 0.5, "ext_grid_vm_pu": 0.98}],
    "case118": [{"load_scaling": 1.2}, {"ext_grid_vm_pu": 1.04}],
    "case1354pegase": [
        {"load_scaling": 1.1},
        {"sgen_scaling": 2.0},
        {"ext_grid_vm_pu": 1.04},
        {"load_scaling": 1.1, "sgen_scaling": 0.5, "ext_grid_vm_pu": 1.03},
    ],
}


async def check_run(client: Client, network_id: str, inputs: dict[str, float], expected: Any) -> Json:
    """One run over HTTP, compared with pandapower's solved `expected`: the answer, the stored
    run and its details, the latest result."""
    answer = await run(client, {"network": network_id, **inputs})
    assert (answer["network"], answer["inputs"]) == (network_id, inputs)
    active, reactive = load_totals(expected)
    assert answer["active_power"] == pytest.approx(active, rel=TOLERANCE, abs=TOLERANCE)
    assert answer["reactive_power"] == pytest.approx(reactive, rel=TOLERANCE, abs=TOLERANCE)
    row = await stored(client, answer["id"])
    assert {key: row[key] for key in COMPACT_KEYS} == answer
    assert (row["network_sha256"], row["message"]) == (None, None)
    assert_details(row["details"], expected_details(expected))
    latest = await get_json(client, "/active-power")
    assert latest == {"id": answer["id"], "active_power": answer["active_power"], "launched_at": answer["launched_at"]}
    return row


def assert_input_took_effect(inputs: dict[str, float], default: Json, changed: Json, nets: tuple[Any, Any]) -> None:
    """Each input moves what it drives away from the default run; `nets` are pandapower's
    solved networks of both runs."""
    default_net, changed_net = nets
    if "load_scaling" in inputs:  # the loads draw constant power: the total scales exactly
        assert changed["active_power"] == pytest.approx(default["active_power"] * inputs["load_scaling"], rel=1e-12)
        assert changed["active_power"] != pytest.approx(default["active_power"], rel=1e-3)
    if "ext_grid_vm_pu" in inputs:
        grid_buses = {int(bus) for bus in changed_net.ext_grid.bus}
        for bus, before in zip(changed["details"]["buses"], default["details"]["buses"], strict=True):
            if bus["index"] in grid_buses:
                assert bus["vm_pu"] == pytest.approx(inputs["ext_grid_vm_pu"], rel=0, abs=VM_TOLERANCE)
                assert before["vm_pu"] != pytest.approx(inputs["ext_grid_vm_pu"], rel=0, abs=1e-6)
    if "sgen_scaling" in inputs:
        sgen_change = math.fsum(changed_net.res_sgen.p_mw) - math.fsum(default_net.res_sgen.p_mw)
        assert abs(sgen_change) > 100  # MW
        grid_change = math.fsum(g["p_mw"] for g in changed["details"]["external_grids"]) - math.fsum(
            g["p_mw"] for g in default["details"]["external_grids"]
        )
        if len(inputs) == 1:  # the external grid takes up the generators' change, give or take losses
            assert grid_change == pytest.approx(-sgen_change, rel=0.05)
    moved = [
        abs(bus["va_degree"] - before["va_degree"])
        for bus, before in zip(changed["details"]["buses"], default["details"]["buses"], strict=True)
    ]
    assert max(moved) > 1e-3  # degrees


@pytest.mark.parametrize("network_id", list(CATALOG_CASES))
async def test_catalog_runs_are_pandapowers_own(make_client: ClientFactory, network_id: str) -> None:
    """The default run, a run per input (each moving what it drives), and a default run after
    them on the same cached network (one worker): all equal pandapower's run of a fresh network."""
    client = await make_client(workers=1)
    net = build(network_id)
    fresh_default = solve(net, {})
    default = await check_run(client, network_id, {}, fresh_default)
    ids = [default["id"]]
    for inputs in CATALOG_CASES[network_id]:
        expected = solve(net, inputs)
        changed = await check_run(client, network_id, inputs, expected)
        assert_input_took_effect(inputs, default, changed, (fresh_default, expected))
        ids.append(changed["id"])
    again = await check_run(client, network_id, {}, fresh_default)  # nothing of the runs before
    ids.append(again["id"])
    assert (again["active_power"], again["reactive_power"]) == (default["active_power"], default["reactive_power"])
    listed = await history(client, network_id)
    assert [r["id"] for r in listed] == ids[::-1]
    assert [r["inputs"] for r in listed] == [{}, *CATALOG_CASES[network_id][::-1], {}]
    assert {r["network"] for r in listed} == {network_id}
    assert await history(client, "case14") == []


async def test_a_catalog_run_that_diverges_is_stored_not_published(make_client: ClientFactory) -> None:
    """pandapower's own non-convergence, with its message; the network is built anew for the
    next run, which is pandapower's run of a fresh network again."""
    client = await make_client(workers=1)
    net = build("case9")
    diverged = copy.deepcopy(net)
    diverged.load["scaling"] = diverged.load["scaling"] * 3
    with pytest.raises(pp.LoadflowNotConverged) as caught:
        pp.runpp(diverged)
    first = await check_run(client, "case9", {}, solve(net, {}))
    status, body = await post_run(client, {"network": "case9", "load_scaling": 3})
    assert status == 422, body
    assert body["error"] == f"power flow did not converge: {caught.value}"
    row = body["simulation"]
    assert (row["status"], row["active_power"], row["reactive_power"]) == ("not_converged", None, None)
    assert (row["network"], row["inputs"], row["message"]) == ("case9", {"load_scaling": 3.0}, str(caught.value))
    assert await stored(client, row["id"]) == row | {"details": None}
    assert (await get_json(client, "/active-power"))["id"] == first["id"]
    again = await check_run(client, "case9", {}, solve(net, {}))
    assert (again["active_power"], again["reactive_power"]) == (first["active_power"], first["reactive_power"])
    assert [r["status"] for r in await history(client, "case9")] == ["converged", "not_converged", "converged"]


# ---- 2. inputs that do not apply ----

SEED_ONLY = "applies to the seed network only"
NOT_ON_SEED = "applies to catalog and uploaded networks, not the seed"
NO_SGEN = "does not apply: no static generator in service on this network draws or gives power"
BAD_ID = "must be a network id: up to 64 lower-case letters, digits, '_', '.' or '-'"

REFUSED: list[tuple[Json, dict[str, str]]] = [
    ({"network": "case9", "load_p_mw": 0.2}, {"load_p_mw": SEED_ONLY}),
    (
        {"network": "case118", "load_p_mw": 1, "load_q_mvar": 1, "line_length_km": 1, "ext_grid_vm_pu": 1.0},
        {"line_length_km": SEED_ONLY, "load_p_mw": SEED_ONLY, "load_q_mvar": SEED_ONLY},
    ),
    ({"load_scaling": 2}, {"load_scaling": NOT_ON_SEED}),
    (
        {"network": "seed", "sgen_scaling": 1, "load_scaling": 1},
        {"load_scaling": NOT_ON_SEED, "sgen_scaling": NOT_ON_SEED},
    ),
    ({"network": "case9", "sgen_scaling": 2}, {"sgen_scaling": NO_SGEN}),
    ({"network": "case9", "sgen_scaling": 1, "load_scaling": 1.1}, {"sgen_scaling": NO_SGEN}),
    ({"network": "mv_oberrhein", "sgen_scaling": 1.5}, {"sgen_scaling": NO_SGEN}),  # generators at scaling 0
    ({"network": "cigre_mv", "sgen_scaling": 0.5}, {"sgen_scaling": NO_SGEN}),  # no generators at all
    ({"network": "case10"}, {"network": "no network 'case10': see GET /networks"}),
    ({"network": "upload-7", "load_scaling": 2}, {"network": "no network 'upload-7': see GET /networks"}),
    ({"network": "Case9"}, {"network": BAD_ID}),
    ({"network": "../case9"}, {"network": BAD_ID}),
    ({"network": ""}, {"network": BAD_ID}),
    ({"network": "x" * 65}, {"network": BAD_ID}),
    ({"network": 9}, {"network": "must be a string"}),
]


async def test_inputs_that_do_not_apply_are_refused_without_a_trace(make_client: ClientFactory) -> None:
    """422 naming every field that does not apply; nothing stored, nothing published; the next
    valid run takes the first id."""
    client = await make_client(workers=1)
    for body, fields in REFUSED:
        status, answer = await post_run(client, body)
        assert (status, answer) == (422, {"error": f"invalid input: {', '.join(fields)}", "fields": fields}), body
    assert await history(client) == []
    for path in ("/active-power", "/reactive-power"):
        assert await get_json(client, path, 404) == {"error": "no simulation has run yet"}
    valid = await run(client, {"network": "case9", "load_scaling": 1.1})  # after two refusals on case9
    assert valid["id"] == 1
    assert valid["active_power"] == pytest.approx(315.0 * 1.1, rel=1e-12)  # case9's loads draw 315 MW


# ---- 3. the list of networks ----


async def test_the_networks_are_listed_with_their_counts_and_inputs(make_client: ClientFactory) -> None:
    """The twelve catalog networks in order, then the uploads in order; counts are the lengths of
    pandapower's own tables; inputs are those that change something on each network."""
    client = await make_client(workers=2, simulation="test_sim:run_network")
    nets = {network_id: build(network_id) for network_id in ("seed", "case9", "case118", "mv_oberrhein", "cigre_mv")}
    modified = build("case9")
    modified.load.loc[modified.load.index[0], "in_service"] = False
    documents = [pp.to_json(nets["seed"]).encode(), pp.to_json(modified).encode()]
    before = datetime.now(UTC)
    for number, (document, name) in enumerate(zip(documents, ["three buses", None], strict=True), 1):
        status, entry, location = await upload(client, document, name)
        assert (status, entry["id"], location) == (201, f"upload-{number}", f"/networks/upload-{number}"), entry
    status, again, _ = await upload(client, documents[0], "the same bytes, another name")
    assert (status, again["id"], again["name"]) == (200, "upload-1", "three buses")
    after = datetime.now(UTC)

    listed = (await get_json(client, "/networks"))["networks"]
    assert [entry["id"] for entry in listed] == [*CATALOG_IDS, "upload-1", "upload-2"]
    assert [entry["source"] for entry in listed] == ["builtin"] + ["catalog"] * 11 + ["upload"] * 2
    entries = {entry["id"]: entry for entry in listed}
    for entry in listed[:12]:
        assert list(entry) == ENTRY_KEYS
        assert entry["name"]
        assert list(entry["counts"]) == list(COUNTED)
        assert entry["counts"]["buses"] > 0
        if entry["id"] != "seed":  # an ordered part of the network inputs
            assert entry["inputs"] == [name for name in NETWORK_INPUTS if name in entry["inputs"]], entry["id"]
        if entry["id"].startswith("case"):  # caseN has N buses
            assert entry["counts"]["buses"] == int(entry["id"][4:].removesuffix("pegase")), entry["id"]
            assert {"load_scaling", "ext_grid_vm_pu"} <= set(entry["inputs"]), entry["id"]
    for network_id, net in nets.items():
        entry = entries[network_id]
        assert entry["counts"] == counts_of(net), network_id
        assert entry["inputs"] == (SEED_INPUTS if network_id == "seed" else inputs_of(net)), network_id
    assert entries["mv_oberrhein"]["inputs"] == ["load_scaling", "ext_grid_vm_pu"]  # its generators ship at 0
    assert entries["mv_oberrhein"]["counts"]["generators"] == 153
    assert entries["case1354pegase"]["inputs"] == NETWORK_INPUTS

    for number, (document, net, name) in enumerate(
        zip(documents, [nets["seed"], modified], ["three buses", None], strict=True), 1
    ):
        entry = entries[f"upload-{number}"]
        sha256 = hashlib.sha256(document).hexdigest()
        assert list(entry) == UPLOAD_KEYS
        assert entry["name"] == (name or f"upload {sha256[:12]}")
        assert (entry["sha256"], entry["size_bytes"]) == (sha256, len(document))
        assert entry["counts"] == counts_of(net)
        assert entry["inputs"] == inputs_of(net) == ["load_scaling", "ext_grid_vm_pu"]
        assert ISO_UTC.fullmatch(entry["created_at"])
        created = datetime.fromisoformat(entry["created_at"].replace("Z", "+00:00"))
        assert before <= created <= after
        assert await get_json(client, f"/networks/upload-{number}") == entry
    assert entries["upload-2"]["counts"]["loads"] == 3  # the load out of service still counts

    assert await get_json(client, "/networks/case9") == entries["case9"]
    assert await get_json(client, "/networks/seed") == entries["seed"]
    for path in ("/networks/case10", "/networks/upload-3", "/networks/case9/json", "/networks/upload-3/json"):
        await get_json(client, path, 404)
    refused = await client.delete("/networks/case9")
    assert (refused.status, (await refused.json())["error"]) == (
        400,
        "'case9' is part of the catalog: only uploads can be deleted",
    )


# ---- 4. an upload, from the first POST to after its deletion ----


def modified_case14() -> Any:
    net = build("case14")
    first = net.load.index[0]
    net.load.loc[first, "p_mw"] = net.load.at[first, "p_mw"] * 1.5
    net.line.loc[net.line.index[0], "length_km"] = 3.0
    return net


async def test_an_upload_round_trip(make_client: ClientFactory) -> None:
    """Stored once, run as modified (two workers: one has read it, one must be sent it), its
    document returned byte for byte, its runs listed by network; deleted, it can no longer be
    run, and its runs stay in the history."""
    client = await make_client(workers=2)
    net = modified_case14()
    document = pp.to_json(net).encode()
    sha256 = hashlib.sha256(document).hexdigest()
    for name in ("", " ", "a\nb", "x" * 201):  # refused before anything is read or stored
        resp = await client.post("/networks", params={"name": name}, data=document, headers=JSON_HEADERS)
        assert (resp.status, await resp.json()) == (400, {"error": "name must be 1 to 200 printable characters"})
    label = "case14, heavier first load, longer first line"
    # The same bytes twice at once (two workers read them): stored once.
    both = await asyncio.gather(upload(client, document, label), upload(client, document, label))
    assert sorted(status for status, _, _ in both) == [200, 201]
    (_, entry, location), (_, twin, twin_location) = both
    assert entry == twin
    assert (entry["id"], location, twin_location, entry["sha256"]) == (
        "upload-1",
        "/networks/upload-1",
        "/networks/upload-1",
        sha256,
    )
    status, again, location = await upload(client, document, "once more")
    assert (status, again, location) == (200, entry, "/networks/upload-1")

    runs = []
    for inputs in ({}, {"load_scaling": 1.3}, {"ext_grid_vm_pu": 1.01}, {}):  # each worker runs it
        expected = solve(net, inputs)
        answer = await run(client, {"network": "upload-1", **inputs})
        assert (answer["network"], answer["inputs"]) == ("upload-1", inputs)
        active, reactive = load_totals(expected)
        assert answer["active_power"] == pytest.approx(active, rel=TOLERANCE)
        assert answer["reactive_power"] == pytest.approx(reactive, rel=TOLERANCE)
        row = await stored(client, answer["id"])
        assert (row["network_sha256"], row["message"]) == (sha256, None)
        assert_details(row["details"], expected_details(expected))
        runs.append(row)
    # the modification is what ran, not the catalog's case14
    assert runs[0]["active_power"] != pytest.approx(load_totals(solve(build("case14"), {}))[0], rel=1e-3)
    assert runs[1]["active_power"] == pytest.approx(runs[0]["active_power"] * 1.3, rel=1e-12)
    catalog_run = await run(client, {"network": "case14"})

    status, answer = await post_run(client, {"network": "upload-1", "sgen_scaling": 2, "load_p_mw": 1})
    assert (status, answer["fields"]) == (422, {"load_p_mw": SEED_ONLY})
    status, answer = await post_run(client, {"network": "upload-1", "sgen_scaling": 2, "load_scaling": 2})
    assert (status, answer["fields"]) == (
        422,
        {"sgen_scaling": "does not apply: no static generator in service on this network draws or gives power"},
    )

    resp = await client.get("/networks/upload-1/json")
    assert (resp.status, resp.content_type, await resp.read()) == (200, "application/json", document)
    listed = await history(client, "upload-1")
    assert [r["id"] for r in listed] == [r["id"] for r in runs[::-1]]
    assert {r["network_sha256"] for r in listed} == {sha256}
    assert [r["id"] for r in await history(client, "case14")] == [catalog_run["id"]]

    deleted = await client.delete("/networks/upload-1")
    assert (deleted.status, await deleted.read()) == (204, b"")
    for path in ("/networks/upload-1", "/networks/upload-1/json"):
        assert await get_json(client, path, 404) == {"error": "no network 'upload-1'"}
    assert (await client.delete("/networks/upload-1")).status == 404
    resp = await client.get("/simulations", params={"network": "Upload-1"})
    assert (resp.status, await resp.json()) == (400, {"error": "network must be a network id, got 'Upload-1'"})
    status, answer = await post_run(client, {"network": "upload-1"})
    expected_refusal = {"network": "no network 'upload-1': see GET /networks"}
    assert (status, answer) == (422, {"error": "invalid input: network", "fields": expected_refusal})
    everything = await history(client)
    assert [r["id"] for r in everything] == [catalog_run["id"], *[r["id"] for r in runs[::-1]]]
    for row in runs:
        assert await stored(client, row["id"]) == row
    assert [r["id"] for r in await history(client, "upload-1")] == [r["id"] for r in runs[::-1]]

    # The same bytes again: a new upload with a new id (a deleted id is never reused), no runs yet.
    status, renewed, location = await upload(client, document)
    assert (status, renewed["id"], location, renewed["sha256"]) == (201, "upload-2", "/networks/upload-2", sha256)
    assert await history(client, "upload-2") == []
    rerun = await run(client, {"network": "upload-2"})
    assert (rerun["active_power"], rerun["reactive_power"]) == (runs[0]["active_power"], runs[0]["reactive_power"])


# ---- 5. hostile uploads ----

SECRET = "TOP-SECRET-4b1d"


def with_attribute(document: Json, key: str, value: Any) -> bytes:
    changed = copy.deepcopy(document)
    changed["_object"][key] = value
    return json.dumps(changed).encode()


def with_bus_name(document: Json, value: Any) -> tuple[bytes, str]:
    """The network with the first bus's name replaced; and the JSON path of that cell."""
    changed = copy.deepcopy(document)
    table = json.loads(changed["_object"]["bus"]["_object"])
    column = table["columns"].index("name")
    table["data"][0][column] = value
    changed["_object"]["bus"]["_object"] = json.dumps(table)
    return json.dumps(changed).encode(), f"$._object.bus._object(json).data[0][{column}]"


LONE = "\ud800"  # json.dumps writes it as the escape \ud800


def wide_table(document: Json, columns: int) -> bytes:
    """The bus table with `columns` extra columns: pandapower's reader is quadratic in them."""
    changed = copy.deepcopy(document)
    table = json.loads(changed["_object"]["bus"]["_object"])
    table["columns"] += [f"extra{n}" for n in range(columns)]
    for row in table["data"]:
        row += [0] * columns
    changed["_object"]["bus"]["_object"] = json.dumps(table)
    return json.dumps(changed).encode()


@pytest.fixture
def trace_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str, str]:
    """A directory on the workers' import path with two modules: one that leaves a marker file
    when imported (the payload), one the workers import as their simulation (the proof that they
    can see the directory). Returns (marker, payload module, simulation module)."""
    directory = tmp_path / "importable"
    directory.mkdir()
    tag = uuid.uuid4().hex
    payload, simulation = f"powersim_trace_{tag}", f"powersim_sim_{tag}"
    marker = tmp_path / "imported"
    (directory / f"{payload}.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n\n"
        "class Payload:\n    def __init__(self, *args, **kwargs):\n        pass\n\n"
        "def payload(*args, **kwargs):\n    return 'called'\n"
    )
    (directory / f"{simulation}.py").write_text("def run():\n    return 0.123, 0.0456\n")
    monkeypatch.syspath_prepend(str(directory))  # spawned workers start with the server's sys.path
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(directory), os.environ.get("PYTHONPATH")])))
    return marker, payload, simulation


async def test_hostile_uploads_are_refused_and_leave_nothing(
    make_client: ClientFactory, trace_dir: tuple[Path, str, str], tmp_path: Path
) -> None:
    marker, payload, simulation = trace_dir
    client = await make_client(workers=2, simulation=f"{simulation}:run")
    # The workers import from that directory: the payload module would be found if asked for.
    assert (await run(client, {}))["active_power"] == 0.123
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"columns": ["secret"], "index": [0], "data": [[SECRET]]}))
    clean = str(pp.to_json(build("seed")))
    seed: Json = json.loads(clean)
    frame = {"_module": "pandas.core.frame", "_class": "DataFrame", "orient": "split"}
    in_cell, cell = with_bus_name(seed, {"_module": payload, "_class": "function", "_object": "payload"})
    hostile: list[tuple[str, bytes, str]] = [
        (
            "a module that runs on import",
            with_attribute(seed, "x", {"_module": payload, "_class": "Payload", "_object": "{}"}),
            "$._object.x._module",
        ),
        ("the same, in a table cell", in_cell, f"{cell}._module"),
        (
            "os.system",
            with_attribute(seed, "x", {"_module": "os", "_class": "function", "_object": "system"}),
            "$._object.x._module",
        ),
        (
            "a table read from disk",
            with_attribute(seed, "bus", frame | {"_object": str(secret)}),
            "$._object.bus._object",
        ),
        (
            "a table beside them, from disk",
            with_attribute(seed, "leak", frame | {"_object": str(secret)}),
            "$._object.leak._object",
        ),
        # Found in review: pandas' JSON parser drops a lone surrogate escape that Python's keeps,
        # so these keys were no entry for a check done with Python's parser, and an entry (a module
        # imported, os.environ returned, a file read into a cell) for pandapower.
        (
            "a module behind lone surrogates, in a cell",
            with_bus_name(seed, {f"_module{LONE}": payload, f"_class{LONE}": "function", f"_object{LONE}": "payload"})[
                0
            ],
            "$._object.bus._object",
        ),
        (
            "os.environ behind lone surrogates",
            with_bus_name(seed, {f"_module{LONE}": "os", f"_class{LONE}": "function", f"_object{LONE}": "environ"})[0],
            "$._object.bus._object",
        ),
        (
            "a file behind lone surrogates",
            with_bus_name(
                seed,
                {f"_module{LONE}": "pandas.core.frame", f"_class{LONE}": "DataFrame", f"_object{LONE}": str(secret)},
            )[0],
            "$._object.bus._object",
        ),
        ("a table 300 columns wide", wide_table(seed, 300), "$._object.bus._object"),
    ]
    for what, document, path in hostile:
        status, body, location = await upload(client, document, what)
        assert not marker.exists(), what
        assert status == 422, (what, body)
        assert list(body) == ["error"]
        assert body["error"].startswith(f"the network is refused: {path}: "), (what, body)
        assert location is None
        assert SECRET not in json.dumps(body)
        assert "PATH" not in json.dumps(body)  # no environment
    for what, document in (("not JSON", b"<xml/>"), ("empty", b""), ("JSON, not a network", b'{"bus": []}')):
        status, body, _ = await upload(client, document, what)
        assert status == 422, (what, body)
        assert body["error"].startswith("the network is refused: "), (what, body)
    resp = await client.post("/networks", data=clean, headers={"Content-Type": "text/plain"})
    assert (resp.status, await resp.json()) == (
        415,
        {"error": "send the network as pandapower JSON (application/json); got text/plain"},
    )
    assert not marker.exists()
    listing = await client.get("/networks")
    text = await listing.text()
    assert listing.status == 200
    assert [entry["source"] for entry in json.loads(text)["networks"]].count("upload") == 0
    assert SECRET not in text
    # Nothing was stored, not even for a moment: the first accepted upload takes the first id.
    status, entry, _ = await upload(client, clean.encode())
    assert (status, entry["id"]) == (201, "upload-1")
    assert not marker.exists()


# ---- 6. size and bus limits ----

LIMIT = 128 * 1024


def buses_network(buses: int) -> bytes:
    """A radial network of `buses` 20 kV buses, an external grid at the first, a load at the last."""
    net = pp.create_empty_network()
    previous = pp.create_bus(net, 20.0)
    pp.create_ext_grid(net, previous)
    for _ in range(buses - 1):
        bus = pp.create_bus(net, 20.0)
        pp.create_line(net, previous, bus, 1.0, "NA2XS2Y 1x95 RM/25 12/20 kV")
        previous = bus
    pp.create_load(net, previous, 0.5)
    return str(pp.to_json(net)).encode()


async def chunks(total: int, size: int = 16 * 1024) -> AsyncIterator[bytes]:
    """A body sent without Content-Length (chunked): only its stream says how long it is."""
    sent = 0
    while sent < total:
        piece = b" " * min(size, total - sent)
        sent += len(piece)
        yield piece


async def test_limits_on_size_and_buses(make_client: ClientFactory) -> None:
    """A body past POWERSIM_MAX_NETWORK_BYTES is 413, announced or streamed; one byte less is
    read; a network past POWERSIM_MAX_BUSES is 422; nothing of a refused one is stored."""
    client = await make_client(workers=1, max_network_bytes=LIMIT, max_buses=10)
    seed = str(pp.to_json(build("seed"))).encode()
    too_big = seed + b" " * (LIMIT + 1 - len(seed))
    status, body, _ = await upload(client, too_big)
    assert (status, body) == (413, {"error": f"request body is larger than {LIMIT} bytes (POWERSIM_MAX_NETWORK_BYTES)"})
    resp = await client.post("/networks", data=chunks(4 * LIMIT), headers=JSON_HEADERS)
    assert resp.status == 413
    assert await resp.json() == {"error": f"request body is larger than {LIMIT} bytes (POWERSIM_MAX_NETWORK_BYTES)"}
    assert "Content-Length" not in resp.request_info.headers
    too_many = buses_network(11)
    assert len(too_many) < LIMIT
    status, body, _ = await upload(client, too_many)
    assert (status, body) == (422, {"error": "the network is refused: it has 11 buses, more than the limit of 10"})
    await get_json(client, "/networks/upload-1", 404)
    # At the limits: accepted, and the first to be stored.
    status, entry, _ = await upload(client, seed + b" " * (LIMIT - len(seed)))
    assert (status, entry["id"], entry["size_bytes"]) == (201, "upload-1", LIMIT)
    status, entry, _ = await upload(client, buses_network(10))
    assert (status, entry["id"], entry["counts"]["buses"]) == (201, "upload-2", 10)
    assert (await run(client, {"network": "upload-2"}))["active_power"] == pytest.approx(0.5, abs=1e-12)


async def test_an_upload_over_a_lowered_bus_limit_is_refused_at_run_time(make_client: ClientFactory) -> None:
    """The limit holds for runs too: a network stored under a higher limit is not run after the
    server restarts with a lower one (the worker reads the stored document again)."""
    client = await make_client(workers=1, max_buses=20)
    status, entry, _ = await upload(client, buses_network(12))
    assert (status, entry["id"]) == (201, "upload-1")
    await client.close()
    client = await make_client(workers=1, max_buses=10)  # same database
    status, answer = await post_run(client, {"network": "upload-1"})
    assert (status, answer) == (
        422,
        {"error": "invalid input: network", "fields": {"network": "it has 12 buses, more than the limit of 10"}},
    )
    assert await history(client) == []


# ---- 7. the run time limit ----

SLOW = 0.5  # tests.sims.TRIGGER_LOAD_P_MW: the one load_p_mw that makes the simulation overrun


async def test_a_run_past_the_time_limit_is_stopped_alone(make_client: ClientFactory) -> None:
    """504 for the run that overruns, soon after the limit; runs and health checks meanwhile are
    answered at once by the other worker; the stopped worker is gone and replaced."""
    others = set(spawned_workers())
    client = await make_client(simulation="tests.sims:slow_for", workers=2, run_timeout=1.0)
    workers = set(spawned_workers()) - others
    assert len(workers) == 2
    pool = client.app[POWERSIM].pool
    loop = asyncio.get_running_loop()
    began = loop.time()
    slow = asyncio.create_task(client.post("/run-simulation", json={"load_p_mw": SLOW}))
    await eventually(lambda: pool._idle.qsize() == 1, 2.0, "the slow run never took a worker")
    quick = []
    for i in range(3):
        started = loop.time()
        answer = await run(client, {"load_p_mw": 0.1 + i / 100})
        assert loop.time() - started < 0.5
        quick.append(answer)
        started = loop.time()
        assert await health(client) == {"status": "ok", "redis": "ok", "database": "ok", "workers": 2}
        assert loop.time() - started < 0.5
    assert not slow.done()  # all answered while the slow run was still running
    resp = await slow
    waited = loop.time() - began
    body: Json = await resp.json()
    assert resp.status == 504, body
    assert 1.0 <= waited < 4.0
    message = "the run took longer than the limit of 1 s and was stopped"
    assert body["error"] == f"the run was stopped: {message}"
    run_ = body["simulation"]
    assert list(run_) == RUN_KEYS
    assert (run_["status"], run_["active_power"], run_["reactive_power"], run_["message"]) == (
        "timed_out",
        None,
        None,
        message,
    )
    assert (run_["network"], run_["inputs"]["load_p_mw"], run_["network_sha256"]) == ("seed", SLOW, None)
    for answer in quick:  # they ran while the slow run held the other worker
        assert run_["launched_at"] < answer["launched_at"]
    assert await stored(client, run_["id"]) == run_ | {"details": None}
    # newest first by id: the stopped run is stored when it is stopped, after the others
    assert [r["status"] for r in await history(client)] == ["timed_out"] + ["converged"] * 3
    latest = await get_json(client, "/active-power")
    assert latest["id"] == quick[-1]["id"]  # the stopped run is not published

    assert (await health(client))["workers"] == 1  # the stopped one is being replaced
    await wait_for_workers(client, 2)
    # the stopped worker is not sleeping on beside its replacement
    await eventually(lambda: len(set(spawned_workers()) - others) == 2, 5.0, "the stopped worker is still alive")
    assert len(set(spawned_workers()) & workers) == 1
    for value in (0.2, 0.3):  # both workers serve again
        answer = await run(client, {"load_p_mw": value})
        assert answer["active_power"] == value


# ---- 8. the memory cap ----


async def test_a_run_past_the_memory_cap_fails_and_its_worker_is_replaced(make_client: ClientFactory) -> None:
    """500 for the run past the cap, stored as failed with the reason; the worker is replaced,
    the other one kept, and the next runs work."""
    others = set(spawned_workers())
    client = await make_client(simulation="tests.sims:hungry_for", workers=2, worker_memory_mb=3072)
    workers = set(spawned_workers()) - others
    assert len(workers) == 2
    before = await run(client, {"load_p_mw": 0.2})
    status, body = await post_run(client, {"load_p_mw": SLOW})
    message = "the run ran out of memory: it needs more than the worker's address space of 3072 MB"
    message += " (POWERSIM_WORKER_MEMORY_MB)"
    assert status == 500, body
    assert body["error"] == f"the run failed: {message}"
    run_ = body["simulation"]
    assert list(run_) == RUN_KEYS
    assert (run_["status"], run_["active_power"], run_["message"]) == ("failed", None, message)
    assert await stored(client, run_["id"]) == run_ | {"details": None}
    assert [r["status"] for r in await history(client)] == ["failed", "converged"]
    assert (await get_json(client, "/active-power"))["id"] == before["id"]
    assert (await health(client))["workers"] == 1
    await wait_for_workers(client, 2)
    await eventually(lambda: len(set(spawned_workers()) - others) == 2, 5.0, "the worker out of memory is alive")
    assert len(set(spawned_workers()) & workers) == 1
    for value in (0.3, 0.4):
        answer = await run(client, {"load_p_mw": value})
        assert (answer["active_power"], answer["reactive_power"]) == (value, 0.05)


async def test_a_memory_cap_below_what_a_worker_needs_stops_start_up(settings: Settings) -> None:
    """The app does not start, and says which setting to raise and to what."""
    # A bare TestServer: the test client would leave its session open when start-up fails.
    server = TestServer(create_app(dataclasses.replace(settings, worker_memory_mb=600)))
    try:
        with pytest.raises(StartupError, match=r"^POWERSIM_WORKER_MEMORY_MB=600: a worker already uses") as caught:
            await server.start_server()
    finally:
        await server.close()
    needed = re.search(r"allow at least (\d+) MB$", str(caught.value))
    assert needed is not None, str(caught.value)
    assert 600 < int(needed[1]) <= 3072  # what the test above sets is enough


# ---- 9. found in review: an upload's own power-flow options, an odd table ----


async def test_an_uploads_own_power_flow_options_carry_nothing_between_runs(make_client: ClientFactory) -> None:
    """pandapower's runpp takes defaults from net.user_pf_options: init="results" would start each
    run from the previous run's results on the cached network, and a loose tolerance would change
    every answer. An upload's options are dropped; its runs equal pandapower's with the defaults."""
    net = build("case9")
    pp.set_user_pf_options(net, init="results", tolerance_mva=5.0, max_iteration=3)
    document = pp.to_json(net).encode()
    client = await make_client(workers=1)
    status, entry, _ = await upload(client, document, "own options")
    assert status == 201, entry
    plain = build("case9")
    first = await run(client, {"network": entry["id"]})
    scaled = await run(client, {"network": entry["id"], "ext_grid_vm_pu": 1.3, "load_scaling": 2.0})
    again = await run(client, {"network": entry["id"]})
    for answer, inputs in ((first, {}), (scaled, {"ext_grid_vm_pu": 1.3, "load_scaling": 2.0}), (again, {})):
        assert_details((await stored(client, answer["id"]))["details"], expected_details(solve(plain, inputs)))
    assert (await stored(client, first["id"]))["details"] == (await stored(client, again["id"]))["details"]


async def test_a_table_pandapower_reads_oddly_is_refused_not_a_500(make_client: ClientFactory) -> None:
    """A generator table with two `slack` columns under one MultiIndex name, and no external grid
    in service: the usability check once raised on it (a 500). Now it is the upload's refusal."""
    document: Json = json.loads(pp.to_json(build("case9")))
    ext_grid = json.loads(document["_object"]["ext_grid"]["_object"])
    for row in ext_grid["data"]:
        row[ext_grid["columns"].index("in_service")] = False
    document["_object"]["ext_grid"]["_object"] = json.dumps(ext_grid)
    gen = {
        "columns": [str(("in_service", "")), str(("bus", "")), str(("slack", "a")), str(("slack", "b"))],
        "index": [0],
        "data": [[True, 0, True, True]],
    }
    document["_object"]["gen"] = {
        "_module": "pandas.core.frame",
        "_class": "DataFrame",
        "_object": json.dumps(gen),
        "orient": "split",
        "is_multicolumn": True,
    }
    client = await make_client(workers=1)
    status, body, _ = await upload(client, json.dumps(document).encode(), "odd")
    assert status == 422, body
    assert body["error"].startswith("the network is refused: "), body
    listing = await get_json(client, "/networks")
    assert [e for e in listing["networks"] if e["source"] == "upload"] == []


async def test_a_replacement_that_fails_to_start_is_tried_again(
    make_client: ClientFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found in review: a replacement worker that failed to start was given up for good, and with
    one worker every later run waited forever. Now it is tried again, backing off."""
    directory = tmp_path / "importable"
    directory.mkdir()
    broken = tmp_path / "broken"
    module = f"powersim_flaky_{uuid.uuid4().hex}"
    (directory / f"{module}.py").write_text(
        "import os, time\n"
        f"if os.path.exists({str(broken)!r}):\n"
        "    raise ImportError('cannot start while the marker is there')\n\n"
        "def run(**inputs):\n"
        f"    if inputs['load_p_mw'] == {SLOW}:\n"
        "        time.sleep(60)\n"
        "    return inputs['load_p_mw'], inputs['load_q_mvar']\n"
    )
    monkeypatch.syspath_prepend(str(directory))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(directory), os.environ.get("PYTHONPATH")])))
    client = await make_client(simulation=f"{module}:run", workers=1, run_timeout=1.0)
    broken.touch()
    status, body = await post_run(client, {"load_p_mw": SLOW})
    assert (status, body["simulation"]["status"]) == (504, "timed_out")
    await asyncio.sleep(2.5)  # the replacement has failed to start at least once by now
    assert (await health(client))["workers"] == 0
    broken.unlink()
    await wait_for_workers(client, 1, within=20)
    assert (await run(client, {"load_p_mw": 0.2}))["active_power"] == 0.2


# ---- 10. GraphQL: the same networks and runs ----


async def gql(client: Client, query: str) -> Json:
    resp = await client.post("/graphql", json={"query": query})
    assert resp.status == 200, await resp.text()
    body: Json = await resp.json()
    assert "errors" not in body, body
    return body["data"]  # type: ignore[no-any-return]


async def test_graphql_lists_and_runs_the_same_networks(make_client: ClientFactory) -> None:
    client = await make_client(workers=2)
    status, entry, _ = await upload(client, pp.to_json(modified_case14()).encode(), "for graphql")
    assert status == 201
    rest = (await get_json(client, "/networks"))["networks"]
    fields = "id name source counts { buses lines transformers loads generators externalGrids } inputs sha256 sizeBytes"
    listed = (await gql(client, f"{{ networks {{ {fields} }} }}"))["networks"]
    assert [n["id"] for n in listed] == [n["id"] for n in rest]
    for ours, theirs in zip(listed, rest, strict=True):
        assert ours["counts"]["externalGrids"] == theirs["counts"]["external_grids"]
        assert ours["counts"]["buses"] == theirs["counts"]["buses"]
        assert (ours["source"], ours["inputs"], ours["sha256"]) == (
            theirs["source"],
            theirs["inputs"],
            theirs.get("sha256"),
        )
    one = await gql(
        client,
        f'{{ a: network(id: "case9") {{ id name }} b: network(id: "{entry["id"]}") {{ sizeBytes }} '
        'c: network(id: "nowhere") { id } }',
    )
    assert one == {"a": {"id": "case9", "name": rest[1]["name"]}, "b": {"sizeBytes": entry["size_bytes"]}, "c": None}
    ran = (
        await gql(
            client,
            'mutation { runSimulation(input: {network: "case9", loadScaling: 1.1}) '
            "{ id status network networkSha256 activePower inputs { loadScaling loadPMw } } }",
        )
    )["runSimulation"]
    expected, _ = load_totals(solve(build("case9"), {"load_scaling": 1.1}))
    assert (ran["status"], ran["network"], ran["networkSha256"]) == ("converged", "case9", None)
    assert ran["activePower"] == pytest.approx(expected, rel=TOLERANCE)
    assert ran["inputs"] == {"loadScaling": 1.1, "loadPMw": None}
    on_upload = (
        await gql(client, f'mutation {{ runSimulation(input: {{network: "{entry["id"]}"}}) {{ id networkSha256 }} }}')
    )["runSimulation"]
    assert on_upload["networkSha256"] == entry["sha256"]
    page = (await gql(client, '{ simulations(network: "case9") { id network } }'))["simulations"]
    assert page == [{"id": ran["id"], "network": "case9"}]
