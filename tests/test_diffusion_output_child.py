"""Diffusion on a DAG where an output population also feeds another one.

Deep supervision, ``in -> o1 -> o2`` with both as outputs: ``o1``'s delta
is its own error plus its child's, ``σ'(a) ⊙ ((x - y) + Wᵀδ)`` (found by a
QA pass on 5 December: it used to take its own error alone). Checked
against plain numpy backprop (itself checked by central finite
differences), against full-batch gradient descent's stationary point, and
one agent per neuron against populations.
"""

import networkx as nx
import numpy as np

import asyncnet
from asyncnet.engine import Engine
from asyncnet.network import Network, expand_to_neurons
from asyncnet.schemes.diffusion import Diffusion

U, Y1, Y2 = np.array([0.5, -0.3]), np.array([0.2, -0.1]), np.array([0.4])
# three patterns a 2-2-1 net cannot fit: the loss's stationary point is not zero
US = np.array([[0.5, -0.3], [-0.4, 0.8], [0.9, 0.2]])
Y1S = np.array([[0.2, -0.1], [-0.5, 0.3], [0.1, 0.6]])
Y2S = np.array([[0.4], [-0.2], [0.3]])


def _graph(b1=(0.0, 0.0), b2=(0.0,)) -> nx.DiGraph:
    g = nx.DiGraph()
    g.add_node("in", size=2, activation="linear", role="input")
    g.add_node("o1", size=2, activation="tanh", role="output", bias=list(b1))
    g.add_node("o2", size=1, activation="tanh", role="output", bias=list(b2))
    g.add_edge("in", "o1", delay=1.0)
    g.add_edge("o1", "o2", delay=1.0)
    return g


def _backprop(w1, w2, b1, b2, u, y1, y2):
    """Mean loss ½‖x1 - y1‖² + ½‖x2 - y2‖² over rows, and its weight gradients."""
    u, y1, y2 = np.atleast_2d(u), np.atleast_2d(y1), np.atleast_2d(y2)
    x1 = np.tanh(u @ w1.T + b1)
    x2 = np.tanh(x1 @ w2.T + b2)
    d2 = (1 - x2 ** 2) * (x2 - y2)
    d1 = (1 - x1 ** 2) * ((x1 - y1) + d2 @ w2)
    n = len(u)
    loss = (0.5 * np.sum((x1 - y1) ** 2) + 0.5 * np.sum((x2 - y2) ** 2)) / n
    return loss, d1.T @ u / n, d2.T @ x1 / n


def _grad(rule: str, params: dict) -> tuple[np.ndarray, np.ndarray]:
    sc = asyncnet.Scenario(_graph(), rule, params=params, duration=20, seed=1,
                           data={"kind": "constant", "input": U.tolist(),
                                 "target": Y1.tolist() + Y2.tolist(),
                                 "output_node": ["o1", "o2"]}, analysis={"kind": "none"})
    r = asyncnet.run(sc)
    w1, w2 = r.final["weight/in->o1"], r.final["weight/o1->o2"]
    zero2, zero1 = np.zeros(2), np.zeros(1)
    want = _backprop(w1, w2, zero2, zero1, U, Y1, Y2)[1]
    fd = np.zeros_like(w1)
    for i in np.ndindex(*w1.shape):
        up, down = w1.copy(), w1.copy()
        up[i] += 1e-6
        down[i] -= 1e-6
        fd[i] = (_backprop(up, w2, zero2, zero1, U, Y1, Y2)[0]
                 - _backprop(down, w2, zero2, zero1, U, Y1, Y2)[0]) / 2e-6
    assert np.allclose(fd, want, atol=1e-8)  # the reference itself
    return r.final["grad/in->o1"], want


def test_leastaction_an_output_with_a_child_takes_its_error():
    got, want = _grad("leastaction", {"mode": "sync"})
    assert np.allclose(got, want, atol=1e-12)


def test_diffusion_an_output_with_a_child_takes_its_error():
    got, want = _grad("diffusion", {"eta": 0.0})
    assert np.allclose(got, want, atol=1e-12)


def test_diffusion_learning_reaches_the_total_loss_stationary_point():
    # the whole batch every instant: full-batch gradient descent with delays,
    # whose fixed point zeroes the gradient of the mean loss of both outputs
    # (o1's own error alone leaves ≈ 4e-3 on in->o1)
    b1, b2 = np.array([0.1, -0.2]), np.array([0.05])
    net = Network.from_graph(_graph(b1, b2), seed=3)
    src = {"in": lambda t: US, "o1": lambda t: Y1S, "o2": lambda t: Y2S}
    eng = Engine(net, Diffusion(eta=0.2, eta_bias=0.0, init_state="zero"), seed=1,
                 sources=src)
    w1, w2 = net.projections[("in", "o1")].weight, net.projections[("o1", "o2")].weight
    loss0, g1, g2 = _backprop(w1, w2, b1, b2, US, Y1S, Y2S)
    assert max(np.abs(g1).max(), np.abs(g2).max()) > 1e-2
    eng.run(2000)
    w1, w2 = eng.state("in->o1")["weight"], eng.state("o1->o2")["weight"]
    loss, g1, g2 = _backprop(w1, w2, b1, b2, US, Y1S, Y2S)
    assert loss < loss0 and loss > 1e-3  # learnt, and the net cannot fit all three
    assert np.abs(g1).max() < 1e-6 and np.abs(g2).max() < 1e-6


def test_diffusion_an_output_with_a_child_one_agent_per_neuron_same_numbers():
    net = Network.from_graph(_graph((0.1, -0.2), (0.05,)), seed=3)

    def pattern(t):
        return int(t // 5) % 3

    values = {"in": US, "o1": Y1S, "o2": Y2S}
    src = {n: (lambda t, v=v: v[pattern(t)]) for n, v in values.items()}
    pop = Engine(net, Diffusion(eta=0.1, init_state="zero"), seed=5, sources=src)
    pop.run(150)
    fine = Network.from_graph(expand_to_neurons(net), seed=0)
    split = {f"{n}_{k}": (lambda t, v=v, k=k: v[pattern(t)][k:k + 1])
             for n, v in values.items() for k in range(v.shape[1])}
    per = Engine(fine, Diffusion(eta=0.1, init_state="zero"), seed=5, sources=split)
    per.run(150)
    for (u, v), proj in net.projections.items():
        W = pop.state(f"{u}->{v}")["weight"]
        assert not np.allclose(W, proj.weight)  # it did learn
        for i, j in np.ndindex(*W.shape):
            assert abs(per.state(f"{u}_{j}->{v}_{i}")["weight"][0, 0] - W[i, j]) <= 1e-12
    for name, p in net.populations.items():
        x, b = pop.state(name)["state"], pop.state(name)["bias"]
        for k in range(p.size):
            assert abs(per.state(f"{name}_{k}")["state"][0] - x[k]) <= 1e-12
            assert abs(per.state(f"{name}_{k}")["bias"][0] - b[k]) <= 1e-12


def test_diffusion_an_output_with_a_child_batch_rows_are_separate_runs():
    net = Network.from_graph(_graph((0.1, -0.2), (0.05,)), seed=3)
    values = {"in": US, "o1": Y1S, "o2": Y2S}

    def run(sources):
        eng = Engine(net, Diffusion(eta=0.0, init_state="random"), seed=5, sources=sources)
        eng.run(30)
        return eng

    batched = run({n: (lambda t, v=v: v) for n, v in values.items()})
    grads = []
    for k in range(len(US)):
        alone = run({n: (lambda t, v=v, k=k: v[k]) for n, v in values.items()})
        for name in ("o1", "o2"):
            for var in ("state", "delta"):
                assert np.array_equal(batched.state(name)[var][k], alone.state(name)[var])
        grads.append(alone.state("in->o1")["grad"])
    # the batch's gradient: the mean of the samples'
    assert np.allclose(batched.state("in->o1")["grad"], np.mean(grads, axis=0),
                       rtol=1e-12, atol=1e-15)


def test_the_exactness_analysis_finds_the_deep_supervised_net_exact_from_2L():
    # the project's backprop reference (asyncnet.reference) takes every output's loss:
    # from t = 2L on the diffusion gradient is the exact one, as on a chain
    sc = asyncnet.Scenario(_graph(), "diffusion", params={"eta": 0.0}, duration=30, seed=1,
                           data={"kind": "constant", "output_node": ["o1", "o2"]},
                           analysis={"kind": "exactness"})
    ex = asyncnet.run(sc, progress=False).summary["exactness"]
    assert ex["depth"] == 2 and ex["exact"] and ex["max_error_from_2L"] <= 1e-12
