"""The simulation itself, without a server: values, and the reused-network fast path."""

from __future__ import annotations

import logging

import pandapower as pp
import pandas as pd
import pytest

import test_sim

RESULT_TABLES = ("res_bus", "res_line", "res_trafo", "res_ext_grid", "res_load")
INPUT_TABLES = ("bus", "line", "trafo", "load", "ext_grid")


@pytest.fixture(autouse=True)
def _quiet_pandapower() -> None:
    logging.getLogger("pandapower").setLevel(logging.ERROR)  # numba is not installed on purpose


def test_run_simulation_returns_the_load_power() -> None:
    active, reactive = test_sim.run_simulation()
    assert (type(active), type(reactive)) == (float, float)
    assert (active, reactive) == (0.1, 0.05)


def test_every_run_is_bit_for_bit_a_fresh_networks_run() -> None:
    fresh = test_sim.build_network()
    pp.runpp(fresh)
    assert fresh.res_bus.vm_pu.iloc[2] < 1.0  # a real power flow: the load bus sags
    inputs = {table: fresh[table].copy(deep=True) for table in INPUT_TABLES}
    for _ in range(5):  # nothing one run leaves behind changes the next
        net = test_sim.run_network()
        for table in RESULT_TABLES:
            pd.testing.assert_frame_equal(net[table], fresh[table], check_exact=True)
        for table in INPUT_TABLES:
            pd.testing.assert_frame_equal(net[table], inputs[table], check_exact=True)


def test_a_failed_run_rebuilds_the_network() -> None:
    """A real divergence (1000 MW through a 0.4 MVA transformer) must not poison later runs."""
    broken = test_sim._network
    broken.load.loc[0, "p_mw"] = 1000.0
    with pytest.raises(pp.LoadflowNotConverged):
        test_sim.run_simulation()
    assert test_sim._network is not broken
    assert test_sim.run_simulation() == (0.1, 0.05)
