"""The simulation workers: one process per slot, started and warmed with the app, each replaced
on its own when it dies, runs out of memory or overruns the run time limit.

Each worker is a single-process ProcessPoolExecutor of its own, not one process of a shared
pool: stopping a shared pool's worker breaks every run in that pool, and the run time limit has
to stop one run without touching the others.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import multiprocessing.process
import time
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from . import worker
from .constants import (
    WORKER_REWARM_BACKOFF_CAP_S,
    WORKER_REWARM_BACKOFF_START_S,
    WORKER_STOP_TIMEOUT_S,
    WORKER_WARMUP_TIMEOUT_S,
)
from .errors import SimulationFailed, StartupError, Unavailable
from .models import FAILED, TIMED_OUT, Status
from .worker import WorkerConfig

log = logging.getLogger(__name__)

T = TypeVar("T")


class RunStopped(Exception):
    """A run that ended without an answer from its worker; `started` is when it was handed over
    (Unix time), `reason` says why, for the stored run and its answer."""

    status: Status = FAILED

    def __init__(self, started: float, reason: str) -> None:
        super().__init__(reason)
        self.started = started
        self.reason = reason


class RunTimedOut(RunStopped):
    status: Status = TIMED_OUT


class WorkerLost(RunStopped):
    """The worker died during the run (killed, crashed) or ran out of memory: it is replaced."""


@dataclass(eq=False)
class _Slot:
    """One worker process and the executor that owns it."""

    executor: ProcessPoolExecutor
    number: int

    def processes(self) -> list[multiprocessing.process.BaseProcess]:
        # Private, but the only handle on the process before Python 3.14's terminate_workers().
        return list(getattr(self.executor, "_processes", {}).values())

    def kill(self) -> None:
        for process in self.processes():
            process.kill()


class SimulationPool:
    """`workers` worker processes that have imported the simulation; a run takes an idle one."""

    def __init__(self, config: WorkerConfig, workers: int, run_timeout: float) -> None:
        self.config = config
        self.spec = config.spec
        self.workers = workers
        self.run_timeout = run_timeout
        self.takes_inputs = False  # learnt from the workers at warm-up
        self._idle: asyncio.Queue[_Slot] = asyncio.Queue()
        self._ready = 0
        self._closed = False
        self._numbers = iter(range(1, 2**62))
        self._warming: set[asyncio.Task[None]] = set()
        self._slots: set[_Slot] = set()

    @property
    def ready(self) -> int:
        """Workers warm and in service (idle or running); fewer while one is being replaced."""
        return self._ready

    def _new_slot(self) -> _Slot:
        # spawn, not fork: the server process runs threads (aiosqlite), which fork would copy mid-state.
        executor = ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=worker.init,
            initargs=(self.config,),
        )
        slot = _Slot(executor, next(self._numbers))
        self._slots.add(slot)
        return slot

    async def start(self) -> None:
        """Start every worker and return once each has imported the simulation."""
        await asyncio.gather(*(self._warm(self._new_slot()) for _ in range(self.workers)))

    async def _warm(self, slot: _Slot) -> None:
        """Ping the worker (its initializer runs first), then put it in service."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(WORKER_WARMUP_TIMEOUT_S):
            answer = await loop.run_in_executor(slot.executor, worker.ping)
        self.takes_inputs = answer.takes_inputs
        if self._closed:
            return
        self._ready += 1
        self._idle.put_nowait(slot)

    def _replace(self, slot: _Slot, why: str) -> None:
        """Retire a worker (killing it if still there) and warm a new one in the background."""
        log.error("simulation worker %d %s; starting a new one", slot.number, why)
        self._ready -= 1
        self._retire(slot)
        if self._closed:
            return
        task = asyncio.create_task(self._warm_logged(self._new_slot()))
        self._warming.add(task)
        task.add_done_callback(self._warming.discard)

    def _retire(self, slot: _Slot) -> None:
        slot.kill()
        slot.executor.shutdown(wait=False, cancel_futures=True)
        self._slots.discard(slot)

    async def _warm_logged(self, slot: _Slot) -> None:
        """Warm a replacement; if it fails, try a new one, backing off, until one works or the
        pool closes: one failed start must not leave the pool a worker short for good."""
        backoff = WORKER_REWARM_BACKOFF_START_S
        while True:
            try:
                await self._warm(slot)
                log.info("replacement simulation worker %d is warm", slot.number)
                return
            except (BrokenProcessPool, worker.WorkerError, worker.MemoryCapTooLow, TimeoutError) as exc:
                log.error(
                    "replacement simulation worker %d failed to start (%s); trying again in %.0f s",
                    slot.number,
                    exc or type(exc).__name__,
                    backoff,
                )
                self._retire(slot)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, WORKER_REWARM_BACKOFF_CAP_S)
            if self._closed:
                return
            slot = self._new_slot()

    async def run(self, inputs: Mapping[str, float] | None = None) -> worker.RunOutcome:
        """Run the simulation in a worker, with these inputs when it takes them."""
        return await self.call(worker.run, inputs)

    async def call(self, function: Callable[..., T], *args: Any, time_limit: float | None = None) -> T:
        """Call `function(*args)` in an idle worker, within the run time limit (or `time_limit`).

        Raises RunTimedOut (the worker was stopped and is being replaced), WorkerLost (it died
        or ran out of memory; replaced too), SimulationFailed for a failure the worker reported,
        and Unavailable once the pool is closing. Waiting for an idle worker is not timed: the
        service bounds the queue (POWERSIM_MAX_PENDING).
        """
        if self._closed:
            raise Unavailable("the worker pool is not accepting work; the server is stopping")
        slot = await self._idle.get()
        if self._closed:
            raise Unavailable("the worker pool is not accepting work; the server is stopping")
        started = time.time()
        limit = self.run_timeout if time_limit is None else time_limit
        try:
            future = asyncio.get_running_loop().run_in_executor(slot.executor, function, *args)
        except (BrokenProcessPool, RuntimeError) as exc:
            self._replace(slot, f"refused work ({exc})")
            raise WorkerLost(started, "the worker process for this run was lost; it is being replaced") from None
        # Wait, then look at the outcome instead of awaiting the future: a BaseException sent back
        # by a worker (SystemExit...) must not be re-raised here, where it would stop the event loop.
        try:
            done, _ = await asyncio.wait([future], timeout=limit)
        except asyncio.CancelledError:
            # This caller is gone (the drain abandoned the run); the worker is busy until the run
            # ends, and goes back in service then.
            future.add_done_callback(lambda _: self._release(slot, future))
            raise
        if not done:
            future.add_done_callback(_retrieve)  # the worker's end (BrokenProcessPool) is expected
            self._replace(slot, f"overran the time limit of {limit:g} s")
            raise RunTimedOut(started, f"the run took longer than the limit of {limit:g} s and was stopped")
        error = future.exception()
        if isinstance(error, BrokenProcessPool):
            self._replace(slot, "died during a run")
            raise WorkerLost(started, "the worker process running this simulation died; it is being replaced")
        if isinstance(error, worker.OutOfMemory):
            self._replace(slot, "ran out of memory")
            raise WorkerLost(started, str(error))
        self._idle.put_nowait(slot)
        if error is None:
            return future.result()
        if isinstance(error, worker.WorkerError):
            raise SimulationFailed(f"simulation failed: {error}") from None
        if not isinstance(error, Exception):
            log.error("a simulation worker sent back %r", error)
            raise SimulationFailed(f"simulation failed: {type(error).__name__}") from None
        raise error

    def _release(self, slot: _Slot, future: asyncio.Future[Any]) -> None:
        if self._closed or slot not in self._slots:
            return
        if not future.cancelled() and isinstance(future.exception(), BrokenProcessPool | worker.OutOfMemory):
            self._replace(slot, "was lost during an abandoned run")
        else:
            self._idle.put_nowait(slot)

    async def close(self) -> None:
        self._closed = True
        for task in list(self._warming):
            task.cancel()
        await asyncio.gather(*self._warming, return_exceptions=True)
        self._ready = 0
        slots = list(self._slots)
        processes = [process for slot in slots for process in slot.processes()]
        for slot in slots:
            slot.executor.shutdown(wait=False, cancel_futures=True)  # idle workers exit at once
        await asyncio.to_thread(_stop, processes, WORKER_STOP_TIMEOUT_S)
        for slot in slots:
            await asyncio.to_thread(slot.executor.shutdown, wait=True)
        self._slots.clear()


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _stop(processes: list[multiprocessing.process.BaseProcess], grace_s: float) -> None:
    """Give workers `grace_s` to exit, then terminate those still busy with a run the drain
    abandoned: shutdown would otherwise wait for that run however long it takes."""
    deadline = time.monotonic() + grace_s
    for process in processes:
        process.join(max(deadline - time.monotonic(), 0.0))
    for process in processes:
        if process.is_alive():
            log.warning("terminating simulation worker %s: it did not exit within %.0f s", process.pid, grace_s)
            process.terminate()
            process.join()


@asynccontextmanager
async def open_pool(
    config: WorkerConfig | str, workers: int, log_level: str | None = None, run_timeout: float = 60.0
) -> AsyncIterator[SimulationPool]:
    """A started pool; `config` may be just the simulation's spec (tests), with `log_level`."""
    if isinstance(config, str):
        config = WorkerConfig(config, log_level or "INFO")
    pool = SimulationPool(config, workers, run_timeout)
    try:
        loop = asyncio.get_running_loop()
        began = loop.time()
        try:
            await pool.start()
        except worker.WorkerError as exc:
            raise StartupError(f"POWERSIM_SIMULATION={config.spec}: {exc}") from None
        except worker.MemoryCapTooLow as exc:
            raise StartupError(f"POWERSIM_WORKER_MEMORY_MB={config.memory_mb}: {exc}") from None
        except (BrokenProcessPool, TimeoutError) as exc:
            raise StartupError(f"simulation workers failed to start: {exc!r}") from None
        log.info("%d simulation workers ready in %.2f s (%s)", workers, loop.time() - began, config.spec)
        yield pool
    finally:
        await pool.close()
