"""Every typed application key, in one module so that imports stay acyclic."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiohttp import web

from .hub import Hub
from .service import PowerSim
from .settings import Settings


@dataclass
class Gauge:
    """Slots of POWERSIM_MAX_SUBSCRIBERS in use: one per open websocket, REST and GraphQL
    (guards.websocket_guard), plus one per GraphQL subscription beyond a connection's first
    (gql.schema.SubscriptionSlots)."""

    count: int = 0


@dataclass
class Shutdown:
    """loop.time() by which shutdown must be done, set when it begins; every step shares it."""

    deadline: float | None = None


SETTINGS = web.AppKey("settings", Settings)
POWERSIM = web.AppKey("powersim", PowerSim)
HUB = web.AppKey("hub", Hub)
WATCH_TASK = web.AppKey("watch_task", asyncio.Task[None])
WS_GAUGE = web.AppKey("ws_gauge", Gauge)
# Open websockets and their transports, closed (and if need be aborted) at shutdown.
WEBSOCKETS = web.AppKey("websockets", dict[web.WebSocketResponse, asyncio.Transport])
SHUTDOWN = web.AppKey("shutdown", Shutdown)
# The websocket of a /graphql request, if it became one: released when strawberry's view returns.
GQL_SOCKET = web.RequestKey("graphql_socket", web.WebSocketResponse)
