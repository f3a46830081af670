"""Which columns of which tables a run reports: one fixed table, one function reading it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypedDict

from .values import Net, Row, column, in_service, labels, number, text


@dataclass(frozen=True)
class Section:
    """One list in details(): rows of element table `table`, each with the index, the name,
    `own` columns of the element table and `results` columns of res_<table>, joined by index."""

    key: str
    table: str
    own: tuple[str, ...] = ()
    results: tuple[str, ...] = ()

    @property
    def result_table(self) -> str:
        return f"res_{self.table}"


SECTIONS = (
    Section("buses", "bus", own=("vn_kv",), results=("vm_pu", "va_degree", "p_mw", "q_mvar")),
    Section("lines", "line", results=("loading_percent", "p_from_mw", "q_from_mvar", "pl_mw", "ql_mvar", "i_ka")),
    Section("transformers", "trafo", results=("loading_percent", "pl_mw", "ql_mvar")),
    Section("external_grids", "ext_grid", results=("p_mw", "q_mvar")),
)

# Where losses are counted: (element table, its result table's active and reactive loss columns).
LOSS_TABLES = ("line", "trafo")


class Losses(TypedDict):
    p_mw: float
    q_mvar: float


def rows(net: Net, section: Section) -> list[Row]:
    """One row per element of `section.table`, in the element table's order; an element without
    a result (out of service, isolated) has None where its result table holds NaN."""
    index = labels(net, section.table)
    columns: dict[str, list[str | float | None]] = {
        "name": [text(cell) for cell in column(net, section.table, "name", index)]
    }
    for name in section.own:
        columns[name] = [number(cell) for cell in column(net, section.table, name, index)]
    for name in section.results:
        columns[name] = [number(cell) for cell in column(net, section.result_table, name, index)]
    return [{"index": label} | {name: values[i] for name, values in columns.items()} for i, label in enumerate(index)]


def _total(net: Net, loss_column: str) -> float:
    cells = (
        number(cell) for table in LOSS_TABLES for cell in column(net, f"res_{table}", loss_column, labels(net, table))
    )
    return math.fsum(cell for cell in cells if cell is not None)


def losses(net: Net) -> Losses:
    """Active and reactive losses summed over every line and two-winding transformer (exactly
    rounded sums of the result tables' pl_mw and ql_mvar; elements without results count 0)."""
    return {"p_mw": _total(net, "pl_mw"), "q_mvar": _total(net, "ql_mvar")}


def load_power(net: Net) -> tuple[float, float]:
    """The active and reactive power drawn by all loads in service (res_load's p_mw and q_mvar,
    exactly rounded sums). The seed network has one load: its own values.

    Raises ValueError when a load in service has no finite result: a total that silently left
    it out would be a wrong answer published as a right one.
    """
    index = labels(net, "load")
    serving = in_service(net, "load", index)
    totals = []
    for name in ("p_mw", "q_mvar"):
        cells = []
        for label, on, cell in zip(index, serving, column(net, "res_load", name, index), strict=True):
            if not on:
                continue
            value = number(cell)
            if value is None:
                raise ValueError(f"load {label} is in service but res_load.{name} is {cell!r}, not a finite number")
            cells.append(value)
        totals.append(math.fsum(cells))
    return totals[0], totals[1]
