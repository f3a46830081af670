"""The app factory: wires settings, resources, routes and middlewares; holds no logic."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import suppress

from aiohttp import web

from . import rest, ws
from .constants import MAX_BODY_BYTES, REDIS_STARTUP_WAIT_S
from .errors import StartupError
from .gql import setup_graphql
from .guards import request_guard, websocket_guard
from .hub import Hub
from .keys import HUB, POWERSIM, SETTINGS, SHUTDOWN, WATCH_TASK, WEBSOCKETS, WS_GAUGE, Gauge, Shutdown
from .latest import open_latest_store
from .middlewares import json_errors
from .pool import open_pool
from .service import PowerSim
from .settings import Settings
from .storage import open_storage
from .watcher import Watcher
from .worker import WorkerConfig


async def powersim_ctx(app: web.Application) -> AsyncIterator[None]:
    """Open storage, Redis and the pool (in that order), start the watcher, and undo it all."""
    settings = app[SETTINGS]
    async with (
        open_storage(settings.database_path) as storage,
        open_latest_store(settings.redis_url, settings.redis_url_redacted) as store,
        open_pool(worker_config(settings), settings.workers, run_timeout=settings.run_timeout) as pool,
    ):
        watcher = Watcher(store, app[HUB], settings.redis_db)
        powersim = PowerSim(pool, storage, store, watcher, settings.max_pending)
        watcher.on_connect = powersim.sync_redis
        app[POWERSIM] = powersim
        app[WATCH_TASK] = asyncio.create_task(watcher.run(), name="powersim-watcher")
        try:
            # Serve only once live updates flow: subscribed, key restored, current result loaded.
            try:
                async with asyncio.timeout(REDIS_STARTUP_WAIT_S):
                    await watcher.subscribed.wait()
            except TimeoutError:
                raise StartupError(f"could not subscribe to Redis at {settings.redis_url_redacted}") from None
            yield
            await powersim.drain(drain_left(app))  # normally nothing left: drain_runs did it
        finally:
            app[WATCH_TASK].cancel()
            with suppress(asyncio.CancelledError):
                await app[WATCH_TASK]
            await powersim.close()  # its retry of a held-back Redis write, before Redis closes


def worker_config(settings: Settings) -> WorkerConfig:
    return WorkerConfig(
        spec=settings.simulation,
        log_level=settings.log_level,
        vm_band=settings.voltage_band,
        memory_mb=settings.worker_memory_mb,
        max_network_bytes=settings.max_network_bytes,
        max_buses=settings.max_buses,
    )


def drain_left(app: web.Application) -> float:
    """Seconds left of POWERSIM_DRAIN_TIMEOUT, counted from the start of shutdown."""
    deadline = app[SHUTDOWN].deadline
    if deadline is None:
        return app[SETTINGS].drain_timeout
    return max(0.0, deadline - asyncio.get_running_loop().time())


async def begin_shutdown(app: web.Application) -> None:
    """First thing on shutdown: a run that arrives now is refused (503) instead of cut short,
    and one clock starts: closing websockets and finishing runs share POWERSIM_DRAIN_TIMEOUT."""
    app[SHUTDOWN].deadline = asyncio.get_running_loop().time() + app[SETTINGS].drain_timeout
    if POWERSIM in app:
        app[POWERSIM].draining = True


async def drain_runs(app: web.Application) -> None:
    """Last on_shutdown hook: runs in flight may finish (and their requests be answered) within
    what is left of the drain timeout; aiohttp's own wait for handlers comes after, and is short."""
    if POWERSIM in app:
        await app[POWERSIM].drain(drain_left(app))


def create_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[json_errors, request_guard, websocket_guard], client_max_size=MAX_BODY_BYTES)
    app[SETTINGS] = settings
    app[HUB] = Hub()
    app[WEBSOCKETS] = {}
    app[WS_GAUGE] = Gauge()
    app[SHUTDOWN] = Shutdown()
    app.cleanup_ctx.append(powersim_ctx)
    app.on_shutdown.append(begin_shutdown)
    app.on_shutdown.append(ws.close_websockets)
    app.on_shutdown.append(drain_runs)
    rest.setup_routes(app)
    ws.setup_routes(app)
    setup_graphql(app)
    return app
