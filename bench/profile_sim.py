"""The top of a profile of the slowest path, a simulation run, for BENCHMARKS.md."""

from __future__ import annotations

import logging


def profile_run_simulation(calls: int = 20) -> str:
    logging.getLogger("pandapower").setLevel(logging.ERROR)
    from pyinstrument import Profiler

    import test_sim

    test_sim.run_simulation()
    profiler = Profiler(interval=0.0005)
    profiler.start()
    for _ in range(calls):
        test_sim.run_simulation()
    profiler.stop()
    text = profiler.output_text(unicode=False, color=False, show_all=False)
    lines = [line for line in text.splitlines() if line.strip()]
    start = next(i for i, line in enumerate(lines) if "run_simulation" in line)
    return "\n".join(lines[start : start + 22])
