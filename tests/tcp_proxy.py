"""A TCP proxy for the tests that can go silent: a stand-in for a NAT or load balancer that
drops a flow without a reset. A frozen connection stays open and forwards nothing more in
either direction (no data, no FIN, no RST); connections made later are forwarded as usual,
unless subscriptions are silenced, which freezes any connection that sends SUBSCRIBE."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass


@dataclass
class _Flow:
    frozen: bool = False
    subscriber: bool = False


class SilentProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self.silence_subscriptions = False
        self.blackhole_new = False  # accept new connections, and never answer them
        self._server: asyncio.Server | None = None
        self._flows: list[_Flow] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.blackhole_new:
            self._writers.append(writer)  # kept open, never read, never written
            return
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        flow = _Flow()
        self._flows.append(flow)
        self._writers += [writer, up_writer]
        for src, dst, upstream in ((reader, up_writer, True), (up_reader, writer, False)):
            task = asyncio.create_task(self._pump(flow, src, dst, upstream))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, flow: _Flow, src: asyncio.StreamReader, dst: asyncio.StreamWriter, upstream: bool) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await src.read(65536):
                if upstream and b"SUBSCRIBE" in data:
                    flow.subscriber = True
                if flow.frozen or (self.silence_subscriptions and flow.subscriber):
                    flow.frozen = True
                    await asyncio.Event().wait()  # hold the flow open, forever silent
                dst.write(data)
                await dst.drain()
        dst.close()

    def close_flows(self) -> None:
        """Close every open connection (a FIN to both ends), as a restarting Redis would."""
        for writer in self._writers:
            writer.close()

    def freeze(self) -> int:
        """Silence every connection open now; returns how many there are."""
        for flow in self._flows:
            flow.frozen = True
        return len(self._flows)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for writer in self._writers:
            writer.close()
        if self._server is not None:
            await self._server.wait_closed()
