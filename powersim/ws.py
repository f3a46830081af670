"""The /simulator-subscribe websocket, and the limits and shutdown every websocket shares."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections.abc import Sequence
from contextlib import suppress

from aiohttp import WSCloseCode, WSMsgType, web
from aiohttp.abc import AbstractStreamWriter

from .constants import WS_CLOSE_TIMEOUT_S, WS_MAX_FRAME_BYTES, WS_SOCKET_SNDBUF_BYTES, WS_WRITE_BUFFER_BYTES
from .hub import Subscriber
from .keys import HUB, SETTINGS, SHUTDOWN, WEBSOCKETS
from .settings import Settings

log = logging.getLogger(__name__)


def abort(transport: asyncio.Transport) -> None:
    """Drop a connection now, with a reset: a plain abort() leaves the kernel holding the unsent
    bytes (FIN-WAIT-1) for as long as a peer that stopped reading keeps acknowledging probes."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with suppress(OSError, ValueError):  # ValueError: uvloop's socket of a closed transport
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class BoundedWebSocket(web.WebSocketResponse):
    """A websocket whose close() is bounded. aiohttp's waits for the peer to take the close frame
    with no limit, and every close goes through it (ours, a 1009 for an oversize frame, a missed
    heartbeat, strawberry's): a peer that stopped reading would hold its handler, its slot under
    POWERSIM_MAX_SUBSCRIBERS and its buffers forever."""

    _transport: asyncio.Transport | None = None

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter:
        writer = await super().prepare(request)
        self._transport = request.transport
        return writer

    async def close(self, *, code: int = WSCloseCode.OK, message: bytes = b"", drain: bool = True) -> bool:
        try:
            async with asyncio.timeout(WS_CLOSE_TIMEOUT_S):
                return await super().close(code=code, message=message, drain=drain)
        except TimeoutError:
            self._abort()
            return True

    async def pong(self, message: bytes = b"") -> None:
        """aiohttp answers every client PING from inside receive() and waits for the answer to
        drain: a peer that floods PINGs and stops reading would hold the handler there."""
        try:
            async with asyncio.timeout(WS_CLOSE_TIMEOUT_S):
                await super().pong(message)
        except TimeoutError:
            self._abort()  # receive() then sees the connection gone

    def _close_transport(self) -> None:
        # aiohttp's (private) hook when it gives up on a peer (a missed heartbeat, a protocol
        # error): a plain close() would wait forever to flush to a peer that stopped reading.
        if self._transport is not None and self._transport.get_write_buffer_size() > 0:
            self._abort()
        else:
            super()._close_transport()

    def _abort(self) -> None:
        if self._transport is not None:
            abort(self._transport)


def new_websocket(settings: Settings, max_msg_size: int, protocols: Sequence[str] = ()) -> web.WebSocketResponse:
    """A websocket response with powersim's limits: a frame cap, no compression (it multiplies
    per-connection memory, ~256 KiB of zlib state, for ~100-byte messages), a heartbeat that
    drops silent peers, a small write buffer, and a bounded close."""
    return BoundedWebSocket(
        protocols=protocols,
        heartbeat=settings.ws_heartbeat,
        max_msg_size=max_msg_size,
        compress=False,
        writer_limit=WS_WRITE_BUFFER_BYTES,
    )


async def prepare(request: web.Request, ws: web.WebSocketResponse) -> None:
    """Complete the handshake, bound the socket's buffers, and register it for shutdown."""
    await ws.prepare(request)
    transport = request.transport
    if transport is None:  # the peer left during the handshake
        return
    transport.set_write_buffer_limits(high=WS_WRITE_BUFFER_BYTES)
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, WS_SOCKET_SNDBUF_BYTES)
    request.app[WEBSOCKETS][ws] = transport


def release(request: web.Request, ws: web.WebSocketResponse) -> None:
    """When a websocket's handler ends: unregister it, and abort a transport that still holds
    unsent bytes. aiohttp only close()s it (after a missed heartbeat, a timed-out close), and a
    closing transport waits to flush first: forever, for a peer that stopped reading."""
    transport = request.app[WEBSOCKETS].pop(ws, None)
    if transport is not None and transport.get_write_buffer_size() > 0:
        abort(transport)


async def simulator_subscribe(request: web.Request) -> web.WebSocketResponse:
    ws = new_websocket(request.app[SETTINGS], WS_MAX_FRAME_BYTES)
    if not ws.can_prepare(request).ok:
        raise web.HTTPUpgradeRequired(text="this endpoint is a websocket; connect with a websocket client")
    try:
        await prepare(request, ws)
        with request.app[HUB].subscribe() as subscriber:
            sender = asyncio.create_task(_send(ws, subscriber))
            try:
                async for message in ws:
                    # Text from clients is ignored; this endpoint only talks.
                    if message.type == WSMsgType.BINARY:
                        await ws.close(code=WSCloseCode.UNSUPPORTED_DATA, message=b"binary frames are not accepted")
            except ConnectionError:
                pass  # the peer is gone (or was dropped): nothing to answer, nothing to log
            finally:
                sender.cancel()
                with suppress(asyncio.CancelledError):
                    await sender
    finally:
        release(request, ws)
    return ws


async def _send(ws: web.WebSocketResponse, subscriber: Subscriber) -> None:
    while True:
        update = await subscriber.next()
        try:
            await ws.send_frame(update.data, WSMsgType.TEXT)
        except ConnectionError:
            return  # the receive loop sees the close and cleans up


async def close_websockets(app: web.Application) -> None:
    """On shutdown: tell every client we are going away (1001) instead of dropping them. Each
    close may take WS_CLOSE_TIMEOUT_S, and all of them no longer than the drain deadline; a
    client that has not completed the close by then (it stopped reading) is aborted."""
    sockets = list(app[WEBSOCKETS].items())
    if not sockets:
        return
    loop = asyncio.get_running_loop()
    deadline = app[SHUTDOWN].deadline
    timeout = WS_CLOSE_TIMEOUT_S if deadline is None else max(0.0, min(WS_CLOSE_TIMEOUT_S, deadline - loop.time()))
    closes = [
        asyncio.ensure_future(ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down"))
        for ws, _ in sockets
    ]
    _, late = await asyncio.wait(closes, timeout=timeout)
    for close in late:
        close.cancel()  # aiohttp's close() then closes the transport, which still waits to flush
    await asyncio.gather(*closes, return_exceptions=True)
    stuck = sum(transport.get_write_buffer_size() > 0 for _, transport in sockets)
    for _, transport in sockets:
        if not transport.is_closing() or transport.get_write_buffer_size() > 0:
            abort(transport)
    if late:
        log.info(
            "%d of %d websockets did not close within %.1f s; %d aborted unflushed",
            len(late),
            len(sockets),
            timeout,
            stuck,
        )


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/simulator-subscribe", simulator_subscribe)
