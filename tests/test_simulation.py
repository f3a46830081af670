"""The simulation itself, without a server: values, inputs, and the reused-network fast path."""

from __future__ import annotations

import inspect
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandapower as pp
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

import test_sim

RESULT_TABLES = ("res_bus", "res_line", "res_trafo", "res_ext_grid", "res_load")
INPUT_TABLES = ("bus", "line", "trafo", "load", "ext_grid")
SEED = {"load_p_mw": 0.1, "load_q_mvar": 0.05, "ext_grid_vm_pu": 1.02, "line_length_km": 0.1}
ROOT = Path(__file__).resolve().parent.parent


def _value(near_seed: tuple[float, float], valid: tuple[float, float]) -> st.SearchStrategy[float]:
    """Mostly values the power flow converges for, and some anywhere in powersim.scenario's range
    (most of which overloads the 0.4 MVA transformer until the power flow diverges)."""
    return st.one_of(st.floats(*near_seed), st.floats(*near_seed), st.floats(*valid))


valid_inputs = st.fixed_dictionaries(
    {},
    optional={
        "load_p_mw": _value((-0.15, 0.15), (-1000, 1000)),
        "load_q_mvar": _value((-0.1, 0.1), (-1000, 1000)),
        "ext_grid_vm_pu": _value((0.9, 1.1), (0.5, 1.5)),
        "line_length_km": _value((0.001, 0.2), (1e-6, 100)),
    },
)


pytestmark = pytest.mark.usefixtures("quiet_pandapower")  # numba is not installed on purpose


def fresh_run(**inputs: Any) -> pp.pandapowerNet:
    net = test_sim.build_network(**inputs)
    pp.runpp(net)
    return net


def assert_same_network(net: pp.pandapowerNet, fresh: pp.pandapowerNet) -> None:
    for table in RESULT_TABLES + INPUT_TABLES:
        pd.testing.assert_frame_equal(net[table], fresh[table], check_exact=True)


def test_run_simulation_returns_the_load_power() -> None:
    active, reactive = test_sim.run_simulation()
    assert (type(active), type(reactive)) == (float, float)
    assert (active, reactive) == (0.1, 0.05)


def test_the_seed_values_are_the_defaults_everywhere() -> None:
    for func in (test_sim.build_network, test_sim.run_network, test_sim.run_simulation):
        parameters = inspect.signature(func).parameters
        assert {name: p.default for name, p in parameters.items()} == SEED
        assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in parameters.values())
    net = test_sim.build_network()
    built = (net.load.p_mw[0], net.load.q_mvar[0], net.ext_grid.vm_pu[0], net.line.length_km[0])
    assert built == tuple(SEED.values())


def test_every_run_is_bit_for_bit_a_fresh_networks_run() -> None:
    fresh = fresh_run()
    assert fresh.res_bus.vm_pu.iloc[2] < 1.0  # a real power flow: the load bus sags
    for _ in range(5):  # nothing one run leaves behind changes the next
        assert_same_network(test_sim.run_network(), fresh)


def _outcome(run: Callable[..., pp.pandapowerNet], **inputs: float) -> pp.pandapowerNet | type[Exception]:
    try:
        return run(**inputs)
    except pp.LoadflowNotConverged as exc:
        return type(exc)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(first=valid_inputs, second=valid_inputs)
@example(first={"load_p_mw": 0.15, "ext_grid_vm_pu": 0.9, "line_length_km": 0.15}, second={})
@example(first={}, second={"load_p_mw": -0.15, "load_q_mvar": -0.1, "ext_grid_vm_pu": 1.1})
@example(first={"load_p_mw": 1000}, second={"line_length_km": 0.2, "load_q_mvar": 0.0})
@example(first={}, second={"load_p_mw": 1000})
def test_runs_with_inputs_are_bit_for_bit_fresh_networks_runs(
    first: dict[str, float], second: dict[str, float]
) -> None:
    """Any valid inputs, after any other run: the reused network equals one built with them,
    both its element tables and every result table, and the load's power is what was asked for;
    or, where the power flow diverges, it diverges for the fresh network too."""
    _outcome(test_sim.run_network, **first)
    net, fresh = _outcome(test_sim.run_network, **second), _outcome(fresh_run, **second)
    event("converged" if isinstance(fresh, pp.pandapowerNet) else "not converged")
    if not isinstance(net, pp.pandapowerNet) or not isinstance(fresh, pp.pandapowerNet):
        assert net is fresh is pp.LoadflowNotConverged
        return
    assert_same_network(net, fresh)
    expected = {**SEED, **second}
    assert (net.load.p_mw[0], net.load.q_mvar[0]) == (expected["load_p_mw"], expected["load_q_mvar"])
    assert (net.ext_grid.vm_pu[0], net.line.length_km[0]) == (expected["ext_grid_vm_pu"], expected["line_length_km"])
    assert test_sim.run_simulation(**second) == (fresh.res_load.p_mw[0], fresh.res_load.q_mvar[0])


def test_a_fresh_build_with_inputs_is_the_network_built_by_hand() -> None:
    """The reference the property test compares against, checked against pandapower directly."""
    by_hand = pp.create_empty_network()
    buses = [pp.create_bus(by_hand, vn_kv=kv, name=f"Bus {i}") for i, kv in enumerate((20.0, 0.4, 0.4), 1)]
    pp.create_ext_grid(by_hand, bus=buses[0], vm_pu=0.98, name="Grid Connection")
    pp.create_load(by_hand, bus=buses[2], p_mw=0.15, q_mvar=-0.01, name="Load")
    pp.create_transformer(by_hand, hv_bus=buses[0], lv_bus=buses[1], std_type="0.4 MVA 20/0.4 kV", name="Trafo")
    pp.create_line(by_hand, buses[1], buses[2], length_km=0.2, std_type="NAYY 4x50 SE", name="Line")
    pp.runpp(by_hand)
    inputs = {"load_p_mw": 0.15, "load_q_mvar": -0.01, "ext_grid_vm_pu": 0.98, "line_length_km": 0.2}
    assert_same_network(test_sim.run_network(**inputs), by_hand)


def _changes(**inputs: float) -> tuple[pp.pandapowerNet, pp.pandapowerNet]:
    """The seed run's results (a fresh network), and the reused network solved with `inputs`."""
    return fresh_run(), test_sim.run_network(**inputs)


def test_each_input_changes_what_it_should() -> None:
    seed, net = _changes(ext_grid_vm_pu=1.05)  # every bus voltage moves
    assert (net.res_bus.vm_pu > seed.res_bus.vm_pu).all()
    assert net.res_bus.vm_pu[0] == 1.05
    seed, net = _changes(line_length_km=0.3)  # line losses grow, the load bus sags further
    assert net.res_line.pl_mw[0] > 2 * seed.res_line.pl_mw[0]
    assert net.res_bus.vm_pu[2] < seed.res_bus.vm_pu[2]
    assert net.res_trafo.loading_percent[0] > seed.res_trafo.loading_percent[0]
    seed, net = _changes(load_p_mw=0.2)  # the load draws more active power through the grid
    assert net.res_load.p_mw[0] == 0.2
    assert net.res_ext_grid.p_mw[0] > seed.res_ext_grid.p_mw[0] + 0.1
    assert net.res_load.q_mvar[0] == seed.res_load.q_mvar[0]
    seed, net = _changes(load_q_mvar=0.1)  # and reactive power
    assert net.res_load.q_mvar[0] == 0.1
    assert net.res_ext_grid.q_mvar[0] > seed.res_ext_grid.q_mvar[0] + 0.05
    assert net.res_load.p_mw[0] == seed.res_load.p_mw[0]
    assert test_sim.run_simulation(load_p_mw=0.25, load_q_mvar=-0.125) == (0.25, -0.125)


def test_a_failed_run_rebuilds_the_network_and_raises_pandapowers_error() -> None:
    """A real divergence (1000 MW through a 0.4 MVA transformer) must not poison later runs."""
    broken = test_sim._network
    with pytest.raises(pp.LoadflowNotConverged):
        test_sim.run_simulation(load_p_mw=1000)
    assert test_sim._network is not broken
    assert test_sim.run_simulation() == (0.1, 0.05)
    assert_same_network(test_sim.run_network(line_length_km=0.2), fresh_run(line_length_km=0.2))


def test_unknown_inputs_are_refused() -> None:
    with pytest.raises(TypeError):
        test_sim.run_simulation(load_p_kw=100)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        test_sim.run_simulation(0.2)  # type: ignore[misc]


def test_the_module_never_imports_powersim() -> None:
    code = "import sys, test_sim; assert not [m for m in sys.modules if m.split('.')[0] == 'powersim']"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)
