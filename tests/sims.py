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
