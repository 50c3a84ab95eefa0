"""Memory of per-neuron nets (issue 13): what the savings rest on, checked.

The bytes per synapse agent themselves are measured by
``tools/bench_engine.py --figures memory``; these tests check that the
sharing behind them changes no number and no object a caller holds.
"""

from __future__ import annotations

import numpy as np
import pytest

from asyncnet.ckstate import Walker, restore_attrs
from asyncnet.messages import DELTA, FORWARD, Message
from asyncnet.network import Network, Projection, expand_to_neurons, layered
from asyncnet.schemes.diffusion import Diffusion, OneSynapse, Synapse, scratch, zeros


def test_projection_is_slotted_and_keeps_the_graph_edge_dict() -> None:
    net = Network.from_graph(layered([2, 3]), seed=0)
    pr = net.projections[("l0", "l1")]
    assert not hasattr(pr, "__dict__")
    assert pr.attrs is net.graph.edges["l0", "l1"]  # not a copy per edge
    assert pr.weight.shape == (3, 2)


def test_per_neuron_graph_shares_node_names_and_keeps_weights() -> None:
    pop = Network.from_graph(layered([3, 4]), seed=5)
    g = expand_to_neurons(pop)
    nodes = {n: n for n in g.nodes}
    for u, v, a in g.edges(data=True):
        assert nodes[u] is u and nodes[v] is v  # one string per node
        i, j = int(v.split("_")[1]), int(u.split("_")[1])
        # a plain float (a 1 x 1 weight), not [[w]]: two lists fewer per synapse
        assert type(a["weight"]) is float
        assert a["weight"] == pop.projections[("l0", "l1")].weight[i, j]
    fine = Network.from_graph(g, seed=0)
    for (u, v), pr in fine.projections.items():
        i, j = int(v.split("_")[1]), int(u.split("_")[1])
        assert pr.weight.shape == (1, 1)
        assert pr.weight[0, 0] == pop.projections[("l0", "l1")].weight[i, j]
        assert a["delay"] == 1.0


def test_shared_zeros_are_read_only() -> None:
    z = zeros(3)
    assert z is zeros(3) and not z.any()
    with pytest.raises(ValueError):
        z[0] = 1.0


def _msg(kind: int, src: str, dst: str, payload: np.ndarray) -> Message:
    return Message(kind, src, dst, 0, 4, 1, payload)


def test_synapses_sharing_scratch_learn_as_plain_numpy() -> None:
    # two 1x1 synapses share one scratch array; each must still end with
    # exactly W - eta * d x^T computed on its own (plain numpy reference)
    net = Network.from_graph(expand_to_neurons(Network.from_graph(layered([1, 2]), seed=3)),
                             seed=0)
    rule = Diffusion(eta=0.1)
    syns = [Synapse(rule, pr) for pr in net.projections.values()]
    assert syns[0]._buf is syns[1]._buf is scratch((1, 1))
    rng = np.random.default_rng(0)
    for _ in range(3):
        refs = []
        for s in syns:
            x, d = rng.standard_normal(1), rng.standard_normal(1)
            want = s.W - 0.1 * np.outer(d, x)
            s.react(0.0, [_msg(FORWARD, "a", "b", x), _msg(DELTA, "c", "b", d)])
            refs.append(want)
        for s, want in zip(syns, refs, strict=True):
            assert np.array_equal(s.W, want)


def test_synapse_models_share_all_arrays_but_their_weight() -> None:
    # per synapse agent, before any message: W only (x_pre, d_post and the
    # scratch are one array per shape for all), and W is its own copy
    net = Network.from_graph(expand_to_neurons(Network.from_graph(layered([4, 5]), seed=1)),
                             seed=0)
    prs = list(net.projections.values())
    syns = [Synapse(Diffusion(eta=0.1), pr) for pr in prs]
    for name in ("x_pre", "d_post", "_buf"):
        assert len({id(getattr(s, name)) for s in syns}) == 1, name
    assert len({id(s.W) for s in syns}) == len(prs) == 20
    assert all(s.W is not pr.weight and np.array_equal(s.W, pr.weight)
               for s, pr in zip(syns, prs, strict=True))


def test_a_one_by_one_weight_becomes_an_array_when_read_and_stays_one() -> None:
    # a per-neuron graph's float weight is kept as the float until read;
    # the array then made is kept, so a write into it changes the weight
    pop = Network.from_graph(layered([2, 3]), seed=4)
    fine = Network.from_graph(expand_to_neurons(pop), seed=0)
    for (u, v), pr in fine.projections.items():
        i, j = int(v.split("_")[1]), int(u.split("_")[1])
        want = pop.projections[("l0", "l1")].weight[i, j]
        assert pr.shape == (1, 1) and pr.scalar() == want
    pr = fine.projections[("l0_1", "l1_2")]
    W = pr.weight
    assert W.shape == (1, 1) and W.dtype == np.float64 and pr.weight is W
    W[0, 0] = 0.25
    assert pr.scalar() == 0.25 and pr.weight[0, 0] == 0.25
    assert Diffusion(eta=0.1).synapse(pr, None, None).w == 0.25  # an engine built now
    big = pop.projections[("l0", "l1")]
    assert big.shape == (3, 2)
    with pytest.raises(ValueError, match="not 1 x 1"):
        big.scalar()


def test_one_neuron_synapse_keeps_a_float_and_refuses_writes_into_its_copy() -> None:
    syn = Diffusion(eta=0.1).synapse(Network.from_graph(expand_to_neurons(
        Network.from_graph(layered([1, 1]), seed=2)), seed=0).projections[("l0_0", "l1_0")],
        None, None)
    assert type(syn) is OneSynapse and type(syn.w) is float and not hasattr(syn, "__dict__")
    x, d = np.array([0.5]), np.array([-2.0])
    want = np.array([[syn.w]]) - 0.1 * np.outer(d, x)  # plain numpy's step
    syn.react(1.0, [_msg(FORWARD, "a", "s", x), _msg(DELTA, "b", "s", d)])
    assert syn.W.tobytes() == want.tobytes() and np.array_equal(syn.state()["weight"], want)
    W = syn.W
    with pytest.raises(ValueError):  # a copy: a write into it would be lost, so it is refused
        W[0, 0] = 1.0
    syn.W = np.array([[0.75]])  # assigning sets it (a checkpoint of older code does)
    assert syn.w == 0.75
    with pytest.raises(ValueError, match="1 x 1"):
        syn.W = np.zeros((2, 2))


def test_one_neuron_synapse_restores_its_own_and_an_older_checkpoint_state() -> None:
    rule = Diffusion(eta=0.1)
    a, b = rule.synapse(Projection("p", "q", 0.5, 4), None, None), \
        rule.synapse(Projection("p", "q", -1.0, 4), None, None)
    a.react(1.0, [_msg(FORWARD, "p", "s", np.array([3.0])), _msg(DELTA, "q", "s",
                                                                 np.array([0.5]))])
    node = Walker().node(a, 0)
    assert set(node[1]) == {"w", "eta", "x_pre", "d_post", "t_grad"}  # no W, no scratch
    restore_attrs(b, node[1], "b")
    assert b.w == a.w and b.t_grad == a.t_grad and np.array_equal(b.x_pre, a.x_pre)
    # older code kept W, a 1 x 1 array, in the synapse's slots
    old = dict(node[1])
    old["W"] = ["d", np.array([[0.125]])]
    del old["w"]
    restore_attrs(b, old, "b")
    assert b.w == 0.125


@pytest.mark.parametrize("weight,what", [(0.5, "size 1"), ([1.0, 2.0], "size 2"),
                                          ("x", "could not convert"), ([[1.0, 2.0]], "shape")])
def test_a_weight_of_the_wrong_size_or_type_names_the_edge(weight, what) -> None:
    # a float is a weight as such only for a 1 x 1 projection (kept as the float)
    import networkx as nx

    from asyncnet.network import NetworkError
    g = nx.DiGraph()
    g.add_node("a", size=2, role="input")
    g.add_node("b", size=3, role="output")
    g.add_edge("a", "b", weight=weight)
    with pytest.raises(NetworkError, match=f"edge a->b: weight .*{what}"):
        Network.from_graph(g, seed=0)


@pytest.mark.parametrize("rule", ["diffusion", "leastaction", "continuous"])
def test_what_a_weight_costs_a_run_is_within_the_check_before_building(rule) -> None:
    """``check_memory`` refuses a net by ``BYTES_PER_WEIGHT``: a run must not cost
    more a weight (it said 64 B and a continuous run took 154: a net the check
    let through could be killed for want of memory). Measured with tracemalloc,
    the difference of two widths of a hidden layer, a short run each."""
    import tracemalloc

    import asyncnet
    from asyncnet.network import BYTES_PER_WEIGHT
    peaks = []
    for width in (5_000, 5_000, 50_000):  # the first: what a process allocates once
        sc = asyncnet.Scenario(asyncnet.layered([2, width, 1]), rule, duration=8, seed=1,
                               data={"kind": "constant", "hold": 4})
        tracemalloc.start()
        asyncnet.run(sc)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    per_weight = (peaks[2] - peaks[1]) / (3 * 45_000)
    assert 8 < per_weight <= BYTES_PER_WEIGHT, per_weight
