"""Every typed application key, in one module so that imports stay acyclic."""

from __future__ import annotations

import asyncio
import weakref

from aiohttp import web

from .hub import Hub
from .service import PowerSim
from .settings import Settings

SETTINGS = web.AppKey("settings", Settings)
POWERSIM = web.AppKey("powersim", PowerSim)
HUB = web.AppKey("hub", Hub)
WATCH_TASK = web.AppKey("watch_task", asyncio.Task[None])
WEBSOCKETS = web.AppKey("websockets", weakref.WeakSet[web.WebSocketResponse])
