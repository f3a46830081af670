"""The /simulator-subscribe websocket: the current result on connect, then every new one."""

from __future__ import annotations

import asyncio
import socket
from contextlib import suppress

from aiohttp import WSCloseCode, WSMsgType, web

from .constants import WS_MAX_FRAME_BYTES, WS_SOCKET_SNDBUF_BYTES, WS_WRITE_BUFFER_BYTES
from .hub import Subscriber
from .keys import HUB, SETTINGS, WEBSOCKETS


async def simulator_subscribe(request: web.Request) -> web.WebSocketResponse:
    # Compression off: it multiplies per-connection memory for ~100-byte messages.
    ws = web.WebSocketResponse(
        heartbeat=request.app[SETTINGS].ws_heartbeat,
        max_msg_size=WS_MAX_FRAME_BYTES,
        compress=False,
        writer_limit=WS_WRITE_BUFFER_BYTES,
    )
    if not ws.can_prepare(request).ok:
        raise web.HTTPUpgradeRequired(text="this endpoint is a websocket; connect with a websocket client")
    await ws.prepare(request)
    if request.transport is not None:
        request.transport.set_write_buffer_limits(high=WS_WRITE_BUFFER_BYTES)
        sock = request.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, WS_SOCKET_SNDBUF_BYTES)
    request.app[WEBSOCKETS].add(ws)
    with request.app[HUB].subscribe() as subscriber:
        sender = asyncio.create_task(_send(ws, subscriber))
        try:
            async for message in ws:
                # Text from clients is ignored; this endpoint only talks.
                if message.type == WSMsgType.BINARY:
                    await ws.close(code=WSCloseCode.UNSUPPORTED_DATA, message=b"binary frames are not accepted")
        finally:
            sender.cancel()
            with suppress(asyncio.CancelledError):
                await sender
    return ws


async def _send(ws: web.WebSocketResponse, subscriber: Subscriber) -> None:
    while True:
        update = await subscriber.next()
        try:
            await ws.send_frame(update.data, WSMsgType.TEXT)
        except ConnectionError:
            return  # the receive loop sees the close and cleans up


async def close_websockets(app: web.Application) -> None:
    """On shutdown: tell every client we are going away (1001) instead of dropping them."""
    sockets = list(app[WEBSOCKETS])
    await asyncio.gather(
        *(ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down") for ws in sockets),
        return_exceptions=True,
    )


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/simulator-subscribe", simulator_subscribe)
