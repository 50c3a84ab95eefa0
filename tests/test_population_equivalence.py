"""One process per neuron and per synapse gives the same numbers as populations."""

import numpy as np

from asyncnet.data import make_stream
from asyncnet.engine import Engine
from asyncnet.network import Network, expand_to_neurons, layered
from asyncnet.schemes.diffusion import Diffusion

from .helpers import random_dag


def _run(net, sources, until, eta):
    eng = Engine(net, Diffusion(eta=eta, init_state="zero"), seed=5, sources=sources)
    eng.run(until)
    return eng


def _split(fn, node, size):
    return {f"{node}_{k}": (lambda t, k=k: fn(t)[k:k + 1]) for k in range(size)}


def _compare(net, stream, until, eta):
    pop = _run(net, stream.sources(), until, eta)
    fine = Network.from_graph(expand_to_neurons(net), seed=0)
    inp, out = stream.input_node, stream.output_node
    src = {**_split(lambda t: stream.value(inp, t), inp, net.populations[inp].size),
           **_split(lambda t: stream.value(out, t), out, net.populations[out].size)}
    per = _run(fine, src, until, eta)
    assert len(per.agents) > len(pop.agents)
    worst = 0.0
    for (u, v), pr in net.projections.items():
        W = pop.state(f"{u}->{v}")["weight"]
        for i in range(W.shape[0]):
            for j in range(W.shape[1]):
                w1 = per.state(f"{u}_{j}->{v}_{i}")["weight"][0, 0]
                worst = max(worst, abs(w1 - W[i, j]))
        assert not np.allclose(W, pr.weight)  # it did learn
    for name, p in net.populations.items():
        x = pop.state(name)["state"]
        for k in range(p.size):
            worst = max(worst, abs(per.state(f"{name}_{k}")["state"][0] - x[k]))
    return worst


def test_layered_xor_learning_same_numbers():
    net = Network.from_graph(layered([2, 3, 1]), seed=2)
    stream = make_stream("xor", n_in=2, n_out=1, input_node="l0", output_node="l2",
                         seed=2, duration=300, hold=6)
    assert _compare(net, stream, 300, eta=0.05) <= 1e-12


def test_random_dag_same_numbers():
    net = Network.from_graph(random_dag(11, n_hidden=4), seed=11)
    stream = make_stream("piecewise", n_in=net.populations["in"].size,
                         n_out=net.populations["out"].size, input_node="in",
                         output_node="out", seed=3, duration=120, hold=5, patterns=3)
    assert _compare(net, stream, 120, eta=0.02) <= 1e-12
