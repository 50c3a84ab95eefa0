"""The continuous-time rule *through the engine* (timers, delays, messages).

DAG: the steady state equals tests/npref.py backprop. Cycles: it equals the
Almeida–Pineda gradient computed in test_continuous_physics.ap_reference
(scipy root finding + linear solve), and asyncnet.reference.recurrent_backprop
(the reference the ``settling`` analysis uses) is itself checked against
that and against finite differences.
"""

import networkx as nx
import numpy as np
import pytest

from asyncnet.engine import Engine
from asyncnet.network import Network
from asyncnet.reference import recurrent_backprop
from asyncnet.schemes.continuous import Continuous

from . import npref
from .helpers import random_dag
from .test_continuous_physics import ap_reference, cyclic_net


def _run(net, rule, u, y, until, seed=0):
    inp, out = net.inputs()[0], net.outputs()[0]
    eng = Engine(net, rule, seed=seed, sources={inp: lambda t: u, out: lambda t: y})
    eng.run(until)
    return eng


@pytest.mark.parametrize("seed", range(3))
def test_engine_dag_steady_state_is_backprop(seed):
    net = Network.from_graph(random_dag(seed, n_hidden=4, delay=0.5), seed=seed)
    rng = np.random.default_rng(seed)
    u = rng.standard_normal(net.populations["in"].size)
    y = rng.uniform(-0.8, 0.8, net.populations["out"].size)
    order, parents, W, b, act = npref.from_network(net)
    ref = npref.grads(order, parents, W, b, act, {"in": u}, {"out": y})
    eng = _run(net, Continuous(c=2.0, h=0.1, jitter=0.3, init_state="random"), u, y, 40.0, seed)
    for (a, c), R in ref.items():
        G = eng.state(f"{a}->{c}")["grad"]
        assert np.max(np.abs(G - R)) <= 1e-10 * np.max(np.abs(R))


def _cyclic_network(seed):
    W, b = cyclic_net(seed)
    n = len(b)
    g = nx.DiGraph()
    for i in range(n):
        role = "input" if i == 0 else "output" if i >= n - 2 else "hidden"
        g.add_node(f"n{i}", size=1, role=role, activation="linear" if i == 0 else "tanh",
                   bias=[b[i]])
    for i, j in zip(*np.nonzero(W), strict=True):  # W[i, j]: edge j -> i
        g.add_edge(f"n{j}", f"n{i}", delay=0.2, weight=[[W[i, j]]])
    return Network.from_graph(g, seed=seed), W, b


@pytest.mark.parametrize("seed", range(3))
def test_engine_cyclic_steady_state_is_almeida_pineda(seed):
    net, W, b = _cyclic_network(seed)
    n = len(b)
    assert not nx.is_directed_acyclic_graph(net.graph)
    u, y = 0.7, np.array([0.3, -0.5])
    R, _ = ap_reference(W, b, u, y, np.array([n - 2, n - 1]))
    # two output populations: the engine's sources feed one target each
    srcs = {"n0": lambda t: np.array([u]), f"n{n - 2}": lambda t: y[:1],
            f"n{n - 1}": lambda t: y[1:]}
    eng = Engine(net, Continuous(c=2.0, h=0.05, jitter=0.2, init_state="random"), seed=seed,
                 sources=srcs)
    eng.run(60.0)
    scale = np.max(np.abs(R))
    for (a, c) in net.projections:
        i, j = int(c[1:]), int(a[1:])
        G = eng.state(f"{a}->{c}")["grad"][0, 0]
        assert abs(G - R[i, j]) <= 1e-9 * scale
    # and the feedforward-only answer would be wrong: the cycles matter
    rb = recurrent_backprop(net, {"n0": [u]}, {f"n{n - 2}": y[:1], f"n{n - 1}": y[1:]})
    assert max(abs(rb["grad"][k][0, 0] - R[int(k[1][1:]), int(k[0][1:])])
               for k in net.projections) <= 1e-9 * scale
    assert np.max(np.abs(rb["J"])) > 0.05


def test_recurrent_backprop_reference_matches_finite_differences():
    net, W, b = _cyclic_network(4)
    n = len(b)
    ins = {"n0": [0.4]}
    tg = {f"n{n - 2}": [0.2], f"n{n - 1}": [-0.6]}
    rb = recurrent_backprop(net, ins, tg)
    eps = 1e-6

    def V(key, d):
        p = net.projections[key]
        p.weight[0, 0] += d
        x = recurrent_backprop(net, ins, tg)["x"]
        p.weight[0, 0] -= d
        return 0.5 * sum(float((x[o][0] - tg[o][0]) ** 2) for o in tg)

    for key in list(net.projections)[:8]:
        fd = (V(key, eps) - V(key, -eps)) / (2 * eps)
        assert rb["grad"][key][0, 0] == pytest.approx(fd, abs=1e-8)
