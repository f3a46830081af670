"""Pure pandapower-facing code: what a solved network's tables say, as plain data.

Nothing here imports asyncio, aiohttp or the rest of powersim, and nothing imports pandapower or
pandas either: a network is read through its tables (a pandapowerNet is a dict of DataFrames),
so these functions run in the worker next to the power flow, and what they return (dicts and
lists of str, int, float and None) pickles across the process boundary and is strict JSON.
"""

from .details import Details, details
from .limits import DEFAULT_VM_BAND, Violation, check_band, violations
from .tables import SECTIONS, Losses, Section, load_power, losses, rows
from .values import Net, Row

__all__ = [
    "DEFAULT_VM_BAND",
    "SECTIONS",
    "Details",
    "Losses",
    "Net",
    "Row",
    "Section",
    "Violation",
    "check_band",
    "details",
    "load_power",
    "losses",
    "rows",
    "violations",
]
