"""The network catalog and loading (powersim/grid/catalog.py, loading.py), against pandapower itself.

Every catalog network is built once by catalog.build (case9241pegase included, about 1 s) and
deep-copied where a test changes it (10 ms against about 0.5 s a build). Runs compare result tables
exactly with pandapower run directly on a network built afresh by pandapower's own function, with
the same inputs written the way a pandapower user would write them.
"""

from __future__ import annotations

import copy
import functools
import json
import pickle
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandapower as pp
import pandapower.networks as pn
import pandas as pd
import pytest

import test_sim
from powersim.grid import catalog, loading
from powersim.grid.upload import NetworkTooLarge, UnsafeNetwork, check_network_document

ROOT = Path(__file__).resolve().parent.parent
MAX_BYTES = 20_000_000  # POWERSIM_MAX_NETWORK_BYTES' default
MAX_BUSES = 20_000  # POWERSIM_MAX_BUSES' default
RESULTS = ("res_bus", "res_line", "res_trafo", "res_ext_grid", "res_load", "res_sgen", "res_gen")
INPUT_TABLES = ("load", "sgen", "ext_grid")

# (buses, lines, transformers, loads, generators, external grids) as pandapower 3.5.6 builds them.
COUNTS = {
    "seed": (3, 1, 1, 1, 0, 1),
    "case9": (9, 9, 0, 3, 2, 1),
    "case14": (14, 15, 5, 11, 4, 1),
    "case30": (30, 41, 0, 20, 5, 1),
    "case57": (57, 63, 17, 42, 6, 1),
    "case118": (118, 173, 13, 99, 53, 1),
    "case300": (300, 283, 128, 193, 68 + 8, 1),
    "case1354pegase": (1354, 1751, 240, 621, 259 + 52, 1),
    "case2869pegase": (2869, 4051, 531, 1311, 509 + 180, 1),
    "case9241pegase": (9241, 13797, 2252, 4461, 1444 + 434, 1),
    "mv_oberrhein": (179, 181, 2, 147, 153, 2),
    "cigre_mv": (15, 15, 2, 18, 0, 1),
}
# pandapower's own functions, named here rather than read from the catalog entries.
DIRECT: dict[str, Callable[[], pp.pandapowerNet]] = {
    "case9": pn.case9,
    "case118": pn.case118,
    "case300": pn.case300,
    "case1354pegase": pn.case1354pegase,
    "mv_oberrhein": pn.mv_oberrhein,
}


pytestmark = pytest.mark.usefixtures("quiet_pandapower")  # numba is not installed on purpose


@functools.cache
def _built(network_id: str) -> pp.pandapowerNet:
    return catalog.build(network_id)


def built(network_id: str) -> pp.pandapowerNet:
    """A catalog network as catalog.build gives it, this test's own copy."""
    return copy.deepcopy(_built(network_id))


def direct(network_id: str) -> pp.pandapowerNet:
    with loading.known_warnings():  # mv_oberrhein runs a power flow while it builds
        return DIRECT[network_id]()


def solve(net: pp.pandapowerNet) -> pp.pandapowerNet:
    with loading.known_warnings():
        pp.runpp(net)
    return net


def results(net: pp.pandapowerNet) -> dict[str, pd.DataFrame]:
    return {table: net[table].copy() for table in RESULTS}


def assert_same(a: dict[str, pd.DataFrame], b: dict[str, pd.DataFrame]) -> None:
    assert a.keys() == b.keys()
    for table in a:
        pd.testing.assert_frame_equal(a[table], b[table], check_exact=True, obj=table)


def run_catalog(net: pp.pandapowerNet, base: loading.Baseline, **inputs: Any) -> dict[str, pd.DataFrame]:
    loading.apply_network_inputs(net, base, **inputs)
    return results(solve(net))


def run_direct(
    net: pp.pandapowerNet, load_scaling: float = 1.0, sgen_scaling: float = 1.0, ext_grid_vm_pu: float | None = None
) -> dict[str, pd.DataFrame]:
    """The same inputs as a pandapower user writes them, on a network nothing else touched."""
    net.load["scaling"] = net.load["scaling"] * load_scaling
    net.sgen["scaling"] = net.sgen["scaling"] * sgen_scaling
    if ext_grid_vm_pu is not None:
        net.ext_grid["vm_pu"] = ext_grid_vm_pu
    return results(solve(net))


def tiny(loads: int = 1, *, ext_grid: bool = True, slack_gen: bool = False) -> pp.pandapowerNet:
    net = pp.create_empty_network()
    b1 = pp.create_bus(net, vn_kv=20.0)
    b2 = pp.create_bus(net, vn_kv=20.0)
    if ext_grid:
        pp.create_ext_grid(net, b1, vm_pu=1.01)
    if slack_gen:
        pp.create_gen(net, b1, p_mw=0.0, vm_pu=1.0, slack=True)
    pp.create_line(net, b1, b2, length_km=1.0, std_type="NAYY 4x50 SE")
    for _ in range(loads):
        pp.create_load(net, b2, p_mw=0.01)
    return net


def document(net: pp.pandapowerNet) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(pp.to_json(net))
    return parsed


def encode(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc).encode()


# --- the catalog


def test_the_catalog_has_the_seed_and_the_standard_grids() -> None:
    assert set(catalog.CATALOG) == set(COUNTS)
    for network_id, entry in catalog.CATALOG.items():
        assert entry.id == network_id
        assert entry.name
        assert (entry.source, entry.function.startswith("pandapower.networks.")) == (
            ("builtin", False) if network_id == "seed" else ("catalog", True)
        )
    assert catalog.CATALOG["seed"].function == "test_sim.build_network"
    assert catalog.CATALOG["cigre_mv"].function == "pandapower.networks.create_cigre_network_mv"


@pytest.mark.parametrize("network_id", list(COUNTS))
def test_every_catalog_network_builds_usable_with_its_counts(network_id: str) -> None:
    net = _built(network_id)  # under filterwarnings = error: catalog.build silences what it must
    loading.check_usable(net, MAX_BUSES)
    expected = dict(zip(loading.COUNTED, COUNTS[network_id], strict=True))
    assert loading.counts(net) == expected
    own = {key: sum(len(net[table]) for table in tables) for key, tables in loading.COUNTED.items()}
    assert own == expected


def test_each_build_is_a_new_network() -> None:
    first, second = catalog.build("seed"), catalog.build("seed")
    assert first is not second
    first.load.at[0, "p_mw"] = 1000.0
    assert second.load.at[0, "p_mw"] == test_sim.LOAD_P_MW


def test_an_unknown_id_is_refused() -> None:
    with pytest.raises(catalog.UnknownNetwork, match="no network 'case10' in the catalog"):
        catalog.build("case10")


def test_importing_the_modules_imports_no_pandapower() -> None:
    code = (
        "import sys, powersim.grid.catalog, powersim.grid.loading\n"
        "print(sorted({'pandapower', 'pandas', 'numpy', 'test_sim', 'asyncio', 'aiohttp'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- running on a catalog network


@pytest.mark.parametrize(
    ("network_id", "inputs"),
    [
        ("case9", {"load_scaling": 1.1, "ext_grid_vm_pu": 1.03}),
        ("case118", {"load_scaling": 0.9, "ext_grid_vm_pu": 1.02}),
        ("case1354pegase", {"load_scaling": 1.05, "sgen_scaling": 0.7}),
        # its own scaling is 0.6 for loads: the factor multiplies it (0.72), as a user's would
        ("mv_oberrhein", {"load_scaling": 1.2, "ext_grid_vm_pu": 1.01}),
        ("mv_oberrhein", {}),
    ],
)
def test_a_catalog_run_equals_pandapower_run_directly(network_id: str, inputs: dict[str, float]) -> None:
    net = built(network_id)
    base = loading.baseline(net)
    assert set(inputs) <= base.inputs
    assert_same(run_catalog(net, base, **inputs), run_direct(direct(network_id), **inputs))
    assert net.converged


def test_each_input_takes_effect() -> None:
    net = built("case300")  # loads, static generators and one external grid
    base = loading.baseline(net)
    assert base.inputs == {"load_scaling", "sgen_scaling", "ext_grid_vm_pu"}
    own = results(solve(direct("case300")))
    slack_bus = net.ext_grid.at[0, "bus"]
    loads, sgens = net.load.in_service, net.sgen.in_service

    scaled = run_catalog(net, base, load_scaling=1.02)  # case300 converges only near its own loads
    assert (scaled["res_load"].p_mw[loads] == 1.02 * net.load.p_mw[loads]).all()
    assert scaled["res_ext_grid"].at[0, "p_mw"] != own["res_ext_grid"].at[0, "p_mw"]
    pd.testing.assert_series_equal(scaled["res_sgen"].p_mw, own["res_sgen"].p_mw)

    scaled = run_catalog(net, base, sgen_scaling=0.5)
    assert (scaled["res_sgen"].p_mw[sgens] == 0.5 * net.sgen.p_mw[sgens]).all()
    assert scaled["res_ext_grid"].at[0, "p_mw"] != own["res_ext_grid"].at[0, "p_mw"]
    pd.testing.assert_series_equal(scaled["res_load"].p_mw, own["res_load"].p_mw)

    assert own["res_bus"].at[slack_bus, "vm_pu"] != pytest.approx(1.04, abs=1e-3)
    scaled = run_catalog(net, base, ext_grid_vm_pu=1.04)
    assert scaled["res_bus"].at[slack_bus, "vm_pu"] == pytest.approx(1.04, abs=1e-12)


def test_a_run_sees_nothing_of_the_runs_before() -> None:
    net = built("case300")
    base = loading.baseline(net)
    a = {"load_scaling": 1.02, "sgen_scaling": 0.5, "ext_grid_vm_pu": 1.04}
    b = {"load_scaling": 0.95, "sgen_scaling": 0.8, "ext_grid_vm_pu": 1.02}
    first = run_catalog(net, base, **a)
    tables = {table: net[table].copy() for table in INPUT_TABLES}
    second = run_catalog(net, base, **b)
    assert not second["res_bus"].equals(first["res_bus"])
    assert_same(run_catalog(net, base, **a), first)
    assert_same({table: net[table] for table in INPUT_TABLES}, tables)

    # the defaults: the network as pandapower builds it, element tables and results alike
    defaults = run_catalog(net, base)
    fresh = solve(direct("case300"))
    assert_same(defaults, results(fresh))
    assert_same({table: net[table] for table in INPUT_TABLES}, {table: fresh[table] for table in INPUT_TABLES})


def test_inputs_that_apply() -> None:
    assert loading.inputs_that_apply(_built("case9")) == {"load_scaling", "ext_grid_vm_pu"}
    assert loading.inputs_that_apply(_built("case300")) == {"load_scaling", "sgen_scaling", "ext_grid_vm_pu"}
    # pandapower ships mv_oberrhein's static generators at scaling 0: a factor would change nothing
    assert loading.inputs_that_apply(_built("mv_oberrhein")) == {"load_scaling", "ext_grid_vm_pu"}
    assert loading.inputs_that_apply(_built("cigre_mv")) == {"load_scaling", "ext_grid_vm_pu"}
    assert loading.inputs_that_apply(tiny(ext_grid=False, slack_gen=True)) == {"load_scaling"}
    net = tiny()
    net.load["in_service"] = False
    assert loading.inputs_that_apply(net) == {"ext_grid_vm_pu"}


def test_the_baseline_keeps_what_applies_after_runs() -> None:
    net = built("case300")
    base = loading.baseline(net)
    loading.apply_network_inputs(net, base, sgen_scaling=0.0)
    assert "sgen_scaling" not in loading.inputs_that_apply(net)  # as it stands now
    assert "sgen_scaling" in base.inputs


def test_the_baseline_belongs_to_its_network() -> None:
    base = loading.baseline(_built("case9"))
    with pytest.raises(ValueError, match="not the one the baseline was taken of"):
        loading.apply_network_inputs(built("case14"), base)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_inputs_are_refused(value: float) -> None:
    net = built("case9")
    base = loading.baseline(net)
    for name in loading.NETWORK_INPUTS:
        with pytest.raises(ValueError, match=f"{name} must be a finite number"):
            loading.apply_network_inputs(net, base, **{name: value})


def test_a_slack_generator_is_a_reference() -> None:
    net = tiny(ext_grid=False, slack_gen=True)
    loading.check_usable(net, MAX_BUSES)
    assert solve(net).converged


# --- uploads


def test_an_upload_round_trips() -> None:
    modified = direct("case9")
    modified.load.at[modified.load.index[0], "p_mw"] = 120.0
    net = loading.load_upload(pp.to_json(modified).encode(), MAX_BYTES, MAX_BUSES)
    assert loading.counts(net) == loading.counts(modified)
    assert net.load.at[net.load.index[0], "p_mw"] == 120.0
    inputs = {"load_scaling": 1.1, "ext_grid_vm_pu": 1.02}
    assert_same(run_catalog(net, loading.baseline(net), **inputs), run_direct(modified, **inputs))


def _unreadable() -> bytes:
    """Passes the pre-check (plain tables only), but one table has 8 rows of data for 9 labels."""
    doc = document(_built("case9"))
    table = json.loads(doc["_object"]["bus"]["_object"])
    table["data"] = table["data"][:-1]
    doc["_object"]["bus"]["_object"] = json.dumps(table)
    return encode(doc)


def _bus_is_a_number() -> bytes:
    doc = document(_built("case9"))
    doc["_object"]["bus"] = 5
    return encode(doc)


def _scaling_is_text() -> bytes:
    doc = document(_built("case9"))
    doc["_object"]["load"]["dtype"]["scaling"] = "object"
    table = json.loads(doc["_object"]["load"]["_object"])
    column = table["columns"].index("scaling")
    for row in table["data"]:
        row[column] = "x"
    doc["_object"]["load"]["_object"] = json.dumps(table)
    return encode(doc)


def _no_reference() -> pp.pandapowerNet:
    net = built("case9")
    net.ext_grid["in_service"] = False
    return net


@pytest.mark.parametrize(
    ("raw", "max_buses", "reason"),
    [
        (lambda: pp.to_json(pp.create_empty_network()).encode(), MAX_BUSES, "it has no bus$"),
        (lambda: pp.to_json(_no_reference()).encode(), MAX_BUSES, "no external grid or slack generator in service"),
        (lambda: pp.to_json(tiny(ext_grid=False)).encode(), MAX_BUSES, "no external grid or slack generator"),
        (lambda: pp.to_json(_built("case9")).encode(), 8, "it has 9 buses, more than the limit of 8$"),
        (lambda: pp.to_json(tiny(loads=9)).encode(), 2, r"'load' table has 9 rows, more than the limit of 8 \(4 per"),
        (_unreadable, MAX_BUSES, r"^pandapower could not read it: ValueError: Length of values \(8\) does not match"),
        (_bus_is_a_number, MAX_BUSES, "its 'bus' entry is not a table"),
        (_scaling_is_text, MAX_BUSES, "its load table has no numeric 'scaling' column"),
    ],
    ids=["no_bus", "no_reference", "no_ext_grid", "buses", "rows", "unreadable", "not_a_table", "text_column"],
)
def test_an_unusable_network_is_refused_with_its_reason(raw: Callable[[], bytes], max_buses: int, reason: str) -> None:
    upload = raw()
    check_network_document(upload, MAX_BYTES)  # each one passes the pre-check
    with pytest.raises(loading.UnusableNetwork, match=reason):
        loading.load_upload(upload, MAX_BYTES, max_buses)


def test_check_usable_refuses_a_network_over_the_limits() -> None:
    loading.check_usable(_built("case9"), 9)  # a limit is a maximum
    with pytest.raises(loading.UnusableNetwork, match="9 buses, more than the limit of 8"):
        loading.check_usable(_built("case9"), 8)
    loading.check_usable(tiny(loads=8), 2)
    with pytest.raises(loading.UnusableNetwork, match="9 rows, more than the limit of 8"):
        loading.check_usable(tiny(loads=9), 2)


def _seed_document() -> dict[str, Any]:
    return document(test_sim.build_network())


def _function() -> bytes:
    doc = _seed_document()
    doc["_object"]["name"] = {"_module": "os", "_class": "function", "_object": "system"}
    return encode(doc)


def _file_table(tmp_path: Path) -> bytes:
    secret = tmp_path / "secret.json"
    secret.write_text(pp.to_json(test_sim.build_network()))
    doc = _seed_document()
    doc["_object"]["bus"]["_object"] = str(secret)
    return encode(doc)


def test_hostile_documents_raise_the_pre_checks_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    read: list[str] = []
    monkeypatch.setattr(pp, "from_json_string", lambda text, **_: read.append(text))
    raw = pp.to_json(_built("case9")).encode()
    with pytest.raises(NetworkTooLarge):
        loading.load_upload(raw, len(raw) - 1, MAX_BUSES)
    with pytest.raises(UnsafeNetwork, match=r"\$\._object\.name\._module: \"os\" / \"function\" is not a type"):
        loading.load_upload(_function(), MAX_BYTES, MAX_BUSES)
    with pytest.raises(UnsafeNetwork, match=r"\$\._object\.bus\._object: a file path or URL"):
        loading.load_upload(_file_table(tmp_path), MAX_BYTES, MAX_BUSES)
    with pytest.raises(UnsafeNetwork, match="not UTF-8"):
        loading.load_upload(b"\xff" + raw, MAX_BYTES, MAX_BUSES)
    assert read == []  # pandapower's reader never saw any of them


def test_memory_errors_are_not_unusable_networks(monkeypatch: pytest.MonkeyPatch) -> None:
    def out_of_memory(text: str, **_: Any) -> None:
        raise MemoryError

    monkeypatch.setattr(pp, "from_json_string", out_of_memory)
    with pytest.raises(MemoryError):
        loading.load_upload(pp.to_json(_built("case9")).encode(), MAX_BYTES, MAX_BUSES)


def test_the_errors_pickle() -> None:  # they cross the worker's process boundary
    for error in (loading.UnusableNetwork("it has no bus"), catalog.UnknownNetwork("case10")):
        copied = pickle.loads(pickle.dumps(error))
        assert (type(copied), str(copied)) == (type(error), str(error))
    assert pickle.loads(pickle.dumps(catalog.UnknownNetwork("case10"))).network_id == "case10"


# --- the second line behind the pre-check: only plain data in a network read from an upload ---


def test_a_network_holding_anything_but_plain_data_is_refused() -> None:
    clean = test_sim.build_network()
    loading.check_plain(clean)  # strings, numbers, booleans, nulls, dicts and lists of them
    for value in (print, json, pd.DataFrame({"secret": [1]})):
        in_cell = copy.deepcopy(clean)
        in_cell.bus["name"] = in_cell.bus["name"].astype(object)
        in_cell.bus.at[0, "name"] = value
        with pytest.raises(loading.UnusableNetwork, match=rf"its 'bus' table holds a {type(value).__name__}$"):
            loading.check_plain(in_cell)
        beside = copy.deepcopy(clean)
        beside["user_data"] = {"nested": [1, {"x": value}]}
        with pytest.raises(loading.UnusableNetwork, match=r"its 'user_data' entry holds a"):
            loading.check_plain(beside)


def test_an_uploads_own_power_flow_options_are_dropped() -> None:
    net = pn.case9()
    pp.set_user_pf_options(net, init="results", tolerance_mva=5.0)
    read = loading.load_upload(pp.to_json(net).encode(), 2**24, 100)
    assert read["user_pf_options"] == {}
