"""What a run gives back from real worker processes, for every shape a simulation may have:
inputs taken or not, a (P, Q) tuple or a solved network, pandapower's non-convergence."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandapower as pp
import pytest

import test_sim
from powersim import grid
from powersim.errors import SimulationFailed, StartupError
from powersim.pool import open_pool
from powersim.scenario import SEED
from powersim.worker import WorkerConfig

from .conftest import ClientFactory
from .processes import server_env
from .test_processes import run_to_exit

INPUTS = {"load_p_mw": 0.12, "load_q_mvar": 0.03, "ext_grid_vm_pu": 1.0, "line_length_km": 0.2}


async def test_inputs_reach_a_simulation_that_takes_them_as_keywords() -> None:
    async with open_pool("tests.sims:echoes", 1, "INFO") as pool:
        assert pool.takes_inputs
        outcome = await pool.run(INPUTS)
    assert outcome.converged
    assert (outcome.active_power, outcome.reactive_power) == (0.24, 1.0 + 0.2 + 0.03)
    assert outcome.details_json is None  # a tuple has no details
    assert outcome.started <= outcome.finished


async def test_a_simulation_without_inputs_is_called_without_arguments() -> None:
    async with open_pool("tests.sims:fixed", 1, "INFO") as pool:
        assert not pool.takes_inputs
        outcome = await pool.run(INPUTS)  # the service never sends them; the worker ignores them anyway
    assert (outcome.converged, outcome.active_power, outcome.reactive_power) == (True, 0.1, 0.05)


async def test_pandapowers_non_convergence_is_an_outcome_with_the_solvers_message() -> None:
    async with open_pool("tests.sims:diverges", 1, "INFO") as pool:
        outcome = await pool.run(SEED.model_dump())
    assert not outcome.converged
    assert outcome.message == "Power Flow nr did not converge after 10 iterations!"
    assert (outcome.active_power, outcome.reactive_power, outcome.details_json) == (None, None, None)


async def test_an_exception_that_only_shares_the_name_is_a_failure() -> None:
    async with open_pool("tests.sims:diverges_by_name_only", 1, "INFO") as pool:
        with pytest.raises(SimulationFailed, match="LoadflowNotConverged: looks like it, is not"):
            await pool.run()


async def test_a_returned_network_gives_load_totals_and_details_from_its_tables() -> None:
    async with open_pool(WorkerConfig("tests.sims:solved_network", vm_band=(0.9, 1.1)), 1) as pool:
        outcome = await pool.run()
    net = test_sim.build_network()
    pp.create_load(net, bus=2, p_mw=0.02, q_mvar=0.01, name="Second load")
    pp.create_load(net, bus=2, p_mw=5.0, q_mvar=5.0, name="Off", in_service=False)
    pp.runpp(net)
    assert outcome.converged
    assert outcome.active_power == pytest.approx(float(net.res_load.p_mw.sum()), abs=1e-12)
    assert outcome.reactive_power == pytest.approx(float(net.res_load.q_mvar.sum()), abs=1e-12)
    assert outcome.details_json is not None
    details = json.loads(outcome.details_json)
    assert details == json.loads(json.dumps(grid.details(net, (0.9, 1.1))))
    # The band reached the worker: with 0.9..1.1 no bus breaks it, the line still overloads.
    assert [(v["element"], v["kind"]) for v in details["violations"]] == [("line", "overload")]


async def test_an_unsolved_network_is_not_converged() -> None:
    async with open_pool("tests.sims:unsolved_network", 1, "INFO") as pool:
        outcome = await pool.run()
    assert (outcome.converged, outcome.message) == (False, "the returned network is not solved")


async def test_a_network_that_cannot_be_read_is_a_failed_run() -> None:
    async with open_pool("tests.sims:odd_network", 1, "INFO") as pool:
        for _ in range(2):  # the worker survives it
            with pytest.raises(SimulationFailed, match="cannot read the returned network: RuntimeError: this table"):
                await pool.run()


async def test_a_simulation_taking_only_some_inputs_does_not_start() -> None:
    with pytest.raises(StartupError, match="takes some of the inputs but not load_q_mvar, ext_grid_vm_pu"):
        async with open_pool("tests.sims:takes_some", 1, "INFO"):
            pass


def test_the_server_names_the_missing_inputs_at_start_up(tmp_path: Path, redis_url: str) -> None:
    done = run_to_exit(server_env(tmp_path, redis_url, POWERSIM_SIMULATION="tests.sims:takes_some"))
    assert done.returncode == 1
    assert "takes some of the inputs but not load_q_mvar, ext_grid_vm_pu: take all of them" in done.stderr
    assert "Traceback" not in done.stderr


async def test_a_failure_other_than_non_convergence_stores_nothing(make_client: ClientFactory) -> None:
    client = await make_client(simulation="tests.sims:diverges_by_name_only")
    resp = await client.post("/run-simulation", json={})
    body: dict[str, Any] = await resp.json()
    assert (resp.status, body) == (500, {"error": "simulation failed: LoadflowNotConverged: looks like it, is not"})
    assert (await (await client.get("/simulations")).json())["simulations"] == []


async def test_a_load_without_a_finite_result_fails_the_run_instead_of_counting_zero() -> None:
    async with open_pool("tests.sims:infinite_load", 1, "INFO") as pool:
        with pytest.raises(SimulationFailed, match=r"load 0 is in service but res_load.p_mw is inf"):
            await pool.run()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("tests.sims:ambiguous_converged", "cannot read the returned network: ValueError: the truth value"),
        ("tests.sims:hostile_mapping", "cannot read the returned value: RuntimeError: boom in __contains__"),
    ],
)
async def test_errors_raised_by_the_returned_object_are_failed_runs(spec: str, message: str) -> None:
    """The returned object's own methods are user code: a failed run, never a server bug."""
    async with open_pool(spec, 1, "INFO") as pool:
        with pytest.raises(SimulationFailed, match=message):
            await pool.run()
