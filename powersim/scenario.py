"""The inputs of one run: the single definition behind request validation, GraphQL and OpenAPI.

A run is a what-if study on a network: the seed network (test_sim.py, the default) or one from
the catalog or the uploads (`network`). Every field is optional: on the seed network omitted
inputs take the seed values, so `{}` (or no body) is today's run; on any other network omitted
inputs leave the network as built. Which inputs apply to which network is the service's check
(it needs `model_fields_set`, what the request actually gave). Validation is pydantic's, in strict
mode: finite JSON numbers only (integers are accepted, booleans, strings and null are not; NaN,
Infinity and 1e999 fail as `finite_number`), each within a documented physical range, unknown keys
rejected. Duplicate keys are last-wins, as in pydantic's JSON parser.

No pandapower here: this module is imported by the event-loop process.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from .errors import PowerSimError
from .jsonin import JSONTooDeep, check_depth
from .models import NETWORK_ID, SEED_NETWORK

# The error for keys that are not fields: unknown names are echoed, cut to this length and count.
MAX_NAME_CHARS = 64
MAX_FIELD_ERRORS = 32
# The key naming a failure of the body as a whole (not an object); parse_scenario raises
# MalformedInput for those, so it only shows up when a caller validates Python data itself.
BODY = "body"


class StrictInput(BaseModel):
    """Base of every outside input; subclasses (and nested models) inherit the strict config."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, frozen=True)


class ScenarioInput(StrictInput):
    """Inputs of one power flow: the network, and what-if values for it. On the seed network
    omitted fields take the seed values; on others they leave the network as built."""

    network: Annotated[
        str,
        Field(
            pattern=f"^{NETWORK_ID.pattern}$",
            description="The network to run: `seed` (default), a catalog id such as `case118`, or an upload's"
            " id (`upload-<n>`); see GET /networks.",
        ),
    ] = SEED_NETWORK
    load_p_mw: Annotated[
        float, Field(ge=-1000, le=1000, description="Active power of the load on bus 3, in MW (|P| <= 1000).")
    ] = 0.1
    load_q_mvar: Annotated[
        float, Field(ge=-1000, le=1000, description="Reactive power of the load on bus 3, in MVAr (|Q| <= 1000).")
    ] = 0.05
    ext_grid_vm_pu: Annotated[
        float,
        Field(
            ge=0.5,
            le=1.5,
            description="Voltage set point of every external grid, in per unit (0.5 to 1.5); the seed network's"
            " default is 1.02, other networks keep their own when it is omitted.",
        ),
    ] = 1.02
    # At least a metre: far shorter lines make pandapower divide by zero (a 500, not an outcome).
    line_length_km: Annotated[
        float,
        Field(ge=0.001, le=100, description="Length of the line from bus 2 to the load, in km (0.001 to 100)."),
    ] = 0.1
    load_scaling: Annotated[
        float,
        Field(
            ge=0,
            le=10,
            description="Factor on the power of every load (times its own scaling), 0 to 10; not on the seed"
            " network. Default 1: the network as built.",
        ),
    ] = 1.0
    sgen_scaling: Annotated[
        float,
        Field(
            ge=0,
            le=10,
            description="Factor on the power of every static generator (times its own scaling), 0 to 10; not on"
            " the seed network. Default 1: the network as built.",
        ),
    ] = 1.0


SEED = ScenarioInput()
# The seed network's inputs, in declaration order: the keyword arguments a simulation takes.
INPUT_NAMES: tuple[str, ...] = ("load_p_mw", "load_q_mvar", "ext_grid_vm_pu", "line_length_km")
# The inputs of every other network (see grid/loading.py); ext_grid_vm_pu is in both sets.
NETWORK_INPUT_NAMES: tuple[str, ...] = ("load_scaling", "sgen_scaling", "ext_grid_vm_pu")


def seed_inputs(inputs: ScenarioInput) -> dict[str, float]:
    """The full seed input set of a run: what a simulation is called with and the run stores."""
    return {name: getattr(inputs, name) for name in INPUT_NAMES}


class ScenarioError(PowerSimError, ValueError):
    """Base of the two ways a request's inputs can be refused."""


class MalformedInput(ScenarioError):
    """The body is not JSON, or not a JSON object (HTTP 400)."""

    status = 400


class InvalidInput(ScenarioError):
    """Well-formed JSON whose values are refused (HTTP 422); `fields` names every bad field."""

    status = 422

    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__(fields)  # args stay (fields,), so that it pickles
        self.fields = fields

    def __str__(self) -> str:
        return f"invalid input: {', '.join(self.fields)}"

    @property
    def extra(self) -> dict[str, Any]:
        return {"fields": self.fields}


_COMPARISONS = {
    "greater_than": (">", "gt"),
    "greater_than_equal": (">=", "ge"),
    "less_than": ("<", "lt"),
    "less_than_equal": ("<=", "le"),
}


def _bound(ctx: dict[str, Any], key: str) -> str:
    value = ctx.get(key)
    return format(value, "g") if isinstance(value, int | float) else str(value)


def _problem(error: ErrorDetails) -> str:
    """What is wrong with one value, in our words (no library text reaches a client)."""
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "finite_number":
        return "must be a finite number"
    if kind in ("float_type", "float_parsing", "int_type"):
        return "must be a number"
    if kind == "string_type":
        return "must be a string"
    if kind == "string_pattern_mismatch":
        return "must be a network id: up to 64 lower-case letters, digits, '_', '.' or '-'"
    if kind == "model_type":
        return "must be a JSON object"
    if kind in _COMPARISONS:
        symbol, key = _COMPARISONS[kind]
        return f"must be {symbol} {_bound(ctx, key)}"
    return "is not valid"


def _name(loc: tuple[int | str, ...]) -> str:
    name = ".".join(map(str, loc)) if loc else BODY
    return name if len(name) <= MAX_NAME_CHARS else name[:MAX_NAME_CHARS] + "..."


def field_errors(exc: ValidationError) -> dict[str, str]:
    """`{"<field>": "<what is wrong>"}` for every bad field, unknown keys under their own name.

    Declared fields come first (pydantic reports them in declaration order, extras after), so the
    cap of MAX_FIELD_ERRORS entries only ever drops unknown keys: the rest are counted under "...".
    """
    fields: dict[str, str] = {}
    dropped = 0
    for error in exc.errors(include_url=False, include_input=False):
        name, problem = _name(error["loc"]), _problem(error)
        if name in fields:
            if problem not in fields[name]:
                fields[name] = f"{fields[name]}; {problem}"
        elif len(fields) < MAX_FIELD_ERRORS:
            fields[name] = problem
        else:
            dropped += 1
    if dropped:
        fields["..."] = f"{dropped} more unknown fields"
    return fields


def parse_scenario(raw: bytes) -> ScenarioInput:
    """Validate a request body. An empty (or all-whitespace) body is `{}`: the seed run.

    Raises MalformedInput when the bytes are not JSON (including nesting deeper than the parser's
    limit and integers too long to parse) or not a JSON object, InvalidInput for anything else.
    """
    if not raw.strip():
        return SEED
    try:
        check_depth(raw.decode("utf-8", "replace"))  # brackets are ASCII: undecodable bytes don't hide any
    except JSONTooDeep as exc:
        raise MalformedInput(f"the body is {exc.msg}") from None
    try:
        return ScenarioInput.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        if any(error["type"] == "json_invalid" for error in errors):
            raise MalformedInput("the body is not valid JSON") from None
        if any(not error["loc"] for error in errors):
            raise MalformedInput("the body must be a JSON object") from None
        raise InvalidInput(field_errors(exc)) from None


def scenario_json_schema(ref_template: str = "#/components/schemas/{model}") -> dict[str, Any]:
    """The JSON schema of ScenarioInput (a fresh dict on every call), for the OpenAPI document."""
    return ScenarioInput.model_json_schema(ref_template=ref_template)
