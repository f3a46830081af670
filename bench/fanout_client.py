"""A process holding N websocket subscribers. For each push it prints the time (time.time())
at which its last subscriber received it: `python -m bench.fanout_client URL N ROUNDS`."""

import asyncio
import json
import sys
import time

import aiohttp


async def main(url: str, count: int, rounds: int) -> None:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        sockets = [await session.ws_connect(url, autoping=True) for _ in range(count)]
        for ws in sockets:
            await ws.receive()  # the snapshot
        print("ready", flush=True)

        async def last_arrival() -> float:
            times = await asyncio.gather(*(_receive_time(ws) for ws in sockets))
            return max(times)

        for round_no in range(rounds):
            print(json.dumps({"round": round_no, "last": await last_arrival()}), flush=True)
        for ws in sockets:
            await ws.close()


async def _receive_time(ws: aiohttp.ClientWebSocketResponse) -> float:
    await ws.receive()
    return time.time()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
