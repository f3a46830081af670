"""What powersim does, independent of the protocol that asks: REST and GraphQL both call this."""

from __future__ import annotations

import asyncio
import logging
import math
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from redis.exceptions import RedisError, ResponseError

from .constants import (
    LATEST_KEY,
    MAX_PAGE,
    READ_YOUR_WRITE_WAIT_S,
)
from .errors import BadRequest, Overloaded, SimulationFailed, Unavailable
from .latest import LatestStore
from .logs import loggable
from .models import CONVERGED, NOT_CONVERGED, STATUSES, InvalidResult, SimulationResult, Status
from .pool import SimulationPool
from .republish import Republisher
from .scenario import INPUT_NAMES, SEED, InvalidInput, ScenarioInput
from .storage import Storage
from .watcher import Watcher

log = logging.getLogger(__name__)

MAX_ID = 2**63 - 1  # SQLite's INTEGER PRIMARY KEY range


# ASCII digits only: int() also takes "1_0", "+5", " 7" and other scripts' digits ("٣"), which
# would give one run many URLs. Longer than 40 digits is no id (and int() of it costs time).
_INTEGER = re.compile(r"-?[0-9]{1,40}")


def parse_int(raw: str, name: str) -> int:
    """Integers arrive as text from URLs and GraphQL IDs; say which one is wrong."""
    if not _INTEGER.fullmatch(raw):
        raise BadRequest(f"{name} must be an integer, got {raw[:40]!r}")
    return int(raw)


def parse_status(raw: str) -> Status:
    for status in STATUSES:
        if raw == status:
            return status
    raise BadRequest(f"status must be one of {', '.join(STATUSES)}, got {raw[:40]!r}")


def check_range(value: int, name: str, low: int, high: int) -> int:
    if not low <= value <= high:
        raise BadRequest(f"{name} must be between {low} and {high}, got {value}")
    return value


@dataclass(frozen=True)
class Page:
    simulations: list[SimulationResult]
    next_before: int | None


@dataclass(frozen=True)
class Health:
    redis: bool
    database: bool
    workers: int

    @property
    def serving(self) -> bool:
        return self.database and self.workers > 0


def _log_orphan_failure(exc: BaseException | None) -> None:
    """A failed run nobody waits for any more: nobody else would report it."""
    log.error("a run whose client had gone away failed: %s", loggable(str(exc) or type(exc).__name__, 2000))


class PowerSim:
    """Runs, stores and publishes simulations; answers questions about them."""

    def __init__(
        self, pool: SimulationPool, storage: Storage, store: LatestStore, watcher: Watcher, max_pending: int
    ) -> None:
        self.pool = pool
        self.storage = storage
        self.store = store
        self.watcher = watcher
        self.max_pending = max_pending
        self.draining = False
        self.republisher = Republisher(store)
        # Runs whose request went away before the run finished: a failure is logged here.
        self._orphans: set[asyncio.Task[SimulationResult]] = set()
        # Runs queued or running. Owned here, not by the request: a client that goes away, or a
        # handler cancelled at shutdown, must not lose a run that has started.
        self._runs: set[asyncio.Task[SimulationResult]] = set()

    async def run_simulation(self, inputs: ScenarioInput | None = None) -> SimulationResult:
        """Run, store and publish one simulation; refuse at once when too much is queued.

        A run that does not converge is stored and returned (status not_converged), never
        published: the latest result stays the last one that converged.
        """
        resolved = self._resolve(inputs)
        if self.draining:
            raise Unavailable("the server is shutting down; no new runs are accepted")
        if len(self._runs) >= self.max_pending:
            raise Overloaded(f"{len(self._runs)} runs are queued or running (POWERSIM_MAX_PENDING); retry shortly")
        task = asyncio.create_task(self._run_and_record(resolved))
        self._runs.add(task)
        task.add_done_callback(self._run_done)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if task.cancelled() and current is not None and not current.cancelling():
                # The drain abandoned the run at the shutdown deadline; this request was not
                # cancelled, so it gets an answer instead of a dropped connection.
                raise Unavailable("the server shut down before this run finished") from None
            if not task.done():
                self._orphans.add(task)
            elif not task.cancelled() and task.exception() is not None:  # failed as we were cancelled
                _log_orphan_failure(task.exception())
            raise

    def _run_done(self, task: asyncio.Task[SimulationResult]) -> None:
        self._runs.discard(task)
        orphaned = task in self._orphans
        self._orphans.discard(task)
        if task.cancelled():
            return
        # Always retrieve a failure; when the request that started the run has gone away,
        # nobody else will see it, so it is logged here (otherwise the error middleware does).
        exc = task.exception()
        if exc is not None and orphaned:
            _log_orphan_failure(exc)

    async def drain(self, grace_s: float) -> None:
        """At shutdown: stop taking runs and let those in flight finish, store and publish."""
        self.draining = True
        if not self._runs:
            return
        log.info("waiting up to %.0f s for %d runs in flight", grace_s, len(self._runs))
        _, late = await asyncio.wait(set(self._runs), timeout=grace_s)
        for task in late:
            task.cancel()
        if late:
            log.warning("%d runs did not finish within %.0f s and were abandoned", len(late), grace_s)

    def _resolve(self, inputs: ScenarioInput | None) -> dict[str, float] | None:
        """The full input set a run is called with and stored with; None for a simulation that
        takes no inputs, which then refuses any value other than the seed's. (Compared by value,
        not by which fields were sent: GraphQL fills in its defaults, REST does not.)"""
        if self.pool.takes_inputs:
            return (inputs or SEED).model_dump()
        if inputs is None:
            return None
        changed = [name for name in INPUT_NAMES if getattr(inputs, name) != getattr(SEED, name)]
        if changed:
            problem = f"not taken by this simulation ({self.pool.spec})"
            raise InvalidInput(dict.fromkeys(changed, problem))
        return None

    async def _run_and_record(self, inputs: dict[str, float] | None) -> SimulationResult:
        outcome = await self.pool.run(inputs)
        launched_at = datetime.fromtimestamp(outcome.started, UTC)
        finished_at = datetime.fromtimestamp(outcome.finished, UTC)
        if not outcome.converged:
            run = SimulationResult(None, None, None, launched_at, NOT_CONVERGED, inputs, outcome.message)
            return replace(run, id=await self.storage.insert_run(run, finished_at))
        active, reactive = outcome.active_power, outcome.reactive_power
        if active is None or reactive is None or not (math.isfinite(active) and math.isfinite(reactive)):
            raise SimulationFailed(f"simulation returned a non-finite result ({active}, {reactive})")
        run = SimulationResult(
            None, active, reactive, launched_at, CONVERGED, inputs, details_json=outcome.details_json
        )
        run = replace(run, id=await self.storage.insert_run(run, finished_at))
        await self._publish(replace(run, details_json=None))
        return run

    async def _publish(self, result: SimulationResult) -> None:
        try:
            written = await self.store.publish(result)
        except RedisError as exc:
            log.warning("run %d is stored but Redis refused the write (%s); retrying it", result.id, exc)
            self.republisher.hold(result)
            return
        self.republisher.superseded_by(result)
        if not written:
            return  # a more recently launched result is there; the watcher has it or will
        # The watcher, not this request, pushes to subscribers. Wait until it has seen our write,
        # so that a GET right after this response agrees: either it holds our result, or it read
        # the key after our write (someone else's newer value may have replaced ours by then).
        watcher = self.watcher
        mark = watcher.reads_started
        try:
            async with asyncio.timeout(READ_YOUR_WRITE_WAIT_S):
                await watcher.wait_for_read_after(mark, lambda: watcher.current == result)
        except TimeoutError:
            log.debug("no keyspace notification for run %d within %.1f s", result.id, READ_YOUR_WRITE_WAIT_S)

    async def sync_redis(self) -> None:
        """On every (re)connect: restore a missing key from SQLite, write what a failure held back.

        Write failures (OOM, READONLY) and a failing database are logged and skipped: they must
        not stop the watcher from resubscribing, since reads and notifications still work.
        """
        try:
            newest = await self.storage.newest_launched()
        except Unavailable as exc:
            log.warning("could not read the newest run to restore %s: %s", LATEST_KEY, exc)
            newest = None
        if newest is not None:
            try:
                if await self.store.restore_if_missing(newest):
                    log.info("%s was missing; restored run %d from the database", LATEST_KEY, newest.id)
            except ResponseError as exc:
                log.warning("could not restore %s from the database: %s", LATEST_KEY, loggable(str(exc)))
        await self.republisher.flush()

    async def close(self) -> None:
        await self.republisher.close()

    async def latest(self) -> SimulationResult | None:
        """The watcher's copy; before it has loaded, Redis; with Redis down too, the database."""
        if self.watcher.loaded:
            return self.watcher.current
        try:
            return await self.store.read()
        except InvalidResult:
            return None
        except RedisError:
            return await self.storage.newest_launched()

    async def history(self, limit: int, before: int | None, status: Status | None = None) -> Page:
        """Newest first; `next_before` is the `before` of the next page, None on the last one."""
        check_range(limit, "limit", 1, MAX_PAGE)
        if before is not None:
            check_range(before, "before", 1, MAX_ID)
        rows = await self.storage.page(limit + 1, before, status)
        more = len(rows) > limit
        rows = rows[:limit]
        return Page(rows, rows[-1].id if more and rows else None)

    async def get(self, run_id: int, with_details: bool = False) -> SimulationResult | None:
        return await self.storage.get(check_range(run_id, "id", 1, MAX_ID), with_details)

    async def health(self) -> Health:
        database, redis = await asyncio.gather(self.storage.check(), self.store.ping())
        # Redis is "ok" only while the watcher is subscribed too: a ping on another connection
        # says nothing about a subscription that died silently.
        return Health(redis=redis and self.watcher.subscribed.is_set(), database=database, workers=self.pool.ready)
