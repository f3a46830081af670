"""The GraphQL schema; resolvers only translate arguments and call the service."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import datetime
from functools import partial

import strawberry
from graphql import GraphQLError
from graphql.validation import MaxIntrospectionDepthRule
from strawberry.extensions import AddValidationRules, MaskErrors, MaxAliasesLimiter, MaxTokensLimiter, QueryDepthLimiter
from strawberry.schema.config import StrawberryConfig

from ..constants import DEFAULT_PAGE
from ..errors import PowerSimError, Unauthorized
from ..hub import Hub
from ..models import SimulationResult, format_time, parse_time
from ..service import PowerSim, parse_int

# A hostile query must not exhaust the server; real ones here are two or three levels deep.
# QueryDepthLimiter skips introspection fields, whose types are cyclic (type { fields { type
# { fields ... } } }) and blow up exponentially; graphql-core's MaxIntrospectionDepthRule
# bounds that, while still admitting the introspection query GraphiQL sends.
MAX_DEPTH = 5
MAX_TOKENS = 1000
MAX_ALIASES = 15


@dataclass(frozen=True)
class Context:
    powersim: PowerSim
    hub: Hub
    may_write: bool  # POWERSIM_API_TOKEN given (or not required)


Info = strawberry.Info[Context, None]


@strawberry.type(name="SimulationResult", description="One power-flow result; MW and MVAr.")
class SimulationResultType:
    id: strawberry.ID | None = strawberry.field(description="Null for values written by outside scripts.")
    active_power: float = strawberry.field(description="Active power of the load, MW.")
    reactive_power: float = strawberry.field(description="Reactive power of the load, MVAr.")
    launched_at: datetime | None = strawberry.field(description="UTC start of the run; null for outside values.")

    @classmethod
    def of(cls, result: SimulationResult) -> SimulationResultType:
        return cls(
            id=strawberry.ID(str(result.id)) if result.id is not None else None,
            active_power=result.active_power,
            reactive_power=result.reactive_power,
            launched_at=result.launched_at,
        )


def _optional(result: SimulationResult | None) -> SimulationResultType | None:
    return SimulationResultType.of(result) if result is not None else None


@strawberry.type
class Query:
    @strawberry.field(description="The latest result, as GET /active-power and the websocket see it.")
    async def latest(self, info: Info) -> SimulationResultType | None:
        return _optional(await info.context.powersim.latest())

    @strawberry.field(description="Active power of the latest result, MW.")
    async def active_power(self, info: Info) -> float | None:
        result = await info.context.powersim.latest()
        return result.active_power if result else None

    @strawberry.field(description="Reactive power of the latest result, MVAr.")
    async def reactive_power(self, info: Info) -> float | None:
        result = await info.context.powersim.latest()
        return result.reactive_power if result else None

    @strawberry.field(description="Stored runs, newest first; pass the last id as `before` for the next page.")
    async def simulations(
        self, info: Info, limit: int | None = DEFAULT_PAGE, before: strawberry.ID | None = None
    ) -> list[SimulationResultType]:
        after = parse_int(before, "before") if before is not None else None
        page = await info.context.powersim.history(DEFAULT_PAGE if limit is None else limit, after)
        return [SimulationResultType.of(r) for r in page.simulations]

    @strawberry.field(description="One stored run, or null.")
    async def simulation(self, info: Info, id: strawberry.ID) -> SimulationResultType | None:
        return _optional(await info.context.powersim.get(parse_int(id, "id")))


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Run one simulation: the same path as POST /run-simulation.")
    async def run_simulation(self, info: Info) -> SimulationResultType:
        if not info.context.may_write:
            raise Unauthorized("this needs the API token: Authorization: Bearer <POWERSIM_API_TOKEN>")
        return SimulationResultType.of(await info.context.powersim.run_simulation())


@strawberry.type
class Subscription:
    @strawberry.subscription(description="The current result (if any), then every new one, from any writer.")
    async def simulation_results(self, info: Info) -> AsyncGenerator[SimulationResultType | None, None]:
        with info.context.hub.subscribe() as subscriber:
            while True:
                update = await subscriber.next()
                if update.result is not None:
                    yield SimulationResultType.of(update.result)


def _should_mask(error: GraphQLError) -> bool:
    """Hide unexpected exceptions (they are logged); syntax, validation and domain errors are for clients."""
    original = error.original_error
    return original is not None and not isinstance(original, PowerSimError)


# launchedAt is the same text as the REST API's launched_at (UTC, microseconds, "Z").
DateTimeUTC = strawberry.scalar(
    name="DateTime",
    description="UTC date and time, ISO 8601 with microseconds, e.g. 2026-11-24T10:00:00.123456Z",
    serialize=format_time,
    parse_value=parse_time,
)


schema = strawberry.Schema(
    query=Query,
    mutation=Mutation,
    subscription=Subscription,
    config=StrawberryConfig(scalar_map={datetime: DateTimeUTC}),
    extensions=[
        partial(QueryDepthLimiter, max_depth=MAX_DEPTH),
        partial(AddValidationRules, [MaxIntrospectionDepthRule]),
        partial(MaxTokensLimiter, max_token_count=MAX_TOKENS),
        partial(MaxAliasesLimiter, max_alias_count=MAX_ALIASES),
        partial(MaskErrors, should_mask_error=_should_mask),
    ],
)
