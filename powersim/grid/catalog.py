"""The networks a run can use by id: the seed network and standard grids of pandapower.networks.

Each is built on demand by its own function (pandapower's, or test_sim's for the seed): nothing
of a network is copied into this repository. pandapower is imported only inside build(), so this
module is cheap to import in the event-loop process (the entries are plain data to list).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

from .loading import known_warnings

SEED = "seed"


@dataclass(frozen=True, slots=True)
class Entry:
    id: str
    name: str  # for people: what the grid is, where it comes from
    source: Literal["builtin", "catalog"]  # builtin: the seed network; catalog: pandapower.networks
    function: str  # "module.function" that builds it, called with no arguments

    def build(self) -> Any:
        """A fresh pandapowerNet, exactly as the function builds it (each call a new object)."""
        module, _, function = self.function.rpartition(".")
        builder = getattr(importlib.import_module(module), function)
        with known_warnings():  # mv_oberrhein runs a power flow while it builds
            return builder()


class UnknownNetwork(LookupError):
    # args is (network_id,) alone, so that it pickles across the worker's process boundary
    def __init__(self, network_id: str) -> None:
        self.network_id = network_id
        super().__init__(network_id)

    def __str__(self) -> str:
        return f"no network {self.network_id!r} in the catalog"


def _pn(network_id: str, name: str, function: str | None = None) -> Entry:
    return Entry(network_id, name, "catalog", f"pandapower.networks.{function or network_id}")


_ENTRIES = (
    # The user's module (not pandapower's): a run without "network" uses it, as before networks.
    Entry(
        SEED,
        "Seed network: 3 buses, one transformer, one line, one load (test_sim.py)",
        "builtin",
        "test_sim.build_network",
    ),
    _pn("case9", "IEEE 9-bus (Anderson and Fouad, from PYPOWER)"),
    _pn("case14", "IEEE 14-bus (from PYPOWER)"),
    _pn("case30", "IEEE 30-bus (from PYPOWER)"),
    _pn("case57", "IEEE 57-bus (from PYPOWER)"),
    _pn("case118", "IEEE 118-bus (from PYPOWER)"),
    _pn("case300", "IEEE 300-bus (from PYPOWER)"),
    _pn("case1354pegase", "PEGASE 1354-bus: part of the European high-voltage grid (from MATPOWER)"),
    _pn("case2869pegase", "PEGASE 2869-bus: part of the European high-voltage grid (from MATPOWER)"),
    _pn("case9241pegase", "PEGASE 9241-bus: the European high-voltage grid (from MATPOWER)"),
    # Its default scenario, "load": loads at scaling 0.6, static generators at 0 (pandapower's own).
    _pn("mv_oberrhein", "MV Oberrhein: a German 20 kV distribution grid, heavy-load case"),
    _pn("cigre_mv", "CIGRE medium-voltage benchmark grid (without distributed generation)", "create_cigre_network_mv"),
)

CATALOG: Mapping[str, Entry] = MappingProxyType({entry.id: entry for entry in _ENTRIES})


def build(network_id: str) -> Any:
    """A fresh pandapowerNet of catalog entry `network_id`; UnknownNetwork if there is none.

    Each call builds anew (0.25 to 0.9 s; cache the result, with loading.baseline(), per worker).
    A power flow on most of them warns: run it inside loading.known_warnings().
    """
    try:
        entry = CATALOG[network_id]
    except KeyError:
        raise UnknownNetwork(network_id) from None
    return entry.build()
