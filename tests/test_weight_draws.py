"""Initial weights are drawn when first read, with the numbers of an eager draw.

The reference is written here from numpy alone: the edge's stream is
``default_rng`` seeded with the BLAKE2b hash (16 bytes, little-endian) of
``"{seed}/init:{pre}->{post}"``; ``normal`` is ``standard_normal(shape) *
scale / sqrt(fan_in)`` and ``uniform`` is ``uniform(-l, l, shape)`` with
``l = scale * sqrt(3 / fan_in)``.
"""

from __future__ import annotations

import hashlib

import networkx as nx
import numpy as np
import pytest

from asyncnet.netparts import NetworkError, WeightDraw
from asyncnet.network import Network, expand_to_neurons, layered
from asyncnet.simulation import build_engine


def reference(seed: int, pre: str, post: str, shape, init: str, scale: float) -> np.ndarray:
    h = hashlib.blake2b(f"{seed}/init:{pre}->{post}".encode(), digest_size=16).digest()
    rng = np.random.default_rng(int.from_bytes(h, "little"))
    if init == "normal":
        return rng.standard_normal(shape) * (scale / np.sqrt(shape[1]))
    lim = scale * np.sqrt(3.0 / shape[1])
    return rng.uniform(-lim, lim, shape)


def graph() -> nx.DiGraph:
    g = nx.DiGraph()
    g.add_node("a", size=3, role="input")
    g.add_node("b", size=4)
    g.add_node("c", size=1)
    g.add_node("d", size=1, role="output")
    g.add_edge("a", "b", init="uniform", scale=0.7)
    g.add_edge("b", "c", scale=2.0)
    g.add_edge("c", "d")
    g.add_edge("a", "d", weight=np.full((1, 3), 0.25))
    return g


@pytest.mark.parametrize("order", [1, -1])
def test_the_weights_are_the_references_whatever_the_order_read(order):
    net = Network.from_graph(graph(), seed=11)
    specs = {("a", "b"): ("uniform", 0.7), ("b", "c"): ("normal", 2.0),
             ("c", "d"): ("normal", 1.0)}
    assert all(type(net.projections[e]._weight) is WeightDraw for e in specs)
    for (u, v), (init, scale) in list(specs.items())[::order]:
        p = net.projections[u, v]
        assert p.shape == reference(11, u, v, p.shape, init, scale).shape
        want = reference(11, u, v, p.shape, init, scale)
        assert np.array_equal(p.weight, want)
        assert p.weight is p.weight  # drawn once, then kept (writable in place)
    assert net.projections["c", "d"].scalar() == reference(11, "c", "d", (1, 1), "normal",
                                                           1.0)[0, 0]
    assert np.array_equal(net.projections["a", "d"].weight, np.full((1, 3), 0.25))


def test_a_scalar_is_drawn_without_an_array_and_reads_the_same():
    net = Network.from_graph(graph(), seed=5)
    p = net.projections["c", "d"]
    w = p.scalar()
    assert type(p._weight) is float and w == reference(5, "c", "d", (1, 1), "normal", 1.0)[0, 0]
    assert p.weight.shape == (1, 1) and p.weight[0, 0] == w


@pytest.mark.parametrize("attrs, words", [({"init": "gauss"}, "unknown weight init 'gauss'"),
                                          ({"scale": -1.0}, "weight scale must be"),
                                          ({"scale": True}, "weight scale must be")])
def test_a_bad_init_is_refused_when_the_network_is_built(attrs, words):
    g = graph()
    g.edges["b", "c"].update(attrs)
    with pytest.raises(NetworkError, match=f"edge b->c: {words}"):
        Network.from_graph(g, seed=0)


def test_an_engine_draws_only_its_own_synapses():
    from asyncnet.scenario import Scenario
    g = expand_to_neurons(Network.from_graph(layered([2, 3, 2]), seed=0))
    for (u, v) in g.edges:
        g.edges[u, v].pop("weight", None)  # drawn from the edge's stream
    sc = Scenario(g, "diffusion", duration=1.0, seed=4)
    eng, net, _ = build_engine(sc, local=[])  # a coordinator: no agent here
    assert all(type(p._weight) is WeightDraw for p in net.projections.values())
    mine = ["l0_0->l1_1", "l1_2->l2_0"]
    eng, net, _ = build_engine(sc, local=mine)
    drawn = {p.name for p in net.projections.values() if type(p._weight) is not WeightDraw}
    assert drawn == set(mine)
    full, fnet, _ = build_engine(sc)
    for name in mine:
        u, v = name.split("->")
        assert eng.agents[name].model.state()["weight"][0, 0] == \
            reference(4, u, v, (1, 1), "normal", 1.0)[0, 0] == \
            full.agents[name].model.state()["weight"][0, 0]
