"""EP through the engine: textbook iteration, asynchronous convergence, clockless EP."""

import numpy as np
import pytest

from asyncnet.engine import Engine
from asyncnet.network import Network, layered
from asyncnet.schemes.ep import EP, hopfield_of
from asyncnet.schemes.ep import hopfield as H

X = np.array([[0.5, -1.0, 0.8]])
Y = np.array([0.2, 0.9])
T_FREE, T_LEG = 150, 150


def _net(seed=2):
    net = Network.from_graph(layered([3, 5, 4, 2], activation="sigmoid"), seed=seed)
    rng = np.random.default_rng(seed)
    for p in net.populations.values():
        if p.role != "input":
            p.bias = rng.normal(0, 0.3, p.size)
    return net


def _teacher(sym):
    def value(t):
        m = 0.0 if t < T_FREE else (-1.0 if sym and t < T_FREE + T_LEG else 1.0)
        return np.concatenate([[m], Y])
    return value


def _engine(net, rule, sym=False):
    return Engine(net, rule, seed=0, sources={"l0": lambda t: X, "l3": _teacher(sym)})


def _full_state(eng, sl, n):
    S = np.zeros(n)
    for nm, s in sl.items():
        S[s] = np.ravel(eng.agents[nm].model.s)
    return S


def _reference(net):
    hn, sl = hopfield_of(net)
    xs = np.zeros(hn.n)
    xs[sl["l0"]] = X[0]
    s0 = H.newton_polish(hn, H.relax(hn, xs, tol=1e-14))
    return hn, sl, s0, hn.flat(*H.implicit_gradient(hn, s0, Y))


def test_unit_delays_are_the_textbook_iteration():
    """Every synchronous step equals s ← s − ε ∂E/∂s of the whole network."""
    net = _net()
    hn, sl = hopfield_of(net)
    eng = _engine(net, EP(beta=0.1, eps=0.5, tol=0.0))
    states = {}
    for k in range(1, 40):
        eng.at(k + 0.25, lambda e, t: states.__setitem__(round(t - 0.25), _full_state(e, sl,
                                                                                    hn.n)))
    eng.run(41)
    # the input reaches the hidden layer at t = 2; from then on, step k -> k+1
    for k in range(2, 39):
        ref = H.relax_step(hn, states[k], 0.5)
        assert np.abs(ref - states[k + 1]).max() < 1e-14
    assert np.abs(states[39] - states[38]).max() > 0  # still moving: a real trajectory


def test_asynchronous_neurons_converge_to_the_fixed_point():
    net = _net(3)
    hn, sl, s0, _ = _reference(net)
    eng = _engine(net, EP(beta=0.1, eps=0.5, jitter=0.4, init_scale=1.0))
    eng.run(T_FREE - 1)
    assert np.abs(_full_state(eng, sl, hn.n) - s0).max() < 1e-10
    # the firing times really were irregular
    assert eng.agents["l1"].timer_due % 1_000_000 != 0 or eng.agents["l2"].timer_due \
        % 1_000_000 != 0


@pytest.mark.parametrize("sym", [False, True])
def test_clockless_ep_against_implicit_differentiation(sym):
    """One-sided error O(β), symmetric O(β²): engine estimates vs implicit gradient."""
    net = _net()
    hn, sl, s0, ref = _reference(net)
    err = {}
    for beta in (1e-2, 1e-3):
        eng = _engine(net, EP(beta=beta, symmetric=sym, eps=0.5), sym)
        eng.run(T_FREE + (2 if sym else 1) * T_LEG)
        Wg = np.zeros((hn.n, hn.n))
        for (u, v), pr in net.projections.items():
            G = eng.agents[pr.name].model.grad
            Wg[sl[v], sl[u]] = G
            Wg[sl[u], sl[v]] = G.T
        gb = np.zeros(hn.n)
        for nm, s in sl.items():
            gb[s] = eng.agents[nm].model.grad_b
        err[beta] = np.abs(hn.flat(Wg, gb) - ref).max() / np.abs(ref).max()
    ratio = err[1e-2] / err[1e-3]
    assert (80 < ratio < 120) if sym else (8 < ratio < 12)
    assert err[1e-3] < (1e-5 if sym else 2e-3)


def test_nudge_spreads_as_delta_messages_at_link_speed():
    """Before the nudge: forward only. After: deltas, reaching layer l1 two links later."""
    net = _net()
    eng = _engine(net, EP(beta=0.1, eps=0.5, tol=1e-13))
    seen = []
    eng.sinks.append(lambda batch: seen.extend((m.t_arrive / 1e6, m.kind, m.src, m.dst)
                                               for m in batch))
    eng.run(T_FREE + 20)
    assert all(k != 1 for t, k, _, _ in seen if t <= T_FREE)
    first = {}
    for t, k, _src, dst in seen:
        if k == 1 and dst not in first:
            first[dst] = t
    # the teacher's nudge arrives at l3 at T_FREE; l3 fires then; each link is 1 unit
    assert first["l2->l3"] == T_FREE + 0.5
    assert first["l2"] == T_FREE + 1
    assert first["l1"] == T_FREE + 2
    assert "l0" not in first  # the clamped input needs nothing


def test_clockless_ep_on_a_graph_with_loops_and_skips():
    """Any symmetric coupling graph: a hidden triangle and input->output skips."""
    import networkx as nx
    g = nx.DiGraph()
    for name, size, role in (("in", 3, "input"), ("h1", 4, "hidden"), ("h2", 3, "hidden"),
                             ("out", 2, "output")):
        g.add_node(name, size=size, role=role, activation="sigmoid")
    for u, v in (("in", "h1"), ("in", "h2"), ("h1", "h2"), ("h1", "out"), ("h2", "out"),
                 ("in", "out")):
        g.add_edge(u, v, delay=1.0)
    net = Network.from_graph(g, seed=4)
    hn, sl = hopfield_of(net)
    xs = np.zeros(hn.n)
    xs[sl["in"]] = X[0]
    s0 = H.newton_polish(hn, H.relax(hn, xs, tol=1e-14))
    ref = hn.flat(*H.implicit_gradient(hn, s0, Y))
    err = {}
    for beta in (1e-2, 1e-3):
        eng = Engine(net, EP(beta=beta, eps=0.5), seed=0,
                     sources={"in": lambda t: X, "out": _teacher(False)})
        eng.run(T_FREE + T_LEG)
        Wg = np.zeros((hn.n, hn.n))
        for (u, v), pr in net.projections.items():
            Wg[sl[v], sl[u]] = eng.agents[pr.name].model.grad
            Wg[sl[u], sl[v]] = eng.agents[pr.name].model.grad.T
        gb = np.zeros(hn.n)
        for nm, s in sl.items():
            gb[s] = eng.agents[nm].model.grad_b
        err[beta] = np.abs(hn.flat(Wg, gb) - ref).max() / np.abs(ref).max()
    assert 8 < err[1e-2] / err[1e-3] < 12 and err[1e-3] < 2e-3
