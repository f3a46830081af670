"""Limit violations of a solved network: bus voltages outside their band, overloaded branches.

Limits, as pandapower's own contingency and result_info code reads them: a bus's min_vm_pu and
max_vm_pu where the bus table has those columns and the value is set, otherwise the band given;
a line's or transformer's max_loading_percent where set, otherwise 100 %. A value equal to its
limit is within it. Elements out of service, or without a result (NaN), break no limit.
"""

from __future__ import annotations

import math
from typing import Any, Literal, TypedDict

from .values import Net, column, in_service, labels, number, text

DEFAULT_VM_BAND = (0.95, 1.05)
DEFAULT_MAX_LOADING_PERCENT = 100.0
# The branches whose loading is checked: (element name in a violation, pandapower table).
LOADED: tuple[tuple[Literal["line", "transformer"], str], ...] = (("line", "line"), ("transformer", "trafo"))


class Violation(TypedDict):
    element: Literal["bus", "line", "transformer"]
    index: int
    name: str | None
    kind: Literal["undervoltage", "overvoltage", "overload"]
    value: float
    limit: float


def check_band(vm_band: tuple[float, float]) -> tuple[float, float]:
    low, high = (float(bound) for bound in vm_band)
    if not (math.isfinite(low) and math.isfinite(high) and 0 < low < high):
        raise ValueError(f"the voltage band must be two finite numbers 0 < low < high, not {vm_band!r}")
    return low, high


def _limits(net: Net, table: str, name: str, index: list[int], default: float) -> list[float]:
    """The element's own limit where its table has the column and a value, else `default`."""
    own = (number(cell) for cell in column(net, table, name, index))
    return [default if limit is None else limit for limit in own]


def _elements(net: Net, table: str, result: str, index: list[int]) -> list[tuple[int, Any, float | None]]:
    """(label, name, result value) of every element in service; out of service ones give None."""
    names = column(net, table, "name", index)
    values = column(net, f"res_{table}", result, index)
    serving = in_service(net, table, index)
    return [(label, names[i], number(values[i]) if serving[i] else None) for i, label in enumerate(index)]


def _voltage(net: Net, low: float, high: float) -> list[Violation]:
    index = labels(net, "bus")
    lows = _limits(net, "bus", "min_vm_pu", index, low)
    highs = _limits(net, "bus", "max_vm_pu", index, high)
    found: list[Violation] = []
    for i, (label, name, vm) in enumerate(_elements(net, "bus", "vm_pu", index)):
        if vm is not None and vm < lows[i]:
            found.append(
                Violation(element="bus", index=label, name=text(name), kind="undervoltage", value=vm, limit=lows[i])
            )
        elif vm is not None and vm > highs[i]:
            found.append(
                Violation(element="bus", index=label, name=text(name), kind="overvoltage", value=vm, limit=highs[i])
            )
    return found


def _loading(net: Net, element: Literal["line", "transformer"], table: str) -> list[Violation]:
    index = labels(net, table)
    limits = _limits(net, table, "max_loading_percent", index, DEFAULT_MAX_LOADING_PERCENT)
    return [
        Violation(element=element, index=label, name=text(name), kind="overload", value=loading, limit=limits[i])
        for i, (label, name, loading) in enumerate(_elements(net, table, "loading_percent", index))
        if loading is not None and loading > limits[i]
    ]


def violations(net: Net, vm_band: tuple[float, float] = DEFAULT_VM_BAND) -> list[Violation]:
    """Every limit the solved network breaks: buses first, then lines, then transformers, each
    in its table's order."""
    found = _voltage(net, *check_band(vm_band))
    for element, table in LOADED:
        found += _loading(net, element, table)
    return found
