"""The GraphQL schema; resolvers only translate arguments and call the service."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncGenerator, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import partial

import strawberry
from graphql import DocumentNode, GraphQLError, parse
from graphql.validation import MaxIntrospectionDepthRule
from strawberry.extensions import AddValidationRules, MaskErrors, MaxAliasesLimiter, QueryDepthLimiter, SchemaExtension
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.types import ExecutionContext
from strawberry.types.graphql import OperationType

from ..constants import DEFAULT_PAGE, GQL_MAX_QUERY_BYTES
from ..errors import NotFound, Overloaded, PowerSimError, Unauthorized
from ..hub import Hub
from ..keys import Gauge
from ..logs import loggable
from ..models import format_time, parse_time
from ..scenario import InvalidInput
from ..service import PowerSim, parse_int, parse_network_id, parse_status
from .details_limit import MaxDetailsRule
from .types import (
    INDEX_SCALAR,
    Index,
    InvalidArgument,
    NetworkType,
    RunStatus,
    ScenarioInputType,
    SimulationResultType,
    camel_fields,
    optional,
    scenario,
)

log = logging.getLogger(__name__)

# A hostile query must not exhaust the server; real ones here are two or three levels deep.
# QueryDepthLimiter skips introspection fields, whose types are cyclic (type { fields { type
# { fields ... } } }) and blow up exponentially; graphql-core's MaxIntrospectionDepthRule
# bounds that, while still admitting the introspection query GraphiQL sends.
MAX_DEPTH = 5
MAX_TOKENS = 1000
MAX_ALIASES = 15


@dataclass
class SubscriptionSlots:
    """One connection's subscriptions, counted against POWERSIM_MAX_SUBSCRIBERS: the first rides
    on the slot its websocket already holds (guards.websocket_guard), each further one takes a
    slot of its own, so N subscriptions cost N slots however they are spread over connections."""

    gauge: Gauge
    limit: int  # POWERSIM_MAX_SUBSCRIBERS
    covered: int  # subscriptions paid for by the connection's own slot: 1 on a websocket
    active: int = 0

    @contextmanager
    def take(self) -> Iterator[None]:
        if self.active >= self.covered:
            if self.gauge.count >= self.limit:
                raise Overloaded(f"too many subscriptions (POWERSIM_MAX_SUBSCRIBERS={self.limit})", 5)
            self.gauge.count += 1
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1
            if self.active >= self.covered:
                self.gauge.count -= 1


@dataclass(frozen=True)
class Context:
    powersim: PowerSim
    hub: Hub
    may_write: bool  # POWERSIM_API_TOKEN given (or not required)
    slots: SubscriptionSlots  # per connection on a websocket (get_context runs once per connection)


Info = strawberry.Info[Context, None]


@strawberry.type
class Query:
    @strawberry.field(description="The latest result, as GET /active-power and the websocket see it.")
    async def latest(self, info: Info) -> SimulationResultType | None:
        return optional(await info.context.powersim.latest())

    @strawberry.field(description="Active power of the latest result, MW.")
    async def active_power(self, info: Info) -> float | None:
        result = await info.context.powersim.latest()
        return result.active_power if result else None

    @strawberry.field(description="Reactive power of the latest result, MVAr.")
    async def reactive_power(self, info: Info) -> float | None:
        result = await info.context.powersim.latest()
        return result.reactive_power if result else None

    @strawberry.field(
        description="Stored runs, newest first, of one status and network or all; pass the last id as `before` "
        "for the next page."
    )
    async def simulations(
        self,
        info: Info,
        limit: int | None = DEFAULT_PAGE,
        before: strawberry.ID | None = None,
        status: RunStatus | None = None,
        network: str | None = None,
    ) -> list[SimulationResultType]:
        after = parse_int(before, "before") if before is not None else None
        wanted = parse_status(status.value) if status is not None else None
        on = parse_network_id(network) if network is not None else None
        page = await info.context.powersim.history(DEFAULT_PAGE if limit is None else limit, after, wanted, on)
        return [SimulationResultType.of(r) for r in page.simulations]

    @strawberry.field(
        description="Every network a run can use: the seed, the catalog, the uploads (upload with POST /networks)."
    )
    async def networks(self, info: Info) -> list[NetworkType]:
        return [NetworkType.of(entry) for entry in await info.context.powersim.networks()]

    @strawberry.field(description="One network by id, or null.")
    async def network(self, info: Info, id: str) -> NetworkType | None:
        try:
            return NetworkType.of(await info.context.powersim.network(id))
        except NotFound:
            return None

    @strawberry.field(description="One stored run with its details, or null.")
    async def simulation(self, info: Info, id: strawberry.ID) -> SimulationResultType | None:
        return optional(await info.context.powersim.get(parse_int(id, "id"), with_details=True))


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="Run one simulation: the same path as POST /run-simulation. A run that does not converge "
        "(status not_converged), is stopped at the time limit (timed_out) or loses its worker (failed) is a result "
        "with that status, not an error."
    )
    async def run_simulation(self, info: Info, input: ScenarioInputType | None = None) -> SimulationResultType:
        if not info.context.may_write:
            raise Unauthorized("this needs the API token: Authorization: Bearer <POWERSIM_API_TOKEN>")
        inputs = scenario(input)  # InvalidArgument, in the schema's names
        try:
            run = await info.context.powersim.run_simulation(inputs)
        except InvalidInput as exc:  # refused by the service: names as the schema spells them
            raise InvalidArgument(camel_fields(exc.fields)) from None
        return SimulationResultType.of(run)


@strawberry.type
class Subscription:
    @strawberry.subscription(description="The current result (if any), then every new one, from any writer.")
    async def simulation_results(self, info: Info) -> AsyncGenerator[SimulationResultType | None, None]:
        with info.context.slots.take(), info.context.hub.subscribe() as subscriber:
            while True:
                update = await subscriber.next()
                if update.result is not None:
                    yield SimulationResultType.of(update.result)


# Client mistakes that strawberry reports with an exception attached: an operation the transport
# does not carry (a query over the legacy graphql-ws `start`, a mutation over GET).
CLIENT_ERRORS = (PowerSimError, InvalidOperationTypeError)


def _is_refused_variable(error: GraphQLError) -> bool:
    """graphql-core's own error as the original: without a path, a variable the types refuse (the
    client's mistake); with one, a value of ours a type cannot represent (a bug)."""
    return isinstance(error.original_error, GraphQLError) and error.path is None


def _is_client_error(error: GraphQLError) -> bool:
    original = error.original_error
    if isinstance(original, PowerSimError):
        return original.status < 500
    return original is None or isinstance(original, CLIENT_ERRORS) or _is_refused_variable(error)


def _should_mask(error: GraphQLError) -> bool:
    """Hide unexpected exceptions (they are logged); syntax, validation and domain errors, and
    failures we report ourselves (PowerSimError), are for clients."""
    original = error.original_error
    return original is not None and not (isinstance(original, CLIENT_ERRORS) or _is_refused_variable(error))


_NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]*")


def _stand_in(operation_name: str | None, allowed: Iterable[OperationType]) -> DocumentNode:
    """What a refused query is replaced by, so that strawberry reports its error like a syntax
    error; it has the operation the request names, since strawberry looks that up first, and an
    operation type the transport allows (the legacy graphql-ws `start` allows only subscriptions),
    since strawberry checks that before it reports our error."""
    name = operation_name if operation_name and _NAME.fullmatch(operation_name) else ""
    kinds = set(allowed)
    kind = OperationType.QUERY if OperationType.QUERY in kinds or not kinds else next(iter(kinds))
    return parse(f"{kind.value} {name} {{ __typename }}")


def parse_bounded(query: str) -> DocumentNode:
    """Parse within bounds: the size is checked before the parser reads a byte (a megabyte of
    comment holds no token, yet takes seconds), tokens are capped, and nesting too deep for the
    recursive parser ({a{a{a..., [[[...) is a client error, not a RecursionError."""
    size = len(query.encode("utf-8", "surrogatepass"))
    if size > GQL_MAX_QUERY_BYTES:
        raise GraphQLError(f"the query is {size} bytes long; at most {GQL_MAX_QUERY_BYTES} are accepted")
    try:
        return parse(query, max_tokens=MAX_TOKENS)
    except RecursionError:
        raise GraphQLError("the query is nested too deeply") from None


class BoundedParser(SchemaExtension):
    """Does strawberry's parsing itself (as its docs suggest for custom parsing), within bounds."""

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        if context.graphql_document is None and context.query:
            try:
                context.graphql_document = parse_bounded(context.query)
            except GraphQLError as error:
                # Raising here would escape strawberry's error handling on websockets.
                context.graphql_document = _stand_in(context.operation_name, context.allowed_operations)
                context.pre_execution_errors = [error]
        yield


class PowerSimSchema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        """Log like the REST API does: a client's mistake at DEBUG, a failed run as one line, a
        bug with its traceback; always on one line, since messages may quote the query."""
        for error in errors:
            original = error.original_error
            if _is_client_error(error):
                log.debug("GraphQL request refused: %s", loggable(error.message))
            elif isinstance(original, PowerSimError):
                log.error("GraphQL operation failed: %s", loggable(error.message, 2000))
            else:
                log.error("GraphQL resolver raised: %s", loggable(error.message), exc_info=original)


# launchedAt is the same text as the REST API's launched_at (UTC, microseconds, "Z").
DateTimeUTC = strawberry.scalar(
    name="DateTime",
    description="UTC date and time, ISO 8601 with microseconds, e.g. 2026-11-24T10:00:00.123456Z",
    serialize=format_time,
    parse_value=parse_time,
)


schema = PowerSimSchema(
    query=Query,
    mutation=Mutation,
    subscription=Subscription,
    config=StrawberryConfig(scalar_map={datetime: DateTimeUTC, Index: INDEX_SCALAR}),
    extensions=[
        partial(QueryDepthLimiter, max_depth=MAX_DEPTH),
        partial(AddValidationRules, [MaxIntrospectionDepthRule, MaxDetailsRule]),
        BoundedParser,
        partial(MaxAliasesLimiter, max_alias_count=MAX_ALIASES),
        partial(MaskErrors, should_mask_error=_should_mask),
    ],
)
