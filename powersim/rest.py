"""REST handlers: parse the request, call the service, serialize the answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web

from .constants import DEFAULT_PAGE
from .errors import BadRequest, NotFound, UnsupportedMediaType
from .jsonin import JSONTooDeep
from .jsonin import loads as load_json
from .keys import POWERSIM
from .models import SimulationResult, dumps, power_bodies
from .service import parse_int

NO_RESULT = "no simulation has run yet"


def _json(body: dict[str, Any], status: int = 200) -> web.Response:
    return web.json_response(body, status=status, dumps=dumps)


async def _no_parameters(request: web.Request) -> None:
    """The run takes no parameters: accept no body, or an empty JSON object, and nothing else."""
    if not request.body_exists:
        return
    body = await request.read()
    if not body.strip():
        return
    if request.content_type != "application/json":
        raise UnsupportedMediaType(f"send no body, or an empty JSON object; got {request.content_type}")
    try:
        params = load_json(body)
    except JSONTooDeep as exc:
        raise BadRequest(f"the body is {exc.msg}") from None
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the body is not valid JSON") from None
    if not isinstance(params, dict):
        raise BadRequest("the body must be a JSON object")
    if params:
        raise BadRequest(f"unknown parameters: {', '.join(sorted(map(str, params)))[:200]}")


async def run_simulation(request: web.Request) -> web.Response:
    await _no_parameters(request)
    result = await request.app[POWERSIM].run_simulation()
    return _json(result.to_dict())


async def _latest(request: web.Request) -> SimulationResult:
    result = await request.app[POWERSIM].latest()
    if result is None:
        raise NotFound(NO_RESULT)
    return result


async def active_power(request: web.Request) -> web.Response:
    return web.Response(body=power_bodies(await _latest(request))[0], content_type="application/json")


async def reactive_power(request: web.Request) -> web.Response:
    return web.Response(body=power_bodies(await _latest(request))[1], content_type="application/json")


async def simulations(request: web.Request) -> web.Response:
    query = request.query
    limit = parse_int(query["limit"], "limit") if "limit" in query else DEFAULT_PAGE
    before = parse_int(query["before"], "before") if "before" in query else None
    page = await request.app[POWERSIM].history(limit, before)
    return _json({"simulations": [r.to_dict() for r in page.simulations], "next_before": page.next_before})


async def simulation(request: web.Request) -> web.Response:
    run_id = parse_int(request.match_info["id"], "id")
    result = await request.app[POWERSIM].get(run_id)
    if result is None:
        raise NotFound(f"no simulation with id {run_id}")
    return _json(result.to_dict())


async def healthz(request: web.Request) -> web.Response:
    health = await request.app[POWERSIM].health()
    status = "unavailable" if not health.serving else "ok" if health.redis else "degraded"
    body = {
        "status": status,
        "redis": "ok" if health.redis else "down",
        "database": "ok" if health.database else "down",
        "workers": health.workers,
    }
    return _json(body, 200 if health.serving else 503)


OPENAPI_PATH = Path(__file__).with_name("openapi.json")


def setup_routes(app: web.Application) -> None:
    spec = OPENAPI_PATH.read_bytes()  # once, at app creation: a committed, hand-maintained file

    async def openapi(request: web.Request) -> web.Response:
        return web.Response(body=spec, content_type="application/json")

    app.router.add_get("/openapi.json", openapi)
    app.router.add_post("/run-simulation", run_simulation)
    app.router.add_get("/active-power", active_power)
    app.router.add_get("/reactive-power", reactive_power)
    app.router.add_get("/simulations", simulations)
    app.router.add_get("/simulations/{id}", simulation)
    app.router.add_get("/healthz", healthz)
