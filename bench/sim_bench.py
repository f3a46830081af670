"""Target 4: a run_simulation() call against pp.runpp on an already-built network."""

from __future__ import annotations

import logging
import statistics
import time

from .figures import Figure, ratio_figure

CALLS = 30


def simulation_cost() -> tuple[Figure, float]:
    logging.getLogger("pandapower").setLevel(logging.ERROR)
    import pandapower as pp

    import test_sim

    test_sim.run_simulation()
    built = test_sim.build_network()
    pp.runpp(built)
    runpp = _median_ms(lambda: pp.runpp(built))
    call = _median_ms(test_sim.run_simulation)
    fresh = _median_ms(lambda: pp.runpp(test_sim.build_network()))  # what a call cost before
    figure = ratio_figure("run_simulation() per call", call, runpp, "ms", "pp.runpp on a built network", at_most=1.5,
                          note=f"building the network each call (the old way): {fresh:.1f} ms")  # fmt: skip
    return figure, fresh


def _median_ms(call: object) -> float:
    samples = []
    for _ in range(CALLS):
        start = time.perf_counter()
        call()  # type: ignore[operator]
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)
