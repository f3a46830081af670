"""Mounts strawberry's aiohttp view, with a typed context built from the app's resources."""

from __future__ import annotations

from aiohttp import web
from strawberry.aiohttp.views import GraphQLView

from ..keys import HUB, POWERSIM
from .schema import Context, schema


class PowerSimGraphQLView(GraphQLView[Context, None]):
    async def get_context(self, request: web.Request, response: web.Response | web.WebSocketResponse) -> Context:
        return Context(powersim=request.app[POWERSIM], hub=request.app[HUB])


def setup_graphql(app: web.Application) -> None:
    view = PowerSimGraphQLView(schema=schema, graphql_ide="graphiql")
    app.router.add_route("*", "/graphql", view)
