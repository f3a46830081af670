"""What powersim does, independent of the protocol that asks: REST and GraphQL both call this."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from redis.exceptions import RedisError, ResponseError

from .constants import (
    DESCRIBE_TIMEOUT_S,
    LATEST_KEY,
    MAX_PAGE,
    READ_YOUR_WRITE_WAIT_S,
    UPLOADS_PER_WORKER,
)
from .errors import BadRequest, NotFound, Overloaded, PayloadTooLarge, SimulationFailed, Unavailable, Unprocessable
from .grid.catalog import CATALOG
from .grid.loading import UnusableNetwork
from .grid.runner import not_applicable
from .grid.upload import NetworkTooLarge, UnsafeNetwork
from .latest import LatestStore
from .logs import loggable
from .models import (
    CONVERGED,
    NETWORK_ID,
    NOT_CONVERGED,
    SEED_NETWORK,
    STATUSES,
    InvalidResult,
    SimulationResult,
    Status,
)
from .networks import NetworkEntry, NewUpload
from .pool import RunStopped, SimulationPool
from .republish import Republisher
from .scenario import INPUT_NAMES, NETWORK_INPUT_NAMES, SEED, InvalidInput, ScenarioInput, seed_inputs
from .storage import Storage
from .watcher import Watcher
from .worker import DocumentNeeded, NetworkJob, RunOutcome, describe_catalog, describe_upload, run_network

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


def parse_network_id(raw: str) -> str:
    if not NETWORK_ID.fullmatch(raw):
        raise BadRequest(f"network must be a network id, got {raw[:40]!r}")
    return raw


# An upload's name: printable text for people, without line breaks (it ends up in logs).
MAX_NAME_CHARS = 200


def parse_network_name(raw: str | None, sha256: str) -> str:
    if raw is None:
        return f"upload {sha256[:12]}"
    name = raw.strip()
    if not name or len(name) > MAX_NAME_CHARS or not name.isprintable():
        raise BadRequest(f"name must be 1 to {MAX_NAME_CHARS} printable characters")
    return name


@dataclass(frozen=True)
class Job:
    """A validated run: the network, an upload's sha256, and the inputs it is stored with
    (the seed's full set, or those the request gave on other networks)."""

    network: str
    sha256: str | None
    inputs: dict[str, float] | None


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
        self._catalog: asyncio.Task[list[NetworkEntry]] | None = None
        self._uploads = 0  # being checked by the workers now

    async def run_simulation(self, inputs: ScenarioInput | None = None) -> SimulationResult:
        """Run, store and publish one simulation; refuse at once when too much is queued.

        A run that does not converge is stored and returned (status not_converged), never
        published: the latest result stays the last one that converged.
        """
        resolved = await self._resolve(inputs)
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

    async def _resolve(self, inputs: ScenarioInput | None) -> Job:
        """Check which inputs apply to the run's network; an input that would change nothing is
        refused (422), not ignored. The inputs' ranges were checked by ScenarioInput."""
        given = inputs.model_fields_set - {"network"} if inputs is not None else set()
        network = inputs.network if inputs is not None else SEED_NETWORK
        if network == SEED_NETWORK:
            wrong = given - set(INPUT_NAMES)
            if wrong:
                problem = "applies to catalog and uploaded networks, not the seed"
                raise InvalidInput(dict.fromkeys(sorted(wrong), problem))
            return Job(SEED_NETWORK, None, self._seed_inputs(inputs))
        wrong = given - set(NETWORK_INPUT_NAMES)
        if wrong:
            raise InvalidInput(dict.fromkeys(sorted(wrong), "applies to the seed network only"))
        assert inputs is not None
        chosen = {name: getattr(inputs, name) for name in NETWORK_INPUT_NAMES if name in given}
        if network in CATALOG:
            entry = self._described(network)  # once known; otherwise the worker checks
        else:
            entry = await self.storage.get_network(network)
            if entry is None:
                raise InvalidInput({"network": f"no network {network!r}: see GET /networks"})
        refused = {name: not_applicable(name) for name in chosen if entry is not None and name not in entry.inputs}
        if refused:
            raise InvalidInput(refused)
        return Job(network, entry.sha256 if entry is not None else None, chosen)

    def _described(self, network_id: str) -> NetworkEntry | None:
        """A catalog network's entry, if the catalog has been described already."""
        catalog = self._catalog
        if catalog is None or not catalog.done() or catalog.cancelled() or catalog.exception() is not None:
            return None
        return next((entry for entry in catalog.result() if entry.id == network_id), None)

    def _seed_inputs(self, inputs: ScenarioInput | None) -> dict[str, float] | None:
        """The full input set a seed run is called with and stored with; None for a simulation
        that takes no inputs, which then refuses any value other than the seed's. (Compared by
        value, not by which fields were sent: GraphQL fills in its defaults, REST does not.)"""
        if self.pool.takes_inputs:
            return seed_inputs(inputs or SEED)
        if inputs is None:
            return None
        changed = [name for name in INPUT_NAMES if getattr(inputs, name) != getattr(SEED, name)]
        if changed:
            problem = f"not taken by this simulation ({self.pool.spec})"
            raise InvalidInput(dict.fromkeys(changed, problem))
        return None

    async def _run_and_record(self, job: Job) -> SimulationResult:
        """Run, store, publish. A run that did not converge, overran the time limit or lost its
        worker is stored with that status and returned; only a converged one is published."""
        base = SimulationResult(
            None, None, None, None, None, job.inputs, network=job.network, network_sha256=job.sha256
        )
        try:
            outcome = await self._outcome(job)
        except RunStopped as stop:
            launched_at = datetime.fromtimestamp(stop.started, UTC)
            run = replace(base, launched_at=launched_at, status=stop.status, message=stop.reason)
            return replace(run, id=await self.storage.insert_run(run, datetime.now(UTC)))
        launched_at = datetime.fromtimestamp(outcome.started, UTC)
        finished_at = datetime.fromtimestamp(outcome.finished, UTC)
        if not outcome.converged:
            run = replace(base, launched_at=launched_at, status=NOT_CONVERGED, message=outcome.message)
            return replace(run, id=await self.storage.insert_run(run, finished_at))
        active, reactive = outcome.active_power, outcome.reactive_power
        if active is None or reactive is None or not (math.isfinite(active) and math.isfinite(reactive)):
            raise SimulationFailed(f"simulation returned a non-finite result ({active}, {reactive})")
        run = replace(
            base,
            active_power=active,
            reactive_power=reactive,
            launched_at=launched_at,
            status=CONVERGED,
            details_json=outcome.details_json,
        )
        run = replace(run, id=await self.storage.insert_run(run, finished_at))
        await self._publish(replace(run, details_json=None))
        return run

    async def _outcome(self, job: Job) -> RunOutcome:
        if job.network == SEED_NETWORK:
            return await self.pool.run(job.inputs)
        request = NetworkJob(job.network, job.sha256, job.inputs or {})
        try:
            try:
                return await self.pool.call(run_network, request)
            except DocumentNeeded:  # this worker has not read the upload yet
                document = await self.storage.network_document(job.network)
                if document is None or document[0] != job.sha256:
                    raise InvalidInput({"network": "was deleted while the run was queued"}) from None
                return await self.pool.call(run_network, replace(request, document=document[1]))
        except (UnusableNetwork, NetworkTooLarge, UnsafeNetwork) as exc:  # limits lowered since the upload
            raise InvalidInput({"network": str(exc)}) from None

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

    async def history(
        self, limit: int, before: int | None, status: Status | None = None, network: str | None = None
    ) -> Page:
        """Newest first; `next_before` is the `before` of the next page, None on the last one."""
        check_range(limit, "limit", 1, MAX_PAGE)
        if before is not None:
            check_range(before, "before", 1, MAX_ID)
        rows = await self.storage.page(limit + 1, before, status, network)
        more = len(rows) > limit
        rows = rows[:limit]
        return Page(rows, rows[-1].id if more and rows else None)

    async def get(self, run_id: int, with_details: bool = False) -> SimulationResult | None:
        return await self.storage.get(check_range(run_id, "id", 1, MAX_ID), with_details)

    async def networks(self) -> list[NetworkEntry]:
        """The catalog (described by the workers once) and the uploads, in that order."""
        return [*await self._catalog_entries(), *await self.storage.list_networks()]

    async def network(self, network_id: str) -> NetworkEntry:
        if network_id in CATALOG:
            return next(entry for entry in await self._catalog_entries() if entry.id == network_id)
        entry = await self.storage.get_network(network_id)
        if entry is None:
            raise NotFound(f"no network {network_id!r}")
        return entry

    async def network_document(self, network_id: str) -> bytes:
        """An upload's document as stored (catalog networks are built by code, not stored)."""
        if network_id in CATALOG:
            raise NotFound(f"{network_id!r} is built by code (pandapower's, or test_sim's): no document is stored")
        document = await self.storage.network_document(network_id)
        if document is None:
            raise NotFound(f"no network {network_id!r}")
        return document[1]

    async def delete_network(self, network_id: str) -> None:
        """Remove an upload; its runs stay in the history (with its id and sha256)."""
        if network_id in CATALOG:
            raise BadRequest(f"{network_id!r} is part of the catalog: only uploads can be deleted")
        if not await self.storage.delete_network(network_id):
            raise NotFound(f"no network {network_id!r}")

    async def add_network(self, document: bytes, name: str | None) -> tuple[NetworkEntry, bool]:
        """Check, read and store an upload; (entry, False) when the same bytes are already there.

        The document goes to a worker for the pre-check and pandapower's reader (parsing 20 MB
        of JSON takes seconds: never on the event loop); nothing is stored for a refused one.
        """
        if self.draining:
            raise Unavailable("the server is shutting down; no uploads are accepted")
        sha256 = await asyncio.to_thread(lambda: hashlib.sha256(document).hexdigest())
        label = parse_network_name(name, sha256)
        for entry in await self.storage.list_networks():
            if entry.sha256 == sha256:
                return entry, False
        limit = UPLOADS_PER_WORKER * self.pool.workers
        if self._uploads >= limit:
            raise Overloaded(f"{self._uploads} uploads are being checked; retry shortly")
        self._uploads += 1
        try:
            facts = await self.pool.call(describe_upload, document, sha256)
        except NetworkTooLarge as exc:
            raise PayloadTooLarge(str(exc)) from None
        except (UnsafeNetwork, UnusableNetwork) as exc:
            raise Unprocessable(f"the network is refused: {exc}") from None
        except RunStopped as stop:
            raise Unprocessable(f"the network could not be read: {stop.reason}") from None
        except SimulationFailed as exc:
            raise Unprocessable(f"the network could not be read: {exc}") from None
        finally:
            self._uploads -= 1
        upload = NewUpload(label, sha256, len(document), datetime.now(UTC), facts.counts, facts.inputs, document)
        return await self.storage.add_network(upload)

    async def _catalog_entries(self) -> list[NetworkEntry]:
        """Counts and inputs of every catalog network, worked out once by the workers (building
        them all takes seconds) and shared by every request meanwhile; a failure is not kept."""
        if self._catalog is None or (self._catalog.done() and self._catalog.exception() is not None):
            self._catalog = asyncio.create_task(self._describe_catalog())
        return await asyncio.shield(self._catalog)

    async def _describe_catalog(self) -> list[NetworkEntry]:
        async def describe(network_id: str) -> NetworkEntry:
            try:
                limit = max(self.pool.run_timeout, DESCRIBE_TIMEOUT_S)
                facts = await self.pool.call(describe_catalog, network_id, time_limit=limit)
            except (RunStopped, SimulationFailed) as exc:
                log.error("could not describe catalog network %s: %s", network_id, exc)
                raise Unavailable("the network catalog could not be described; retry shortly") from None
            entry = CATALOG[network_id]
            # The seed network runs through the simulation (POWERSIM_SIMULATION): its inputs.
            inputs = (INPUT_NAMES if self.pool.takes_inputs else ()) if network_id == SEED_NETWORK else facts.inputs
            return NetworkEntry(entry.id, entry.name, entry.source, facts.counts, inputs)

        return list(await asyncio.gather(*(describe(network_id) for network_id in CATALOG)))

    async def health(self) -> Health:
        database, redis = await asyncio.gather(self.storage.check(), self.store.ping())
        # Redis is "ok" only while the watcher is subscribed too: a ping on another connection
        # says nothing about a subscription that died silently.
        return Health(redis=redis and self.watcher.subscribed.is_set(), database=database, workers=self.pool.ready)
