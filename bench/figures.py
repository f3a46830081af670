"""A measured figure: value, same-run baseline, their ratio and the target it is held to."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    name: str
    measured: float
    baseline: float
    unit: str
    baseline_label: str
    target: str  # e.g. ">= 0.7 x" or "<= 1.5 x" or "<= 100 ms"
    ratio: float
    passed: bool
    note: str = ""


def median_of(runs: int, measure: Callable[[], float]) -> float:
    return statistics.median(measure() for _ in range(runs))


def ratio_figure(
    name: str, measured: float, baseline: float, unit: str, baseline_label: str, *, at_least: float | None = None,
    at_most: float | None = None, note: str = "",
) -> Figure:  # fmt: skip
    ratio = measured / baseline
    if at_least is not None:
        return Figure(
            name, measured, baseline, unit, baseline_label, f">= {at_least} x", ratio, ratio >= at_least, note
        )
    assert at_most is not None
    return Figure(name, measured, baseline, unit, baseline_label, f"<= {at_most} x", ratio, ratio <= at_most, note)
