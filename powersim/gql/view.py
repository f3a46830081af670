"""Mounts strawberry's aiohttp view, with a typed context built from the app's resources."""

from __future__ import annotations

from aiohttp import web
from strawberry.aiohttp.views import GraphQLView

from ..guards import may_write
from ..keys import HUB, POWERSIM, SETTINGS, WEBSOCKETS
from .schema import Context, schema


class PowerSimGraphQLView(GraphQLView[Context, None]):
    async def get_context(self, request: web.Request, response: web.Response | web.WebSocketResponse) -> Context:
        if isinstance(response, web.WebSocketResponse):
            # Closed with 1001 at shutdown like /simulator-subscribe; otherwise an open
            # subscription holds SIGTERM for the whole drain timeout.
            request.app[WEBSOCKETS].add(response)
        return Context(
            powersim=request.app[POWERSIM],
            hub=request.app[HUB],
            may_write=may_write(request, request.app[SETTINGS]),
        )


def setup_graphql(app: web.Application) -> None:
    # Origins are checked for every websocket by guards.websocket_guard, so REST and GraphQL
    # follow one policy (POWERSIM_ALLOWED_ORIGINS); strawberry's own check would differ.
    view = PowerSimGraphQLView(schema=schema, graphql_ide="graphiql", allowed_origins=("*",))
    app.router.add_route("*", "/graphql", view)
