"""The simulation itself, without a server: values, and the copy-based fast path."""

from __future__ import annotations

import logging

import pandapower as pp
import pandas as pd
import pytest

import test_sim

RESULT_TABLES = ("res_bus", "res_line", "res_trafo", "res_ext_grid", "res_load")


@pytest.fixture(autouse=True)
def _quiet_pandapower() -> None:
    logging.getLogger("pandapower").setLevel(logging.ERROR)  # numba is not installed on purpose


def test_run_simulation_returns_the_load_power() -> None:
    active, reactive = test_sim.run_simulation()
    assert (type(active), type(reactive)) == (float, float)
    assert (active, reactive) == (0.1, 0.05)


def test_copies_give_bit_for_bit_the_results_of_a_fresh_network() -> None:
    fresh = test_sim.build_network()
    pp.runpp(fresh)
    for _ in range(3):  # and every later run too: nothing carries over between runs
        copied = test_sim.run_network()
        for table in RESULT_TABLES:
            pd.testing.assert_frame_equal(copied[table], fresh[table], check_exact=True)
    assert fresh.res_bus.vm_pu.iloc[2] < 1.0  # a real power flow: the load bus sags


def test_the_base_network_is_never_run_or_changed() -> None:
    before = test_sim._BASE_NETWORK.bus.copy()
    test_sim.run_simulation()
    assert test_sim._BASE_NETWORK.res_bus.empty
    pd.testing.assert_frame_equal(test_sim._BASE_NETWORK.bus, before)
