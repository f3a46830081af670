"""The pre-check of an uploaded pandapower JSON network, before pandapower ever reads it.

pandapower's reader (pandapower/io_utils.py, `pp_hook` and `FromSerializableRegistry`, 3.5.6) is
not a sandbox. For every JSON object with `_module` and `_class` keys it:
- imports `_module` before any check of its own (`rest`, io_utils.py:811; `function`, :764), so
  naming a module runs that module's import-time code;
- answers `"_class": "function"` with the named function of any module (:762-772: `os.system`
  too; only `rest` refuses module "os", :803), and builds any `JSONSerializableClass` subclass
  of any module from the document (:826-841), controllers included;
- reads a table from the server's disk when a DataFrame's `_object` is an absolute path ending
  in ".json" (:594-597, `os.path.isabs(obj) and obj.endswith('.json')`);
- passes the entry's other keys as keyword arguments to `pd.read_json` (:564, :597) or to the
  class (:847), and decodes `_object` strings as JSON again, hooks included (:597 then :643-650
  for a table's object cells, :658, :828).

So an upload is parsed here as plain JSON, and every object that carries `_module` or `_class`,
in the document and in every `_object` string pandapower would decode, must be one of ALLOWED,
with only the keys and value shapes pandapower's writer gives it. A table's `_object` must itself
be a JSON object: that rule is what refuses file paths and URLs (JSON text never starts with "/").
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator
from typing import Any, TypeAlias

NET = ("pandapower.auxiliary", "pandapowerNet")
DATAFRAME = ("pandas.core.frame", "DataFrame")
FLOAT64 = ("numpy", "float64")

# Every (_module, _class) pair in `pandapower.to_json` output of the seed network (built and
# solved), every argument-free network in pandapower.networks (61 of them, case9 to case9241pegase,
# cigre, kerber, mv_oberrhein, lv_schutterwald, ...), a network with geodata and its own std
# types, a solved 3-phase network, groups and measurements: only NET and DATAFRAME. FLOAT64 comes
# from an optimal power flow's result. Deliberately not here, though pandapower writes them for
# other contents: controllers (net.controller), SplineCharacteristic (the *_characteristic_spline
# tables that pandapower.control.create_trafo_characteristic_object derives from
# trafo_characteristic_table; pandapower 3.0 replaced splines by such tables), numpy.int64 (only
# inside those two), Series, tuples and sets (builtins), networkx graphs, shapely geometries.
ALLOWED: frozenset[tuple[str, str]] = frozenset(
    {
        NET,  # the document's root: json_pandapowernet (io_utils.py:1173), in every file
        DATAFRAME,  # every table (bus, line, res_*, std tables...): json_dataframe (io_utils.py:1184)
        FLOAT64,  # net.res_cost after pandapower.runopp (case9): json_npfloat (io_utils.py:1267)
    }
)

# Keys beside _module/_class/_object that the writer gives each kind; the reader hands the rest
# of an entry to pd.read_json or the class as keyword arguments, so nothing else may come along.
_OPTIONS: dict[tuple[str, str], frozenset[str]] = {
    NET: frozenset(),
    DATAFRAME: frozenset(
        # json_dataframe (io_utils.py:1184-1209); the reader pops all but orient and dtype (:586-591)
        {"orient", "dtype", "is_multiindex", "is_multicolumn"}
        | {"index_name", "column_name", "index_names", "column_names"}
    ),
    FLOAT64: frozenset(),
}
_ALLOWED_MODULES = frozenset(module for module, _ in ALLOWED)

# Real files nest 6 levels (every catalog network; 7 with a group table), counted through the
# tables' embedded JSON as if each `_object` string were its parsed value. 32 leaves room for odd
# metadata a user keeps in a network and stays far below the interpreter's recursion limit, which
# pandapower's reader (json.loads, then pandas, then json.loads again inside a hook) spends per level.
MAX_NETWORK_DEPTH = 32
# JSON strings inside JSON strings: tables hold one level. pandapower itself writes two (a
# controller or characteristic inside a table), which the allow-list refuses anyway. The bound
# keeps the work of the check (each level is parsed again) within a small multiple of the upload.
MAX_EMBEDDING = 2
# pandapower's widest table has about 40 columns; reading a table costs time quadratic in its
# columns (30,000 of them: a minute), so a wide one is refused before pandapower reads it.
MAX_COLUMNS = 256
# An entry's path in a message is cut to this many characters (a hostile one can be any length).
MAX_PATH_SHOWN = 200

_EMBEDDED = object()  # a path step into the JSON text of an `_object` string
_Path: TypeAlias = tuple[Any, ...] | None  # (parent path, key), linked backwards; None is the root
_CONTAINERS = frozenset({dict, list})  # what json.loads builds that can hold an entry
_Frame: TypeAlias = tuple[Iterator[tuple[Any, Any]], _Path, int, int]  # (children, path, depth, level)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# A code point that only a lone surrogate escape can produce (a valid pair decodes to one character).
_SURROGATE = re.compile("[\ud800-\udfff]")
# Only to word the message: a table that is a file path or URL rather than JSON.
_LOCATION = re.compile(r"\s*(?:[/\\~]|\.\.|[A-Za-z][A-Za-z0-9+.\-]*:)")


class NetworkTooLarge(ValueError):
    """The upload is over the size limit; it was not parsed."""

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(f"the network document is {size} bytes, more than the limit of {limit}")

    def __reduce__(self) -> tuple[type[NetworkTooLarge], tuple[int, int]]:
        """Rebuilt from its fields: it is raised in a worker process and pickled to the server."""
        return NetworkTooLarge, (self.size, self.limit)


class UnsafeNetwork(ValueError):
    """The upload is not a network pandapower may read; `path` is the offending entry, like
    `$._object.bus._module`, with `(json)` marking a step into an `_object` string's JSON."""

    def __init__(self, path: _Path | str, reason: str) -> None:
        self.path = path if isinstance(path, str) else _render(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self) -> tuple[type[UnsafeNetwork], tuple[str, str]]:
        """Rebuilt from its fields: it is raised in a worker process and pickled to the server."""
        return UnsafeNetwork, (self.path, self.reason)


def check_network_document(raw: bytes, max_bytes: int) -> dict[str, Any]:
    """Parse an uploaded `pandapower.to_json` document and check it against the allow-list.

    Returns the parsed document (`_object` strings left as they are); raises NetworkTooLarge
    (before parsing) or UnsafeNetwork, and nothing else short of MemoryError.
    """
    if len(raw) > max_bytes:
        raise NetworkTooLarge(len(raw), max_bytes)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UnsafeNetwork(None, "not UTF-8 text") from None
    # pandapower's encoder writes NaN and Infinity for non-finite floats outside the tables
    # (floatstr, io_utils.py:468-483; a std type with a NaN parameter), so they are accepted here.
    document = _parse(text, None, inner=False)
    if not isinstance(document, dict) or _pair(document) != NET:
        raise UnsafeNetwork(None, "not a pandapower network (to_json writes a pandapowerNet object)")
    _walk(document)
    return document


def _walk(document: dict[str, Any]) -> None:
    # Depth first with a stack of iterators, one per open container: memory grows with the depth
    # (bounded), not with the breadth (millions of rows). `depth` counts the containers around a
    # value, through embedded JSON; `level` counts the embedded JSON texts around it.
    stack: list[_Frame] = []
    _enter(document, None, 1, 0, stack)
    while stack:
        children, path, depth, level = stack[-1]
        for key, child in children:
            # an empty container holds nothing to check, unless it is one level too deep itself
            if type(child) in _CONTAINERS and (child or depth >= MAX_NETWORK_DEPTH):
                _enter(child, (path, key), depth + 1, level, stack)
                break
        else:
            stack.pop()


def _enter(value: dict[str, Any] | list[Any], path: _Path, depth: int, level: int, stack: list[_Frame]) -> None:
    """Check a container itself and open it on the stack if anything in it needs a look."""
    if depth > MAX_NETWORK_DEPTH:
        raise UnsafeNetwork(path, f"nested more than {MAX_NETWORK_DEPTH} levels deep")
    if isinstance(value, list):
        if not _CONTAINERS.isdisjoint(map(type, value)):  # a table's rows of plain values: skipped in C
            stack.append((iter(enumerate(value)), path, depth, level))
        return
    items: Iterable[tuple[Any, Any]] = value.items()
    if "_module" in value or "_class" in value:
        embedded = _check_entry(value, path, level)
        if embedded is not None:  # recursion bounded by MAX_EMBEDDING
            _enter(embedded, ((path, "_object"), _EMBEDDED), depth + 1, level + 1, stack)
            items = [(key, child) for key, child in items if key != "_object"]
    if not _CONTAINERS.isdisjoint(map(type, value.values())):
        stack.append((iter(items), path, depth, level))


def _check_entry(entry: dict[str, Any], path: _Path, level: int) -> dict[str, Any] | None:
    """Refuse an entry that is not allowed; for a table, return its parsed `_object`."""
    pair = _check_signature(entry, path)
    obj, where = entry["_object"], (path, "_object")
    if pair == NET:
        if not isinstance(obj, dict):
            raise UnsafeNetwork(where, "a network's _object is a JSON object of its tables")
        return None
    if pair == FLOAT64:
        # json_npfloat writes a number, or the string "nan" (io_utils.py:1269-1272)
        if not (obj == "nan" or (isinstance(obj, int | float) and not isinstance(obj, bool))):
            raise UnsafeNetwork(where, 'a float64 is a number or "nan"')
        return None
    _check_frame_options(entry, path)
    return _table(obj, where, level)


def _check_signature(entry: dict[str, Any], path: _Path) -> tuple[str, str]:
    """The entry's (_module, _class) if allowed here, with no keys the writer does not give it."""
    pair = _pair(entry)
    if pair is None:
        key = "_module" if not isinstance(entry.get("_module"), str) else "_class"
        raise UnsafeNetwork((path, key), "an entry needs both _module and _class, as strings")
    module, name = pair
    if pair not in ALLOWED:
        raise UnsafeNetwork(
            (path, "_class" if module in _ALLOWED_MODULES else "_module"),
            f"{_show(module)} / {_show(name)} is not a type a pandapower network file contains",
        )
    if (pair == NET) != (path is None):
        raise UnsafeNetwork((path, "_class"), "a pandapowerNet belongs only at the top of the document")
    for key in entry:
        if key not in ("_module", "_class", "_object") and key not in _OPTIONS[pair]:
            raise UnsafeNetwork((path, key), f"pandapower writes no such key for a {name}")
    if "_object" not in entry:
        raise UnsafeNetwork((path, "_object"), "missing")
    return pair


def _table(obj: Any, where: _Path, level: int) -> dict[str, Any]:
    """A table's `_object`: pandas JSON in a string, which the walk goes through as well."""
    if not isinstance(obj, str):
        raise UnsafeNetwork(where, "a table's _object is a string of pandas JSON")
    if level + 1 > MAX_EMBEDDING:
        raise UnsafeNetwork(where, f"JSON embedded in JSON more than {MAX_EMBEDDING} levels deep")
    if _LOCATION.match(obj):
        raise UnsafeNetwork(where, "a file path or URL, not a table (pandapower reads absolute .json paths from disk)")
    table = _parse(obj, where, inner=True)
    if not isinstance(table, dict):
        raise UnsafeNetwork(where, "a table's _object is a JSON object")
    columns = table.get("columns")
    if len(columns if isinstance(columns, list) else table) > MAX_COLUMNS:
        raise UnsafeNetwork(where, f"a table with more than {MAX_COLUMNS} columns")
    return table


def _check_frame_options(entry: dict[str, Any], path: _Path) -> None:
    """The keys json_dataframe writes beside _object, with the values it writes."""
    if "orient" in entry and entry["orient"] not in ("split", "columns"):
        raise UnsafeNetwork((path, "orient"), 'pandapower writes "split" or "columns"')
    dtype = entry.get("dtype", {})
    if not isinstance(dtype, dict) or not all(isinstance(value, str) for value in dtype.values()):
        raise UnsafeNetwork((path, "dtype"), "an object of column names to dtype names")
    for key in ("is_multiindex", "is_multicolumn"):
        if not isinstance(entry.get(key, False), bool):
            raise UnsafeNetwork((path, key), "true or false")
    for key in ("index_name", "column_name"):
        if not _is_scalar(entry.get(key)):
            raise UnsafeNetwork((path, key), "a name: a string, a number or null")
    for key in ("index_names", "column_names"):
        names = entry.get(key, [])
        if not isinstance(names, list) or not all(_is_scalar(name) for name in names):
            raise UnsafeNetwork((path, key), "a list of names")


class _NonFinite(ValueError):
    pass


def _refuse_non_finite(constant: str) -> float:
    raise _NonFinite(constant)


def _parse(text: str, path: _Path, *, inner: bool) -> Any:
    """json.loads, with every failure an UnsafeNetwork at `path`. A document nested past the
    interpreter's recursion limit fails here; anything shallower is bounded by _walk.

    A lone surrogate escape ("\\ud800") is refused anywhere: Python's parser keeps it, but pandas'
    parser (which reads the tables) drops it, so "_module\\ud800" would be no entry here and an
    entry there. Found in review; the cost is one dumps of each parsed text.
    """
    try:
        # pandas writes null, never NaN or Infinity, in a table's JSON
        value = json.loads(text, parse_constant=_refuse_non_finite if inner else None)
    except RecursionError:
        raise UnsafeNetwork(path, f"nested more than {MAX_NETWORK_DEPTH} levels deep") from None
    except _NonFinite as error:
        raise UnsafeNetwork(path, f"{error} in a table: pandas writes null for missing values") from None
    except ValueError as error:  # JSONDecodeError, or an integer past int_max_str_digits
        raise UnsafeNetwork(path, f"not JSON: {_cut(str(error), 120)}") from None
    if "\\u" in text and _SURROGATE.search(json.dumps(value, ensure_ascii=False, check_circular=False)):
        raise UnsafeNetwork(path, "a lone surrogate escape (\\ud800 to \\udfff): JSON readers disagree on it")
    return value


def _pair(entry: dict[str, Any]) -> tuple[str, str] | None:
    module, name = entry.get("_module"), entry.get("_class")
    return (module, name) if isinstance(module, str) and isinstance(name, str) else None


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int) or (isinstance(value, float) and math.isfinite(value))


def _show(name: str) -> str:
    return json.dumps(_cut(name, 60))


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _render(path: _Path) -> str:
    steps: list[str] = []  # innermost first; a path is at most MAX_NETWORK_DEPTH containers long
    while path is not None:
        path, key = path
        if key is _EMBEDDED:
            steps.append("(json)")
        elif isinstance(key, int):
            steps.append(f"[{key}]")
        elif _IDENTIFIER.match(key):
            steps.append(f".{_cut(key, 40)}")
        else:
            steps.append(f"[{json.dumps(_cut(key, 40))}]")
    rendered = "$" + "".join(reversed(steps))
    if len(rendered) <= MAX_PATH_SHOWN:
        return rendered
    half = (MAX_PATH_SHOWN - 3) // 2  # both ends: where the entry sits and what it is
    return rendered[:half] + "..." + rendered[-half:]
