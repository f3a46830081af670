"""The power-flow simulation powersim serves: the classic 3-bus pandapower example.

This module is the user's simulation; the server imports it and it never imports the server.
The network is identical on every call, so it is built once per process (at import, which the
server's workers do at start-up) and reused: building it costs ~100 ms of pandas work, the
power flow ~25 ms. Reuse is safe because pp.runpp only writes its result tables and internal
lookups, never the element tables it reads, and with the default init="auto" it does not start
from earlier results; tests/test_simulation.py checks every result table bit-for-bit against a
freshly built network, and that the inputs stay untouched. A failed run rebuilds the network.
"""

import pandapower as pp


def build_network() -> pp.pandapowerNet:
    """Bus 1 at 20 kV with the external grid; a 0.4 MVA transformer to bus 2; a line to the load on bus 3."""
    net = pp.create_empty_network()
    b1 = pp.create_bus(net, vn_kv=20.0, name="Bus 1")
    b2 = pp.create_bus(net, vn_kv=0.4, name="Bus 2")
    b3 = pp.create_bus(net, vn_kv=0.4, name="Bus 3")
    pp.create_ext_grid(net, bus=b1, vm_pu=1.02, name="Grid Connection")
    pp.create_load(net, bus=b3, p_mw=0.1, q_mvar=0.05, name="Load")
    pp.create_transformer(net, hv_bus=b1, lv_bus=b2, std_type="0.4 MVA 20/0.4 kV", name="Trafo")
    pp.create_line(net, from_bus=b2, to_bus=b3, length_km=0.1, std_type="NAYY 4x50 SE", name="Line")
    return net


_network = build_network()


def run_network() -> pp.pandapowerNet:
    """Run the power flow on this process's network and return it (read it, don't change it)."""
    global _network
    try:
        pp.runpp(_network)
    except Exception:
        _network = build_network()  # a failed run may leave partial state behind: start clean
        raise
    return _network


def run_simulation() -> tuple[float, float]:
    """Run a power flow on the 3-bus example network; return the load's (P in MW, Q in MVAr)."""
    net = run_network()
    return float(net.res_load.p_mw[0]), float(net.res_load.q_mvar[0])
