"""Pure pandapower-facing code, run in the worker processes: which networks exist and how they
are loaded (catalog, loading, the upload pre-check in upload), and what a solved network's
tables say, as plain data (details, limits, tables).

Nothing here imports asyncio, aiohttp or the rest of powersim, and no module imports pandapower
or pandas when it is imported: reading results goes through the tables (a pandapowerNet is a
dict of DataFrames), and building or loading networks imports pandapower inside the functions
that need it. What these functions return (dicts and lists of str, int, float and None) pickles
across the process boundary and is strict JSON. The package's own names are re-exported below;
the catalog, loading and upload modules are imported by name where they are used.
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
