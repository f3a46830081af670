"""The baseline: a bare aiohttp handler returning a small JSON body, nothing else."""

import sys

import uvloop
from aiohttp import web


async def hello(request: web.Request) -> web.Response:
    return web.json_response({"id": 1, "active_power": 0.1, "launched_at": "2026-11-24T10:00:00.000000Z"})


if __name__ == "__main__":
    app = web.Application()
    app.router.add_get("/hello", hello)
    # The same event loop powersim runs on, so the ratio measures powersim's own overhead.
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None, loop=uvloop.new_event_loop())
