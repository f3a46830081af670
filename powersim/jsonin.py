"""JSON from outside (request bodies, GraphQL messages, Redis values), parsed with a bound on
nesting that is the same on every Python version.

json.loads recurses once per level: on Python 3.11 a few thousand brackets raise RecursionError,
on 3.13 (which moved to C stack checks) they parse. Checking the depth first, with a flat scan,
makes "too deep" one documented rule instead of an accident of the interpreter.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

# No request or result here nests beyond a handful of levels; 64 leaves room for GraphQL
# variables with nested input objects and for outside writers' metadata.
MAX_JSON_DEPTH = 64


class JSONTooDeep(json.JSONDecodeError):
    """Nested deeper than MAX_JSON_DEPTH: bad input (400, or a rejected value), not a crash."""

    def __init__(self, depth: int = MAX_JSON_DEPTH) -> None:
        super().__init__(f"nested too deeply (more than {depth} levels)", "", 0)


def nesting_depth(text: str, limit: int = MAX_JSON_DEPTH) -> int:
    """How deeply arrays and objects nest in `text`, counting up to `limit` + 1 at most; string
    contents are skipped. Not a validator: malformed text is left to the parser."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    break
        elif char in "]}":
            depth -= 1
    return deepest


def check_depth(text: str) -> None:
    """Raise JSONTooDeep when `text` nests deeper than MAX_JSON_DEPTH: the rule for every JSON
    document from outside, whichever parser then reads it."""
    if nesting_depth(text) > MAX_JSON_DEPTH:
        raise JSONTooDeep


def loads(data: str | bytes, parse_constant: Callable[[str], Any] | None = None) -> Any:
    """json.loads, refusing text nested deeper than MAX_JSON_DEPTH with JSONTooDeep.

    Bytes are decoded as json.loads itself does (UTF-8, or UTF-16/32 told by its first bytes);
    undecodable bytes raise UnicodeDecodeError, a ValueError.
    """
    text = data.decode(json.detect_encoding(data), "surrogatepass") if isinstance(data, bytes | bytearray) else data
    check_depth(text)
    try:
        return json.loads(text, parse_constant=parse_constant)
    except RecursionError:  # the scan bounds depth, so only a smaller C stack could get here
        raise JSONTooDeep from None
