"""Every typed application key, in one module so that imports stay acyclic."""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass

from aiohttp import web

from .hub import Hub
from .service import PowerSim
from .settings import Settings


@dataclass
class Gauge:
    """Open websocket connections, REST and GraphQL together (guards.websocket_guard counts)."""

    count: int = 0


SETTINGS = web.AppKey("settings", Settings)
POWERSIM = web.AppKey("powersim", PowerSim)
HUB = web.AppKey("hub", Hub)
WATCH_TASK = web.AppKey("watch_task", asyncio.Task[None])
WS_GAUGE = web.AppKey("ws_gauge", Gauge)
WEBSOCKETS = web.AppKey("websockets", weakref.WeakSet[web.WebSocketResponse])
