"""Code that runs inside the simulation worker processes: import the simulation once, run it.

Nothing here touches asyncio or aiohttp; results cross the process boundary as plain tuples.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import time
from collections.abc import Callable
from typing import Any

from .constants import MAX_ERROR_CHARS, WORKER_NICENESS

# Per-process state of a worker (the only module-level state the style allows).
_simulation: Callable[[], Any] | None = None
_load_error: str | None = None


class WorkerError(Exception):
    """A simulation failure, flattened to a message so that it always pickles."""


class _DropNumbaWarning(logging.Filter):
    """pandapower warns that numba is missing on every runpp; say it once at start-up instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "numba cannot be imported" not in record.getMessage()


def load(spec: str) -> Callable[[], Any]:
    module_name, _, attr = spec.partition(":")
    module = importlib.import_module(module_name)
    func = getattr(module, attr)
    if not callable(func):
        raise TypeError(f"{spec} is not callable")
    return func  # type: ignore[no-any-return]


def init(spec: str, log_level: str) -> None:
    """Pool initializer: import the simulation before the first request needs it."""
    global _simulation, _load_error
    # Ctrl-C goes to the whole process group; the server shuts the pool down in order.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Below the event loop's priority: when simulations saturate the CPUs, requests, pushes and
    # health checks still get the CPU promptly (throughput is unchanged when nothing competes).
    os.nice(WORKER_NICENESS)
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s worker %(name)s: %(message)s")
    # pandapower chats at INFO on import (optional plotting packages); keep workers to warnings.
    logging.getLogger("pandapower").setLevel(max(logging.WARNING, logging.getLevelName(log_level)))
    logging.getLogger("pandapower.auxiliary").addFilter(_DropNumbaWarning())
    try:
        _simulation = load(spec)
    except BaseException as exc:  # noqa: BLE001 -- reported by ping() as a start-up error, not a dead pool
        _load_error = f"cannot load {spec}: {describe(exc)}"


def ping() -> int:
    """Warm-up probe: returns once this worker's initializer has run."""
    if _load_error is not None:
        raise WorkerError(_load_error)
    return os.getpid()


def describe(exc: BaseException) -> str:
    """`RuntimeError: text`, or just the type's name when the exception carries no text; cut
    to MAX_ERROR_CHARS, since it becomes a response body and a log line."""
    try:
        text = str(exc)
    except BaseException:  # noqa: BLE001 -- a __str__ is user code too
        text = ""
    if len(text) > MAX_ERROR_CHARS:
        text = text[:MAX_ERROR_CHARS] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def run() -> tuple[float, float, float, float]:
    """Run the simulation; return (active MW, reactive MVAr, start, finish) as Unix times.

    Everything user code raises is a failed run, BaseException included: a SystemExit or
    KeyboardInterrupt sent back to the server would be re-raised in its event loop and stop it.
    """
    if _simulation is None:
        raise WorkerError("worker was not initialized")
    started = time.time()
    try:
        outcome = _simulation()
    except BaseException as exc:  # noqa: BLE001 -- user code
        raise WorkerError(describe(exc)) from None
    finished = time.time()
    try:
        active, reactive = outcome
        return float(active), float(reactive), started, finished
    except BaseException:  # noqa: BLE001 -- the result's __iter__ and __float__ are user code too
        raise WorkerError(f"simulation returned {outcome!r:.80}, not (active_power, reactive_power)") from None
