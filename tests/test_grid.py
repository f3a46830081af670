"""powersim.grid: details and limit violations of solved networks, checked against the res_* tables.

Expected values are read here independently, cell by cell with `.at[label, column]`, from the
network pandapower solved; the code under test joins whole columns by index.
"""

from __future__ import annotations

import ast
import json
import logging
import math
import pickle
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandapower as pp
import pandapower.networks as pn
import pytest

import test_sim
from powersim.grid import DEFAULT_VM_BAND, SECTIONS, details, losses, violations

GRID = Path(__file__).resolve().parent.parent / "powersim" / "grid"
KEYS = {
    "buses": ["index", "name", "vn_kv", "vm_pu", "va_degree", "p_mw", "q_mvar"],
    "lines": ["index", "name", "loading_percent", "p_from_mw", "q_from_mvar", "pl_mw", "ql_mvar", "i_ka"],
    "transformers": ["index", "name", "loading_percent", "pl_mw", "ql_mvar"],
    "external_grids": ["index", "name", "p_mw", "q_mvar"],
}
TABLES = {"buses": "bus", "lines": "line", "transformers": "trafo", "external_grids": "ext_grid"}
ELEMENTS = {"bus": "bus", "line": "line", "transformer": "trafo"}


pytestmark = pytest.mark.usefixtures("quiet_pandapower")  # numba is not installed on purpose


def solved(net: pp.pandapowerNet) -> pp.pandapowerNet:
    pp.runpp(net)
    return net


def seed(**inputs: float) -> pp.pandapowerNet:
    return solved(test_sim.build_network(**inputs))


def line_out_of_service() -> pp.pandapowerNet:
    net = test_sim.build_network()
    net.line.at[0, "in_service"] = False  # NaN in res_line and, for the cut-off load bus, res_bus
    return net


NETWORKS: dict[str, Callable[[], pp.pandapowerNet]] = {
    "seed": test_sim.build_network,
    "seed_line_out_of_service": line_out_of_service,
    "case9": pn.case9,  # own min_vm_pu/max_vm_pu (0.9/1.1) and max_loading_percent
    "cigre_mv": pn.create_cigre_network_mv,  # open switches, undervoltages and an overloaded transformer
    "mv_oberrhein": pn.mv_oberrhein,  # 179 buses, open switches, index gaps
}


@pytest.fixture(scope="module", params=list(NETWORKS))
def network(request: pytest.FixtureRequest) -> pp.pandapowerNet:
    logging.getLogger("pandapower").setLevel(logging.ERROR)
    with warnings.catch_warnings():  # mv_oberrhein's stored file predates pandapower 3.0's tap tables
        warnings.filterwarnings("ignore", "tap_dependency_table is missing", DeprecationWarning)
        return solved(NETWORKS[request.param]())


def cell(value: Any, column: str = "") -> Any:
    """What a table cell should become: None for NaN, names as strings, else the Python value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if column == "name":
        return str(value)  # case9 names its buses 1 to 9
    return value.item() if hasattr(value, "item") else value


def expected_rows(net: pp.pandapowerNet, key: str) -> list[dict[str, Any]]:
    table = TABLES[key]
    own = {"name", "vn_kv"} & set(KEYS[key])
    return [
        {
            column: label
            if column == "index"
            else cell(net[table].at[label, column] if column in own else net[f"res_{table}"].at[label, column], column)
            for column in KEYS[key]
        }
        for label in net[table].index
    ]


def own_limit(net: pp.pandapowerNet, table: str, column: str, label: int, default: float) -> float:
    if column not in net[table].columns or math.isnan(net[table].at[label, column]):
        return default
    return float(net[table].at[label, column])


def expected_violations(net: pp.pandapowerNet, band: tuple[float, float] = DEFAULT_VM_BAND) -> list[tuple[Any, ...]]:
    found: list[tuple[Any, ...]] = []
    for label in net.bus.index:
        vm = net.res_bus.at[label, "vm_pu"]
        low = own_limit(net, "bus", "min_vm_pu", label, band[0])
        high = own_limit(net, "bus", "max_vm_pu", label, band[1])
        if net.bus.at[label, "in_service"] and vm < low:
            found.append(("bus", label, "undervoltage", vm, low))
        if net.bus.at[label, "in_service"] and vm > high:
            found.append(("bus", label, "overvoltage", vm, high))
    for element in ("line", "transformer"):
        table = ELEMENTS[element]
        for label in net[table].index:
            loading = net[f"res_{table}"].at[label, "loading_percent"]
            limit = own_limit(net, table, "max_loading_percent", label, 100.0)
            if net[table].at[label, "in_service"] and loading > limit:
                found.append((element, label, "overload", loading, limit))
    return found


def summary(found: list[Any]) -> list[tuple[Any, ...]]:
    return [(v["element"], v["index"], v["kind"], v["value"], v["limit"]) for v in found]


def plain_types(value: Any) -> Iterator[type]:
    yield type(value)
    if isinstance(value, dict):
        assert all(type(key) is str for key in value)
        for item in value.values():
            yield from plain_types(item)
    elif isinstance(value, list):
        for item in value:
            yield from plain_types(item)


def test_the_seed_networks_default_run_overloads_its_line_and_nothing_else() -> None:
    net = test_sim.run_network()
    loading = net.res_line.at[0, "loading_percent"]
    assert 117 < loading < 119
    assert details(net)["violations"] == [
        {"element": "line", "index": 0, "name": "Line", "kind": "overload", "value": loading, "limit": 100.0}
    ]


def test_details_are_the_result_tables_row_by_row(network: pp.pandapowerNet) -> None:
    found = details(network)
    assert list(found) == ["buses", "lines", "transformers", "external_grids", "losses", "violations"]
    for key, columns in KEYS.items():
        assert [list(row) for row in found[key]] == [columns] * len(network[TABLES[key]])
        assert found[key] == expected_rows(network, key)
    assert [section.key for section in SECTIONS] == list(KEYS)


def test_violations_are_every_broken_limit_and_no_other(network: pp.pandapowerNet) -> None:
    assert summary(details(network)["violations"]) == expected_violations(network)
    narrow = (0.99, 1.01)
    assert summary(violations(network, narrow)) == expected_violations(network, narrow)


def test_losses_are_summed_over_lines_and_transformers(network: pp.pandapowerNet) -> None:
    cells = [network.res_line.at[label, "pl_mw"] for label in network.line.index]
    cells += [network.res_trafo.at[label, "pl_mw"] for label in network.trafo.index]
    reactive = [network.res_line.at[label, "ql_mvar"] for label in network.line.index]
    reactive += [network.res_trafo.at[label, "ql_mvar"] for label in network.trafo.index]
    expected = {"p_mw": math.fsum(c for c in cells if not math.isnan(c))}
    expected["q_mvar"] = math.fsum(c for c in reactive if not math.isnan(c))
    assert losses(network) == expected
    assert losses(network)["p_mw"] > 0


def test_the_result_is_plain_data_that_pickles_and_is_strict_json(network: pp.pandapowerNet) -> None:
    found = details(network)
    assert set(plain_types(found)) <= {dict, list, str, int, float, type(None)}
    assert pickle.loads(pickle.dumps(found)) == found
    assert json.loads(json.dumps(found, allow_nan=False)) == found


@pytest.mark.parametrize(("vm_pu", "below"), [(0.97, [2]), (0.9, [0, 1, 2]), (0.96, [1, 2])])
def test_a_low_grid_voltage_reports_undervoltage_on_exactly_the_buses_below_the_band(
    vm_pu: float, below: list[int]
) -> None:
    net = test_sim.run_network(ext_grid_vm_pu=vm_pu)
    assert [label for label in net.bus.index if net.res_bus.at[label, "vm_pu"] < 0.95] == below
    found = [v for v in details(net)["violations"] if v["element"] == "bus"]
    assert [(v["index"], v["kind"], v["limit"]) for v in found] == [(label, "undervoltage", 0.95) for label in below]
    assert [v["value"] for v in found] == [net.res_bus.at[label, "vm_pu"] for label in below]


def test_undervoltage_on_a_real_feeder_names_exactly_the_buses_below_the_band() -> None:
    net = solved(pn.create_cigre_network_mv())
    below = {label for label in net.bus.index if net.res_bus.at[label, "vm_pu"] < 0.95}
    assert 0 < len(below) < len(net.bus)
    found = {v["index"] for v in violations(net) if v["kind"] == "undervoltage"}
    assert found == below
    assert {v["name"] for v in violations(net) if v["kind"] == "undervoltage"} == set(net.bus.name[list(below)])


def test_a_high_grid_voltage_reports_overvoltage() -> None:
    net = seed(ext_grid_vm_pu=1.1)
    above = [label for label in net.bus.index if net.res_bus.at[label, "vm_pu"] > 1.05]
    assert above == [0, 1]
    found = [(v["index"], v["kind"], v["limit"]) for v in violations(net) if v["element"] == "bus"]
    assert found == [(0, "overvoltage", 1.05), (1, "overvoltage", 1.05)]


def test_the_band_is_a_parameter() -> None:
    net = test_sim.run_network()
    assert [v["index"] for v in violations(net, (0.97, 1.01)) if v["element"] == "bus"] == [0, 2]
    with pytest.raises(ValueError, match="band"):
        details(net, (1.05, 0.95))
    with pytest.raises(ValueError, match="band"):
        violations(net, (math.nan, 1.05))


def test_own_limits_override_the_defaults() -> None:
    net = seed()
    net.bus["min_vm_pu"] = [math.nan, math.nan, 0.97]  # bus 2 (0.964) now too low; the others use the band
    net.bus["max_vm_pu"] = [1.01, math.nan, math.nan]  # bus 0 (1.02) now too high
    net.line["max_loading_percent"] = [120.0]  # the line (117.8 %) is now within its limit
    net.trafo["max_loading_percent"] = [25.0]  # the transformer (29.3 %) is not
    found = [(v["element"], v["index"], v["kind"], v["limit"]) for v in details(net)["violations"]]
    assert found == [
        ("bus", 0, "overvoltage", 1.01),
        ("bus", 2, "undervoltage", 0.97),
        ("transformer", 0, "overload", 25.0),
    ]
    assert summary(violations(net)) == expected_violations(net)
    net.line["max_loading_percent"] = [math.nan]  # not set: 100 %
    assert [(v["element"], v["limit"]) for v in violations(net)][-2:] == [("line", 100.0), ("transformer", 25.0)]


def test_case9s_own_voltage_band_is_wider_than_the_default() -> None:
    net = pn.case9()
    net.gen["vm_pu"] = 0.94  # every bus sags below 0.95, but case9's own limit is 0.9
    net.ext_grid["vm_pu"] = 0.94
    solved(net)
    assert (net.res_bus.vm_pu < 0.95).all()
    assert (net.bus.min_vm_pu == 0.9).all()
    below = [label for label in net.bus.index if net.res_bus.at[label, "vm_pu"] < 0.9]
    assert below == [8]
    found = [(v["index"], v["kind"], v["limit"]) for v in violations(net) if v["element"] == "bus"]
    assert found == [(8, "undervoltage", 0.9)]


def test_an_out_of_service_line_has_no_results_and_breaks_no_limit() -> None:
    net = seed()
    net.line.at[0, "in_service"] = False
    solved(net)
    found = details(net)
    line = found["lines"][0]
    assert (line["loading_percent"], line["i_ka"]) == (None, None)  # NaN in res_line
    assert (line["pl_mw"], line["p_from_mw"]) == (net.res_line.at[0, "pl_mw"], net.res_line.at[0, "p_from_mw"])
    assert [bus["vm_pu"] for bus in found["buses"]][2] is None  # the load's bus is cut off
    assert found["violations"] == []
    json.dumps(found, allow_nan=False)


def test_an_element_out_of_service_breaks_no_limit_whatever_its_result_row_says() -> None:
    net = seed()
    net.line.at[0, "in_service"] = False  # res_line still says 117.8 %
    net.bus.at[2, "in_service"] = False
    assert violations(net, (0.97, 1.05)) == []


def test_an_out_of_service_bus_has_no_results() -> None:
    net = seed()
    extra = pp.create_bus(net, vn_kv=0.4, name="Spare", in_service=False)
    solved(net)
    spare = details(net)["buses"][extra]
    assert spare == {"index": extra, "name": "Spare", "vn_kv": 0.4} | dict.fromkeys(KEYS["buses"][3:])


def test_results_are_joined_by_index_not_by_position() -> None:
    net = pp.create_empty_network()
    pp.create_bus(net, vn_kv=20.0, name="HV", index=7)
    pp.create_bus(net, vn_kv=0.4, name="LV", index=3)
    pp.create_bus(net, vn_kv=0.4, index=5)  # no name
    pp.create_ext_grid(net, bus=7, vm_pu=1.0, index=4)
    pp.create_transformer(net, hv_bus=7, lv_bus=3, std_type="0.4 MVA 20/0.4 kV", index=9)
    pp.create_line(net, 3, 5, length_km=0.05, std_type="NAYY 4x50 SE", name="L", index=2)
    pp.create_load(net, bus=5, p_mw=0.08, q_mvar=0.02)
    solved(net)
    net.res_bus = net.res_bus.loc[[5, 7, 3]]  # the result table in another order than the element table
    found = details(net)
    assert [(bus["index"], bus["name"]) for bus in found["buses"]] == [(7, "HV"), (3, "LV"), (5, None)]
    assert found["buses"] == expected_rows(net, "buses")
    assert [row["index"] for key in ("lines", "transformers", "external_grids") for row in found[key]] == [2, 9, 4]
    assert found["buses"][0]["vm_pu"] == 1.0
    net.res_bus = net.res_bus.iloc[0:0]  # no result rows at all: no values
    assert {bus["vm_pu"] for bus in details(net)["buses"]} == {None}


def test_a_network_without_results_is_refused() -> None:
    with pytest.raises(ValueError, match="no power-flow results"):
        details(test_sim.build_network())
    net = test_sim.build_network(load_p_mw=1000)
    with pytest.raises(pp.LoadflowNotConverged):
        pp.runpp(net)
    with pytest.raises(ValueError, match="no power-flow results"):
        details(net)


def _imported(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        return [node.module]
    return []


def test_the_package_imports_only_the_standard_library_at_import_time() -> None:
    """Module level: the standard library only (so the event-loop process can import the package
    cheaply), never asyncio; pandapower only inside the functions that build or load networks;
    never the web side (aiohttp, or powersim outside the package) anywhere."""
    never = {"asyncio", "aiohttp", "powersim"}
    for path in GRID.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            for name in _imported(node):
                root = name.partition(".")[0]
                assert root in sys.stdlib_module_names, (path, name)
                assert root not in never, (path, name)
        for node in ast.walk(tree):
            for name in _imported(node):
                assert name.partition(".")[0] not in never, (path, name)
