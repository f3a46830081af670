"""Waiting on a condition of the server's state, instead of sleeping a guessed time."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest


async def eventually(condition: Callable[[], bool], within: float = 5.0, what: str = "never held") -> None:
    """Poll `condition` (in-process state with no event to await); fail after `within` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        if loop.time() > deadline:
            pytest.fail(f"{what} (waited {within} s)")
        await asyncio.sleep(0.01)
