"""Turning table cells into plain values, and reading columns by index."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

# A pandapowerNet, as far as this package needs to know: a mapping of table names to DataFrames.
# (pandapower and pandas ship no type information; the tables stay `Any`.)
Net = Mapping[str, Any]
Value = str | int | float | None
Row = dict[str, Value]


def number(cell: Any) -> float | None:
    """A float as the table holds it; None for a missing value (NaN, None) or a non-finite one,
    which strict JSON cannot carry."""
    if cell is None or isinstance(cell, str):
        return None
    try:
        value = float(cell)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def text(cell: object) -> str | None:
    """A name: the string, None where there is none (None, NaN), anything else as str()."""
    if cell is None:
        return None
    if isinstance(cell, str):
        return cell
    if isinstance(cell, float) and math.isnan(cell):
        return None
    return str(cell)


def has(net: Net, table: str) -> bool:
    return table in net and net[table] is not None and hasattr(net[table], "columns")


def column(net: Net, table: str, name: str, index: Any) -> list[Any]:
    """Column `name` of `table` for the labels in `index`, joined by label, never by position:
    a label the table lacks, or a column it does not have, reads as None."""
    if not has(net, table) or name not in net[table].columns:
        return [None] * len(index)
    values: list[Any] = net[table][name].reindex(index).tolist()
    return values


def in_service(net: Net, table: str, index: Any) -> list[bool]:
    """Whether each element counts: pandapower skips those whose in_service is false; a table
    without the column (or a label it lacks) counts as in service."""
    return [flag is None or bool(flag) for flag in column(net, table, "in_service", index)]


def labels(net: Net, table: str) -> list[int]:
    """The element table's index labels, as ints."""
    return [int(label) for label in net[table].index] if has(net, table) else []
