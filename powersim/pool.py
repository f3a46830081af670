"""The simulation process pool: started and warmed with the app, replaced when a worker dies."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import multiprocessing.process
import time
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import asynccontextmanager, suppress

from . import worker
from .constants import WORKER_STOP_TIMEOUT_S, WORKER_WARMUP_TIMEOUT_S
from .errors import SimulationFailed, StartupError, Unavailable
from .grid import DEFAULT_VM_BAND

log = logging.getLogger(__name__)


class SimulationPool:
    """Owns a ProcessPoolExecutor whose workers have imported the simulation."""

    def __init__(self, spec: str, workers: int, log_level: str, vm_band: tuple[float, float] = DEFAULT_VM_BAND) -> None:
        self.spec = spec
        self.workers = workers
        self.takes_inputs = False  # learnt from the workers at warm-up
        self._log_level = log_level
        self._vm_band = vm_band
        self._pool = self._new_pool()
        self._ready = 0
        self._rewarm: asyncio.Task[None] | None = None

    @property
    def ready(self) -> int:
        """Workers known to have the simulation imported; 0 while the pool is being replaced."""
        return self._ready

    def _new_pool(self) -> ProcessPoolExecutor:
        # spawn, not fork: the server process runs threads (aiosqlite), which fork would copy mid-state.
        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=worker.init,
            initargs=(self.spec, self._log_level, self._vm_band),
        )

    async def warm(self) -> None:
        """Return once every worker has imported the simulation (each answers a ping)."""
        loop = asyncio.get_running_loop()
        pool = self._pool
        seen: set[int] = set()
        async with asyncio.timeout(WORKER_WARMUP_TIMEOUT_S):
            while len(seen) < self.workers:
                answers = await asyncio.gather(*(loop.run_in_executor(pool, worker.ping) for _ in range(self.workers)))
                seen.update(pid for pid, _ in answers)
                self.takes_inputs = all(takes for _, takes in answers)
        if pool is self._pool:
            self._ready = self.workers

    async def run(self, inputs: Mapping[str, float] | None = None) -> worker.RunOutcome:
        """Run the simulation in a worker, with these inputs when it takes them."""
        pool = self._pool
        try:
            future = asyncio.get_running_loop().run_in_executor(pool, worker.run, inputs)
        except BrokenProcessPool:
            raise self._died(pool) from None
        except RuntimeError as exc:  # submit after shutdown: the server is stopping
            log.warning("the worker pool refused a run: %s", exc)
            raise Unavailable("the worker pool is not accepting work; the server is stopping") from None
        # Wait, then look at the outcome instead of awaiting the future: a BaseException sent back
        # by a worker (SystemExit...) must not be re-raised here, where it would stop the event loop.
        try:
            await asyncio.wait([future])
        finally:
            future.cancel()  # only when this run itself was cancelled: drop it if still queued
        error = future.exception()
        if error is None:
            return future.result()
        if isinstance(error, worker.WorkerError):
            raise SimulationFailed(f"simulation failed: {error}") from None
        if isinstance(error, BrokenProcessPool):
            raise self._died(pool) from None
        if not isinstance(error, Exception):
            log.error("a simulation worker sent back %r", error)
            raise SimulationFailed(f"simulation failed: {type(error).__name__}") from None
        raise error

    def _died(self, pool: ProcessPoolExecutor) -> SimulationFailed:
        self._replace(pool)
        return SimulationFailed("the worker process running this simulation died; it is being replaced")

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        if broken is not self._pool:
            return  # another request already replaced it
        log.error("a simulation worker died; starting a new pool of %d workers", self.workers)
        self._ready = 0
        self._pool = self._new_pool()
        broken.shutdown(wait=False, cancel_futures=True)
        self._rewarm = asyncio.create_task(self._warm_logged())

    async def _warm_logged(self) -> None:
        try:
            await self.warm()
            log.info("replacement worker pool is warm")
        except (BrokenProcessPool, worker.WorkerError, TimeoutError) as exc:
            log.error("replacement worker pool failed to warm: %s", exc)

    async def close(self) -> None:
        if self._rewarm is not None:
            self._rewarm.cancel()
            with suppress(asyncio.CancelledError):
                await self._rewarm
        self._ready = 0
        pool = self._pool
        # Private, but the only handle on the workers before Python 3.14's terminate_workers().
        processes = list(getattr(pool, "_processes", {}).values())
        pool.shutdown(wait=False, cancel_futures=True)  # idle workers exit at once
        await asyncio.to_thread(_stop, processes, WORKER_STOP_TIMEOUT_S)
        await asyncio.to_thread(pool.shutdown, wait=True)


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
    spec: str, workers: int, log_level: str, vm_band: tuple[float, float] = DEFAULT_VM_BAND
) -> AsyncIterator[SimulationPool]:
    pool = SimulationPool(spec, workers, log_level, vm_band)
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            await pool.warm()
        except worker.WorkerError as exc:
            raise StartupError(f"POWERSIM_SIMULATION={spec}: {exc}") from None
        except (BrokenProcessPool, TimeoutError) as exc:
            raise StartupError(f"simulation workers failed to start: {exc!r}") from None
        log.info("%d simulation workers ready in %.2f s (%s)", workers, loop.time() - started, spec)
        yield pool
    finally:
        await pool.close()
