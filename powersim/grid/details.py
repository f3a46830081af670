"""Everything a run reports about its network, in one JSON-ready dict."""

from __future__ import annotations

from typing import TypedDict

from .limits import DEFAULT_VM_BAND, Violation, check_band, violations
from .tables import SECTIONS, Losses, losses, rows
from .values import Net, Row


class Details(TypedDict):
    buses: list[Row]
    lines: list[Row]
    transformers: list[Row]
    external_grids: list[Row]
    losses: Losses
    violations: list[Violation]


def details(net: Net, vm_band: tuple[float, float] = DEFAULT_VM_BAND) -> Details:
    """The solved network's buses, lines, transformers and external grids (the columns in
    tables.SECTIONS, numbers exactly as the result tables hold them, NaN as None), total losses
    and limit violations (limits.violations, with `vm_band` for buses without their own limits).

    Raises ValueError for a network pandapower has not solved (net.converged false) or a bad band.
    """
    if not bool(net.get("converged", False)):
        raise ValueError("the network has no power-flow results (net.converged is false)")
    check_band(vm_band)
    sections = {section.key: rows(net, section) for section in SECTIONS}
    return Details(
        buses=sections["buses"],
        lines=sections["lines"],
        transformers=sections["transformers"],
        external_grids=sections["external_grids"],
        losses=losses(net),
        violations=violations(net, vm_band),
    )
