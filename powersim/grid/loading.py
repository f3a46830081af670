"""A network made ready to run: its counts, whether it is usable, an upload read, a run's inputs.

pandapower is imported inside load_upload() only; everything else reads a network's tables (a
pandapowerNet is a dict of DataFrames), so the module stays cheap to import.

A run's inputs on any network (the scenarios issue's inputs are the seed network's own):
- load_scaling, sgen_scaling: factors on every load and static generator, written into
  pandapower's own `scaling` column, which runpp multiplies into p_mw and q_mvar
  (pandapower/build_bus.py, _calc_loads_and_add_on_object). The factor multiplies the network's
  own scaling, so 1 is the network as built: mv_oberrhein ships its loads at 0.6 and its static
  generators at 0, and a run at 1 equals pandapower's run of pn.mv_oberrhein(). p_mw and q_mvar
  are never touched.
- ext_grid_vm_pu: the voltage setpoint of every external grid; None keeps the network's own.
Every run writes all three from the Baseline taken when the network was built or read, so a run
never sees what an earlier run on the same (cached) network object set.
"""

from __future__ import annotations

import importlib
import math
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from .upload import check_network_document
from .values import Net, has

# What counts() reports, each the sum of the rows of these pandapower tables. Transformers are
# two- and three-winding ones (details() lists only trafo; no catalog network has a trafo3w).
# Generators are voltage-controlled (gen) and static ones (sgen: PV, wind, CHP): mv_oberrhein has
# 153 static generators and no gen, and "0 generators" would misdescribe it. The slack is
# counted apart, as external_grids.
COUNTED: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "buses": ("bus",),
        "lines": ("line",),
        "transformers": ("trafo", "trafo3w"),
        "loads": ("load",),
        "generators": ("gen", "sgen"),
        "external_grids": ("ext_grid",),
    }
)

# Every table of a network (element, result and cost tables alike) may hold at most this many rows
# per allowed bus. Real grids stay well below: case9241pegase has 1.5 lines and 0.8 shunts per bus,
# mv_oberrhein 1.8 switches per bus. Runtime grows with branches and elements as well as buses, so
# the bus limit alone would let a network of 1 bus and a million loads through.
ROWS_PER_BUS = 4
# A pandapower error in a message is cut to this many characters (its text can quote the upload).
MAX_READ_ERROR = 200

LOAD_SCALING = "load_scaling"
SGEN_SCALING = "sgen_scaling"
EXT_GRID_VM_PU = "ext_grid_vm_pu"
NETWORK_INPUTS = (LOAD_SCALING, SGEN_SCALING, EXT_GRID_VM_PU)

# The columns this module reads or writes: they must be numbers (bools count) wherever a table
# has rows, or the inputs could not be applied. gen's `slack` is optional (older files lack it).
_NUMERIC = {
    "load": ("p_mw", "q_mvar", "scaling", "in_service"),
    "sgen": ("p_mw", "q_mvar", "scaling", "in_service"),
    "ext_grid": ("vm_pu", "in_service"),
    "gen": ("in_service",),
}
_NUMBER_KINDS = frozenset("biuf")  # numpy dtype kinds: bool, int, unsigned, float
# Every table counts() or the inputs read: an upload can replace any of them with a plain value.
_TABLES = ("bus", "line", "trafo", "trafo3w", "load", "sgen", "gen", "ext_grid")


class UnusableNetwork(ValueError):
    """pandapower cannot read the network, or it is not one powersim runs; the message says why."""


@dataclass(frozen=True, slots=True)
class Column:
    """One column of one table as the network was built: its index labels and values."""

    labels: tuple[Any, ...]
    values: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class Baseline:
    """The network's own values of what a run's inputs write, taken before any run."""

    load_scaling: Column
    sgen_scaling: Column
    ext_grid_vm_pu: Column
    inputs: frozenset[str]  # inputs_that_apply() to the network as built


def _rows(net: Net, table: str) -> int:
    return len(net[table]) if has(net, table) else 0


def counts(net: Net) -> dict[str, int]:
    """Buses, lines, transformers, loads, generators and external grids: see COUNTED. Every row
    counts, in service or not."""
    return {key: sum(_rows(net, table) for table in tables) for key, tables in COUNTED.items()}


def check_usable(net: Net, max_buses: int) -> None:
    """Raise UnusableNetwork unless the network has at least one bus, at most `max_buses` of them,
    at most ROWS_PER_BUS * max_buses rows in every table, the columns the inputs use as numbers,
    and an external grid or slack generator in service (pandapower's reference bus)."""
    for table in _TABLES:
        if not has(net, table):
            raise UnusableNetwork(f"its {table!r} entry is not a table")
    buses = _rows(net, "bus")
    if buses > max_buses:
        raise UnusableNetwork(f"it has {buses} buses, more than the limit of {max_buses}")
    max_rows = ROWS_PER_BUS * max_buses
    for key, value in net.items():
        if hasattr(value, "columns") and len(value) > max_rows:
            raise UnusableNetwork(
                f"its {str(key)[:40]!r} table has {len(value)} rows, more than the limit of {max_rows}"
                f" ({ROWS_PER_BUS} per allowed bus)"
            )
    if buses == 0:
        raise UnusableNetwork("it has no bus")
    for table, columns in _NUMERIC.items():
        for name in columns:
            if _rows(net, table) and not _numeric(net[table], name):
                raise UnusableNetwork(f"its {table} table has no numeric {name!r} column")
    if not (_any_in_service(net, "ext_grid") or _any_in_service(net, "gen", "slack")):
        raise UnusableNetwork(
            "it has no external grid or slack generator in service: pandapower needs one as the reference"
        )


def _numeric(rows: Any, name: str) -> bool:
    """Whether the table has exactly one column `name`, of numbers (a repeated name selects several)."""
    if name not in rows.columns:
        return False
    column = rows[name]
    return column.ndim == 1 and column.dtype.kind in _NUMBER_KINDS


def load_upload(raw: bytes, max_bytes: int, max_buses: int) -> Any:
    """The pandapowerNet of an uploaded `pandapower.to_json` document, if it is usable.

    Raises what check_network_document raises (NetworkTooLarge, UnsafeNetwork), before pandapower
    sees a byte; then UnusableNetwork. The document is read as written (convert=False: no format
    conversion, which is for files of older pandapower versions and runs more code on them).
    """
    check_network_document(raw, max_bytes)
    pandapower = importlib.import_module("pandapower")
    try:
        net = pandapower.from_json_string(raw.decode("utf-8"), convert=False)
    except MemoryError:  # a network too large for the worker's memory cap: a failed run, not a 422
        raise
    except Exception as error:  # noqa: BLE001 -- pandas and pandapower raise any type on data they cannot read
        text = str(error)
        text = text if len(text) <= MAX_READ_ERROR else text[: MAX_READ_ERROR - 3] + "..."
        raise UnusableNetwork(f"pandapower could not read it: {type(error).__name__}: {text}") from None
    check_usable(net, max_buses)
    check_plain(net)
    # A run uses pandapower's default options, whatever the file asks: an upload's own options
    # (init="results" starts each run from the last one's results) would carry state between runs.
    net["user_pf_options"] = {}
    return net


# What a network read from a checked upload may hold outside its tables' numeric columns.
_PLAIN = (str, int, float, bool, type(None))


def check_plain(net: Net) -> None:
    """Raise UnusableNetwork unless every value in the network is plain data: tables whose cells
    are strings, numbers, booleans or null, and dicts and lists of those. A second line behind the
    upload pre-check: any object pandapower's reader made from a file (a function, a module, a
    table read from disk into a cell) is refused here even if the pre-check missed its entry."""
    numpy = importlib.import_module("numpy")
    for key, value in net.items():
        if hasattr(value, "columns") and hasattr(value, "dtypes"):
            for position, dtype in enumerate(value.dtypes):
                if dtype.kind == "O":
                    for cell in value.iloc[:, position].tolist():
                        if not isinstance(cell, _PLAIN):
                            raise UnusableNetwork(f"its {str(key)[:40]!r} table holds a {type(cell).__name__}")
        else:
            _check_plain_value(value, str(key), numpy)


def _check_plain_value(value: Any, where: str, numpy: Any) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
            stack.extend(item.keys())
        elif isinstance(item, list | tuple):
            stack.extend(item)
        elif not isinstance(item, _PLAIN) and not isinstance(item, numpy.generic):
            raise UnusableNetwork(f"its {where[:40]!r} entry holds a {type(item).__name__}")


def _any_in_service(net: Net, table: str, flag: str | None = None) -> bool:
    """Whether any element of `table` is in service (and has a true `flag` column, if given)."""
    if not _rows(net, table) or (flag is not None and flag not in net[table]):
        return False
    rows = net[table]
    chosen = rows["in_service"].astype(bool)
    return bool((chosen & rows[flag].astype(bool)).any() if flag is not None else chosen.any())


def _scaled(net: Net, table: str) -> bool:
    """Whether any element of `table` in service draws or gives power a factor would change."""
    if not _rows(net, table):
        return False
    rows = net[table]
    powered = (rows["p_mw"] != 0) | (rows["q_mvar"] != 0)
    return bool((rows["in_service"].astype(bool) & (rows["scaling"] != 0) & powered).any())


def inputs_that_apply(net: Net) -> frozenset[str]:
    """The network inputs that change something on this network as it stands: load_scaling where a
    load in service has power and a non-zero scaling, sgen_scaling likewise for static generators
    (not on mv_oberrhein, whose generators pandapower ships at scaling 0), ext_grid_vm_pu where an
    external grid is in service. Call it before any run (apply_network_inputs writes scaling);
    afterwards, Baseline.inputs has the answer."""
    found = set()
    if _scaled(net, "load"):
        found.add(LOAD_SCALING)
    if _scaled(net, "sgen"):
        found.add(SGEN_SCALING)
    if _any_in_service(net, "ext_grid"):
        found.add(EXT_GRID_VM_PU)
    return frozenset(found)


def _column(net: Net, table: str, name: str) -> Column:
    rows = net[table]
    if len(rows) == 0:  # an uploaded empty table may lack the column
        return Column((), ())
    return Column(tuple(rows.index.tolist()), tuple(float(value) for value in rows[name].tolist()))


def baseline(net: Net) -> Baseline:
    """What apply_network_inputs starts every run from: take it once, right after building or
    reading the network (a checked one: see check_usable), and keep it with the network."""
    return Baseline(
        load_scaling=_column(net, "load", "scaling"),
        sgen_scaling=_column(net, "sgen", "scaling"),
        ext_grid_vm_pu=_column(net, "ext_grid", "vm_pu"),
        inputs=inputs_that_apply(net),
    )


def _write(net: Net, table: str, name: str, own: Column, values: list[float]) -> None:
    if tuple(net[table].index.tolist()) != own.labels:
        raise ValueError(f"the {table} table is not the one the baseline was taken of")
    net[table][name] = values  # by position, which the labels just matched


def apply_network_inputs(
    net: Net,
    base: Baseline,
    *,
    load_scaling: float = 1.0,
    sgen_scaling: float = 1.0,
    ext_grid_vm_pu: float | None = None,
) -> None:
    """Write a run's network inputs into `net`, all of them from `base`, whatever ran before.

    An input that does not apply (not in base.inputs) changes nothing; refusing it is the caller's
    choice. Ranges are the caller's too; a non-finite value is a ValueError.
    """
    for name, value in ((LOAD_SCALING, load_scaling), (SGEN_SCALING, sgen_scaling), (EXT_GRID_VM_PU, ext_grid_vm_pu)):
        if value is not None and not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, not {value!r}")
    own = base.load_scaling
    _write(net, "load", "scaling", own, [value * load_scaling for value in own.values])
    own = base.sgen_scaling
    _write(net, "sgen", "scaling", own, [value * sgen_scaling for value in own.values])
    own = base.ext_grid_vm_pu
    vm_pu = list(own.values) if ext_grid_vm_pu is None else [float(ext_grid_vm_pu)] * len(own.values)
    _write(net, "ext_grid", "vm_pu", own, vm_pu)


@contextmanager
def known_warnings() -> Iterator[None]:
    """Around pandapower.runpp: silence the DeprecationWarning pandapower 3.5.6 gives on every
    power flow of its own stored networks with transformers (case14 to case9241pegase,
    mv_oberrhein; not cigre_mv): their files predate pandapower 3.0's tap_dependency_table
    column (pandapower/build_branch.py). It is pandapower's to fix, not the user's."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "tap_dependency_table is missing", DeprecationWarning)
        yield
