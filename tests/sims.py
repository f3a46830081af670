"""Simulations for tests, chosen with POWERSIM_SIMULATION: fast, slow, failing, dying."""

import os
import random
import time


def fixed() -> tuple[float, float]:
    return 0.1, 0.05


def jitter() -> tuple[float, float]:
    """Random duration, so that concurrent runs finish in another order than they started."""
    time.sleep(random.uniform(0.0, 0.06))
    return 0.1, 0.05


def slow() -> tuple[float, float]:
    time.sleep(1.5)
    return 0.2, 0.1


def fails() -> tuple[float, float]:
    raise RuntimeError("power flow did not converge after 10 iterations")


def not_a_pair() -> str:
    return "oops"


def not_finite() -> tuple[float, float]:
    return float("nan"), 0.05


def dies() -> tuple[float, float]:
    os._exit(3)


NOT_CALLABLE = 42


def dies_once() -> tuple[float, float]:
    """The first call in the whole test (marker file from the environment) kills its worker."""
    marker = os.environ["POWERSIM_TEST_MARKER"]
    if not os.path.exists(marker):
        with open(marker, "w"):
            pass
        os._exit(3)
    return 0.1, 0.05


def very_slow() -> tuple[float, float]:
    """Longer than any drain timeout a test sets."""
    time.sleep(30)
    return 0.3, 0.15


def exits() -> tuple[float, float]:
    raise SystemExit(3)


def interrupted() -> tuple[float, float]:
    raise KeyboardInterrupt


def exits_once() -> tuple[float, float]:
    """The first call in the whole test (marker file from the environment) raises SystemExit."""
    marker = os.environ["POWERSIM_TEST_MARKER"]
    if not os.path.exists(marker):
        with open(marker, "w"):
            pass
        raise SystemExit(3)
    return 0.1, 0.05


def fails_slowly() -> tuple[float, float]:
    """Fails after the client had time to give up waiting."""
    time.sleep(1.0)
    raise RuntimeError("power flow did not converge after 10 iterations")


# --- what a simulation may take and return (issue 12) ----------------------------------------


def echoes(**inputs: float) -> tuple[float, float]:
    """Takes the inputs as **kwargs; answers with two of them, so a test sees they arrived."""
    return inputs["load_p_mw"] * 2, inputs["ext_grid_vm_pu"] + inputs["line_length_km"] + inputs["load_q_mvar"]


def takes_some(*, load_p_mw: float = 0.1, line_length_km: float = 0.1) -> tuple[float, float]:
    return load_p_mw, line_length_km


def diverges(**inputs: float) -> tuple[float, float]:
    """pandapower's own exception, as pp.runpp raises it."""
    from pandapower.powerflow import LoadflowNotConverged

    raise LoadflowNotConverged("Power Flow nr did not converge after 10 iterations!")


class LoadflowNotConverged(Exception):
    """Not pandapower's (the name is, on purpose): a user's exception that only shares the
    name is a failed run, not a non-convergence."""


def diverges_by_name_only() -> tuple[float, float]:
    raise LoadflowNotConverged("looks like it, is not")


def unsolved_network() -> object:
    """A network pandapower never solved (net.converged is false)."""
    import test_sim

    return test_sim.build_network()


def solved_network() -> object:
    """The seed network, solved, with a load out of service and a second load: P and Q are the
    sums over res_load, the out-of-service one counting 0."""
    import pandapower as pp

    import test_sim

    net = test_sim.build_network()
    pp.create_load(net, bus=2, p_mw=0.02, q_mvar=0.01, name="Second load")
    pp.create_load(net, bus=2, p_mw=5.0, q_mvar=5.0, name="Off", in_service=False)
    pp.runpp(net)
    return net


class _Unreadable:
    @property
    def columns(self) -> object:
        raise RuntimeError("this table cannot be read")


def odd_network() -> object:
    """Shaped like a network at a glance, unreadable as one."""
    return {"bus": _Unreadable(), "converged": True}


def big_index() -> object:
    """The seed network with its line at an index beyond GraphQL's 32-bit Int."""
    import pandapower as pp

    import test_sim

    net = test_sim.build_network()
    net.line.index = [3_000_000_000]
    pp.runpp(net)
    return net


def infinite_load() -> object:
    """A solved network whose load result is not finite: no total can be right."""
    import test_sim

    net = test_sim.run_network()
    net.res_load.loc[0, "p_mw"] = float("inf")
    return net


class _Ambiguous:
    def __bool__(self) -> bool:
        raise ValueError("the truth value is ambiguous")


def ambiguous_converged() -> object:
    return {"bus": None, "converged": _Ambiguous()}


class _Hostile(dict[str, object]):
    def __contains__(self, key: object) -> bool:
        raise RuntimeError("boom in __contains__")


def hostile_mapping() -> object:
    return _Hostile()


# --- the run time limit and the memory cap (issue 13) ----------------------------------------

# The seed input value that makes slow_for and hungry_for misbehave; any other runs at once.
TRIGGER_LOAD_P_MW = 0.5


def slow_for(**inputs: float) -> tuple[float, float]:
    """Far past any run time limit a test sets, for one input value only: runs at the same time
    with other values show that the limit stops that run alone."""
    if inputs["load_p_mw"] == TRIGGER_LOAD_P_MW:
        time.sleep(60)
    return inputs["load_p_mw"], inputs["load_q_mvar"]


def hungry_for(**inputs: float) -> tuple[float, float]:
    """Asks for 8 GiB for one input value only (more than any cap a test sets; the pages are
    written, so without a cap it really takes them); other values run at once."""
    if inputs["load_p_mw"] == TRIGGER_LOAD_P_MW:
        block = bytearray(8 * 2**30)
        return float(len(block)), 0.0
    return inputs["load_p_mw"], inputs["load_q_mvar"]
