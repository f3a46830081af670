"""GraphQL output and input types: a run, its inputs and its details, built from plain data.

The input type is generated from ScenarioInput (pydantic), so GraphQL validates with the same
definition as REST; the detail types mirror grid.SECTIONS, which a test holds them to.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from datetime import datetime
from enum import Enum
from typing import Any, NewType

import strawberry
from pydantic import ValidationError
from strawberry.types.unset import UNSET
from strawberry.utils.str_converters import to_camel_case

from ..models import SimulationResult
from ..networks import NetworkEntry
from ..scenario import INPUT_NAMES, NETWORK_INPUT_NAMES, ScenarioInput, field_errors
from ..scenario import InvalidInput as ScenarioInvalidInput


def _described(name: str) -> Any:
    """A field of the input type: optional, unset when omitted, described as ScenarioInput says."""
    return strawberry.field(default=strawberry.UNSET, description=ScenarioInput.model_fields[name].description)


# cleandoc: Python 3.13 strips a docstring's indentation itself, 3.11 does not.
@strawberry.input(name="ScenarioInput", description=inspect.cleandoc(ScenarioInput.__doc__ or ""))
class ScenarioInputType:
    """Written out, not generated from ScenarioInput: an omitted field must stay omitted (which
    inputs apply depends on what the request gave), where a generated type fills in defaults.
    The values are validated by ScenarioInput itself; a test holds the two to the same fields."""

    network: str | None = _described("network")
    load_p_mw: float | None = _described("load_p_mw")
    load_q_mvar: float | None = _described("load_q_mvar")
    ext_grid_vm_pu: float | None = _described("ext_grid_vm_pu")
    line_length_km: float | None = _described("line_length_km")
    load_scaling: float | None = _described("load_scaling")
    sgen_scaling: float | None = _described("sgen_scaling")


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
    values = {name: getattr(given, name) for name in ScenarioInput.model_fields}
    try:
        return ScenarioInput.model_validate({name: value for name, value in values.items() if value is not UNSET})
    except ValidationError as exc:
        raise InvalidArgument(camel_fields(field_errors(exc))) from None


# The Inputs type's fields: every input of every network, each once.
INPUT_FIELDS = tuple(dict.fromkeys((*INPUT_NAMES, *NETWORK_INPUT_NAMES)))

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
    timed_out = "timed_out"
    failed = "failed"


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
    load_scaling: float | None
    sgen_scaling: float | None


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
    network: str | None = strawberry.field(description="The network's id; null for outside values without one.")
    network_sha256: str | None = strawberry.field(description="An uploaded network's sha256 at the time of the run.")
    inputs: Inputs | None = strawberry.field(description="The run's full input set; null when it has none.")
    message: str | None = strawberry.field(
        description="Why the run has no result: the solver's words, the time limit, or why it failed."
    )
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
            inputs=Inputs(**{name: inputs.get(name) for name in INPUT_FIELDS}) if inputs is not None else None,
            network=result.network,
            network_sha256=result.network_sha256,
            message=result.message,
            details_json=result.details_json,
        )


def _details(text: str) -> Details:
    return Details.of(json.loads(text))


def optional(result: SimulationResult | None) -> SimulationResultType | None:
    return SimulationResultType.of(result) if result is not None else None


@strawberry.type(description="How many elements of each kind a network has (in service or not).")
class NetworkCounts:
    buses: int
    lines: int
    transformers: int = strawberry.field(description="Two- and three-winding transformers.")
    loads: int
    generators: int = strawberry.field(description="Voltage-controlled (gen) and static (sgen) generators.")
    external_grids: int


@strawberry.type(name="Network", description="A network runs can use: the seed, a catalog case or an upload.")
class NetworkType:
    id: str
    name: str
    source: str = strawberry.field(description="builtin, catalog or upload.")
    counts: NetworkCounts
    inputs: list[str] = strawberry.field(description="The run inputs that apply to this network.")
    sha256: str | None = strawberry.field(description="Uploads only.")
    size_bytes: int | None = strawberry.field(description="Uploads only: the stored document's size.")
    created_at: datetime | None = strawberry.field(description="Uploads only.")

    @classmethod
    def of(cls, entry: NetworkEntry) -> NetworkType:
        return cls(
            id=entry.id,
            name=entry.name,
            source=entry.source,
            counts=NetworkCounts(**entry.counts),
            inputs=list(entry.inputs),
            sha256=entry.sha256,
            size_bytes=entry.size_bytes,
            created_at=entry.created_at,
        )
