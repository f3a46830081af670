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
    text = profiler.output_text(unicode=False, color=False, show_all=True)
    lines = [line for line in text.splitlines() if line.strip()]
    start = next(i for i, line in enumerate(lines) if "run_simulation" in line)
    total = _seconds(lines[start])
    # Frames that take at least 3 % of the run: the shape of the cost, not every leaf.
    return "\n".join(line for line in lines[start:] if _seconds(line) >= 0.03 * total)


def _seconds(line: str) -> float:
    for token in line.split():
        try:
            return float(token)
        except ValueError:
            continue
    return 0.0
