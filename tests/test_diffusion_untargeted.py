"""Diffusion where no error reaches a population: a hidden dead end, an
output with no target.

The loss is ½‖x_out - y‖² over the outputs given a target; the weights into
a population no error reaches do not change it, so their gradient is zero
(numpy backprop here; least action and continuous say the same). Found by a
QA pass on 5 December: diffusion's synapses there learnt from the random
initial delta for ever.
"""

import networkx as nx
import numpy as np
import pytest

import asyncnet
from asyncnet.engine import Engine
from asyncnet.network import Network, expand_to_neurons
from asyncnet.schemes.diffusion import Diffusion

U, Y = np.array([0.5, -0.3]), np.array([0.4])


def _graph(explicit_roles: bool) -> nx.DiGraph:
    """in -> h -> out (targeted); in -> dead -> dead2 (no target); in -> spare."""
    g = nx.DiGraph()
    role = (lambda r: {"role": r}) if explicit_roles else (lambda r: {})
    g.add_node("in", size=2, activation="linear", role="input")
    g.add_node("h", size=3, activation="tanh", **role("hidden"))
    g.add_node("out", size=1, activation="tanh", **role("output"))
    g.add_node("dead", size=2, activation="tanh", **role("hidden"))
    # inferred, a sink is an output: here one no target reaches
    g.add_node("dead2", size=1, activation="tanh", **role("hidden"))
    g.add_node("spare", size=2, activation="tanh", role="output")
    for u, v in [("in", "h"), ("h", "out"), ("in", "dead"), ("dead", "dead2"),
                 ("in", "spare")]:
        g.add_edge(u, v, delay=1.0)
    return g


@pytest.mark.parametrize("explicit_roles", [True, False])
@pytest.mark.parametrize("rule, params", [("diffusion", {"eta": 0.0}),
                                          ("leastaction", {"mode": "sync"}),
                                          ("continuous", {})])
def test_no_error_no_gradient(rule, params, explicit_roles):
    sc = asyncnet.Scenario(_graph(explicit_roles), rule, params=params, duration=30, seed=2,
                           data={"kind": "constant", "input": U.tolist(),
                                 "target": Y.tolist(), "output_node": "out"},
                           analysis={"kind": "none"})
    r = asyncnet.run(sc)
    for syn in ("in->dead", "dead->dead2", "in->spare"):
        assert np.array_equal(r.final[f"grad/{syn}"], np.zeros_like(r.final[f"grad/{syn}"]))
    # and the supervised path: numpy backprop
    w1, w2 = r.final["weight/in->h"], r.final["weight/h->out"]
    x1 = np.tanh(w1 @ U)
    x2 = np.tanh(w2 @ x1)
    d2 = (1 - x2 ** 2) * (x2 - Y)
    d1 = (1 - x1 ** 2) * (w2.T @ d2)
    assert np.allclose(r.final["grad/h->out"], np.outer(d2, x1), atol=1e-12)
    assert np.allclose(r.final["grad/in->h"], np.outer(d1, U), atol=1e-12)


def test_diffusion_learning_leaves_unsupervised_weights_alone():
    net = Network.from_graph(_graph(True), seed=4)
    src = {"in": lambda t: U, "out": lambda t: Y}
    eng = Engine(net, Diffusion(eta=0.1, init_state="random"), seed=3, sources=src)
    eng.run(200)
    for pair in [("in", "dead"), ("dead", "dead2"), ("in", "spare")]:
        W = eng.state(f"{pair[0]}->{pair[1]}")["weight"]
        # the random first wave moves them a little while it passes; then nothing
        moved = np.abs(W - net.projections[pair].weight).max()
        assert moved < 0.5
        before = W.copy()
        eng.run(400)
        assert np.array_equal(eng.state(f"{pair[0]}->{pair[1]}")["weight"], before)
    # one agent per neuron: no gradient there either
    fine = Network.from_graph(expand_to_neurons(net), seed=0)
    split = {"in_0": lambda t: U[:1], "in_1": lambda t: U[1:], "out_0": lambda t: Y}
    per = Engine(fine, Diffusion(eta=0.1, init_state="random"), seed=3, sources=split)
    per.run(400)
    assert per.state("in_0->spare_1")["grad"][0, 0] == 0.0
    assert per.state("dead_1->dead2_0")["grad"][0, 0] == 0.0
