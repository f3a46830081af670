"""What powersim does, independent of the protocol that asks: REST and GraphQL both call this."""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime

from redis.exceptions import RedisError

from .constants import LATEST_KEY, MAX_PAGE, READ_YOUR_WRITE_WAIT_S
from .errors import BadRequest, Overloaded, SimulationFailed, Unavailable
from .latest import LatestStore
from .models import InvalidResult, SimulationResult
from .pool import SimulationPool
from .storage import Storage
from .watcher import Watcher

log = logging.getLogger(__name__)

MAX_ID = 2**63 - 1  # SQLite's INTEGER PRIMARY KEY range


def parse_int(raw: str, name: str) -> int:
    """Integers arrive as text from URLs and GraphQL IDs; say which one is wrong."""
    try:
        return int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer, got {raw[:40]!r}") from None


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
        # A stored result whose Redis write failed; written when Redis is back.
        self._unpublished: SimulationResult | None = None
        # Runs queued or running. Owned here, not by the request: a client that goes away, or a
        # handler cancelled at shutdown, must not lose a run that has started.
        self._runs: set[asyncio.Task[SimulationResult]] = set()

    async def run_simulation(self) -> SimulationResult:
        """Run, store and publish one simulation; refuse at once when too much is queued."""
        if self.draining:
            raise Unavailable("the server is shutting down; no new runs are accepted")
        if len(self._runs) >= self.max_pending:
            raise Overloaded(f"{len(self._runs)} runs are queued or running (POWERSIM_MAX_PENDING); retry shortly")
        task = asyncio.create_task(self._run_and_record())
        self._runs.add(task)
        task.add_done_callback(self._run_done)
        return await asyncio.shield(task)

    def _run_done(self, task: asyncio.Task[SimulationResult]) -> None:
        self._runs.discard(task)
        if not task.cancelled():
            # Mark a failure as seen: when the request that started the run has gone away,
            # nobody else awaits it (the failure is logged by the error middleware otherwise).
            task.exception()

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

    async def _run_and_record(self) -> SimulationResult:
        active, reactive, started, finished = await self.pool.run()
        if not (math.isfinite(active) and math.isfinite(reactive)):
            raise SimulationFailed(f"simulation returned a non-finite result ({active}, {reactive})")
        launched_at = datetime.fromtimestamp(started, UTC)
        run_id = await self.storage.insert_run(launched_at, datetime.fromtimestamp(finished, UTC), active, reactive)
        result = SimulationResult(run_id, active, reactive, launched_at)
        await self._publish(result)
        return result

    async def _publish(self, result: SimulationResult) -> None:
        loop = asyncio.get_running_loop()
        try:
            written = await self.store.publish(result)
        except RedisError as exc:
            log.warning("run %d is stored but Redis is unreachable (%s); it is published on reconnect", result.id, exc)
            self._keep_unpublished(result)
            return
        if not written:
            return  # a more recently launched result is there; the watcher has it or will
        # The watcher, not this request, pushes to subscribers. Wait until it has seen our write,
        # so that a GET right after this response agrees: either it holds our result, or it read
        # the key after our write (someone else's newer value may have replaced ours by then).
        written_at = loop.time()
        watcher = self.watcher
        try:
            async with asyncio.timeout(READ_YOUR_WRITE_WAIT_S):
                await watcher.wait_until(lambda: watcher.current == result or watcher.last_read_started >= written_at)
        except TimeoutError:
            log.debug("no keyspace notification for run %d within %.1f s", result.id, READ_YOUR_WRITE_WAIT_S)

    def _keep_unpublished(self, result: SimulationResult) -> None:
        kept = self._unpublished
        if kept is None or (kept.launched_at and result.launched_at and result.launched_at > kept.launched_at):
            self._unpublished = result

    async def sync_redis(self) -> None:
        """On every (re)connect: restore a missing key from SQLite, write what a failure held back."""
        newest = await self.storage.newest_launched()
        if newest is not None and await self.store.restore_if_missing(newest):
            log.info("%s was missing; restored run %d from the database", LATEST_KEY, newest.id)
        pending, self._unpublished = self._unpublished, None
        if pending is not None:
            try:
                await self.store.publish(pending)
            except RedisError:
                self._keep_unpublished(pending)
                raise

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

    async def history(self, limit: int, before: int | None) -> Page:
        """Newest first; `next_before` is the `before` of the next page, None on the last one."""
        check_range(limit, "limit", 1, MAX_PAGE)
        if before is not None:
            check_range(before, "before", 1, MAX_ID)
        rows = await self.storage.page(limit + 1, before)
        more = len(rows) > limit
        rows = rows[:limit]
        return Page(rows, rows[-1].id if more and rows else None)

    async def get(self, run_id: int) -> SimulationResult | None:
        return await self.storage.get(check_range(run_id, "id", 1, MAX_ID))

    async def health(self) -> Health:
        database, redis = await asyncio.gather(self.storage.check(), self.store.ping())
        return Health(redis=redis, database=database, workers=self.pool.ready)
