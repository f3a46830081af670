"""Code that runs inside the simulation worker processes: import the simulation once, run it.

Nothing here touches asyncio or aiohttp; results cross the process boundary as plain data (a
RunOutcome of floats and strings, the details already JSON text), never pandas objects.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import resource
import signal
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import grid
from .constants import (
    DEFAULT_MAX_BUSES,
    DEFAULT_MAX_NETWORK_BYTES,
    MAX_ERROR_CHARS,
    NETWORK_CACHE_SIZE,
    WORKER_MEMORY_HEADROOM_MB,
    WORKER_NICENESS,
)
from .grid import runner
from .grid.catalog import UnknownNetwork
from .grid.loading import UnusableNetwork
from .grid.upload import NetworkTooLarge, UnsafeNetwork
from .models import dumps
from .scenario import INPUT_NAMES, InvalidInput

MB = 2**20


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """Everything a worker is started with (pickled to it once, at start)."""

    spec: str  # POWERSIM_SIMULATION, module:function
    log_level: str = "INFO"
    vm_band: tuple[float, float] = grid.DEFAULT_VM_BAND
    memory_mb: int | None = None  # address-space cap (POWERSIM_WORKER_MEMORY_MB); None: no cap
    max_network_bytes: int = DEFAULT_MAX_NETWORK_BYTES
    max_buses: int = DEFAULT_MAX_BUSES


# Per-process state of a worker (the only module-level state the style allows).
_simulation: Callable[..., Any] | None = None
_takes_inputs = False
_config = WorkerConfig("")
_load_error: str | None = None
_cap_error: str | None = None
_networks = runner.NetworkCache(NETWORK_CACHE_SIZE)


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


class OutOfMemory(WorkerError):
    """The run hit the worker's memory cap; the pool replaces the worker (its heap may be in
    pieces), and the service stores the run as failed."""


class MemoryCapTooLow(Exception):
    """POWERSIM_WORKER_MEMORY_MB is below what a worker holds once the simulation is loaded."""


class DocumentNeeded(Exception):
    """This worker has not read the upload yet: send the run again with the document. (Uploads
    can be tens of megabytes; they cross the process boundary only when a worker lacks them.)"""


@dataclass(frozen=True, slots=True)
class Ping:
    pid: int
    takes_inputs: bool


@dataclass(frozen=True, slots=True)
class NetworkJob:
    """A run on a catalog or uploaded network: only the inputs the request gave."""

    network: str
    sha256: str | None = None  # an upload's; None for the catalog
    inputs: Mapping[str, float] = field(default_factory=dict)
    document: bytes | None = field(default=None, repr=False)  # an upload's, when asked for

    @property
    def key(self) -> Hashable:
        """The cache key: an upload by its content (same bytes, same network), the catalog by id."""
        return ("upload", self.sha256) if self.sha256 is not None else ("catalog", self.network)


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


def init(config: WorkerConfig) -> None:
    """Pool initializer: import the simulation before the first request needs it, then cap the
    address space (after the imports, which a cap must leave room for)."""
    global _simulation, _takes_inputs, _config, _load_error
    spec, log_level = config.spec, config.log_level
    # Ctrl-C goes to the whole process group; the server shuts the pool down in order.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Below the event loop's priority: when simulations saturate the CPUs, requests, pushes and
    # health checks still get the CPU promptly (throughput is unchanged when nothing competes).
    os.nice(WORKER_NICENESS)
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s worker %(name)s: %(message)s")
    # pandapower chats at INFO on import (optional plotting packages); keep workers to warnings.
    logging.getLogger("pandapower").setLevel(max(logging.WARNING, logging.getLevelName(log_level)))
    logging.getLogger("pandapower.auxiliary").addFilter(_DropNumbaWarning())
    _config = config
    try:
        _simulation = load(spec)
        _takes_inputs = takes_inputs(_simulation)
        if config.memory_mb is not None:
            # Network runs import pandapower (the default simulation already has): import it
            # before the cap, so that the cap is checked against what a worker really holds.
            # Without a cap it is imported on the first network run, which keeps workers of
            # simulations that do not use pandapower quick to start.
            importlib.import_module("pandapower")
    except BaseException as exc:  # noqa: BLE001 -- reported by ping() as a start-up error, not a dead pool
        _load_error = f"cannot load {spec}: {describe(exc)}"
        return
    if config.memory_mb is not None:
        _cap_memory(config.memory_mb)


def _address_space_mb() -> int | None:
    """This process's address space now (Linux's VmSize), or None where /proc is not there."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        return None
    return None


def _cap_memory(memory_mb: int) -> None:
    """Cap the address space (RLIMIT_AS): an allocation past it raises MemoryError in this
    worker, instead of the kernel's OOM killer picking a process, perhaps the server."""
    global _cap_error
    used = _address_space_mb()
    if used is not None and memory_mb < used + WORKER_MEMORY_HEADROOM_MB:
        _cap_error = (
            f"a worker already uses {used} MB of address space once the simulation and pandapower are"
            f" loaded; allow at least {used + WORKER_MEMORY_HEADROOM_MB} MB"
        )
        return
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = memory_mb * MB
    resource.setrlimit(resource.RLIMIT_AS, (cap if hard == resource.RLIM_INFINITY else min(cap, hard), hard))


def ping() -> Ping:
    """Warm-up probe: returns once this worker's initializer has run, with its pid and whether
    the simulation takes inputs."""
    if _load_error is not None:
        raise WorkerError(_load_error)
    if _cap_error is not None:
        raise MemoryCapTooLow(_cap_error)
    return Ping(os.getpid(), _takes_inputs)


def _out_of_memory() -> OutOfMemory:
    cap = f" of {_config.memory_mb} MB (POWERSIM_WORKER_MEMORY_MB)" if _config.memory_mb is not None else ""
    return OutOfMemory(f"the run ran out of memory: it needs more than the worker's address space{cap}")


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
    except MemoryError:
        raise _out_of_memory() from None
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
        details_json = dumps(grid.details(net, _config.vm_band))
    except MemoryError:
        raise _out_of_memory() from None
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


def _prepared(job: NetworkJob) -> runner.Prepared:
    """The job's network from this worker's cache, or built (catalog) or read (upload) now."""
    prepared = _networks.get(job.key)
    if prepared is not None:
        return prepared
    if job.sha256 is None:
        prepared = runner.prepare_catalog(job.network)
    elif job.document is None:
        raise DocumentNeeded(job.network)
    else:
        prepared = runner.prepare_upload(job.document, _config.max_network_bytes, _config.max_buses)
    _networks.put(job.key, prepared)
    return prepared


def run_network(job: NetworkJob) -> RunOutcome:
    """A power flow on a catalog or uploaded network with the job's inputs.

    Raises DocumentNeeded, the catalog's UnknownNetwork, InvalidInput for inputs that do not
    apply, and OutOfMemory; any other failure is a WorkerError. Not converging is an outcome.
    """
    started = time.time()
    try:
        prepared = _prepared(job)
        refused = runner.refused_inputs(prepared.base, job.inputs)
        if refused:
            raise InvalidInput(refused)
        net = runner.solve(prepared, job.inputs)
    except (DocumentNeeded, InvalidInput, UnknownNetwork, UnusableNetwork, NetworkTooLarge, UnsafeNetwork):
        raise  # the request's problem, or the service's cue: never a failed run
    except MemoryError:
        _networks.drop(job.key)
        raise _out_of_memory() from None
    except BaseException as exc:  # noqa: BLE001 -- pandapower on a stranger's network: anything
        _networks.drop(job.key)
        if is_not_converged(exc):
            return RunOutcome(started, time.time(), converged=False, message=_message(exc))
        raise WorkerError(describe(exc)) from None
    return _from_network(net, started, time.time())


def describe_catalog(network_id: str) -> runner.Facts:
    """Counts and applicable inputs of a catalog network (built once, then cached for runs)."""
    try:
        return runner.facts(_prepared(NetworkJob(network_id)))
    except MemoryError:
        raise _out_of_memory() from None


def describe_upload(document: bytes, sha256: str) -> runner.Facts:
    """Check and read an upload: counts and applicable inputs, or the reason it is refused
    (NetworkTooLarge, UnsafeNetwork, UnusableNetwork). Cached for the runs that follow."""
    try:
        return runner.facts(_prepared(NetworkJob(f"upload:{sha256}", sha256, document=document)))
    except MemoryError:
        raise _out_of_memory() from None
    except (NetworkTooLarge, UnsafeNetwork, UnusableNetwork):
        raise
    except Exception as exc:  # noqa: BLE001 -- any surprise in a stranger's network is its refusal
        raise UnusableNetwork(f"it cannot be checked: {describe(exc)}") from None
