"""Mounts strawberry's aiohttp view, with a typed context and /simulator-subscribe's websocket limits."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from cross_web import HTTPException
from strawberry.aiohttp.views import GraphQLView

from ..constants import GQL_MAX_OPERATIONS_PER_CONNECTION, GQL_WS_MAX_FRAME_BYTES
from ..guards import may_write
from ..jsonin import JSONTooDeep
from ..jsonin import loads as load_json
from ..keys import GQL_SOCKET, HUB, POWERSIM, SETTINGS, WS_GAUGE
from ..ws import new_websocket, prepare, release
from .schema import Context, SubscriptionSlots, schema


class PowerSimGraphQLView(GraphQLView[Context, None]):
    async def __call__(self, request: web.Request) -> web.StreamResponse:
        try:
            return await super().__call__(request)
        finally:
            ws = request.get(GQL_SOCKET)
            if ws is not None:
                release(request, ws)

    async def create_websocket_response(self, request: web.Request, subprotocol: str | None) -> web.WebSocketResponse:
        # strawberry's own has aiohttp's defaults: permessage-deflate, 4 MiB frames, no heartbeat.
        ws = new_websocket(request.app[SETTINGS], GQL_WS_MAX_FRAME_BYTES, [subprotocol] if subprotocol else [])
        request[GQL_SOCKET] = ws
        await prepare(request, ws)  # registered: closed with 1001 at shutdown like /simulator-subscribe
        return ws

    def decode_json(self, data: str | bytes) -> object:
        return load_json(data)  # deep nesting is a JSONDecodeError: 400 over HTTP, 4400 on a websocket

    def parse_json(self, data: str | bytes) -> Any:
        try:
            return load_json(data)
        except JSONTooDeep as exc:
            raise HTTPException(400, f"the JSON is {exc.msg}") from None
        except ValueError:  # JSONDecodeError, or bytes that are not UTF-8
            raise HTTPException(400, "Unable to parse request body as JSON") from None

    async def get_context(self, request: web.Request, response: web.Response | web.WebSocketResponse) -> Context:
        settings = request.app[SETTINGS]
        on_websocket = isinstance(response, web.WebSocketResponse)
        return Context(
            powersim=request.app[POWERSIM],
            hub=request.app[HUB],
            may_write=may_write(request, settings),
            slots=SubscriptionSlots(request.app[WS_GAUGE], settings.max_subscribers, covered=1 if on_websocket else 0),
        )


def setup_graphql(app: web.Application) -> None:
    # Host and Origin are checked for every request by guards.check_site (in request_guard), so
    # REST and GraphQL follow one policy (POWERSIM_ALLOWED_ORIGINS); strawberry's own would differ.
    view = PowerSimGraphQLView(
        schema=schema,
        graphql_ide="graphiql",
        allowed_origins=("*",),
        max_subscriptions_per_connection=GQL_MAX_OPERATIONS_PER_CONNECTION,
    )
    app.router.add_route("*", "/graphql", view)
