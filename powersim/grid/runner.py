"""Running power flows on catalog and uploaded networks, each built or read once per worker.

A worker keeps the networks it has used in a NetworkCache, each with the Baseline taken when it
was built; every run writes all of its inputs from that baseline, so nothing one run sets is seen
by the next. A network whose run failed (or did not converge) is dropped from the cache: pandapower
may have left partial state in it, and the next run builds it anew.
"""

from __future__ import annotations

import importlib
from collections import OrderedDict
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from . import catalog
from .loading import (
    EXT_GRID_VM_PU,
    NETWORK_INPUTS,
    Baseline,
    apply_network_inputs,
    baseline,
    known_warnings,
    load_upload,
)
from .loading import counts as count_elements


@dataclass(frozen=True, slots=True)
class Prepared:
    """A network ready to run: the pandapowerNet and what its inputs start from."""

    net: Any
    base: Baseline

    def counts(self) -> dict[str, int]:
        return count_elements(self.net)


@dataclass(frozen=True, slots=True)
class Facts:
    """What the service lists about a network: plain data, to cross the process boundary."""

    counts: dict[str, int]
    inputs: tuple[str, ...]  # the network inputs that apply, in NETWORK_INPUTS order


def facts(prepared: Prepared) -> Facts:
    return Facts(prepared.counts(), tuple(name for name in NETWORK_INPUTS if name in prepared.base.inputs))


class NetworkCache:
    """The last `size` networks used, least recently used dropped first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[Hashable, Prepared] = OrderedDict()

    def get(self, key: Hashable) -> Prepared | None:
        prepared = self._entries.get(key)
        if prepared is not None:
            self._entries.move_to_end(key)
        return prepared

    def put(self, key: Hashable, prepared: Prepared) -> None:
        self._entries[key] = prepared
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def drop(self, key: Hashable) -> None:
        self._entries.pop(key, None)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries


def prepare_catalog(network_id: str) -> Prepared:
    """Build catalog entry `network_id` (UnknownNetwork if there is none) with its baseline."""
    net = catalog.build(network_id)
    return Prepared(net, baseline(net))


def prepare_upload(document: bytes, max_bytes: int, max_buses: int) -> Prepared:
    """Check and read an uploaded document (see loading.load_upload) with its baseline."""
    net = load_upload(document, max_bytes, max_buses)
    return Prepared(net, baseline(net))


def refused_inputs(base: Baseline, inputs: Mapping[str, float]) -> dict[str, str]:
    """`{name: why}` for every input given that does not apply to this network: a what-if that
    would silently change nothing is refused instead of answered with the network as built."""
    refused = {}
    for name in inputs:
        if name not in NETWORK_INPUTS:
            refused[name] = "applies to the seed network only"
        elif name not in base.inputs:
            refused[name] = not_applicable(name)
    return refused


def not_applicable(name: str) -> str:
    """Why a network input does not apply to a network (whose Baseline.inputs lacks it)."""
    if name == EXT_GRID_VM_PU:
        return "does not apply: the network has no external grid in service"
    element = "load" if name == "load_scaling" else "static generator"
    return f"does not apply: no {element} in service on this network draws or gives power"


def solve(prepared: Prepared, inputs: Mapping[str, float]) -> Any:
    """Write the inputs (all of them, from the baseline) and run pandapower's power flow; returns
    the solved net. pandapower's exceptions (LoadflowNotConverged...) propagate unchanged."""
    pandapower = importlib.import_module("pandapower")
    apply_network_inputs(
        prepared.net,
        prepared.base,
        load_scaling=inputs.get("load_scaling", 1.0),
        sgen_scaling=inputs.get("sgen_scaling", 1.0),
        ext_grid_vm_pu=inputs.get(EXT_GRID_VM_PU),
    )
    with known_warnings():
        pandapower.runpp(prepared.net)
    return prepared.net
