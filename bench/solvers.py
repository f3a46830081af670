"""Issue 14, step 1: what each way of running a power flow costs, before choosing one.

Per network (the seed, case118, case9241pegase), in one process, medians of several calls:
- plain `pp.runpp(net)` on an already-built network: the baseline every ratio is against;
- pandapower's `recycle` (reuse the internal arrays; only the loads' P and Q, and the generators,
  refreshed), after one plain run;
- `pp.runpp(net, lightsim2grid=True)`: lightsim2grid's C++ Newton-Raphson inside pandapower;
- lightsim2grid's own grid model (`init_from_pandapower`, then `ac_pf`): the solve alone, the floor;
- numba, when importable: pandapower's own jit-compiled Jacobian, after its compile.

lightsim2grid and numba are not in requirements.txt: install them beside the venv to measure,
    .venv/bin/pip install --target /tmp/benchlibs --no-deps lightsim2grid numba llvmlite
    PYTHONPATH=/tmp/benchlibs .venv/bin/python -m bench.solvers
(a separate target, so that the test suite's pandapower does not pick numba up). Each variant's
voltages are compared with the plain run's: a variant that is fast but wrong is reported as such.
"""

from __future__ import annotations

import importlib
import json
import logging
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

CALLS = {"seed": 60, "case118": 40, "case9241pegase": 8}


def _median_ms(call: Callable[[], object], calls: int) -> tuple[float, float]:
    samples = []
    for _ in range(calls):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    quartiles = statistics.quantiles(samples, n=4)
    return statistics.median(samples), quartiles[2] - quartiles[0]


def _build(network_id: str) -> Any:
    if network_id == "seed":
        return importlib.import_module("test_sim").build_network()
    return getattr(importlib.import_module("pandapower.networks"), network_id)()


def measure(network_id: str) -> dict[str, Any]:
    pp = importlib.import_module("pandapower")
    numpy = importlib.import_module("numpy")
    calls = CALLS[network_id]
    net = _build(network_id)
    pp.runpp(net, numba=False)
    reference = net.res_bus.vm_pu.to_numpy().copy()
    rows: dict[str, Any] = {"buses": len(net.bus)}

    def record(name: str, call: Callable[[], object], vm: Callable[[], Any] | None = None) -> None:
        call()  # warm
        median, iqr = _median_ms(call, calls)
        error = float(numpy.max(numpy.abs((vm or (lambda: net.res_bus.vm_pu.to_numpy()))() - reference)))
        rows[name] = {"ms": round(median, 3), "iqr_ms": round(iqr, 3), "max_dvm_pu": error}

    record("runpp", lambda: pp.runpp(net, numba=False))
    recycle = {"bus_pq": True, "gen": True, "trafo": False}
    record("runpp_recycle", lambda: pp.runpp(net, numba=False, recycle=recycle))
    try:
        importlib.import_module("numba")
        fresh = _build(network_id)
        record("runpp_numba", lambda: pp.runpp(fresh, numba=True), lambda: fresh.res_bus.vm_pu.to_numpy())
    except ImportError:
        rows["runpp_numba"] = "numba not importable"
    try:
        network = importlib.import_module("lightsim2grid.network")
    except ImportError:
        rows["lightsim2grid"] = "not importable"
        return rows
    other = _build(network_id)
    record(
        "runpp_lightsim2grid",
        lambda: pp.runpp(other, numba=False, lightsim2grid=True),
        lambda: other.res_bus.vm_pu.to_numpy(),
    )
    model = network.init_from_pandapower(net)
    # A flat start at the slack's set point, one entry per bus of lightsim2grid's model (it may add
    # buses of its own); an empty answer is a solve that did not converge.
    start_v = numpy.full(model.total_bus(), complex(float(net.ext_grid.vm_pu.iloc[0]), 0.0))
    solved: list[Any] = []

    def solve() -> None:
        solved[:] = [model.ac_pf(start_v, 10, 1e-8)]

    solve()
    if len(solved[0]) == 0:
        rows["lightsim2grid_ac_pf"] = "did not converge from a flat start"
        return rows
    record("lightsim2grid_ac_pf", solve, lambda: numpy.abs(solved[0])[: len(reference)])
    return rows


def main() -> None:
    logging.getLogger("pandapower").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")
    wanted = sys.argv[1:] or list(CALLS)
    print(json.dumps({network_id: measure(network_id) for network_id in wanted}, indent=2))


if __name__ == "__main__":
    main()
