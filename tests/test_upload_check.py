"""The pre-check of uploaded pandapower JSON (powersim/grid/upload.py): real `to_json` output
passes; every hostile kind is refused, naming its entry, before pandapower could import anything.

Each hostile payload is also shown to work on pandapower alone where that is safe to show (a
module that leaves a marker file, a harmless function, a file from tmp_path), so a refusal here
is a refusal of a real attack, not of a payload pandapower would have ignored anyway.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os.path
import sys
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandapower as pp
import pandapower.control as control
import pandapower.networks as pn
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pandapower.io_utils import DeserializationNotAllowed

import test_sim
from powersim.grid.upload import (
    ALLOWED,
    DATAFRAME,
    FLOAT64,
    MAX_NETWORK_DEPTH,
    NET,
    NetworkTooLarge,
    UnsafeNetwork,
    check_network_document,
)

LIMIT = 20_000_000  # POWERSIM_MAX_NETWORK_BYTES' default


pytestmark = pytest.mark.usefixtures("quiet_pandapower")  # numba is not installed on purpose


def _own_std_types_and_geodata() -> pp.pandapowerNet:
    net = pp.create_empty_network()
    b1 = pp.create_bus(net, 20.0, geodata=(0.0, 0.0))
    b2 = pp.create_bus(net, 20.0, geodata=(1.0, 1.0))
    pp.create_ext_grid(net, b1)
    # a NaN parameter: pandapower's encoder writes it as a bare NaN outside the tables
    params = {"c_nf_per_km": 10.0, "r_ohm_per_km": 0.1, "x_ohm_per_km": 0.1, "max_i_ka": 0.4, "alpha": math.nan}
    pp.create_std_type(net, params, "own cable", element="line")
    pp.create_line(net, b1, b2, 1.0, "own cable", geodata=[(0.0, 0.0), (0.5, 0.7), (1.0, 1.0)])
    pp.create_load(net, b2, 1.0)
    return net


def _mv_oberrhein() -> pp.pandapowerNet:
    with warnings.catch_warnings():  # its stored file predates pandapower 3.0's tap tables
        warnings.filterwarnings("ignore", "tap_dependency_table is missing", DeprecationWarning)
        return pn.mv_oberrhein()


def _solved(build: Callable[[], pp.pandapowerNet], run: Callable[[pp.pandapowerNet], None]) -> pp.pandapowerNet:
    net = build()
    run(net)
    return net


# Fast networks only (about 3 s together, mostly pandapower's import and case files). The check
# was also run on every other argument-free network in pandapower.networks (case14 to
# case9241pegase, cigre, kerber, lv_schutterwald, ...) and a solved 3-phase network: all pass,
# with the same two pairs; they add nothing here but time.
REAL_NETWORKS: dict[str, Callable[[], pp.pandapowerNet]] = {
    "seed": test_sim.build_network,
    "seed_solved": lambda: _solved(test_sim.build_network, pp.runpp),
    "case9": pn.case9,
    "case9_opf": lambda: _solved(pn.case9, pp.runopp),  # net.res_cost is a numpy float64
    "case118": pn.case118,
    "cigre_mv": pn.create_cigre_network_mv,
    "mv_oberrhein": _mv_oberrhein,
    "own_std_types_and_geodata": _own_std_types_and_geodata,
}


@pytest.fixture(scope="module")
def real() -> dict[str, bytes]:
    return {name: pp.to_json(build()).encode() for name, build in REAL_NETWORKS.items()}


@pytest.fixture(scope="module")
def seed(real: dict[str, bytes]) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(real["seed"])
    return document


def encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode()


def refusal(raw: bytes) -> UnsafeNetwork | None:
    """Check an upload; only a document the check accepts ever reaches pandapower."""
    try:
        check_network_document(raw, LIMIT)
    except UnsafeNetwork as error:
        return error
    pp.from_json_string(raw.decode())
    return None


def refused_at(raw: bytes, path: str) -> UnsafeNetwork:
    error = refusal(raw)
    assert error is not None, "accepted"
    assert error.path == path
    assert str(error).startswith(f"{path}: ")
    return error


def with_attribute(document: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    """The network with one more entry beside its tables: pandapower sets it on the net."""
    changed = copy.deepcopy(document)
    changed["_object"][key] = value
    return changed


def table(document: dict[str, Any], name: str) -> dict[str, Any]:
    inner: dict[str, Any] = json.loads(document["_object"][name]["_object"])
    return inner


def with_cell(document: dict[str, Any], name: str, column: str, value: Any) -> tuple[dict[str, Any], str]:
    """The network with one cell of a table replaced (an object column: pandapower hooks its
    cells, io_utils.py:643-650), and the JSON path of that cell."""
    inner = table(document, name)
    row, col = 0, inner["columns"].index(column)
    inner["data"][row][col] = value
    changed = copy.deepcopy(document)
    changed["_object"][name]["_object"] = json.dumps(inner)
    return changed, f"$._object.{name}._object(json).data[{row}][{col}]"


def entry(module: str, name: str, obj: Any = "{}") -> dict[str, Any]:
    return {"_module": module, "_class": name, "_object": obj}


def pairs(document: Any) -> set[tuple[str, str]]:
    """Every (_module, _class) in a document, through `_object` strings that are JSON: the test's
    own reference, written recursively and naively on purpose."""
    found: set[tuple[str, str]] = set()
    if isinstance(document, dict):
        if "_module" in document or "_class" in document:
            found.add((str(document.get("_module")), str(document.get("_class"))))
            obj = document.get("_object")
            if isinstance(obj, str):
                with contextlib.suppress(ValueError, RecursionError):
                    found |= pairs(json.loads(obj))
        for value in document.values():
            found |= pairs(value)
    elif isinstance(document, list):
        for value in document:
            found |= pairs(value)
    return found


# ---- real files ----


@pytest.mark.parametrize("name", list(REAL_NETWORKS))
def test_real_to_json_output_passes_unchanged(real: dict[str, bytes], name: str) -> None:
    document = check_network_document(real[name], LIMIT)
    assert json.dumps(document) == json.dumps(json.loads(real[name]))  # NaN-safe equality


def test_the_allow_list_is_exactly_what_real_files_contain(real: dict[str, bytes]) -> None:
    found = set().union(*(pairs(json.loads(raw)) for raw in real.values()))
    assert found == ALLOWED == {NET, DATAFRAME, FLOAT64}


def test_an_accepted_network_loads_in_pandapower(real: dict[str, bytes]) -> None:
    assert refusal(real["seed"]) is None


# ---- modules that leave a trace if imported ----


@dataclass(frozen=True)
class Trace:
    module: str
    marker: Path

    def left(self) -> bool:
        return self.marker.exists() or self.module in sys.modules


@pytest.fixture
def trace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Trace]:
    """A module on sys.path (for this test only) that writes a file when imported."""
    module = f"powersim_upload_trace_{uuid.uuid4().hex}"
    marker = tmp_path / "imported"
    (tmp_path / f"{module}.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n\n"
        "class Payload:\n    def __init__(self, *args, **kwargs):\n        pass\n\n"
        "def payload(*args, **kwargs):\n    return 'called'\n"
    )
    monkeypatch.syspath_prepend(tmp_path)
    yield Trace(module, marker)
    sys.modules.pop(module, None)


TRACE_ENTRIES: dict[str, Callable[[str], dict[str, Any]]] = {
    "class": lambda module: entry(module, "Payload", "{}"),  # rest(): imports, then refuses the class
    "function": lambda module: entry(module, "function", "payload"),  # function(): imports, returns it
    "method": lambda module: entry(module, "method", "payload"),
}


@pytest.mark.parametrize("kind", list(TRACE_ENTRIES))
def test_an_entry_naming_a_module_is_refused_before_import(seed: dict[str, Any], trace: Trace, kind: str) -> None:
    hostile = with_attribute(seed, "payload", TRACE_ENTRIES[kind](trace.module))
    refused_at(encode(hostile), "$._object.payload._module")
    assert not trace.left()


@pytest.mark.parametrize("kind", list(TRACE_ENTRIES))
def test_an_entry_in_a_table_cell_is_refused_before_import(seed: dict[str, Any], trace: Trace, kind: str) -> None:
    hostile, cell = with_cell(seed, "bus", "name", TRACE_ENTRIES[kind](trace.module))
    refused_at(encode(hostile), f"{cell}._module")
    assert not trace.left()


@pytest.mark.parametrize("in_cell", [False, True], ids=["attribute", "table_cell"])
def test_pandapower_alone_imports_the_module(seed: dict[str, Any], trace: Trace, in_cell: bool) -> None:
    """Why the check must come first: pandapower's reader imports before its own allow-list."""
    payload = TRACE_ENTRIES["class"](trace.module)
    hostile = with_cell(seed, "bus", "name", payload)[0] if in_cell else with_attribute(seed, "payload", payload)
    with pytest.raises(DeserializationNotAllowed):  # refused, but only after the import ran
        pp.from_json_string(encode(hostile).decode())
    assert trace.marker.read_text() == "ran"


# ---- other types: functions, standard library, controllers, nested networks ----


@pytest.mark.parametrize(
    ("payload", "key"),
    [
        (entry("os", "function", "system"), "_module"),  # pandapower would hand back os.system
        (entry("subprocess", "function", "getoutput"), "_module"),
        (entry("builtins", "function", "eval"), "_module"),
        (entry("builtins", "eval", "1"), "_module"),
        (entry("builtins", "tuple", [1, 2]), "_module"),  # pandapower writes tuples, never in a network
        (entry("os", "system", "true"), "_module"),
        (entry("subprocess", "Popen", ["true"]), "_module"),
        (entry("importlib", "import_module", "os"), "_module"),
        (entry("sys", "exit", 1), "_module"),
        (entry("shapely", "Point", {"type": "Point", "coordinates": [0, 0]}), "_module"),
        (entry("numpy", "load", "/etc/passwd"), "_class"),  # an allowed module, another class
        (entry("numpy", "int64", 1), "_class"),
        (entry("pandas.core.frame", "function", "read_pickle"), "_class"),
        (entry("pandas", "DataFrame", '{"columns": [], "index": [], "data": []}'), "_module"),
        (entry("pandas.core.series", "Series", "[]"), "_module"),
        (entry("pandapower.auxiliary", "function", "create_empty_network"), "_class"),
        (entry("pandapower.auxiliary", "pandapowerNet", {}), "_class"),  # a network inside a network
        (entry("pandapower.auxiliary", "pandapowerNet", "{}"), "_class"),
        (entry("pandapower.control.controller.const_control", "ConstControl", "{}"), "_module"),
        (entry("pandapower.control.util.characteristic", "SplineCharacteristic", "{}"), "_module"),
        ({"_module": "os", "_object": "system"}, "_class"),  # half an entry
        ({"_class": "function", "_object": "system"}, "_module"),
        ({"_module": ["os"], "_class": "function", "_object": "system"}, "_module"),
    ],
)
def test_types_outside_the_allow_list_are_refused(seed: dict[str, Any], payload: dict[str, Any], key: str) -> None:
    refused_at(encode(with_attribute(seed, "payload", payload)), f"$._object.payload.{key}")
    hostile, cell = with_cell(seed, "bus", "name", payload)
    refused_at(encode(hostile), f"{cell}.{key}")


def test_pandapower_alone_hands_back_functions(seed: dict[str, Any]) -> None:
    net = pp.from_json_string(encode(with_attribute(seed, "payload", entry("os.path", "function", "join"))).decode())
    assert net.payload is os.path.join


def test_a_real_controller_is_refused_where_it_sits() -> None:
    net = test_sim.build_network()
    control.ConstControl(net, "load", "p_mw", 0)
    raw = pp.to_json(net).encode()
    error = refused_at(raw, "$._object.controller._object(json).data[0][0]._module")
    assert "ConstControl" in str(error)


def test_entries_nested_in_json_inside_a_table_are_walked(seed: dict[str, Any], trace: Trace) -> None:
    inner = table(seed, "bus")
    deeper = {"_module": DATAFRAME[0], "_class": DATAFRAME[1], "_object": json.dumps({"x": entry(trace.module, "P")})}
    inner["data"][0][0] = deeper
    hostile = copy.deepcopy(seed)
    hostile["_object"]["bus"]["_object"] = json.dumps(inner)
    refused_at(encode(hostile), "$._object.bus._object(json).data[0][0]._object(json).x._module")
    assert not trace.left()


def test_json_is_embedded_at_most_two_levels(seed: dict[str, Any]) -> None:
    level3 = entry(*DATAFRAME, json.dumps({"columns": [], "index": [], "data": []}))
    level2 = entry(*DATAFRAME, json.dumps({"columns": ["c"], "index": [0], "data": [[level3]]}))
    hostile, cell = with_cell(seed, "bus", "name", level2)
    error = refused_at(encode(hostile), f"{cell}._object(json).data[0][0]._object")
    assert "embedded" in str(error)


def test_a_table_option_pandapower_does_not_write_is_refused(seed: dict[str, Any]) -> None:
    # the reader passes an entry's other keys to pd.read_json as keyword arguments
    for key, value in {"storage_options": {}, "compression": "gzip", "engine": "pyarrow", "typ": "series"}.items():
        hostile = copy.deepcopy(seed)
        hostile["_object"]["bus"][key] = value
        refused_at(encode(hostile), f"$._object.bus.{key}")
    for key, value in {"orient": "records", "dtype": {"name": 1}, "is_multiindex": "yes", "index_names": "x"}.items():
        hostile = copy.deepcopy(seed)
        hostile["_object"]["bus"][key] = value
        refused_at(encode(hostile), f"$._object.bus.{key}")


# ---- files on the server's disk ----


SECRET = "TOP-SECRET-0xC0FFEE"


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret.json"
    path.write_text(json.dumps({"columns": ["secret"], "index": [0], "data": [[SECRET]]}))
    return path


def table_at(location: Any) -> dict[str, Any]:
    return {**entry(*DATAFRAME, location), "orient": "split", "is_multiindex": False, "is_multicolumn": False}


def test_pandapower_alone_reads_a_table_from_disk(seed: dict[str, Any], secret_file: Path) -> None:
    """Why the path rule: an absolute path ending in .json is read from the server's disk."""
    net = pp.from_json_string(encode(with_attribute(seed, "leak", table_at(str(secret_file)))).decode())
    assert net.leak.at[0, "secret"] == SECRET


@pytest.mark.parametrize(
    "location",
    [
        "{secret}",
        "//localhost{secret}",
        "{secret} ",
        "../secret.json",
        "~/secret.json",
        "file://{secret}",
        "http://127.0.0.1/secret.json",
        "C:\\secret.json",
        '"{secret}"',  # a JSON string holding the path
        "secret.json",
    ],
)
def test_a_table_that_is_a_path_or_url_is_refused(seed: dict[str, Any], secret_file: Path, location: str) -> None:
    where = location.replace("{secret}", str(secret_file))
    for table_name in ("leak", "bus"):  # beside the tables, and instead of one
        raw = encode(with_attribute(seed, table_name, table_at(where)))
        refused_at(raw, f"$._object.{table_name}._object")


@pytest.mark.parametrize("obj", [None, 1, ["{}"], {"columns": [], "index": [], "data": []}, "[]", "1"])
def test_a_table_is_a_string_of_a_json_object(seed: dict[str, Any], obj: Any) -> None:
    refused_at(encode(with_attribute(seed, "bus", table_at(obj))), "$._object.bus._object")


# ---- shape of the document ----


@pytest.mark.parametrize(
    "raw",
    [b"", b"not json", b"\xff\xfe", b"{", b"[]", b"1", b'"net"', b"null", b"{}", b'{"bus": {}}', b"{} {}"],
)
def test_what_is_not_a_network_document_is_refused(raw: bytes) -> None:
    refused_at(raw, "$")


def test_only_utf8_is_read(real: dict[str, bytes]) -> None:
    refused_at(real["seed"].decode().encode("utf-16"), "$")


def test_a_document_whose_root_is_another_type_is_refused(seed: dict[str, Any]) -> None:
    refused_at(encode({**seed, "_module": "os"}), "$")
    refused_at(encode({**seed, "_object": "{}"}), "$._object")
    refused_at(encode({**seed, "extra": 1}), "$.extra")


def test_nan_in_a_table_is_refused(seed: dict[str, Any]) -> None:
    # pandas writes null in a table; the document's own NaN (own_std_types_and_geodata) passes
    hostile = copy.deepcopy(seed)
    hostile["_object"]["bus"]["_object"] = hostile["_object"]["bus"]["_object"].replace("null", "NaN", 1)
    refused_at(encode(hostile), "$._object.bus._object")


def nested(depth: int, leaf: Any = 0) -> Any:
    value: Any = leaf
    for _ in range(depth):
        value = [value]
    return value


def test_nesting_is_bounded(seed: dict[str, Any]) -> None:
    # the root is level 1, its _object level 2: lists from level 3 on
    inside = MAX_NETWORK_DEPTH - 2
    assert check_network_document(encode(with_attribute(seed, "meta", nested(inside))), LIMIT)
    error = refused_at(encode(with_attribute(seed, "meta", nested(inside + 1))), "$._object.meta" + "[0]" * inside)
    assert "nested" in str(error)
    # an empty container counts too
    assert check_network_document(encode(with_attribute(seed, "meta", nested(inside - 1, leaf={}))), LIMIT)
    refused_at(encode(with_attribute(seed, "meta", nested(inside, leaf={}))), "$._object.meta" + "[0]" * inside)


def test_nesting_counts_through_embedded_json(seed: dict[str, Any]) -> None:
    # a table (level 3) whose JSON root is level 4, its data level 5, a row 6, a cell from level 7
    inside = MAX_NETWORK_DEPTH - 6
    assert check_network_document(encode(with_cell(seed, "bus", "name", nested(inside))[0]), LIMIT)
    hostile, cell = with_cell(seed, "bus", "name", nested(inside + 1))
    refused_at(encode(hostile), cell + "[0]" * inside)


@pytest.mark.parametrize("depth", [1_000, 100_000, 5_000_000])
def test_hostile_nesting_is_refused_without_recursion_error(depth: int) -> None:
    # past the parser's recursion limit the whole document is refused ("$"); below it (Python
    # 3.13 parses a few thousand levels) the walk names the first container too deep
    raw = b'{"_module": "pandapower.auxiliary", "_class": "pandapowerNet", "_object": {"x": ' + b"[" * depth
    raw += b"]" * depth + b"}}"
    error = refusal(raw)
    assert error is not None
    assert error.path in ("$", "$._object.x" + "[0]" * (MAX_NETWORK_DEPTH - 2))
    assert "nested" in str(error)


def test_long_names_and_paths_are_cut(seed: dict[str, Any]) -> None:
    hostile = with_attribute(seed, "k" * 10_000, entry("m" * 10_000, "c"))
    error = refused_at(encode(hostile), "$._object." + "k" * 37 + "..." + "._module")
    assert len(str(error)) < 300


# ---- size ----


def test_a_document_over_the_limit_is_not_parsed() -> None:
    with pytest.raises(NetworkTooLarge) as caught:
        check_network_document(b"[" * 1001, 1000)  # not JSON: refused for its size, before parsing
    assert (caught.value.size, caught.value.limit) == (1001, 1000)


def test_a_document_at_the_limit_is_checked(real: dict[str, bytes]) -> None:
    raw = real["seed"]
    assert check_network_document(raw, len(raw))
    with pytest.raises(NetworkTooLarge):
        check_network_document(raw, len(raw) - 1)


# ---- totality ----


def _outcome(raw: bytes) -> dict[str, Any] | UnsafeNetwork | NetworkTooLarge:
    try:
        return check_network_document(raw, 200_000)
    except (UnsafeNetwork, NetworkTooLarge) as error:  # nothing else may come out
        return error


def _assert_total(raw: bytes) -> None:
    outcome = _outcome(raw)
    if isinstance(outcome, UnsafeNetwork):
        assert outcome.path.startswith("$")
    elif isinstance(outcome, dict):
        assert pairs(outcome) <= ALLOWED  # what passes holds nothing but allowed types


_NAMES = st.sampled_from([*{name for pair in ALLOWED for name in pair}, "os", "builtins", "function", "system", "x"])
_PAIRS = st.sampled_from(sorted(ALLOWED)) | st.tuples(_NAMES, _NAMES)
_KEYS = _NAMES | st.sampled_from(["_module", "_class", "_object", "orient", "dtype", "data"]) | st.text(max_size=6)
_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12) | _NAMES


def _entry(pair: tuple[str, str], obj: Any, options: dict[str, Any]) -> dict[str, Any]:
    return {**options, "_module": pair[0], "_class": pair[1], "_object": obj}


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    embedded = children.map(json.dumps)  # JSON inside strings, as tables carry it
    option_keys = st.sampled_from(["orient", "dtype", "is_multiindex", "typ"]) | _KEYS
    options = st.dictionaries(option_keys, children, max_size=2)
    return (
        st.lists(children, max_size=4)
        | st.dictionaries(_KEYS, children, max_size=4)
        | st.builds(_entry, _PAIRS, embedded | children, options | st.just({}))
        | embedded
    )


_VALUES = st.recursive(_SCALARS, _containers, max_leaves=25)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(_KEYS, _VALUES, max_size=5))
def test_fuzz_documents(tables: dict[str, Any]) -> None:
    _assert_total(json.dumps(_entry(NET, tables, {})).encode())


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300) | st.text(alphabet='[]{}",:0123456789.-eE nultrfaNIy\\_moduleclass').map(str.encode))
def test_fuzz_bytes(raw: bytes) -> None:
    _assert_total(raw)


_SMALL = pp.to_json(pp.create_empty_network()).encode()
_EDITS = st.binary(max_size=3) | st.text(alphabet='[]{}",:0\\ N_', max_size=3).map(str.encode)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(_SMALL) - 1), _EDITS), min_size=1, max_size=4))
def test_fuzz_edits_of_a_real_file(edits: list[tuple[int, bytes]]) -> None:
    raw = bytearray(_SMALL)
    for at, replacement in edits:
        raw[at : at + len(replacement)] = replacement
    _assert_total(bytes(raw))


def test_the_errors_cross_a_process_boundary() -> None:
    """Raised in a worker, pickled to the server: the same type, message and fields."""
    import pickle

    too_large = NetworkTooLarge(21, 20)
    back = pickle.loads(pickle.dumps(too_large))
    assert (type(back), str(back), back.size, back.limit) == (NetworkTooLarge, str(too_large), 21, 20)
    with pytest.raises(UnsafeNetwork) as caught:
        check_network_document(b'{"_module": "os", "_class": "system"}', 1000)
    unsafe = pickle.loads(pickle.dumps(caught.value))
    assert (type(unsafe), str(unsafe), unsafe.path) == (UnsafeNetwork, str(caught.value), caught.value.path)
