"""REST handlers: parse the request, call the service, serialize the answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web

from .constants import DEFAULT_PAGE, UPLOAD_CHUNK_BYTES
from .errors import NotFound, PayloadTooLarge, UnsupportedMediaType
from .guards import too_large
from .keys import POWERSIM, SETTINGS
from .models import CONVERGED, FAILED, NOT_CONVERGED, TIMED_OUT, SimulationResult, dumps, power_bodies
from .scenario import ScenarioInput, parse_scenario
from .service import parse_int, parse_network_id, parse_status

NO_RESULT = "no simulation has run yet"


def _json(body: dict[str, Any], status: int = 200) -> web.Response:
    return web.json_response(body, status=status, dumps=dumps)


async def _inputs(request: web.Request) -> ScenarioInput | None:
    """The run's inputs: no body (or only whitespace) is None, the seed run; otherwise a JSON
    object validated by ScenarioInput (400 when malformed, 422 naming every bad field)."""
    if not request.body_exists:
        return None
    body = await request.read()
    if not body.strip():
        return None
    if request.content_type != "application/json":
        raise UnsupportedMediaType(f"send the inputs as a JSON object (application/json); got {request.content_type}")
    return parse_scenario(body)


# A stored run that has no result: its answer's status and how the error starts.
OUTCOME_ANSWERS = {
    NOT_CONVERGED: (422, "power flow did not converge"),
    TIMED_OUT: (504, "the run was stopped"),
    FAILED: (500, "the run failed"),
}


async def run_simulation(request: web.Request) -> web.Response:
    run = await request.app[POWERSIM].run_simulation(await _inputs(request))
    if run.status != CONVERGED and run.status in OUTCOME_ANSWERS:
        status, words = OUTCOME_ANSWERS[run.status]
        return _json({"error": f"{words}: {run.message}", "simulation": run.to_run_dict()}, status)
    return _json(run.to_dict())


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
    status = parse_status(query["status"]) if "status" in query else None
    network = parse_network_id(query["network"]) if "network" in query else None
    page = await request.app[POWERSIM].history(limit, before, status, network)
    return _json({"simulations": [r.to_run_dict() for r in page.simulations], "next_before": page.next_before})


async def simulation(request: web.Request) -> web.Response:
    run_id = parse_int(request.match_info["id"], "id")
    result = await request.app[POWERSIM].get(run_id, with_details=True)
    if result is None:
        raise NotFound(f"no simulation with id {run_id}")
    # The stored details are spliced in as text: they can be large, and need no parsing here.
    return web.Response(text=result.to_run_json(with_details=True), content_type="application/json")


async def networks(request: web.Request) -> web.Response:
    entries = await request.app[POWERSIM].networks()
    return _json({"networks": [entry.to_dict() for entry in entries]})


async def network(request: web.Request) -> web.Response:
    entry = await request.app[POWERSIM].network(request.match_info["id"])
    return _json(entry.to_dict())


async def network_document(request: web.Request) -> web.Response:
    document = await request.app[POWERSIM].network_document(request.match_info["id"])
    return web.Response(body=document, content_type="application/json")


async def delete_network(request: web.Request) -> web.Response:
    await request.app[POWERSIM].delete_network(request.match_info["id"])
    return web.Response(status=204)


async def _upload(request: web.Request) -> bytes:
    """The body, read in chunks and refused (413) as soon as it passes the cap: a body sent
    without Content-Length is never read whole first. (With one, the guard has checked it.)"""
    if request.content_type != "application/json":
        raise UnsupportedMediaType(
            f"send the network as pandapower JSON (application/json); got {request.content_type}"
        )
    limit = request.app[SETTINGS].max_network_bytes
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(UPLOAD_CHUNK_BYTES):
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(too_large(limit, upload=True))
        chunks.append(chunk)
    return b"".join(chunks)


async def add_network(request: web.Request) -> web.Response:
    document = await _upload(request)
    entry, created = await request.app[POWERSIM].add_network(document, request.query.get("name"))
    response = _json(entry.to_dict(), 201 if created else 200)
    response.headers["Location"] = f"/networks/{entry.id}"
    return response


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
    app.router.add_get("/networks", networks)
    app.router.add_post("/networks", add_network)
    app.router.add_get("/networks/{id}", network)
    app.router.add_get("/networks/{id}/json", network_document)
    app.router.add_delete("/networks/{id}", delete_network)
