"""Results stored while Redis refused their write, written again until Redis takes them."""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress

from redis.exceptions import RedisError

from .constants import LATEST_KEY, REPUBLISH_BACKOFF_CAP_S, REPUBLISH_BACKOFF_START_S
from .latest import LatestStore
from .logs import loggable
from .models import SimulationResult

log = logging.getLogger(__name__)


def _not_newer(result: SimulationResult, than: SimulationResult) -> bool:
    return result.launched_at is not None and than.launched_at is not None and result.launched_at <= than.launched_at


class Republisher:
    """Holds the newest stored result whose Redis write failed, and writes it again with capped
    backoff until Redis takes it or a newer run is written. On its own schedule: a timeout, OOM
    or READONLY after a failover refuses writes while every connection, the watcher's
    subscription included, stays up, so no reconnect would ever retry it."""

    def __init__(self, store: LatestStore) -> None:
        self._store = store
        self.pending: SimulationResult | None = None
        self._task: asyncio.Task[None] | None = None

    def hold(self, result: SimulationResult) -> None:
        """Keep `result` unless a newer launch is held already, and make sure a retry is on."""
        if self.pending is None or not _not_newer(result, self.pending):
            self.pending = result
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._retry(), name="powersim-republish")

    def superseded_by(self, result: SimulationResult) -> None:
        """A run launched at or after the held one reached Redis: the held one is obsolete."""
        if self.pending is not None and _not_newer(self.pending, result):
            self.pending = None

    async def flush(self) -> None:
        """Try the write now (on a reconnect); a failure leaves it to the retry loop."""
        try:
            await self._write()
        except RedisError as exc:
            log.warning("a held-back run is still not written to Redis: %s", loggable(str(exc)))

    async def close(self) -> None:
        """Stop retrying (the result stays in the database)."""
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task

    async def _retry(self) -> None:
        delay = REPUBLISH_BACKOFF_START_S
        while self.pending is not None:
            await asyncio.sleep(delay)
            delay = min(delay * 2, REPUBLISH_BACKOFF_CAP_S)
            try:
                await self._write()
            except RedisError as exc:
                log.debug("held-back run still not written to Redis: %s", exc)
            except Exception:  # the top of a background loop: log, keep retrying
                log.exception("retrying a held-back Redis write failed")

    async def _write(self) -> None:
        pending = self.pending
        if pending is None:
            return
        written = await self._store.publish(pending)
        # Cleared only now, and only if unchanged: a newer run held while this write was in
        # flight must not be lost, and an older one was never taken over this one.
        if self.pending is pending:
            self.pending = None
        if written:
            log.info("run %s, held back by a Redis failure, is now written to %s", pending.id, LATEST_KEY)
