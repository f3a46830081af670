"""GraphQL output and input types: a run, its inputs and its details, built from plain data.

The input type is generated from ScenarioInput (pydantic), so GraphQL validates with the same
definition as REST; the detail types mirror grid.SECTIONS, which a test holds them to.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from enum import Enum
from typing import Any, NewType

import strawberry
import strawberry.experimental.pydantic
from pydantic import ValidationError
from strawberry.utils.str_converters import to_camel_case

from ..models import SimulationResult
from ..scenario import INPUT_NAMES, ScenarioInput, field_errors
from ..scenario import InvalidInput as ScenarioInvalidInput


@strawberry.experimental.pydantic.input(
    model=ScenarioInput, all_fields=True, name="ScenarioInput", description=ScenarioInput.__doc__
)
class ScenarioInputType:
    pass


class InvalidArgument(ScenarioInvalidInput):
    """InvalidInput in GraphQL's words: field names as the schema spells them, and every
    problem in the message (the `fields` extension has them too)."""

    def __str__(self) -> str:
        return "invalid input: " + "; ".join(f"{name} {problem}" for name, problem in self.fields.items())


def camel_fields(fields: dict[str, str]) -> dict[str, str]:
    return {to_camel_case(name): problem for name, problem in fields.items()}


def scenario(given: ScenarioInputType | None) -> ScenarioInput | None:
    """Validate the argument with ScenarioInput; InvalidArgument naming every bad field."""
    if given is None:
        return None
    try:
        return given.to_pydantic()
    except ValidationError as exc:
        raise InvalidArgument(camel_fields(field_errors(exc))) from None


# pandapower's element indices are 64-bit; GraphQL's Int is 32-bit. (Mapped to its scalar in
# the schema's config, as DateTime is.)
Index = NewType("Index", int)
INDEX_SCALAR = strawberry.scalar(
    name="Index",
    description="An element's index in its pandapower table: an integer, up to 64 bits.",
    serialize=int,
    parse_value=int,
)


@strawberry.enum(description="How a run ended.")
class RunStatus(Enum):
    converged = "converged"
    not_converged = "not_converged"


@strawberry.enum
class ElementKind(Enum):
    bus = "bus"
    line = "line"
    transformer = "transformer"


@strawberry.enum
class ViolationKind(Enum):
    undervoltage = "undervoltage"
    overvoltage = "overvoltage"
    overload = "overload"


@strawberry.type(description="A run's inputs; null where a value (from an outside writer) lacks one.")
class Inputs:
    load_p_mw: float | None
    load_q_mvar: float | None
    ext_grid_vm_pu: float | None
    line_length_km: float | None


@strawberry.type(description="One bus: rated voltage (kV) and its power-flow result.")
class Bus:
    index: Index
    name: str | None
    vn_kv: float | None
    vm_pu: float | None
    va_degree: float | None
    p_mw: float | None
    q_mvar: float | None


@strawberry.type(description="One line's power-flow result.")
class Line:
    index: Index
    name: str | None
    loading_percent: float | None
    p_from_mw: float | None
    q_from_mvar: float | None
    pl_mw: float | None
    ql_mvar: float | None
    i_ka: float | None


@strawberry.type(description="One two-winding transformer's power-flow result.")
class Transformer:
    index: Index
    name: str | None
    loading_percent: float | None
    pl_mw: float | None
    ql_mvar: float | None


@strawberry.type(description="One external grid's power-flow result.")
class ExternalGrid:
    index: Index
    name: str | None
    p_mw: float | None
    q_mvar: float | None


@strawberry.type(description="Active and reactive losses over all lines and transformers.")
class Losses:
    p_mw: float
    q_mvar: float


@strawberry.type(description="One limit broken: a bus voltage outside its band, or a branch over its loading.")
class Violation:
    element: ElementKind
    index: Index
    name: str | None
    kind: ViolationKind
    value: float
    limit: float


@strawberry.type(description="Everything a run computed, from pandapower's result tables of that run.")
class Details:
    buses: list[Bus]
    lines: list[Line]
    transformers: list[Transformer]
    external_grids: list[ExternalGrid]
    losses: Losses
    violations: list[Violation]

    @classmethod
    def of(cls, data: dict[str, Any]) -> Details:
        return cls(
            buses=[Bus(**row) for row in data["buses"]],
            lines=[Line(**row) for row in data["lines"]],
            transformers=[Transformer(**row) for row in data["transformers"]],
            external_grids=[ExternalGrid(**row) for row in data["external_grids"]],
            losses=Losses(**data["losses"]),
            violations=[
                Violation(**(v | {"element": ElementKind(v["element"]), "kind": ViolationKind(v["kind"])}))
                for v in data["violations"]
            ],
        )


# Which Python field of each detail type holds which key of grid.Details (a test compares them).
DETAIL_TYPES: dict[str, type] = {
    "buses": Bus,
    "lines": Line,
    "transformers": Transformer,
    "external_grids": ExternalGrid,
}


@strawberry.type(name="SimulationResult", description="One power-flow run, or a value an outside writer set.")
class SimulationResultType:
    id: strawberry.ID | None = strawberry.field(description="Null for values written by outside scripts.")
    status: RunStatus | None = strawberry.field(description="Null for values outside writers set without one.")
    active_power: float | None = strawberry.field(
        description="Total active power of the loads, MW; null when not converged."
    )
    reactive_power: float | None = strawberry.field(
        description="Total reactive power of the loads, MVAr; null when not converged."
    )
    launched_at: datetime | None = strawberry.field(description="UTC start of the run; null for outside values.")
    inputs: Inputs | None = strawberry.field(description="The run's full input set; null when it has none.")
    message: str | None = strawberry.field(description="Why the power flow did not converge, in the solver's words.")
    details_json: strawberry.Private[str | None]

    @strawberry.field(
        description="Buses, lines, transformers, losses and violations. Loaded by `simulation(id)` and "
        "`runSimulation` only: null in lists, `latest` and subscriptions."
    )
    async def details(self) -> Details | None:
        # Off the event loop: a large network's details are megabytes of JSON.
        return await asyncio.to_thread(_details, self.details_json) if self.details_json else None

    @classmethod
    def of(cls, result: SimulationResult) -> SimulationResultType:
        inputs = result.inputs
        return cls(
            id=strawberry.ID(str(result.id)) if result.id is not None else None,
            status=RunStatus(result.status) if result.status is not None else None,
            active_power=result.active_power,
            reactive_power=result.reactive_power,
            launched_at=result.launched_at,
            inputs=Inputs(**{name: inputs.get(name) for name in INPUT_NAMES}) if inputs is not None else None,
            message=result.message,
            details_json=result.details_json,
        )


def _details(text: str) -> Details:
    return Details.of(json.loads(text))


def optional(result: SimulationResult | None) -> SimulationResultType | None:
    return SimulationResultType.of(result) if result is not None else None
