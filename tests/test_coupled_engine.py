"""Coupled learning through the engine: Jacobi steps, the free state, CL's update."""

import networkx as nx
import numpy as np

from asyncnet.engine import Engine
from asyncnet.network import Network
from asyncnet.schemes.coupled import Coupled, resistor_of
from asyncnet.schemes.coupled import resistor as R

X = np.array([[0.5, -1.0], [1.0, 0.2], [-0.3, 0.7]])
Y = np.array([[0.1, 0.2], [0.3, -0.1], [0.0, 0.1]])
T_FREE = 300


def _net():
    g = nx.DiGraph()
    g.add_node("gnd", size=1, role="input", activation="linear")
    g.add_node("in", size=2, role="input", activation="linear")
    for i in range(4):
        g.add_node(f"h{i}", size=1, role="hidden", activation="linear")
    g.add_node("out", size=2, role="output", activation="linear")
    for u, v in [("in", "h0"), ("in", "h1"), ("gnd", "h2"), ("h0", "h1"), ("h1", "h2"),
                 ("h2", "h3"), ("h0", "out"), ("h3", "out"), ("h1", "h3"), ("gnd", "out")]:
        g.add_edge(u, v, delay=1.0)
    return Network.from_graph(g, seed=1)


def _run(rule, until, probes=()):
    net = _net()
    teacher = lambda t: np.concatenate([[0.0 if t < T_FREE else 1.0], Y.ravel()])  # noqa: E731
    eng = Engine(net, rule, seed=0, sources={"in": lambda t: X, "out": teacher})
    K0 = {pr.name: eng.agents[pr.name].model.K.copy() for pr in net.projections.values()}
    rn, sl = resistor_of(net, K0)
    states = {}

    def probe(e, t):
        P = np.zeros((len(X), rn.n))
        for nm, s in sl.items():
            P[:, s] = np.atleast_2d(e.agents[nm].model.p)
        states[t] = P

    for t in probes:
        eng.at(t, probe)
    eng.run(until)
    xin = np.zeros((len(X), len(rn.inputs)))
    xin[:, 1:] = X  # node order: gnd (0), h0..h3, in (5, 6), out
    return eng, net, rn, xin, states


def _flat_grad(eng, net, rn):
    est = []
    for pr in sorted(net.projections.values(), key=lambda p: (p.pre, p.post)):
        m = eng.agents[pr.name].model
        est += [m.grad[i, j] for i, j in zip(*np.nonzero(m.mask), strict=True)]
    return np.array(est)


def test_unit_delays_are_the_jacobi_sweep_and_reach_the_linear_solve():
    probes = [k + 0.25 for k in range(1, 40)] + [T_FREE - 0.5]
    eng, net, rn, xin, st = _run(Coupled(eta=0.01, tol=0.0), T_FREE, probes)
    fixed = np.zeros(rn.n, bool)
    fixed[rn.inputs] = True
    for k in range(3, 38):
        assert np.abs(R.jacobi_step(rn, st[k + 0.25], fixed) - st[k + 1.25]).max() < 1e-15
    assert np.abs(st[T_FREE - 0.5] - R.solve(rn, xin)).max() < 1e-13


def test_cl_update_equals_the_numpy_face_and_approximates_the_gradient():
    eng, net, rn, xin, _ = _run(Coupled(eta=1e-3), T_FREE + 300)
    est = _flat_grad(eng, net, rn)
    # agreement limited by the re-send threshold tol = 1e-13, divided by η
    assert np.abs(est - R.cl_gradient(rn, xin, Y, 1e-3)).max() < 1e-9
    gH = R.implicit_gradient(rn, xin, Y, M=R.effective_conductance(rn))
    assert np.abs(est - gH).max() < 2e-3 * np.abs(gH).max()


def test_learning_applies_the_update_with_a_floor():
    """Continual updates sum to CL's step (to O(α/η)); the floor holds where it binds."""
    eta, alpha, floor = 1e-2, 1e-3, 0.8
    eng, net, rn, xin, _ = _run(Coupled(eta=eta, alpha=alpha, floor=floor), T_FREE + 300)
    K0 = rn.k
    K1 = []
    for pr in sorted(net.projections.values(), key=lambda p: (p.pre, p.post)):
        m = eng.agents[pr.name].model
        K1 += [m.K[i, j] for i, j in zip(*np.nonzero(m.mask), strict=True)]
    K1 = np.array(K1)
    assert K0.min() == floor and K1.min() >= floor
    step = -alpha * R.cl_gradient(rn, xin, Y, eta)
    moved = K0 + step > floor + 1e-4
    assert np.abs((K1 - K0)[moved] - step[moved]).max() < 0.05 * np.abs(step).max()
    pinned = (K0 == floor) & (step < 0)  # would go below the floor without it
    assert pinned.any()
    assert np.all(K1[pinned] - floor < 0.05 * np.abs(step).max())


def test_engine_training_equals_numpy_training(tmp_path):
    """coupled_conservation.toml, 3 windows with settled phases: the engine's
    conductances equal k ← max(k − α g_CL, floor) computed by direct solves."""
    import os

    from asyncnet.scenario import load
    from asyncnet.simulation import build_engine
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    text = open(os.path.join(root, "scenarios", "coupled_conservation.toml"),
                encoding="utf-8").read()
    text = (text.replace("duration = 9000", "duration = 933")
            .replace("settle = 40", "settle = 150").replace("leg = 40", "leg = 150")
            .replace("alpha = 0.1 ", "alpha = 2.0 "))
    path = tmp_path / "cc.toml"
    path.write_text(text)
    sc = load(str(path))
    eng, net, stream = build_engine(sc)
    K0 = {pr.name: eng.agents[pr.name].model.K.copy() for pr in net.projections.values()}
    rn, sl = resistor_of(net, K0)
    eng.run(sc.duration)
    U = np.zeros((16, len(rn.inputs)))
    for w in range(3):
        rows = stream.rows(w)
        U[:, 1:] = stream.data.inputs[rows]  # node order: gnd, h0..h5, in, out
        rn.k = np.maximum(rn.k - 2.0 * R.cl_gradient(rn, U, stream.data.targets[rows], 1e-3),
                          1e-3)
    got = []
    for pr in sorted(net.projections.values(), key=lambda p: (p.pre, p.post)):
        K = eng.agents[pr.name].model.K
        got += [K[i, j] for i, j in zip(*np.nonzero(K0[pr.name]), strict=True)]
    got = np.array(got)
    assert np.abs(got - rn.k).max() < 1e-8
    assert np.abs(got - np.concatenate([K0[n][K0[n] > 0] for n in sorted(K0)])).max() > 1e-3


def test_asynchronous_nodes_reach_the_linear_solve():
    """Nodes on their own jittered timers (period 1 ± 40%) still settle to the solve."""
    eng, net, rn, xin, st = _run(Coupled(eta=0.01, jitter=0.4), T_FREE, [T_FREE - 0.5])
    assert np.abs(st[T_FREE - 0.5] - R.solve(rn, xin)).max() < 1e-12
    due = {eng.agents[f"h{i}"].timer_due for i in range(4)}
    assert len(due) > 1  # the nodes really fire at different times
