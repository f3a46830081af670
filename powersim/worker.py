"""Code that runs inside the simulation worker processes: import the simulation once, run it.

Nothing here touches asyncio or aiohttp; results cross the process boundary as plain data (a
RunOutcome of floats and strings, the details already JSON text), never pandas objects.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from . import grid
from .constants import MAX_ERROR_CHARS, WORKER_NICENESS
from .models import dumps
from .scenario import INPUT_NAMES

# Per-process state of a worker (the only module-level state the style allows).
_simulation: Callable[..., Any] | None = None
_takes_inputs = False
_vm_band = grid.DEFAULT_VM_BAND
_load_error: str | None = None


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """What one run gives back. Not converged: no powers, no details, the solver's `message`."""

    started: float  # Unix times
    finished: float
    converged: bool
    active_power: float | None = None  # MW
    reactive_power: float | None = None  # MVAr
    message: str | None = None
    details_json: str | None = None  # grid.Details as JSON text, when the simulation returned its network


class WorkerError(Exception):
    """A simulation failure, flattened to a message so that it always pickles."""


class _DropNumbaWarning(logging.Filter):
    """pandapower warns that numba is missing on every runpp; say it once at start-up instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "numba cannot be imported" not in record.getMessage()


def load(spec: str) -> Callable[..., Any]:
    module_name, _, attr = spec.partition(":")
    module = importlib.import_module(module_name)
    func = getattr(module, attr)
    if not callable(func):
        raise TypeError(f"{spec} is not callable")
    return func  # type: ignore[no-any-return]


def takes_inputs(func: Callable[..., Any]) -> bool:
    """Whether the simulation takes a run's inputs: all of them as keyword arguments (or
    **kwargs), or none (it is then called with no arguments, and runs may not set any)."""
    try:
        parameters = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: it takes what it takes
        return False
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return True
    named = {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    taken = named & set(INPUT_NAMES)
    if taken and taken != set(INPUT_NAMES):
        missing = ", ".join(name for name in INPUT_NAMES if name not in taken)
        raise TypeError(f"it takes some of the inputs but not {missing}: take all of them as keywords, or none")
    return bool(taken)


def init(spec: str, log_level: str, vm_band: tuple[float, float] = grid.DEFAULT_VM_BAND) -> None:
    """Pool initializer: import the simulation before the first request needs it."""
    global _simulation, _takes_inputs, _vm_band, _load_error
    # Ctrl-C goes to the whole process group; the server shuts the pool down in order.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Below the event loop's priority: when simulations saturate the CPUs, requests, pushes and
    # health checks still get the CPU promptly (throughput is unchanged when nothing competes).
    os.nice(WORKER_NICENESS)
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s worker %(name)s: %(message)s")
    # pandapower chats at INFO on import (optional plotting packages); keep workers to warnings.
    logging.getLogger("pandapower").setLevel(max(logging.WARNING, logging.getLevelName(log_level)))
    logging.getLogger("pandapower.auxiliary").addFilter(_DropNumbaWarning())
    _vm_band = vm_band
    try:
        _simulation = load(spec)
        _takes_inputs = takes_inputs(_simulation)
    except BaseException as exc:  # noqa: BLE001 -- reported by ping() as a start-up error, not a dead pool
        _load_error = f"cannot load {spec}: {describe(exc)}"


def ping() -> tuple[int, bool]:
    """Warm-up probe: returns once this worker's initializer has run, with its pid and whether
    the simulation takes inputs."""
    if _load_error is not None:
        raise WorkerError(_load_error)
    return os.getpid(), _takes_inputs


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


def is_not_converged(exc: BaseException) -> bool:
    """pandapower's LoadflowNotConverged, or a subclass; matched by name, so that a simulation
    not built on pandapower does not make every worker import it."""
    return any(
        cls.__name__ == "LoadflowNotConverged" and cls.__module__.startswith("pandapower.") for cls in type(exc).__mro__
    )


def _message(exc: BaseException) -> str:
    """The solver's own words (`Power Flow nr did not converge after 10 iterations!`)."""
    return describe(exc).removeprefix(f"{type(exc).__name__}: ")


def run(inputs: Mapping[str, float] | None = None) -> RunOutcome:
    """Run the simulation (with `inputs` as keyword arguments, when it takes them).

    Everything user code raises is a failed run, BaseException included: a SystemExit or
    KeyboardInterrupt sent back to the server would be re-raised in its event loop and stop it.
    A power flow that does not converge is an outcome, not a failure.
    """
    if _simulation is None:
        raise WorkerError("worker was not initialized")
    started = time.time()
    try:
        outcome = _simulation(**inputs) if _takes_inputs and inputs else _simulation()
    except BaseException as exc:  # noqa: BLE001 -- user code
        if is_not_converged(exc):
            return RunOutcome(started, time.time(), converged=False, message=_message(exc))
        raise WorkerError(describe(exc)) from None
    finished = time.time()
    try:
        network = isinstance(outcome, Mapping) and "bus" in outcome
    except BaseException as exc:  # noqa: BLE001 -- a Mapping's __contains__ is user code too
        raise WorkerError(f"cannot read the returned value: {describe(exc)}") from None
    if network:
        return _from_network(outcome, started, finished)
    try:
        active, reactive = outcome
        return RunOutcome(started, finished, converged=True, active_power=float(active), reactive_power=float(reactive))
    except BaseException:  # noqa: BLE001 -- the result's __iter__ and __float__ are user code too
        raise WorkerError(
            f"simulation returned {outcome!r:.80}, not (active_power, reactive_power) or a pandapower network"
        ) from None


def _from_network(net: grid.Net, started: float, finished: float) -> RunOutcome:
    """A solved network: the loads' total powers, and everything else as details."""
    try:
        if not bool(net.get("converged", False)):
            return RunOutcome(started, finished, converged=False, message="the returned network is not solved")
        active, reactive = grid.load_power(net)
        details_json = dumps(grid.details(net, _vm_band))
    except BaseException as exc:  # noqa: BLE001 -- a network with odd tables is a failed run, not a dead worker
        raise WorkerError(f"cannot read the returned network: {describe(exc)}") from None
    return RunOutcome(
        started,
        finished,
        converged=True,
        active_power=active,
        reactive_power=reactive,
        details_json=details_json,
    )
