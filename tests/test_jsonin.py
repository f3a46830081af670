"""The nesting bound on outside JSON: one rule on every Python version, strings not counted."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from powersim.jsonin import MAX_JSON_DEPTH, JSONTooDeep, loads, nesting_depth


def test_the_bound_is_inclusive() -> None:
    assert loads("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH) is not None
    with pytest.raises(JSONTooDeep, match="more than 64 levels"):
        loads("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1))
    with pytest.raises(JSONTooDeep):  # deep enough to overflow the parser on Python 3.11
        loads(b'{"a":' * 3000 + b"1" + b"}" * 3000)


def test_brackets_inside_strings_do_not_count() -> None:
    text = json.dumps({"s": "[" * 200, "t": 'a\\"[[[{{{"'})
    assert nesting_depth(text) == 1
    assert loads(text)["s"] == "[" * 200


def test_bytes_are_decoded_as_json_loads_does() -> None:
    assert loads('{"a": [1]}'.encode("utf-16")) == {"a": [1]}
    with pytest.raises(ValueError, match="utf-8"):
        loads(b'{"a": "\xff"}')


LEAVES = st.one_of(st.none(), st.integers(), st.text(alphabet='[]{}"\\ab', max_size=6))
VALUES = st.recursive(
    LEAVES, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
)


def _depth(value: object) -> int:
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    return 0


@given(VALUES)
def test_the_scan_measures_what_the_parser_builds(value: object) -> None:
    assert nesting_depth(json.dumps(value)) == _depth(value)
